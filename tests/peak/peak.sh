#!/usr/bin/env bash
# A second, private Slurm for the deadline-peak benchmark (tests/peak): its
# own slurmctld (ClusterName=peak, port 6917) and twelve slurmd (p1..p12 on
# 127.0.0.1:17101..17112, one CPU each: one job per worker), with its state,
# spools, logs and pid files under /var/tmp/ferry-peak. It shares the host's
# munged and the harness's slurmdbd (tests/cluster.sh must be up), and
# leaves the harness's own slurmctld, slurmd, slurmdbd and their configs
# alone.
#
#   sudo tests/peak/peak.sh users        create the 100 users ferry-peak001..100
#                                        (uids 3001..3100, no home), idempotently
#   sudo tests/peak/peak.sh up fifo|fair start the instance from an empty state
#                                        (restarting it if it runs) with that
#                                        priority configuration
#   sudo tests/peak/peak.sh down         cancel its jobs, stop what `up` started
#   sudo tests/peak/peak.sh conf         print the path of the instance's slurm.conf
#
# fair: the priority and accounting lines of slurm/slurm.conf.in, verbatim
# (multifactor, fair share, the harness's slurmdbd and enforcement), and the
# users in the harness's "student" QOS. fifo: PriorityType=priority/basic,
# with accounting, associations and the QOS exactly as in fair, so that the
# priority plugin is the only difference.
set -euo pipefail
FERRY_LOG_TAG=peak
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

PEAK_DIR=${FERRY_PEAK_DIR:-/var/tmp/ferry-peak}
PEAK_CLUSTER=peak
PEAK_PORT=6917
PEAK_NODES=12
PEAK_NODE_PORT0=17100 # pN listens on PEAK_NODE_PORT0+N
PEAK_ACCOUNT=ferry-peak
PEAK_USERS=100
PEAK_UID0=3000 # ferry-peakNNN has uid PEAK_UID0+NNN
PEAK_QOS=student
CONF=$PEAK_DIR/slurm.conf
CTLD_PID=$PEAK_DIR/run/slurmctld.pid
export SLURM_CONF=$CONF

usage() {
	sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

user_name() { printf 'ferry-peak%03d' "$1"; }

nodes() {
	local i
	for ((i = 1; i <= PEAK_NODES; i++)); do printf 'p%d\n' "$i"; done
}

ctld_ok() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
dbd_ok() { sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1; }
registered() { [[ -n $(sacctmgr -n -P show cluster "$PEAK_CLUSTER" format=cluster 2>/dev/null) ]]; }

# ---------------------------------------------------------------- users

ensure_user() {
	local name=$1 id=$2 cur
	if cur=$(getent passwd "$name"); then
		[[ $(cut -d: -f3 <<<"$cur") == "$id" ]] ||
			die "user $name exists with uid $(cut -d: -f3 <<<"$cur"), expected $id: remove it first"
		return 0
	fi
	if getent passwd "$id" >/dev/null; then
		die "uid $id is taken by user $(getent passwd "$id" | cut -d: -f1)"
	fi
	if getent group "$name" >/dev/null; then
		[[ $(getent group "$name" | cut -d: -f3) == "$id" ]] ||
			die "group $name exists with another gid than $id: remove it first"
	else
		getent group "$id" >/dev/null && die "gid $id is taken by group $(getent group "$id" | cut -d: -f1)"
		groupadd -g "$id" "$name"
	fi
	useradd -M -d /nonexistent -u "$id" -g "$id" -s /usr/sbin/nologin -c "ferry peak benchmark user" "$name"
}

cmd_users() {
	need_root
	local i n=0
	for ((i = 1; i <= PEAK_USERS; i++)); do
		getent passwd "$(user_name "$i")" >/dev/null || n=$((n + 1))
		ensure_user "$(user_name "$i")" $((PEAK_UID0 + i))
	done
	log "users ready: $(user_name 1)..$(user_name "$PEAK_USERS") (uids $((PEAK_UID0 + 1))..$((PEAK_UID0 + PEAK_USERS)), $n created now)"
}

# ---------------------------------------------------------------- up

# write_conf fifo|fair
write_conf() {
	local kind=$1 host tmp prio
	host=$(hostname -s)
	local tmpl=$FERRY_REPO/slurm/slurm.conf.in
	[[ -r $tmpl ]] || die "cannot read $tmpl"
	case $kind in
	fair) prio=$(grep -E '^Priority' "$tmpl") ;;
	fifo) prio=PriorityType=priority/basic ;;
	*) die "unknown configuration '$kind' (fifo or fair)" ;;
	esac
	grep -q '^PriorityType=priority/multifactor' <<<"$(grep -E '^Priority' "$tmpl")" ||
		warn "slurm/slurm.conf.in does not use priority/multifactor any more: fair is what it says"
	tmp=$(mktemp "$PEAK_DIR/.slurm.conf.XXXXXX")
	{
		cat <<EOF
# Written by tests/peak/peak.sh ($kind): the deadline-peak benchmark's own
# Slurm. Not the harness's (/etc/slurm/slurm.conf).
ClusterName=$PEAK_CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PEAK_PORT
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$PEAK_DIR/state
SlurmdSpoolDir=$PEAK_DIR/spool/%n
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$PEAK_DIR/run/slurmd-%n.pid
SlurmctldLogFile=$PEAK_DIR/log/slurmctld.log
SlurmdLogFile=$PEAK_DIR/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
PropagateResourceLimits=NONE
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerParameters=batch_sched_delay=0
KillWait=10
MinJobAge=3600
MaxJobCount=20000
InactiveLimit=0
Waittime=0
# Accounting as in slurm/slurm.conf.in (the harness's slurmdbd).
EOF
		grep -E '^AccountingStorage' "$tmpl"
		echo "# Priority: $kind."
		printf '%s\n' "$prio"
		local i
		for ((i = 1; i <= PEAK_NODES; i++)); do
			echo "NodeName=p$i NodeHostname=$host NodeAddr=127.0.0.1 Port=$((PEAK_NODE_PORT0 + i)) CPUs=1 RealMemory=500 State=UNKNOWN"
		done
		echo "PartitionName=peak Nodes=p[1-$PEAK_NODES] Default=YES MaxTime=INFINITE State=UP"
	} >"$tmp"
	chmod 0644 "$tmp"
	mv "$tmp" "$CONF"
}

