#!/usr/bin/env bash
# build_cluster.sh: bring up a whole ferry cluster in containers, from nothing.
#
#   ./build_cluster.sh [--config FILE] [up]   build what is missing, start the
#                                             cluster, prove it with a smoke job
#                                             on every worker (the default)
#   ./build_cluster.sh [--config FILE] update rebuild the images and restart,
#                                             one node at a time, keeping the
#                                             queue, the spools and Redis data
#   ./build_cluster.sh [--config FILE] status what runs, Slurm's nodes, the queue
#   ./build_cluster.sh [--config FILE] down   stop and remove the containers;
#                                             every piece of data stays
#   ./build_cluster.sh [--config FILE] purge --yes [--keep-images]
#                                             down, then delete DATA_DIR, the
#                                             state dir and the cluster's images
#                                             (users' homes are never touched)
#   ./build_cluster.sh [--config FILE] prepare-host
#                                             MODE=swarm, on every other host:
#                                             the host paths the services bind
#
# Every setting is in config.sh (or the file --config or $FERRY_CLUSTER_CONFIG
# names). The host needs Docker Engine and docker-compose (Debian: docker.io,
# docker-compose; MODE=swarm needs no compose) and root; without Go, ferry's
# binaries are built in a container (build/gobuild.Dockerfile), which needs
# the Go module proxy. debootstrap is installed on Debian hosts when the
# base image has to be bootstrapped. MODE=swarm deploys the same services as a stack on the
# swarm this host manages (made when there is none): see README.
# Re-running `up` on a running cluster changes nothing and says so.
#
# Exit codes: 0 done, 1 failed (the message says where), 2 bad config or usage.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=build_cluster.sh
T0=$SECONDS

