package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
	"github.com/ferry-hpc/ferry/pkg/tracker"
)

// The tracker of the test cluster (tests/cluster.sh): Redis on
// 127.0.0.1:6390 with the password in /etc/ferry/redis.pass, health and
// metrics on 127.0.0.1:9465, the hook socket /run/ferry/tracker.sock.
const (
	redisAddr     = "127.0.0.1:6390"
	redisPassFile = "/etc/ferry/redis.pass"
	trackerURL    = "http://127.0.0.1:9465"
	hookSocket    = tracker.DefaultHookSocket
)

func redisPassword(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(redisPassFile)
	require.NoError(t, err, "the test cluster's Redis password (tests/cluster.sh up)")
	return strings.TrimSpace(string(data))
}

// jobStore opens the cluster's job store, as the dashboard would.
func jobStore(t testing.TB) *store.Redis {
	t.Helper()
	st := store.Open(store.Options{Addr: redisAddr, Password: redisPassword(t), Timeout: 2 * time.Second})
	t.Cleanup(func() { st.Close() })
	return st
}

// redisDo runs one raw command against the cluster's Redis.
func redisDo(t testing.TB, args ...any) any {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr, Password: redisPassword(t), Protocol: 2, DisableIdentity: true})
	defer c.Close()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil && err != redis.Nil {
		t.Fatalf("redis %v: %v", args, err)
	}
	return v
}

// cluster runs tests/cluster.sh, which starts and stops daemons the way
// `up` does, with the same pid files.
func cluster(t testing.TB, args ...string) {
	t.Helper()
	out, err := clusterCmd("", args...).CombinedOutput()
	require.NoError(t, err, "tests/cluster.sh %v:\n%s", args, out)
}

// clusterCmd is tests/cluster.sh with FERRY_TRACKER_ARGS set to
// trackerArgs (flags for a tracker it starts).
func clusterCmd(trackerArgs string, args ...string) *exec.Cmd {
	c := exec.Command("bash", append([]string{"../cluster.sh"}, args...)...)
	c.Env = append(os.Environ(), "FERRY_TRACKER_ARGS="+trackerArgs)
	return c
}

func trackerHealth(t testing.TB) (tracker.Health, error) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(trackerURL + "/healthz")
	if err != nil {
		return tracker.Health{}, err
	}
	defer resp.Body.Close()
	var h tracker.Health
	err = json.NewDecoder(resp.Body).Decode(&h)
	return h, err
}

// waitHealthy waits for the tracker to report Slurm and Redis reachable.
func waitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h, err := trackerHealth(t)
		if err == nil && h.OK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tracker is not healthy after %s: %+v %v", timeout, h, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var promLine = regexp.MustCompile(`(?m)^ferry_tracker_hook_events_total\{result="queued"\} ([0-9.e+]+)$`)

// hookEvents is how many jobcomp events the tracker has queued.
func hookEvents(t testing.TB) float64 {
	t.Helper()
	resp, err := http.Get(trackerURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		body.WriteString(sc.Text() + "\n")
	}
	m := promLine.FindStringSubmatch(body.String())
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// watch polls the store every 10 ms and records when each job was first
// seen in each state: what a dashboard reading Redis would see.
type watch struct {
	mu    sync.Mutex
	seen  map[job.ID]map[job.State]time.Time
	stop  chan struct{}
	done  chan struct{}
	store *store.Redis
}

func newWatch(t testing.TB, st *store.Redis) *watch {
	w := &watch{seen: map[job.ID]map[job.State]time.Time{}, stop: make(chan struct{}), done: make(chan struct{}), store: st}
	go w.run()
	t.Cleanup(w.close)
	return w
}

func (w *watch) add(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[job.ID(id)] == nil {
		w.seen[job.ID(id)] = map[job.State]time.Time{}
	}
}

func (w *watch) run() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
		w.mu.Lock()
		var ids []job.ID
		for id := range w.seen {
			ids = append(ids, id)
		}
		w.mu.Unlock()
		for _, id := range ids {
			j, err := w.store.Job(context.Background(), id)
			now := time.Now()
			if err != nil {
				continue
			}
			w.mu.Lock()
			if _, ok := w.seen[id][j.State]; !ok {
				w.seen[id][j.State] = now
			}
			w.mu.Unlock()
		}
	}
}

func (w *watch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
		<-w.done
	}
}

