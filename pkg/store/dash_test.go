package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
	"github.com/ferry-hpc/ferry/pkg/store/storetest"
)

func TestActiveJobsAndUserCounts(t *testing.T) {
	srv := storetest.Start(t)
	st := srv.Open(t, store.Options{})
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	mk := func(id, user string, st job.State, age time.Duration) store.Job {
		return store.Job{ID: job.ID(id), User: user, UID: -1, ArrayIndex: -1, State: st, Submitted: t0.Add(age)}
	}
	a := mk("01jda", "alice", job.Running, 2*time.Minute)
	b := mk("01jdb", "bob", job.Queued, time.Minute)
	c := mk("01jdc", "bob", job.Succeeded, 3*time.Minute)
	d := mk("01jdd", "us*er", job.Queued, 4*time.Minute)
	_, err := st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{New: a}, {New: b}, {New: c}, {New: d}}})
	require.NoError(t, err)

	ids := func() []job.ID {
		jobs, err := st.ActiveJobs(ctx, 0)
		require.NoError(t, err)
		var out []job.ID
		for _, j := range jobs {
			out = append(out, j.ID)
		}
		return out
	}
	assert.Equal(t, []job.ID{"01jdb", "01jda", "01jdd"}, ids(), "jobs not ended, oldest submit first")

	// a ends, c is requeued (it comes back).
	a2, c2 := a, c
	a2.State, c2.State = job.Succeeded, job.Requeued
	_, err = st.Apply(ctx, &store.Batch{Jobs: []store.JobChange{{Old: &a, New: a2}, {Old: &c, New: c2}}})
	require.NoError(t, err)
	assert.Equal(t, []job.ID{"01jdb", "01jdc", "01jdd"}, ids())

	_, err = st.Apply(ctx, &store.Batch{Removed: []store.Job{b}})
	require.NoError(t, err)
	assert.Equal(t, []job.ID{"01jdc", "01jdd"}, ids(), "a removed job leaves the active set")

	counts, err := st.UserCounts(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"alice": 1, "bob": 1, "us*er": 1}, counts)

	// A rebuild (FLUSHALL, then the tracker writes everything again) makes
	// the same set.
	srv.Do(t, "FLUSHALL")
	_, err = st.Apply(ctx, &store.Batch{JobsFull: true, Jobs: []store.JobChange{{New: a2}, {New: c2}, {New: d}}})
	require.NoError(t, err)
	assert.Equal(t, []job.ID{"01jdc", "01jdd"}, ids())
}
