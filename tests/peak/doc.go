// Package peak is the deadline-peak benchmark: one run puts the same
// deadline peak through a real Slurm twice, FIFO (priority/basic) and then
// the fair configuration of ferry's test harness, and prints each user's
// wait until their first job starts (p50, p95, max), Jain's fairness index
// over those waits and the makespan, side by side. The target from the
// issue: the fair configuration cuts the max first-job wait by 4x or more
// with a makespan at most 5% longer. The benchmark says "met" or "missed".
//
// # The cluster
//
// peak.sh runs a private Slurm beside the harness's (which it leaves
// alone): its own slurmctld (ClusterName=peak, 127.0.0.1:6917) and 12
// slurmd, p1..p12 on ports 17101..17112, one CPU each so that each worker
// runs one job at a time, like ferry's exclusive workers. State, spools,
// logs and pid files live in /var/tmp/ferry-peak; each configuration starts
// from an empty state (no jobs, no recorded usage). It shares the host's
// munged and the harness's slurmdbd: the cluster registers itself there,
// and peak.sh gives the users ferry-peak001..100 (uids 3001..3100, created
// once, no home) associations under the account ferry-peak on cluster peak,
// in the harness's "student" QOS (MaxJobsPerUser=2).
//
//   - fair: the Priority* and AccountingStorage* lines of
//     slurm/slurm.conf.in, verbatim: priority/multifactor with
//     PriorityWeightFairshare=100000, PriorityWeightAge=1000,
//     PriorityMaxAge=1-0, PriorityDecayHalfLife=4:00:00,
//     PriorityCalcPeriod=1 (Fair Tree, Slurm's default), accounting in
//     slurmdbd with AccountingStorageEnforce=associations,limits,qos,safe.
//   - FIFO: PriorityType=priority/basic, with accounting ON and the same
//     associations and QOS, so that the per-user limit holds in both runs
//     and the priority plugin is the only difference.
//
// # The peak
//
// A fixed seed draws the same peak every run (scenario.json in
// /var/tmp/ferry-peak): 100 users, each submitting one burst of
// 1 + floor(29·U⁴) jobs (U uniform in [0, 1)): 626 jobs, 61 users with 1
// to 4 jobs, 31 with 5 to 19, 8 with 20 to 30. Heavy users come first:
// the users are ordered by burst size, heaviest first, with a normal noise
// of 10 places, and their bursts are spread evenly over 2 minutes in that
// order (light users trickle in later). Each job is `sleep D`, D uniform in
// [3, 5] s; users submit with `runuser -u USER -- sbatch` (--chdir=/tmp,
// -o /dev/null, --time=10). The cluster needs about 4 minutes for the
// peak, twice the window over which it arrives: a real overload.
//
// The users have no usage before the peak. With prior usage (heavy users
// who ran all week) fair share would push the heavy users' first jobs
// behind everyone else's, and the max first-job wait would hardly move
// (simulated: cut 0.8x to 1.3x, against 1.2x to 1.9x without): no usage is
// the case most favourable to the target, and the simplest to reproduce.
//
// # What is measured
//
// Slurm's own times, in seconds, from `squeue -t all` (finished jobs stay
// for MinJobAge=3600): a user's wait is their first job's start minus
// their first submit; p50 and p95 are nearest-rank; makespan runs from the
// first submit to the last end. In the fair run the test also polls sshare
// every second and prints when the fair-share factors changed: Slurm's
// priority recalculations. The test asserts only what does not depend on
// timing: every job of every user ran and COMPLETED, none lost. Per-job
// records stay in /var/tmp/ferry-peak/jobs-{fifo,fair}.tsv.
//
// # Results and why
//
// Measured on the project's 2-core machine (Slurm 22.05.8):
//
//	                         FIFO    fair   FIFO/fair
//	first-job wait p50 (s)    129     107   1.21
//	first-job wait p95 (s)    147     122   1.20
//	first-job wait max (s)    148     123   1.20
//	Jain index of the waits  0.883   0.890
//	makespan (s)              241     251   +4.1%
//	target: missed (max wait cut 1.20x, makespan +4.1%)
//
// A discrete-event simulation of both policies (Slurm's one-minute
// recalculation included, 0.6 s of scheduling gap per job) predicted
// 151 / 125 s max waits and 245 / 255 s makespans for this peak, and a cut
// of 1.2x to 1.9x whatever the phase of the recalculation: at this time
// scale the target is out of reach, and it is Slurm's doing, not ferry's.
// Slurm recomputes fair-share factors and pending jobs' priorities only
// every PriorityCalcPeriod, a minute at least (the run shows them at +53 s,
// +113 s, +173 s, ... from the start of the peak: a minute after slurmctld
// started, then every minute). Between two recalculations every user who
// had no usage at the last one ranks first (Fair Tree, equal shares), ties
// going by submission order: for up to a minute, the burst of a user who
// has just started is still "new" and runs ahead of every later user, two
// jobs at a time (the QOS limit). With jobs of a few seconds arriving over
// 2 minutes, fair share reorders the queue four times in the whole peak,
// the first time 53 s in. Without the QOS limit it would be within 5% of
// FIFO (simulated): the limit keeps a "new" heavy user to two workers
// during that minute. With an instant recalculation the same cluster would
// cut the max wait about 80x (simulated).
//
// The target is reachable when the peak lasts many recalculation periods.
// FERRY_BENCH_PEAK_SCALE=N stretches the same peak in time (jobs and
// submission offsets N times longer; the one-minute period stays). The
// simulation predicts a cut of 3.7x to 5x at N=4 (met in 40% of the
// phases), 4.6x to 6.4x at N=5 and 7.7x to 11x at N=6 (met in every phase),
// makespans 1% to 5% longer. Measured here at N=5 (jobs 15 to 25 s, bursts
// over 10 minutes; simulated: 644 / 129 s max waits, 1099 / 1125 s
// makespans):
//
//	                         FIFO    fair   FIFO/fair
//	first-job wait p50 (s)    545      53   10.28
//	first-job wait p95 (s)    629     123    5.11
//	first-job wait max (s)    635     133    4.77
//	Jain index of the waits  0.883   0.598
//	makespan (s)             1085    1121   +3.3%
//	target: met (max wait cut 4.77x, makespan +3.3%)
//
// So Slurm's fair share meets the target at a deadline whose FIFO waits
// run to 10 minutes and more (jobs of 15 s and more), not at one of
// 2-minute waits. Jain's index over the waits falls under fair share
// because most users then wait a few seconds and a few still wait two
// minutes: it measures how equal the waits are, not how short.
//
// # Running it
//
// As root, with the harness up (tests/cluster.sh up, or from tests/run.sh):
//
//	FERRY_BENCH_PEAK=1 go test -count=1 -v -timeout 40m -run TestDeadlinePeak ./tests/peak/
//
// It takes about 10 minutes (two peaks of about 4 minutes each, plus
// bring-ups). Without FERRY_BENCH_PEAK=1 it skips. With
// FERRY_BENCH_PEAK_SCALE=5 it takes 38 minutes (-timeout 60m). The test
// stops the instance's daemons when it ends, fails or is interrupted
// (peak.sh down; `sudo tests/peak/peak.sh down` after a run killed
// otherwise); the users and their associations stay for the next run.
package peak
