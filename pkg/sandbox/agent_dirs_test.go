package sandbox

// How the agent pins a run's directories and cleans up after it: the
// mounts it hands Docker, and what is left on the node when a run ends.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wantBinds are the sources the agent must ask the binder to pin for the
// fixture's request: the scratch dir read-only and the outputs dir, each
// beneath its resolved root.
func (fx *fixture) wantBinds(t *testing.T) []BindSource {
	t.Helper()
	home, err := filepath.EvalSymlinks(fx.home)
	require.NoError(t, err)
	scratchRoot, err := filepath.EvalSymlinks(fx.scratchRoot)
	require.NoError(t, err)
	return []BindSource{
		{Name: "work", Target: "/work", Root: scratchRoot, Rel: filepath.Base(fx.scratch), UID: fx.uid, ReadOnly: true},
		{Name: "out", Target: "/out", Root: home, Rel: filepath.Join(".ferry", "jobs", string(fx.id), "outputs"), UID: fx.uid},
	}
}

func TestAgentRunEndsCleanly(t *testing.T) {
	tests := []struct {
		name   string
		engine func(e *fakeEngine)
		// drive runs the job to its end and returns what the client saw.
		drive   func(t *testing.T, ta *testAgent) launchResult
		wantErr string // "" = an exit
	}{
		{
			name:   "the container exits",
			engine: func(e *fakeEngine) { e.exitCode = exitCode(0) },
			drive: func(t *testing.T, ta *testAgent) launchResult {
				return waitLaunch(t, ta.launch(context.Background(), ta.fx.req, io.Discard))
			},
		},
		{
			name:   "the job is cancelled",
			engine: func(e *fakeEngine) {},
			drive: func(t *testing.T, ta *testAgent) launchResult {
				ctx, cancel := context.WithCancel(context.Background())
				res := ta.launch(ctx, ta.fx.req, io.Discard)
				ta.waitHeld(t, "42", waitStarted(t, ta.engine))
				cancel()
				return waitLaunch(t, res)
			},
		},
		{
			name:   "the batch script is killed (the client goes away)",
			engine: func(e *fakeEngine) {},
			drive: func(t *testing.T, ta *testAgent) launchResult {
				ctx, cancel := context.WithCancel(context.Background())
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent/v1/run",
					strings.NewReader(requestJSON(t, ta.fx.req, nil)))
				require.NoError(t, err)
				resp, err := unixHTTP(ta.socket).Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				ta.waitHeld(t, "42", waitStarted(t, ta.engine))
				cancel()
				ta.waitIdle(t)
				return launchResult{err: errors.New("client gone")}
			},
			wantErr: "client gone",
		},
		{
			name:   "the container does not start",
			engine: func(e *fakeEngine) { e.startErr = errors.New("start container: no such image") },
			drive: func(t *testing.T, ta *testAgent) launchResult {
				return waitLaunch(t, ta.launch(context.Background(), ta.fx.req, io.Discard))
			},
			wantErr: "ferry agent: start container: no such image",
		},
		{
			name: "waiting for the container fails",
			engine: func(e *fakeEngine) {
				e.exitCode = exitCode(0)
				e.waitErr = errors.New("wait for container: daemon restarted")
			},
			drive: func(t *testing.T, ta *testAgent) launchResult {
				return waitLaunch(t, ta.launch(context.Background(), ta.fx.req, io.Discard))
			},
			wantErr: "ferry agent: wait for container: daemon restarted",
		},
		{
			name:   "the agent shuts down",
			engine: func(e *fakeEngine) {},
			drive: func(t *testing.T, ta *testAgent) launchResult {
				res := ta.launch(context.Background(), ta.fx.req, io.Discard)
				ta.waitHeld(t, "42", waitStarted(t, ta.engine))
				ta.cancel()
				return waitLaunch(t, res)
			},
			wantErr: "ferry agent: shut down on w1 while the job ran; its container was stopped",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			require.NoError(t, os.WriteFile(filepath.Join(fx.outputs, "model.pt"), []byte("weights"), 0o600))
			eng := newFakeEngine()
			tt.engine(eng)
			ta := newTestAgent(fx, eng)
			var mu sync.Mutex
			var boundAtStart []BindSource
			eng.onStart = func(spec ContainerSpec) {
				mu.Lock()
				defer mu.Unlock()
				boundAtStart = ta.binder.sources(spec.Name)
			}
			ta.serve(t)

			r := tt.drive(t, ta)
			if tt.wantErr == "" {
				require.NoError(t, r.err)
			} else {
				require.Error(t, r.err)
				assert.Equal(t, tt.wantErr, r.err.Error())
			}
			require.Eventually(t, func() bool { // the agent may have shut down: no Health
				ta.agent.mu.Lock()
				defer ta.agent.mu.Unlock()
				return len(ta.agent.runs) == 0
			}, waitFor, time.Millisecond, "the agent still holds a run")

			// Docker got the pinned mount points, never the user's paths.
			mu.Lock()
			assert.Equal(t, fx.wantBinds(t), boundAtStart, "the scratch and outputs dirs are pinned before the start")
			mu.Unlock()
			for _, spec := range eng.startedSpecs() {
				assert.Equal(t, fx.wantPinnedSpec(t).Mounts, spec.Mounts)
			}
			// When the run is over, however it ended: no mount is left,
			// the scratch dir is gone, the outputs stay.
			assert.Empty(t, ta.binder.names(), "the run's mounts are released")
			assert.Equal(t, []string{"ferry-42-" + fx.id.Short()}, ta.binder.releases())
			_, err := os.Lstat(fx.scratch)
			assert.ErrorIs(t, err, os.ErrNotExist, "the run's scratch dir is removed")
			got, err := os.ReadFile(filepath.Join(fx.outputs, "model.pt"))
			require.NoError(t, err, "the outputs dir is the user's: it stays")
			assert.Equal(t, "weights", string(got))
			assert.Empty(t, eng.ids(), "no container is left")
		})
	}
}

