#!/usr/bin/env bash
# ferry's test command: brings up the local cluster (tests/cluster.sh up), runs
# `go test -count=1 -v` with the end-to-end tests enabled, then stops what it
# started (unless FERRY_KEEP_CLUSTER=1, or the cluster was already up before).
#
#   sudo tests/run.sh                         all packages (./...), then the
#                                             containerized cluster (tests/deploy)
#   sudo tests/run.sh -run TestX ./pkg/...    extra go test arguments; when no
#                                             package is named, ./... is added
# With CI=true, a skipped test in a package under ./tests fails the run: an
# end-to-end test must never skip silently in CI. Full log: /tmp/ferry-test.log
set -euo pipefail
FERRY_LOG_TAG=run
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root
ensure_go_path
command -v go >/dev/null || die "go is not installed (expected /usr/local/go/bin/go)"
cd "$FERRY_REPO"

TEST_LOG=${FERRY_TEST_LOG:-/tmp/ferry-test.log}

was_up=0
if bash tests/cluster.sh status >/dev/null 2>&1; then
	was_up=1
fi

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local rc=$?
	if [[ ${FERRY_KEEP_CLUSTER:-0} == 1 ]]; then
		log "FERRY_KEEP_CLUSTER=1: leaving the cluster up (stop it: sudo tests/cluster.sh down)"
	elif ((was_up)); then
		log "the cluster was up before this run: leaving it up (stop it: sudo tests/cluster.sh down)"
	else
		bash tests/cluster.sh down || warn "tests/cluster.sh down failed"
	fi
	exit "$rc"
}
trap cleanup EXIT

if ((was_up)); then
	bash tests/cluster.sh up
else
	FERRY_SLURM_CLEAN=1 bash tests/cluster.sh up
fi

# The test users' spools belong to the tests: each run starts from empty
# ones, so that earlier runs' thousands of jobs do not slow this one down.
for u in ferry-alice ferry-bob ferry-carol; do
	h=$(getent passwd "$u" | cut -d: -f6)
	if [[ -n $h && -d $h ]]; then
		rm -rf "$h/.ferry/jobs" "$h/e2e"
	fi
done

export FERRY_E2E=1 FERRY_BIN=/usr/local/bin/ferry

