package observe_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe"
	"github.com/ferry-hpc/ferry/pkg/observe/observetest"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// fakeSlurm answers Jobs with canned jobs (or err) and records its queries.
type fakeSlurm struct {
	mu      sync.Mutex
	jobs    []slurm.Job
	err     error
	queries []slurm.Query
}

func (f *fakeSlurm) Jobs(_ context.Context, q slurm.Query) ([]slurm.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if f.err != nil {
		return nil, f.err
	}
	var out []slurm.Job
	for _, j := range f.jobs {
		if len(q.JobIDs) == 0 || slices.Contains(q.JobIDs, j.ID) {
			out = append(out, j)
		}
	}
	return out, nil
}

func (f *fakeSlurm) set(jobs ...slurm.Job) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs = jobs
}

func (f *fakeSlurm) calls() []slurm.Query {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.queries)
}

func sjob(slurmID string, id job.ID, state string) slurm.Job {
	return slurm.Job{ArrayTaskID: -1, ID: slurmID, State: state, User: "ann", Comment: "ferry:" + string(id), Nodes: "w1"}
}

// mkJob writes a job dir as submit leaves it: spec.json, and slurm_id when
// slurmID is not empty.
func mkJob(t *testing.T, root string, at time.Time, project, slurmID string) job.Dir {
	t.Helper()
	return observetest.WriteJob(t, root, job.Spec{Project: project, User: "ann", Submitted: at, Resources: job.Resources{CPUs: 1}}, slurmID)
}

func writeResult(t *testing.T, d job.Dir, st job.State, code int) {
	t.Helper()
	require.NoError(t, job.WriteResult(d, &job.Result{
		State: st, Reason: "exited with code " + string(rune('0'+code)), ExitCode: code, Node: "w1",
		Started: time.Now().Add(-time.Second), Ended: time.Now(), WrittenBy: "sandbox",
	}))
}

func ids(sts []job.Status) []job.ID {
	var out []job.ID
	for _, s := range sts {
		out = append(out, s.ID)
	}
	return out
}

func TestList(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	running := mkJob(t, root, now.Add(-3*time.Hour), "vision", "101")
	done := mkJob(t, root, now.Add(-2*time.Hour), "nlp", "102")
	writeResult(t, done, job.Succeeded, 0)
	neverSubmitted := mkJob(t, root, now.Add(-time.Hour), "vision", "")
	queued := mkJob(t, root, now.Add(-time.Minute), "vision", "104")
	// A dir without spec.json (being removed, or not ferry's) is skipped.
	require.NoError(t, os.Mkdir(job.DirFor(root, job.NewID(now)).Path(), 0o700))

	sl := &fakeSlurm{}
	sl.set(
		sjob("101", running.ID(), "RUNNING"),
		sjob("104", queued.ID(), "PENDING"),
		slurm.Job{ArrayTaskID: -1, ID: "555", State: "RUNNING", Comment: "not ferry"},
		slurm.Job{ArrayTaskID: -1, ID: "556", State: "RUNNING", User: "ann", Comment: "ferry:garbage"},
		// Anyone may put any comment on their own job: mallory's is ignored.
		slurm.Job{ArrayTaskID: -1, ID: "666", State: "CANCELLED", User: "mallory", Comment: "ferry:" + string(running.ID())},
	)
	o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: sl, User: "ann", Now: func() time.Time { return now }}

	tests := []struct {
		name   string
		filter observe.Filter
		want   []job.ID
		states []job.State
	}{
		{
			name:   "all, newest first",
			want:   []job.ID{queued.ID(), neverSubmitted.ID(), done.ID(), running.ID()},
			states: []job.State{job.Queued, job.Lost, job.Succeeded, job.Running},
		},
		{name: "by project", filter: observe.Filter{Project: "vision"}, want: []job.ID{queued.ID(), neverSubmitted.ID(), running.ID()}},
		{name: "by state", filter: observe.Filter{State: job.Running}, want: []job.ID{running.ID()}},
		{name: "by project and state", filter: observe.Filter{Project: "nlp", State: job.Succeeded}, want: []job.ID{done.ID()}},
		{name: "nothing matches", filter: observe.Filter{Project: "nope"}},
		{name: "limit", filter: observe.Filter{Limit: 2}, want: []job.ID{queued.ID(), neverSubmitted.ID()}},
		{name: "limit after filter", filter: observe.Filter{Project: "vision", Limit: 2}, want: []job.ID{queued.ID(), neverSubmitted.ID()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(sl.calls())
			sts, err := o.List(context.Background(), tt.filter)
			require.NoError(t, err)
			assert.Equal(t, tt.want, ids(sts))
			if tt.states != nil {
				var got []job.State
				for _, s := range sts {
					got = append(got, s.State)
				}
				assert.Equal(t, tt.states, got)
			}
			calls := sl.calls()[before:]
			require.Len(t, calls, 1, "one squeue call per List")
			assert.Equal(t, slurm.Query{User: "ann"}, calls[0])
		})
	}
}