func TestAgentCleansUpBeforeTheLastFrame(t *testing.T) {
	// When the client learns how the job ended, the node is clean: a
	// requeued job or a second launch finds no leftovers.
	fx := newFixture(t)
	eng := newFakeEngine()
	eng.exitCode = exitCode(0)
	ta := startAgent(t, fx, eng)
	_, err := ta.client.Launch(context.Background(), fx.req, io.Discard)
	require.NoError(t, err)
	_, err = os.Lstat(fx.scratch)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Empty(t, ta.binder.names())
	assert.Equal(t, 0, ta.running(t), "the run is forgotten before its exit is sent")
	assert.Len(t, ta.logs.logged(t, "removed the job's scratch dir"), 1)
}

func TestAgentBindFails(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		want      string
		isRefusal bool
	}{
		{
			name:      "a dir swapped for a symlink after the policy's check",
			err:       refuse("/home/u/.ferry/jobs/x/outputs: a component of the path is a symlink (not followed)"),
			want:      "/home/u/.ferry/jobs/x/outputs: a component of the path is a symlink (not followed)",
			isRefusal: true,
		},
		{
			name: "the mount fails",
			err:  errors.New("bind: mount: operation not permitted"),
			want: "ferry agent: cannot mount the job's directories: bind: mount: operation not permitted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			eng := newFakeEngine()
			ta := newTestAgent(fx, eng)
			ta.binder.bindErr = tt.err
			ta.serve(t)

			_, err := ta.client.Launch(context.Background(), fx.req, io.Discard)
			require.Error(t, err)
			assert.Equal(t, tt.isRefusal, IsRefusal(err))
			if tt.isRefusal {
				var r *Refusal
				require.ErrorAs(t, err, &r)
				assert.Equal(t, tt.want, r.Reason)
				assert.Len(t, ta.logs.logged(t, "run refused"), 1)
			} else {
				assert.Equal(t, tt.want, err.Error())
			}
			assert.Empty(t, eng.startedSpecs(), "no container starts with unpinned dirs")
			assert.Empty(t, ta.logs.logged(t, "run allowed"))
			ta.waitIdle(t)
		})
	}
}

