#!/usr/bin/env bash
# First contact with ferry on one machine:
#
#   sudo scripts/quickstart.sh
#
# brings up a local Slurm cluster with two workers (tests/cluster.sh up), then,
# as you ($SUDO_USER) or else as the test user ferry-alice, creates a sample
# project, submits it, waits for it, and shows its log and outputs. The cluster
# is left running; stop it with: sudo tests/cluster.sh down
set -euo pipefail
FERRY_LOG_TAG=quickstart
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"
need_root

bash "$FERRY_REPO/tests/cluster.sh" up

FERRY=/usr/local/bin/ferry
[[ -x $FERRY ]] || die "$FERRY was not built (see the go build messages above)"

user=ferry-alice
if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
	user=$SUDO_USER
fi
home=$(user_home "$user")
[[ -n $home ]] || die "no such user: $user"

# run_in DIR CMD...: run CMD as $user in DIR.
run_in() {
	local dir=$1
	shift
	(cd "$dir" && runuser -u "$user" -- env HOME="$home" USER="$user" LOGNAME="$user" "$@")
}

work=$(runuser -u "$user" -- mktemp -d /tmp/ferry-quickstart.XXXXXX)
log "working as $user in $work"

step() { printf '\n$ %s\n' "$*" >&2; }

step ferry init hello
run_in "$work" "$FERRY" init hello

step ferry submit --wait -o json hello
set +e
out=$(run_in "$work" "$FERRY" submit --wait -o json hello)
rc=$?
set -e
printf '%s\n' "$out"
id=$(printf '%s\n' "$out" | grep -o '"id"[[:space:]]*:[[:space:]]*"[^"]*"' | head -n1 | sed 's/.*"\([^"]*\)"$/\1/')
[[ -n $id ]] || die "ferry submit printed no job id (exit $rc)"
((rc == 0)) || warn "job $id did not succeed (ferry submit exit $rc)"

step ferry logs "$id"
run_in "$work" "$FERRY" logs "$id" || warn "ferry logs $id failed"

step ferry get "$id"
run_in "$work" "$FERRY" get "$id" || warn "ferry get $id failed"
# Show what ferry get fetched: every file's name, the outputs and the result.
find "$work" -mindepth 1 -path "$work/hello" -prune -o -type f -print 2>/dev/null | sort |
	while read -r f; do
		rel=${f#"$work"/}
		case $rel in
		*/outputs/* | */result.json)
			printf '\n--- %s\n' "$rel"
			head -c 4096 "$f"
			;;
		*) printf '\n--- %s (%s bytes)\n' "$rel" "$(stat -c %s "$f")" ;;
		esac
	done

if ((rc != 0)); then
	cat >&2 <<EOF

The job $id did not succeed (ferry submit --wait exited $rc): its log is
above; 'sudo -u $user $FERRY status $id' says why. The cluster is still
running (stop it with: sudo tests/cluster.sh down).
EOF
	exit "$rc"
fi

cat >&2 <<EOF

Done: job $id ran on the local Slurm cluster as $user.
Its files: $home/.ferry/jobs/$id/   the project: $work/hello
Try:       sudo -u $user $FERRY ls
The cluster is still running. Stop it with:  sudo tests/cluster.sh down
EOF
