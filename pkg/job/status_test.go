package job_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

func TestObserve(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	started := now.Add(-5 * time.Minute)
	ended := now.Add(-time.Minute)
	slurmDown := errors.New("squeue: slurm_load_jobs error: Unable to contact slurm controller")

	result := func(st job.State, code int, by string) *job.Result {
		return &job.Result{State: st, Reason: "sandbox says " + string(st), ExitCode: code, Node: "w1",
			Started: started, Ended: ended, WrittenBy: by}
	}
	slurm := func(st job.State, reason string) job.SlurmView {
		return job.SlurmView{Known: true, State: st, Reason: reason, Node: "w2", Start: started, End: ended}
	}

	tests := []struct {
		name       string
		slurmID    string
		sv         job.SlurmView
		slurmErr   error
		res        *job.Result
		age        time.Duration
		wantState  job.State
		wantReason string
		wantCode   *int
		wantNode   string
	}{
		{
			name: "result succeeded, Slurm completed", slurmID: "42",
			sv: slurm(job.Succeeded, "completed"), res: result(job.Succeeded, 0, "sandbox"),
			wantState: job.Succeeded, wantReason: "sandbox says succeeded", wantCode: ptr(0), wantNode: "w1",
		},
		{
			name: "result succeeded, Slurm forgot the job", slurmID: "42", age: time.Hour,
			res:       result(job.Succeeded, 0, "sandbox"),
			wantState: job.Succeeded, wantReason: "sandbox says succeeded", wantCode: ptr(0), wantNode: "w1",
		},
		{
			name: "result failed, Slurm did not answer", slurmID: "42", slurmErr: slurmDown,
			res:       result(job.Failed, 3, "sandbox"),
			wantState: job.Failed, wantReason: "sandbox says failed", wantCode: ptr(3),
		},
		{
			name: "result cancelled, Slurm timeout", slurmID: "42",
			sv: slurm(job.Timeout, "hit its time limit"), res: result(job.Cancelled, 143, "sandbox"),
			wantState: job.Timeout, wantReason: "hit its time limit", wantCode: ptr(143),
		},
		{
			name: "result failed, Slurm node failure", slurmID: "42",
			sv: slurm(job.NodeFail, "its node failed"), res: result(job.Failed, 1, "sandbox"),
			wantState: job.NodeFail, wantReason: "its node failed", wantCode: ptr(1),
		},
		{
			name: "result cancelled, Slurm preempted", slurmID: "42",
			sv: slurm(job.Preempted, "preempted by a higher-priority job"), res: result(job.Cancelled, 143, "sandbox"),
			wantState: job.Preempted, wantReason: "preempted", wantCode: ptr(143),
		},
		{
			name: "epilog result failed, Slurm cancelled", slurmID: "42",
			sv: slurm(job.Cancelled, "cancelled"), res: result(job.Failed, -1, "epilog"),
			wantState: job.Cancelled, wantReason: "sandbox says failed",
		},
		{
			name: "sandbox result failed, Slurm cancelled: the sandbox knows better", slurmID: "42",
			sv: slurm(job.Cancelled, "cancelled"), res: result(job.Failed, 2, "sandbox"),
			wantState: job.Failed, wantReason: "sandbox says failed", wantCode: ptr(2),
		},
		{
			name: "epilog result failed, Slurm still completing", slurmID: "42",
			sv: slurm(job.Completing, "ended; Slurm is cleaning up its nodes"), res: result(job.Failed, -1, "epilog"),
			wantState: job.Failed, wantReason: "sandbox says failed",
		},
		{
			name: "result not terminal is ignored", slurmID: "42",
			sv: slurm(job.Running, ""), res: &job.Result{State: job.Running},
			wantState: job.Running, wantNode: "w2",
		},
		{
			name: "no result, Slurm failed", slurmID: "42",
			sv:        slurm(job.Failed, "the batch script failed: see slurm.out"),
			wantState: job.Failed, wantReason: "(no result.json was written: see slurm.out)",
		},
		{
			name: "no result, Slurm completed", slurmID: "42",
			sv:        slurm(job.Succeeded, "completed"),
			wantState: job.Succeeded, wantReason: "completed (no result.json was written",
		},
		{
			name: "no result, Slurm cancelled while queued", slurmID: "42",
			sv:        job.SlurmView{Known: true, State: job.Cancelled, Reason: "cancelled"},
			wantState: job.Cancelled, wantReason: "cancelled before it started",
		},
		{
			name: "no result, Slurm cancelled while running", slurmID: "42",
			sv:        slurm(job.Cancelled, "cancelled"),
			wantState: job.Cancelled, wantReason: "cancelled",
		},
		{
			name: "no result, Slurm out of memory", slurmID: "42",
			sv:        slurm(job.OutOfMemory, "ran out of memory"),
			wantState: job.OutOfMemory, wantReason: "ran out of memory",
		},
		{
			name: "no result, Slurm running", slurmID: "42",
			sv:        slurm(job.Running, ""),
			wantState: job.Running, wantNode: "w2",
		},
		{
			name: "no result, Slurm pending", slurmID: "42", age: time.Hour,
			sv:        job.SlurmView{Known: true, State: job.Queued, Reason: "waiting: Resources"},
			wantState: job.Queued, wantReason: "waiting: Resources",
		},
		{
			name: "no result, Slurm error", slurmID: "42", slurmErr: slurmDown, age: time.Hour,
			wantState: job.Unknown, wantReason: "Slurm did not answer: squeue: slurm_load_jobs error",
		},
		{
			name: "no result, not in Slurm, submitted 10 s ago", slurmID: "42", age: 10 * time.Second,
			wantState: job.Queued, wantReason: "submitted",
		},
		{
			name: "no result, not in Slurm, submitted 10 min ago", slurmID: "42", age: 10 * time.Minute,
			wantState: job.Lost, wantReason: "Slurm no longer knows this job and it left no result.json",
		},
		{
			name: "no slurm id", age: time.Hour,
			wantState: job.Lost, wantReason: "never reached Slurm",
		},
		{
			name: "no slurm id, submitted just now (sbatch has not returned)", age: time.Second,
			wantState: job.Queued, wantReason: "submitted",
		},
		{
			name: "no slurm id, Slurm error", slurmErr: slurmDown,
			wantState: job.Unknown, wantReason: "Slurm did not answer",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSpec()
			spec.ID = job.NewID(now.Add(-tt.age))
			spec.Submitted = now.Add(-tt.age)
			spec.User, spec.Name, spec.Dir = "ann", "run 1", "/spool/"+string(spec.ID)

			st := job.Observe(&spec, tt.slurmID, tt.sv, tt.slurmErr, tt.res, now)

			assert.Equal(t, tt.wantState, st.State)
			if tt.wantReason != "" {
				assert.Contains(t, st.Reason, tt.wantReason)
			}
			assert.Equal(t, tt.wantCode, st.ExitCode)
			if tt.wantNode != "" {
				assert.Equal(t, tt.wantNode, st.Node)
			}
			assert.Equal(t, spec.ID, st.ID)
			assert.Equal(t, "demo", st.Project)
			assert.Equal(t, "run 1", st.Name)
			assert.Equal(t, "ann", st.User)
			assert.Equal(t, tt.slurmID, st.SlurmID)
			assert.Equal(t, spec.Image, st.Image)
			assert.Equal(t, spec.Command, st.Command)
			assert.Equal(t, spec.Dir, st.Dir)
			assert.True(t, st.Submitted.Equal(spec.Submitted))
		})
	}
}

func TestObserveResultTimesWin(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	spec := validSpec()
	spec.Submitted = now.Add(-time.Hour)
	res := &job.Result{State: job.Succeeded, Node: "w1", Started: now.Add(-30 * time.Minute), Ended: now.Add(-20 * time.Minute), WrittenBy: "sandbox"}
	sv := job.SlurmView{Known: true, State: job.Succeeded, Node: "w9", Start: now.Add(-31 * time.Minute), End: now.Add(-19 * time.Minute)}

	st := job.Observe(&spec, "7", sv, nil, res, now)
	require.Equal(t, job.Succeeded, st.State)
	assert.Equal(t, "w1", st.Node)
	assert.Equal(t, res.Started, st.Started)
	assert.Equal(t, res.Ended, st.Ended)
}

func ptr[T any](v T) *T { return &v }
