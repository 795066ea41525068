package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAgentRun(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16) // 100 KiB: several frames
	tests := []struct {
		name     string
		engine   func(e *fakeEngine)
		wantOut  string
		wantExit Exit
	}{
		{
			name: "output streams and exit code 0",
			engine: func(e *fakeEngine) {
				e.output = []byte("hello\n")
				e.lines = []string{"step 1\n", "step 2\n"}
				e.exitCode = exitCode(0)
			},
			wantOut:  "hello\nstep 1\nstep 2\n",
			wantExit: Exit{Code: 0, ImageDigest: "sha256:fake"},
		},
		{
			name: "non-zero exit code",
			engine: func(e *fakeEngine) {
				e.lines = []string{"Traceback: boom\n"}
				e.exitCode = exitCode(3)
			},
			wantOut:  "Traceback: boom\n",
			wantExit: Exit{Code: 3, ImageDigest: "sha256:fake"},
		},
		{
			name: "out of memory",
			engine: func(e *fakeEngine) {
				e.exitCode, e.oom = exitCode(137), true
			},
			wantExit: Exit{Code: 137, OOMKilled: true, ImageDigest: "sha256:fake"},
		},
		{
			name: "output bigger than a frame",
			engine: func(e *fakeEngine) {
				e.output = big
				e.exitCode = exitCode(0)
			},
			wantOut:  string(big),
			wantExit: Exit{Code: 0, ImageDigest: "sha256:fake"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			eng := newFakeEngine()
			tt.engine(eng)
			ta := startAgent(t, fx, eng)

			var out syncBuffer
			exit, err := ta.client.Launch(context.Background(), fx.req, &out)
			require.NoError(t, err)
			assert.Equal(t, tt.wantOut, out.String())
			assert.Equal(t, tt.wantExit.Code, exit.Code)
			assert.Equal(t, tt.wantExit.OOMKilled, exit.OOMKilled)
			assert.False(t, exit.Stopped)
			assert.Equal(t, tt.wantExit.ImageDigest, exit.ImageDigest)

			// The container ran as the kernel's idea of the caller, as the
			// policy decided, and is gone once it ended.
			specs := eng.startedSpecs()
			require.Len(t, specs, 1)
			if assert.NotNil(t, exit.MemoryLimit, "the agent reports the limit it set") {
				assert.Equal(t, specs[0].MemoryBytes, *exit.MemoryLimit)
			}
			assert.Equal(t, fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()), specs[0].User)
			assert.Equal(t, fx.wantPinnedSpec(t), specs[0])
			assert.Empty(t, eng.ids(), "the container is removed once it exited")
			ta.waitIdle(t)

			allowed := ta.logs.logged(t, "run allowed")
			require.Len(t, allowed, 1)
			assert.Equal(t, "allowed", allowed[0]["decision"])
			assert.EqualValues(t, os.Getuid(), allowed[0]["uid"])
			assert.Equal(t, "42", allowed[0]["slurm_job"])
			assert.Equal(t, string(fx.id), allowed[0]["ferry_job"])
			ended := ta.logs.logged(t, "container ended")
			require.Len(t, ended, 1)
			assert.EqualValues(t, tt.wantExit.Code, ended[0]["exit_code"])
		})
	}
}

