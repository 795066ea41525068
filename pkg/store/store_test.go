package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
	"github.com/ferry-hpc/ferry/pkg/store/storetest"
)

func ptr(i int) *int { return &i }

func sample(id job.ID, user, project string, state job.State) store.Job {
	t0 := id.Time()
	return store.Job{
		ID: id, User: user, UID: 2101, Project: project, Name: "ferry/" + project, SlurmID: "42",
		ArrayIndex: -1, State: state, Reason: "waiting: Resources", Submitted: t0,
		Params: json.RawMessage(`{"n": 1000, "greeting": "hi"}`),
		Dir:    "/home/" + user + "/.ferry/jobs/" + string(id), Image: "ferry/sandbox:latest",
	}
}

func newID(t time.Time) job.ID { return job.NewID(t) }

func TestSchema(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{})
	ctx := context.Background()

	id := newID(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	j := sample(id, "ferry-alice", "hello", job.Succeeded)
	j.Reason = "exited with code 0"
	j.ExitCode = ptr(0)
	j.Node = "w1"
	j.Started = j.Submitted.Add(time.Second)
	j.Ended = j.Submitted.Add(3*time.Second + 250*time.Millisecond)
	j.Metrics = json.RawMessage(`{"loss": 0.25, "val/acc:top-1 \"x\"": 0.9, "step": 3}`)
	j.MetricsOffset = 120
	j.Source = store.SourceHook
	j.Sweep, j.TaskIndex = newID(time.Date(2026, 3, 1, 9, 59, 0, 0, time.UTC)), 3

	gen, err := st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{New: j}}})
	require.NoError(t, err)
	assert.Equal(t, int64(1), gen)

	// What a dashboard sees in Redis: plain text scalars, JSON objects.
	raw := srv.Do(t, "HGETALL", "ferry:job:"+string(id))
	got := map[string]string{}
	list := raw.([]any)
	for i := 0; i+1 < len(list); i += 2 {
		got[list[i].(string)] = list[i+1].(string)
	}
	updated := got["updated"]
	delete(got, "updated")
	assert.Equal(t, map[string]string{
		"id": string(id), "user": "ferry-alice", "uid": "2101", "project": "hello", "name": "ferry/hello",
		"slurm_id": "42", "state": "succeeded", "reason": "exited with code 0", "exit_code": "0", "node": "w1",
		"submitted": "2026-03-01T10:00:00.000Z", "started": "2026-03-01T10:00:01.000Z", "ended": "2026-03-01T10:00:03.250Z",
		"params":         `{"n":1000,"greeting":"hi"}`,
		"metrics":        `{"loss":0.25,"val/acc:top-1 \"x\"":0.9,"step":3}`,
		"metrics_offset": "120", "dir": "/home/ferry-alice/.ferry/jobs/" + string(id), "image": "ferry/sandbox:latest",
		"source": "hook", "sweep": string(j.Sweep), "task_index": "3",
	}, got)
	_, err = time.Parse(time.RFC3339, updated)
	assert.NoError(t, err, "updated %q", updated)
	var metrics map[string]float64
	require.NoError(t, json.Unmarshal([]byte(got["metrics"]), &metrics))
	assert.Equal(t, 0.9, metrics["val/acc:top-1 \"x\""], "a metric name may hold any character")

	// And it reads back as it was written.
	back, err := st.Job(ctx, id)
	require.NoError(t, err)
	j.Params = json.RawMessage(`{"n":1000,"greeting":"hi"}`)
	j.Metrics = json.RawMessage(got["metrics"])
	back.Updated = time.Time{}
	assert.Equal(t, j.ExitCode, back.ExitCode)
	assert.True(t, j.Ended.Equal(back.Ended))
	assert.True(t, store.Equal(&j, back), "%+v\n%+v", j, back)

	// Indexes: all, per user, per project; scores are submit times in ms.
	assert.Equal(t, fmt.Sprint(j.Submitted.UnixMilli()), srv.Do(t, "ZSCORE", "ferry:jobs", string(id)))
	assert.Equal(t, []any{string(id)}, srv.Do(t, "ZRANGE", "ferry:user:ferry-alice:jobs", 0, -1))
	assert.Equal(t, []any{string(id)}, srv.Do(t, "ZRANGE", "ferry:project:hello:jobs", 0, -1))
	assert.Equal(t, "3", srv.Do(t, "ZSCORE", "ferry:sweep:"+string(j.Sweep)+":jobs", string(id)), "a sweep's tasks by task index")
	assert.Equal(t, int64(0), srv.Do(t, "EXISTS", "ferry:queue"), "an ended job is not queued")

	// A queued job's estimated start and priority.
	q := sample(newID(time.Date(2026, 3, 1, 10, 1, 0, 0, time.UTC)), "ferry-alice", "hello", job.Queued)
	q.EstStart, q.Priority = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), 4294901700
	_, err = st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{New: q}}})
	require.NoError(t, err)
	assert.Equal(t, "2026-03-01T12:00:00.000Z", srv.Do(t, "HGET", "ferry:job:"+string(q.ID), "est_start"))
	assert.Equal(t, "4294901700", srv.Do(t, "HGET", "ferry:job:"+string(q.ID), "priority"))
	assert.Nil(t, srv.Do(t, "HGET", "ferry:job:"+string(q.ID), "sweep"), "not a sweep task")
	assert.Nil(t, srv.Do(t, "HGET", "ferry:job:"+string(q.ID), "task_index"))
	assert.Equal(t, "-4294901700", srv.Do(t, "ZSCORE", "ferry:queue", string(q.ID)))
	qback, err := st.Job(ctx, q.ID)
	require.NoError(t, err)
	assert.True(t, q.EstStart.Equal(qback.EstStart))
	assert.Equal(t, int64(4294901700), qback.Priority)
	assert.True(t, store.Equal(&q, qback), "%+v\n%+v", q, qback)

	_, err = st.Job(ctx, newID(time.Now()))
	assert.ErrorIs(t, err, job.ErrNotFound)
}

