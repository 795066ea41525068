package tracker

import (
	"context"
	"encoding/json"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/store"
	"github.com/ferry-hpc/ferry/pkg/store/storetest"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// fakeSlurm is a Slurm whose listing the test sets. Its output goes
// through the real squeue parser.
type fakeSlurm struct {
	mu    sync.Mutex
	jobs  map[string]slurm.Job // by Slurm id
	err   error
	calls int
	gate  chan struct{} // when set, Jobs waits for it
	nodes []slurm.Node
}

func newFakeSlurm() *fakeSlurm { return &fakeSlurm{jobs: map[string]slurm.Job{}} }

func (f *fakeSlurm) Jobs(ctx context.Context, q slurm.Query) ([]slurm.Job, error) {
	f.mu.Lock()
	f.calls++
	gate, err := f.gate, f.err
	list := make([]slurm.Job, 0, len(f.jobs))
	for _, j := range f.jobs {
		list = append(list, j)
	}
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err != nil {
		return nil, err
	}
	return slurm.ParseJobs(slurm.FormatJobs(list))
}

func (f *fakeSlurm) Nodes(ctx context.Context) ([]slurm.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.nodes, nil
}

func (f *fakeSlurm) set(j slurm.Job) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[j.ID] = j
}

func (f *fakeSlurm) drop(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.jobs, id)
}

func (f *fakeSlurm) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one tracker on a real Redis, a fake Slurm and a temp spool.
type env struct {
	t     *testing.T
	srv   *storetest.Server
	st    *store.Redis
	slurm *fakeSlurm
	clock *clock
	spool string
	user  string
	uid   int
	tr    *Tracker
	next  int // next Slurm id
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := storetest.Start(t)
	me, err := user.Current()
	require.NoError(t, err)
	uid, _ := strconv.Atoi(me.Uid)
	home := filepath.Join(t.TempDir(), "home", me.Username)
	spool := filepath.Join(home, ".ferry", "jobs")
	require.NoError(t, os.MkdirAll(spool, 0o700))
	e := &env{t: t, srv: srv, st: srv.Open(t, store.Options{}), slurm: newFakeSlurm(),
		clock: &clock{t: time.Now()}, spool: spool, user: me.Username, uid: uid, next: 100}
	e.tr = e.newTracker()
	e.tick() // the tracker runs before the jobs come
	return e
}

func (e *env) newTracker() *Tracker {
	return New(Options{
		Slurm: e.slurm, Store: e.st, Spools: []string{filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(e.spool))), "*", ".ferry", "jobs")},
		LostAfter: time.Minute, Now: e.clock.Now, Metrics: NewMetrics(),
	})
}

// submit makes a job dir as `ferry submit` does, and its Slurm line.
func (e *env) submit(project string, params map[string]any) (job.ID, slurm.Job) {
	e.t.Helper()
	id := job.NewID(e.clock.Now())
	e.next++
	sid := strconv.Itoa(e.next)
	dir := e.jobDir(id, project, params, nil, sid)
	return id, e.line(sid, -1, id, project, dir)
}

// jobDir writes a job dir as `ferry submit` does, with the Slurm id sbatch
// gave it ("" = none yet).
func (e *env) jobDir(id job.ID, project string, params map[string]any, sweep *job.SweepRef, sid string) string {
	e.t.Helper()
	dir := filepath.Join(e.spool, string(id))
	require.NoError(e.t, os.Mkdir(dir, 0o700))
	spec := job.Spec{ID: id, Project: project, Name: project, Command: []string{"python3", "main.py"},
		Image: "ferry/sandbox:latest", Resources: job.Resources{CPUs: 1}, Params: params,
		User: e.user, UID: e.uid, GID: os.Getgid(), Submitted: e.clock.Now(), Dir: dir, Sweep: sweep}
	e.writeJSON(dir, job.SpecFile, spec)
	if sid != "" {
		require.NoError(e.t, os.WriteFile(filepath.Join(dir, job.SlurmIDFile), []byte(sid+"\n"), 0o600))
	}
	return dir
}

