package queue

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/cmdtest"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe/observetest"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

func TestQueue(t *testing.T) {
	me := observetest.Me(t)
	e := cmdtest.New(t, func(f *factory.Factory) *cobra.Command {
		return NewCmdQueue(f, func(ctx context.Context, o *Options) error { o.User = me; return runQueue(ctx, o) })
	})
	// Two of mine wait, behind someone else's job of higher priority.
	mine1, mine2, ran := job.NewID(time.Now()), job.NewID(time.Now()), job.NewID(time.Now())
	for id, sid := range map[job.ID]string{mine1: "101", mine2: "102", ran: "103"} {
		observetest.WriteJob(t, e.Root, job.Spec{ID: id, Project: "demo", User: me, Command: []string{"true"}, Submitted: time.Now()}, sid)
	}
	j1 := observetest.Job(me, "101", mine1, "PENDING")
	j1.Reason, j1.Priority, j1.Partition, j1.EstStart = "Resources", 50, "debug", time.Now().Add(10*time.Minute)
	j2 := observetest.Job(me, "102", mine2, "PENDING")
	j2.Reason, j2.Priority, j2.Partition = "Priority", 40, "debug"
	other := observetest.Job("bob", "99", job.NewID(time.Now()), "PENDING")
	other.Priority, other.Partition = 90, "debug"
	e.Slurm.Set(j1, j2, other, observetest.Job(me, "103", ran, "RUNNING"))

	require.Equal(t, 0, e.Run(t), e.ErrOut.String())
	out := e.Out.String()
	assert.Contains(t, out, "2 of 3")
	assert.Contains(t, out, "3 of 3")
	assert.Contains(t, out, "waiting for a free node")
	assert.Contains(t, out, "other jobs have higher priority")
	assert.NotContains(t, out, string(ran), "a running job is not in the queue")
	assert.Contains(t, out, string(mine1))
	assert.Contains(t, out, "first come, first served", "no accounting here")

	e.Slurm.Shares = map[string]slurm.Share{me: {Account: "students", RawUsage: 7200, EffectiveUsage: 0.25, FairShare: 0.3}}
	require.Equal(t, 0, e.Run(t, "-o", "json"), e.ErrOut.String())
	var v View
	require.NoError(t, json.Unmarshal(e.Out.Bytes(), &v))
	require.Len(t, v.Jobs, 2)
	require.NotNil(t, v.FairShare)
	assert.InDelta(t, 0.3, v.FairShare.FairShare, 1e-6)
	for _, s := range v.Jobs {
		assert.Positive(t, s.QueuePosition)
		assert.Equal(t, 3, s.QueueLength)
	}
	require.Equal(t, 0, e.Run(t))
	assert.Contains(t, e.Out.String(), "Your fair-share standing: 0.30")
}