ensure_accounts() {
	[[ -n $(sacctmgr -n -P show qos "$PEAK_QOS" format=name 2>/dev/null) ]] ||
		die "the harness's QOS '$PEAK_QOS' does not exist: bring the harness up (sudo tests/cluster.sh up)"
	if [[ -z $(sacctmgr -n -P show assoc cluster="$PEAK_CLUSTER" account="$PEAK_ACCOUNT" format=account 2>/dev/null) ]]; then
		sacctmgr -i add account "$PEAK_ACCOUNT" cluster="$PEAK_CLUSTER" Description="ferry deadline-peak benchmark" \
			Organization=ferry >/dev/null || die "sacctmgr add account $PEAK_ACCOUNT cluster=$PEAK_CLUSTER failed"
	fi
	local have i u missing=()
	have=$(sacctmgr -n -P show assoc cluster="$PEAK_CLUSTER" account="$PEAK_ACCOUNT" format=user 2>/dev/null)
	for ((i = 1; i <= PEAK_USERS; i++)); do
		u=$(user_name "$i")
		grep -qx "$u" <<<"$have" || missing+=("$u")
	done
	if ((${#missing[@]})); then
		local IFS=,
		sacctmgr -i add user "${missing[*]}" account="$PEAK_ACCOUNT" cluster="$PEAK_CLUSTER" \
			qos=normal,"$PEAK_QOS" defaultqos="$PEAK_QOS" >/dev/null || die "sacctmgr add user (${#missing[@]} users) failed"
		log "accounting: added ${#missing[@]} users to account $PEAK_ACCOUNT on cluster $PEAK_CLUSTER (qos $PEAK_QOS)"
	fi
}

# assocs_loaded: slurmctld holds every user's association (pushed by slurmdbd).
assocs_loaded() {
	local n
	n=$(scontrol -o show assoc_mgr flags=assoc accounts="$PEAK_ACCOUNT" 2>/dev/null | grep -c 'UserName=ferry-peak' || true)
	((n >= PEAK_USERS))
}

nodes_idle() {
	local n
	n=$(sinfo -h -N -p peak -o '%N %t' 2>/dev/null | awk '$2 == "idle"' | wc -l)
	((n == PEAK_NODES))
}

start_slurmd() {
	local n=$1 pidf=$PEAK_DIR/run/slurmd-$1.pid
	install -d -m 0755 "$PEAK_DIR/spool/$n"
	slurmd -f "$CONF" -b -N "$n" </dev/null >>"$PEAK_DIR/log/slurmd-$n.out" 2>&1 || {
		tail -n 20 "$PEAK_DIR/log/slurmd-$n.out" "$PEAK_DIR/log/slurmd-$n.log" >&2 || true
		die "slurmd $n does not start"
	}
	wait_until 10 "slurmd $n pid file" pid_alive "$pidf" slurmd || {
		tail -n 20 "$PEAK_DIR/log/slurmd-$n.log" >&2 || true
		die "slurmd $n died at start"
	}
}

cmd_up() {
	need_root
	local kind=${1:-}
	[[ $kind == fifo || $kind == fair ]] || usage
	munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || die "munged does not answer: bring the harness up (sudo tests/cluster.sh up)"
	cmd_down
	install -d -m 0755 "$PEAK_DIR" "$PEAK_DIR/run" "$PEAK_DIR/spool"
	install -d -o slurm -g slurm -m 0755 "$PEAK_DIR/log"
	# An empty state: no jobs, no usage (fair share starts from zero).
	rm -rf "$PEAK_DIR/state"
	install -d -o slurm -g slurm -m 0700 "$PEAK_DIR/state"
	write_conf "$kind"
	# sacctmgr finds slurmdbd through $CONF (the harness's AccountingStorage lines).
	dbd_ok || die "the harness's slurmdbd does not answer: bring the harness up (sudo tests/cluster.sh up)"
	log "starting slurmctld ($kind, cluster $PEAK_CLUSTER, 127.0.0.1:$PEAK_PORT)"
	slurmctld -f "$CONF" -i </dev/null >>"$PEAK_DIR/log/slurmctld.out" 2>&1 || {
		tail -n 20 "$PEAK_DIR/log/slurmctld.out" "$PEAK_DIR/log/slurmctld.log" >&2 || true
		die "slurmctld does not start"
	}
	wait_until 30 "slurmctld to answer" ctld_ok || {
		tail -n 30 "$PEAK_DIR/log/slurmctld.log" >&2 || true
		die "slurmctld ($PEAK_CLUSTER) does not answer"
	}
	wait_until 30 "cluster $PEAK_CLUSTER to register with slurmdbd" registered ||
		die "cluster $PEAK_CLUSTER did not register with slurmdbd"
	ensure_accounts
	wait_until 60 "slurmctld to load the $PEAK_USERS associations" assocs_loaded || {
		scontrol show assoc_mgr flags=assoc accounts="$PEAK_ACCOUNT" | head -n 20 >&2 || true
		die "slurmctld ($PEAK_CLUSTER) does not know the users' associations"
	}
	local n
	while read -r n; do start_slurmd "$n"; done < <(nodes)
	wait_until 60 "$PEAK_NODES idle nodes" nodes_idle || {
		sinfo -N -p peak >&2 || true
		die "the nodes of $PEAK_CLUSTER are not idle after 60 s"
	}
	log "up: $kind, $(scontrol show config | awk '$1 == "PriorityType" {print $3}'), $PEAK_NODES nodes idle ($CONF)"
}

# ---------------------------------------------------------------- down

# our_stepds: slurmstepd processes of this instance's jobs (they hold one of
# its slurmd log files open); never the harness's.
our_stepds() {
	local p f
	for p in $(pgrep -x slurmstepd || true); do
		for f in /proc/"$p"/fd/*; do
			if [[ $(readlink "$f" 2>/dev/null) == "$PEAK_DIR"/* ]]; then
				echo "$p"
				break
			fi
		done
	done
}

no_running_jobs() { [[ -z $(squeue -h -t PD,R,CG,CF,S -o %i 2>/dev/null) ]]; }

cmd_down() {
	need_root
	if [[ -f $CONF ]] && pid_alive "$CTLD_PID" slurmctld && ctld_ok; then
		if ! no_running_jobs; then
			log "cancelling the jobs of cluster $PEAK_CLUSTER"
			scancel --full --partition=peak 2>/dev/null || true
			wait_until 30 "the jobs to end" no_running_jobs || true
		fi
	fi
	local n nd=0 nc=0
	while read -r n; do
		if pid_alive "$PEAK_DIR/run/slurmd-$n.pid" slurmd; then
			stop_pidfile "slurmd $n" "$PEAK_DIR/run/slurmd-$n.pid" slurmd 20 2>/dev/null
			nd=$((nd + 1))
		fi
	done < <(nodes)
	if pid_alive "$CTLD_PID" slurmctld; then
		stop_pidfile "slurmctld ($PEAK_CLUSTER)" "$CTLD_PID" slurmctld 30 2>/dev/null
		nc=1
	fi
	local left
	mapfile -t left < <(our_stepds)
	if ((${#left[@]})); then
		warn "killing this instance's leftover slurmstepd: ${left[*]}"
		kill -KILL "${left[@]}" 2>/dev/null || true
	fi
	((nd + nc == 0)) || log "down: stopped $nc slurmctld and $nd slurmd of cluster $PEAK_CLUSTER"
}

case ${1:-} in
users) cmd_users ;;
up) cmd_up "${2:-}" ;;
down) cmd_down ;;
conf) echo "$CONF" ;;
*) usage ;;
esac
