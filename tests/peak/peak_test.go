package peak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// scenarioSeed fixes the peak: every run submits the same bursts.
	scenarioSeed = 20260522
	// peakDir and peakConf are tests/peak/peak.sh's instance.
	peakDir  = "/var/tmp/ferry-peak"
	peakConf = peakDir + "/slurm.conf"
	// runTimeout bounds one configuration's peak, submission to last end
	// (about 4.5 minutes here), plus runTimeout per unit of time scale: a
	// hung cluster fails the test, and stops its daemons, instead of
	// hanging until go test's own timeout.
	runTimeout = 6 * time.Minute
)

// The submit loop each user runs: one sbatch per job, the job's sleep
// length as the only argument (a number this test formats), no other text
// from outside.
const burstScript = `for d do sbatch --parsable --partition=peak --job-name=peak --chdir=/tmp --output=/dev/null --time=10 --wrap "sleep $d" || exit 1; done`

// TestDeadlinePeak runs the deadline peak (doc.go) on a private 12-worker
// Slurm twice, FIFO then fair, and prints the figures side by side. It
// asserts what must hold whatever the timing: every job of every user ran
// and completed. It never fails on a time.
func TestDeadlinePeak(t *testing.T) {
	if os.Getenv("FERRY_BENCH_PEAK") != "1" {
		t.Skip("deadline-peak benchmark: runs a private 12-worker Slurm for about 10 minutes; " +
			"set FERRY_BENCH_PEAK=1 and run as root with the harness up (tests/cluster.sh up; tests/run.sh does both)")
	}
	require.Equal(t, 0, os.Geteuid(), "the deadline-peak benchmark runs daemons and submits as 100 users: run it as root")
	for _, bin := range []string{"slurmctld", "slurmd", "sbatch", "squeue", "sshare", "sacctmgr", "runuser"} {
		_, err := exec.LookPath(bin)
		require.NoError(t, err, "%s is not installed: bring the harness up first (sudo tests/cluster.sh up)", bin)
	}

	sc := newScenario(scenarioSeed)
	if v := os.Getenv("FERRY_BENCH_PEAK_SCALE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		require.NoError(t, err, "FERRY_BENCH_PEAK_SCALE=%q: want a number such as 4", v)
		require.True(t, f >= 0.5 && f <= 10, "FERRY_BENCH_PEAK_SCALE=%v: want 0.5 to 10", f)
		sc = sc.scaled(f)
	}
	peakSh(t, "users")
	t.Cleanup(func() { peakSh(t, "down") })
	// An interrupted run (Ctrl-C, or go test passing on a SIGINT) does not
	// run t.Cleanup: stop the instance's daemons here too.
	sigs, done := make(chan os.Signal, 1), make(chan struct{})
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer func() {
		signal.Stop(sigs)
		close(done)
	}()
	go func() {
		select {
		case s := <-sigs:
			out, _ := exec.Command("bash", "peak.sh", "down").CombinedOutput()
			fmt.Fprintf(os.Stderr, "peak: %v: stopped the benchmark's Slurm:\n%s", s, out)
			os.Exit(1)
		case <-done:
		}
	}()
	writeJSON(t, filepath.Join(peakDir, "scenario.json"), sc)
	t.Logf("scenario: %d users, %d jobs, bursts over %v, jobs %.0f-%.0f s (%s)",
		len(sc.Users), sc.jobs(), sc.window(), sc.Scale*minJobSecs, sc.Scale*maxJobSecs, filepath.Join(peakDir, "scenario.json"))

	var results []*runResult
	for _, kind := range []string{"fifo", "fair"} {
		peakSh(t, "up", kind)
		r := runPeak(t, kind, sc)
		checkRun(t, sc, r)
		results = append(results, r)
		peakSh(t, "down")
	}
	report(t, sc, results[0], results[1])
}

// jobRecord is one job as Slurm reports it; times are Unix seconds.
type jobRecord struct {
	ID, User, State    string
	Submit, Start, End int64
}

