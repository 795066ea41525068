#!/usr/bin/env bash
# Build ferry's Docker images locally, without any registry:
#   ferry/debian:bookworm   minimal Debian + python3, numpy, cloudpickle
#                           (debootstrap from deb.debian.org, then docker import)
#   ferry/sandbox:latest    sandbox/Dockerfile on top of it (+ python/ferry)
# Safe to re-run: the base image is made only when missing (FERRY_REBUILD_BASE=1
# forces it), and Docker's build cache skips unchanged sandbox layers.
set -euo pipefail
FERRY_LOG_TAG=build
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tests/lib.sh"

BASE_IMAGE=${FERRY_BASE_IMAGE:-ferry/debian:bookworm}
SANDBOX_IMAGE=${FERRY_SANDBOX_IMAGE:-ferry/sandbox:latest}
MIRROR=${FERRY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
INCLUDE=python3,python3-numpy,python3-cloudpickle,ca-certificates

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is it running? are you root?)"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
	need_root
	ensure_packages debootstrap
	local root
	root=$(mktemp -d /var/tmp/ferry-rootfs.XXXXXX)
	# debootstrap mounts /proc and /sys inside the target: unmount before rm.
	# shellcheck disable=SC2064
	trap "umount -R '$root/proc' '$root/sys' 2>/dev/null || true; rm -rf --one-file-system '$root'" EXIT
	log "debootstrap $SUITE (minbase + $INCLUDE) into $root ..."
	local t0=$SECONDS
	if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$MIRROR" \
		>/var/tmp/ferry-debootstrap.log 2>&1; then
		tail -n 30 /var/tmp/ferry-debootstrap.log >&2 || true
		die "debootstrap failed (full log: /var/tmp/ferry-debootstrap.log)"
	fi
	log "debootstrap done in $((SECONDS - t0))s; stripping caches and docs"
	local r=${root:?}
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old \
		"$r"/usr/share/doc/* "$r"/usr/share/man/* "$r"/usr/share/info/* \
		"$r"/usr/share/locale/* "$r"/usr/share/lintian "$r"/var/log/* \
		"$r"/tmp/* "$r"/var/tmp/* "${r:?}"/dev/* "$r"/root/.cache
	find "$root"/usr/lib/python3* -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
	# Keep documentation out of later apt installs in derived images.
	mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
	printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n' \
		>"$root/etc/dpkg/dpkg.cfg.d/01-ferry-nodoc"
	log "importing $BASE_IMAGE"
	tar --numeric-owner -C "$root" -c . | docker import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV LANG=C.UTF-8' \
		--change 'CMD ["/bin/bash"]' \
		--change 'LABEL ferry.base="debian-bookworm"' \
		--message "debootstrap --variant=minbase --include=$INCLUDE $SUITE" \
		- "$BASE_IMAGE" >/dev/null
	umount -R "$root/proc" "$root/sys" 2>/dev/null || true
	rm -rf --one-file-system "$root"
	trap - EXIT
	log "built $BASE_IMAGE in $((SECONDS - t0))s"
}

# Images replaced by this run are removed when nothing else names them.
old_ids=()
for img in "$BASE_IMAGE" "$SANDBOX_IMAGE"; do
	old_ids+=("$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)")
done

if [[ ${FERRY_REBUILD_BASE:-0} == 1 ]] || ! image_exists "$BASE_IMAGE"; then
	build_base
else
	log "$BASE_IMAGE exists: not bootstrapping again (FERRY_REBUILD_BASE=1 forces it)"
fi

target=sandbox
if [[ -d $FERRY_REPO/python/ferry ]]; then
	target=sandbox-python
	log "python/ferry found: installing it into the image"
fi
log "building $SANDBOX_IMAGE (target $target) from sandbox/Dockerfile"
# --pull=false is the default; nothing here may reach a registry.
if ! docker build -q -f "$FERRY_REPO/sandbox/Dockerfile" --target "$target" \
	--build-arg BASE_IMAGE="$BASE_IMAGE" -t "$SANDBOX_IMAGE" "$FERRY_REPO" >/dev/null; then
	die "docker build of $SANDBOX_IMAGE failed"
fi

for id in "${old_ids[@]}"; do
	[[ -n $id ]] || continue
	if [[ $(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null) == 0 ]]; then
		if docker rmi "$id" >/dev/null 2>&1; then log "removed the replaced image ${id:7:12}"; fi
	fi
done

for img in "$BASE_IMAGE" "$SANDBOX_IMAGE"; do
	printf '%s\t%s\t%s\n' "$img" "$(docker image inspect -f '{{.Id}}' "$img")" \
		"$(docker image inspect -f '{{.Size}}' "$img" | awk '{printf "%.0fMB", $1/1e6}')"
done
