package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// Three jobs go through their lives; after every tick the store holds
// what `ferry status` says (the same rules), and each change is one event.
func TestTickMirrorsSlurmAndResults(t *testing.T) {
	e := newEnv(t)
	ok, okLine := e.submit("hello", map[string]any{"n": 1000, "greeting": "hi"})
	bad, badLine := e.submit("hello", nil)
	gone, goneLine := e.submit("other", nil)
	for _, l := range []slurm.Job{okLine, badLine, goneLine} {
		e.slurm.set(l)
	}
	e.tick()

	j := e.job(ok)
	assert.Equal(t, job.Queued, j.State)
	assert.Equal(t, "waiting: other jobs have higher priority", j.Reason)
	assert.Equal(t, e.user, j.User)
	assert.Equal(t, "hello", j.Project)
	assert.Equal(t, okLine.ID, j.SlurmID)
	assert.Equal(t, -1, j.ArrayIndex)
	assert.JSONEq(t, `{"n":1000,"greeting":"hi"}`, string(j.Params))
	assert.Equal(t, e.dir(ok), j.Dir)

	e.clock.Add(time.Second)
	now := e.clock.Now()
	e.slurm.set(running(okLine, "w1", now))
	e.slurm.set(running(badLine, "w2", now))
	e.slurm.set(running(goneLine, "w1", now))
	e.tick()
	assert.Equal(t, job.Running, e.job(ok).State)
	assert.Equal(t, "w2", e.job(bad).Node)

	e.clock.Add(3 * time.Second)
	now = e.clock.Now()
	e.result(ok, job.Succeeded, "exited with code 0", 0)
	e.result(bad, job.Failed, "exited with code 3", 3)
	e.result(gone, job.Cancelled, "cancelled by the user", 143)
	e.slurm.set(ended(running(okLine, "w1", now.Add(-3*time.Second)), "COMPLETED", now))
	e.slurm.set(ended(running(badLine, "w2", now.Add(-3*time.Second)), "FAILED", now))
	e.slurm.set(ended(running(goneLine, "w1", now.Add(-3*time.Second)), "CANCELLED", now))
	e.tick()

	want := map[job.ID][3]string{
		ok:   {"succeeded", "exited with code 0", "0"},
		bad:  {"failed", "exited with code 3", "3"},
		gone: {"cancelled", "cancelled by the user", "143"},
	}
	// The CLI's view of the same spool and the same Slurm.
	obs := &observe.Observer{Spool: job.Spool{Root: e.spool}, Slurm: e.slurm, Now: e.clock.Now}
	cli, err := obs.List(context.Background(), observe.Filter{})
	require.NoError(t, err)
	require.Len(t, cli, 3)
	for _, st := range cli {
		j := e.job(st.ID)
		assert.Equal(t, st.State, j.State, "job %s", st.ID)
		assert.Equal(t, st.Reason, j.Reason)
		require.NotNil(t, j.ExitCode)
		assert.Equal(t, *st.ExitCode, *j.ExitCode)
		assert.Equal(t, want[st.ID], [3]string{string(j.State), j.Reason, strconv.Itoa(*j.ExitCode)})
	}

	evs := e.events()
	assert.Equal(t, []string{">queued", "queued>running", "running>succeeded"}, stateEvents(evs, ok))
	assert.Equal(t, []string{">queued", "queued>running", "running>failed"}, stateEvents(evs, bad))
	assert.Equal(t, []string{">queued", "queued>running", "running>cancelled"}, stateEvents(evs, gone))
	for _, ev := range evs {
		if ev.ID == bad && ev.State == job.Failed {
			require.NotNil(t, ev.ExitCode)
			assert.Equal(t, 3, *ev.ExitCode)
			assert.Equal(t, e.user, ev.User)
		}
	}

	// Later ticks with nothing new write nothing but the heartbeat, and
	// the jobs leaving Slurm (MinJobAge) change nothing either.
	e.tick()
	e.slurm.drop(okLine.ID)
	e.slurm.drop(badLine.ID)
	e.clock.Add(10 * time.Minute)
	e.tick()
	assert.Len(t, e.events(), len(evs))
	assert.Equal(t, job.Succeeded, e.job(ok).State)

	// Indexes: per user and per project.
	page, total, err := e.st.Jobs(context.Background(), store.Page{Project: "hello"})
	require.NoError(t, err)
	assert.Equal(t, int64(2), total)
	assert.ElementsMatch(t, []job.ID{ok, bad}, []job.ID{page[0].ID, page[1].ID})
	_, total, err = e.st.Jobs(context.Background(), store.Page{User: e.user})
	require.NoError(t, err)
	assert.Equal(t, int64(3), total)
}

