package tracker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/store"
	"github.com/ferry-hpc/ferry/pkg/store/storetest"
)

// recordedSqueue is a Slurm Runner that answers squeue with a listing in
// squeue's exact output format (what the real command prints for the
// command line pkg/slurm builds), so the real parser reads it. It counts
// the calls.
type recordedSqueue struct {
	out   atomic.Pointer[[]byte]
	calls atomic.Int64
}

func (r *recordedSqueue) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	r.calls.Add(1)
	if name != "squeue" {
		return nil, nil // sinfo: no nodes
	}
	return *r.out.Load(), nil
}

func benchLine(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("BENCH tracker "+format, args...)
	t.Log(line)
	fmt.Println(line)
}

func pctl(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBenchTracker measures the tracker at 10,000 ferry jobs: the tick,
// Slurm calls and Redis round trips per tick, memory, the lag from a Slurm
// state change to Redis, and the naive way (one squeue -j per job) for
// comparison. It prints BENCH lines and fails only on the call counts.
func TestBenchTracker(t *testing.T) {
	if os.Getenv("FERRY_BENCH") != "1" && os.Getenv("FERRY_E2E") != "1" {
		t.Skip("benchmark: set FERRY_BENCH=1 (tests/run.sh runs it)")
	}
	const n = 10000
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{})
	ctx := context.Background()
	me, err := user.Current()
	require.NoError(t, err)
	uid, _ := strconv.Atoi(me.Uid)

	// 10,000 job dirs in a spool, and their squeue lines: 10% running,
	// the rest held in the queue.
	spool := filepath.Join(t.TempDir(), "home", me.Username, ".ferry", "jobs")
	require.NoError(t, os.MkdirAll(spool, 0o700))
	base := time.Now().Add(-time.Hour)
	ids := job.NewIDs(base, n)
	lines := make([]slurm.Job, n)
	for i, id := range ids {
		dir := filepath.Join(spool, string(id))
		require.NoError(t, os.Mkdir(dir, 0o700))
		sub := base.Add(time.Duration(i) * time.Millisecond)
		spec := job.Spec{ID: id, Project: fmt.Sprintf("proj%d", i%50), Name: "bench", Command: []string{"python3", "main.py"},
			Image: "ferry/sandbox:latest", Resources: job.Resources{CPUs: 1, MemBytes: 1 << 30},
			Params: map[string]any{"i": i, "lr": 0.001 * float64(i%10)}, User: me.Username, UID: uid, Submitted: sub, Dir: dir}
		e := &env{t: t}
		e.writeJSON(dir, job.SpecFile, spec)
		sid := strconv.Itoa(100000 + i)
		require.NoError(t, os.WriteFile(filepath.Join(dir, job.SlurmIDFile), []byte(sid+"\n"), 0o600))
		l := slurm.Job{ID: sid, RawID: sid, ArrayJobID: sid, ArrayTaskID: -1, Name: "ferry/" + spec.Project,
			State: "PENDING", Reason: "JobHeldUser", Comment: "ferry:" + string(id), User: me.Username, UID: uid,
			Partition: "debug", Submit: sub, TimeLimit: "1:00:00", WorkDir: dir}
		if i%10 == 0 {
			l.State, l.Reason, l.Nodes, l.Start = "RUNNING", "", "w"+strconv.Itoa(i%2+1), sub.Add(time.Second)
		}
		lines[i] = l
	}
	runner := &recordedSqueue{}
	var mu sync.Mutex
	render := func() {
		mu.Lock()
		out := slurm.FormatJobs(lines)
		mu.Unlock()
		runner.out.Store(&out)
	}
	render()
	benchLine(t, "listing: %d ferry jobs, %d KB of squeue output", n, len(*runner.out.Load())>>10)

	heapBefore := heap()
	tr := New(Options{Slurm: &slurm.Client{Runner: runner}, Store: st, Spools: []string{filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(spool))), "*", ".ferry", "jobs")},
		Tick: time.Second, NodeEvery: time.Hour, Rescan: time.Hour})

	// The first tick reconciles: store read, spool scan of 10,000 dirs,
	// the listing, and the whole store written.
	start := time.Now()
	require.NoError(t, tr.Tick(ctx))
	cold := time.Since(start)
	heapAfter := heap()
	redisMem, err := st.MemoryUsed(ctx)
	require.NoError(t, err)
	benchLine(t, "first tick (store read + spool scan of %d dirs + full write): %s", n, cold.Round(time.Millisecond))

	// Steady ticks: nothing changed; then 100 state changes per tick.
	measure := func(changes int) (ticks []time.Duration, calls, trips float64) {
		c0, r0 := runner.calls.Load(), st.Stats().RoundTrips
		rng := rand.New(rand.NewPCG(1, uint64(changes)))
		for range 20 {
			if changes > 0 {
				mu.Lock()
				for range changes {
					l := &lines[rng.IntN(n)]
					if l.State == "PENDING" {
						l.State, l.Reason, l.Nodes, l.Start = "RUNNING", "", "w1", time.Now()
					} else {
						l.Reason = "Priority" // a reason change
						l.State, l.Nodes, l.Start = "PENDING", "", time.Time{}
					}
				}
				mu.Unlock()
				render()
			}
			s := time.Now()
			require.NoError(t, tr.Tick(ctx))
			ticks = append(ticks, time.Since(s))
		}
		return ticks, float64(runner.calls.Load()-c0) / 20, float64(st.Stats().RoundTrips-r0) / 20
	}
	idle, calls, trips := measure(0)
	benchLine(t, "tick at %d jobs, nothing changed: median %s, p99 %s; Slurm calls per tick %.0f; Redis round trips per tick %.0f",
		n, pctl(idle, .5).Round(100*time.Microsecond), pctl(idle, .99).Round(100*time.Microsecond), calls, trips)
	require.Equal(t, 1.0, calls, "one squeue per tick")
	busy, calls2, trips2 := measure(100)
	benchLine(t, "tick at %d jobs, 100 state changes per tick: median %s, p99 %s; Slurm calls per tick %.0f; Redis round trips per tick %.0f",
		n, pctl(busy, .5).Round(100*time.Microsecond), pctl(busy, .99).Round(100*time.Microsecond), calls2, trips2)
	require.Equal(t, 1.0, calls2)
	require.Equal(t, 1.0, trips2, "one store batch per tick")
	benchLine(t, "memory at %d jobs: tracker heap %.1f MB (%d B per job); Redis used_memory %.1f MB",
		n, float64(heapAfter-heapBefore)/(1<<20), (heapAfter-heapBefore)/n, float64(redisMem)/(1<<20))

	// Lag from a Slurm state change to Redis, with the real loop (1 s
	// tick): 20 jobs start every 100 ms; a follower of the event stream
	// notes when each change arrives.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	lf := followLag(t, runCtx, st, job.Running)
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = tr.Run(runCtx)
	}()
	rng := rand.New(rand.NewPCG(7, 7))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		now := time.Now()
		for k := 0; k < 20; {
			i := rng.IntN(n)
			if lines[i].State != "PENDING" {
				continue
			}
			lines[i].State, lines[i].Reason, lines[i].Nodes, lines[i].Start = "RUNNING", "", "w2", now
			lf.changed(ids[i], now)
			k++
		}
		mu.Unlock()
		render()
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond) // the last changes land
	stop()
	<-runDone
	lags, missed := lf.result()
	require.NotEmpty(t, lags)
	benchLine(t, "lag from a Slurm state change to Redis (1 s tick, %d changes, 200/s): p50 %s, p99 %s, max %s; %d not seen",
		len(lags), pctl(lags, .5).Round(time.Millisecond), pctl(lags, .99).Round(time.Millisecond), pctl(lags, 1).Round(time.Millisecond), missed)

	// The naive way: one `squeue -j ID` per job, timed against the real
	// cluster and multiplied by 10,000 calls; and one real listing of the
	// cluster at its own size.
	naive(t, n, pctl(idle, .5))
}

