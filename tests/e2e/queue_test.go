package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// A job that waits for a node says so: `ferry status` gives the reason in
// words, its place in the queue and, once Slurm's backfill has planned it,
// the estimated start.
func TestQueuedJobSaysWhereItStands(t *testing.T) {
	a, b := lookup(t, alice), lookup(t, bob)
	bdir, bproj := project(t, b, "hold")
	var blockers []string
	for i := 0; i < 2; i++ {
		s := submit(t, b, bdir, bproj, "--time", "5", "--", "sleep", "60")
		blockers = append(blockers, s.ID)
	}
	t.Cleanup(func() { ferry(t, b, b.Home, append([]string{"cancel"}, blockers...)...) })
	for _, id := range blockers {
		waitState(t, b, id, 90*time.Second, func(st job.Status) bool { return st.State == job.Running || st.State.Terminal() })
	}
	adir, aproj := project(t, a, "waiter")
	s := submit(t, a, adir, aproj, "--time", "5", "--", "true")
	t.Cleanup(func() { ferry(t, a, a.Home, "cancel", s.ID) })

	st := waitState(t, a, s.ID, 30*time.Second, func(st job.Status) bool { return st.QueuePosition > 0 })
	assert.Equal(t, job.Queued, st.State)
	assert.Equal(t, "waiting for a free node", st.Reason, "Slurm's reason Resources, in words")
	assert.Equal(t, 1, st.QueuePosition, "first in line: both nodes are busy with bob's jobs")
	assert.GreaterOrEqual(t, st.QueueLength, 1)

	// The backfill scheduler plans pending jobs every bf_interval (30 s).
	st = waitState(t, a, s.ID, 75*time.Second, func(st job.Status) bool { return !st.EstStart.IsZero() || st.State != job.Queued })
	require.Equal(t, job.Queued, st.State, "still waiting for bob's jobs")
	assert.WithinDuration(t, time.Now().Add(5*time.Minute), st.EstStart, 5*time.Minute+30*time.Second,
		"Slurm expects it when a blocker's 5-minute limit runs out, at the latest")
	r := ferry(t, a, a.Home, "status", s.ID)
	require.Equal(t, 0, r.Code, r.String())
	assert.Contains(t, r.Out, "queue:     number 1 of")
	assert.Contains(t, r.Out, "Slurm expects it to start at")
}