func TestApplyWritesOnlyWhatChanged(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{})
	ctx := context.Background()
	id := newID(time.Now())
	old := sample(id, "ferry-bob", "p", job.Queued)
	_, err := st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{New: old}}})
	require.NoError(t, err)
	// A field nobody else writes survives a diff write, so the diff is all
	// that was sent.
	srv.Do(t, "HSET", "ferry:job:"+string(id), "marker", "kept")

	n := old
	n.State, n.Reason, n.Node, n.Started, n.Source = job.Running, "", "w2", time.Now(), store.SourceSqueue
	gen, err := st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{Old: &old, New: n}}})
	require.NoError(t, err)
	assert.Equal(t, int64(2), gen)
	assert.Equal(t, "kept", srv.Do(t, "HGET", "ferry:job:"+string(id), "marker"))
	assert.Equal(t, "running", srv.Do(t, "HGET", "ferry:job:"+string(id), "state"))
	assert.Equal(t, "squeue", srv.Do(t, "HGET", "ferry:job:"+string(id), "source"))
	assert.Nil(t, srv.Do(t, "HGET", "ferry:job:"+string(id), "reason"), "an emptied field is deleted")

	// Old nil replaces the hash whole.
	_, err = st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{New: n}}})
	require.NoError(t, err)
	assert.Nil(t, srv.Do(t, "HGET", "ferry:job:"+string(id), "marker"))

	// Nothing changed: only the generation moves.
	before := srv.Do(t, "HGET", "ferry:job:"+string(id), "updated")
	time.Sleep(5 * time.Millisecond)
	_, err = st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{Old: &n, New: n}}})
	require.NoError(t, err)
	assert.Equal(t, before, srv.Do(t, "HGET", "ferry:job:"+string(id), "updated"))
}