func TestListSlurmDown(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	running := mkJob(t, root, now.Add(-time.Hour), "p", "101")
	done := mkJob(t, root, now.Add(-30*time.Minute), "p", "102")
	writeResult(t, done, job.Failed, 3)
	sl := &fakeSlurm{err: errors.New("slurm_load_jobs error: Unable to contact slurm controller")}
	o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: sl}

	sts, err := o.List(context.Background(), observe.Filter{})
	require.NoError(t, err, "List still shows what the spool knows")
	require.Equal(t, []job.ID{done.ID(), running.ID()}, ids(sts))
	assert.Equal(t, job.Failed, sts[0].State)
	require.NotNil(t, sts[0].ExitCode)
	assert.Equal(t, 3, *sts[0].ExitCode)
	assert.Equal(t, job.Unknown, sts[1].State, "never read a silent Slurm as 'the job ended'")
	assert.Contains(t, sts[1].Reason, "Unable to contact slurm controller")
}

func TestListEmptySpool(t *testing.T) {
	sl := &fakeSlurm{}
	o := &observe.Observer{Spool: job.Spool{Root: t.TempDir() + "/none"}, Slurm: sl}
	sts, err := o.List(context.Background(), observe.Filter{})
	require.NoError(t, err)
	assert.Empty(t, sts)
}

func TestStatus(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	sl := &fakeSlurm{}
	o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: sl, User: "ann"}

	d := mkJob(t, root, now.Add(-time.Hour), "p", "42")
	sl.set(sjob("42", d.ID(), "RUNNING"), sjob("43", job.NewID(now), "RUNNING"))
	st, err := o.Status(context.Background(), d)
	require.NoError(t, err)
	assert.Equal(t, job.Running, st.State)
	assert.Equal(t, "w1", st.Node)
	assert.Equal(t, "42", st.SlurmID)
	assert.Equal(t, []slurm.Query{{JobIDs: []string{"42"}}}, sl.calls(), "Status asks Slurm about this one job")

	// Slurm reused id 42 for someone else's job: ours is not it.
	sl.set(sjob("42", job.NewID(now), "RUNNING"))
	st, err = o.Status(context.Background(), d)
	require.NoError(t, err)
	assert.Equal(t, job.Lost, st.State)

	// Someone else's job carrying our id in its comment is not ours.
	forged := sjob("42", d.ID(), "RUNNING")
	forged.User = "mallory"
	sl.set(forged)
	st, err = o.Status(context.Background(), d)
	require.NoError(t, err)
	assert.Equal(t, job.Lost, st.State)

	// A finished job stays finished when Slurm does not answer.
	writeResult(t, d, job.Succeeded, 0)
	sl.mu.Lock()
	sl.err = errors.New("slurm down")
	sl.mu.Unlock()
	st, err = o.Status(context.Background(), d)
	require.NoError(t, err)
	assert.Equal(t, job.Succeeded, st.State)

	// A job without a Slurm id (a submit in flight, or the hint lost in a
	// crash) is looked for among the caller's jobs, by its comment.
	sl.mu.Lock()
	sl.err = nil
	sl.mu.Unlock()
	before := len(sl.calls())
	noHint := mkJob(t, root, now, "p", "")
	sl.set(sjob("77", noHint.ID(), "RUNNING"))
	st, err = o.Status(context.Background(), noHint)
	require.NoError(t, err)
	assert.Equal(t, job.Running, st.State)
	assert.Equal(t, []slurm.Query{{User: "ann"}}, sl.calls()[before:], "one listing of the caller's jobs")

	assert.Equal(t, "77", st.SlurmID, "the Slurm id from the listing")

	// One that Slurm does not list either, a minute after it was
	// submitted, never reached it.
	never := mkJob(t, root, now.Add(-2*time.Minute), "p", "")
	st, err = o.Status(context.Background(), never)
	require.NoError(t, err)
	assert.Equal(t, job.Lost, st.State)
	assert.Contains(t, st.Reason, "never reached Slurm")
}

