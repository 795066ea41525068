package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeEngine is an in-memory Engine. A started container writes the canned
// output to its out writer, then either exits with exitCode (when set) or
// runs until Remove stops it (143 after a grace, 137 without one), or until
// the test calls exit. It is safe for concurrent use.
type fakeEngine struct {
	// Knobs, set before the engine is used.
	output    []byte           // written to out inside Start
	lines     []string         // streamed after Start returns, one every lineEvery
	lineEvery time.Duration    // default 5ms
	exitCode  *int             // exit by itself with this code once the output is written
	oom       bool             // the self-exit is an OOM kill
	startErr  error            // Start fails with it
	waitErr   error            // Wait fails with it
	listErr   error            // List fails with it
	removeErr map[string]error // Remove of that container id fails with it
	// onStart runs at the start of Start, as Docker resolves the spec's
	// bind sources.
	onStart func(spec ContainerSpec)

	mu         sync.Mutex
	next       int
	containers map[string]*fakeContainer // existing containers
	// ever holds every container started or added, removed or not: a Wait
	// that begins after a Remove still learns how the container ended (as
	// when Docker's wait was registered first).
	ever     map[string]*fakeContainer
	specs    []ContainerSpec
	removals []fakeRemoval
	started  chan string // every started container's id
}

type fakeRemoval struct {
	ID    string
	Grace time.Duration
}

type fakeContainer struct {
	id     string
	labels map[string]string
	spec   ContainerSpec

	once     sync.Once
	exited   chan struct{} // closed when the container process ended
	exit     Exit
	streamed chan struct{} // closed once all output was written
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{containers: map[string]*fakeContainer{}, ever: map[string]*fakeContainer{}, started: make(chan string, 64)}
}

func exitCode(c int) *int { return &c }

func (c *fakeContainer) end(e Exit) {
	c.once.Do(func() {
		c.exit = e
		close(c.exited)
	})
}

func (f *fakeEngine) Start(ctx context.Context, spec ContainerSpec, out io.Writer) (Container, error) {
	if f.onStart != nil {
		f.onStart(spec)
	}
	if f.startErr != nil {
		return Container{}, f.startErr
	}
	f.mu.Lock()
	f.next++
	id := fmt.Sprintf("c%02d%058d", f.next, f.next) // 64 characters, like Docker's
	c := &fakeContainer{
		id: id, labels: maps.Clone(spec.Labels), spec: spec,
		exited: make(chan struct{}), streamed: make(chan struct{}),
	}
	f.containers[id] = c
	f.ever[id] = c
	f.specs = append(f.specs, spec)
	f.mu.Unlock()

	if len(f.output) > 0 {
		_, _ = out.Write(f.output)
	}
	started := time.Now()
	go func() {
		defer close(c.streamed)
		every := f.lineEvery
		if every <= 0 {
			every = 5 * time.Millisecond
		}
		for _, l := range f.lines {
			select {
			case <-c.exited:
				return
			case <-time.After(every):
			}
			_, _ = out.Write([]byte(l))
		}
		if f.exitCode != nil {
			c.end(Exit{Code: *f.exitCode, OOMKilled: f.oom, ImageDigest: "sha256:fake", Started: started, Ended: time.Now()})
		}
	}()
	f.started <- id
	return Container{ID: id, ImageDigest: "sha256:fake"}, nil
}

func (f *fakeEngine) Wait(ctx context.Context, c Container) (Exit, error) {
	f.mu.Lock()
	fc := f.ever[c.ID]
	f.mu.Unlock()
	if fc == nil {
		return Exit{}, fmt.Errorf("wait: no such container %s", c.ID)
	}
	select {
	case <-fc.exited:
	case <-ctx.Done():
		return Exit{}, ctx.Err()
	}
	if f.waitErr != nil {
		return Exit{}, f.waitErr
	}
	<-fc.streamed // all output was copied
	return fc.exit, nil
}

func (f *fakeEngine) Remove(ctx context.Context, id string, grace time.Duration) error {
	f.mu.Lock()
	f.removals = append(f.removals, fakeRemoval{ID: id, Grace: grace})
	if err := f.removeErr[id]; err != nil {
		f.mu.Unlock()
		return err
	}
	fc := f.containers[id]
	delete(f.containers, id)
	f.mu.Unlock()
	if fc != nil {
		code := 137 // SIGKILL
		if grace > 0 {
			code = 143 // SIGTERM, honoured within the grace
		}
		fc.end(Exit{Code: code, ImageDigest: "sha256:fake", Ended: time.Now()})
	}
	return nil
}