func TestOneSlurmCallPerTick(t *testing.T) {
	e := newEnv(t)
	for range 50 {
		_, l := e.submit("many", nil)
		e.slurm.set(l)
	}
	e.tick()
	e.tick()
	e.tick()
	assert.Equal(t, 4, e.slurm.calls, "one at start, one per tick")
}

// When Slurm fails, nothing changes state and nothing is declared
// finished or lost; health says so.
func TestSlurmErrorsKeepStates(t *testing.T) {
	e := newEnv(t)
	id, l := e.submit("p", nil)
	e.slurm.set(running(l, "w1", e.clock.Now()))
	e.tick()
	require.Equal(t, job.Running, e.job(id).State)
	before := len(e.events())

	down := &slurm.CmdError{Args: []string{"squeue"}, ExitCode: 1,
		Stderr: "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"}
	e.slurm.fail(down)
	for range 3 {
		e.clock.Add(time.Hour) // far past any grace period
		err := e.tr.Tick(context.Background())
		assert.ErrorContains(t, err, "Unable to contact slurm controller")
	}
	assert.Equal(t, job.Running, e.job(id).State)
	assert.Len(t, e.events(), before)
	h := e.tr.Health()
	assert.False(t, h.OK)
	assert.Equal(t, "unreachable", h.Slurm.Status)
	assert.Contains(t, h.Slurm.Error, "Unable to contact slurm controller")
	assert.Equal(t, "ok", h.Redis.Status)
	meta, err := e.st.Meta(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "unreachable", meta["slurm"])

	rec := httptest.NewRecorder()
	e.tr.HealthHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	assert.Equal(t, 503, rec.Code)
	assert.Contains(t, rec.Body.String(), `"status": "unreachable"`)

	// Slurm answers again: the job is still running there.
	e.slurm.fail(nil)
	e.tick()
	assert.Equal(t, job.Running, e.job(id).State)
	assert.Len(t, e.events(), before)
	assert.True(t, e.tr.Health().OK)
}

// A job that leaves Slurm without a result is lost only after the grace
// period, with a reason; one whose result is there ends as it says.
func TestLeftSlurm(t *testing.T) {
	e := newEnv(t)
	lost, lostLine := e.submit("p", nil)
	done, doneLine := e.submit("p", nil)
	e.clock.Add(2 * time.Minute)
	e.slurm.set(running(lostLine, "w1", e.clock.Now()))
	e.slurm.set(running(doneLine, "w2", e.clock.Now()))
	e.tick()

	// slurmctld lost its state: both vanish from the listing.
	e.slurm.drop(lostLine.ID)
	e.slurm.drop(doneLine.ID)
	e.result(done, job.Succeeded, "exited with code 0", 0)
	e.clock.Add(time.Second)
	e.tick()
	assert.Equal(t, job.Succeeded, e.job(done).State)
	assert.Equal(t, job.Running, e.job(lost).State, "within the grace period")

	e.clock.Add(61 * time.Second)
	e.tick()
	j := e.job(lost)
	assert.Equal(t, job.Lost, j.State)
	assert.Equal(t, "Slurm no longer knows this job and it left no result.json", j.Reason)
	assert.Equal(t, []string{">running", "running>lost"}, stateEvents(e.events(), lost))

	// A restarted tracker keeps it lost: no "submitted" again, no second event.
	e.tr = e.newTracker()
	e.tick()
	e.clock.Add(61 * time.Second)
	e.tick()
	assert.Equal(t, job.Lost, e.job(lost).State)
	assert.Equal(t, []string{">running", "running>lost"}, stateEvents(e.events(), lost))
}

