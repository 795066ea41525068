package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/pkg/atomicfile"
	"github.com/ferry-hpc/ferry/pkg/bundle"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// launchFunc is a Launcher made of a func.
type launchFunc func(ctx context.Context, req Request, out io.Writer) (Exit, error)

func (f launchFunc) Launch(ctx context.Context, req Request, out io.Writer) (Exit, error) {
	return f(ctx, req, out)
}

// clock is a Now that only moves when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// project is the source tree packed into the job's bundle.
var project = map[string]string{
	"main.py":        "print('hello')\n",
	"data/input.csv": "a,b\n1,2\n",
	"lib/util.py":    "def f(): return 1\n",
}

const paramsJSON = `{"lr":0.1,"layers":[64,64]}` + "\n"

// runEnv is a submitted job on worker w1: the fixture's job dir with
// spec.json, params.json and a bundle of project.
type runEnv struct {
	fx    *fixture
	dir   job.Dir
	spec  job.Spec
	clock *clock
}

func newRunEnv(t *testing.T) *runEnv {
	t.Helper()
	fx := newFixture(t)
	require.NoError(t, os.Remove(fx.scratch)) // Run makes its own
	require.NoError(t, os.Remove(fx.outputs)) // and the outputs dir

	src := t.TempDir()
	for name, content := range project {
		p := filepath.Join(src, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	dir := job.Dir(fx.jobDir)
	f, err := os.Create(dir.Bundle())
	require.NoError(t, err)
	_, err = bundle.Pack(context.Background(), src, f, bundle.Options{})
	require.NoError(t, err)
	require.NoError(t, f.Close())

	e := &runEnv{
		fx:  fx,
		dir: dir,
		spec: job.Spec{
			ID:        fx.id,
			Project:   "demo",
			Command:   []string{"python", "main.py"},
			Image:     "ferry/python:3.12",
			Resources: job.Resources{CPUs: 4, MemBytes: 8 << 30},
			Env:       map[string]string{"MY_VAR": "x=y"},
		},
		clock: &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
	}
	e.writeSpec(t)
	require.NoError(t, os.WriteFile(dir.Params(), []byte(paramsJSON), 0o600))
	return e
}

func (e *runEnv) writeSpec(t *testing.T) {
	t.Helper()
	require.NoError(t, atomicfile.WriteJSON(e.dir.Spec(), e.spec, 0o600))
}

func (e *runEnv) options(l Launcher) RunOptions {
	return RunOptions{
		JobDir:      e.dir,
		SlurmJobID:  "42",
		Node:        "w1",
		ScratchRoot: e.fx.scratchRoot,
		Launcher:    l,
		Unpack: func(ctx context.Context, r io.Reader, dest string) error {
			return bundle.Unpack(ctx, r, dest, bundle.UnpackOptions{})
		},
		Now: e.clock.Now,
	}
}

// readBack checks that the result Run returned is the one on disk.
func (e *runEnv) readBack(t *testing.T, res *job.Result) *job.Result {
	t.Helper()
	onDisk, err := job.ReadResult(e.dir)
	require.NoError(t, err)
	require.NotNil(t, onDisk, "result.json was written")
	assert.Equal(t, res.State, onDisk.State)
	assert.Equal(t, res.Reason, onDisk.Reason)
	assert.Equal(t, res.ExitCode, onDisk.ExitCode)
	fi, err := os.Stat(e.dir.Result())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	return onDisk
}

func (e *runEnv) log(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.dir.Log())
	require.NoError(t, err)
	return string(b)
}

func (e *runEnv) assertScratchGone(t *testing.T) {
	t.Helper()
	left, err := os.ReadDir(e.fx.scratchRoot)
	require.NoError(t, err)
	assert.Empty(t, left, "the scratch dir is removed after the run")
}

func TestRunPreparesScratchAndRequest(t *testing.T) {
	e := newRunEnv(t)
	var seen Request
	launch := func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
		seen = req
		// The project, unpacked, and the params beside it.
		for name, content := range project {
			got, err := os.ReadFile(filepath.Join(req.Scratch, filepath.FromSlash(name)))
			require.NoError(t, err, name)
			assert.Equal(t, content, string(got), name)
		}
		params, err := os.ReadFile(filepath.Join(req.Scratch, "ferry_params.json"))
		require.NoError(t, err)
		assert.Equal(t, paramsJSON, string(params))
		fi, err := os.Stat(req.Scratch)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "scratch is private")
		fi, err = os.Stat(e.dir.Outputs())
		require.NoError(t, err)
		assert.True(t, fi.IsDir(), "outputs exists before the container starts")

		// What the agent will be asked for passes its policy.
		_, err = e.fx.policy.Decide(req, e.fx.peer, e.fx.alloc)
		assert.NoError(t, err, "the request Run sends is one the agent allows")
		return Exit{Code: 0}, nil
	}
	res, err := Run(context.Background(), e.options(launchFunc(launch)))
	require.NoError(t, err)
	assert.Equal(t, job.Succeeded, res.State)

	assert.Equal(t, "42", seen.SlurmJobID)
	assert.Equal(t, e.fx.jobDir, seen.JobDir)
	assert.Equal(t, e.fx.scratchRoot, filepath.Dir(seen.Scratch))
	assert.True(t, strings.HasPrefix(filepath.Base(seen.Scratch), string(e.fx.id)+"."), seen.Scratch)
	assert.Equal(t, "ferry/python:3.12", seen.Image)
	assert.Equal(t, []string{"python", "main.py"}, seen.Command)
	assert.Equal(t, map[string]string{"MY_VAR": "x=y", "FERRY_PARAMS": paramsJSON}, seen.Env,
		"FERRY_PARAMS is params.json, byte for byte")
	assert.Empty(t, seen.Network)
	assert.Empty(t, seen.Mounts)
	assert.False(t, seen.Privileged)
	assert.Empty(t, seen.CapAdd)
	assert.Empty(t, seen.User)
	_, err = os.Stat(seen.Scratch)
	assert.ErrorIs(t, err, os.ErrNotExist, "scratch is removed afterwards")
	e.assertScratchGone(t)
}

