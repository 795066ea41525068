# shellcheck shell=bash
# Shared functions for ferry's test and provisioning scripts.
# Source it; do not run it. Every message goes to stderr.

# shellcheck disable=SC2034 # used by the scripts that source this file
FERRY_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FERRY_STATE_DIR=/run/ferry-test
FERRY_STATE_FILE="$FERRY_STATE_DIR/started"

log()  { printf '[%s] %s\n' "${FERRY_LOG_TAG:-ferry}" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "${FERRY_LOG_TAG:-ferry}" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "${FERRY_LOG_TAG:-ferry}" "$*" >&2; exit 1; }

need_root() {
	[[ $(id -u) -eq 0 ]] || die "this must run as root (try: sudo $0 ...)"
}

# Put the Go toolchain on PATH when it is installed at the usual place.
ensure_go_path() {
	if [[ -d /usr/local/go/bin && ":$PATH:" != *":/usr/local/go/bin:"* ]]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
}

pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ensure_packages PKG...: install the Debian packages that are missing.
# Runs `apt-get update` at most once per process tree, and keeps package
# post-install scripts from starting services (we start daemons ourselves).
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	need_root
	log "installing missing packages: ${missing[*]}"
	local made_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		made_policy=1
	fi
	local rc=0
	{
		if [[ -z ${FERRY_APT_UPDATED:-} ]]; then
			DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
			export FERRY_APT_UPDATED=1
		fi
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	} || rc=$?
	((made_policy)) && rm -f /usr/sbin/policy-rc.d
	((rc == 0)) || die "apt-get install ${missing[*]} failed (exit $rc)"
}

# Debian packages of the Python client (python/ferry), its unit tests and
# the example notebook that the end-to-end tests execute. No PyPI: the
# notebook kernel is Debian's /usr/bin/python3, like the sandbox's.
FERRY_PYTHON_PACKAGES=(python3 python3-cloudpickle python3-numpy python3-setuptools python3-wheel
	python3-pip python3-venv jupyter-core jupyter-nbconvert python3-nbconvert python3-ipykernel)

ensure_python_packages() {
	ensure_packages "${FERRY_PYTHON_PACKAGES[@]}"
}

# pid_alive PIDFILE [COMM]: true if the pid in PIDFILE runs (and, if given,
# its command name starts with COMM, so a recycled pid is not mistaken).
pid_alive() {
	local f=$1 comm=${2:-} pid
	[[ -s $f ]] || return 1
	pid=$(tr -dc '0-9' <"$f")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
	if [[ -n $comm ]]; then
		local c
		c=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
		[[ $c == "${comm:0:15}"* ]] || return 1
	fi
}

# stop_pidfile NAME PIDFILE [COMM] [TIMEOUT]: SIGTERM, wait, then SIGKILL.
stop_pidfile() {
	local name=$1 f=$2 comm=${3:-} timeout=${4:-20} pid i
	if ! pid_alive "$f" "$comm"; then
		log "$name: not running"
		rm -f "$f"
		return 0
	fi
	pid=$(tr -dc '0-9' <"$f")
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < timeout * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		warn "$name (pid $pid) did not exit after ${timeout}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -f "$f"
}

# wait_until TIMEOUT_SECONDS DESCRIPTION CMD...: poll CMD every 0.5 s.
wait_until() {
	local timeout=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			warn "timed out after ${timeout}s waiting for $what"
			return 1
		fi
		sleep 0.5
	done
}

# The state file lists the daemons that tests/cluster.sh started itself, one
# per line: NAME PIDFILE COMM. `cluster.sh down` stops exactly those.
state_add() {
	local name=$1 pidfile=$2 comm=$3
	mkdir -p "$FERRY_STATE_DIR"
	touch "$FERRY_STATE_FILE"
	grep -q "^$name " "$FERRY_STATE_FILE" && return 0
	printf '%s %s %s\n' "$name" "$pidfile" "$comm" >>"$FERRY_STATE_FILE"
}

state_has() {
	[[ -f $FERRY_STATE_FILE ]] && grep -q "^$1 " "$FERRY_STATE_FILE"
}

state_del() {
	[[ -f $FERRY_STATE_FILE ]] || return 0
	local tmp
	tmp=$(mktemp "$FERRY_STATE_DIR/.started.XXXXXX")
	grep -v "^$1 " "$FERRY_STATE_FILE" >"$tmp" || true
	mv "$tmp" "$FERRY_STATE_FILE"
}

# user_home USER: the home directory from the passwd database.
user_home() {
	getent passwd "$1" | cut -d: -f6
}

# as_user USER CMD...: run CMD as USER from their home, with a clean identity.
as_user() {
	local u=$1 home
	shift
	home=$(user_home "$u")
	[[ -n $home ]] || die "no such user: $u"
	(cd "$home" && runuser -u "$u" -- env HOME="$home" USER="$u" LOGNAME="$u" "$@")
}
