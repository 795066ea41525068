package clearqueue_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/clearqueue"
	"github.com/ferry-hpc/ferry/pkg/cmd/cmdtest"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe/observetest"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// newEnv returns a test env that runs `ferry clear-queue`.
func newEnv(t *testing.T) *cmdtest.Env {
	return cmdtest.New(t, func(f *factory.Factory) *cobra.Command { return clearqueue.NewCmdClearQueue(f, nil) })
}

// queue is the caller's jobs in two projects, some queued, one running,
// one a pending sweep task, and another user's pending jobs, one of them
// forging the comment of one of the caller's jobs.
type queue struct {
	e                                 *cmdtest.Env
	visionQ, visionRun, nlpQ, nlpTask job.Dir
}

func newQueue(t *testing.T) *queue {
	e := newEnv(t)
	me := observetest.Me(t)
	at := time.Now().Add(-time.Hour)
	q := &queue{e: e}
	q.visionQ = observetest.WriteJob(t, e.Root, job.Spec{Project: "vision", Submitted: at}, "201")
	q.visionRun = observetest.WriteJob(t, e.Root, job.Spec{Project: "vision", Submitted: at.Add(time.Minute)}, "202")
	q.nlpQ = observetest.WriteJob(t, e.Root, job.Spec{Project: "nlp", Submitted: at.Add(2 * time.Minute)}, "203")
	sweepID := job.NewID(at.Add(3 * time.Minute))
	q.nlpTask = observetest.WriteJob(t, e.Root, job.Spec{Project: "nlp", Submitted: at.Add(3 * time.Minute), Sweep: &job.SweepRef{ID: sweepID, Index: 0}}, "300_0")
	task := observetest.Job(me, "300_0", sweepID, "PENDING")
	task.ArrayJobID, task.ArrayTaskID, task.RawID = "300", 0, "300"
	forged := observetest.Job("bob", "666", q.nlpQ.ID(), "PENDING")
	e.Slurm.Set(
		observetest.Job(me, "201", q.visionQ.ID(), "PENDING"),
		observetest.Job(me, "202", q.visionRun.ID(), "RUNNING"),
		observetest.Job(me, "203", q.nlpQ.ID(), "PENDING"),
		task,
		observetest.Job("bob", "500", job.NewID(at), "PENDING"),
		forged,
	)
	return q
}

func line(d job.Dir, slurmID, project string) string {
	return string(d.ID()) + "\t" + slurmID + "\t" + project + "\n"
}

func scancelled(e *cmdtest.Env) [][]string {
	var out [][]string
	for _, c := range e.Slurm.Calls("scancel") {
		out = append(out, c.Args)
	}
	return out
}