func TestAgentRefusesThroughClient(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(ta *testAgent, req *Request)
		reason string
		ending bool // Slurm is ending the job: not the request's fault
	}{
		{
			name: "another user's job",
			setup: func(ta *testAgent, req *Request) {
				a := ta.fx.alloc
				a.UID = otherUID
				ta.slurm.set(a)
			},
			reason: fmt.Sprintf("Slurm job 42 belongs to uid %d, not to the caller (uid %d)", otherUID, os.Getuid()),
		},
		{
			name:   "job Slurm does not know",
			setup:  func(ta *testAgent, req *Request) { req.SlurmJobID = "99" },
			reason: `cannot verify Slurm job "99": Slurm does not know job 99`,
		},
		{
			name:   "image off the allowlist",
			setup:  func(ta *testAgent, req *Request) { req.Image = "evil/miner" },
			reason: `image "evil/miner" is not on this cluster's allowlist`,
		},
		{
			name: "job that has ended",
			setup: func(ta *testAgent, req *Request) {
				a := ta.fx.alloc
				a.State = "COMPLETED"
				ta.slurm.set(a)
			},
			reason: "Slurm job 42 is completed, not running",
			ending: true,
		},
		{
			name: "job being cancelled",
			setup: func(ta *testAgent, req *Request) {
				a := ta.fx.alloc
				a.State = "COMPLETING"
				ta.slurm.set(a)
			},
			reason: "Slurm job 42 is completing, not running",
			ending: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			eng := newFakeEngine()
			ta := startAgent(t, fx, eng)
			req := fx.req
			tt.setup(ta, &req)

			var out syncBuffer
			_, err := ta.client.Launch(context.Background(), req, &out)
			require.Error(t, err)
			assert.True(t, IsRefusal(err), "a policy refusal reaches the client as a *Refusal: %v", err)
			var r *Refusal
			require.ErrorAs(t, err, &r)
			assert.Contains(t, r.Reason, tt.reason)
			assert.False(t, strings.HasPrefix(r.Reason, "refused:"), "the prefix is not doubled: %q", r.Reason)
			assert.Equal(t, tt.ending, r.Ending)
			assert.Empty(t, eng.startedSpecs(), "nothing was started")
			assert.Empty(t, out.String())

			refused := ta.logs.logged(t, "run refused")
			require.Len(t, refused, 1)
			assert.Equal(t, "WARN", refused[0]["level"])
			assert.Equal(t, "refused", refused[0]["decision"])
			assert.EqualValues(t, os.Getuid(), refused[0]["uid"])
			assert.EqualValues(t, os.Getpid(), refused[0]["pid"], "the kernel names the calling process")
			assert.Equal(t, req.SlurmJobID, refused[0]["slurm_job"])
			assert.Contains(t, refused[0]["reason"], tt.reason)
		})
	}
}

func TestAgentRefusesHandMadeRequests(t *testing.T) {
	tests := []struct {
		name  string
		extra map[string]any
		body  string // used instead of the request when set
		want  string // the error the agent answers with
	}{
		{
			name:  "unknown field",
			extra: map[string]any{"cpus": 64},
			want:  `refused: malformed request: json: unknown field "cpus"`,
		},
		{
			name:  "privileged",
			extra: map[string]any{"privileged": true},
			want:  "refused: privileged containers are never allowed",
		},
		{
			name:  "host mounts",
			extra: map[string]any{"mounts": []Mount{{Source: "/var/run/docker.sock", Target: "/docker.sock"}}},
			want:  "refused: host path mounts are not allowed (asked for /var/run/docker.sock)",
		},
		{
			name:  "capabilities",
			extra: map[string]any{"cap_add": []string{"SYS_ADMIN"}},
			want:  "refused: extra capabilities (SYS_ADMIN) are never granted to a job",
		},
		{
			name:  "user",
			extra: map[string]any{"user": "0"},
			want:  "refused: the container user is not chosen by the request",
		},
		{
			name: "not JSON",
			body: "slurm_job_id=42",
			want: "refused: malformed request: invalid character",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			eng := newFakeEngine()
			eng.exitCode = exitCode(0)
			ta := startAgent(t, fx, eng)

			body := tt.body
			if body == "" {
				body = requestJSON(t, fx.req, tt.extra)
			}
			resp, err := unixHTTP(ta.socket).Post("http://agent/v1/run", "application/json", strings.NewReader(body))
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			assert.Contains(t, errorOf(t, resp.Body), tt.want)
			assert.Empty(t, eng.startedSpecs(), "nothing was started")
			refused := ta.logs.logged(t, "run refused")
			require.Len(t, refused, 1)
			assert.Equal(t, "refused", refused[0]["decision"])
		})
	}
}