func TestCancelledWhileQueued(t *testing.T) {
	e := newEnv(t)
	id, l := e.submit("p", nil)
	e.slurm.set(l)
	e.tick()
	// The user cancels; Slurm shows CANCELLED, never started, no result.
	e.slurm.set(ended(l, "CANCELLED", e.clock.Now()))
	l2 := l
	l2.State, l2.Start, l2.End = "CANCELLED", time.Time{}, e.clock.Now()
	e.slurm.set(l2)
	e.tick()
	j := e.job(id)
	assert.Equal(t, job.Cancelled, j.State)
	assert.Equal(t, "cancelled before it started", j.Reason)
	assert.Nil(t, j.ExitCode)

	// A pending sweep task that is cancelled vanishes; the desire file says why.
	id2, l3 := e.submit("p", nil)
	e.slurm.set(l3)
	e.tick()
	e.slurm.drop(l3.ID)
	require.NoError(t, os.WriteFile(filepath.Join(e.dir(id2), job.CancelFile), nil, 0o600))
	e.tick()
	assert.Equal(t, job.Cancelled, e.job(id2).State)
}

// The hook makes a terminal state visible at once; a listing that
// started before the job ended does not take it back, and the terminal
// event is written once.
func TestHookAndStaleListing(t *testing.T) {
	e := newEnv(t)
	id, l := e.submit("p", nil)
	start := e.clock.Now()
	e.slurm.set(running(l, "w1", start))
	e.tick()

	// A squeue starts while the job still runs...
	gate := make(chan struct{})
	e.slurm.mu.Lock()
	e.slurm.gate = gate
	e.slurm.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- e.tr.Tick(context.Background()) }()
	for {
		e.slurm.mu.Lock()
		c := e.slurm.calls
		e.slurm.mu.Unlock()
		if c == 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// ...the job ends, and the hook tells the tracker before squeue answers.
	e.clock.Add(2 * time.Second)
	e.result(id, job.Succeeded, "exited with code 0", 0)
	ev := HookEvent{JobID: l.ID, ArrayJobID: "0", ArrayTaskID: "4294967294", State: "COMPLETED", ExitCode: "0:0",
		Nodes: "w1", Start: start.Unix(), End: e.clock.Now().Unix(), WorkDir: e.dir(id), UID: e.uid}
	require.NoError(t, e.tr.HandleHook(context.Background(), ev))
	assert.Equal(t, job.Succeeded, e.job(id).State)

	e.slurm.mu.Lock()
	e.slurm.gate = nil
	e.slurm.mu.Unlock()
	close(gate)
	require.NoError(t, <-done)
	assert.Equal(t, job.Succeeded, e.job(id).State, "the older listing (RUNNING) is not applied")

	// Slurm now shows it completing, then completed: still one event.
	e.slurm.set(ended(running(l, "w1", start), "COMPLETING", e.clock.Now()))
	e.tick()
	e.slurm.set(ended(running(l, "w1", start), "COMPLETED", e.clock.Now()))
	e.tick()
	assert.Equal(t, job.Succeeded, e.job(id).State)
	assert.Equal(t, []string{">running", "running>succeeded"}, stateEvents(e.events(), id))

	// An event about a job dir that is not the event's uid's is refused.
	ev.UID = e.uid + 1
	assert.Error(t, e.tr.HandleHook(context.Background(), ev))
	ev.UID, ev.WorkDir = e.uid, "/tmp"
	assert.Error(t, e.tr.HandleHook(context.Background(), ev))
}