// Equal decides what the tracker writes: every stored field counts, the
// update time does not.
func TestEqual(t *testing.T) {
	base := sample(newID(time.Now()), "ferry-alice", "p", job.Running)
	base.Source = store.SourceSqueue
	tests := []struct {
		name   string
		change func(j *store.Job)
		equal  bool
	}{
		{"same", func(*store.Job) {}, true},
		{"updated only", func(j *store.Job) { j.Updated = time.Now() }, true},
		{"params respaced", func(j *store.Job) { j.Params = json.RawMessage(`{"n":1000,"greeting":"hi"}`) }, true},
		{"source", func(j *store.Job) { j.Source = store.SourceHook }, false},
		{"state", func(j *store.Job) { j.State = job.Succeeded }, false},
		{"exit code", func(j *store.Job) { j.ExitCode = ptr(0) }, false},
		{"estimated start", func(j *store.Job) { j.EstStart = time.Now().Add(time.Hour) }, false},
		{"priority", func(j *store.Job) { j.Priority = 7 }, false},
		{"sweep", func(j *store.Job) { j.Sweep = newID(time.Now()) }, false},
		{"task index alone", func(j *store.Job) { j.TaskIndex = 4 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := base
			tt.change(&j)
			assert.Equal(t, tt.equal, store.Equal(&base, &j))
		})
	}
	t.Run("task index of a sweep task", func(t *testing.T) {
		a, b := base, base
		a.Sweep, b.Sweep = "s", "s"
		b.TaskIndex = 4
		assert.False(t, store.Equal(&a, &b))
	})
}

func TestPagesNewestFirst(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{})
	ctx := context.Background()
	base := time.Now().Add(-time.Hour)
	var b store.Batch
	var ids []job.ID
	for i := range 7 {
		id := newID(base.Add(time.Duration(i) * time.Minute))
		ids = append(ids, id)
		user, project := "ferry-alice", "a"
		if i%2 == 1 {
			user, project = "ferry-bob", "b"
		}
		b.Jobs = append(b.Jobs, store.JobChange{New: sample(id, user, project, job.Queued)})
	}
	_, err := st.Apply(ctx, &b)
	require.NoError(t, err)

	page, total, err := st.Jobs(ctx, store.Page{Limit: 3})
	require.NoError(t, err)
	assert.Equal(t, int64(7), total)
	assert.Equal(t, []job.ID{ids[6], ids[5], ids[4]}, idsOf(page))
	page, _, err = st.Jobs(ctx, store.Page{Offset: 6, Limit: 3})
	require.NoError(t, err)
	assert.Equal(t, []job.ID{ids[0]}, idsOf(page))

	page, total, err = st.Jobs(ctx, store.Page{User: "ferry-bob"})
	require.NoError(t, err)
	assert.Equal(t, int64(3), total)
	assert.Equal(t, []job.ID{ids[5], ids[3], ids[1]}, idsOf(page))
	page, total, err = st.Jobs(ctx, store.Page{Project: "a", Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, int64(4), total)
	assert.Equal(t, []job.ID{ids[6], ids[4]}, idsOf(page))

	// Removing a job takes it out of every index.
	_, err = st.Apply(ctx, &store.Batch{Removed: []store.Job{b.Jobs[6].New}})
	require.NoError(t, err)
	_, total, err = st.Jobs(ctx, store.Page{Project: "a"})
	require.NoError(t, err)
	assert.Equal(t, int64(3), total)
	_, err = st.Job(ctx, ids[6])
	assert.ErrorIs(t, err, job.ErrNotFound)
}