func (f *fakeEngine) List(ctx context.Context, labels map[string]string) ([]ContainerInfo, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ContainerInfo
	for _, c := range f.containers {
		match := true
		for k, v := range labels {
			if got, ok := c.labels[k]; !ok || (v != "" && got != v) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		running := true
		select {
		case <-c.exited:
			running = false
		default:
		}
		out = append(out, ContainerInfo{ID: c.id, Name: c.spec.Name, Labels: maps.Clone(c.labels), Running: running})
	}
	return out, nil
}

// add puts a container that some earlier process started into the engine.
// Its name is its id.
func (f *fakeEngine) add(id string, labels map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &fakeContainer{id: id, labels: labels, spec: ContainerSpec{Name: id}, exited: make(chan struct{}), streamed: make(chan struct{})}
	close(c.streamed) // it writes nowhere
	f.containers[id] = c
	f.ever[id] = c
}

// exit makes a running container end by itself with code.
func (f *fakeEngine) exit(id string, code int) error {
	f.mu.Lock()
	fc := f.containers[id]
	f.mu.Unlock()
	if fc == nil {
		return errors.New("no such container " + id)
	}
	fc.end(Exit{Code: code, ImageDigest: "sha256:fake", Ended: time.Now()})
	return nil
}

// has reports whether the container still exists.
func (f *fakeEngine) has(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.containers[id]
	return ok
}

func (f *fakeEngine) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.containers {
		ids = append(ids, id)
	}
	return ids
}

func (f *fakeEngine) startedSpecs() []ContainerSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ContainerSpec(nil), f.specs...)
}

func (f *fakeEngine) removed() []fakeRemoval {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRemoval(nil), f.removals...)
}

var _ Engine = (*fakeEngine)(nil)

// fakeSlurm answers Allocation from a map; unknown jobs are an error.
type fakeSlurm struct {
	mu     sync.Mutex
	allocs map[string]Allocation
}

func (s *fakeSlurm) Allocation(_ context.Context, id string) (Allocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.allocs[id]
	if !ok {
		return Allocation{}, fmt.Errorf("Slurm does not know job %s", id)
	}
	return a, nil
}

func (s *fakeSlurm) set(a Allocation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allocs[a.SlurmJobID] = a
}

// fakeBinder pins nothing: it records what the agent asked and answers
// with mount points under /fake-mnt.
type fakeBinder struct {
	mu       sync.Mutex
	bound    map[string][]BindSource
	released []string
	bindErr  error // Bind fails with it
}

func newFakeBinder() *fakeBinder { return &fakeBinder{bound: map[string][]BindSource{}} }

func fakeMountPoint(name, src string) string { return "/fake-mnt/" + name + "/" + src }

func (b *fakeBinder) Bind(name string, srcs []BindSource) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bindErr != nil {
		return nil, b.bindErr
	}
	if _, dup := b.bound[name]; dup {
		return nil, fmt.Errorf("bind: %s is bound already", name)
	}
	b.bound[name] = srcs
	var out []string
	for _, s := range srcs {
		out = append(out, fakeMountPoint(name, s.Name))
	}
	return out, nil
}

func (b *fakeBinder) Release(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.bound, name)
	b.released = append(b.released, name)
	return nil
}

func (b *fakeBinder) Bound() ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for n := range b.bound {
		out = append(out, n)
	}
	return out, nil
}

// add binds name as a crashed agent would have left it.
func (b *fakeBinder) add(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bound[name] = nil
}

// sources are what name was bound to.
func (b *fakeBinder) sources(name string) []BindSource {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bound[name]
}

func (b *fakeBinder) names() []string {
	n, _ := b.Bound()
	return n
}

func (b *fakeBinder) releases() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.released...)
}

var _ Binder = (*fakeBinder)(nil)

// The agent test harness.

// waitFor bounds everything a test waits for: nothing here should take
// more than a fraction of it.
const waitFor = 10 * time.Second

// syncBuffer is a bytes.Buffer safe for a writer and a reader in different
// goroutines (the agent's logger, a job's output).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// records parses the agent's JSON log lines.
func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "log line %q", line)
		out = append(out, rec)
	}
	return out
}