// FLUSHALL: the next tick rebuilds every hash, index and metric history,
// with one resync event and no state event repeated.
func TestFlushAllRebuilds(t *testing.T) {
	e := newEnv(t)
	var ids []job.ID
	for i := range 5 {
		id, l := e.submit("p", map[string]any{"i": i})
		ids = append(ids, id)
		if i < 3 {
			l = running(l, "w1", e.clock.Now())
		}
		e.slurm.set(l)
	}
	require.NoError(t, os.MkdirAll(filepath.Join(e.dir(ids[0]), "outputs"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(e.dir(ids[0]), "outputs", "metrics.jsonl"),
		[]byte(`{"name":"loss","value":0.5,"step":1}`+"\n"+`{"name":"loss","value":0.25,"step":2}`+"\n"), 0o600))
	e.tick()
	e.result(ids[1], job.Succeeded, "exited with code 0", 0)
	e.slurm.set(ended(running(e.slurm.jobs[e.job(ids[1]).SlurmID], "w1", e.clock.Now()), "COMPLETED", e.clock.Now()))
	e.tick()
	before := map[job.ID]*store.Job{}
	for _, id := range ids {
		before[id] = e.job(id)
	}
	hist, err := e.st.MetricHistory(context.Background(), ids[0], 0, -1)
	require.NoError(t, err)
	require.Len(t, hist, 2)

	e.srv.Do(t, "FLUSHALL")
	e.tick()
	for _, id := range ids {
		j := e.job(id)
		assert.True(t, store.Equal(before[id], j), "job %s: %+v\n%+v", id, before[id], j)
	}
	_, total, err := e.st.Jobs(context.Background(), store.Page{})
	require.NoError(t, err)
	assert.Equal(t, int64(5), total)
	hist, err = e.st.MetricHistory(context.Background(), ids[0], 0, -1)
	require.NoError(t, err)
	assert.Len(t, hist, 2, "the history is read again from the start")
	evs := e.events()
	require.Len(t, evs, 1)
	assert.Equal(t, store.EventResync, evs[0].Type)

	// And the tracker goes on diffing from there.
	e.tick()
	assert.Len(t, e.events(), 1)
}

// Redis restored from an older snapshot: the generation tells, and the
// store is rewritten.
func TestStaleStoreRebuilds(t *testing.T) {
	e := newEnv(t)
	id, l := e.submit("p", nil)
	e.slurm.set(l)
	e.tick()
	e.slurm.set(running(l, "w2", e.clock.Now()))
	e.tick()
	e.srv.Do(t, "HSET", "ferry:job:"+string(id), "state", "queued", "node", "")
	e.srv.Do(t, "HSET", "ferry:tracker", "gen", "1")
	e.tick()
	assert.Equal(t, job.Running, e.job(id).State)
	assert.Equal(t, "w2", e.job(id).Node)
	evs := e.events()
	assert.Equal(t, store.EventResync, evs[len(evs)-1].Type)
}

// A restarted tracker reconciles against what the store holds: no event
// for what it had already written, one for what changed while it was down.
func TestRestartEmitsNoDuplicates(t *testing.T) {
	e := newEnv(t)
	a, al := e.submit("p", nil)
	b, bl := e.submit("p", nil)
	e.slurm.set(running(al, "w1", e.clock.Now()))
	e.slurm.set(running(bl, "w2", e.clock.Now()))
	e.tick()
	e.result(a, job.Succeeded, "exited with code 0", 0)
	e.slurm.set(ended(running(al, "w1", e.clock.Now()), "COMPLETED", e.clock.Now()))
	e.tick()
	before := e.events()

	// The tracker stops; b ends while it is down; a new tracker starts.
	e.result(b, job.Failed, "exited with code 2", 2)
	e.slurm.set(ended(running(bl, "w2", e.clock.Now()), "FAILED", e.clock.Now()))
	e.tr = e.newTracker()
	e.tick()
	e.tick()
	evs := e.events()
	assert.Equal(t, []string{">running", "running>succeeded"}, stateEvents(evs, a))
	assert.Equal(t, []string{">running", "running>failed"}, stateEvents(evs, b))
	assert.Len(t, evs, len(before)+1)
	assert.Equal(t, job.Failed, e.job(b).State)
}

// Before its first Slurm listing a new tracker publishes no job state.
func TestReconcilesBeforePublishing(t *testing.T) {
	e := newEnv(t)
	e.srv.Do(t, "FLUSHALL")
	e.tr = e.newTracker()
	id, l := e.submit("p", nil)
	e.slurm.set(l)
	e.slurm.fail(errors.New("squeue: no answer within 10s"))
	assert.Error(t, e.tr.Tick(context.Background()))
	_, err := e.st.Job(context.Background(), id)
	assert.ErrorIs(t, err, job.ErrNotFound)
	assert.False(t, e.tr.Health().Reconciled)
	e.slurm.fail(nil)
	e.tick()
	assert.Equal(t, job.Queued, e.job(id).State)
	evs := e.events()
	require.Len(t, evs, 1, "the first build of an empty store is a resync, not one event per job")
	assert.Equal(t, store.EventResync, evs[0].Type)
}

// Lines are attributed to a job only when its job dir is the line's
// owner's; anything else in the job dir is not followed.
func TestAttribution(t *testing.T) {
	e := newEnv(t)
	id, l := e.submit("p", nil)
	e.slurm.set(l)
	// Another uid's job that names this job in its comment.
	forged := l
	forged.ID, forged.RawID, forged.ArrayJobID = "999", "999", "999"
	forged.UID, forged.User, forged.State = e.uid+1, "mallory", "COMPLETED"
	forged.Submit = l.Submit.Add(time.Second)
	e.slurm.set(forged)
	// A job whose WorkDir is a symlink to the real job dir.
	other, ol := e.submit("p", nil)
	link := filepath.Join(t.TempDir(), string(other))
	require.NoError(t, os.Symlink(e.dir(other), link))
	ol.WorkDir = link
	e.slurm.set(ol)
	require.NoError(t, os.RemoveAll(e.dir(other)))
	e.tick()
	assert.Equal(t, job.Queued, e.job(id).State, "the forged COMPLETED line is not this job")
	_, err := e.st.Job(context.Background(), other)
	assert.ErrorIs(t, err, job.ErrNotFound)

	// result.json as a symlink (to a file the tracker, as root, could
	// read) is not read.
	e.slurm.set(ended(running(l, "w1", e.clock.Now()), "COMPLETED", e.clock.Now()))
	target := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, os.WriteFile(target, []byte(`{"state":"failed","reason":"from elsewhere","exit_code":9}`), 0o600))
	require.NoError(t, os.Symlink(target, filepath.Join(e.dir(id), job.ResultFile)))
	e.tick()
	j := e.job(id)
	assert.Equal(t, job.Succeeded, j.State)
	assert.NotEqual(t, "from elsewhere", j.Reason)
}