args=("$@")
have_pkg=0
for a in "${args[@]}"; do
	case $a in
	./* | ../* | . | .. | github.com/*) have_pkg=1 ;;
	esac
done
# The containerized cluster's test (tests/deploy: build_cluster.sh from no
# images, faults) and the deadline-peak benchmark (tests/peak) run on their
# own, after the rest: see below.
if ((have_pkg == 0)); then
	mapfile -t pkgs < <(go list ./... | grep -v -e '/tests/deploy$' -e '/tests/peak$')
	args+=("${pkgs[@]}")
fi

# The dashboard's browser test drives Debian's headless Chromium; its
# screenshots are kept in $FERRY_ARTIFACTS/dashboard.
ensure_packages chromium fonts-dejavu-core
export FERRY_ARTIFACTS=${FERRY_ARTIFACTS:-/tmp/ferry-artifacts}
rm -rf "$FERRY_ARTIFACTS/dashboard"

# The Python client's unit tests (a fake ferry CLI; no cluster needed).
ensure_python_packages
log "python unit tests: /usr/bin/python3 -m unittest discover -s python/tests"
set +e
/usr/bin/python3 -m unittest discover -s python/tests 2>&1 | tee "$TEST_LOG"
py_rc=${PIPESTATUS[0]}
set -e
((py_rc == 0)) || warn "python unit tests FAILED (exit $py_rc)"

log "go test -count=1 -v ${args[*]}  (log: $TEST_LOG)"
set +e
# -p 1: one package at a time, so the BENCH figures are not skewed by
# other packages' tests running beside them on the 2 cores.
go test -count=1 -p 1 -timeout 60m -v "${args[@]}" 2>&1 | tee -a "$TEST_LOG"
rc=${PIPESTATUS[0]}
set -e
if ((have_pkg == 0)); then
	# The packing benchmark (1 GiB of mixed files vs tar czf), alone.
	log "BENCH pack: FERRY_BENCH=1 go test -run TestPackVsTarGz ./pkg/bundle/"
	set +e
	FERRY_BENCH=1 FERRY_BENCH_MB=${FERRY_BENCH_MB:-1024} go test -count=1 -v -timeout 30m -run TestPackVsTarGz ./pkg/bundle/ 2>&1 | tee -a "$TEST_LOG"
	brc=${PIPESTATUS[0]}
	set -e
	((brc == 0)) || ((rc != 0)) || rc=$brc
	# The deadline-peak benchmark (tests/peak): a private 12-worker Slurm
	# beside the harness, the same peak under FIFO and under the fair
	# configuration, side by side. About 10 minutes.
	log "BENCH deadline peak: FERRY_BENCH_PEAK=1 go test -run TestDeadlinePeak ./tests/peak/"
	set +e
	FERRY_BENCH_PEAK=1 go test -count=1 -v -timeout 40m -run TestDeadlinePeak ./tests/peak/ 2>&1 | tee -a "$TEST_LOG"
	brc=${PIPESTATUS[0]}
	set -e
	((brc == 0)) || ((rc != 0)) || rc=$brc
	# The tracker against the real Slurm holding 10,000 ferry jobs, last:
	# its cancelled jobs stay in Slurm's listing for MinJobAge.
	log "BENCH tracker at 10,000 real Slurm jobs: FERRY_BENCH_SLURM=1 go test -run TestBenchTrackerRealSlurm ./pkg/tracker/"
	set +e
	FERRY_BENCH_SLURM=1 go test -count=1 -v -timeout 30m -run TestBenchTrackerRealSlurm ./pkg/tracker/ 2>&1 | tee -a "$TEST_LOG"
	brc=${PIPESTATUS[0]}
	set -e
	((brc == 0)) || ((rc != 0)) || rc=$brc
	# The containerized cluster, last and alone: build_cluster.sh brings up
	# a 2-worker cluster from no images (its own image prefix, ports and
	# paths, so the harness above is left alone), runs jobs on it, kills a
	# worker, restarts the head, updates it mid-queue, then purges it.
	log "cluster bring-up: FERRY_E2E_DEPLOY=1 go test ./tests/deploy/"
	ensure_packages docker-compose iproute2
	set +e
	FERRY_E2E_DEPLOY=1 go test -count=1 -v -timeout 45m ./tests/deploy/ 2>&1 | tee -a "$TEST_LOG"
	brc=${PIPESTATUS[0]}
	set -e
	((brc == 0)) || ((rc != 0)) || rc=$brc
fi
((py_rc == 0)) || ((rc != 0)) || rc=1

if [[ ${CI:-} == true ]]; then
	module=$(awk '$1 == "module" {print $2; exit}' go.mod)
	# go test -v prints each package's output in one block that ends with
	# "ok|FAIL|?  <package> ...": attribute SKIP lines to that package.
	if ! awk -v pfx="$module/tests" '
		/^[[:space:]]*--- SKIP/ { skips = skips $0 "\n"; n++; next }
		/^(ok|FAIL|\?)[[:space:]]/ && NF >= 2 {
			if (n > 0 && ($2 == pfx || index($2, pfx "/") == 1)) {
				printf "skipped end-to-end tests in %s:\n%s", $2, skips > "/dev/stderr"
				bad = 1
			}
			skips = ""; n = 0
		}
		END { exit bad }' "$TEST_LOG"; then
		warn "CI=true: end-to-end tests under ./tests must not skip (a service is missing?)"
		((rc != 0)) || rc=1
	fi
fi

[[ -d $FERRY_ARTIFACTS/dashboard ]] && log "dashboard screenshots: $FERRY_ARTIFACTS/dashboard/"
if ((rc == 0)); then log "tests passed"; else log "tests FAILED (exit $rc)"; fi
exit "$rc"