func TestStatusNoSpec(t *testing.T) {
	root := t.TempDir()
	d := job.DirFor(root, job.NewID(time.Now()))
	require.NoError(t, os.Mkdir(d.Path(), 0o700))
	_, err := (&observe.Observer{Spool: job.Spool{Root: root}, Slurm: &fakeSlurm{}}).Status(context.Background(), d)
	require.Error(t, err)
	assert.Contains(t, err.Error(), string(d.ID()))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestWaitResultAppears(t *testing.T) {
	for _, follow := range []bool{false, true} {
		name := "no follow"
		if follow {
			name = "follow"
		}
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			d := mkJob(t, root, time.Now(), "p", "42")
			sl := &fakeSlurm{}
			sl.set(sjob("42", d.ID(), "RUNNING"))
			o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: sl, User: "ann"}

			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(100 * time.Millisecond)
				f, err := os.OpenFile(d.Log(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if !assert.NoError(t, err) {
					return
				}
				_, _ = f.WriteString("epoch 1\n")
				time.Sleep(30 * time.Millisecond)
				_, _ = f.WriteString("epoch 2\n")
				_ = f.Close()
				assert.NoError(t, job.WriteResult(d, &job.Result{State: job.Succeeded, Reason: "exited with code 0", Ended: time.Now(), WrittenBy: "sandbox"}))
			}()
			defer wg.Wait()

			var out bytes.Buffer
			opt := observe.WaitOptions{Poll: 10 * time.Millisecond, Check: time.Hour}
			if follow {
				opt.Follow = &out
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			st, err := o.Wait(ctx, d, opt)
			require.NoError(t, err)
			assert.Equal(t, job.Succeeded, st.State)
			assert.Equal(t, 0, observe.ExitCode(st))
			assert.Less(t, time.Since(start), 5*time.Second, "Wait returns as soon as result.json appears")
			if follow {
				assert.Equal(t, "epoch 1\nepoch 2\n", out.String())
			} else {
				assert.Empty(t, out.String())
			}
		})
	}
}

func TestWaitSlurmEndsWithoutResult(t *testing.T) {
	tests := []struct {
		name       string
		slurm      func(id job.ID) []slurm.Job
		age        time.Duration
		wantState  job.State
		wantReason string
	}{
		{
			name: "cancelled while queued",
			slurm: func(id job.ID) []slurm.Job {
				return []slurm.Job{{ArrayTaskID: -1, ID: "42", State: "CANCELLED", User: "ann", Comment: "ferry:" + string(id)}}
			},
			wantState:  job.Cancelled,
			wantReason: "cancelled before it started",
		},
		{
			name:       "batch script failed",
			slurm:      func(id job.ID) []slurm.Job { return []slurm.Job{sjob("42", id, "FAILED")} },
			wantState:  job.Failed,
			wantReason: "no result.json was written",
		},
		{
			name:       "gone from Slurm long ago",
			slurm:      func(job.ID) []slurm.Job { return nil },
			age:        time.Hour,
			wantState:  job.Lost,
			wantReason: "Slurm no longer knows this job",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			d := mkJob(t, root, time.Now().Add(-tt.age), "p", "42")
			sl := &fakeSlurm{}
			sl.set(tt.slurm(d.ID())...)
			o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: sl, User: "ann"}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := o.Wait(ctx, d, observe.WaitOptions{Poll: 5 * time.Millisecond, Check: 10 * time.Millisecond})
			require.NoError(t, err)
			assert.Equal(t, tt.wantState, st.State)
			assert.Contains(t, st.Reason, tt.wantReason)
		})
	}
}