func TestAgentRefusesSecondRunOfSameJob(t *testing.T) {
	fx := newFixture(t)
	eng := newFakeEngine() // runs until stopped
	ta := startAgent(t, fx, eng)

	ctx, cancel := context.WithCancel(context.Background())
	first := ta.launch(ctx, fx.req, io.Discard)
	id := waitStarted(t, eng)
	ta.waitHeld(t, "42", id)
	assert.Equal(t, 1, ta.running(t))

	_, err := ta.client.Launch(context.Background(), fx.req, io.Discard)
	require.Error(t, err)
	assert.True(t, IsRefusal(err))
	assert.EqualError(t, err, "refused: Slurm job 42 already has a container on this node")
	assert.Len(t, eng.startedSpecs(), 1)
	assert.True(t, eng.has(id), "the first run goes on")

	cancel()
	r := waitLaunch(t, first)
	require.NoError(t, r.err)
	assert.True(t, r.exit.Stopped)
}

func TestAgentLaunchCancelStopsContainer(t *testing.T) {
	fx := newFixture(t)
	eng := newFakeEngine()
	eng.output = []byte("training...\n") // and then runs until stopped
	ta := startAgent(t, fx, eng)

	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	res := ta.launch(ctx, fx.req, &out)
	id := waitStarted(t, eng)
	ta.waitHeld(t, "42", id)
	require.Eventually(t, func() bool { return out.String() == "training...\n" }, waitFor, time.Millisecond)

	cancel()
	r := waitLaunch(t, res)
	require.NoError(t, r.err)
	assert.True(t, r.exit.Stopped, "a cancelled launch ends stopped")
	assert.Equal(t, 143, r.exit.Code, "SIGTERM within the grace")
	assert.False(t, eng.has(id), "the container was removed")
	assert.Contains(t, eng.removed(), fakeRemoval{ID: id, Grace: 100 * time.Millisecond}, "stopped with the agent's grace")
	ta.waitIdle(t)
	assert.Len(t, ta.logs.logged(t, "stopping container on request"), 1)
	ended := ta.logs.logged(t, "container ended")
	require.Len(t, ended, 1)
	assert.Equal(t, true, ended[0]["stopped"])
}

func TestAgentClientGoneRemovesContainer(t *testing.T) {
	fx := newFixture(t)
	eng := newFakeEngine()
	eng.output = []byte("working\n") // and then runs until stopped
	ta := startAgent(t, fx, eng)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent/v1/run",
		strings.NewReader(requestJSON(t, fx.req, nil)))
	require.NoError(t, err)
	resp, err := unixHTTP(ta.socket).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))

	// Read frames up to "started": the container is running.
	sc := bufio.NewScanner(resp.Body)
	var types []string
	var id string
	for sc.Scan() {
		var f Frame
		require.NoError(t, json.Unmarshal(sc.Bytes(), &f), sc.Text())
		types = append(types, f.Type)
		if f.Type == "out" {
			assert.Equal(t, "working\n", string(f.Data))
		}
		if f.Type == "started" {
			id = f.Container
			break
		}
	}
	assert.Equal(t, []string{"out", "started"}, types)
	require.NotEmpty(t, id)
	require.True(t, eng.has(id))

	cancel() // the client goes away: its connection closes
	require.Eventually(t, func() bool { return !eng.has(id) }, waitFor, 5*time.Millisecond,
		"the agent removes the container of a client that went away")
	assert.Contains(t, eng.removed(), fakeRemoval{ID: id, Grace: 100 * time.Millisecond})
	ta.waitIdle(t)
	gone := ta.logs.logged(t, "client went away; container stopped and removed")
	require.Len(t, gone, 1)
	assert.Equal(t, "42", gone[0]["slurm_job"])
}

