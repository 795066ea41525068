# ferry cluster settings: every setting of build_cluster.sh, in one place.
#
# build_cluster.sh reads this file (or the one --config / $FERRY_CLUSTER_CONFIG
# names) before it does anything, and refuses a key it does not know, so a
# typo fails loudly instead of being ignored. Values are shell words: quote
# anything with spaces. Relative paths are relative to this file's directory.
# An empty value means "the default" as described beside each key.

# --- the cluster ----------------------------------------------------------
# The cluster's name: Slurm's ClusterName, the compose project, the swarm
# stack, and the ferry.cluster label on everything build_cluster.sh makes.
CLUSTER_NAME=ferry
# How many workers: Slurm nodes w1..wN, one container each (1-64).
WORKERS=2
# CPUs and memory (MiB) each worker offers Slurm. Empty: the host's CPUs, and
# the host's memory less 1 GiB. Every worker runs one job at a time.
WORKER_CPUS=
WORKER_MEM_MB=
# compose (one host) or swarm (several hosts: docker stack deploy).
MODE=compose
# The head node's address that the other swarm hosts reach (swarm only;
# empty: the address of the default route's interface).
HEAD_ADDR=

# --- ports on the host ----------------------------------------------------
# Published on BIND_ADDR. Jupyter is the user node's notebook server; the
# dashboard is ferry's web view of the jobs, served by the head node.
BIND_ADDR=0.0.0.0
JUPYTER_PORT=8888
DASHBOARD_PORT=8080
# The dashboard's address as browsers reach it: `ferry login` prints links
# to it, and it answers only to its host name (and localhost). Empty:
# http://<this host's FQDN>:DASHBOARD_PORT. Behind a TLS proxy, its https URL.
DASHBOARD_URL=
# Users of the users list who see every job on the dashboard and its
# course view (TAs, teachers), comma-separated. Empty: none.
DASHBOARD_ADMINS=
# Redis is published on 127.0.0.1 only, for the admin (redis-cli).
REDIS_PORT=6379
# A file holding the Redis password (one line). Empty: a random one, made
# once in STATE_DIR/redis.pass. Only the head and Redis get it; jobs never.
REDIS_PASSWORD_FILE=

# --- paths on the host ----------------------------------------------------
# The shared /home. Bound at the same path in every container, because the
# sandboxes are started by the host's Docker Engine, which resolves the job
# dirs' paths on the host. On several hosts it is an NFS mount on each.
HOME_ROOT=/home
# Spools, Slurm's saved state, Redis data and logs: kept by down and update.
DATA_DIR=/var/lib/ferry-cluster
# Workers' scratch (each job's unpacked bundle) and the agents' mount dir:
# host paths too, for the same reason as HOME_ROOT.
SCRATCH_DIR=/var/tmp/ferry-cluster
MOUNT_DIR=/run/ferry-cluster
# Keys, passwords and rendered config (git-ignored, made once, 0700).
STATE_DIR=state

# --- accounts -------------------------------------------------------------
# The users list: one "name:uid" a line (# comments allowed). Each user gets
# that uid (and a group of the same id) on the head, the workers and the
# user node, and a home HOME_ROOT/name; their sandboxes run as that uid.
USERS_FILE=users.list
# The user whose Jupyter server the user node runs (empty: the first user).
JUPYTER_USER=
# The notebook's token. Empty: a random one, kept in STATE_DIR/jupyter.token.
JUPYTER_TOKEN=
# Service ids, the same in every image (Debian's slurm uid is 64030).
MUNGE_UID=990
MUNGE_GID=990
SLURM_UID=64030
SLURM_GID=64030

# --- fairness at deadline peaks (Slurm's accounting) -----------------------
# 1: the head node runs Slurm's accounting, slurmdbd on MariaDB (its data in
# DATA_DIR/head/mariadb, kept by down and update): the queue is ordered by
# fair share (who ran least lately goes first), per-user limits hold, and
# sacct works. Every user of the users list gets an association (account
# "course", QOS "student"). 0: first come, first served, no accounting.
ACCOUNTING=1
# How long past usage counts against a user in fair share: its half-life in
# hours (1-720). Hours, so that what someone ran before the deadline counts.
FAIRSHARE_HALF_LIFE_HOURS=4
# The students' per-user limits: jobs running at once (empty: no limit, so no
# worker idles while one user waits) and jobs queued and running together (a
# sweep's tasks count one each). A job over a limit is refused with a
# sentence saying which.
MAX_RUNNING_PER_USER=
MAX_JOBS_PER_USER=1000

# --- environments (requirements.txt, apt:) ---------------------------------
# 1: a job whose project has a requirements.txt or apt: packages runs in an
# image the worker builds once per content hash, FROM the job's image, with
# apt from DEBIAN_MIRROR (an http(s) one: a file:// mirror cannot serve
# builds) and pip from the index or wheelhouse below (wheels only). A build
# reaches those sources and nothing else: it runs on a network of its own
# whose only way out is ferry's egress proxy. 0: such jobs are refused.
ENVIRONMENTS=1
# A PEP 503 index pip may install from (http(s), no credentials). Empty: none.
PIP_INDEX_URL=
# A host dir of wheels (pip --find-links), bound read-only into every
# worker. Empty: none.
WHEELHOUSE_DIR=

# --- images ---------------------------------------------------------------
# Images are named PREFIX/debian:bookworm (the base, bootstrapped from
# Debian packages with debootstrap when missing), PREFIX/node:TAG,
# PREFIX/user:TAG and PREFIX/sandbox:TAG.
IMAGE_PREFIX=ferry
IMAGE_TAG=latest
# The Debian mirror the base image is bootstrapped from and later images
# install from (an air-gapped site names its own).
DEBIAN_MIRROR=http://deb.debian.org/debian

# --- the sandbox ----------------------------------------------------------
# 1: sandboxes may use perf counters (CAP_PERFMON). 0: no capability at all.
PERFMON=0