func TestWaitRunningThenCancelled(t *testing.T) {
	root := t.TempDir()
	d := mkJob(t, root, time.Now(), "p", "42")
	sl := &fakeSlurm{}
	sl.set(sjob("42", d.ID(), "RUNNING"))
	o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: sl, User: "ann"}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(100 * time.Millisecond)
		j := sjob("42", d.ID(), "CANCELLED by 1000")
		j.Start = time.Now().Add(-time.Minute)
		sl.set(j)
	}()
	defer wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := o.Wait(ctx, d, observe.WaitOptions{Poll: 5 * time.Millisecond, Check: 20 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, job.Cancelled, st.State)
	assert.Equal(t, "cancelled", st.Reason)
	assert.Equal(t, 130, observe.ExitCode(st))
	assert.GreaterOrEqual(t, len(sl.calls()), 2)
}

func TestWaitContextCancelled(t *testing.T) {
	root := t.TempDir()
	d := mkJob(t, root, time.Now(), "p", "42")
	sl := &fakeSlurm{}
	sl.set(sjob("42", d.ID(), "RUNNING"))
	o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: sl, User: "ann"}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := o.Wait(ctx, d, observe.WaitOptions{Poll: 5 * time.Millisecond, Check: 10 * time.Millisecond})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
}

func TestWaitMissingSpec(t *testing.T) {
	root := t.TempDir()
	d := job.DirFor(root, job.NewID(time.Now()))
	require.NoError(t, os.Mkdir(d.Path(), 0o700))
	o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: &fakeSlurm{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := o.Wait(ctx, d, observe.WaitOptions{Poll: 5 * time.Millisecond})
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestTailCopy(t *testing.T) {
	path := t.TempDir() + "/log"
	tail := &observe.Tail{Path: path}
	copyNew := func() string {
		t.Helper()
		var b bytes.Buffer
		n, err := tail.Copy(&b)
		require.NoError(t, err)
		assert.Equal(t, int64(b.Len()), n)
		return b.String()
	}
	appendTo := func(s string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		require.NoError(t, err)
		_, err = f.WriteString(s)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}

	assert.Equal(t, "", copyNew(), "a missing file is not an error")
	appendTo("line 1\n")
	assert.Equal(t, "line 1\n", copyNew())
	assert.Equal(t, "", copyNew(), "nothing new")
	appendTo("line 2\nline 3")
	assert.Equal(t, "line 2\nline 3", copyNew())
	appendTo("\n")
	assert.Equal(t, "\n", copyNew())

	// Truncated and rewritten shorter: start again from the top.
	require.NoError(t, os.WriteFile(path, []byte("new\n"), 0o600))
	assert.Equal(t, "new\n", copyNew())
	appendTo("more\n")
	assert.Equal(t, "more\n", copyNew())

	// Removed: nothing, no error; recreated: read from the start.
	require.NoError(t, os.Remove(path))
	assert.Equal(t, "", copyNew())
	appendTo("x\n")
	assert.Equal(t, "x\n", copyNew())
}

func TestTailCopyUnreadable(t *testing.T) {
	dir := t.TempDir()
	_, err := (&observe.Tail{Path: dir}).Copy(&bytes.Buffer{})
	assert.Error(t, err, "a directory is not a log")
}

func TestExitCode(t *testing.T) {
	code := func(n int) *int { return &n }
	tests := []struct {
		st   job.Status
		want int
	}{
		{job.Status{State: job.Succeeded, ExitCode: code(0)}, 0},
		{job.Status{State: job.Failed, ExitCode: code(3)}, 3},
		{job.Status{State: job.Failed, ExitCode: code(255)}, 255},
		{job.Status{State: job.Failed, ExitCode: code(256)}, 1},
		{job.Status{State: job.Failed, ExitCode: code(0)}, 1},
		{job.Status{State: job.Failed, ExitCode: code(-1)}, 1},
		{job.Status{State: job.Failed}, 1},
		{job.Status{State: job.Cancelled, ExitCode: code(143)}, 130},
		{job.Status{State: job.Timeout}, 124},
		{job.Status{State: job.OutOfMemory, ExitCode: code(137)}, 137},
		{job.Status{State: job.NodeFail}, 1},
		{job.Status{State: job.Preempted}, 1},
		{job.Status{State: job.Lost}, 1},
		{job.Status{State: job.Unknown}, 1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, observe.ExitCode(tt.st), "%s %v", tt.st.State, tt.st.ExitCode)
	}
}

func TestSummary(t *testing.T) {
	id := job.ID("01hqx513r0f7jp17mphsmycz44")
	start := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		st   job.Status
		want string
	}{
		{job.Status{ID: id, State: job.Succeeded, Reason: "exited with code 0", Node: "w1", Started: start, Ended: start.Add(90*time.Second + 123*time.Millisecond)},
			"job 01hqx513r0 succeeded: exited with code 0 (ran 1m30.12s on w1)"},
		{job.Status{ID: id, State: job.Cancelled, Reason: "cancelled before it started"},
			"job 01hqx513r0 cancelled: cancelled before it started"},
		{job.Status{ID: id, State: job.Lost},
			"job 01hqx513r0 lost"},
		{job.Status{ID: id, State: job.Failed, Reason: "x", Started: start},
			"job 01hqx513r0 failed: x"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, observe.Summary(tt.st))
	}
}

func TestWaitFollowPath(t *testing.T) {
	root := t.TempDir()
	d := mkJob(t, root, time.Now(), "p", "42")
	sl := &fakeSlurm{}
	sl.set(sjob("42", d.ID(), "RUNNING"))
	o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: sl, User: "ann"}
	require.NoError(t, os.WriteFile(d.Log(), []byte("program output\n"), 0o600))
	require.NoError(t, os.WriteFile(d.SlurmOut(), []byte("batch script output\n"), 0o600))
	writeResult(t, d, job.Succeeded, 0)

	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := o.Wait(ctx, d, observe.WaitOptions{Follow: &out, FollowPath: d.SlurmOut(), Poll: 5 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, job.Succeeded, st.State)
	assert.Equal(t, "batch script output\n", out.String())
}

func TestShortIDs(t *testing.T) {
	root := t.TempDir()
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	lone := mkJob(t, root, at.Add(-time.Hour), "p", "")
	tasks := job.NewIDs(at, 3)
	for _, id := range tasks {
		require.NoError(t, os.MkdirAll(job.DirFor(root, id).Path(), 0o700))
	}
	o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: &fakeSlurm{}}
	short, err := o.ShortIDs()
	require.NoError(t, err)
	require.Len(t, short, 4)
	assert.Equal(t, lone.ID().Short(), short[lone.ID()])
	seen := map[string]bool{}
	for _, id := range tasks {
		p := short[id]
		assert.False(t, seen[p], "%s twice", p)
		seen[p] = true
		d, err := o.Spool.Resolve(p)
		require.NoError(t, err)
		assert.Equal(t, id, d.ID())
	}

	short, err = (&observe.Observer{Spool: job.Spool{Root: root + "/none"}}).ShortIDs()
	require.NoError(t, err)
	assert.Empty(t, short)
}