func TestRunWithoutParams(t *testing.T) {
	e := newRunEnv(t)
	require.NoError(t, os.Remove(e.dir.Params()))
	var env map[string]string
	var file string
	launch := func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
		env = req.Env
		b, err := os.ReadFile(filepath.Join(req.Scratch, "ferry_params.json"))
		require.NoError(t, err)
		file = string(b)
		return Exit{}, nil
	}
	res, err := Run(context.Background(), e.options(launchFunc(launch)))
	require.NoError(t, err)
	assert.Equal(t, job.Succeeded, res.State)
	assert.JSONEq(t, "{}", env["FERRY_PARAMS"])
	assert.JSONEq(t, "{}", file)
}

func TestRunResult(t *testing.T) {
	started := time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC)
	tests := []struct {
		name      string
		timeLimit int64 // spec's, in seconds
		mem       int64 // spec's; default 8G
		// launch is the launcher; cancel cancels Run's ctx.
		launch     func(e *runEnv, cancel context.CancelFunc) launchFunc
		wantState  job.State
		wantReason string
		wantCode   int
		wantLog    string
		launched   bool // the result carries what the container reported
	}{
		{
			name: "succeeded",
			launch: func(e *runEnv, _ context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					fmt.Fprint(out, "hello\nepoch 1 loss 0.3\n")
					e.clock.advance(time.Minute)
					return Exit{Code: 0, ImageDigest: "sha256:abc", Started: started}, nil
				}
			},
			wantState: job.Succeeded, wantReason: "exited with code 0", wantCode: 0,
			wantLog: "hello\nepoch 1 loss 0.3\n", launched: true,
		},
		{
			name: "failed",
			launch: func(e *runEnv, _ context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					fmt.Fprint(out, "Traceback: ValueError\n")
					return Exit{Code: 3, ImageDigest: "sha256:abc", Started: started}, nil
				}
			},
			wantState: job.Failed, wantReason: "exited with code 3", wantCode: 3,
			wantLog: "Traceback: ValueError\n", launched: true,
		},
		{
			name: "out of memory",
			launch: func(e *runEnv, _ context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					return Exit{Code: 137, OOMKilled: true, ImageDigest: "sha256:abc", Started: started}, nil
				}
			},
			wantState: job.OutOfMemory, wantReason: "used more than its 8G of memory and was killed", wantCode: 137,
			launched: true,
		},
		{
			name: "out of memory under the agent's limit, not the spec's",
			launch: func(e *runEnv, _ context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					limit := int64(300 << 20)
					return Exit{Code: 137, OOMKilled: true, MemoryLimit: &limit, ImageDigest: "sha256:abc", Started: started}, nil
				}
			},
			wantState: job.OutOfMemory, wantReason: "used more than its 300M of memory and was killed", wantCode: 137,
			launched: true,
		},
		{
			name: "out of memory with no limit set by the agent",
			launch: func(e *runEnv, _ context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					none := int64(0)
					return Exit{Code: 137, OOMKilled: true, MemoryLimit: &none, ImageDigest: "sha256:abc", Started: started}, nil
				}
			},
			wantState: job.OutOfMemory, wantReason: "ran out of memory and was killed", wantCode: 137,
			launched: true,
		},
		{
			name: "cancelled during launch",
			launch: func(e *runEnv, cancel context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					fmt.Fprint(out, "working\n")
					e.clock.advance(10 * time.Second)
					cancel() // scancel: SIGTERM
					<-ctx.Done()
					return Exit{Code: 143, Stopped: true, ImageDigest: "sha256:abc", Started: started}, nil
				}
			},
			wantState: job.Cancelled, wantReason: "cancelled while running; the container was stopped and removed",
			wantCode: 143, wantLog: "working\n", launched: true,
		},
		{
			name:      "cancelled before its time limit",
			timeLimit: 3600,
			launch: func(e *runEnv, cancel context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					e.clock.advance(10 * time.Minute)
					cancel()
					<-ctx.Done()
					return Exit{Code: 143, Stopped: true, ImageDigest: "sha256:abc", Started: started}, nil
				}
			},
			wantState: job.Cancelled, wantReason: "cancelled while running; the container was stopped and removed",
			wantCode: 143, launched: true,
		},
		{
			name:      "timeout",
			timeLimit: 1,
			launch: func(e *runEnv, cancel context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					e.clock.advance(3 * time.Second) // past the limit: Slurm sends SIGTERM
					cancel()
					<-ctx.Done()
					return Exit{Code: 143, Stopped: true, ImageDigest: "sha256:abc", Started: started}, nil
				}
			},
			wantState: job.Timeout, wantReason: "hit its time limit of 0-00:00:01", wantCode: 143, launched: true,
		},
		{
			name:      "timeout of an hour",
			timeLimit: 3600,
			launch: func(e *runEnv, cancel context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					e.clock.advance(time.Hour - time.Second) // Slurm counts from before the sandbox began
					cancel()
					<-ctx.Done()
					return Exit{Code: 143, Stopped: true}, nil
				}
			},
			wantState: job.Timeout, wantReason: "hit its time limit of 0-01:00:00", wantCode: 143,
		},
		{
			name: "stopped without a cancel is still a stop",
			launch: func(e *runEnv, _ context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					return Exit{Code: 137, Stopped: true}, nil
				}
			},
			wantState: job.Cancelled, wantReason: "cancelled while running; the container was stopped and removed", wantCode: 137,
		},
		{
			name: "refused by the agent",
			launch: func(e *runEnv, _ context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					return Exit{}, &Refusal{Reason: `image "ferry/python:3.12" is not on this cluster's allowlist (ferry/r:4.4)`}
				}
			},
			wantState:  job.Failed,
			wantReason: `the worker's agent refused: image "ferry/python:3.12" is not on this cluster's allowlist (ferry/r:4.4)`,
			wantCode:   -1,
			wantLog:    `ferry: the worker's agent refused: image "ferry/python:3.12" is not on this cluster's allowlist (ferry/r:4.4)` + "\n",
		},
		{
			name: "agent gone",
			launch: func(e *runEnv, _ context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					fmt.Fprint(out, "epoch 1\n")
					return Exit{}, fmt.Errorf("%w (%v)", ErrAgentGone, io.ErrUnexpectedEOF)
				}
			},
			wantState:  job.Failed,
			wantReason: "the ferry agent on w1 went away while the job ran; its container was removed",
			wantCode:   -1,
			wantLog:    "epoch 1\nferry: the ferry agent on w1 went away while the job ran; its container was removed\n",
		},
		{
			name: "agent unreachable",
			launch: func(e *runEnv, _ context.CancelFunc) launchFunc {
				return func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
					return Exit{}, errors.New("reach the ferry agent at /run/ferry/agent.sock: connection refused")
				}
			},
			wantState:  job.Failed,
			wantReason: "reach the ferry agent at /run/ferry/agent.sock: connection refused",
			wantCode:   -1,
			wantLog:    "ferry: reach the ferry agent at /run/ferry/agent.sock: connection refused\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRunEnv(t)
			e.spec.Resources.TimeLimit = tt.timeLimit
			e.writeSpec(t)
			began := e.clock.Now()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			res, err := Run(ctx, e.options(tt.launch(e, cancel)))
			require.NoError(t, err)
			assert.Equal(t, tt.wantState, res.State)
			assert.Equal(t, tt.wantReason, res.Reason)
			assert.Equal(t, tt.wantCode, res.ExitCode)

			onDisk := e.readBack(t, res)
			assert.Equal(t, "w1", onDisk.Node)
			assert.Equal(t, "42", onDisk.SlurmJobID)
			assert.Equal(t, "ferry/python:3.12", onDisk.Image)
			assert.Equal(t, "sandbox", onDisk.WrittenBy)
			assert.True(t, onDisk.BatchStart.Equal(began), "batch start %v", onDisk.BatchStart)
			assert.True(t, onDisk.Ended.Equal(e.clock.Now()), "ended %v", onDisk.Ended)
			if tt.launched {
				assert.Equal(t, "sha256:abc", onDisk.ImageDigest)
				assert.True(t, onDisk.Started.Equal(started), "started %v", onDisk.Started)
			}
			assert.Equal(t, tt.wantLog, e.log(t))
			e.assertScratchGone(t)
		})
	}
}

