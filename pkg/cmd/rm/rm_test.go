package rm_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/cmdtest"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/rm"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe/observetest"
)

// newEnv returns a test env that runs `ferry rm`.
func newEnv(t *testing.T) *cmdtest.Env {
	return cmdtest.New(t, func(f *factory.Factory) *cobra.Command { return rm.NewCmdRm(f, nil) })
}

// spoolEntries lists every name left in the spool root (trash included).
func spoolEntries(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestRm(t *testing.T) {
	type jobs struct{ done, failed, running, queued job.Dir }
	tests := []struct {
		name      string
		refs      func(j jobs) []string
		slurmDown bool
		wantCode  int
		removed   func(j jobs) []job.Dir
		kept      func(j jobs) []job.Dir
		wantErr   []string // each in the one-line error
	}{
		{
			name:    "a finished job: its whole dir goes",
			refs:    func(j jobs) []string { return []string{string(j.done.ID())} },
			removed: func(j jobs) []job.Dir { return []job.Dir{j.done} },
			kept:    func(j jobs) []job.Dir { return []job.Dir{j.failed, j.running, j.queued} },
		},
		{
			name:    "several, by prefix and by Slurm id",
			refs:    func(j jobs) []string { return []string{j.done.ID().Short(), "102"} },
			removed: func(j jobs) []job.Dir { return []job.Dir{j.done, j.failed} },
			kept:    func(j jobs) []job.Dir { return []job.Dir{j.running, j.queued} },
		},
		{
			name:     "a running job is refused",
			refs:     func(j jobs) []string { return []string{string(j.running.ID())} },
			wantCode: factory.CodeError,
			kept:     func(j jobs) []job.Dir { return []job.Dir{j.done, j.failed, j.running, j.queued} },
			wantErr:  []string{"is running: not removed; cancel it first with 'ferry cancel "},
		},
		{
			name:     "a queued one among finished ones: the others go",
			refs:     func(j jobs) []string { return []string{"101", "104", "102"} },
			wantCode: factory.CodeError,
			removed:  func(j jobs) []job.Dir { return []job.Dir{j.done, j.failed} },
			kept:     func(j jobs) []job.Dir { return []job.Dir{j.running, j.queued} },
			wantErr:  []string{"is queued: not removed; cancel it first"},
		},
		{
			name:     "an unknown id among them",
			refs:     func(j jobs) []string { return []string{"zzzz", "101"} },
			wantCode: factory.CodeNotFound,
			removed:  func(j jobs) []job.Dir { return []job.Dir{j.done} },
			kept:     func(j jobs) []job.Dir { return []job.Dir{j.failed, j.running, j.queued} },
			wantErr:  []string{`no job "zzzz" among your jobs (see 'ferry ls')`},
		},
		{
			name:      "Slurm down: a finished job still goes, an unfinished one is kept",
			refs:      func(j jobs) []string { return []string{"101", "103"} },
			slurmDown: true,
			wantCode:  factory.CodeError,
			removed:   func(j jobs) []job.Dir { return []job.Dir{j.done} },
			kept:      func(j jobs) []job.Dir { return []job.Dir{j.running} },
			wantErr:   []string{"not removed, Slurm cannot say now whether it still runs; try again later"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			me := observetest.Me(t)
			at := time.Now().Add(-time.Hour)
			var j jobs
			j.done = observetest.WriteJob(t, e.Root, job.Spec{Submitted: at}, "101")
			observetest.WriteResult(t, j.done, job.Succeeded, 0)
			require.NoError(t, os.WriteFile(j.done.Outputs()+"/model.pt", []byte("weights"), 0o600))
			j.failed = observetest.WriteJob(t, e.Root, job.Spec{Submitted: at.Add(time.Minute)}, "102")
			observetest.WriteResult(t, j.failed, job.Failed, 3)
			j.running = observetest.WriteJob(t, e.Root, job.Spec{Submitted: at.Add(2 * time.Minute)}, "103")
			j.queued = observetest.WriteJob(t, e.Root, job.Spec{Submitted: at.Add(3 * time.Minute)}, "104")
			e.Slurm.Set(observetest.Job(me, "103", j.running.ID(), "RUNNING"), observetest.Job(me, "104", j.queued.ID(), "PENDING"))
			if tt.slurmDown {
				e.Slurm.Fail("squeue", errors.New("slurm_load_jobs error: Unable to contact slurm controller"))
			}

			assert.Equal(t, tt.wantCode, e.Run(t, tt.refs(j)...), e.ErrOut.String())

			var wantOut string
			var removed []job.Dir
			if tt.removed != nil {
				removed = tt.removed(j)
			}
			for _, d := range removed {
				assert.False(t, exists(d.Path()), "%s still there", d.ID())
				wantOut += string(d.ID()) + "\n"
			}
			assert.Equal(t, wantOut, e.Out.String(), "stdout: the ids removed, in the order given")
			for _, d := range tt.kept(j) {
				assert.True(t, exists(d.Spec()), "%s was touched", d.ID())
			}
			assert.Len(t, spoolEntries(t, e.Root), 4-len(removed), "nothing left behind (no trash dir)")
			msg := e.ErrOut.String()
			if len(tt.wantErr) == 0 {
				assert.Empty(t, msg)
			}
			for _, w := range tt.wantErr {
				assert.Contains(t, msg, w)
			}
			assert.LessOrEqual(t, strings.Count(msg, "\n"), 1, "one line: %q", msg)
		})
	}
}