// logged returns the log records with message msg.
func (s *syncBuffer) logged(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range s.records(t) {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// testAgent is an Agent serving on a real unix socket, with a fake engine
// and a fake Slurm that knows the fixture's job as "42".
type testAgent struct {
	fx     *fixture
	engine *fakeEngine
	binder *fakeBinder
	slurm  *fakeSlurm
	agent  *Agent
	logs   *syncBuffer
	socket string
	client *AgentClient
	cancel context.CancelFunc // stops the agent
	served chan error         // what Serve returned
}

func newTestAgent(fx *fixture, eng *fakeEngine) *testAgent {
	logs := &syncBuffer{}
	sl := &fakeSlurm{allocs: map[string]Allocation{fx.alloc.SlurmJobID: fx.alloc}}
	b := newFakeBinder()
	return &testAgent{
		fx: fx, engine: eng, binder: b, slurm: sl, logs: logs,
		agent: &Agent{
			Policy:    fx.policy,
			Engine:    eng,
			Binder:    b,
			Slurm:     sl,
			Log:       slog.New(slog.NewJSONHandler(logs, nil)),
			StopGrace: 100 * time.Millisecond,
			Reconcile: time.Hour, // tests call reconcile themselves
		},
	}
}

// serve starts ta's agent on a socket and waits until it answers.
func (ta *testAgent) serve(t *testing.T) *testAgent {
	t.Helper()
	// Not t.TempDir: a unix socket path must stay under 108 bytes, and
	// test names make TempDir paths long.
	dir, err := os.MkdirTemp("", "ferry-agent-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	ta.socket = filepath.Join(dir, "agent.sock")
	ln, err := Listen(ta.socket)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ta.cancel = cancel
	ta.served = make(chan error, 1)
	go func() { ta.served <- ta.agent.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ta.served:
		case <-time.After(waitFor):
			t.Error("the agent did not stop")
		}
	})
	ta.client = &AgentClient{Socket: ta.socket, StopGrace: 100 * time.Millisecond}
	hctx, hcancel := context.WithTimeout(context.Background(), waitFor)
	defer hcancel()
	h, err := ta.client.Health(hctx) // answered once the start-up reconcile is done
	require.NoError(t, err)
	require.Equal(t, "w1", h.Node)
	return ta
}

func startAgent(t *testing.T, fx *fixture, eng *fakeEngine) *testAgent {
	t.Helper()
	return newTestAgent(fx, eng).serve(t)
}

type launchResult struct {
	exit Exit
	err  error
}

func (ta *testAgent) launch(ctx context.Context, req Request, out io.Writer) <-chan launchResult {
	res := make(chan launchResult, 1)
	go func() {
		e, err := ta.client.Launch(ctx, req, out)
		res <- launchResult{e, err}
	}()
	return res
}

func waitLaunch(t *testing.T, res <-chan launchResult) launchResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(waitFor):
		t.Fatal("Launch hangs")
		return launchResult{}
	}
}

func waitStarted(t *testing.T, eng *fakeEngine) string {
	t.Helper()
	select {
	case id := <-eng.started:
		return id
	case <-time.After(waitFor):
		t.Fatal("no container was started")
		return ""
	}
}

// waitHeld waits until the agent has recorded the running container of
// Slurm job sid, so that a stop or a reconcile sees it.
func (ta *testAgent) waitHeld(t *testing.T, sid, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		ta.agent.mu.Lock()
		defer ta.agent.mu.Unlock()
		r := ta.agent.runs[sid]
		return r != nil && r.container == id
	}, waitFor, time.Millisecond)
}

func (ta *testAgent) running(t *testing.T) int {
	t.Helper()
	h, err := ta.client.Health(context.Background())
	require.NoError(t, err)
	return h.Running
}

// waitIdle waits until the agent holds no run. A run is forgotten just
// after its last frame went out, so right after Launch returns it may still
// be counted.
func (ta *testAgent) waitIdle(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return ta.running(t) == 0 }, waitFor, time.Millisecond,
		"the agent still holds a run")
}

// unixHTTP is a plain net/http client for the agent's socket, for requests
// AgentClient would never send.
func unixHTTP(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}}
}

// requestJSON is req as JSON with extra top-level fields merged in.
func requestJSON(t *testing.T, req Request, extra map[string]any) string {
	t.Helper()
	b, err := json.Marshal(req)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for k, v := range extra {
		m[k] = v
	}
	b, err = json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

func errorOf(t *testing.T, body io.Reader) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.NewDecoder(body).Decode(&e))
	return e.Error
}

func callHandler(h http.HandlerFunc, peer Peer, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r = r.WithContext(context.WithValue(r.Context(), peerKey{}, peer))
	w := httptest.NewRecorder()
	h(w, r)
	return w
}