func TestRunReplacesStaleResult(t *testing.T) {
	e := newRunEnv(t)
	stale := &job.Result{State: job.NodeFail, Reason: "node w3 failed", ExitCode: -1, Node: "w3", WrittenBy: "epilog"}
	require.NoError(t, job.WriteResult(e.dir, stale))
	require.NoError(t, os.WriteFile(e.dir.Log(), []byte("first attempt output\n"), 0o600))

	launch := func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
		r, err := job.ReadResult(e.dir)
		assert.NoError(t, err)
		assert.Nil(t, r, "while the job runs again, the earlier result is gone")
		fmt.Fprint(out, "second attempt output\n")
		return Exit{Code: 0}, nil
	}
	res, err := Run(context.Background(), e.options(launchFunc(launch)))
	require.NoError(t, err)
	onDisk := e.readBack(t, res)
	assert.Equal(t, job.Succeeded, onDisk.State)
	assert.Equal(t, "w1", onDisk.Node)
	assert.Equal(t, "sandbox", onDisk.WrittenBy)
	assert.Equal(t, "first attempt output\n"+
		"\n--- ferry: job restarted on w1 at 2026-03-01T12:00:00Z ---\n"+
		"second attempt output\n", e.log(t))
}

// A job that starts before `ferry submit` has renamed its bundle in waits
// for it.
func TestRunWaitsForTheBundle(t *testing.T) {
	e := newRunEnv(t)
	bundlePath := e.dir.Bundle()
	require.NoError(t, os.Rename(bundlePath, bundlePath+".later"))
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = os.Rename(bundlePath+".later", bundlePath)
	}()
	res, err := Run(context.Background(), e.options(launchFunc(func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
		return Exit{Code: 0}, nil
	})))
	require.NoError(t, err)
	assert.Equal(t, job.Succeeded, res.State, res.Reason)
}