type runResult struct {
	Kind  string
	Jobs  []jobRecord
	Waits map[string]float64 // user -> seconds from their first submit to their first start
	// Makespan: the first submit to the last end, in seconds (Slurm's times).
	Makespan float64
	// Recalcs: when, from the start of the peak, sshare's fair-share
	// factors changed (fair only): Slurm's priority recalculations.
	Recalcs []time.Duration
}

func (r *runResult) waitList() []float64 {
	var w []float64
	for _, x := range r.Waits {
		w = append(w, x)
	}
	sort.Float64s(w)
	return w
}

// slurm runs a Slurm command against the benchmark's instance.
func slurm(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+peakConf, "SLURM_TIME_FORMAT=%s")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func peakSh(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("bash", append([]string{"peak.sh"}, args...)...).CombinedOutput()
	require.NoError(t, err, "tests/peak/peak.sh %s:\n%s", strings.Join(args, " "), out)
	t.Logf("peak.sh %s:\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// runPeak submits the peak as the users (each burst at its offset, as the
// user, with runuser), waits until Slurm has ended every job and reads the
// jobs' submit, start and end times from Slurm.
func runPeak(t *testing.T, kind string, sc scenario) *runResult {
	timeout := 5*time.Minute + time.Duration(float64(runTimeout)*sc.Scale)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r := &runResult{Kind: kind}

	start := time.Now()
	var recalcs chan []time.Duration
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if kind == "fair" {
		recalcs = make(chan []time.Duration, 1)
		go func() { recalcs <- watchRecalcs(watchCtx, start) }()
	}

	ids, err := submitPeak(ctx, sc, start)
	require.NoError(t, err, "%s: submitting the peak", kind)
	want := map[string]bool{}
	for _, l := range ids {
		for _, id := range l {
			want[id] = true
		}
	}
	require.Len(t, want, sc.jobs(), "%s: one Slurm job id per job", kind)
	t.Logf("%s: %d jobs submitted by %d users in %v", kind, len(want), len(ids), time.Since(start).Round(time.Millisecond))

	var jobs []jobRecord
	for {
		jobs, err = listJobs(ctx)
		if err == nil {
			ended, mine := 0, 0
			for _, j := range jobs {
				if want[j.ID] {
					mine++
					if terminal(j.State) {
						ended++
					}
				}
			}
			if mine == len(want) && ended == mine {
				break
			}
		}
		if ctx.Err() != nil {
			require.NoError(t, err, "%s: listing the jobs", kind)
			require.FailNow(t, fmt.Sprintf("%s: the jobs did not all end within %v", kind, timeout))
		}
		time.Sleep(2 * time.Second)
	}
	stopWatch()
	if recalcs != nil {
		r.Recalcs = <-recalcs
	}
	for _, j := range jobs {
		if want[j.ID] {
			r.Jobs = append(r.Jobs, j)
		}
	}
	writeJobs(t, filepath.Join(peakDir, "jobs-"+kind+".tsv"), r.Jobs)

	first := map[string][2]int64{} // user -> first submit, first start
	var t0, tEnd int64
	for _, j := range r.Jobs {
		f, ok := first[j.User]
		if !ok || j.Submit < f[0] {
			f[0] = j.Submit
		}
		if j.Start > 0 && (!ok || f[1] == 0 || j.Start < f[1]) {
			f[1] = j.Start
		}
		first[j.User] = f
		if t0 == 0 || j.Submit < t0 {
			t0 = j.Submit
		}
		if j.End > tEnd {
			tEnd = j.End
		}
	}
	r.Waits = map[string]float64{}
	for u, f := range first {
		if f[1] > 0 {
			r.Waits[u] = float64(f[1] - f[0])
		}
	}
	r.Makespan = float64(tEnd - t0)
	return r
}

// submitPeak runs every user's burst at its offset from start, all users
// concurrently, and returns each user's Slurm job ids.
func submitPeak(ctx context.Context, sc scenario, start time.Time) (map[string][]string, error) {
	var (
		mu   sync.Mutex
		ids  = map[string][]string{}
		errs []error
		wg   sync.WaitGroup
	)
	for _, u := range sc.Users {
		wg.Add(1)
		go func(u peakUser) {
			defer wg.Done()
			select {
			case <-time.After(time.Until(start.Add(u.Offset))):
			case <-ctx.Done():
				return
			}
			args := []string{"-u", u.Name, "--", "/bin/sh", "-c", burstScript, "sh"}
			for _, d := range u.Jobs {
				args = append(args, strconv.FormatFloat(d, 'f', 1, 64))
			}
			out, err := slurm(ctx, "runuser", args...)
			var got []string
			for _, l := range strings.Fields(string(out)) {
				got = append(got, strings.SplitN(l, ";", 2)[0])
			}
			mu.Lock()
			defer mu.Unlock()
			ids[u.Name] = got
			if err != nil {
				errs = append(errs, fmt.Errorf("%s's burst (%d jobs, %d submitted): %w", u.Name, len(u.Jobs), len(got), err))
			} else if len(got) != len(u.Jobs) {
				errs = append(errs, fmt.Errorf("%s's burst: %d jobs, %d job ids", u.Name, len(u.Jobs), len(got)))
			}
		}(u)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return ids, errors.Join(errs...)
}

// listJobs reads every job the instance holds (finished ones stay for
// MinJobAge=3600) from squeue's formatted listing.
func listJobs(ctx context.Context) ([]jobRecord, error) {
	out, err := slurm(ctx, "squeue", "-h", "-t", "all", "-o", "%i|%u|%T|%V|%S|%e")
	if err != nil {
		return nil, err
	}
	var jobs []jobRecord
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "|")
		if len(f) != 6 {
			return nil, fmt.Errorf("squeue: unexpected line %q", l)
		}
		j := jobRecord{ID: f[0], User: f[1], State: f[2]}
		j.Submit, _ = strconv.ParseInt(f[3], 10, 64)
		// A pending job's start is Slurm's estimate or "N/A": only a job
		// that ran has a real one.
		if j.State != "PENDING" {
			j.Start, _ = strconv.ParseInt(f[4], 10, 64)
		}
		if terminal(j.State) {
			j.End, _ = strconv.ParseInt(f[5], 10, 64)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func terminal(state string) bool {
	switch state {
	case "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING":
		return false
	}
	return true
}

// watchRecalcs polls sshare every second and returns the times, from
// start, at which the users' fair-share factors changed: Slurm recomputes
// them (and pending jobs' priorities) only every PriorityCalcPeriod.
func watchRecalcs(ctx context.Context, start time.Time) []time.Duration {
	var seen []time.Duration
	prev := ""
	for {
		out, err := slurm(ctx, "sshare", "-h", "-P", "-a", "-o", "User,FairShare")
		if err == nil {
			if cur := string(out); prev != "" && cur != prev {
				seen = append(seen, time.Since(start).Round(time.Second))
				prev = cur
			} else if prev == "" {
				prev = cur
			}
		}
		select {
		case <-ctx.Done():
			return seen
		case <-time.After(time.Second):
		}
	}
}

func writeJobs(t *testing.T, path string, jobs []jobRecord) {
	t.Helper()
	var b strings.Builder
	b.WriteString("job\tuser\tstate\tsubmit\tstart\tend\n")
	for _, j := range jobs {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%d\t%d\t%d\n", j.ID, j.User, j.State, j.Submit, j.Start, j.End)
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
}

// checkRun asserts what a user of the cluster would check: every job of
// every user ran and completed, none was lost or duplicated.
func checkRun(t *testing.T, sc scenario, r *runResult) {
	t.Helper()
	perUser := map[string][]jobRecord{}
	for _, j := range r.Jobs {
		perUser[j.User] = append(perUser[j.User], j)
	}
	assert.Len(t, r.Jobs, sc.jobs(), "%s: every submitted job is in Slurm's listing", r.Kind)
	for _, u := range sc.Users {
		jobs := perUser[u.Name]
		if !assert.Len(t, jobs, len(u.Jobs), "%s: %s's jobs", r.Kind, u.Name) {
			continue
		}
		for _, j := range jobs {
			assert.Equal(t, "COMPLETED", j.State, "%s: job %s of %s", r.Kind, j.ID, u.Name)
			assert.True(t, j.Start >= j.Submit && j.End >= j.Start && j.Start > 0,
				"%s: job %s of %s: submit %d, start %d, end %d", r.Kind, j.ID, u.Name, j.Submit, j.Start, j.End)
		}
		_, started := r.Waits[u.Name]
		assert.True(t, started, "%s: %s got a job started", r.Kind, u.Name)
	}
}

func bench(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("BENCH "+format, args...)
	t.Log(line)
	fmt.Println(line)
}

// report prints the BENCH table, FIFO and fair side by side, and whether
// the target of the issue was met.
func report(t *testing.T, sc scenario, fifo, fair *runResult) {
	t.Helper()
	burst := map[string]int{}
	offset := map[string]time.Duration{}
	for _, u := range sc.Users {
		burst[u.Name] = len(u.Jobs)
		offset[u.Name] = u.Offset
	}
	fw, rw := fifo.waitList(), fair.waitList()
	ratio := func(a, b float64) string {
		if b == 0 {
			if a == 0 {
				return "1.00"
			}
			return "inf"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	bench(t, "deadline peak: %d users, %d jobs (1 to %d a user), jobs %.0f-%.0f s, 12 workers (one job each), bursts over %v, heaviest first (time scale x%g)",
		len(sc.Users), sc.jobs(), maxBurst, sc.Scale*minJobSecs, sc.Scale*maxJobSecs, sc.window(), sc.Scale)
	bench(t, "%-28s %9s %9s %10s", "", "FIFO", "fair", "FIFO/fair")
	for _, row := range []struct {
		name string
		p    float64
	}{{"first-job wait p50 (s)", 0.50}, {"first-job wait p95 (s)", 0.95}, {"first-job wait max (s)", 1}} {
		a, b := percentile(fw, row.p), percentile(rw, row.p)
		bench(t, "%-28s %9.0f %9.0f %10s", row.name, a, b, ratio(a, b))
	}
	bench(t, "%-28s %9.3f %9.3f", "Jain index of the waits", jain(fw), jain(rw))
	bench(t, "%-28s %9.0f %9.0f %+9.1f%%", "makespan (s)", fifo.Makespan, fair.Makespan, (fair.Makespan/fifo.Makespan-1)*100)

	// Who waits: by burst size.
	for _, c := range []struct {
		name   string
		lo, hi int
	}{{"light (1-4 jobs)", 1, 4}, {"middle (5-19 jobs)", 5, 19}, {"heavy (20-30 jobs)", 20, 30}} {
		var a, b []float64
		for u, n := range burst {
			if n >= c.lo && n <= c.hi {
				a = append(a, fifo.Waits[u])
				b = append(b, fair.Waits[u])
			}
		}
		if len(a) == 0 {
			continue
		}
		bench(t, "%-28s p50 %4.0f / %4.0f   max %4.0f / %4.0f  (%d users; FIFO / fair)",
			"wait, "+c.name, percentile(a, 0.5), percentile(b, 0.5), percentile(a, 1), percentile(b, 1), len(a))
	}
	for _, r := range []*runResult{fifo, fair} {
		var who string
		var w float64 = -1
		for u, x := range r.Waits {
			if x > w || (x == w && u < who) {
				who, w = u, x
			}
		}
		bench(t, "%s: longest first-job wait %.0f s: %s (burst of %d, submitted at +%.0f s)",
			r.Kind, w, who, burst[who], offset[who].Seconds())
	}
	if len(fair.Recalcs) > 0 {
		var s []string
		for _, d := range fair.Recalcs {
			s = append(s, fmt.Sprintf("+%.0fs", d.Seconds()))
		}
		bench(t, "fair: fair-share factors recomputed at %s from the start of the peak", strings.Join(s, " "))
	}

	fmax, rmax := percentile(fw, 1), percentile(rw, 1)
	cut := fmax >= 4*rmax
	longer := fair.Makespan <= 1.05*fifo.Makespan
	verdict := "missed"
	if cut && longer {
		verdict = "met"
	}
	bench(t, "target (fair cuts the max first-job wait 4x or more, makespan at most 5%% longer): %s (max wait cut %sx, makespan %+.1f%%)",
		verdict, ratio(fmax, rmax), (fair.Makespan/fifo.Makespan-1)*100)
}
