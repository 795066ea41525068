#!/usr/bin/env bash
# A real local Slurm cluster on this host for ferry's end-to-end tests:
# munged, slurmctld, two slurmd (w1 on port 17001, w2 on 17002), Redis on
# 127.0.0.1:6390, the ferry and ferryd binaries, one `ferryd agent` per worker, `ferryd
# tracker`, `ferryd dashboard` on 127.0.0.1:8790, the sandbox images and the
# test users ferry-alice / ferry-bob (students) and ferry-carol (a TA: a
# dashboard admin).
#
#   sudo tests/cluster.sh up       bring everything up (idempotent), run a smoke job
#   sudo tests/cluster.sh down     stop what `up` started, nothing else
#   sudo tests/cluster.sh status   show what runs; exit 0 if Slurm and Redis are up
#   sudo tests/cluster.sh stop|start slurmctld|slurmdbd|mariadb|redis|tracker|dashboard
#                                  stop or start one daemon as `up` does (for
#                                  tests of outages; `down` still stops it)
#
# Daemons that were already running are left alone; /run/ferry-test/started
# lists the ones this script started, and `down` stops exactly those.
# Env: FERRY_SKIP_IMAGES=1 skips sandbox/build.sh, FERRY_SKIP_SMOKE=1 the smoke job.
set -euo pipefail
FERRY_LOG_TAG=cluster
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODES=(w1 w2)
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd slurm-wlm-mysql-plugin mariadb-server
	redis-server redis-tools debootstrap curl)
SLURM_CONF=/etc/slurm/slurm.conf
CTLD_PID=/run/slurm/slurmctld.pid
# Slurm's accounting: slurmdbd on MariaDB (its own datadir, socket and
# port, so a MariaDB the host runs is left alone).
MARIADB_DIR=/var/lib/ferry-mariadb
MARIADB_RUN=/run/ferry-mariadb
MARIADB_PID=$MARIADB_RUN/mariadbd.pid
MARIADB_SOCK=$MARIADB_RUN/mariadbd.sock
MARIADB_PORT=3307
DBD_CONF=/etc/slurm/slurmdbd.conf
DBD_PID=/run/slurm/slurmdbd.pid
# The students' QOS: per-user limits on running and submitted jobs (the
# submit limit is high here: the benchmarks submit 10,000-task sweeps).
STUDENT_QOS_LIMITS=(MaxJobsPerUser=2 MaxSubmitJobsPerUser=20000)
TEST_USERS=(ferry-alice ferry-bob ferry-carol)
REDIS_PORT=6390
REDIS_PASS=/etc/ferry/redis.pass
REDIS_DIR=/var/lib/ferry-redis
REDIS_PID=/run/ferry-redis/redis.pid
FERRY_BIN=/usr/local/bin/ferry
FERRYD_BIN=/usr/local/bin/ferryd
FERRY_CONFIG=/etc/ferry/config.yaml
HOOK_DIR=/usr/local/lib/ferry
TRACKER_PID=/run/ferry/tracker.pid
TRACKER_LOG=/var/log/ferry/tracker.log
DASHBOARD_PID=/run/ferry/dashboard.pid
DASHBOARD_LOG=/var/log/ferry/dashboard.log
DASHBOARD_ADDR=127.0.0.1:8790
SMOKE_TIMEOUT=60