// at returns when the job was first seen in state st, waiting for it.
func (w *watch) at(t testing.TB, id string, st job.State, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		tm, ok := w.seen[job.ID(id)][st]
		states := fmt.Sprint(w.seen[job.ID(id)])
		w.mu.Unlock()
		if ok {
			return tm
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: not %s in Redis within %s (seen: %s)", id, st, timeout, states)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStore polls the store until the job's hash satisfies cond.
func waitStore(t testing.TB, st *store.Redis, id string, timeout time.Duration, cond func(*store.Job) bool) *store.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *store.Job
	for {
		j, err := st.Job(context.Background(), job.ID(id))
		if err == nil {
			last = j
			if cond(j) {
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: condition not met in Redis within %s; last %+v (%v)", id, timeout, last, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func terminal(j *store.Job) bool { return j.State.Terminal() }

// assertSameAsStatus checks the hash against `ferry status`: the tracker
// and the CLI apply the same rules to the same sources. A job cancelled by
// Slurm shows "cancelled" at once and its sandbox's record (reason, exit
// code) a moment later: the hash gets a few seconds to catch up.
func assertSameAsStatus(t *testing.T, u tuser, j *store.Job) job.Status {
	t.Helper()
	st := status(t, u, string(j.ID))
	rs := jobStore(t)
	deadline := time.Now().Add(5 * time.Second)
	for (j.Reason != st.Reason || (j.ExitCode == nil) != (st.ExitCode == nil)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if nj, err := rs.Job(context.Background(), j.ID); err == nil {
			j = nj
		}
		st = status(t, u, string(j.ID))
	}
	assert.Equal(t, st.State, j.State, "job %s", j.ID)
	assert.Equal(t, st.Reason, j.Reason, "job %s", j.ID)
	assert.Equal(t, st.ExitCode, j.ExitCode, "job %s", j.ID)
	assert.Equal(t, st.SlurmID, j.SlurmID, "job %s", j.ID)
	assert.Equal(t, u.Name, j.User)
	assert.Equal(t, st.Project, j.Project)
	return st
}

// terminalEvents counts each job's terminal state events in the stream.
func terminalEvents(t testing.TB, st *store.Redis, ids ...string) map[string]int {
	t.Helper()
	evs, err := st.Events(context.Background(), "", 1_000_000)
	require.NoError(t, err)
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	out := map[string]int{}
	for _, ev := range evs {
		if ev.Type == store.EventState && want[string(ev.ID)] && ev.State.Terminal() {
			out[string(ev.ID)]++
		}
	}
	return out
}

// Three jobs, one succeeding, one failing, one cancelled, reach the right
// state, reason and exit code in Redis through the jobcomp hook. The
// tracker is restarted with a one-hour tick for this test, so no poll can
// deliver a state: each terminal event must say it came from the hook.
// How long after each job's end its state was in Redis is printed.
func TestTrackerTerminalStatesViaHook(t *testing.T) {
	u := lookup(t, alice)
	restartTracker(t, "--tick 1h")
	t.Cleanup(func() { restartTracker(t, "") })
	st := jobStore(t)
	w := newWatch(t, st)
	hooks := hookEvents(t)
	dir, proj := project(t, u, "tracked")

	ok := submit(t, u, dir, proj, "--", "sh", "-c", "sleep 1; exit 0")
	w.add(ok.ID)
	bad := submit(t, u, dir, proj, "--", "sh", "-c", "sleep 1; exit 3")
	w.add(bad.ID)
	gone := submit(t, u, dir, proj, "--", "sleep", "600")
	w.add(gone.ID)
	waitState(t, u, gone.ID, 60*time.Second, func(s job.Status) bool { return s.State == job.Running })
	waitContainer(t, gone.ID, 60*time.Second)
	r := ferry(t, u, dir, "cancel", gone.ID)
	require.Equal(t, 0, r.Code, r.String())
	cancelled := time.Now()

	want := []struct {
		s      submitted
		state  job.State
		reason string
		code   int
	}{
		{ok, job.Succeeded, "exited with code 0", 0},
		{bad, job.Failed, "exited with code 3", 3},
		{gone, job.Cancelled, "cancelled while running; the container was stopped and removed", 0},
	}
	var lags []string
	for _, tt := range want {
		seen := w.at(t, tt.s.ID, tt.state, 90*time.Second)
		j := waitStore(t, st, tt.s.ID, 10*time.Second, terminal)
		assert.Equal(t, tt.state, j.State, "job %s: %s", tt.s.ID, j.Reason)
		assert.Equal(t, store.SourceHook, j.Source, "job %s: terminal state from the hook", tt.s.ID)
		assert.Equal(t, store.SourceHook, terminalSource(t, st, tt.s.ID), "the terminal event came from the hook")
		// A cancelled job's result.json is written after Slurm ended it
		// (the sandbox stops the container first): its lag counts from
		// ferry cancel, and its file is not waited for here.
		end, from := cancelled, "ferry cancel returned"
		if tt.state != job.Cancelled {
			end, from = readResult(t, tt.s.Dir).Ended, "its container ended"
		}
		lags = append(lags, fmt.Sprintf("%s %s after %s", tt.state, seen.Sub(end).Round(time.Millisecond), from))
	}
	assert.GreaterOrEqual(t, hookEvents(t)-hooks, 3.0, "the jobcomp hook told the tracker")
	bench(t, "tracker hook path (no polling): terminal state in Redis %s (target: within 1 s of the job's end)", strings.Join(lags, ", "))

	// Polling again: the sandbox's own record (a cancelled job's reason is
	// written after Slurm ended it) is read, and agrees with ferry status,
	// with still one terminal event per job.
	restartTracker(t, "")
	for _, tt := range want {
		j := waitStore(t, st, tt.s.ID, 30*time.Second, func(j *store.Job) bool { return j.Reason == tt.reason })
		assert.Equal(t, tt.state, j.State)
		if tt.state != job.Cancelled {
			require.NotNil(t, j.ExitCode)
			assert.Equal(t, tt.code, *j.ExitCode)
		}
		assertSameAsStatus(t, u, j)
		res := readResult(t, tt.s.Dir)
		assert.Equal(t, tt.s.SlurmID, j.SlurmID)
		assert.False(t, j.Submitted.IsZero())
		assert.Equal(t, res.Node, j.Node)
		assert.Equal(t, 1, terminalEvents(t, st, tt.s.ID)[tt.s.ID], "one terminal event")
	}

	// The pages a dashboard reads: per user and per project, newest first.
	page, _, err := st.Jobs(context.Background(), store.Page{Project: "tracked", Limit: 200})
	require.NoError(t, err)
	var ids []string
	for _, j := range page {
		ids = append(ids, string(j.ID))
	}
	assert.Subset(t, ids, []string{ok.ID, bad.ID, gone.ID})
}

// With the hook turned off (its socket moved away), polling alone shows
// each state change; how soon is printed.
func TestTrackerStateChangesWithoutHook(t *testing.T) {
	u := lookup(t, alice)
	waitHealthy(t, 30*time.Second)
	st := jobStore(t)
	w := newWatch(t, st)
	off := hookSocket + ".off"
	require.NoError(t, os.Rename(hookSocket, off))
	t.Cleanup(func() { _ = os.Rename(off, hookSocket) })
	hooks := hookEvents(t)

	dir, proj := project(t, u, "polled")
	s := submit(t, u, dir, proj, "--", "sh", "-c", "sleep 3; exit 0")
	w.add(s.ID)
	running := w.at(t, s.ID, job.Running, 60*time.Second)
	done := w.at(t, s.ID, job.Succeeded, 60*time.Second)
	res := readResult(t, s.Dir)
	assert.Equal(t, hooks, hookEvents(t), "no hook event reached the tracker")
	j := waitStore(t, st, s.ID, 5*time.Second, terminal)
	assertSameAsStatus(t, u, j)
	assert.Contains(t, []store.Source{store.SourceSqueue, store.SourceResult}, j.Source, "a polled state")
	assert.Contains(t, []store.Source{store.SourceSqueue, store.SourceResult}, terminalSource(t, st, s.ID))

	// Slurm's start time has one-second resolution: the lag is at most
	// what is measured here.
	jobs, err := exec.Command("squeue", "-h", "-t", "all", "-j", s.SlurmID, "-o", "%S").Output()
	require.NoError(t, err)
	started, err := time.ParseInLocation("2006-01-02T15:04:05", strings.TrimSpace(string(jobs)), time.Local)
	require.NoError(t, err)
	bench(t, "tracker polling only (hook off, 1 s tick): running in Redis <=%s after Slurm started the job, succeeded %s after its container ended (target: within 3 s)",
		running.Sub(started).Round(time.Millisecond), done.Sub(res.Ended).Round(time.Millisecond))
}

// assertRebuilt checks what followers see after the tracker rebuilt an
// emptied store: a resync event, and no job's end written again.
func assertRebuilt(t *testing.T, st *store.Redis, ids []string) {
	t.Helper()
	evs, err := st.Events(context.Background(), "", 1000)
	require.NoError(t, err)
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	assert.Contains(t, types, store.EventResync, "followers are told to reload")
	assert.Empty(t, terminalEvents(t, st, ids...), "the rebuild writes no job's end again")
}

// terminalSource is the source of a job's terminal state event.
func terminalSource(t testing.TB, st *store.Redis, id string) store.Source {
	t.Helper()
	evs, err := st.Events(context.Background(), "", 1_000_000)
	require.NoError(t, err)
	var src store.Source
	for _, ev := range evs {
		if ev.Type == store.EventState && string(ev.ID) == id && ev.State.Terminal() {
			src = ev.Source
		}
	}
	return src
}

// restartTracker restarts the cluster's tracker with extra flags ("" for
// none) and waits until it is healthy.
func restartTracker(t testing.TB, args string) {
	t.Helper()
	cluster(t, "stop", "tracker")
	out, err := clusterCmd(args, "start", "tracker").CombinedOutput()
	require.NoError(t, err, "tests/cluster.sh start tracker:\n%s", out)
	waitHealthy(t, 30*time.Second)
}

// The tracker restarts, then redis-server restarts, then Redis is
// flushed: after each, every job is in Redis with the right state, once,
// and no terminal event is written twice.
func TestTrackerRecovery(t *testing.T) {
	u := lookup(t, alice)
	waitHealthy(t, 30*time.Second)
	st := jobStore(t)
	dir, proj := project(t, u, "recover")
	a := submit(t, u, dir, proj, "--", "true")
	b := submit(t, u, dir, proj, "--", "sh", "-c", "exit 2")
	long := submit(t, u, dir, proj, "--", "sleep", "600")
	t.Cleanup(func() { ferry(t, u, dir, "cancel", long.ID) })
	long2 := submit(t, u, dir, proj, "--", "sleep", "600")
	t.Cleanup(func() { ferry(t, u, dir, "cancel", long2.ID) })
	waitStore(t, st, a.ID, 90*time.Second, terminal)
	waitStore(t, st, b.ID, 90*time.Second, terminal)
	for _, l := range []submitted{long, long2} {
		waitStore(t, st, l.ID, 90*time.Second, func(j *store.Job) bool { return j.State == job.Running })
	}
	ids := []string{a.ID, b.ID, long.ID, long2.ID}

	check := func(t *testing.T) {
		t.Helper()
		for _, id := range ids {
			j := waitStore(t, st, id, 30*time.Second, func(j *store.Job) bool { return j.State != "" })
			assertSameAsStatus(t, u, j)
			score := redisDo(t, "ZSCORE", "ferry:jobs", id)
			assert.NotNil(t, score, "job %s in the all-jobs index", id)
			assert.NotNil(t, redisDo(t, "ZSCORE", "ferry:user:"+u.Name+":jobs", id))
			assert.NotNil(t, redisDo(t, "ZSCORE", "ferry:project:recover:jobs", id))
		}
	}

	t.Run("tracker restart", func(t *testing.T) {
		before := terminalEvents(t, st, a.ID, b.ID)
		require.Equal(t, map[string]int{a.ID: 1, b.ID: 1}, before)
		cluster(t, "stop", "tracker")
		// A job ends while the tracker is down.
		r := ferry(t, u, dir, "cancel", long.ID)
		require.Equal(t, 0, r.Code, r.String())
		waitState(t, u, long.ID, 30*time.Second, func(s job.Status) bool { return s.State.Terminal() })
		cluster(t, "start", "tracker")
		waitHealthy(t, 30*time.Second)
		waitStore(t, st, long.ID, 10*time.Second, terminal)
		check(t)
		assert.Equal(t, map[string]int{a.ID: 1, b.ID: 1, long.ID: 1}, terminalEvents(t, st, ids...))
	})

	redisDown := func(t *testing.T) {
		t.Helper()
		cluster(t, "stop", "redis")
		deadline := time.Now().Add(10 * time.Second)
		for {
			h, err := trackerHealth(t)
			require.NoError(t, err)
			if h.Redis.Status == "unreachable" {
				break
			}
			require.True(t, time.Now().Before(deadline), "health does not report Redis down: %+v", h)
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("redis restart", func(t *testing.T) {
		redisDown(t)
		// A job ends while Redis is down: its end is written once Redis
		// is back, once.
		r := ferry(t, u, dir, "cancel", long2.ID)
		require.Equal(t, 0, r.Code, r.String())
		waitState(t, u, long2.ID, 30*time.Second, func(s job.Status) bool { return s.State.Terminal() })
		cluster(t, "start", "redis")
		waitHealthy(t, 30*time.Second)
		waitStore(t, st, long2.ID, 10*time.Second, terminal)
		check(t)
		assert.Equal(t, map[string]int{a.ID: 1, b.ID: 1, long.ID: 1, long2.ID: 1}, terminalEvents(t, st, ids...))
	})

	t.Run("redis restarted without its data", func(t *testing.T) {
		redisDown(t)
		require.NoError(t, os.Remove("/var/lib/ferry-redis/dump.rdb"))
		cluster(t, "start", "redis")
		waitHealthy(t, 30*time.Second)
		for _, id := range ids {
			waitStore(t, st, id, 10*time.Second, func(j *store.Job) bool { return j.State != "" })
		}
		check(t)
		assertRebuilt(t, st, ids)
	})

	t.Run("flushall", func(t *testing.T) {
		gen := redisDo(t, "HGET", "ferry:tracker", "gen")
		require.NotNil(t, gen)
		start := time.Now()
		redisDo(t, "FLUSHALL")
		for _, id := range ids {
			waitStore(t, st, id, 30*time.Second, func(j *store.Job) bool { return j.State != "" })
		}
		t.Logf("FLUSHALL: every job back in Redis after %s", time.Since(start).Round(time.Millisecond))
		check(t)
		assertRebuilt(t, st, ids)
	})
}

// With slurmctld stopped, a running job keeps its state and health says
// Slurm is unreachable; when slurmctld is back the job ends normally, with
// one terminal event.
func TestTrackerSlurmctldRestart(t *testing.T) {
	u := lookup(t, alice)
	waitHealthy(t, 30*time.Second)
	st := jobStore(t)
	dir, proj := project(t, u, "ctld")
	s := submit(t, u, dir, proj, "--", "sleep", "8")
	waitStore(t, st, s.ID, 90*time.Second, func(j *store.Job) bool { return j.State == job.Running })

	stopped := false
	t.Cleanup(func() {
		if stopped {
			cluster(t, "start", "slurmctld")
		}
	})
	cluster(t, "stop", "slurmctld")
	stopped = true
	deadline := time.Now().Add(20 * time.Second)
	var h tracker.Health
	for {
		var err error
		h, err = trackerHealth(t)
		require.NoError(t, err)
		if h.Slurm.Status == "unreachable" {
			break
		}
		require.True(t, time.Now().Before(deadline), "health does not report Slurm down: %+v", h)
		time.Sleep(100 * time.Millisecond)
	}
	assert.False(t, h.OK)
	assert.NotEmpty(t, h.Slurm.Error)
	t.Logf("health with slurmctld stopped: slurm=%s (%s)", h.Slurm.Status, h.Slurm.Error)
	time.Sleep(2 * time.Second) // a few ticks without Slurm
	j, err := st.Job(context.Background(), job.ID(s.ID))
	require.NoError(t, err)
	assert.Equal(t, job.Running, j.State, "a Slurm outage changes no state")
	meta := redisDo(t, "HGET", "ferry:tracker", "slurm")
	assert.Equal(t, "unreachable", meta)

	cluster(t, "start", "slurmctld")
	stopped = false
	waitHealthy(t, 60*time.Second)
	j = waitStore(t, st, s.ID, 90*time.Second, terminal)
	assert.Equal(t, job.Succeeded, j.State, j.Reason)
	assertSameAsStatus(t, u, j)
	assert.Equal(t, map[string]int{s.ID: 1}, terminalEvents(t, st, s.ID))
	evs, err := st.Events(context.Background(), "", 1_000_000)
	require.NoError(t, err)
	for _, ev := range evs {
		if ev.ID == job.ID(s.ID) {
			assert.NotContains(t, []job.State{job.Lost, job.Unknown}, ev.State)
		}
	}
}

// Jobs never hold the Redis password: the file is root's, and a user
// cannot read it.
func TestRedisPasswordIsNotUsers(t *testing.T) {
	u := lookup(t, alice)
	fi, err := os.Stat(redisPassFile)
	require.NoError(t, err)
	assert.Zero(t, fi.Mode().Perm()&0o007, "%s is %s", redisPassFile, fi.Mode())
	r := cmdAs(context.Background(), u, u.Home, nil, "cat", redisPassFile)
	out, err := r.CombinedOutput()
	assert.Error(t, err)
	assert.Contains(t, string(out), "Permission denied")
}