func idsOf(jobs []*store.Job) []job.ID {
	var out []job.ID
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

func TestEventStreamIsCapped(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{MaxEvents: 50})
	ctx := context.Background()
	id := newID(time.Now())
	for i := range 20 {
		var b store.Batch
		for k := range 50 {
			b.Events = append(b.Events, store.Event{Type: store.EventState, ID: id, User: "ferry-alice",
				State: job.Running, Prev: job.Queued, Reason: fmt.Sprint(i*50 + k), Source: store.SourceSqueue})
		}
		_, err := st.Apply(ctx, &b)
		require.NoError(t, err)
	}
	n := srv.Do(t, "XLEN", "ferry:events").(int64)
	assert.LessOrEqual(t, n, int64(50+100), "MAXLEN ~ trims in whole macro nodes")
	assert.GreaterOrEqual(t, n, int64(50))

	evs, err := st.Events(ctx, "", 1000)
	require.NoError(t, err)
	require.Len(t, evs, int(n))
	last := evs[len(evs)-1]
	assert.Equal(t, "999", last.Reason, "the newest are kept")
	assert.Equal(t, store.EventState, last.Type)
	assert.Equal(t, id, last.ID)
	assert.Equal(t, job.Running, last.State)
	assert.Equal(t, job.Queued, last.Prev)
	assert.Equal(t, store.SourceSqueue, last.Source)
	assert.False(t, last.At.IsZero())

	// The entry's own fields, for a consumer that filters without JSON.
	entry := srv.Do(t, "XREVRANGE", "ferry:events", "+", "-", "COUNT", 1).([]any)[0].([]any)
	fields := entry[1].([]any)
	assert.Equal(t, []any{"type", "state", "id", string(id), "user", "ferry-alice"}, fields[:6])
	assert.Equal(t, "event", fields[6])
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(fields[7].(string)), &raw))
	assert.Equal(t, "squeue", raw["source"], "a state event says which path delivered it")

	// Followers read what comes after the id they saw.
	after, err := st.Events(ctx, evs[len(evs)-3].StreamID, 10)
	require.NoError(t, err)
	assert.Len(t, after, 2)
	got, err := st.WaitEvents(ctx, last.StreamID, 20*time.Millisecond, 10)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestGenerationDetectsLostData(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{})
	ctx := context.Background()
	for want := int64(1); want <= 3; want++ {
		gen, err := st.Apply(ctx, &store.Batch{})
		require.NoError(t, err)
		assert.Equal(t, want, gen)
	}
	g, err := st.Generation(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(3), g)
	srv.Do(t, "FLUSHALL")
	g, err = st.Generation(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(0), g)
	gen, err := st.Apply(ctx, &store.Batch{})
	require.NoError(t, err)
	assert.Equal(t, int64(1), gen, "after a flush the generation restarts: not the 4 a writer expects")
}

func TestLoadAndMetricsAndNodes(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{MaxMetricPoints: 5})
	ctx := context.Background()
	id := newID(time.Now())
	j := sample(id, "ferry-alice", "m", job.Running)
	var pts []json.RawMessage
	for i := range 8 {
		pts = append(pts, json.RawMessage(fmt.Sprintf(`{"step":%d,"a b/c":%d}`, i, i*i)))
	}
	_, err := st.Apply(ctx, &store.Batch{
		Jobs:    []store.JobChange{{New: j}},
		Metrics: []store.MetricPoints{{ID: id, Points: pts}},
		Nodes:   []store.Node{{Name: "w1", State: "idle", Responding: true, CPUs: 2}, {Name: "w2", State: "alloc", CPUs: 2}},
		Meta:    map[string]string{"slurm": "ok"},
	})
	require.NoError(t, err)
	hist, err := st.MetricHistory(ctx, id, 0, -1)
	require.NoError(t, err)
	require.Len(t, hist, 5, "capped to the newest MaxMetricPoints")
	assert.JSONEq(t, `{"step":3,"a b/c":9}`, string(hist[0]))
	assert.JSONEq(t, `{"step":7,"a b/c":49}`, string(hist[4]))

	_, err = st.Apply(ctx, &store.Batch{Metrics: []store.MetricPoints{{ID: id, Reset: true, Points: pts[:1]}},
		Nodes: []store.Node{{Name: "w2", State: "idle"}}, NodesFull: true})
	require.NoError(t, err)
	hist, err = st.MetricHistory(ctx, id, 0, -1)
	require.NoError(t, err)
	assert.Len(t, hist, 1)

	snap, err := st.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), snap.Gen)
	require.Contains(t, snap.Jobs, id)
	assert.True(t, store.Equal(&j, snap.Jobs[id]))
	assert.Equal(t, map[string]store.Node{"w2": {Name: "w2", State: "idle"}}, snap.Nodes)
	meta, err := st.Meta(ctx)
	require.NoError(t, err)
	assert.Equal(t, "ok", meta["slurm"])
	assert.Equal(t, "2", meta["gen"])
}

