package logs

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/cmdtest"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe"
	"github.com/ferry-hpc/ferry/pkg/observe/observetest"
)

// env runs `ferry logs`, polling fast.
type env struct{ *cmdtest.Env }

func newEnv(t *testing.T) *env {
	return &env{cmdtest.New(t, func(f *factory.Factory) *cobra.Command {
		return NewCmdLogs(f, func(ctx context.Context, o *Options) error {
			o.wait = observe.WaitOptions{Poll: 5 * time.Millisecond, Check: 10 * time.Millisecond}
			return runLogs(ctx, o)
		})
	})}
}

// run runs `ferry logs args...` under a 20 s deadline and returns the exit
// code it maps to; an error is printed to ErrOut as ferry prints it.
func (e *env) run(t *testing.T, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := e.RunContext(t, ctx, args...)
	require.NoError(t, ctx.Err(), "-f did not return once the job ended")
	return code
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	me := observetest.Me(t)
	d := observetest.WriteJob(t, e.Root, job.Spec{}, "4242")
	e.Slurm.Set(observetest.Job(me, "4242", d.ID(), "RUNNING"))
	queued := observetest.WriteJob(t, e.Root, job.Spec{}, "4243")

	// Before the program wrote anything.
	require.Equal(t, 0, e.run(t, "4243"))
	assert.Empty(t, e.Out.String())
	assert.Equal(t, "job "+queued.ID().Short()+" has no log yet: it has not started, or wrote nothing (see 'ferry status "+string(queued.ID())+"')\n", e.ErrOut.String())

	// The log as written, raw: it is the program's own output.
	observetest.AppendLog(t, d, "epoch 1\tloss 0.9\n\x1b[32mok\x1b[0m\n")
	require.NoError(t, os.WriteFile(d.SlurmOut(), []byte("ferry: pulling image\n"), 0o600))
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"4242"}, "epoch 1\tloss 0.9\n\x1b[32mok\x1b[0m\n"},
		{[]string{d.ID().Short()}, "epoch 1\tloss 0.9\n\x1b[32mok\x1b[0m\n"},
		{[]string{"--slurm", "4242"}, "ferry: pulling image\n"},
	}
	for _, tt := range tests {
		require.Equal(t, 0, e.run(t, tt.args...), "%v: %s", tt.args, e.ErrOut.String())
		assert.Equal(t, tt.want, e.Out.String(), "%v", tt.args)
		assert.Empty(t, e.ErrOut.String())
	}

	assert.Equal(t, factory.CodeNotFound, e.run(t, "zzzz"))
	assert.Equal(t, "ferry: no job \"zzzz\" among your jobs (see 'ferry ls')\n", e.ErrOut.String())
	assert.Empty(t, e.Out.String())
}

// -f prints the log as it grows until the job ends, then how it ended, and
// exits with the job's code.
func TestLogsFollow(t *testing.T) {
	tests := []struct {
		name       string
		end        func(t *testing.T, e *env, d job.Dir) // ends the job
		args       []string
		wantOut    string
		wantCode   int
		wantSuffix string // of the summary on stderr
	}{
		{
			name: "succeeds",
			end: func(t *testing.T, e *env, d job.Dir) {
				observetest.AppendLog(t, d, "epoch 2\n")
				observetest.WriteResult(t, d, job.Succeeded, 0)
				e.Slurm.Set(observetest.Job(observetest.Me(t), "4242", d.ID(), "COMPLETED"))
			},
			wantOut:    "epoch 1\nepoch 2\n",
			wantSuffix: " succeeded: exited with code 0 (ran 1s on w1)\n",
		},
		{
			name: "fails with its own code",
			end: func(t *testing.T, e *env, d job.Dir) {
				observetest.AppendLog(t, d, "Traceback\n")
				observetest.WriteResult(t, d, job.Failed, 3)
			},
			wantOut:    "epoch 1\nTraceback\n",
			wantCode:   3,
			wantSuffix: " failed: exited with code 3 (ran 1s on w1)\n",
		},
		{
			name: "cancelled in Slurm, no result",
			end: func(t *testing.T, e *env, d job.Dir) {
				j := observetest.Job(observetest.Me(t), "4242", d.ID(), "CANCELLED by 1000")
				j.Start = time.Now().Add(-time.Minute)
				e.Slurm.Set(j)
			},
			wantOut:    "epoch 1\n",
			wantCode:   130,
			wantSuffix: " cancelled: cancelled",
		},
		{
			name: "--slurm follows slurm.out",
			args: []string{"--slurm"},
			end: func(t *testing.T, e *env, d job.Dir) {
				f, err := os.OpenFile(d.SlurmOut(), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
				require.NoError(t, err)
				_, err = f.WriteString("ferry: container exited\n")
				require.NoError(t, err)
				require.NoError(t, f.Close())
				observetest.WriteResult(t, d, job.Succeeded, 0)
			},
			wantOut:    "ferry: pulling image\nferry: container exited\n",
			wantSuffix: " succeeded: exited with code 0 (ran 1s on w1)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			d := observetest.WriteJob(t, e.Root, job.Spec{}, "4242")
			e.Slurm.Set(observetest.Job(observetest.Me(t), "4242", d.ID(), "RUNNING"))
			observetest.AppendLog(t, d, "epoch 1\n")
			require.NoError(t, os.WriteFile(d.SlurmOut(), []byte("ferry: pulling image\n"), 0o600))
			// The job ends when Slurm is asked about it the third time:
			// -f has printed what was there by then and must keep going.
			e.Slurm.OnRun = func(name string, n int) {
				if name == "squeue" && n == 3 {
					tt.end(t, e, d)
				}
			}

			code := e.run(t, append(append([]string{"-f"}, tt.args...), "4242")...)
			assert.Equal(t, tt.wantCode, code, e.ErrOut.String())
			assert.Equal(t, tt.wantOut, e.Out.String())
			assert.Contains(t, e.ErrOut.String(), "job "+d.ID().Short()+tt.wantSuffix)
			assert.NotContains(t, e.ErrOut.String(), "ferry:", "the code says it; no error message")
			assert.GreaterOrEqual(t, len(e.Slurm.Calls("squeue")), 3)
		})
	}
}