// With the real binder (root): Docker resolves the bind sources when the
// container starts; a user who swaps their outputs dir for a symlink to
// another dir just before that gets their own outputs dir all the same.
func TestAgentPinnedMountsSurviveASwap(t *testing.T) {
	requireMountPrivilege(t)
	fx := newFixture(t)
	require.NoError(t, os.WriteFile(filepath.Join(fx.outputs, "mine.txt"), []byte("mine\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(fx.scratch, "train.py"), []byte("print(1)\n"), 0o600))
	secret := t.TempDir() // stands for /etc or another user's home
	require.NoError(t, os.WriteFile(filepath.Join(secret, "shadow"), []byte("root:x\n"), 0o600))
	movedOutputs := fx.outputs + ".moved"

	type seen struct {
		outFiles, workFiles []string
		workWriteErr        error
		outWriteErr         error
	}
	var at seen
	eng := newFakeEngine()
	eng.exitCode = exitCode(0)
	eng.onStart = func(spec ContainerSpec) {
		// the swap, between the policy's check and the container's start
		require.NoError(t, os.Rename(fx.outputs, movedOutputs))
		require.NoError(t, os.Symlink(secret, fx.outputs))
		for _, m := range spec.Mounts {
			entries, _ := os.ReadDir(m.Source)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			switch m.Target {
			case "/out":
				at.outFiles = names
				at.outWriteErr = os.WriteFile(filepath.Join(m.Source, "result.txt"), []byte("42\n"), 0o600)
			case "/work":
				at.workFiles = names
				at.workWriteErr = os.WriteFile(filepath.Join(m.Source, "x"), nil, 0o600)
			}
		}
	}
	ta := newTestAgent(fx, eng)
	mountRoot := filepath.Join(t.TempDir(), "mnt")
	binder := &MountBinder{Root: mountRoot}
	t.Cleanup(func() {
		names, _ := binder.Bound()
		for _, n := range names {
			_ = binder.Release(n)
		}
	})
	ta.agent.Binder = binder
	ta.serve(t)

	exit, err := ta.client.Launch(context.Background(), fx.req, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 0, exit.Code)
	ta.waitIdle(t)

	specs := eng.startedSpecs()
	require.Len(t, specs, 1)
	for _, m := range specs[0].Mounts[:2] {
		assert.True(t, strings.HasPrefix(m.Source, mountRoot+"/"), "Docker gets a mount point under the mount root, not %s", m.Source)
	}
	assert.Equal(t, []string{"mine.txt"}, at.outFiles, "/out shows the outputs dir that was checked")
	assert.NotContains(t, at.outFiles, "shadow")
	assert.Equal(t, []string{"train.py"}, at.workFiles)
	assert.ErrorIs(t, at.workWriteErr, syscall.EROFS, "/work is read-only")
	require.NoError(t, at.outWriteErr)
	got, err := os.ReadFile(filepath.Join(movedOutputs, "result.txt"))
	require.NoError(t, err, "what the job writes to /out lands in its outputs dir")
	assert.Equal(t, "42\n", string(got))
	_, err = os.Stat(filepath.Join(secret, "result.txt"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing reaches the symlink's target")

	entries, err := os.ReadDir(mountRoot)
	require.NoError(t, err)
	assert.Empty(t, entries, "the run's mount points are unmounted and removed")
	_, err = os.Lstat(fx.scratch)
	assert.ErrorIs(t, err, os.ErrNotExist, "the run's scratch dir is removed")
	got, err = os.ReadFile(filepath.Join(movedOutputs, "mine.txt"))
	require.NoError(t, err)
	assert.Equal(t, "mine\n", string(got))
}

func TestAgentReconcileReleasesLeftoverMounts(t *testing.T) {
	t.Run("on start", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		eng.add("orphan-42-w1", epilogLabels("42", "w1")) // removed: its mounts go too
		eng.add("stuck-8-w1", epilogLabels("8", "w1"))    // cannot be removed: its mounts stay
		eng.removeErr = map[string]error{"stuck-8-w1": errors.New("remove: device busy")}
		ta := newTestAgent(fx, eng)
		ta.binder.add("orphan-42-w1")
		ta.binder.add("gone-7-w1") // its container is long gone
		ta.binder.add("stuck-8-w1")
		ta.serve(t)

		assert.ElementsMatch(t, []string{"stuck-8-w1"}, ta.binder.names())
		assert.ElementsMatch(t, []string{"orphan-42-w1", "gone-7-w1"}, ta.binder.releases())
		var released []string
		for _, r := range ta.logs.logged(t, "reconcile: released leftover mounts") {
			released = append(released, r["container"].(string))
		}
		assert.ElementsMatch(t, []string{"orphan-42-w1", "gone-7-w1"}, released)
	})
	t.Run("keeps a running job's mounts", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		ta := startAgent(t, fx, eng)
		ctx, cancel := context.WithCancel(context.Background())
		res := ta.launch(ctx, fx.req, io.Discard)
		ta.waitHeld(t, "42", waitStarted(t, eng))
		ta.binder.add("late-9-w1")

		ta.agent.reconcile(context.Background())
		assert.Equal(t, []string{"ferry-42-" + fx.id.Short()}, ta.binder.names())

		cancel()
		waitLaunch(t, res)
	})
	t.Run("engine down: mounts are not touched", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		eng.listErr = errors.New("list containers: cannot connect to the Docker daemon")
		ta := newTestAgent(fx, eng)
		ta.binder.add("ferry-5-w1")
		ta.serve(t)
		assert.Equal(t, []string{"ferry-5-w1"}, ta.binder.names(), "without the list, no container is known to be gone")
	})
}

func TestAgentCleanupRemovesScratch(t *testing.T) {
	fx := newFixture(t)
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "precious"), []byte("keep\n"), 0o600))
	left := filepath.Join(fx.scratchRoot, string(fx.id)+".killed")
	require.NoError(t, os.MkdirAll(filepath.Join(left, "src"), 0o700))
	require.NoError(t, os.Symlink(outside, filepath.Join(left, "src", "data")))
	require.NoError(t, os.Symlink(outside, filepath.Join(fx.scratchRoot, string(fx.id)+".lnk")))
	other := filepath.Join(fx.scratchRoot, "01jd8x3k5m7n9p1q3r5s7t9v2w.abc")
	require.NoError(t, os.Mkdir(other, 0o700))

	ta := newTestAgent(fx, newFakeEngine())
	ta.agent.runs = map[string]*activeRun{}
	body, err := json.Marshal(CleanupRequest{SlurmJobID: "42", FerryID: fx.id, UID: fx.uid})
	require.NoError(t, err)
	w := callHandler(ta.agent.handleCleanup, Peer{UID: 0}, pathCleanup, string(body))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var res CleanupResult
	require.NoError(t, json.NewDecoder(bufio.NewReader(w.Body)).Decode(&res))
	assert.Equal(t, CleanupResult{Scratch: []string{string(fx.id) + ".killed", string(fx.id) + ".lnk", filepath.Base(fx.scratch)}}, res)

	entries, err := os.ReadDir(fx.scratchRoot)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, filepath.Base(other), entries[0].Name(), "another job's scratch stays")
	got, err := os.ReadFile(filepath.Join(outside, "precious"))
	require.NoError(t, err, "nothing is removed through a symlink")
	assert.Equal(t, "keep\n", string(got))
	assert.Len(t, ta.logs.logged(t, "epilog cleanup removed scratch dirs"), 1)

	// A request without a ferry id removes containers only.
	require.NoError(t, os.Mkdir(left, 0o700))
	w = callHandler(ta.agent.handleCleanup, Peer{UID: 0}, pathCleanup, `{"slurm_job_id":"42"}`)
	require.Equal(t, http.StatusOK, w.Code)
	assert.JSONEq(t, `{"removed":0}`, w.Body.String())
	_, err = os.Lstat(left)
	assert.NoError(t, err)

	// A ferry id that is not one is reported, not used as a path.
	w = callHandler(ta.agent.handleCleanup, Peer{UID: 0}, pathCleanup, `{"slurm_job_id":"42","ferry_id":"../..","uid":0}`)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), `"scratch_error":"remove scratch of job \"../..\"`)
	_, err = os.Lstat(left)
	assert.NoError(t, err)
}