func TestAgentShutdownDuringRun(t *testing.T) {
	fx := newFixture(t)
	eng := newFakeEngine() // runs until stopped
	ta := startAgent(t, fx, eng)

	res := ta.launch(context.Background(), fx.req, io.Discard)
	id := waitStarted(t, eng)
	ta.waitHeld(t, "42", id)

	ta.cancel() // the agent is told to stop (systemctl stop, SIGTERM)
	r := waitLaunch(t, res)
	// The agent stops the container and ends the stream with an error that
	// says so: the job failed because of the agent, the user did not cancel.
	require.Error(t, r.err)
	assert.Equal(t, "ferry agent: shut down on w1 while the job ran; its container was stopped", r.err.Error())
	assert.False(t, IsRefusal(r.err))
	assert.False(t, eng.has(id), "a job does not outlive its agent")
	select {
	case err := <-ta.served:
		assert.NoError(t, err, "Serve returns nil on a requested shutdown")
		ta.served <- err // for the cleanup
	case <-time.After(waitFor):
		t.Fatal("Serve did not return")
	}
}

func TestAgentGoneMidStreamIsErrAgentGone(t *testing.T) {
	// An agent that dies without a word (kill -9) ends the stream without
	// an exit frame; the client says so instead of inventing an exit.
	dir, err := os.MkdirTemp("", "ferry-agent-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, `{"t":"out","d":"aGVsbG8K"}`)
		fmt.Fprintln(w, `{"t":"started","container":"c1"}`)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c := &AgentClient{Socket: sock}
	req := newFixture(t).req
	var out syncBuffer
	done := make(chan launchResult, 1)
	go func() {
		e, err := c.Launch(context.Background(), req, &out)
		done <- launchResult{e, err}
	}()
	r := waitLaunch(t, done)
	require.Error(t, r.err)
	assert.ErrorIs(t, r.err, ErrAgentGone)
	assert.Equal(t, "hello\n", out.String())
}

func TestAgentStartOrWaitFails(t *testing.T) {
	tests := []struct {
		name    string
		engine  func(e *fakeEngine)
		wantErr string
	}{
		{
			name: "start fails",
			engine: func(e *fakeEngine) {
				e.startErr = errors.New("image ferry/python:3.12 is not on this worker: ask an admin to build it")
			},
			wantErr: "ferry agent: image ferry/python:3.12 is not on this worker: ask an admin to build it",
		},
		{
			name: "wait fails",
			engine: func(e *fakeEngine) {
				e.exitCode = exitCode(0)
				e.waitErr = errors.New("wait for container: daemon restarted")
			},
			wantErr: "ferry agent: wait for container: daemon restarted",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			eng := newFakeEngine()
			tt.engine(eng)
			ta := startAgent(t, fx, eng)

			_, err := ta.client.Launch(context.Background(), fx.req, io.Discard)
			require.Error(t, err)
			assert.EqualError(t, err, tt.wantErr)
			assert.False(t, IsRefusal(err), "an engine failure is not a refusal")
			assert.Empty(t, eng.ids(), "nothing is left behind")
			ta.waitIdle(t)
		})
	}
}