usage() {
	sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# ---------------------------------------------------------------- helpers

tail_logs() {
	local f
	for f in "$@"; do
		[[ -f $f ]] || continue
		printf -- '--- last lines of %s\n' "$f" >&2
		tail -n 25 "$f" >&2 || true
	done
}

slurm_logs() {
	tail_logs /var/log/slurm/slurmctld.log /var/log/slurm/slurmd-w1.log /var/log/slurm/slurmd-w2.log
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
ctld_ok() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
mariadb_ok() { mariadb-admin --socket="$MARIADB_SOCK" ping >/dev/null 2>&1; }
dbd_ok() { sacctmgr -n -P show cluster >/dev/null 2>&1; }
# cluster_registered: slurmctld has registered ClusterName with slurmdbd.
cluster_registered() { [[ -n $(sacctmgr -n -P show cluster ferry format=cluster 2>/dev/null) ]]; }

redis_ping() {
	[[ -r $REDIS_PASS ]] || return 1
	REDISCLI_AUTH=$(cat "$REDIS_PASS") redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null
}
redis_ok() { [[ $(redis_ping) == PONG ]]; }

# Nodes answer (any state without '*', drain or down).
nodes_ready() {
	# sinfo -N prints a node once per partition: count each node once.
	local n st
	local -A ok=()
	while read -r n st; do
		case $st in
		idle | mix | alloc | comp) ok[$n]=1 ;;
		esac
	done < <(sinfo -h -N -n "$(
		IFS=,
		echo "${NODES[*]}"
	)" -o '%N %t' 2>/dev/null)
	((${#ok[@]} == ${#NODES[@]}))
}

tracker_supported() {
	[[ -x $FERRYD_BIN ]]
}

agent_supported() {
	[[ -x $FERRYD_BIN ]]
}

# ---------------------------------------------------------------- up

setup_dirs() {
	install -d -m 0755 /etc/ferry /run/ferry "$HOOK_DIR" /var/log/ferry /run/slurm
	install -d -m 1777 /var/tmp/ferry
	install -d -o slurm -g slurm -m 0755 /var/log/slurm /var/spool/slurmctld
	local n
	for n in "${NODES[@]}"; do install -d -m 0755 "/var/spool/slurmd/$n"; done
	# The jobcomp hook runs on the controller as SlurmUser.
	local f
	for f in jobcomp.log jobcomp-env.log; do
		touch "/var/log/ferry/$f"
		chown slurm:slurm "/var/log/ferry/$f"
		chmod 0640 "/var/log/ferry/$f"
	done
	mkdir -p "$FERRY_STATE_DIR"
}

start_munge() {
	local key=/etc/munge/munge.key
	install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
	install -d -o munge -g munge -m 0755 /run/munge
	if [[ ! -s $key ]]; then
		log "creating $key"
		if command -v mungekey >/dev/null; then
			mungekey --create --keyfile="$key"
		else
			dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
		fi
		chmod 0400 "$key"
	fi
	# munged refuses a key it does not own or that others can read.
	chown munge:munge "$key"
	[[ $(($(stat -c '0%a' "$key") & 077)) -eq 0 ]] || chmod 0400 "$key"
	if munge_ok; then
		log "munged already running"
		return 0
	fi
	log "starting munged"
	if ! runuser -u munge -- /usr/sbin/munged </dev/null >>/var/log/ferry/munged.out 2>&1; then
		warn "munged refused to start; retrying with --force (stale socket?)"
		runuser -u munge -- /usr/sbin/munged --force </dev/null >>/var/log/ferry/munged.out 2>&1 ||
			{
				tail_logs /var/log/ferry/munged.out /var/log/munge/munged.log
				die "munged does not start"
			}
	fi
	wait_until 10 "munge -n | unmunge" munge_ok || {
		tail_logs /var/log/munge/munged.log
		die "munge does not work"
	}
	state_add munged /run/munge/munged.pid munged
}

CONF_CHANGED=0
# MariaDB for slurmdbd, run directly (no systemd), on 127.0.0.1:3307 with
# its own datadir. The data survives restarts.
start_mariadb() {
	install -d -o mysql -g mysql -m 0700 "$MARIADB_DIR"
	install -d -o mysql -g mysql -m 0755 "$MARIADB_RUN"
	touch /var/log/ferry/mariadb.log
	chown mysql:mysql /var/log/ferry/mariadb.log
	if pid_alive "$MARIADB_PID" mariadbd && mariadb_ok; then
		log "mariadb already running"
		return 0
	fi
	if [[ ! -d $MARIADB_DIR/mysql ]]; then
		log "initialising $MARIADB_DIR"
		mariadb-install-db --user=mysql --datadir="$MARIADB_DIR" --auth-root-authentication-method=socket \
			--skip-test-db >>/var/log/ferry/mariadb.log 2>&1 || {
			tail_logs /var/log/ferry/mariadb.log
			die "mariadb-install-db failed"
		}
	fi
	log "starting mariadbd on 127.0.0.1:$MARIADB_PORT"
	setsid nohup mariadbd --no-defaults --user=mysql --datadir="$MARIADB_DIR" --bind-address=127.0.0.1 \
		--port="$MARIADB_PORT" --socket="$MARIADB_SOCK" --pid-file="$MARIADB_PID" \
		--log-error=/var/log/ferry/mariadb.log --skip-name-resolve \
		--innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
	wait_until 60 "mariadb to answer" mariadb_ok || {
		tail_logs /var/log/ferry/mariadb.log
		die "mariadb does not answer"
	}
	wait_until 10 "mariadb pid file" pid_alive "$MARIADB_PID" mariadbd || true
	state_add mariadb "$MARIADB_PID" mariadbd
}

# write_dbd_conf writes slurmdbd.conf once, with a random database
# password: the file is SlurmUser's alone (0600), as slurmdbd requires, and
# the password is in no other file and on no command line. The database
# user gets that password each time (it may be a new datadir).
write_dbd_conf() {
	if [[ ! -s $DBD_CONF ]] || ! grep -q '^# written by tests/cluster.sh' "$DBD_CONF"; then
		local pw tmp
		pw=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)
		tmp=$(mktemp /etc/slurm/.slurmdbd.conf.XXXXXX)
		cat >"$tmp" <<EOF
# written by tests/cluster.sh: slurmdbd for the local test cluster
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=$DBD_PID
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MARIADB_PORT
StorageUser=slurm
StoragePass=$pw
StorageLoc=slurm_acct_db
EOF
		chown slurm:slurm "$tmp"
		chmod 0600 "$tmp"
		mv "$tmp" "$DBD_CONF"
		log "wrote $DBD_CONF (0600, slurm)"
	fi
	mariadb --socket="$MARIADB_SOCK" -u root <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$(sed -n 's/^StoragePass=//p' "$DBD_CONF")';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
}

start_slurmdbd() {
	if pid_alive "$DBD_PID" slurmdbd && dbd_ok; then
		log "slurmdbd already running"
		return 0
	fi
	log "starting slurmdbd"
	slurmdbd </dev/null >>/var/log/slurm/slurmdbd.out 2>&1 || {
		tail_logs /var/log/slurm/slurmdbd.out /var/log/slurm/slurmdbd.log
		die "slurmdbd does not start"
	}
	wait_until 10 "slurmdbd pid file" pid_alive "$DBD_PID" slurmdbd || true
	state_add slurmdbd "$DBD_PID" slurmdbd
	wait_until 60 "slurmdbd to answer (sacctmgr)" dbd_ok || {
		tail_logs /var/log/slurm/slurmdbd.log
		die "slurmdbd does not answer"
	}
}

# setup_accounts gives the test users their associations (account
# "course", the "student" QOS with per-user limits), idempotently. With
# AccountingStorageEnforce=associations Slurm refuses a user without one.
setup_accounts() {
	wait_until 30 "slurmctld to register the cluster with slurmdbd" cluster_registered ||
		die "the cluster is not registered in slurmdbd"
	if [[ -z $(sacctmgr -n -P show qos student format=name) ]]; then
		sacctmgr -i add qos student "${STUDENT_QOS_LIMITS[@]}" >/dev/null || die "sacctmgr add qos student failed"
	else
		sacctmgr -i modify qos student set "${STUDENT_QOS_LIMITS[@]}" >/dev/null || true
	fi
	if [[ -z $(sacctmgr -n -P show account course format=account) ]]; then
		sacctmgr -i add account course Description="ferry test course" Organization=ferry >/dev/null ||
			die "sacctmgr add account course failed"
	fi
	local u missing=()
	for u in "${TEST_USERS[@]}"; do
		[[ -n $(sacctmgr -n -P show assoc user="$u" account=course format=user) ]] || missing+=("$u")
	done
	if ((${#missing[@]})); then
		local IFS=,
		sacctmgr -i add user "${missing[*]}" account=course qos=normal,student defaultqos=student >/dev/null ||
			die "sacctmgr add user ${missing[*]} failed"
		log "accounting: added ${missing[*]} to account course (qos student: ${STUDENT_QOS_LIMITS[*]})"
	fi
}

write_slurm_conf() {
	local tmp host
	host=$(hostname -s)
	tmp=$(mktemp /etc/slurm/.slurm.conf.XXXXXX)
	sed "s/@HOSTNAME@/$host/g" "$FERRY_REPO/slurm/slurm.conf.in" >"$tmp"
	chmod 0644 "$tmp"
	if [[ -f $SLURM_CONF ]] && cmp -s "$tmp" "$SLURM_CONF"; then
		rm -f "$tmp"
		return 0
	fi
	if [[ -f $SLURM_CONF ]] && ! grep -q 'Generated from slurm/slurm.conf.in' "$SLURM_CONF" &&
		[[ ! -e $SLURM_CONF.orig-ferry ]]; then
		cp -p "$SLURM_CONF" "$SLURM_CONF.orig-ferry"
		warn "kept the previous $SLURM_CONF as $SLURM_CONF.orig-ferry"
	fi
	mv "$tmp" "$SLURM_CONF"
	CONF_CHANGED=1
	log "wrote $SLURM_CONF (SlurmctldHost=$host)"
}

install_hooks() {
	install -m 0755 "$FERRY_REPO/slurm/epilog" "$HOOK_DIR/epilog"
	install -m 0755 "$FERRY_REPO/slurm/jobcomp" "$HOOK_DIR/jobcomp"
}

start_slurmctld() {
	if pid_alive "$CTLD_PID" slurmctld; then
		if ((CONF_CHANGED)); then
			# Plugins (accounting, priority) change only with a restart;
			# the saved state keeps the jobs.
			log "slurmctld runs: restarting it for the new slurm.conf"
			stop_pidfile slurmctld "$CTLD_PID" slurmctld 30
			RECONFIGURE_NODES=1
		else
			log "slurmctld already running"
			return 0
		fi
	fi
	# FERRY_SLURM_CLEAN=1 (tests/run.sh, when it brings the cluster up):
	# start from no jobs, as the spools it empties hold none either.
	local -a clean=()
	if [[ ${FERRY_SLURM_CLEAN:-0} == 1 ]]; then
		clean=(-c)
		log "starting slurmctld with a clean state (-c)"
	else
		log "starting slurmctld"
	fi
	slurmctld -i "${clean[@]}" </dev/null >>/var/log/slurm/slurmctld.out 2>&1 || {
		tail_logs /var/log/slurm/slurmctld.out /var/log/slurm/slurmctld.log
		die "slurmctld does not start"
	}
	state_add slurmctld "$CTLD_PID" slurmctld
	wait_until 30 "slurmctld to answer (scontrol ping)" ctld_ok || {
		tail_logs /var/log/slurm/slurmctld.log
		die "slurmctld does not answer"
	}
	if ((${RECONFIGURE_NODES:-0})); then
		scontrol reconfigure || warn "scontrol reconfigure failed" # the running slurmd read the new file
	fi
}

start_slurmd() {
	local n=$1 pidf=/run/slurm/slurmd-$1.pid
	if pid_alive "$pidf" slurmd; then
		log "slurmd $n already running"
		return 0
	fi
	log "starting slurmd $n"
	slurmd -b -N "$n" </dev/null >>"/var/log/slurm/slurmd-$n.out" 2>&1 || {
		tail_logs "/var/log/slurm/slurmd-$n.out" "/var/log/slurm/slurmd-$n.log"
		die "slurmd $n does not start"
	}
	wait_until 10 "slurmd $n pid file" pid_alive "$pidf" slurmd || {
		tail_logs "/var/log/slurm/slurmd-$n.log"
		die "slurmd $n died at start"
	}
	state_add "slurmd-$n" "$pidf" slurmd
}

wait_nodes() {
	local deadline=$((SECONDS + 60)) nodes
	nodes=$(
		IFS=,
		echo "${NODES[*]}"
	)
	while ! nodes_ready; do
		if ((SECONDS >= deadline)); then
			sinfo -N -l >&2 || true
			slurm_logs
			die "nodes $nodes are not idle after 60s"
		fi
		# Nodes that come up down or drained (e.g. after an unclean stop).
		if sinfo -h -N -n "$nodes" -o '%t' 2>/dev/null | grep -Eq '^(down|drain|drng|fail)$'; then
			log "resuming $nodes"
			scontrol update NodeName="$nodes" State=RESUME 2>/dev/null || true
		fi
		sleep 1
	done
	log "nodes ready: $(sinfo -h -N -n "$nodes" -o '%N=%t' | tr '\n' ' ')"
}

start_redis() {
	if [[ ! -s $REDIS_PASS ]]; then
		log "generating $REDIS_PASS"
		(
			umask 077
			head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$REDIS_PASS"
		)
	fi
	chown root:root "$REDIS_PASS"
	chmod 0640 "$REDIS_PASS"
	install -d -o redis -g redis -m 0700 "$REDIS_DIR"
	install -d -o redis -g redis -m 0755 /run/ferry-redis
	touch /var/log/ferry/redis.log
	chown redis:redis /var/log/ferry/redis.log
	if pid_alive "$REDIS_PID" redis-server && redis_ok; then
		log "redis already running on 127.0.0.1:$REDIS_PORT"
		return 0
	fi
	# The password goes in a config file only redis can read, never on argv.
	(
		umask 077
		cat >"$REDIS_DIR/redis.conf" <<EOF
# written by tests/cluster.sh
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
requirepass $(cat "$REDIS_PASS")
dir $REDIS_DIR
daemonize yes
pidfile $REDIS_PID
logfile /var/log/ferry/redis.log
appendonly no
save 60 1000
EOF
	)
	chown redis:redis "$REDIS_DIR/redis.conf"
	log "starting redis on 127.0.0.1:$REDIS_PORT"
	runuser -u redis -- redis-server "$REDIS_DIR/redis.conf" </dev/null >>/var/log/ferry/redis.log 2>&1 || {
		tail_logs /var/log/ferry/redis.log
		die "redis-server does not start"
	}
	wait_until 10 "redis pid file" pid_alive "$REDIS_PID" redis-server || true
	state_add redis "$REDIS_PID" redis-server
	wait_until 10 "redis ping" redis_ok || {
		tail_logs /var/log/ferry/redis.log
		die "redis does not answer on 127.0.0.1:$REDIS_PORT"
	}
}

FERRY_CHANGED=0
# build_ferry builds ferry (the users' CLI) and ferryd (the daemons and
# Slurm hooks) into /usr/local/bin, replacing a binary only when it changed.
build_ferry() {
	if ! command -v go >/dev/null; then
		warn "go is not installed (expected /usr/local/go/bin/go): not building ferry"
		return 0
	fi
	local name tmp blog=/var/tmp/ferry-build.log
	for name in ferry ferryd; do
		tmp=$(mktemp "/usr/local/bin/.$name.XXXXXX")
		log "go build ./cmd/$name -> /usr/local/bin/$name"
		if ! (cd "$FERRY_REPO" && go build -o "$tmp" "./cmd/$name") >"$blog" 2>&1; then
			if grep -q 'VCS status' "$blog" &&
				(cd "$FERRY_REPO" && go build -buildvcs=false -o "$tmp" "./cmd/$name") >"$blog" 2>&1; then
				:
			else
				rm -f "$tmp"
				tail -n 20 "$blog" >&2
				die "$name does not build (full log: $blog)"
			fi
		fi
		chmod 0755 "$tmp"
		if [[ -f /usr/local/bin/$name ]] && cmp -s "$tmp" "/usr/local/bin/$name"; then
			rm -f "$tmp"
		else
			mv "$tmp" "/usr/local/bin/$name"
			FERRY_CHANGED=1
			log "installed /usr/local/bin/$name"
		fi
	done
}

write_ferry_config() {
	local tmp
	tmp=$(mktemp /etc/ferry/.config.yaml.XXXXXX)
	cat >"$tmp" <<'EOF'
# written by tests/cluster.sh
cluster: ferry-test
default_image: ferry/sandbox:latest
images: [ferry/sandbox:latest]
scratch_dir: /var/tmp/ferry
agent_socket: /run/ferry/agent-%n.sock
redis:
  addr: 127.0.0.1:6390
  password_file: /etc/ferry/redis.pass
dashboard:
  listen: 127.0.0.1:8790
  url: http://127.0.0.1:8790
  admins: [ferry-carol]
# Environments (requirements.txt, apt:): the agents build them, confined
# to their sources: pip installs from the wheelhouse alone (the end-to-end
# test fills it), apt from the Debian mirror the base image came from.
environments:
  enabled: true
  pip_find_links: /var/lib/ferry/wheelhouse
EOF
	printf '  debian_mirror: %s\n' "${FERRY_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >>"$tmp"
	chmod 0644 "$tmp"
	install -d -m 0755 /var/lib/ferry/wheelhouse
	if [[ -f $FERRY_CONFIG ]] && cmp -s "$tmp" "$FERRY_CONFIG"; then
		rm -f "$tmp"
		return 0
	fi
	mv "$tmp" "$FERRY_CONFIG"
	# The daemons read it when they start: restart them.
	FERRY_CHANGED=1
	log "wrote $FERRY_CONFIG"
}

start_agents() {
	if ! agent_supported; then
		warn "$FERRYD_BIN is not installed: no agents started"
		return 0
	fi
	local n pidf sock
	for n in "${NODES[@]}"; do
		pidf=/run/ferry/agent-$n.pid
		sock=/run/ferry/agent-$n.sock
		if pid_alive "$pidf" ferryd; then
			if ((FERRY_CHANGED)) && state_has "agent-$n"; then
				log "ferry was rebuilt: restarting agent $n"
				stop_pidfile "agent $n" "$pidf" ferryd 15
			else
				log "agent $n already running"
				continue
			fi
		fi
		log "starting ferryd agent --node $n"
		setsid nohup "$FERRYD_BIN" agent --node "$n" </dev/null >>"/var/log/ferry/agent-$n.log" 2>&1 &
		echo $! >"$pidf"
		state_add "agent-$n" "$pidf" ferryd
	done
	for n in "${NODES[@]}"; do
		pidf=/run/ferry/agent-$n.pid
		sock=/run/ferry/agent-$n.sock
		if ! wait_until 15 "agent $n socket $sock" test -S "$sock"; then
			pid_alive "$pidf" ferryd || warn "agent $n exited"
			tail_logs "/var/log/ferry/agent-$n.log"
			warn "agent $n is not serving $sock: going on"
		fi
	done
}

# start_head_daemon NAME PIDFILE LOGFILE READY-CMD [ARGS...]: start
# `ferryd NAME ARGS` as root unless it runs already (restarted when the
# binary changed), and wait up to 20 s for READY-CMD to succeed.
start_head_daemon() {
	local name=$1 pidf=$2 logf=$3 ready=$4
	shift 4
	if ! tracker_supported; then
		warn "$FERRYD_BIN is not installed: no $name started"
		return 0
	fi
	if pid_alive "$pidf" ferryd; then
		if ((FERRY_CHANGED)) && state_has "$name"; then
			log "ferry was rebuilt: restarting the $name"
			stop_pidfile "$name" "$pidf" ferryd 15
		else
			log "$name already running"
			return 0
		fi
	fi
	log "starting ferryd $name $*"
	setsid nohup "$FERRYD_BIN" "$name" "$@" </dev/null >>"$logf" 2>&1 &
	echo $! >"$pidf"
	state_add "$name" "$pidf" ferryd
	if ! wait_until 20 "the $name to be ready" "$ready"; then
		pid_alive "$pidf" ferryd || warn "the $name exited"
		tail_logs "$logf"
		warn "the $name is not ready: going on"
	fi
}

tracker_ok() { "$FERRYD_BIN" tracker --health >/dev/null 2>&1; }
dashboard_ok() { curl -fsS --max-time 2 "http://$DASHBOARD_ADDR/healthz" >/dev/null 2>&1; }

# The tracker runs as root (it reads every user's job dirs) next to
# slurmctld; slurm-hook (jobcomp, as SlurmUser) reaches it on
# /run/ferry/tracker.sock.
start_tracker() {
	# FERRY_TRACKER_ARGS: extra flags, for tests (e.g. --tick 1h: only
	# the jobcomp hook delivers states).
	local -a extra=()
	read -r -a extra <<<"${FERRY_TRACKER_ARGS:-}"
	start_head_daemon tracker "$TRACKER_PID" "$TRACKER_LOG" tracker_ok "${extra[@]}"
}

# The dashboard runs as root (it reads every user's job dirs and token
# files), on loopback (dashboard.listen in the config).
start_dashboard() {
	start_head_daemon dashboard "$DASHBOARD_PID" "$DASHBOARD_LOG" dashboard_ok
}

smoke_job() {
	local user=ferry-alice home id out st deadline node
	home=$(user_home "$user")
	id=$(as_user "$user" sbatch --parsable -J ferry-smoke -o "$home/ferry-smoke-%j.out" --wrap hostname) ||
		die "sbatch as $user failed"
	id=${id%%;*}
	out=$home/ferry-smoke-$id.out
	log "smoke job $id submitted as $user"
	deadline=$((SECONDS + SMOKE_TIMEOUT))
	while :; do
		st=$(squeue -h -t all -j "$id" -o '%T' 2>/dev/null || true)
		case $st in
		COMPLETED) break ;;
		FAILED | CANCELLED* | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
			scontrol show job "$id" >&2 || true
			slurm_logs
			die "smoke job $id ended $st"
			;;
		esac
		if ((SECONDS >= deadline)); then
			scontrol show job "$id" >&2 || true
			slurm_logs
			die "smoke job $id did not complete within ${SMOKE_TIMEOUT}s (state: ${st:-gone})"
		fi
		sleep 0.5
	done
	node=$(squeue -h -t all -j "$id" -o '%N' 2>/dev/null || true)
	if [[ $(cat "$out" 2>/dev/null) != "$(hostname)" ]]; then
		die "smoke job $id: expected '$(hostname)' in $out, got '$(cat "$out" 2>/dev/null)'"
	fi
	rm -f "$out"
	log "smoke job $id completed on $node"
}

# guard_build_networks: the agents' environment builds run on Docker
# networks with no route out but ferry's egress proxy; Docker still lets
# them reach this host's own addresses (slurmctld, slurmd, sshd...), so drop
# what comes in from those bridges, named fegress* (pkg/env/docker). The
# rule matches nothing else, and stays.
guard_build_networks() {
	iptables -w -C INPUT -i fegress+ -j DROP 2>/dev/null && return 0
	log "iptables -I INPUT -i fegress+ -j DROP (environment builds keep off this host)"
	iptables -w -I INPUT -i fegress+ -j DROP || die "could not add the host rule for environment builds"
}

cmd_up() {
	need_root
	ensure_go_path
	ensure_packages "${PACKAGES[@]}"
	setup_dirs
	start_munge
	write_slurm_conf
	start_mariadb
	write_dbd_conf
	start_slurmdbd
	install_hooks
	start_slurmctld
	local n
	for n in "${NODES[@]}"; do start_slurmd "$n"; done
	wait_nodes
	bash "$FERRY_REPO/tests/users.sh"
	setup_accounts
	start_redis
	if [[ ${FERRY_SKIP_IMAGES:-0} != 1 ]]; then
		bash "$FERRY_REPO/sandbox/build.sh" >&2 || die "sandbox/build.sh failed"
	fi
	build_ferry
	write_ferry_config
	guard_build_networks
	start_agents
	start_tracker
	start_dashboard
	[[ ${FERRY_SKIP_SMOKE:-0} == 1 ]] || smoke_job
	log "cluster is up (stop it with: sudo tests/cluster.sh down)"
}

# ---------------------------------------------------------------- down

cancel_jobs() {
	ctld_ok || return 0
	local ids
	mapfile -t ids < <(squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING -o '%i' 2>/dev/null)
	((${#ids[@]})) || return 0
	log "cancelling jobs: ${ids[*]}"
	scancel --full "${ids[@]}" 2>/dev/null || true
	# shellcheck disable=SC2016 # expanded by the inner bash
	wait_until 30 "jobs to leave the nodes" \
		bash -c '[[ -z $(squeue -h -t RUNNING,COMPLETING,CONFIGURING -o %i 2>/dev/null) ]]' || true
}

cmd_down() {
	need_root
	if [[ ! -s $FERRY_STATE_FILE ]]; then
		log "nothing was started by tests/cluster.sh: nothing to stop"
		rm -f "$FERRY_STATE_FILE"
		return 0
	fi
	local started
	started=$(cat "$FERRY_STATE_FILE")
	if grep -q '^slurmctld ' <<<"$started"; then cancel_jobs; fi
	local name pidf comm
	while read -r name pidf comm; do
		[[ -n $name ]] || continue
		stop_pidfile "$name" "$pidf" "$comm" 30
		state_del "$name"
		case $name in agent-*) rm -f "/run/ferry/$name.sock" ;; esac
	done < <(tac <<<"$started")
	if grep -q '^slurmd-' <<<"$started"; then
		# Job steps outlive slurmd; stop the ones our slurmd left behind.
		local pids
		mapfile -t pids < <(pgrep -x slurmstepd || true)
		if ((${#pids[@]})); then
			warn "killing leftover slurmstepd: ${pids[*]}"
			kill -KILL "${pids[@]}" 2>/dev/null || true
		fi
		if command -v docker >/dev/null; then
			local cs
			mapfile -t cs < <(docker ps -aq --filter label=ferry.sandbox=1 2>/dev/null || true)
			if ((${#cs[@]})); then
				warn "removing leftover sandbox containers: ${cs[*]}"
				docker rm -f "${cs[@]}" >/dev/null 2>&1 || true
			fi
		fi
	fi
	rm -f "$FERRY_STATE_FILE"
	log "cluster is down"
}

# ---------------------------------------------------------------- status

cmd_status() {
	local ok=0 n pidf
	if munge_ok; then echo "munge:     ok"; else
		echo "munge:     NOT running"
		ok=1
	fi
	if ctld_ok; then echo "slurmctld: up"; else
		echo "slurmctld: NOT answering"
		ok=1
	fi
	if ((ok == 0)); then
		sinfo -N -o '%N %P %t %c %m' 2>&1 | sed 's/^/  /'
		echo "  jobs: $(squeue -h -t PD,R,CG -o %i 2>/dev/null | wc -l) queued/running"
		nodes_ready || ok=1
	fi
	local ping
	[[ -r $REDIS_PASS ]] || echo "redis:     cannot read $REDIS_PASS (run as root)"
	ping=$(redis_ping || true)
	if [[ $ping == PONG ]]; then echo "redis:     PONG on 127.0.0.1:$REDIS_PORT"; else
		echo "redis:     NOT answering on 127.0.0.1:$REDIS_PORT ${ping}"
		ok=1
	fi
	for n in "${NODES[@]}"; do
		pidf=/run/ferry/agent-$n.pid
		if pid_alive "$pidf" ferryd; then
			echo "agent $n:  pid $(cat "$pidf")$([[ -S /run/ferry/agent-$n.sock ]] && echo ", /run/ferry/agent-$n.sock")"
		else
			echo "agent $n:  not running"
		fi
	done
	if pid_alive "$TRACKER_PID" ferryd; then
		echo "tracker:   pid $(cat "$TRACKER_PID"), $("$FERRYD_BIN" tracker --health 2>/dev/null || echo "not healthy")"
	else
		echo "tracker:   not running"
	fi
	if pid_alive "$DASHBOARD_PID" ferryd; then
		echo "dashboard: pid $(cat "$DASHBOARD_PID"), http://$DASHBOARD_ADDR $(dashboard_ok && echo answers || echo "NOT answering")"
	else
		echo "dashboard: not running"
	fi
	echo "ferry:     $([[ -x $FERRY_BIN ]] && echo "$FERRY_BIN" || echo "not installed"), $([[ -x $FERRYD_BIN ]] && echo "$FERRYD_BIN" || echo "ferryd not installed")"
	echo "images:    $(docker images --format '{{.Repository}}:{{.Tag}}' 'ferry/*' 2>/dev/null | tr '\n' ' ')"
	if [[ -s $FERRY_STATE_FILE ]]; then
		echo "started by cluster.sh: $(cut -d' ' -f1 "$FERRY_STATE_FILE" | tr '\n' ' ')"
	fi
	return $ok
}

# ---------------------------------------------------------------- stop/start one

cmd_stop() {
	need_root
	case ${1:-} in
	slurmctld) stop_pidfile slurmctld "$CTLD_PID" slurmctld 30 ;;
	slurmdbd) stop_pidfile slurmdbd "$DBD_PID" slurmdbd 30 ;;
	mariadb) stop_pidfile mariadb "$MARIADB_PID" mariadbd 60 ;;
	redis) stop_pidfile redis "$REDIS_PID" redis-server 30 ;;
	tracker) stop_pidfile tracker "$TRACKER_PID" ferryd 15 ;;
	dashboard) stop_pidfile dashboard "$DASHBOARD_PID" ferryd 15 ;;
	*) usage ;;
	esac
}

cmd_start() {
	need_root
	case ${1:-} in
	slurmctld)
		start_slurmctld
		wait_nodes
		;;
	slurmdbd) start_slurmdbd ;;
	mariadb) start_mariadb ;;
	redis) start_redis ;;
	tracker) start_tracker ;;
	dashboard) start_dashboard ;;
	*) usage ;;
	esac
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
stop) cmd_stop "${2:-}" ;;
start) cmd_start "${2:-}" ;;
*) usage ;;
esac