func naive(t *testing.T, n int, tick time.Duration) {
	if os.Getenv("FERRY_E2E") != "1" {
		benchLine(t, "naive (one squeue -j per job): skipped, needs the real cluster (FERRY_E2E=1)")
		return
	}
	if _, err := exec.LookPath("squeue"); err != nil {
		t.Fatalf("FERRY_E2E=1 but squeue is not installed: %v", err)
	}
	ctx := context.Background()
	c := slurm.New()
	id, err := c.Submit(ctx, "", "--hold", "--wrap", "true", "-J", "ferry/bench-naive", "--output=/dev/null", "--chdir=/tmp")
	require.NoError(t, err)
	defer func() { _ = c.Cancel(context.Background(), []string{id}, "") }()
	var each []time.Duration
	for range 30 {
		s := time.Now()
		jobs, err := c.Jobs(ctx, slurm.Query{JobIDs: []string{id}})
		each = append(each, time.Since(s))
		require.NoError(t, err)
		require.Len(t, jobs, 1)
	}
	per := pctl(each, .5)
	total := per * time.Duration(n)
	benchLine(t, "naive: squeue -j ID on the real cluster, median of 30: %s; extrapolated to %d jobs: %d Slurm calls and %s per tick (vs 1 call and %s: %dx the calls, %.0fx the time)",
		per.Round(100*time.Microsecond), n, n, total.Round(time.Millisecond), tick.Round(100*time.Microsecond), n, float64(total)/float64(tick))
	// One real listing of the cluster as it is, not scaled: squeue's cost
	// is mostly fixed per call, so its time at a few lines says nothing of
	// its time at 10,000.
	var whole []time.Duration
	var lines int
	for range 10 {
		s := time.Now()
		all, err := c.Jobs(ctx, slurm.Query{})
		whole = append(whole, time.Since(s))
		require.NoError(t, err)
		lines = len(all)
	}
	benchLine(t, "real squeue of the whole cluster as it is (%d lines), one exec and parse, median of 10: %s",
		lines, pctl(whole, .5).Round(100*time.Microsecond))
}