func TestAgentStop(t *testing.T) {
	// Stop is asked by the job's owner or root; others are refused.
	fx := newFixture(t)
	eng := newFakeEngine()
	ta := newTestAgent(fx, eng)
	ta.agent.runs = map[string]*activeRun{
		"42": {uid: 1000, container: "c42", stop: make(chan struct{}), done: make(chan struct{})},
	}
	tests := []struct {
		name     string
		peer     Peer
		body     string
		wantCode int
		wantBody string
		stopped  bool
	}{
		{"someone else", Peer{UID: 2000}, `{"slurm_job_id":"42"}`, http.StatusForbidden, `"refused: not your job"`, false},
		{"unknown job", Peer{UID: 1000}, `{"slurm_job_id":"7"}`, http.StatusNotFound, `"no container for Slurm job 7 on this node"`, false},
		{"malformed", Peer{UID: 1000}, `42`, http.StatusBadRequest, `"malformed request"`, false},
		{"owner", Peer{UID: 1000}, `{"slurm_job_id":"42"}`, http.StatusOK, `{"stopped":true}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := ta.agent.runs["42"]
			if tt.stopped {
				// The run ends once it is asked to stop.
				go func() { <-run.stop; close(run.done) }()
			}
			w := callHandler(ta.agent.handleStop, tt.peer, pathStop, tt.body)
			assert.Equal(t, tt.wantCode, w.Code)
			assert.Contains(t, w.Body.String(), tt.wantBody)
			select {
			case <-run.stop:
				assert.True(t, tt.stopped, "the stop was not asked")
			default:
				assert.False(t, tt.stopped, "the stop was asked")
			}
		})
	}
	refused := ta.logs.logged(t, "stop refused")
	require.Len(t, refused, 1)
	assert.EqualValues(t, 2000, refused[0]["uid"])
}

func TestAgentRunFromUnidentifiedCaller(t *testing.T) {
	fx := newFixture(t)
	eng := newFakeEngine()
	ta := newTestAgent(fx, eng)
	ta.agent.runs = map[string]*activeRun{}
	w := callHandler(ta.agent.handleRun, Peer{UID: -1, GID: -1}, pathRun, requestJSON(t, fx.req, nil))
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, "refused: cannot identify the caller", errorOf(t, w.Body))
	assert.Empty(t, eng.startedSpecs())
}

// epilogLabels are the labels of a container of Slurm job sid on node.
func epilogLabels(sid, node string) map[string]string {
	return map[string]string{LabelJob: "01jobid", LabelSlurmJob: sid, LabelNode: node, LabelUID: "1000"}
}

func TestAgentCleanup(t *testing.T) {
	t.Run("root removes the job's containers on this node", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("the cleanup caller is this test process; only root may clean up")
		}
		fx := newFixture(t)
		eng := newFakeEngine() // runs until stopped
		ta := startAgent(t, fx, eng)

		res := ta.launch(context.Background(), fx.req, io.Discard)
		running := waitStarted(t, eng)
		ta.waitHeld(t, "42", running)
		eng.add("left-42-w1", epilogLabels("42", "w1"))
		eng.add("other-42-w2", epilogLabels("42", "w2"))
		eng.add("other-7-w1", epilogLabels("7", "w1"))

		got, err := ta.client.Cleanup(context.Background(), CleanupRequest{SlurmJobID: "42"})
		require.NoError(t, err)
		assert.Equal(t, 1, got.Removed, "the running container is stopped by its run, the leftover removed here")
		r := waitLaunch(t, res)
		require.NoError(t, r.err)
		assert.True(t, r.exit.Stopped, "the job's run is stopped first")
		assert.ElementsMatch(t, []string{"other-42-w2", "other-7-w1"}, eng.ids(),
			"another node's and another job's containers are kept")
		cleaned := ta.logs.logged(t, "epilog cleanup removed containers")
		require.Len(t, cleaned, 1)
		assert.EqualValues(t, 1, cleaned[0]["removed"])
	})
	t.Run("a user may not clean up", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		ta := newTestAgent(fx, eng)
		ta.agent.runs = map[string]*activeRun{}
		eng.add("left-42-w1", epilogLabels("42", "w1"))

		w := callHandler(ta.agent.handleCleanup, Peer{UID: 1000, GID: 1000}, pathCleanup, `{"slurm_job_id":"42"}`)
		assert.Equal(t, http.StatusForbidden, w.Code)
		assert.Equal(t, "refused: only root (the Slurm epilog) may clean up", errorOf(t, w.Body))
		assert.Equal(t, []string{"left-42-w1"}, eng.ids())
		refused := ta.logs.logged(t, "cleanup refused")
		require.Len(t, refused, 1)
		assert.EqualValues(t, 1000, refused[0]["uid"])
	})
	t.Run("root, unit", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		ta := newTestAgent(fx, eng)
		ta.agent.runs = map[string]*activeRun{}
		eng.add("left-42-w1", epilogLabels("42", "w1"))
		eng.add("other-42-w2", epilogLabels("42", "w2"))

		w := callHandler(ta.agent.handleCleanup, Peer{UID: 0}, pathCleanup, `{"slurm_job_id":"42"}`)
		assert.Equal(t, http.StatusOK, w.Code)
		assert.JSONEq(t, `{"removed":1}`, w.Body.String())
		assert.Equal(t, []string{"other-42-w2"}, eng.ids())
	})
	t.Run("no job named", func(t *testing.T) {
		fx := newFixture(t)
		ta := newTestAgent(fx, newFakeEngine())
		ta.agent.runs = map[string]*activeRun{}
		w := callHandler(ta.agent.handleCleanup, Peer{UID: 0}, pathCleanup, `{}`)
		assert.Equal(t, http.StatusBadRequest, w.Code)
	})
}

func TestRemoveJobContainers(t *testing.T) {
	tests := []struct {
		name     string
		cluster  string
		node     string
		want     int
		wantLeft []string
	}{
		// No cluster named (tests, old configs): every cluster's match.
		{"this node", "", "w1", 2, []string{"c-42-w2", "c-7-w1"}},
		{"any node (agent down, epilog fallback)", "", "", 3, []string{"c-7-w1"}},
		{"this cluster's only", "a", "w1", 1, []string{"c-42-w1", "c-42-w2", "c-7-w1"}},
		{"this cluster, any node", "a", "", 1, []string{"c-42-w1", "c-42-w2", "c-7-w1"}},
		{"a cluster with no such job", "b", "", 0, []string{"c-42-w1", "c-42-w2", "c-7-w1", "other-42-w1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := newFakeEngine()
			eng.add("c-42-w1", epilogLabels("42", "w1"))
			eng.add("c-42-w2", epilogLabels("42", "w2"))
			eng.add("c-7-w1", epilogLabels("7", "w1"))
			// Another cluster's job 42 on its own w1, on the same engine.
			other := epilogLabels("42", "w1")
			other[LabelCluster] = "a"
			eng.add("other-42-w1", other)
			n, err := RemoveJobContainers(context.Background(), eng, tt.cluster, tt.node, "42")
			require.NoError(t, err)
			assert.Equal(t, tt.want, n)
			assert.ElementsMatch(t, tt.wantLeft, eng.ids())
		})
	}
}

func TestAgentReconcile(t *testing.T) {
	t.Run("on start", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		eng.add("orphan-42-w1", epilogLabels("42", "w1"))
		eng.add("ended-7-w1", epilogLabels("7", "w1"))
		eng.add("other-42-w2", epilogLabels("42", "w2"))
		eng.add("not-ferry", map[string]string{"app": "web"})
		ta := newTestAgent(fx, eng)
		ta.slurm.set(Allocation{SlurmJobID: "7", UID: 1000, State: "COMPLETED", Nodes: []string{"w1"}})
		ta.serve(t) // Health answers once the start-up reconcile is done

		assert.ElementsMatch(t, []string{"other-42-w2", "not-ferry"}, eng.ids(),
			"this node's orphans are removed, other nodes' and non-ferry containers kept")
		why := map[string]any{}
		for _, r := range ta.logs.logged(t, "reconcile: removed orphaned container") {
			why[r["slurm_job"].(string)] = r["reason"]
		}
		assert.Equal(t, map[string]any{"42": "no client holds it", "7": "its Slurm job is COMPLETED"}, why)
	})
	t.Run("only its own cluster's", func(t *testing.T) {
		fx := newFixture(t)
		fx.policy.Cluster = "a"
		eng := newFakeEngine()
		mine := epilogLabels("42", "w1")
		mine[LabelCluster] = "a"
		eng.add("mine-42-w1", mine)
		theirs := epilogLabels("42", "w1")
		theirs[LabelCluster] = "b"
		eng.add("theirs-42-w1", theirs)
		eng.add("unlabelled-42-w1", epilogLabels("42", "w1"))
		ta := newTestAgent(fx, eng)
		ta.serve(t)
		assert.ElementsMatch(t, []string{"theirs-42-w1", "unlabelled-42-w1"}, eng.ids(),
			"another cluster's w1 on the same Docker Engine is not this agent's")
	})
	t.Run("keeps the container a client holds", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		ta := startAgent(t, fx, eng)
		ctx, cancel := context.WithCancel(context.Background())
		res := ta.launch(ctx, fx.req, io.Discard)
		id := waitStarted(t, eng)
		ta.waitHeld(t, "42", id)
		eng.add("orphan-9-w1", epilogLabels("9", "w1"))

		ta.agent.reconcile(context.Background())
		assert.Equal(t, []string{id}, eng.ids())

		cancel()
		r := waitLaunch(t, res)
		require.NoError(t, r.err)
	})
	t.Run("periodically", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		ta := newTestAgent(fx, eng)
		ta.agent.Reconcile = 10 * time.Millisecond
		ta.serve(t)
		eng.add("late-orphan", epilogLabels("42", "w1"))
		require.Eventually(t, func() bool { return len(eng.ids()) == 0 }, waitFor, 5*time.Millisecond)
	})
	t.Run("engine down", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		eng.listErr = errors.New("list containers: cannot connect to the Docker daemon")
		ta := startAgent(t, fx, eng)
		warned := ta.logs.logged(t, "reconcile: list containers")
		require.Len(t, warned, 1)
		assert.Equal(t, "list containers: cannot connect to the Docker daemon", warned[0]["err"])
	})
}

func TestAgentHealth(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		ta := startAgent(t, fx, eng)
		h, err := ta.client.Health(context.Background())
		require.NoError(t, err)
		assert.Equal(t, Health{OK: true, Node: "w1", Docker: "ok", Running: 0}, h)

		ctx, cancel := context.WithCancel(context.Background())
		res := ta.launch(ctx, fx.req, io.Discard)
		ta.waitHeld(t, "42", waitStarted(t, eng))
		h, err = ta.client.Health(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 1, h.Running)
		cancel()
		waitLaunch(t, res)
	})
	t.Run("docker down", func(t *testing.T) {
		fx := newFixture(t)
		ta := newTestAgent(fx, newFakeEngine())
		ta.agent.Ping = func(context.Context) error { return errors.New("cannot connect to the Docker daemon") }
		ta.serve(t)
		h, err := ta.client.Health(context.Background())
		require.NoError(t, err)
		assert.Equal(t, Health{OK: false, Node: "w1", Docker: "cannot connect to the Docker daemon"}, h)

		resp, err := unixHTTP(ta.socket).Get("http://agent/v1/health")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	})
}

func TestListen(t *testing.T) {
	dir, err := os.MkdirTemp("", "ferry-agent-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "run", "agent.sock")

	ln, err := Listen(sock)
	require.NoError(t, err)
	fi, err := os.Stat(sock)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o666), fi.Mode().Perm(), "any local user may connect")

	_, err = Listen(sock)
	require.Error(t, err)
	assert.Equal(t, "another agent is already listening on "+sock, err.Error())

	// A socket file left by a dead agent is replaced. (Closing a unix
	// listener removes its file, so put a stale one back by hand.)
	require.NoError(t, ln.Close())
	require.NoError(t, os.WriteFile(sock, nil, 0o600))
	ln, err = Listen(sock)
	require.NoError(t, err)
	require.NoError(t, ln.Close())
}