// A sweep task's slurm_id file is a hint: without it (lost in a crash, or
// not yet written) the sweep's record gives the task's Slurm id.
func TestSweepTaskWithoutSlurmIDFile(t *testing.T) {
	root := t.TempDir()
	sl := &fakeSlurm{}
	o := &observe.Observer{Spool: job.Spool{Root: root}, Slurm: sl, User: "ann"}
	sweep := job.NewID(time.Now().Add(-time.Minute))
	sdir := filepath.Join(root, job.SweepsDir, string(sweep))
	require.NoError(t, os.MkdirAll(sdir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(sdir, job.SweepFile),
		[]byte(`{"id":"`+string(sweep)+`","arrays":[{"slurm_id":"500","first":0,"last":2}]}`), 0o600))
	d := observetest.WriteJob(t, root, job.Spec{Project: "p", User: "ann", Sweep: &job.SweepRef{ID: sweep, Index: 1}}, "")
	task := slurm.Job{ID: "500_1", ArrayJobID: "500", ArrayTaskID: 1, State: "RUNNING", User: "ann",
		Comment: "ferry:" + string(sweep), Nodes: "w1"}
	sl.set(task)

	st, err := o.Status(context.Background(), d)
	require.NoError(t, err)
	assert.Equal(t, job.Running, st.State)
	assert.Equal(t, "500_1", st.SlurmID)
	assert.Equal(t, []slurm.Query{{JobIDs: []string{"500_1"}}}, sl.calls())

	list, err := o.List(context.Background(), observe.Filter{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, job.Running, list[0].State)
}