func TestRunFailsBeforeLaunch(t *testing.T) {
	otherID := job.NewID(time.Now())
	tests := []struct {
		name       string
		setup      func(t *testing.T, e *runEnv)
		wantReason string // {id}: the job's id, {other}: otherID
		wantLog    string
	}{
		{
			name: "spec names another job",
			setup: func(t *testing.T, e *runEnv) {
				e.spec.ID = otherID
				e.writeSpec(t)
			},
			wantReason: "spec.json names job {other} but the job dir is {id}",
		},
		{
			name:       "no spec",
			setup:      func(t *testing.T, e *runEnv) { require.NoError(t, os.Remove(e.dir.Spec())) },
			wantReason: "cannot read the job's spec: open {dir}/spec.json: no such file or directory",
		},
		{
			name: "spec is not JSON",
			setup: func(t *testing.T, e *runEnv) {
				require.NoError(t, os.WriteFile(e.dir.Spec(), []byte("id: x\n"), 0o600))
			},
			wantReason: "cannot read the job's spec: read {dir}/spec.json: invalid character",
		},
		{
			name: "params are not JSON",
			setup: func(t *testing.T, e *runEnv) {
				require.NoError(t, os.WriteFile(e.dir.Params(), []byte("lr=0.1\n"), 0o600))
			},
			wantReason: "params.json is not valid JSON",
			wantLog:    "ferry: params.json is not valid JSON\n",
		},
		{
			name: "no bundle",
			setup: func(t *testing.T, e *runEnv) {
				require.NoError(t, os.Remove(e.dir.Bundle()))
				old := BundleWait
				BundleWait = 50 * time.Millisecond
				t.Cleanup(func() { BundleWait = old })
			},
			wantReason: "the job's bundle did not arrive within 50ms (was the submit interrupted?)",
			wantLog:    "ferry: the job's bundle did not arrive within 50ms (was the submit interrupted?)\n",
		},
		{
			name: "corrupt bundle",
			setup: func(t *testing.T, e *runEnv) {
				require.NoError(t, os.WriteFile(e.dir.Bundle(), []byte("not zstd"), 0o600))
			},
			wantReason: "unpack bundle: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRunEnv(t)
			tt.setup(t, e)
			launched := false
			launch := func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
				launched = true
				return Exit{}, nil
			}
			res, err := Run(context.Background(), e.options(launchFunc(launch)))
			require.NoError(t, err)
			assert.False(t, launched, "no container for a job that cannot be prepared")
			r := strings.NewReplacer("{id}", string(e.fx.id), "{other}", string(otherID), "{dir}", e.fx.jobDir)
			assert.Equal(t, job.Failed, res.State)
			assert.Contains(t, res.Reason, r.Replace(tt.wantReason))
			assert.Equal(t, -1, res.ExitCode)
			e.readBack(t, res)
			if tt.wantLog != "" {
				assert.Equal(t, r.Replace(tt.wantLog), e.log(t))
			}
			e.assertScratchGone(t)
		})
	}
}