log() { printf '[cluster] %s\n' "$*" >&2; }
warn() { printf '[cluster] WARNING: %s\n' "$*" >&2; }
die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}
# bad CONFIG-KEY MESSAGE: a one-line config error, before anything starts.
bad() {
	printf '%s: %s: %s: %s\n' "$PROG" "$CONFIG_NAME" "$1" "$2" >&2
	exit 2
}
usage() {
	sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

CHANGES=()
changed() {
	CHANGES+=("$1")
	log "changed: $1"
}

# ------------------------------------------------------------------ config

KNOWN_KEYS=(CLUSTER_NAME WORKERS WORKER_CPUS WORKER_MEM_MB MODE HEAD_ADDR BIND_ADDR
	JUPYTER_PORT DASHBOARD_PORT DASHBOARD_URL DASHBOARD_ADMINS REDIS_PORT REDIS_PASSWORD_FILE HOME_ROOT DATA_DIR SCRATCH_DIR MOUNT_DIR
	STATE_DIR USERS_FILE JUPYTER_USER JUPYTER_TOKEN MUNGE_UID MUNGE_GID SLURM_UID
	SLURM_GID IMAGE_PREFIX IMAGE_TAG DEBIAN_MIRROR PERFMON ACCOUNTING FAIRSHARE_HALF_LIFE_HOURS
	MAX_RUNNING_PER_USER MAX_JOBS_PER_USER ENVIRONMENTS PIP_INDEX_URL WHEELHOUSE_DIR)

# abs PATH: PATH made absolute against the config file's directory.
abs() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s\n' "$CONFIG_DIR/$1" ;;
	esac
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

check_port() {
	local key=$1 port=$2
	is_uint "$port" && ((port >= 1 && port <= 65535)) || bad "$key" "'$port' is not a port number (1-65535)"
}

# port_in_use PORT: something other than this cluster listens on PORT.
port_in_use() {
	local port=$1
	# Ours, published by this cluster's running containers: not a conflict.
	if docker ps --filter "label=ferry.cluster=$CLUSTER_NAME" --format '{{.Ports}}' 2>/dev/null |
		grep -Eq "(:|^)$port->"; then
		return 1
	fi
	if command -v ss >/dev/null; then
		[[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
	fi
}

load_config() {
	[[ -f $CONFIG ]] || {
		printf '%s: no config file %s (copy config.sh and edit it)\n' "$PROG" "$CONFIG" >&2
		exit 2
	}
	CONFIG_DIR=$(cd "$(dirname "$CONFIG")" && pwd)
	CONFIG_NAME=$(basename "$CONFIG")
	# Every assignment must be a known key: a typo is an error, not a no-op.
	local n=0 line key
	while IFS= read -r line || [[ -n $line ]]; do
		n=$((n + 1))
		[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
		if [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)= ]]; then
			key=${BASH_REMATCH[2]}
			[[ " ${KNOWN_KEYS[*]} " == *" $key "* ]] ||
				bad "$key" "unknown setting on line $n (known: ${KNOWN_KEYS[*]})"
		else
			bad "line $n" "not a KEY=value setting: $line"
		fi
	done <"$CONFIG"
	# shellcheck disable=SC1090
	source "$CONFIG"

	: "${CLUSTER_NAME:=ferry}" "${WORKERS:=2}" "${MODE:=compose}" "${BIND_ADDR:=0.0.0.0}"
	: "${JUPYTER_PORT:=8888}" "${DASHBOARD_PORT:=8080}" "${REDIS_PORT:=6379}"
	: "${HOME_ROOT:=/home}" "${DATA_DIR:=/var/lib/ferry-cluster}"
	: "${SCRATCH_DIR:=/var/tmp/ferry-cluster}" "${MOUNT_DIR:=/run/ferry-cluster}"
	: "${STATE_DIR:=state}" "${USERS_FILE:=users.list}"
	: "${MUNGE_UID:=990}" "${MUNGE_GID:=990}" "${SLURM_UID:=64030}" "${SLURM_GID:=64030}"
	: "${IMAGE_PREFIX:=ferry}" "${IMAGE_TAG:=latest}" "${DEBIAN_MIRROR:=http://deb.debian.org/debian}"
	: "${PERFMON:=0}" "${HEAD_ADDR:=}" "${JUPYTER_USER:=}" "${JUPYTER_TOKEN:=}" "${REDIS_PASSWORD_FILE:=}"
	: "${DASHBOARD_URL:=}" "${DASHBOARD_ADMINS:=}"
	: "${ACCOUNTING:=1}" "${FAIRSHARE_HALF_LIFE_HOURS:=4}" "${MAX_RUNNING_PER_USER:=}" "${MAX_JOBS_PER_USER:=1000}"
	: "${ENVIRONMENTS:=1}" "${PIP_INDEX_URL:=}" "${WHEELHOUSE_DIR:=}"
	: "${WORKER_CPUS:=$(nproc)}"
	: "${WORKER_MEM_MB:=$(($(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo) - 1024))}"

	[[ $CLUSTER_NAME =~ ^[a-z][a-z0-9-]{0,30}$ ]] || bad CLUSTER_NAME "'$CLUSTER_NAME': use lowercase letters, digits and '-', starting with a letter"
	is_uint "$WORKERS" && ((WORKERS >= 1 && WORKERS <= 64)) || bad WORKERS "'$WORKERS' is not a number of workers (1-64)"
	is_uint "$WORKER_CPUS" && ((WORKER_CPUS >= 1)) || bad WORKER_CPUS "'$WORKER_CPUS' is not a CPU count"
	is_uint "$WORKER_MEM_MB" && ((WORKER_MEM_MB >= 256)) || bad WORKER_MEM_MB "'$WORKER_MEM_MB' is not a memory size in MiB (at least 256)"
	case $MODE in compose | swarm) ;; *) bad MODE "'$MODE': use compose or swarm" ;; esac
	check_port JUPYTER_PORT "$JUPYTER_PORT"
	check_port DASHBOARD_PORT "$DASHBOARD_PORT"
	check_port REDIS_PORT "$REDIS_PORT"
	[[ -z $DASHBOARD_URL || $DASHBOARD_URL =~ ^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$ ]] ||
		bad DASHBOARD_URL "'$DASHBOARD_URL' is not http(s)://host[:port]"
	[[ $DASHBOARD_ADMINS =~ ^[a-z0-9_.,-]*$ ]] || bad DASHBOARD_ADMINS "'$DASHBOARD_ADMINS': user names separated by commas"
	local k
	for k in MUNGE_UID MUNGE_GID SLURM_UID SLURM_GID; do
		is_uint "${!k}" || bad "$k" "'${!k}' is not a numeric id"
	done
	[[ $PERFMON == 0 || $PERFMON == 1 ]] || bad PERFMON "'$PERFMON': use 0 or 1"
	[[ $ACCOUNTING == 0 || $ACCOUNTING == 1 ]] || bad ACCOUNTING "'$ACCOUNTING': use 1 (fair share, slurmdbd) or 0 (first come, first served)"
	is_uint "$FAIRSHARE_HALF_LIFE_HOURS" && ((FAIRSHARE_HALF_LIFE_HOURS >= 1 && FAIRSHARE_HALF_LIFE_HOURS <= 720)) ||
		bad FAIRSHARE_HALF_LIFE_HOURS "'$FAIRSHARE_HALF_LIFE_HOURS' is not a number of hours (1-720)"
	for k in MAX_RUNNING_PER_USER MAX_JOBS_PER_USER; do
		[[ -z ${!k} ]] || { is_uint "${!k}" && ((${!k} >= 1)); } || bad "$k" "'${!k}' is not a number of jobs (1 or more; empty: no limit)"
	done
	[[ $ENVIRONMENTS == 0 || $ENVIRONMENTS == 1 ]] || bad ENVIRONMENTS "'$ENVIRONMENTS': use 1 (workers build requirements.txt and apt: environments) or 0"
	[[ -z $PIP_INDEX_URL || $PIP_INDEX_URL =~ ^https?://[^@[:space:]]+$ ]] ||
		bad PIP_INDEX_URL "'$PIP_INDEX_URL' is not an http(s) URL without credentials (it is recorded in the images)"
	if [[ -n $WHEELHOUSE_DIR ]]; then
		WHEELHOUSE_DIR=$(abs "$WHEELHOUSE_DIR")
		[[ -d $WHEELHOUSE_DIR ]] || bad WHEELHOUSE_DIR "$WHEELHOUSE_DIR: no such directory on this host"
	fi
	if [[ -n $MAX_RUNNING_PER_USER && -n $MAX_JOBS_PER_USER ]] && ((MAX_RUNNING_PER_USER > MAX_JOBS_PER_USER)); then
		bad MAX_RUNNING_PER_USER "$MAX_RUNNING_PER_USER is more than MAX_JOBS_PER_USER ($MAX_JOBS_PER_USER), which counts running jobs too"
	fi
	[[ $IMAGE_PREFIX =~ ^[a-z0-9][a-z0-9._/-]*$ ]] || bad IMAGE_PREFIX "'$IMAGE_PREFIX' is not an image name prefix"
	[[ $IMAGE_TAG =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || bad IMAGE_TAG "'$IMAGE_TAG' is not an image tag"
	[[ $DEBIAN_MIRROR =~ ^(https?|file):// ]] || bad DEBIAN_MIRROR "'$DEBIAN_MIRROR' is not a mirror URL"
	for k in HOME_ROOT DATA_DIR SCRATCH_DIR MOUNT_DIR; do
		[[ ${!k} == /* ]] || bad "$k" "'${!k}' must be an absolute path on the host"
		[[ ${!k} != *[[:space:]:,]* ]] || bad "$k" "'${!k}' must not contain spaces, ':' or ','"
	done
	[[ -d $HOME_ROOT ]] || bad HOME_ROOT "$HOME_ROOT: no such directory on this host (the shared /home must exist, e.g. the NFS mount)"
	STATE_DIR=$(abs "$STATE_DIR")
	USERS_FILE=$(abs "$USERS_FILE")
	if [[ -n $REDIS_PASSWORD_FILE ]]; then
		REDIS_PASSWORD_FILE=$(abs "$REDIS_PASSWORD_FILE")
		[[ -s $REDIS_PASSWORD_FILE ]] || bad REDIS_PASSWORD_FILE "$REDIS_PASSWORD_FILE: no such file, or empty"
		[[ $(head -n 1 "$REDIS_PASSWORD_FILE") =~ ^[A-Za-z0-9_.~+/=-]{16,}$ ]] ||
			bad REDIS_PASSWORD_FILE "the password in $REDIS_PASSWORD_FILE must be one line of 16 or more letters, digits or _.~+/=-"
	fi
	load_users
	if [[ -z $JUPYTER_USER ]]; then
		JUPYTER_USER=${USER_NAMES[0]}
	elif [[ -z ${USER_UIDS[$JUPYTER_USER]:-} ]]; then
		bad JUPYTER_USER "'$JUPYTER_USER' is not in the users list $USERS_FILE"
	fi
	[[ -z $JUPYTER_TOKEN || $JUPYTER_TOKEN =~ ^[A-Za-z0-9_-]{16,}$ ]] ||
		bad JUPYTER_TOKEN "use at least 16 letters, digits, '-' or '_' (or leave it empty for a random one)"
	WORKER_NAMES=()
	local i
	for ((i = 1; i <= WORKERS; i++)); do WORKER_NAMES+=("w$i"); done
	PROJECT=$CLUSTER_NAME
}

# load_users: parse USERS_FILE (name:uid a line) into USER_NAMES / USER_UIDS.
declare -A USER_UIDS=()
USER_NAMES=()
load_users() {
	local f=$USERS_FILE
	if [[ ! -f $f ]]; then
		if [[ $f == "$REPO/users.list" && -f $REPO/users.list.example ]]; then
			cp "$REPO/users.list.example" "$f"
			log "no users list: created $f from users.list.example (edit it and re-run)"
		else
			bad USERS_FILE "$f: no such file"
		fi
	fi
	local n=0 line name uid
	declare -A by_uid=()
	while IFS= read -r line || [[ -n $line ]]; do
		n=$((n + 1))
		line=${line%%#*}
		line=${line//[[:space:]]/}
		[[ -n $line ]] || continue
		[[ $line =~ ^([a-z_][a-z0-9_-]{0,31}):([0-9]+)$ ]] ||
			bad USERS_FILE "$(basename "$f"):$n: '$line' is not name:uid (a lowercase user name and a numeric uid)"
		name=${BASH_REMATCH[1]} uid=${BASH_REMATCH[2]}
		((uid >= 1000 && uid < 60000)) ||
			bad USERS_FILE "$(basename "$f"):$n: uid $uid of $name is outside 1000-59999 (system and service ids are not for users)"
		[[ -z ${USER_UIDS[$name]:-} ]] || bad USERS_FILE "$(basename "$f"):$n: user $name is listed twice"
		[[ -z ${by_uid[$uid]:-} ]] || bad USERS_FILE "$(basename "$f"):$n: uid $uid is used twice (${by_uid[$uid]} and $name)"
		case $name in root | slurm | munge | redis | nobody) bad USERS_FILE "$(basename "$f"):$n: '$name' is a system account" ;; esac
		USER_UIDS[$name]=$uid
		by_uid[$uid]=$name
		USER_NAMES+=("$name")
	done <"$f"
	((${#USER_NAMES[@]})) || bad USERS_FILE "$f lists no user (one name:uid a line)"
	local admin
	for admin in ${DASHBOARD_ADMINS//,/ }; do
		[[ -n ${USER_UIDS[$admin]:-} ]] || bad DASHBOARD_ADMINS "'$admin' is not in $(basename "$f")"
	done
}

check_ports() {
	local k
	for k in JUPYTER_PORT DASHBOARD_PORT REDIS_PORT; do
		if port_in_use "${!k}"; then
			bad "$k" "port ${!k} is already in use on this host (pick another in $CONFIG_NAME)"
		fi
	done
}

# ------------------------------------------------------------------ host

need_host() {
	[[ $(id -u) -eq 0 ]] || die "run it as root (it writes $DATA_DIR and talks to Docker): sudo ./$PROG"
	command -v docker >/dev/null || die "docker is not installed (Debian: apt-get install docker.io docker-compose)"
	docker info >/dev/null 2>&1 || die "cannot reach the Docker Engine (is dockerd running?)"
	if [[ $MODE == compose ]]; then
		command -v docker-compose >/dev/null || die "docker-compose is not installed (Debian: apt-get install docker-compose)"
	fi
	if [[ -d /usr/local/go/bin && ":$PATH:" != *":/usr/local/go/bin:"* ]]; then
		PATH=/usr/local/go/bin:$PATH
	fi
}

compose() {
	docker-compose -p "$PROJECT" -f "$REPO/compose/cluster.yml" -f "$STATE_DIR/compose.workers.yml" "$@"
}

export_compose_env() {
	export FERRY_CLUSTER_NAME=$CLUSTER_NAME FERRY_IMAGE_PREFIX=$IMAGE_PREFIX FERRY_IMAGE_TAG=$IMAGE_TAG \
		FERRY_HOME_ROOT=$HOME_ROOT FERRY_DATA_DIR=$DATA_DIR FERRY_SCRATCH_DIR=$SCRATCH_DIR \
		FERRY_MOUNT_DIR=$MOUNT_DIR FERRY_STATE_DIR=$STATE_DIR FERRY_BIND_ADDR=$BIND_ADDR \
		FERRY_JUPYTER_PORT=$JUPYTER_PORT FERRY_REDIS_PORT=$REDIS_PORT FERRY_JUPYTER_USER=$JUPYTER_USER \
		FERRY_DASHBOARD_PORT=$DASHBOARD_PORT FERRY_ACCOUNTING=$ACCOUNTING FERRY_STUDENT_QOS="$(student_qos)" \
		FERRY_WHEELHOUSE=${WHEELHOUSE_DIR:-$DATA_DIR/wheelhouse}
}

# put FILE CONTENT-FILE: replace FILE's content in place when it differs
# (in place: containers bind the file, and a rename would leave them the
# old inode). Returns 0 when it changed.
put() {
	local dst=$1 src=$2
	if [[ -f $dst ]] && cmp -s "$src" "$dst"; then
		rm -f "$src"
		return 1
	fi
	if [[ -f $dst ]]; then cat "$src" >"$dst"; else mv "$src" "$dst"; fi
	rm -f "$src"
	return 0
}

# secret NAME COMMAND...: STATE_DIR/NAME made once by COMMAND, mode 0400.
secret() {
	local name=$1 f=$STATE_DIR/$1
	shift
	[[ -s $f ]] && return 0
	(
		umask 077
		"$@" >"$f.tmp"
	)
	mv "$f.tmp" "$f"
	chmod 0400 "$f"
	changed "generated $name"
}

random_text() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }

render_slurm_conf() {
	local last=w$WORKERS nodes
	nodes=$([[ $WORKERS == 1 ]] && echo w1 || echo "w[1-$WORKERS]")
	cat <<EOF
# Rendered by build_cluster.sh from $CONFIG_NAME: do not edit here.
ClusterName=$CLUSTER_NAME
SlurmctldHost=head
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# No cgroups inside containers (see SLURM-NOTES): the sandbox container gets
# the job's limits from the ferry agent instead.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$(render_accounting)
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
PropagateResourceLimits=NONE
SlurmdParameters=config_overrides
# Node addresses come from Docker's DNS each time: a recreated worker gets a
# new IP under the same name.
CommunicationParameters=NoAddrCache
ReturnToService=2
# A worker that vanished without restarting is DOWN (and its job NODE_FAIL)
# after this long; one that restarts reports its lost jobs at once (slurmd -b).
SlurmdTimeout=60
# A job whose worker died ends NODE_FAIL rather than silently running again.
JobRequeue=0
SchedulerParameters=batch_sched_delay=0
KillWait=30
MinJobAge=600
MaxArraySize=1001
MaxJobCount=60000
InactiveLimit=0
Epilog=/usr/local/lib/ferry/epilog
JobCompType=jobcomp/script
JobCompLoc=/usr/local/lib/ferry/jobcomp
NodeName=$nodes CPUs=$WORKER_CPUS RealMemory=$WORKER_MEM_MB State=UNKNOWN
PartitionName=main Nodes=$nodes Default=YES MaxTime=INFINITE OverSubscribe=EXCLUSIVE State=UP
EOF
	: "$last"
}

# render_accounting: slurm.conf's accounting and priority lines. With
# ACCOUNTING=1, slurmdbd (on the head) keeps the accounting, fair share
# dominates the priority (usage decays with FAIRSHARE_HALF_LIFE_HOURS, age
# breaks ties; recomputed every minute, Slurm's shortest period) and the
# associations and QOS limits are enforced: a user without an association
# cannot submit. See shared/SLURM-NOTES.md.
render_accounting() {
	if [[ $ACCOUNTING == 0 ]]; then
		cat <<EOF
# ACCOUNTING=0: first come, first served, no slurmdbd.
AccountingStorageType=accounting_storage/none
PriorityType=priority/basic
EOF
		return 0
	fi
	cat <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=head
AccountingStoragePort=6819
AccountingStorageEnforce=associations,limits,qos,safe
PriorityType=priority/multifactor
PriorityDecayHalfLife=$FAIRSHARE_HALF_LIFE_HOURS:00:00
PriorityCalcPeriod=1
PriorityWeightFairshare=100000
PriorityWeightAge=1000
PriorityMaxAge=1-0
PriorityWeightJobSize=0
PriorityWeightPartition=0
PriorityWeightQOS=0
EOF
}

# student_qos: the students' QOS limits as sacctmgr arguments (-1: none).
student_qos() {
	echo "MaxJobsPerUser=${MAX_RUNNING_PER_USER:--1} MaxSubmitJobsPerUser=${MAX_JOBS_PER_USER:--1}"
}

render_ferry_yaml() {
	cat <<EOF
# Rendered by build_cluster.sh from $CONFIG_NAME: do not edit here.
cluster: $CLUSTER_NAME
default_image: $IMAGE_PREFIX/sandbox:$IMAGE_TAG
images: [$IMAGE_PREFIX/sandbox:$IMAGE_TAG]
scratch_dir: $SCRATCH_DIR
agent_socket: /run/ferry/agent.sock
perfmon: $([[ $PERFMON == 1 ]] && echo true || echo false)
redis:
  addr: redis:6379
  password_file: /etc/ferry/redis.pass
dashboard:
  listen: 0.0.0.0:8090
  url: $(dashboard_url)
  admins: [${DASHBOARD_ADMINS//,/, }]
EOF
	render_environments
}

# render_environments: what the workers' agents build environments from
# (requirements.txt, apt:): the Debian mirror (when http), the pip index
# and the wheelhouse (bound at /var/lib/ferry/wheelhouse), when set.
render_environments() {
	[[ $ENVIRONMENTS == 1 ]] || return 0
	printf 'environments:\n  enabled: true\n  state_dir: /var/lib/ferry/env\n'
	[[ $DEBIAN_MIRROR != http* ]] || printf '  debian_mirror: %s\n' "$DEBIAN_MIRROR"
	[[ -z $PIP_INDEX_URL ]] || printf '  pip_index_url: %s\n' "$PIP_INDEX_URL"
	[[ -z $WHEELHOUSE_DIR ]] || printf '  pip_find_links: /var/lib/ferry/wheelhouse\n'
}

# dashboard_url is DASHBOARD_URL, or this host's name and DASHBOARD_PORT.
dashboard_url() {
	if [[ -n $DASHBOARD_URL ]]; then
		echo "${DASHBOARD_URL%/}"
	else
		echo "http://$(hostname -f 2>/dev/null || hostname):$DASHBOARD_PORT"
	fi
}

render_ferry_swarm_yaml() {
	render_ferry_yaml | sed 's|password_file: /etc/ferry/redis.pass|password_file: /run/secrets/redis.pass|'
}

# render_workers TEMPLATE: one service per worker from TEMPLATE's services.
render_workers() {
	local n
	printf '# Rendered by build_cluster.sh from %s: do not edit here.\n' "${1#"$REPO"/}"
	sed -n '/^version:/p' "$1"
	printf 'services:\n'
	for n in "${WORKER_NAMES[@]}"; do
		sed -n '/^services:/,$p' "$1" | tail -n +2 | sed "s/@NODE@/$n/g"
	done
}

prepare_state() {
	install -d -m 0700 "$STATE_DIR"
	secret munge.key head -c 1024 /dev/urandom
	# MariaDB's password for slurmdbd: root's here, slurmdbd.conf's (0600,
	# slurm) in the head container.
	secret slurmdbd.pass random_text 32
	if [[ -n $REDIS_PASSWORD_FILE ]]; then
		head -n 1 "$REDIS_PASSWORD_FILE" | tr -d '\n' >"$STATE_DIR/.rp"
		chmod 0400 "$STATE_DIR/.rp"
		put "$STATE_DIR/redis.pass" "$STATE_DIR/.rp" && changed "Redis password from $REDIS_PASSWORD_FILE"
	else
		secret redis.pass random_text 32
	fi
	if [[ -n $JUPYTER_TOKEN ]]; then
		printf '%s' "$JUPYTER_TOKEN" >"$STATE_DIR/.jt"
		chmod 0400 "$STATE_DIR/.jt"
		put "$STATE_DIR/jupyter.token" "$STATE_DIR/.jt" && changed "Jupyter token from $CONFIG_NAME"
	else
		secret jupyter.token random_text 32
	fi
	local n
	for n in "${USER_NAMES[@]}"; do printf '%s:%s\n' "$n" "${USER_UIDS[$n]}"; done >"$STATE_DIR/.users"
	USERS_CHANGED=0
	put "$STATE_DIR/users.list" "$STATE_DIR/.users" && {
		USERS_CHANGED=1
		changed "users list"
	}
	chmod 0644 "$STATE_DIR/users.list"
	render_slurm_conf >"$STATE_DIR/.slurm.conf"
	SLURM_CONF_CHANGED=0
	put "$STATE_DIR/slurm.conf" "$STATE_DIR/.slurm.conf" && {
		SLURM_CONF_CHANGED=1
		changed "slurm.conf"
	}
	render_ferry_yaml >"$STATE_DIR/.ferry.yaml"
	put "$STATE_DIR/ferry.yaml" "$STATE_DIR/.ferry.yaml" && changed "ferry config"
	chmod 0644 "$STATE_DIR/slurm.conf" "$STATE_DIR/ferry.yaml"
	if [[ $MODE == swarm ]]; then
		render_ferry_swarm_yaml >"$STATE_DIR/.ferry.swarm.yaml"
		put "$STATE_DIR/ferry.swarm.yaml" "$STATE_DIR/.ferry.swarm.yaml" || true
		chmod 0644 "$STATE_DIR/ferry.swarm.yaml"
		render_workers "$REPO/compose/swarm-worker.yml.in" >"$STATE_DIR/.workers.yml"
		put "$STATE_DIR/swarm.workers.yml" "$STATE_DIR/.workers.yml" && changed "workers' stack file"
	else
		render_workers "$REPO/compose/worker.yml.in" >"$STATE_DIR/.workers.yml"
		put "$STATE_DIR/compose.workers.yml" "$STATE_DIR/.workers.yml" && changed "workers' compose file"
	fi
	return 0
}

prepare_host() {
	local d n
	for d in "$DATA_DIR" "$DATA_DIR/redis" "$DATA_DIR/head/slurmctld" "$DATA_DIR/head/log" "$DATA_DIR/head/ferry-log" \
		"$DATA_DIR/head/mariadb" "$DATA_DIR/env" "$DATA_DIR/wheelhouse"; do
		[[ -d $d ]] || {
			install -d -m 0755 "$d"
			changed "created $d"
		}
	done
	for n in "${WORKER_NAMES[@]}"; do
		for d in spool log ferry-log; do
			[[ -d $DATA_DIR/$n/$d ]] || install -d -m 0755 "$DATA_DIR/$n/$d"
		done
	done
	[[ -d $SCRATCH_DIR ]] || changed "created $SCRATCH_DIR"
	install -d -m 1777 "$SCRATCH_DIR"
	# The agents' mount dir must be a shared mount: the bind mounts an agent
	# makes inside its container propagate to the host, where dockerd
	# resolves the sandboxes' mounts.
	install -d -m 0755 "$MOUNT_DIR/mnt"
	if ! awk -v m="$MOUNT_DIR/mnt" '$5 == m && / shared:/ {f = 1} END {exit !f}' /proc/self/mountinfo; then
		if ! awk -v m="$MOUNT_DIR/mnt" '$5 == m {f = 1} END {exit !f}' /proc/self/mountinfo; then
			mount --bind "$MOUNT_DIR/mnt" "$MOUNT_DIR/mnt"
		fi
		mount --make-rshared "$MOUNT_DIR/mnt"
		changed "made $MOUNT_DIR/mnt a shared mount"
	fi
	guard_build_networks
	# Homes on the shared /home, owned by each user, 0700.
	for n in "${USER_NAMES[@]}"; do
		d=$HOME_ROOT/$n
		if [[ ! -d $d ]]; then
			install -d -o "${USER_UIDS[$n]}" -g "${USER_UIDS[$n]}" -m 0700 "$d"
			changed "created home $d"
		elif [[ $(stat -c %u "$d") != "${USER_UIDS[$n]}" ]]; then
			die "$d exists but belongs to uid $(stat -c %u "$d"), not $n (${USER_UIDS[$n]}): fix its owner or the users list"
		fi
	done
}

# guard_build_networks: environment builds run on Docker networks of their
# own with no route out but ferry's egress proxy; Docker still lets them
# reach this host's own addresses, so drop what comes in from those bridges
# (their interfaces are named fegress*, see pkg/env/docker). The rule only
# ever matches ferry's build networks; it stays when the cluster goes.
guard_build_networks() {
	[[ $ENVIRONMENTS == 1 ]] || return 0
	iptables -w -C INPUT -i fegress+ -j DROP 2>/dev/null && return 0
	command -v iptables >/dev/null || die "iptables is missing: environment builds need it to keep off this host's services (or set ENVIRONMENTS=0)"
	iptables -w -I INPUT -i fegress+ -j DROP || die "could not add the host rule for environment builds (iptables -I INPUT -i fegress+ -j DROP)"
	changed "host firewall: environment builds kept off this host's services (iptables INPUT -i fegress+ DROP)"
}

# ------------------------------------------------------------------ images

BASE_IMAGE() { echo "$IMAGE_PREFIX/debian:bookworm"; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

build_binaries() {
	local out=$STATE_DIR/build/bin name
	install -d -m 0755 "$out"
	if [[ ${FERRY_BUILD_IN_CONTAINER:-0} == 1 ]] || ! command -v go >/dev/null; then
		build_binaries_in_container "$out"
	else
		for name in ferry ferryd; do
			(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$out/.$name" "./cmd/$name") ||
				die "go build ./cmd/$name failed"
		done
	fi
	for name in ferry ferryd; do
		if [[ -f $out/$name ]] && cmp -s "$out/.$name" "$out/$name"; then rm -f "$out/.$name"; else mv "$out/.$name" "$out/$name"; fi
	done
}

# build_binaries_in_container OUT: go build in a container of the Go
# builder image (build/gobuild.Dockerfile), for a host with Docker alone.
# The module and build caches stay in STATE_DIR/build/go; the host's trust
# store and GOPROXY settings are handed in, so it reaches the same module
# proxy the host does.
build_binaries_in_container() {
	local out=$1 img=$IMAGE_PREFIX/gobuild:bookworm v
	build_image gobuild "$REPO/build/gobuild.Dockerfile" "$REPO/build" "" --build-arg "DEBIAN_MIRROR=$DEBIAN_MIRROR"
	install -d -m 0700 "$STATE_DIR/build/go"
	local -a args=(--rm --network bridge -v "$REPO:/src:ro" -v "$STATE_DIR/build/go:/root/go" -v "$out:/out" -w /src
		-e GOCACHE=/root/go/cache)
	[[ -d /etc/ssl/certs ]] && args+=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
	for v in GOPROXY GOSUMDB GONOSUMDB GOPRIVATE GONOPROXY GOINSECURE; do
		[[ -z ${!v:-} ]] || args+=(-e "$v=${!v}")
	done
	local why="no Go on this host"
	[[ ${FERRY_BUILD_IN_CONTAINER:-0} != 1 ]] || why="FERRY_BUILD_IN_CONTAINER=1"
	log "building ferry and ferryd in $img ($why)"
	docker run "${args[@]}" "$img" sh -c 'go build -trimpath -o /out/.ferry ./cmd/ferry && go build -trimpath -o /out/.ferryd ./cmd/ferryd' \
		>"$STATE_DIR/build/go.log" 2>&1 || {
		tail -n 20 "$STATE_DIR/build/go.log" >&2
		die "building ferry in $img failed (log: $STATE_DIR/build/go.log)"
	}
}

# build_image NAME DOCKERFILE CONTEXT [--no-cache|""] [BUILD-ARGS...]: build
# IMAGE_PREFIX/NAME:TAG unless an image of that tag was built from the very
# same inputs (the Dockerfile, the context's files, the base image and the
# build args). The Go builder is tagged bookworm.
build_image() {
	local name=$1 dockerfile=$2 ctx=$3 nocache=${4:-} img="$IMAGE_PREFIX/$1:$IMAGE_TAG" inputs have
	shift 4 2>/dev/null || shift $#
	[[ $name != gobuild ]] || img=$IMAGE_PREFIX/gobuild:bookworm
	local -a args=(--build-arg "BASE_IMAGE=$(BASE_IMAGE)" --build-arg "MUNGE_UID=$MUNGE_UID"
		--build-arg "MUNGE_GID=$MUNGE_GID" --build-arg "SLURM_UID=$SLURM_UID" --build-arg "SLURM_GID=$SLURM_GID" "$@")
	inputs=$({
		printf '%s\n' "${args[@]}" "$(image_id "$(BASE_IMAGE)")"
		sha256sum "$dockerfile" | cut -d' ' -f1
		(cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
	} | sha256sum | cut -c1-16)
	have=$(docker image inspect -f '{{index .Config.Labels "ferry.inputs"}}' "$img" 2>/dev/null || true)
	if [[ -z $nocache && $have == "$inputs" ]]; then
		return 0
	fi
	local old
	old=$(image_id "$img")
	[[ -z $old ]] || REPLACED+=("$old")
	log "building $img"
	local t=$SECONDS
	DOCKER_BUILDKIT=0 docker build -q ${nocache:+"$nocache"} "${args[@]}" --label "ferry.inputs=$inputs" \
		--label "ferry.cluster=$CLUSTER_NAME" -f "$dockerfile" -t "$img" "$ctx" >"$STATE_DIR/build/$name.log" 2>&1 || {
		tail -n 30 "$STATE_DIR/build/$name.log" >&2
		die "docker build of $img failed (log: $STATE_DIR/build/$name.log)"
	}
	changed "built $img in $((SECONDS - t))s"
}

REPLACED=()
# remove_replaced: the images a build replaced, once no container uses them.
remove_replaced() {
	local id
	for id in "${REPLACED[@]}"; do
		[[ $(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null) == 0 ]] || continue
		docker rmi "$id" >/dev/null 2>&1 && log "removed the replaced image ${id:7:12}"
	done
	return 0
}

build_images() {
	local nocache=${1:-} before
	before=$(image_id "$(BASE_IMAGE)")/$(image_id "$IMAGE_PREFIX/sandbox:$IMAGE_TAG")
	# The base image (debootstrap, only when missing) and the sandbox image.
	FERRY_BASE_IMAGE=$(BASE_IMAGE) FERRY_SANDBOX_IMAGE=$IMAGE_PREFIX/sandbox:$IMAGE_TAG \
		FERRY_DEBIAN_MIRROR=$DEBIAN_MIRROR bash "$REPO/sandbox/build.sh" >/dev/null 2>"$STATE_DIR/build/sandbox.log" || {
		tail -n 30 "$STATE_DIR/build/sandbox.log" >&2
		die "sandbox/build.sh failed (log: $STATE_DIR/build/sandbox.log)"
	}
	[[ $before == "$(image_id "$(BASE_IMAGE)")/$(image_id "$IMAGE_PREFIX/sandbox:$IMAGE_TAG")" ]] ||
		changed "built $(BASE_IMAGE) and $IMAGE_PREFIX/sandbox:$IMAGE_TAG"
	build_binaries
	local ctx=$STATE_DIR/build/ctx
	rm -rf "$ctx"
	install -d "$ctx/node" "$ctx/user/python"
	cp "$STATE_DIR/build/bin/ferry" "$STATE_DIR/build/bin/ferryd" "$REPO/slurm/entrypoint" \
		"$REPO/slurm/image-setup" "$REPO/slurm/epilog" "$REPO/slurm/jobcomp" "$ctx/node/"
	cp "$STATE_DIR/build/bin/ferry" "$REPO/slurm/entrypoint" "$REPO/slurm/image-setup" "$ctx/user/"
	cp -r "$REPO/python/ferry" "$ctx/user/python/"
	find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
	build_image node "$REPO/slurm/Dockerfile" "$ctx/node" $nocache
	build_image user "$REPO/user/Dockerfile" "$ctx/user" $nocache
}

# ------------------------------------------------------------------ running

# svc_container SERVICE: the running container of a service on this host.
svc_container() {
	if [[ $MODE == swarm ]]; then
		docker ps -q --filter "label=com.docker.swarm.service.name=${PROJECT}_$1" --filter status=running | head -n 1
	else
		echo "${PROJECT}_$1_1"
	fi
}

# in_svc SERVICE CMD...: run CMD in the service's container.
in_svc() {
	local svc=$1 c
	shift
	c=$(svc_container "$svc")
	[[ -n $c ]] || return 1
	docker exec "$c" "$@"
}

# container_ids: this cluster's containers on this host, with their ids.
container_ids() {
	local label=com.docker.compose.project=$PROJECT
	[[ $MODE == compose ]] || label=com.docker.stack.namespace=$PROJECT
	docker ps -a --filter "label=$label" --format '{{.Names}} {{.ID}}' | sort
}

ctld_up() { in_svc head scontrol ping 2>/dev/null | grep -q 'is UP'; }

# workers_idle: every worker is idle (or busy) and none is down or drained.
workers_idle() {
	local out n
	out=$(in_svc head sinfo -h -N -o '%N %t' 2>/dev/null) || return 1
	for n in "${WORKER_NAMES[@]}"; do
		grep -Eq "^$n (idle|alloc|mix|comp)\$" <<<"$out" || return 1
	done
}

wait_for() {
	local timeout=$1 what=$2 deadline=$((SECONDS + $1))
	shift 2
	until "$@"; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 1
	done
}

show_failure() {
	if [[ $MODE == swarm ]]; then
		docker stack ps --no-trunc "$PROJECT" >&2 || true
	else
		compose ps >&2 || true
	fi
	in_svc head sinfo -N -l >&2 2>/dev/null || true
	in_svc head tail -n 20 /var/log/slurm/slurmctld.log >&2 2>/dev/null || true
}

# healthy SERVICE: its container on this host reports healthy.
healthy() {
	local c
	c=$(svc_container "$1")
	[[ -n $c && $(docker inspect -f '{{.State.Health.Status}}' "$c" 2>/dev/null) == healthy ]]
}

wait_cluster() {
	local s c
	for s in redis head user; do
		wait_for 180 "$s" healthy "$s" || {
			c=$(svc_container "$s")
			[[ -z $c ]] || docker logs --tail 20 "$c" >&2 || true
			show_failure
			die "the $s container is not healthy after 180s (its last lines are above)"
		}
	done
	wait_for 120 "slurmctld" ctld_up || {
		show_failure
		die "slurmctld does not answer after 120s (logs: $DATA_DIR/head/log)"
	}
	wait_for 180 "workers" workers_idle || {
		show_failure
		die "not every worker is idle after 180s (logs: $DATA_DIR/wN/log)"
	}
}

# smoke: one ferry job per worker, as an unprivileged user from the user
# node, all at once: workers are exclusive, so Slurm spreads them over every
# idle worker. Each must succeed in its sandbox as the user's uid.
smoke() {
	local u=$JUPYTER_USER home=$HOME_ROOT/$JUPYTER_USER i out id node uid nodes=() tmp
	tmp=$(mktemp -d)
	in_svc user runuser -u "$u" -- sh -c "mkdir -p '$home/.ferry-smoke' && echo smoke >'$home/.ferry-smoke/README'"
	for ((i = 1; i <= WORKERS; i++)); do
		(
			rc=0
			in_svc user runuser -u "$u" -- env HOME="$home" sh -c \
				"cd '$home' && ferry submit --wait -o json --name smoke-$i .ferry-smoke -- sh -c 'sleep 2; id -u >/out/uid'" \
				>"$tmp/$i.out" 2>"$tmp/$i.err" || rc=$?
			echo "$rc" >"$tmp/$i.rc"
		) &
	done
	wait
	for ((i = 1; i <= WORKERS; i++)); do
		id=$(sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' "$tmp/$i.out" | head -n 1)
		if [[ $(cat "$tmp/$i.rc") != 0 || -z $id ]]; then
			cat "$tmp/$i.out" "$tmp/$i.err" >&2
			rm -rf "$tmp"
			die "smoke job $i (ferry submit --wait as $u on the user node) failed"
		fi
		out=$(in_svc user runuser -u "$u" -- env HOME="$home" sh -c "cd '$home' && ferry status -o json '$id'")
		node=$(sed -n 's/.*"node": *"\([^"]*\)".*/\1/p' <<<"$out" | head -n 1)
		uid=$(cat "$home/.ferry/jobs/$id/outputs/uid" 2>/dev/null || true)
		[[ $uid == "${USER_UIDS[$u]}" ]] || {
			rm -rf "$tmp"
			die "smoke job $id ran as uid '${uid}', expected $u's ${USER_UIDS[$u]}"
		}
		nodes+=("$node")
		in_svc user runuser -u "$u" -- env HOME="$home" ferry rm "$id" >/dev/null 2>&1 || true
	done
	rm -rf "$tmp"
	log "smoke jobs succeeded as $u (uid ${USER_UIDS[$u]} in the sandbox) on: ${nodes[*]}"
	for node in "${WORKER_NAMES[@]}"; do
		[[ " ${nodes[*]} " == *" $node "* ]] || warn "no smoke job ran on $node (Slurm placed them on: ${nodes[*]})"
	done
}

summary() {
	local host token elapsed=$((SECONDS - T0))
	host=$(hostname -f 2>/dev/null || hostname)
	token=$(cat "$STATE_DIR/jupyter.token")
	cat <<EOF

ferry cluster '$CLUSTER_NAME' is up ($MODE): head, ${WORKERS} worker(s) (${WORKER_NAMES[*]}), user node, redis.
  Jupyter (as $JUPYTER_USER):  http://$host:$JUPYTER_PORT/?token=$token
  dashboard:              $(dashboard_url)  (each user runs 'ferry login' for a link that logs them in)
  a shell as a user:      docker exec -it -u $JUPYTER_USER -w $HOME_ROOT/$JUPYTER_USER $(svc_container user) bash
  submit a job:           ferry submit --follow ./myproj -- python3 train.py
  Slurm, as the admin:    docker exec $(svc_container head) squeue
EOF
	if ((${#CHANGES[@]})); then
		printf '  took %ds, %d change(s): %s\n' "$elapsed" "${#CHANGES[@]}" "$(
			IFS=';'
			echo "${CHANGES[*]}" | sed 's/;/; /g'
		)"
	else
		printf '  took %ds; nothing changed: the cluster was already up as configured\n' "$elapsed"
	fi
}

cmd_up() {
	need_host
	check_ports
	install -d -m 0700 "$STATE_DIR" "$STATE_DIR/build"
	prepare_state
	prepare_host
	build_images
	export_compose_env
	local before after
	before=$(container_ids)
	if [[ $MODE == swarm ]]; then
		swarm_deploy
	else
		compose up -d --remove-orphans >"$STATE_DIR/build/compose.log" 2>&1 || {
			cat "$STATE_DIR/build/compose.log" >&2
			show_failure
			die "docker-compose up failed"
		}
	fi
	after=$(container_ids)
	if [[ $before != "$after" ]]; then
		changed "started or recreated: $(comm -13 <(echo "$before") <(echo "$after") | cut -d' ' -f1 | tr '\n' ' ' | sed 's/ $//')"
	fi
	wait_cluster
	if ((SLURM_CONF_CHANGED)) && [[ $before == "$after" ]]; then
		in_svc head scontrol reconfigure && log "slurm.conf changed: scontrol reconfigure"
	fi
	if ((USERS_CHANGED)); then
		# Containers that were not recreated read the list when they started:
		# create the new accounts in them now.
		local s
		for s in head user "${WORKER_NAMES[@]}"; do
			in_svc "$s" /usr/local/lib/ferry/entrypoint users || die "creating the users list's accounts in $s failed"
		done
	fi
	[[ ${FERRY_CLUSTER_SMOKE:-1} == 0 ]] || smoke
	remove_replaced
	summary
}

cmd_down() {
	need_host
	export_compose_env
	if [[ $MODE == swarm ]]; then
		swarm_down
		log "cluster '$CLUSTER_NAME' stopped; data kept in $DATA_DIR and $STATE_DIR ('$PROG purge --yes' deletes it)"
		return 0
	fi
	[[ -f $STATE_DIR/compose.workers.yml ]] || {
		log "no cluster state in $STATE_DIR: nothing to stop"
		return 0
	}
	compose down --remove-orphans
	log "cluster '$CLUSTER_NAME' stopped; data kept in $DATA_DIR and $STATE_DIR ('$PROG purge --yes' deletes it)"
}

cmd_status() {
	need_host
	export_compose_env
	if [[ $MODE == swarm ]]; then
		docker stack services "$PROJECT" 2>/dev/null || {
			echo "cluster '$CLUSTER_NAME': no such stack (run ./$PROG)"
			return 1
		}
	else
		[[ -f $STATE_DIR/compose.workers.yml ]] || {
			echo "cluster '$CLUSTER_NAME': not built (run ./$PROG)"
			return 1
		}
		compose ps
	fi
	local rc=0
	if ctld_up; then
		echo
		in_svc head sinfo -N -o '%N %t %c %m %E'
		echo "jobs queued or running: $(in_svc head squeue -h -t PD,R,CG -o %i | wc -l)"
		workers_idle || rc=1
	else
		echo "slurmctld: not answering"
		rc=1
	fi
	return $rc
}

# update: rebuild the node and user images (with fresh Debian packages) and
# restart the cluster one piece at a time. Slurm's state, the spools, Redis's
# data and the homes are host paths and stay; a worker is drained and
# restarted only once its running job is done, so queued jobs still run.
cmd_update() {
	need_host
	export_compose_env
	ctld_up || die "slurmctld does not answer: run ./$PROG up first"
	prepare_state
	prepare_host
	build_images --no-cache
	export_compose_env
	restart_services redis head user
	wait_for 120 slurmctld ctld_up || die "slurmctld does not answer after the update"
	local n
	for n in "${WORKER_NAMES[@]}"; do
		in_svc head scontrol update NodeName="$n" State=DRAIN Reason="ferry update" || true
		log "$n: drained, waiting for its running job to end"
		wait_for "${FERRY_UPDATE_DRAIN_TIMEOUT:-3600}" "$n to drain" \
			sh -c "[ -z \"\$(docker exec ${PROJECT}_head_1 squeue -h -w $n -t R,CG -o %i)\" ]" ||
			warn "$n still runs a job after ${FERRY_UPDATE_DRAIN_TIMEOUT:-3600}s: restarting it anyway"
		restart_services "$n"
		in_svc head scontrol update NodeName="$n" State=RESUME || true
		wait_for 120 "$n" workers_idle || warn "$n is not idle 120s after its restart"
		changed "restarted $n"
	done
	[[ $MODE == compose ]] || swarm_deploy
	wait_cluster
	remove_replaced
	summary
}

# restart_services SERVICE...: recreate them on the current images, nothing
# else (their dependencies are left alone).
restart_services() {
	local s
	if [[ $MODE == swarm ]]; then
		for s in "$@"; do
			docker service update --quiet --detach=false --image "$(swarm_image "$s")" "${PROJECT}_$s" >/dev/null ||
				die "docker service update ${PROJECT}_$s failed"
		done
		return 0
	fi
	compose up -d --no-deps "$@" >"$STATE_DIR/build/compose.log" 2>&1 || {
		cat "$STATE_DIR/build/compose.log" >&2
		die "docker-compose up $* failed"
	}
}

cmd_purge() {
	local keep_images=0 a yes=0
	for a in "$@"; do
		case $a in
		--yes) yes=1 ;;
		--keep-images) keep_images=1 ;;
		*) die "purge: unknown argument $a (--yes, --keep-images)" ;;
		esac
	done
	((yes)) || die "purge deletes $DATA_DIR, $STATE_DIR, $SCRATCH_DIR and the cluster's images: run '$PROG purge --yes' (--keep-images keeps the images)"
	need_host
	export_compose_env
	if [[ $MODE == swarm ]]; then
		swarm_down
	elif [[ -f $STATE_DIR/compose.workers.yml ]]; then
		compose down --remove-orphans || true
	fi
	local imgs
	mapfile -t imgs < <(docker images --filter "label=ferry.cluster=$CLUSTER_NAME" -q | sort -u)
	((keep_images || ${#imgs[@]} == 0)) || docker rmi -f "${imgs[@]}" >/dev/null
	if awk -v m="$MOUNT_DIR/mnt" '$5 == m {f = 1} END {exit !f}' /proc/self/mountinfo; then umount "$MOUNT_DIR/mnt" || true; fi
	rm -rf --one-file-system "${DATA_DIR:?}" "${STATE_DIR:?}" "${SCRATCH_DIR:?}" "${MOUNT_DIR:?}"
	log "purged cluster '$CLUSTER_NAME' (homes under $HOME_ROOT are kept)"
}

# ------------------------------------------------------------------ swarm

# swarm_image SERVICE: the image a service runs, by a tag unique to the
# build (PREFIX/node:id-<12 hex>): swarm rolls a service out only when its
# image reference changes, and looks nothing up (--resolve-image never).
swarm_image() {
	local name=node id
	[[ $1 == user ]] && name=user
	id=$(image_id "$IMAGE_PREFIX/$name:$IMAGE_TAG")
	[[ -n $id ]] || die "no image $IMAGE_PREFIX/$name:$IMAGE_TAG"
	id=${id#sha256:}
	docker tag "$IMAGE_PREFIX/$name:$IMAGE_TAG" "$IMAGE_PREFIX/$name:id-${id:0:12}"
	echo "$IMAGE_PREFIX/$name:id-${id:0:12}"
}

default_addr() {
	ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") {print $(i + 1); exit}}'
}

# swarm_ready: this host manages a swarm (one is made when there is none)
# and carries the labels that place the head's services, and the workers'
# when no host is labelled for them yet.
swarm_ready() {
	local state addr
	state=$(docker info -f '{{.Swarm.LocalNodeState}}')
	case $state in
	inactive)
		addr=${HEAD_ADDR:-$(default_addr)}
		[[ -n $addr ]] || die "HEAD_ADDR is empty and this host has no default route: set HEAD_ADDR in $CONFIG_NAME"
		docker swarm init --advertise-addr "$addr" >/dev/null || die "docker swarm init --advertise-addr $addr failed"
		changed "made a swarm, managed from $addr"
		;;
	active)
		[[ $(docker info -f '{{.Swarm.ControlAvailable}}') == true ]] ||
			die "this host is a swarm worker: run $PROG on a manager"
		;;
	*) die "the swarm is '$state' on this host: fix it first (docker info)" ;;
	esac
	local me
	me=$(docker info -f '{{.Swarm.NodeID}}')
	if [[ $(docker node inspect "$me" -f '{{index .Spec.Labels "ferry.head"}}') != true ]]; then
		docker node update --label-add ferry.head=true "$me" >/dev/null
		changed "labelled this host ferry.head=true"
	fi
	if [[ -z $(docker node ls -q --filter node.label=ferry.worker=true) ]]; then
		docker node update --label-add ferry.worker=true "$me" >/dev/null
		changed "labelled this host ferry.worker=true (no host had the label)"
	fi
}

swarm_env() {
	local k f
	for k in slurm.conf:SLURM_CONF ferry.swarm.yaml:FERRY_YAML users.list:USERS_LIST munge.key:MUNGE_KEY \
		redis.pass:REDIS_PASS jupyter.token:JUPYTER_TOKEN slurmdbd.pass:SLURMDBD_PASS; do
		f=${k%%:*}
		export "FERRY_HASH_${k#*:}=$(sha256sum "$STATE_DIR/$f" | cut -c1-12)"
	done
	FERRY_NODE_IMAGE=$(swarm_image node)
	FERRY_USER_IMAGE=$(swarm_image user)
	export FERRY_NODE_IMAGE FERRY_USER_IMAGE
}

swarm_deploy() {
	swarm_ready
	swarm_env
	local out
	out=$(docker stack deploy --resolve-image never --prune -c "$REPO/compose/swarm.yml" \
		-c "$STATE_DIR/swarm.workers.yml" "$PROJECT" 2>&1) || {
		printf '%s\n' "$out" >&2
		die "docker stack deploy failed"
	}
	printf '%s\n' "$out" >"$STATE_DIR/build/stack.log"
	# stack deploy returns before anything runs: wait until every service
	# has its one task running and no update is rolling.
	wait_for 300 "the stack's services" swarm_converged || {
		show_failure
		die "the stack's services are not all running after 300s"
	}
}

swarm_converged() {
	local svc
	for svc in redis head user "${WORKER_NAMES[@]}"; do
		[[ $(docker service ls --filter "name=${PROJECT}_$svc" --format '{{.Name}} {{.Replicas}}' |
			awk -v n="${PROJECT}_$svc" '$1 == n {print $2}') == 1/1 ]] || return 1
		case $(docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "${PROJECT}_$svc") in
		updating | rollback_started) return 1 ;;
		esac
		# One running container of it here at most (the old one is gone).
		[[ $svc == w* ]] && continue
		(($(docker ps -q --filter "label=com.docker.swarm.service.name=${PROJECT}_$svc" --filter status=running | wc -l) == 1)) || return 1
	done
}

swarm_down() {
	docker stack rm "$PROJECT" >/dev/null 2>&1 || true
	wait_for 120 "the stack's containers to go" sh -c "[ -z \"\$(docker ps -aq --filter label=com.docker.stack.namespace=$PROJECT)\" ]" ||
		warn "containers of stack $PROJECT are still there after 120s"
	# The network goes last, once its containers are gone.
	wait_for 60 "the stack's network to go" sh -c "[ -z \"\$(docker network ls -q --filter label=com.docker.stack.namespace=$PROJECT)\" ]" || true
	local old
	mapfile -t old < <(docker secret ls -q --filter "name=${PROJECT}_" 2>/dev/null; docker config ls -q --filter "name=${PROJECT}_" 2>/dev/null)
	((${#old[@]} == 0)) || docker secret rm "${old[@]}" >/dev/null 2>&1 || true
	((${#old[@]} == 0)) || docker config rm "${old[@]}" >/dev/null 2>&1 || true
}

# ------------------------------------------------------------------ main

CONFIG=${FERRY_CLUSTER_CONFIG:-$REPO/config.sh}
VERB=up
ARGS=()
while (($#)); do
	case $1 in
	--config)
		[[ $# -ge 2 ]] || usage
		CONFIG=$2
		shift 2
		;;
	--config=*)
		CONFIG=${1#--config=}
		shift
		;;
	-h | --help | help) usage ;;
	up | down | update | status | purge | prepare-host)
		VERB=$1
		shift
		ARGS=("$@")
		break
		;;
	*)
		printf '%s: unknown argument %q (try --help)\n' "$PROG" "$1" >&2
		exit 2
		;;
	esac
done
load_config
case $VERB in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
update) cmd_update ;;
purge) cmd_purge "${ARGS[@]}" ;;
prepare-host)
	need_host
	prepare_host
	log "host paths ready: $DATA_DIR, $SCRATCH_DIR, $MOUNT_DIR/mnt (shared), homes under $HOME_ROOT"
	;;
esac