func TestOneRoundTripPerBatch(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{})
	ctx := context.Background()
	// Warm up: a new connection costs its own round trip (HELLO/AUTH).
	require.NoError(t, st.Ping(ctx))
	_, err := st.Apply(ctx, &store.Batch{})
	require.NoError(t, err)
	_, err = st.Load(ctx)
	require.NoError(t, err)
	before := st.Stats().RoundTrips
	var b store.Batch
	for i := range 1000 {
		id := newID(time.Now().Add(time.Duration(i) * time.Millisecond))
		b.Jobs = append(b.Jobs, store.JobChange{New: sample(id, "u", "p", job.Queued)})
		b.Events = append(b.Events, store.Event{Type: store.EventState, ID: id, State: job.Queued})
	}
	_, err = st.Apply(ctx, &b)
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.Stats().RoundTrips-before)
	snap, err := st.Load(ctx)
	require.NoError(t, err)
	assert.Len(t, snap.Jobs, 1000)
	assert.Equal(t, int64(3), st.Stats().RoundTrips-before, "Load is two round trips")
}

func TestUnreachable(t *testing.T) {
	st := store.Open(store.Options{Addr: "127.0.0.1:1", Timeout: 200 * time.Millisecond})
	defer st.Close()
	_, err := st.Apply(context.Background(), &store.Batch{})
	assert.ErrorContains(t, err, "redis 127.0.0.1:1")
	assert.Equal(t, int64(1), st.Stats().Errors)
}

// queued is a queued job with a Slurm priority, submitted at t.
func queued(t time.Time, prio int64) store.Job {
	j := sample(newID(t), "ferry-alice", "q", job.Queued)
	j.Priority = prio
	j.EstStart = t.Add(time.Hour)
	return j
}

// position asks the store for a job's place in line.
func position(t *testing.T, st *store.Redis, id job.ID) [2]int64 {
	t.Helper()
	pos, total, err := st.QueuePosition(context.Background(), id)
	require.NoError(t, err)
	return [2]int64{pos, total}
}