func TestRunCancelledBeforeLaunch(t *testing.T) {
	e := newRunEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // scancel while the bundle is unpacked
	launched := false
	res, err := Run(ctx, e.options(launchFunc(func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
		launched = true
		return Exit{Stopped: true, Code: 143}, nil
	})))
	require.NoError(t, err)
	assert.False(t, launched)
	assert.Equal(t, job.Cancelled, res.State)
	assert.Equal(t, "cancelled while running; the container was stopped and removed", res.Reason)
	e.readBack(t, res)
	e.assertScratchGone(t)
}

// TestRunThroughAgent runs a job from Run through AgentClient and a real
// Agent (fake engine): what Run asks for is what the agent allows.
func TestRunThroughAgent(t *testing.T) {
	t.Run("succeeds", func(t *testing.T) {
		e := newRunEnv(t)
		eng := newFakeEngine()
		eng.output = []byte("hello from the container\n")
		eng.exitCode = exitCode(0)
		ta := startAgent(t, e.fx, eng)

		res, err := Run(context.Background(), e.options(ta.client))
		require.NoError(t, err)
		assert.Equal(t, job.Succeeded, res.State, res.Reason)
		assert.Equal(t, "sha256:fake", res.ImageDigest)
		assert.Equal(t, "hello from the container\n", e.log(t))
		specs := eng.startedSpecs()
		require.Len(t, specs, 1)
		assert.Contains(t, specs[0].Env, "FERRY_PARAMS="+paramsJSON)
		assert.Empty(t, eng.ids())
		e.assertScratchGone(t)
	})
	t.Run("cancelled", func(t *testing.T) {
		e := newRunEnv(t)
		eng := newFakeEngine() // runs until stopped
		ta := startAgent(t, e.fx, eng)

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan *job.Result, 1)
		go func() {
			res, err := Run(ctx, e.options(ta.client))
			assert.NoError(t, err)
			done <- res
		}()
		id := waitStarted(t, eng)
		ta.waitHeld(t, "42", id)
		cancel()
		select {
		case res := <-done:
			assert.Equal(t, job.Cancelled, res.State, res.Reason)
			assert.Equal(t, 143, res.ExitCode)
		case <-time.After(waitFor):
			t.Fatal("Run did not return after a cancel")
		}
		assert.False(t, eng.has(id), "the container was removed")
		e.assertScratchGone(t)
	})
	t.Run("refused", func(t *testing.T) {
		e := newRunEnv(t)
		e.spec.Image = "evil/miner"
		e.writeSpec(t)
		eng := newFakeEngine()
		ta := startAgent(t, e.fx, eng)

		res, err := Run(context.Background(), e.options(ta.client))
		require.NoError(t, err)
		assert.Equal(t, job.Failed, res.State)
		assert.Equal(t, `the worker's agent refused: image "evil/miner" is not on this cluster's allowlist (ferry/python:3.12, ferry/r:4.4)`, res.Reason)
		assert.Contains(t, e.log(t), "ferry: the worker's agent refused: image \"evil/miner\"")
		assert.Empty(t, eng.startedSpecs())
	})
}

