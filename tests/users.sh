#!/usr/bin/env bash
# Create the unprivileged test users ferry-alice (uid 2101), ferry-bob
# (uid 2102) and ferry-carol (uid 2103, the dashboard's admin in the
# harness): own groups, homes 0700, /bin/bash, never in the docker group.
# Idempotent: an existing user with the right uid is kept as it is.
set -euo pipefail
FERRY_LOG_TAG=users
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

ensure_user() {
	local name=$1 id=$2 home=/home/$1 cur
	if cur=$(getent group "$name"); then
		[[ $(cut -d: -f3 <<<"$cur") == "$id" ]] ||
			die "group $name exists with gid $(cut -d: -f3 <<<"$cur"), expected $id: remove it first"
	else
		if getent group "$id" >/dev/null; then
			die "gid $id is taken by group $(getent group "$id" | cut -d: -f1)"
		fi
		groupadd -g "$id" "$name"
	fi
	if cur=$(getent passwd "$name"); then
		[[ $(cut -d: -f3 <<<"$cur") == "$id" ]] ||
			die "user $name exists with uid $(cut -d: -f3 <<<"$cur"), expected $id: remove it first"
	else
		if getent passwd "$id" >/dev/null; then
			die "uid $id is taken by user $(getent passwd "$id" | cut -d: -f1)"
		fi
		useradd -u "$id" -g "$id" -d "$home" -m -s /bin/bash -c "ferry test user" "$name"
		log "created user $name ($id:$id, $home)"
	fi
	mkdir -p "$home"
	chown "$id:$id" "$home"
	chmod 0700 "$home"
	# Users never get the Docker socket: that would be root on the worker.
	if id -nG "$name" | tr ' ' '\n' | grep -qx docker; then
		gpasswd -d "$name" docker >/dev/null
		log "removed $name from the docker group"
	fi
}

ensure_user ferry-alice 2101
ensure_user ferry-bob 2102
ensure_user ferry-carol 2103 # a TA: a dashboard admin in tests/cluster.sh's config
log "test users ready: $(id ferry-alice); $(id ferry-bob); $(id ferry-carol)"