// The queue set orders ferry's queued jobs as they wait: higher priority
// first, then earlier submit; a job that leaves the queue leaves the set.
func TestQueuePosition(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{})
	ctx := context.Background()
	base := time.Now().Add(-time.Hour)
	a := queued(base, 100)                    // oldest, low priority
	b := queued(base.Add(time.Minute), 500)   // highest priority
	c := queued(base.Add(2*time.Minute), 100) // same priority as a, later
	d := queued(base.Add(3*time.Minute), 0)   // held
	r := sample(newID(base.Add(4*time.Minute)), "ferry-bob", "q", job.Running)
	_, err := st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{New: a}, {New: b}, {New: c}, {New: d}, {New: r}}})
	require.NoError(t, err)

	tests := []struct {
		name string
		id   job.ID
		want [2]int64
	}{
		{"highest priority first", b.ID, [2]int64{1, 4}},
		{"then the earlier of equal priority", a.ID, [2]int64{2, 4}},
		{"then the later", c.ID, [2]int64{3, 4}},
		{"held last", d.ID, [2]int64{4, 4}},
		{"running: not in line", r.ID, [2]int64{0, 4}},
		{"unknown job", newID(time.Now()), [2]int64{0, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, position(t, st, tt.id))
		})
	}

	before := st.Stats().RoundTrips
	position(t, st, a.ID)
	assert.Equal(t, int64(1), st.Stats().RoundTrips-before, "one round trip")

	// A change that moves nothing in line writes nothing to the queue: a
	// score set by hand survives it.
	srv.Do(t, "ZADD", "ferry:queue", "-1000", string(c.ID))
	c2 := c
	c2.Reason, c2.EstStart = "waiting: other jobs have higher priority", c.EstStart.Add(time.Minute)
	_, err = st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{Old: &c, New: c2}}})
	require.NoError(t, err)
	assert.Equal(t, "-1000", srv.Do(t, "ZSCORE", "ferry:queue", string(c.ID)))

	// Priority changes move a job; leaving the queue takes it out of line.
	c3 := c2
	c3.Priority = 50
	b2 := b
	b2.State, b2.Priority, b2.EstStart, b2.Node = job.Running, 0, time.Time{}, "w1"
	r2 := r
	r2.State, r2.Priority = job.Queued, 100 // requeued
	_, err = st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{Old: &c2, New: c3}, {Old: &b, New: b2}, {Old: &r, New: r2}}})
	require.NoError(t, err)
	assert.Equal(t, [2]int64{0, 4}, position(t, st, b.ID), "started")
	assert.Equal(t, [2]int64{1, 4}, position(t, st, a.ID))
	assert.Equal(t, [2]int64{2, 4}, position(t, st, r.ID), "requeued: back in line by priority")
	assert.Equal(t, [2]int64{3, 4}, position(t, st, c.ID), "its priority dropped")

	// Removing a job takes it out of line.
	_, err = st.Apply(ctx, &store.Batch{Removed: []store.Job{a}})
	require.NoError(t, err)
	assert.Equal(t, [2]int64{0, 3}, position(t, st, a.ID))
	assert.Equal(t, [2]int64{1, 3}, position(t, st, r.ID))

	// A rebuild (every job, Old nil) rewrites the queue from the jobs
	// alone: a job the store kept from before is dropped from line.
	_, err = st.Apply(ctx, &store.Batch{JobsFull: true, Jobs: []store.JobChange{{New: c3}, {New: d}}})
	require.NoError(t, err)
	assert.Equal(t, [2]int64{1, 2}, position(t, st, c.ID))
	assert.Equal(t, [2]int64{0, 2}, position(t, st, r.ID))
	srv.Do(t, "FLUSHALL")
	assert.Equal(t, [2]int64{0, 0}, position(t, st, c.ID), "an empty store has no queue")
}

// Each job keeps its own event history, in the same transaction as the
// stream: oldest first, capped, and gone with the job.
func TestJobEvents(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{MaxJobEvents: 3})
	ctx := context.Background()
	a := sample(newID(time.Now()), "ferry-alice", "e", job.Queued)
	b := sample(newID(time.Now()), "ferry-bob", "e", job.Queued)
	states := []job.State{job.Queued, job.Running, job.Completing, job.Succeeded}
	prev := job.State("")
	for i, s := range states {
		bt := &store.Batch{Events: []store.Event{
			{Type: store.EventState, ID: a.ID, User: a.User, State: s, Prev: prev, Reason: fmt.Sprint("step ", i), Source: store.SourceSqueue},
		}}
		if i == 0 {
			bt.Jobs = []store.JobChange{{New: a}, {New: b}}
			bt.Events = append(bt.Events,
				store.Event{Type: store.EventState, ID: b.ID, User: b.User, State: job.Queued},
				store.Event{Type: store.EventResync})
		}
		_, err := st.Apply(ctx, bt)
		require.NoError(t, err)
		prev = s
	}

	evs, err := st.JobEvents(ctx, a.ID)
	require.NoError(t, err)
	var got []string
	for _, e := range evs {
		assert.Empty(t, e.StreamID)
		assert.Equal(t, a.ID, e.ID)
		assert.False(t, e.At.IsZero())
		got = append(got, string(e.Prev)+">"+string(e.State)+" "+e.Reason)
	}
	assert.Equal(t, []string{"queued>running step 1", "running>completing step 2", "completing>succeeded step 3"}, got,
		"the last MaxJobEvents, oldest first")
	assert.Equal(t, store.SourceSqueue, evs[2].Source)

	evs, err = st.JobEvents(ctx, b.ID)
	require.NoError(t, err)
	require.Len(t, evs, 1, "each job has its own")
	assert.Equal(t, job.Queued, evs[0].State)

	none, err := st.JobEvents(ctx, newID(time.Now()))
	require.NoError(t, err)
	assert.Empty(t, none)

	// Removed: the history goes with the job, and the removal is not added.
	_, err = st.Apply(ctx, &store.Batch{Removed: []store.Job{a},
		Events: []store.Event{{Type: store.EventRemoved, ID: a.ID, User: a.User}}})
	require.NoError(t, err)
	evs, err = st.JobEvents(ctx, a.ID)
	require.NoError(t, err)
	assert.Empty(t, evs)
	assert.Equal(t, int64(0), srv.Do(t, "EXISTS", "ferry:job:"+string(a.ID)+":events"))
	all, err := st.Events(ctx, "", 100)
	require.NoError(t, err)
	assert.Equal(t, store.EventRemoved, all[len(all)-1].Type, "the stream still says it was removed")
}

