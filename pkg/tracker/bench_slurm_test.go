package tracker

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/store"
	"github.com/ferry-hpc/ferry/pkg/store/storetest"
)

// countingRunner runs the real Slurm commands and counts them.
type countingRunner struct {
	slurm.ExecRunner
	calls atomic.Int64
}

func (r *countingRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	r.calls.Add(1)
	return r.ExecRunner.Run(ctx, env, name, args...)
}

// TestBenchTrackerRealSlurm measures the tracker against the real Slurm of
// the test cluster holding 10,000 ferry jobs: a 10,000-point sweep
// submitted with the real `ferry sweep` into the parked partition (the
// jobs queue and never start). Every tick runs the real squeue. It prints
// the tick, Slurm calls and Redis round trips per tick, memory, the lag
// from real state changes (scancel) to Redis, and the naive way run for
// real: one `squeue -j` per job, all 10,000 of them.
//
// tests/run.sh runs it after the other tests (FERRY_BENCH_SLURM=1): the
// cancelled jobs stay in Slurm's listing for MinJobAge.
func TestBenchTrackerRealSlurm(t *testing.T) {
	if os.Getenv("FERRY_BENCH_SLURM") != "1" {
		t.Skip("benchmark against the real cluster: set FERRY_BENCH_SLURM=1 (tests/run.sh runs it)")
	}
	ferry := os.Getenv("FERRY_BIN")
	if ferry == "" {
		ferry = "/usr/local/bin/ferry"
	}
	const n = 10000
	ctx := context.Background()

	// The sweep, as root, with its spool in a home of its own.
	home := t.TempDir()
	proj := filepath.Join(home, "bench")
	require.NoError(t, os.MkdirAll(proj, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(proj, "main.py"), []byte("print(1)\n"), 0o644))
	points := make([]map[string]int, n)
	for i := range points {
		points[i] = map[string]int{"i": i}
	}
	list, err := json.Marshal(points)
	require.NoError(t, err)
	listFile := filepath.Join(home, "points.json")
	require.NoError(t, os.WriteFile(listFile, list, 0o644))
	cmd := exec.Command(ferry, "sweep", "-o", "json", "--partition", "parked", "--params-list", listFile, proj, "--", "true")
	cmd.Env = append(os.Environ(), "HOME="+home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	require.NoError(t, cmd.Run(), errb.String())
	var sw struct {
		Arrays []struct {
			SlurmID string `json:"slurm_id"`
		} `json:"arrays"`
		Tasks []struct {
			ID string `json:"id"`
		} `json:"tasks"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &sw))
	require.Len(t, sw.Tasks, n)
	var arrays []string
	for _, a := range sw.Arrays {
		arrays = append(arrays, a.SlurmID)
	}
	t.Cleanup(func() { _ = exec.Command("scancel", arrays...).Run() })
	benchLine(t, "real Slurm: a %d-task sweep (%d arrays) in the parked partition, submitted in %s", n, len(arrays), time.Since(start).Round(time.Millisecond))

	runner := &countingRunner{ExecRunner: slurm.ExecRunner{}}
	sl := &slurm.Client{Runner: runner}
	all, err := sl.Jobs(ctx, slurm.Query{})
	require.NoError(t, err)
	var tasks []slurm.Job
	for _, j := range all {
		if _, ok := j.FerryID(); ok && j.ArrayTaskID >= 0 && slices.Contains(arrays, j.ArrayJobID) {
			tasks = append(tasks, j)
		}
	}
	require.Len(t, tasks, n, "squeue lists every task of the sweep")
	// In task order (squeue lists by priority): the sweep's first tasks,
	// which are cancelled below, come first.
	slices.SortFunc(tasks, func(a, b slurm.Job) int {
		ja, _ := strconv.Atoi(a.ArrayJobID)
		jb, _ := strconv.Atoi(b.ArrayJobID)
		if ja != jb {
			return ja - jb
		}
		return a.ArrayTaskID - b.ArrayTaskID
	})
	ids := make([]string, len(tasks)) // the sweep's tasks as Slurm names them, 123_4
	for i, j := range tasks {
		ids[i] = j.ID
	}
	runner.calls.Store(0)

	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{})
	heapBefore := heap()
	tr := New(Options{Slurm: sl, Store: st, Spools: []string{filepath.Join(home, ".ferry", "jobs")},
		Tick: time.Second, NodeEvery: time.Hour, Rescan: time.Hour})
	start = time.Now()
	require.NoError(t, tr.Tick(ctx))
	benchLine(t, "real Slurm: first tick (store read, spool scan of %d task dirs, real squeue, full write): %s", n, time.Since(start).Round(time.Millisecond))
	heapAfter := heap()

	listed, err := sl.Jobs(ctx, slurm.Query{})
	require.NoError(t, err)
	c0, r0 := runner.calls.Load(), st.Stats().RoundTrips
	var ticks []time.Duration
	const rounds = 20
	for range rounds {
		s := time.Now()
		require.NoError(t, tr.Tick(ctx))
		ticks = append(ticks, time.Since(s))
	}
	calls := float64(runner.calls.Load()-c0) / rounds
	trips := float64(st.Stats().RoundTrips-r0) / rounds
	benchLine(t, "real Slurm: tick at %d ferry jobs (squeue lists %d, ended ones included), real squeue included: median %s, p99 %s; Slurm calls per tick %.0f; Redis round trips per tick %.0f (target: < 200 ms)",
		n, len(listed), pctl(ticks, .5).Round(100*time.Microsecond), pctl(ticks, .99).Round(100*time.Microsecond), calls, trips)
	require.Equal(t, 1.0, calls, "one squeue per tick")
	benchLine(t, "real Slurm: tracker heap at %d jobs %.1f MB", n, float64(heapAfter-heapBefore)/(1<<20))

	// Real state changes: 10 tasks cancelled with `ferry cancel` every
	// 100 ms for 5 s (it marks the cancel in the job dir, then scancel; a
	// pending array task then leaves Slurm's listing), with the tracker's
	// own loop (1 s tick, polling: this tracker gets no jobcomp push); a
	// follower of the event stream notes each arrival.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	lf := followLag(t, runCtx, st, job.Cancelled)
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		if err := tr.Run(runCtx); err != nil && runCtx.Err() == nil {
			t.Errorf("tracker loop: %v", err)
		}
	}()
	for k := range 50 {
		var batch []string
		for _, task := range sw.Tasks[k*10 : k*10+10] {
			batch = append(batch, task.ID)
		}
		// From the moment ferry cancel starts: the tracker may see the
		// change before the command has exited.
		now := time.Now()
		for _, id := range batch {
			lf.changed(job.ID(id), now)
		}
		c := exec.Command(ferry, append([]string{"cancel"}, batch...)...)
		c.Env = append(os.Environ(), "HOME="+home)
		out, err := c.CombinedOutput()
		require.NoError(t, err, "ferry cancel: %s", out)
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for lf.left() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	<-runDone
	lags, missed := lf.result()
	require.NotEmpty(t, lags)
	benchLine(t, "real Slurm: lag from the start of ferry cancel to the cancelled state in Redis at %d jobs (1 s tick, polling only, %d changes): p50 %s, p99 %s, max %s; %d not seen (target: p99 < 2 s)",
		n, len(lags), pctl(lags, .5).Round(time.Millisecond), pctl(lags, .99).Round(time.Millisecond), pctl(lags, 1).Round(time.Millisecond), missed)

	// The naive way, for real: one `squeue -j ID` per job, every job.
	start = time.Now()
	live := ids[500:] // the first 500 were cancelled above and left the listing
	for _, id := range live {
		jobs, err := sl.Jobs(ctx, slurm.Query{JobIDs: []string{id}})
		require.NoError(t, err)
		require.Len(t, jobs, 1, "squeue -j %s", id)
	}
	naiveTick := time.Since(start)
	tick := pctl(ticks, .5)
	benchLine(t, "real Slurm: naive tick (one squeue -j per job, all %d run): %d Slurm calls, %s; vs 1 call and %s: %dx the calls, %.0fx the time",
		len(live), len(live), naiveTick.Round(time.Millisecond), tick.Round(100*time.Microsecond), len(live), float64(naiveTick)/float64(tick))
}
