package job_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

func TestStateTerminalActive(t *testing.T) {
	tests := []struct {
		state            job.State
		terminal, active bool
	}{
		{job.Queued, false, true},
		{job.Running, false, true},
		{job.Completing, false, true},
		{job.Requeued, false, true},
		{job.Succeeded, true, false},
		{job.Failed, true, false},
		{job.Cancelled, true, false},
		{job.Timeout, true, false},
		{job.OutOfMemory, true, false},
		{job.NodeFail, true, false},
		{job.Preempted, true, false},
		{job.Lost, true, false},
		{job.Unknown, false, false},
		{job.State("bogus"), false, false},
	}
	seen := map[job.State]bool{}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			assert.Equal(t, tt.terminal, tt.state.Terminal(), "Terminal")
			assert.Equal(t, tt.active, tt.state.Active(), "Active")
		})
		seen[tt.state] = true
	}
	for _, s := range job.States {
		assert.True(t, seen[s], "state %s is not covered by this table", s)
	}
}

func TestParseState(t *testing.T) {
	for _, s := range job.States {
		got, err := job.ParseState(string(s))
		require.NoError(t, err)
		assert.Equal(t, s, got)
	}
	for _, in := range []string{"", "RUNNING", "Running", "done", " queued"} {
		_, err := job.ParseState(in)
		require.Error(t, err, "%q", in)
		assert.Contains(t, err.Error(), "unknown state")
		assert.Contains(t, err.Error(), "succeeded", "the message lists the valid states")
	}
}