// A sweep's tasks read back in task order, whatever order they were
// written in, and follow a task that moves or is removed.
func TestSweepTasks(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{})
	ctx := context.Background()
	now := time.Now()
	sweep, other := newID(now), newID(now.Add(time.Second))
	tasks := make([]store.Job, 5)
	var b store.Batch
	for _, i := range []int{3, 0, 4, 1, 2} {
		j := sample(newID(now.Add(time.Duration(10-i)*time.Millisecond)), "ferry-alice", "sw", job.Queued)
		j.Sweep, j.TaskIndex = sweep, i
		tasks[i] = j
		b.Jobs = append(b.Jobs, store.JobChange{New: j})
	}
	plain := sample(newID(now), "ferry-alice", "sw", job.Queued)
	b.Jobs = append(b.Jobs, store.JobChange{New: plain})
	_, err := st.Apply(ctx, &b)
	require.NoError(t, err)

	tests := []struct {
		name          string
		offset, limit int64
		want          []job.ID
	}{
		{"all, in task order", 0, 0, []job.ID{tasks[0].ID, tasks[1].ID, tasks[2].ID, tasks[3].ID, tasks[4].ID}},
		{"first page", 0, 2, []job.ID{tasks[0].ID, tasks[1].ID}},
		{"second page", 2, 2, []job.ID{tasks[2].ID, tasks[3].ID}},
		{"past the end", 5, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, total, err := st.SweepTasks(ctx, sweep, tt.offset, tt.limit)
			require.NoError(t, err)
			assert.Equal(t, int64(5), total)
			assert.Equal(t, tt.want, idsOf(page))
		})
	}
	page, _, err := st.Jobs(ctx, store.Page{Sweep: sweep, User: "nobody", Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, []job.ID{tasks[0].ID}, idsOf(page), "Page.Sweep reads the sweep")
	assert.Equal(t, sweep, page[0].Sweep)
	assert.Equal(t, 0, page[0].TaskIndex)

	// A task re-indexed, and one moved to another sweep.
	t1 := tasks[1]
	t1.TaskIndex = 9
	t2 := tasks[2]
	t2.Sweep, t2.TaskIndex = other, 0
	_, err = st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{Old: &tasks[1], New: t1}, {Old: &tasks[2], New: t2}}})
	require.NoError(t, err)
	page, total, err := st.SweepTasks(ctx, sweep, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, int64(4), total)
	assert.Equal(t, []job.ID{tasks[0].ID, tasks[3].ID, tasks[4].ID, tasks[1].ID}, idsOf(page))
	assert.Equal(t, 9, page[3].TaskIndex)
	page, _, err = st.SweepTasks(ctx, other, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, []job.ID{tasks[2].ID}, idsOf(page))

	// Removed: out of its sweep.
	_, err = st.Apply(ctx, &store.Batch{Removed: []store.Job{t2, tasks[0]}})
	require.NoError(t, err)
	_, total, err = st.SweepTasks(ctx, other, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, int64(0), total)
	page, _, err = st.SweepTasks(ctx, sweep, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, []job.ID{tasks[3].ID, tasks[4].ID, tasks[1].ID}, idsOf(page))
}