// line is the squeue line of a pending job: sid is "123" or, with task >=
// 0, the array task's "123_4"; comment is the job's or the sweep's id.
func (e *env) line(sid string, task int, comment job.ID, project, workDir string) slurm.Job {
	arrayID, _, _ := strings.Cut(sid, "_")
	raw := sid
	if task >= 0 {
		raw = arrayID + strconv.Itoa(1000+task)
	}
	return slurm.Job{ID: sid, RawID: raw, ArrayJobID: arrayID, ArrayTaskID: task, Name: "ferry/" + project,
		State: "PENDING", Reason: "Priority", Comment: "ferry:" + string(comment), User: e.user, UID: e.uid,
		Partition: "debug", Submit: e.clock.Now(), TimeLimit: "1:00:00", WorkDir: workDir}
}

// submitSweep makes a sweep of n tasks as `ferry submit --sweep` does: the
// sweep's dir with its record (pkg/submit's format), one job dir per task
// that records its array task's Slurm id (array_i), and the tasks' lines
// (the comment names the sweep, the work dir is the sweep's).
func (e *env) submitSweep(array string, n int) (job.ID, []job.ID, []slurm.Job) {
	e.t.Helper()
	now := e.clock.Now()
	ids := job.NewIDs(now, n+1)
	sweep, tasks := ids[0], ids[1:]
	sdir := submit.SweepDir(e.spool, sweep)
	require.NoError(e.t, os.MkdirAll(sdir, 0o700))
	rec := submit.Sweep{ID: sweep, Project: "sweep", Submitted: now, Dir: sdir,
		Arrays: []submit.ArrayJob{{SlurmID: array, First: 0, Last: n - 1}}}
	lines := make([]slurm.Job, n)
	for i, id := range tasks {
		params := map[string]any{"i": i}
		sid := array + "_" + strconv.Itoa(i)
		dir := e.jobDir(id, "sweep", params, &job.SweepRef{ID: sweep, Index: i}, sid)
		rec.Tasks = append(rec.Tasks, submit.SweepTask{Index: i, ID: id, Dir: dir, Params: params})
		lines[i] = e.line(sid, i, sweep, "sweep", sdir)
	}
	e.writeJSON(sdir, job.SweepFile, rec)
	return sweep, tasks, lines
}

func (e *env) dir(id job.ID) string { return filepath.Join(e.spool, string(id)) }

func (e *env) writeJSON(dir, name string, v any) {
	e.t.Helper()
	data, err := json.Marshal(v)
	require.NoError(e.t, err)
	require.NoError(e.t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
}

func (e *env) result(id job.ID, st job.State, reason string, code int) {
	e.t.Helper()
	now := e.clock.Now()
	e.writeJSON(e.dir(id), job.ResultFile, job.Result{State: st, Reason: reason, ExitCode: code, Node: "w1",
		Started: now.Add(-2 * time.Second), Ended: now, WrittenBy: "sandbox"})
}

func (e *env) tick() {
	e.t.Helper()
	require.NoError(e.t, e.tr.Tick(context.Background()))
}

func (e *env) job(id job.ID) *store.Job {
	e.t.Helper()
	j, err := e.st.Job(context.Background(), id)
	require.NoError(e.t, err)
	return j
}

func (e *env) events() []store.Event {
	e.t.Helper()
	evs, err := e.st.Events(context.Background(), "", 100000)
	require.NoError(e.t, err)
	return evs
}

// stateSources lists the state events of one job, as "prev>state@source".
func stateSources(evs []store.Event, id job.ID) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == store.EventState && ev.ID == id {
			out = append(out, string(ev.Prev)+">"+string(ev.State)+"@"+string(ev.Source))
		}
	}
	return out
}

// hashField is one field of a job's hash, as a dashboard reads it.
func (e *env) hashField(id job.ID, field string) any {
	e.t.Helper()
	return e.srv.Do(e.t, "HGET", "ferry:job:"+string(id), field)
}

// stateEvents lists the state events of one job, as "prev>state".
func stateEvents(evs []store.Event, id job.ID) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == store.EventState && ev.ID == id {
			out = append(out, string(ev.Prev)+">"+string(ev.State))
		}
	}
	return out
}

func running(j slurm.Job, node string, at time.Time) slurm.Job {
	j.State, j.Reason, j.Nodes, j.Start = "RUNNING", "", node, at
	return j
}

func ended(j slurm.Job, state string, at time.Time) slurm.Job {
	j.State, j.Reason, j.End = state, "", at
	if j.Start.IsZero() {
		j.Start = at
	}
	return j
}