// A scancel that lands while the container is being set up: the agent
// refuses the job, which Slurm is already ending, and the SIGTERM for the
// batch script comes just after. The job was cancelled, not failed.
func TestRunCancelledBeforeItsContainerStarted(t *testing.T) {
	refuseEnding := launchFunc(func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
		return Exit{}, &Refusal{Reason: "Slurm job 42 is completing, not running", Ending: true}
	})

	t.Run("SIGTERM after the refusal", func(t *testing.T) {
		e := newRunEnv(t)
		ctx, sigterm := context.WithCancel(context.Background())
		go func() { time.Sleep(50 * time.Millisecond); sigterm() }()
		o := e.options(refuseEnding)
		o.StopWait = time.Minute // ends at the SIGTERM, not at this
		res, err := Run(ctx, o)
		require.NoError(t, err)
		res = e.readBack(t, res)
		assert.Equal(t, job.Cancelled, res.State)
		assert.Equal(t, "cancelled before its container started", res.Reason)
	})

	t.Run("SIGTERM before the refusal", func(t *testing.T) {
		e := newRunEnv(t)
		ctx, sigterm := context.WithCancel(context.Background())
		l := launchFunc(func(c context.Context, req Request, out io.Writer) (Exit, error) {
			sigterm()
			return refuseEnding(c, req, out)
		})
		res, err := Run(ctx, e.options(l))
		require.NoError(t, err)
		assert.Equal(t, job.Cancelled, e.readBack(t, res).State)
	})

	t.Run("no SIGTERM comes: it failed", func(t *testing.T) {
		e := newRunEnv(t)
		o := e.options(refuseEnding)
		o.StopWait = 20 * time.Millisecond
		res, err := Run(context.Background(), o)
		require.NoError(t, err)
		res = e.readBack(t, res)
		assert.Equal(t, job.Failed, res.State)
		assert.Equal(t, "the worker's agent refused: Slurm job 42 is completing, not running", res.Reason)
	})

	t.Run("an agent error after a SIGTERM is recorded as it is", func(t *testing.T) {
		e := newRunEnv(t)
		ctx, sigterm := context.WithCancel(context.Background())
		l := launchFunc(func(c context.Context, req Request, out io.Writer) (Exit, error) {
			sigterm()
			return Exit{}, fmt.Errorf("%w: shut down on w1 while the job ran", ErrAgentGone)
		})
		res, err := Run(ctx, e.options(l))
		require.NoError(t, err)
		res = e.readBack(t, res)
		assert.Equal(t, job.Failed, res.State)
		assert.Contains(t, res.Reason, "went away while the job ran")
	})

	t.Run("other refusals fail at once", func(t *testing.T) {
		e := newRunEnv(t)
		l := launchFunc(func(ctx context.Context, req Request, out io.Writer) (Exit, error) {
			return Exit{}, &Refusal{Reason: `image "evil/miner" is not on this cluster's allowlist`}
		})
		o := e.options(l)
		o.StopWait = time.Hour // never waited for
		res, err := Run(context.Background(), o)
		require.NoError(t, err)
		assert.Equal(t, job.Failed, e.readBack(t, res).State)
	})
}
