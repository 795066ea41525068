package tracker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// position is a job's place in the store's queue, as the dashboard asks.
func (e *env) position(id job.ID) [2]int64 {
	e.t.Helper()
	pos, total, err := e.st.QueuePosition(context.Background(), id)
	require.NoError(e.t, err)
	return [2]int64{pos, total}
}

// A queued job shows why it waits, when Slurm expects it to start, its
// priority and its place in line; once it starts it shows none of these.
func TestQueuedJobWaits(t *testing.T) {
	e := newEnv(t)
	est := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	a, al := e.submit("p", nil)
	al.Reason, al.Priority, al.EstStart = "Resources", 900, est
	e.clock.Add(time.Second)
	b, bl := e.submit("p", nil)
	bl.Reason, bl.Priority = "Priority", 500
	e.clock.Add(time.Second)
	c, cl := e.submit("p", nil)
	cl.Reason, cl.Priority = "QOSMaxJobsPerUserLimit", 900
	e.slurm.set(al)
	e.slurm.set(bl)
	e.slurm.set(cl)
	e.tick()

	ja := e.job(a)
	assert.Equal(t, job.Queued, ja.State)
	assert.Equal(t, "waiting for a free node", ja.Reason)
	assert.True(t, est.Equal(ja.EstStart), "estimated start %s", ja.EstStart)
	assert.Equal(t, int64(900), ja.Priority)
	assert.Equal(t, est.UTC().Format(store.TimeFormat), e.hashField(a, "est_start"))
	jb := e.job(b)
	assert.Equal(t, "waiting: other jobs have higher priority", jb.Reason)
	assert.True(t, jb.EstStart.IsZero(), "Slurm gave no estimate")
	assert.Nil(t, e.hashField(b, "est_start"))
	assert.Equal(t, "waiting: you already run as many jobs as your QOS allows", e.job(c).Reason)

	assert.Equal(t, [2]int64{1, 3}, e.position(a), "highest priority, first submitted")
	assert.Equal(t, [2]int64{2, 3}, e.position(c), "same priority, submitted later")
	assert.Equal(t, [2]int64{3, 3}, e.position(b), "lower priority")

	// Slurm's estimate and priority move: the store follows.
	bl.Priority, bl.EstStart = 1000, est.Add(time.Hour)
	e.slurm.set(bl)
	e.tick()
	assert.Equal(t, int64(1000), e.job(b).Priority)
	assert.True(t, est.Add(time.Hour).Equal(e.job(b).EstStart))
	assert.Equal(t, [2]int64{1, 3}, e.position(b))
	assert.Equal(t, [2]int64{2, 3}, e.position(a))

	// a starts: out of line, no estimate, no priority.
	e.slurm.set(running(al, "w1", e.clock.Now()))
	e.tick()
	ja = e.job(a)
	assert.Equal(t, job.Running, ja.State)
	assert.True(t, ja.EstStart.IsZero())
	assert.Equal(t, int64(0), ja.Priority)
	assert.Nil(t, e.hashField(a, "est_start"))
	assert.Nil(t, e.hashField(a, "priority"))
	assert.Equal(t, [2]int64{0, 2}, e.position(a))
	assert.Equal(t, [2]int64{2, 2}, e.position(c))

	// The store flushed: the rebuild puts the queue back as it was.
	e.srv.Do(t, "FLUSHALL")
	e.tick()
	assert.Equal(t, [2]int64{1, 2}, e.position(b))
	assert.Equal(t, [2]int64{2, 2}, e.position(c))
	assert.Equal(t, [2]int64{0, 2}, e.position(a))

	// A queued job that left Slurm without a trace keeps what Slurm said
	// last while it may be catching up; lost, it has no estimate and no
	// place in line.
	e.slurm.drop(cl.ID)
	e.tick()
	assert.Equal(t, job.Queued, e.job(c).State, "within the grace period")
	assert.Equal(t, [2]int64{2, 2}, e.position(c))
	e.clock.Add(2 * time.Minute)
	e.tick()
	jc := e.job(c)
	assert.Equal(t, job.Lost, jc.State)
	assert.True(t, jc.EstStart.IsZero())
	assert.Equal(t, int64(0), jc.Priority)
	assert.Equal(t, [2]int64{0, 1}, e.position(c))
}

// Each job's own history of states, as the dashboard's timeline reads it.
func TestJobEventHistory(t *testing.T) {
	e := newEnv(t)
	id, l := e.submit("p", nil)
	e.slurm.set(l)
	e.tick()
	e.slurm.set(running(l, "w1", e.clock.Now()))
	e.tick()
	e.result(id, job.Succeeded, "exited with code 0", 0)
	e.slurm.set(ended(running(l, "w1", e.clock.Now()), "COMPLETED", e.clock.Now()))
	e.tick()
	other, ol := e.submit("p", nil)
	e.slurm.set(ol)
	e.tick()

	evs, err := e.st.JobEvents(context.Background(), id)
	require.NoError(t, err)
	var got []string
	for _, ev := range evs {
		assert.Equal(t, id, ev.ID)
		got = append(got, string(ev.Prev)+">"+string(ev.State)+"@"+string(ev.Source))
	}
	assert.Equal(t, []string{">queued@squeue", "queued>running@squeue", "running>succeeded@squeue"}, got)
	assert.Equal(t, "exited with code 0", evs[2].Reason)
	evs, err = e.st.JobEvents(context.Background(), other)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, job.Queued, evs[0].State)
}

// A sweep's tasks carry their sweep and index, and list in task order.
func TestSweepInStore(t *testing.T) {
	e := newEnv(t)
	sweep, tasks, lines := e.submitSweep("700", 3)
	for _, l := range lines {
		e.slurm.set(l)
	}
	plain, pl := e.submit("p", nil)
	e.slurm.set(pl)
	e.tick()

	page, total, err := e.st.SweepTasks(context.Background(), sweep, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, int64(3), total)
	var got []job.ID
	for i, j := range page {
		got = append(got, j.ID)
		assert.Equal(t, sweep, j.Sweep)
		assert.Equal(t, i, j.TaskIndex)
		assert.Equal(t, job.Queued, j.State)
	}
	assert.Equal(t, tasks, got)
	assert.Equal(t, job.ID(""), e.job(plain).Sweep)
	assert.Nil(t, e.hashField(plain, "sweep"))
	assert.Equal(t, "2", e.hashField(tasks[2], "task_index"))
}