func TestClearQueue(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantOut     func(q *queue) string
		wantScancel [][]string
		wantErrOut  string
		cancelled   []string // Slurm ids CANCELLED afterwards; every other job is as it was
	}{
		{
			name: "all the caller's queued jobs, sweep tasks too",
			wantOut: func(q *queue) string {
				return line(q.nlpTask, "300_0", "nlp") + line(q.nlpQ, "203", "nlp") + line(q.visionQ, "201", "vision")
			},
			wantScancel: [][]string{{"--state=PENDING", "300_0", "203", "201"}},
			wantErrOut:  "cancelled 3 queued job(s)\n",
			cancelled:   []string{"201", "203", "300_0"},
		},
		{
			name:        "one project",
			args:        []string{"--project", "vision"},
			wantOut:     func(q *queue) string { return line(q.visionQ, "201", "vision") },
			wantScancel: [][]string{{"--state=PENDING", "201"}},
			wantErrOut:  "cancelled 1 queued job(s)\n",
			cancelled:   []string{"201"},
		},
		{
			name: "dry run cancels nothing",
			args: []string{"--dry-run", "--project", "nlp"},
			wantOut: func(q *queue) string {
				return line(q.nlpTask, "300_0", "nlp") + line(q.nlpQ, "203", "nlp")
			},
			wantErrOut: "would cancel 2 queued job(s)\n",
		},
		{
			name:       "nothing queued in the project",
			args:       []string{"--project", "none"},
			wantOut:    func(*queue) string { return "" },
			wantErrOut: "no queued jobs to cancel\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(t)
			before := q.e.Slurm.Jobs()
			require.Equal(t, 0, q.e.Run(t, tt.args...), q.e.ErrOut.String())
			assert.Equal(t, tt.wantOut(q), q.e.Out.String())
			assert.Equal(t, tt.wantErrOut, q.e.ErrOut.String())
			assert.Equal(t, tt.wantScancel, scancelled(q.e))
			for _, j := range before {
				want := j.State
				if slices.Contains(tt.cancelled, j.ID) {
					want = "CANCELLED"
				}
				assert.Equal(t, want, q.e.Slurm.State(j.ID), "Slurm job %s (%s's)", j.ID, j.User)
			}
			// Cancelled tasks vanish from Slurm; the marker tells 'cancelled' from 'lost'.
			for _, d := range []job.Dir{q.visionQ, q.nlpQ, q.nlpTask} {
				_, err := os.Stat(d.Cancel())
				assert.Equal(t, slices.Contains(tt.cancelled, job.ReadSlurmID(d)), err == nil, "cancel marker of %s", job.ReadSlurmID(d))
			}
			_, err := os.Stat(q.visionRun.Cancel())
			assert.True(t, os.IsNotExist(err), "the running job is not marked")
		})
	}
}

// A queued job that starts before Slurm gets the request runs on, and is
// not reported as cancelled.
func TestClearQueueJobStartsMeanwhile(t *testing.T) {
	q := newQueue(t)
	q.e.Slurm.OnRun = func(name string, n int) {
		if name != "scancel" {
			return
		}
		jobs := q.e.Slurm.Jobs()
		for i := range jobs {
			if jobs[i].ID == "203" {
				jobs[i].State, jobs[i].Nodes = "RUNNING", "w2"
			}
		}
		q.e.Slurm.Set(jobs...)
	}
	require.Equal(t, 0, q.e.Run(t, "--project", "nlp"))
	assert.Equal(t, line(q.nlpTask, "300_0", "nlp"), q.e.Out.String())
	assert.Equal(t, "job "+q.nlpQ.ID().Short()+" is running: it started before it could be cancelled, left alone\n"+
		"cancelled 1 queued job(s)\n", q.e.ErrOut.String())
	assert.Equal(t, "RUNNING", q.e.Slurm.State("203"))
	_, err := os.Stat(q.nlpQ.Cancel())
	assert.True(t, os.IsNotExist(err), "no cancel marker left on a job that runs")
}

func TestClearQueueSlurmRefuses(t *testing.T) {
	q := newQueue(t)
	q.e.Slurm.Fail("scancel", &slurm.CmdError{Args: []string{"scancel"}, ExitCode: 1,
		Stderr: "scancel: error: Unable to contact slurm controller (connect failure)\n"})
	assert.Equal(t, factory.CodeSlurm, q.e.Run(t, "--project", "vision"))
	assert.Empty(t, q.e.Out.String(), "nothing reported cancelled")
	assert.Equal(t, "ferry: cancel queued jobs: scancel: Unable to contact slurm controller (connect failure) (exit 1)\n", q.e.ErrOut.String())

	q = newQueue(t)
	q.e.Slurm.Fail("squeue", errors.New("slurm_load_jobs error: Unable to contact slurm controller"))
	assert.Equal(t, 0, q.e.Run(t))
	assert.Equal(t, "no queued jobs to cancel\n", q.e.ErrOut.String(), "an unknown state is never read as queued")
	assert.Empty(t, q.e.Slurm.Calls("scancel"))
	assert.False(t, strings.Contains(q.e.Out.String(), "\t"))
}