// lagFollower follows the store's event stream, as a dashboard does, and
// notes how long after each change the test made (changed) its event with
// the wanted state arrived.
type lagFollower struct {
	mu      sync.Mutex
	pending map[job.ID]time.Time
	lags    []time.Duration
	done    chan struct{}
}

func followLag(t *testing.T, ctx context.Context, st *store.Redis, want job.State) *lagFollower {
	t.Helper()
	evs, err := st.Events(ctx, "", 1_000_000)
	require.NoError(t, err)
	last := "0"
	if len(evs) > 0 {
		last = evs[len(evs)-1].StreamID
	}
	f := &lagFollower{pending: map[job.ID]time.Time{}, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for ctx.Err() == nil {
			got, err := st.WaitEvents(ctx, last, 200*time.Millisecond, 1000)
			now := time.Now()
			if err != nil {
				continue
			}
			f.mu.Lock()
			for _, ev := range got {
				last = ev.StreamID
				if at, ok := f.pending[ev.ID]; ok && ev.State == want {
					f.lags = append(f.lags, now.Sub(at))
					delete(f.pending, ev.ID)
				}
			}
			f.mu.Unlock()
		}
	}()
	return f
}

// changed records that the test changed job id's state in Slurm at at.
func (f *lagFollower) changed(id job.ID, at time.Time) {
	f.mu.Lock()
	f.pending[id] = at
	f.mu.Unlock()
}

// left is how many changes have not arrived yet.
func (f *lagFollower) left() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// result waits for the follower to stop (its context done) and returns the
// lags and how many changes never arrived.
func (f *lagFollower) result() ([]time.Duration, int) {
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lags, len(f.pending)
}