// A sweep's array task is matched by the Slurm id its own job dir
// records, and carries its array index.
func TestSweepTask(t *testing.T) {
	e := newEnv(t)
	id, l := e.sweepTask("500", 3, "503")
	require.NoError(t, os.WriteFile(filepath.Join(e.dir(id), job.SlurmIDFile), []byte("500_3\n"), 0o600))
	e.slurm.set(running(l, "w1", e.clock.Now()))
	e.tick()
	j := e.job(id)
	assert.Equal(t, job.Running, j.State)
	assert.Equal(t, 3, j.ArrayIndex)
	assert.Equal(t, "500_3", j.SlurmID)

	// The hook names the task by array job and task id.
	e.result(id, job.Succeeded, "exited with code 0", 0)
	require.NoError(t, e.tr.HandleHook(context.Background(), HookEvent{JobID: "503", ArrayJobID: "500", ArrayTaskID: "3",
		State: "COMPLETED", WorkDir: l.WorkDir, UID: e.uid}))
	assert.Equal(t, job.Succeeded, e.job(id).State)
}

// metrics.jsonl is read incrementally: new complete lines only, names of
// any characters, the latest value of each in the hash.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	id, l := e.submit("p", nil)
	e.slurm.set(running(l, "w1", e.clock.Now()))
	out := filepath.Join(e.dir(id), "outputs")
	require.NoError(t, os.Mkdir(out, 0o700))
	f, err := os.OpenFile(filepath.Join(out, "metrics.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(t, err)
	defer f.Close()
	write := func(s string) {
		_, err := f.WriteString(s)
		require.NoError(t, err)
	}
	odd := "val/acc:top-1 \"quoted\" \u00e9\t"
	name, _ := json.Marshal(odd)
	write(`{"name":"loss","value":0.9,"step":1,"time":1.5}` + "\n")
	write(`{"name":` + string(name) + `,"value":0.5,"step":1}` + "\n")
	write("not json\n")
	write(`{"name":"loss","value":0.7,"st`) // a line being written
	e.tick()
	j := e.job(id)
	var latest map[string]any
	require.NoError(t, json.Unmarshal(j.Metrics, &latest))
	assert.Equal(t, map[string]any{"loss": 0.9, odd: 0.5}, latest)
	hist, err := e.st.MetricHistory(context.Background(), id, 0, -1)
	require.NoError(t, err)
	assert.Len(t, hist, 2)

	write(`ep":2}` + "\n" + `{"name":"loss","value":"NaN","step":3}` + "\n")
	e.tick()
	require.NoError(t, json.Unmarshal(e.job(id).Metrics, &latest))
	assert.Equal(t, "NaN", latest["loss"])
	hist, err = e.st.MetricHistory(context.Background(), id, 0, -1)
	require.NoError(t, err)
	require.Len(t, hist, 4)
	assert.JSONEq(t, `{"name":"loss","value":0.7,"step":2}`, string(hist[2]))
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Equal(t, fi.Size(), e.job(id).MetricsOffset)

	// Nothing new: nothing written.
	n := len(e.events())
	e.tick()
	assert.Len(t, e.events(), n)
	hist, _ = e.st.MetricHistory(context.Background(), id, 0, -1)
	assert.Len(t, hist, 4)
}

// A store write whose answer was lost: the next tick asks the generation,
// and neither drops nor repeats the batch's events.
func TestLostReplyIsNotRepeated(t *testing.T) {
	e := newEnv(t)
	flaky := &flakyStore{Store: e.st}
	e.tr.o.Store = flaky
	id, l := e.submit("p", nil)
	e.slurm.set(l)
	e.tick()

	e.slurm.set(running(l, "w1", e.clock.Now()))
	flaky.failAfter = true // the batch lands, its answer does not
	assert.Error(t, e.tr.Tick(context.Background()))
	assert.Equal(t, "unreachable", e.tr.Health().Redis.Status)
	e.tick()
	assert.Equal(t, []string{">queued", "queued>running"}, stateEvents(e.events(), id))

	flaky.failBefore = true // the batch never lands
	e.result(id, job.Succeeded, "exited with code 0", 0)
	e.slurm.set(ended(running(l, "w1", e.clock.Now()), "COMPLETED", e.clock.Now()))
	assert.Error(t, e.tr.Tick(context.Background()))
	e.tick()
	assert.Equal(t, []string{">queued", "queued>running", "running>succeeded"}, stateEvents(e.events(), id))
}

type flakyStore struct {
	store.Store
	failAfter, failBefore bool
	failLoad, failGen     bool
}

func (f *flakyStore) Load(ctx context.Context) (*store.Snapshot, error) {
	if f.failLoad {
		f.failLoad = false
		return nil, errors.New("redis 127.0.0.1:6379: connection refused")
	}
	return f.Store.Load(ctx)
}

func (f *flakyStore) Generation(ctx context.Context) (int64, error) {
	if f.failGen {
		f.failGen = false
		return 0, errors.New("redis 127.0.0.1:6379: i/o timeout")
	}
	return f.Store.Generation(ctx)
}

func (f *flakyStore) Apply(ctx context.Context, b *store.Batch) (int64, error) {
	if f.failBefore {
		f.failBefore = false
		return 0, errors.New("connection reset")
	}
	g, err := f.Store.Apply(ctx, b)
	if f.failAfter {
		f.failAfter = false
		return 0, errors.New("i/o timeout")
	}
	return g, err
}

func TestNodes(t *testing.T) {
	e := newEnv(t)
	e.slurm.nodes = []slurm.Node{{Name: "w1", State: "idle", CPUs: 2, MemBytes: 4 << 30, Partitions: []string{"debug"}},
		{Name: "w2", State: "down", Flags: "*", CPUs: 2, Reason: "not responding"}}
	e.tick()
	require.NoError(t, e.tr.Nodes(context.Background()))
	nodes, err := e.st.Nodes(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "idle", nodes["w1"].State)
	assert.True(t, nodes["w1"].Responding)
	assert.False(t, nodes["w2"].Responding)
	assert.Equal(t, "not responding", nodes["w2"].Reason)
	gen, _ := e.st.Generation(context.Background())
	require.NoError(t, e.tr.Nodes(context.Background()))
	gen2, _ := e.st.Generation(context.Background())
	assert.Equal(t, gen, gen2, "unchanged nodes write nothing")
}

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t)
	_, l := e.submit("p", nil)
	e.slurm.set(l)
	e.tick()
	rec := httptest.NewRecorder()
	e.tr.o.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`ferry_tracker_jobs{state="queued"} 1`,
		`ferry_tracker_tick_duration_seconds_count 2`,
		`ferry_tracker_slurm_call_duration_seconds_count{command="squeue"} 2`,
		`ferry_tracker_slurm_up 1`,
		`ferry_tracker_slurm_errors_total{command="squeue"} 0`,
		`ferry_tracker_slurm_errors_total{command="sinfo"} 0`,
		`ferry_tracker_redis_errors_total 0`,
		`ferry_tracker_redis_up 1`,
		`go_goroutines`,
	} {
		assert.True(t, strings.Contains(string(body), want), "no %q in /metrics", want)
	}
}

// scancel: Slurm says CANCELLED at once, the sandbox records how the job
// ended a moment later; the hash gets the record without a second event.
func TestResultAfterSlurmEnded(t *testing.T) {
	e := newEnv(t)
	id, l := e.submit("p", nil)
	start := e.clock.Now()
	e.slurm.set(running(l, "w1", start))
	e.tick()
	e.slurm.set(ended(running(l, "w1", start), "CANCELLED", e.clock.Now()))
	e.tick()
	j := e.job(id)
	assert.Equal(t, job.Cancelled, j.State)
	assert.Equal(t, "cancelled", j.Reason)
	assert.Nil(t, j.ExitCode)

	e.clock.Add(time.Second)
	e.result(id, job.Cancelled, "cancelled while running; the container was stopped and removed", 143)
	e.tick()
	j = e.job(id)
	assert.Equal(t, "cancelled while running; the container was stopped and removed", j.Reason)
	require.NotNil(t, j.ExitCode)
	assert.Equal(t, 143, *j.ExitCode)
	assert.Equal(t, []string{">running", "running>cancelled"}, stateEvents(e.events(), id))
}

// A new sweep's tasks are listed by Slurm a moment before submit has
// written their Slurm ids into their job dirs: a tick in between cannot
// attribute them, and the next tick a second later does (not 30 s later).
func TestNewSweepTaskBeforeItsSlurmID(t *testing.T) {
	e := newEnv(t)
	id, l := e.sweepTask("600", 0, "600")
	require.NoError(t, os.Remove(filepath.Join(e.dir(id), job.SlurmIDFile)))
	e.slurm.set(l)
	e.tick()
	require.NotEqual(t, "600_0", e.job(id).SlurmID, "not attributable yet")

	require.NoError(t, os.WriteFile(filepath.Join(e.dir(id), job.SlurmIDFile), []byte("600_0\n"), 0o600))
	e.clock.Add(time.Second)
	e.tick()
	j := e.job(id)
	assert.Equal(t, "600_0", j.SlurmID)
	assert.Equal(t, job.Queued, j.State)
	assert.Equal(t, "waiting: other jobs have higher priority", j.Reason, "Slurm's own reason, from the listing")
}

// sweepTask submits a job and turns it into task index of a new sweep
// whose array is arrayID: its spec names the sweep, and its squeue line is
// the task's (RawID rawID, the sweep's comment and work dir). Its job dir
// still records the plain job's Slurm id: the caller writes the task's, or
// removes it.
func (e *env) sweepTask(arrayID string, index int, rawID string) (job.ID, slurm.Job) {
	e.t.Helper()
	sweep := job.NewID(e.clock.Now())
	id, l := e.submit("sweep", map[string]any{"lr": 0.1})
	var spec map[string]any
	data, err := os.ReadFile(filepath.Join(e.dir(id), job.SpecFile))
	require.NoError(e.t, err)
	require.NoError(e.t, json.Unmarshal(data, &spec))
	spec["sweep"] = map[string]any{"id": sweep, "index": index}
	e.writeJSON(e.dir(id), job.SpecFile, spec)
	l.ID, l.RawID, l.ArrayJobID, l.ArrayTaskID = arrayID+"_"+strconv.Itoa(index), rawID, arrayID, index
	l.Comment, l.WorkDir = "ferry:"+string(sweep), filepath.Join(e.spool, ".sweeps", string(sweep))
	return id, l
}
