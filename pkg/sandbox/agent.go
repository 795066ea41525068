package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-hpc/ferry/pkg/env"
	"github.com/ferry-hpc/ferry/pkg/localsock"
)

// AllocationSource asks Slurm about a job. The agent never trusts the
// caller's environment for this.
type AllocationSource interface {
	Allocation(ctx context.Context, slurmJobID string) (Allocation, error)
}

// Agent is the root daemon on a worker: the only process that talks to the
// Docker Engine. Construct it with its fields set, then call Serve.
type Agent struct {
	Policy    *Policy
	Engine    Engine
	Slurm     AllocationSource
	Log       *slog.Logger
	StopGrace time.Duration
	Ping      func(context.Context) error // Docker health; nil = not checked
	// Reconcile is how often orphaned containers are looked for; 0 = 30 s.
	Reconcile time.Duration
	// Binder pins each run's scratch and outputs dirs before its container
	// starts; nil = a MountBinder at MountRoot.
	Binder Binder
	// MountRoot is where the default Binder mounts; "" =
	// DefaultMountRoot(Policy.Node).
	MountRoot string
	// Environments builds (once per content hash) the images of jobs that
	// ask for an environment; nil: such jobs are refused.
	Environments Environments

	mu      sync.Mutex
	runs    map[string]*activeRun // by Slurm job id
	closing atomic.Bool           // Serve is shutting down
}

// Environments is the agent's view of package env's Builder.
type Environments interface {
	// Ensure returns the image of spec on top of base, building it first
	// when this node has none (log gets what the job should see).
	Ensure(ctx context.Context, spec env.Spec, base string, log io.Writer) (env.ImageRef, error)
}

type activeRun struct {
	uid       int
	name      string // the container's name, which also names its mounts
	container string
	stop      chan struct{} // closed to ask for a stop
	stopOnce  sync.Once
	done      chan struct{} // closed when the run is over and cleaned up
}

func (r *activeRun) requestStop() { r.stopOnce.Do(func() { close(r.stop) }) }

type peerKey struct{}

// Listen opens the agent's unix socket at path, replacing a stale socket
// file, and lets any local user connect (identity comes from SO_PEERCRED).
func Listen(path string) (net.Listener, error) { return localsock.Listen(path, "agent") }

func peerOf(c net.Conn) (Peer, error) {
	cred, err := localsock.PeerCred(c)
	return Peer{UID: cred.UID, GID: cred.GID, PID: cred.PID}, err
}

// Serve answers on ln until ctx is done. On start it removes containers
// that no client holds any more, and does so again periodically.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	a.mu.Lock()
	if a.runs == nil {
		a.runs = map[string]*activeRun{}
	}
	a.mu.Unlock()
	if a.Log == nil {
		a.Log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if a.Binder == nil {
		root := a.MountRoot
		if root == "" {
			root = DefaultMountRoot(a.Policy.Node)
		}
		a.Binder = &MountBinder{Root: root}
	}
	if err := a.prepareScratch(); err != nil {
		return err
	}
	a.reconcile(ctx)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathHealth, a.handleHealth)
	mux.HandleFunc("POST "+pathRun, a.handleRun)
	mux.HandleFunc("POST "+pathStop, a.handleStop)
	mux.HandleFunc("POST "+pathCleanup, a.handleCleanup)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			p, err := peerOf(c)
			if err != nil {
				p = Peer{UID: -1, GID: -1}
			}
			return context.WithValue(ctx, peerKey{}, p)
		},
	}
	every := a.Reconcile
	if every <= 0 {
		every = 30 * time.Second
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.reconcile(ctx)
			}
		}
	}()
	errC := make(chan error, 1)
	go func() { errC <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		a.closing.Store(true)
		// Stop every running container: a job must not outlive its agent
		// unattended; its client records the reason.
		a.mu.Lock()
		for _, r := range a.runs {
			r.requestStop()
		}
		a.mu.Unlock()
		shut, cancel := context.WithTimeout(context.Background(), a.grace()+10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
		return nil
	case err := <-errC:
		return err
	}
}

// prepareScratch makes the node-local scratch root: world-writable with the
// sticky bit, like /tmp, so each job's own scratch dir stays its owner's.
func (a *Agent) prepareScratch() error {
	dir := a.Policy.ScratchDir
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
		return fmt.Errorf("scratch dir: %w", err)
	}
	return nil
}

func (a *Agent) grace() time.Duration {
	if a.StopGrace <= 0 {
		return 5 * time.Second
	}
	return a.StopGrace
}

// reconcile removes every ferry container of this node that no live client
// holds: connections do not survive the agent, so such a container's job
// has already been told it failed. Then it releases the pinned mounts of
// containers that are gone.
func (a *Agent) reconcile(ctx context.Context) {
	list, err := a.Engine.List(ctx, inCluster(a.Policy.Cluster, map[string]string{LabelNode: a.Policy.Node}))
	if err != nil {
		a.Log.Warn("reconcile: list containers", "err", err)
		return
	}
	exist := map[string]bool{} // names of the containers that are still there
	for _, c := range list {
		sid := c.Labels[LabelSlurmJob]
		a.mu.Lock()
		r := a.runs[sid]
		// a run whose container is still starting has no id yet: keep it
		held := r != nil && (r.container == "" || r.container == c.ID)
		a.mu.Unlock()
		if held {
			exist[c.Name] = true
			continue
		}
		why := "no client holds it"
		if alloc, err := a.Slurm.Allocation(ctx, sid); err == nil && alloc.State != "RUNNING" {
			why = "its Slurm job is " + alloc.State
		}
		if err := a.Engine.Remove(ctx, c.ID, time.Second); err != nil {
			exist[c.Name] = true
			a.Log.Warn("reconcile: remove", "container", short(c.ID), "slurm_job", sid, "err", err)
			continue
		}
		a.Log.Info("reconcile: removed orphaned container", "container", short(c.ID), "slurm_job", sid,
			"ferry_job", c.Labels[LabelJob], "reason", why)
	}
	a.releaseLeftovers(exist)
}

// releaseLeftovers releases the pinned mounts that no run holds and whose
// container no longer exists (a crashed agent's, a run that could not
// release them).
func (a *Agent) releaseLeftovers(exist map[string]bool) {
	names, err := a.Binder.Bound()
	if err != nil {
		a.Log.Warn("reconcile: list mounts", "err", err)
		return
	}
	// Under the lock: a run registers its name before it binds, so a name
	// not held now cannot be bound by a run until the lock is released.
	a.mu.Lock()
	defer a.mu.Unlock()
	held := map[string]bool{}
	for _, r := range a.runs {
		held[r.name] = true
	}
	for _, n := range names {
		if held[n] || exist[n] {
			continue
		}
		if err := a.Binder.Release(n); err != nil {
			a.Log.Warn("reconcile: release mounts", "container", n, "err", err)
			continue
		}
		a.Log.Info("reconcile: released leftover mounts", "container", n)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func peerFrom(r *http.Request) Peer {
	p, _ := r.Context().Value(peerKey{}).(Peer)
	return p
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *Agent) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := Health{OK: true, Node: a.Policy.Node, Docker: "ok"}
	if a.Ping != nil {
		if err := a.Ping(r.Context()); err != nil {
			h.OK, h.Docker = false, err.Error()
		}
	}
	a.mu.Lock()
	h.Running = len(a.runs)
	a.mu.Unlock()
	code := http.StatusOK
	if !h.OK {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, h)
}

func (a *Agent) refuse(w http.ResponseWriter, peer Peer, req Request, err error) {
	a.Log.Warn("run refused", "uid", peer.UID, "pid", peer.PID, "slurm_job", req.SlurmJobID,
		"job_dir", req.JobDir, "image", req.Image, "decision", "refused", "reason", err.Error())
	body := map[string]any{"error": err.Error()}
	if r := (*Refusal)(nil); errors.As(err, &r) && r.Ending {
		body["ending"] = true
	}
	writeJSON(w, http.StatusForbidden, body)
}

func (a *Agent) handleRun(w http.ResponseWriter, r *http.Request) {
	peer := peerFrom(r)
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.refuse(w, peer, req, refuse("malformed request: %v", err))
		return
	}
	if peer.UID < 0 {
		a.refuse(w, peer, req, refuse("cannot identify the caller"))
		return
	}
	alloc, err := a.Slurm.Allocation(r.Context(), req.SlurmJobID)
	if err != nil {
		a.refuse(w, peer, req, refuse("cannot verify Slurm job %q: %v", req.SlurmJobID, err))
		return
	}
	spec, dirs, err := a.Policy.decide(req, peer, alloc)
	if err != nil {
		a.refuse(w, peer, req, err)
		return
	}
	if req.Environment != nil && !req.Environment.Empty() {
		// The client's parsing is not trusted: the spec is checked again
		// here, where the root side will build it.
		if err := req.Environment.Validate(); err != nil {
			a.refuse(w, peer, req, refuse("environment: %s", strings.ReplaceAll(err.Error(), "\n", "; ")))
			return
		}
		if a.Environments == nil {
			a.refuse(w, peer, req, refuse("this cluster builds no environments: run without requirements.txt and apt:, or ask the admins to enable them"))
			return
		}
	}
	run := &activeRun{uid: peer.UID, name: spec.Name, stop: make(chan struct{}), done: make(chan struct{})}
	a.mu.Lock()
	if _, busy := a.runs[req.SlurmJobID]; busy {
		a.mu.Unlock()
		a.refuse(w, peer, req, refuse("Slurm job %s already has a container on this node", req.SlurmJobID))
		return
	}
	a.runs[req.SlurmJobID] = run
	a.mu.Unlock()
	log := a.Log.With("uid", peer.UID, "slurm_job", req.SlurmJobID, "ferry_job", string(alloc.FerryID), "image", req.Image)

	// However the run ends, its mounts are released and its scratch dir
	// removed before the last frame goes out and before the run is
	// forgotten: when the client learns how the job ended, the node is
	// clean, and a run after it finds no leftovers.
	var last *Frame
	var fw *frameWriter
	defer func() {
		a.endRun(log, run, dirs)
		a.mu.Lock()
		delete(a.runs, req.SlurmJobID)
		a.mu.Unlock()
		close(run.done)
		if last != nil && fw != nil {
			fw.frame(*last)
		}
	}()

	// Pin the directories the policy checked: from here on Docker sees
	// the directories that were opened and checked, whatever happens to
	// their paths.
	pinned, err := a.Binder.Bind(spec.Name, dirs.binds)
	if err != nil {
		if IsRefusal(err) {
			a.refuse(w, peer, req, err)
			return
		}
		log.Error("pin the job's directories", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "cannot mount the job's directories: " + err.Error()})
		return
	}
	for i, b := range dirs.binds {
		for j := range spec.Mounts {
			if spec.Mounts[j].Target == b.Target {
				spec.Mounts[j].Source = pinned[i]
			}
		}
	}
	log.Info("run allowed", "decision", "allowed", "cpus", alloc.CPUs, "mem_bytes", alloc.MemBytes, "mem_limit", spec.MemoryBytes, "gpus", alloc.GPUs, "network", spec.Network)

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fw = &frameWriter{w: w, rc: http.NewResponseController(w)}

	// The job's environment: its image is built here first if this node
	// has none (the job's log says so), and the job runs in it. A failed
	// build fails the job with the build's last lines.
	var envKey string
	if req.Environment != nil && !req.Environment.Empty() {
		ref, err := a.Environments.Ensure(r.Context(), *req.Environment, spec.Image, fw)
		if err != nil {
			log.Warn("environment", "err", err)
			last = &Frame{Type: "error", Error: "environment: " + envFailure(fw, err)}
			return
		}
		log.Info("environment ready", "env", ref.Key, "env_image", ref.ID)
		spec.Image, envKey = ref.ID, ref.Key
	}

	// Docker calls outlive the request: the container must be cleaned up
	// even when the client is gone.
	bg := context.WithoutCancel(r.Context())
	c, err := a.Engine.Start(bg, spec, fw)
	if err != nil {
		log.Error("start failed", "err", err)
		last = &Frame{Type: "error", Error: err.Error()}
		return
	}
	a.mu.Lock()
	run.container = c.ID
	a.mu.Unlock()
	fw.frame(Frame{Type: "started", Container: c.ID})

	exitC := make(chan Exit, 1)
	waitErr := make(chan error, 1)
	go func() {
		e, err := a.Engine.Wait(bg, c)
		if err != nil {
			waitErr <- err
			return
		}
		exitC <- e
	}()
	stopped := false
	var exit Exit
	select {
	case exit = <-exitC:
	case err := <-waitErr:
		log.Error("wait failed", "err", err)
		_ = a.Engine.Remove(bg, c.ID, a.grace())
		last = &Frame{Type: "error", Error: err.Error()}
		return
	case <-run.stop:
		stopped = true
		log.Info("stopping container on request", "container", short(c.ID))
	case <-r.Context().Done():
		_ = a.Engine.Remove(bg, c.ID, a.grace())
		log.Warn("client went away; container stopped and removed", "container", short(c.ID))
		return
	}
	if stopped {
		if err := a.Engine.Remove(bg, c.ID, a.grace()); err != nil {
			log.Error("remove", "err", err)
		}
		select {
		case exit = <-exitC:
		case err := <-waitErr:
			exit = Exit{Code: 137, ImageDigest: c.ImageDigest, Ended: time.Now()}
			log.Warn("wait after stop", "err", err)
		case <-time.After(a.grace() + 15*time.Second):
			exit = Exit{Code: 137, ImageDigest: c.ImageDigest, Ended: time.Now()}
		}
		exit.Stopped = true
		if a.closing.Load() {
			log.Warn("agent shutting down: container stopped", "container", short(c.ID))
			last = &Frame{Type: "error", Error: fmt.Sprintf("shut down on %s while the job ran; its container was stopped", a.Policy.Node)}
			return
		}
	} else if err := a.Engine.Remove(bg, c.ID, 0); err != nil {
		log.Error("remove", "err", err)
	}
	log.Info("container ended", "container", short(c.ID), "exit_code", exit.Code, "oom_killed", exit.OOMKilled, "stopped", exit.Stopped)
	exit.MemoryLimit = &spec.MemoryBytes
	exit.Environment = envKey
	last = &Frame{Type: "exit", Exit: &exit}
}

// envFailure writes a failed build's last lines into the job's log (a job
// that waited for another's build, or was answered from the failure
// record, has not seen them) and returns the one-line reason.
func envFailure(log io.Writer, err error) string {
	var be *env.BuildError
	if !errors.As(err, &be) {
		return strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	if len(be.Lines) > 0 {
		fmt.Fprintf(log, "ferry: environment %s failed to build: %s; the build's last lines:\n", env.Short(be.Key), be.Reason)
		for _, l := range be.Lines {
			fmt.Fprintf(log, "  | %s\n", l)
		}
	}
	return fmt.Sprintf("%s failed to build: %s (the build's last lines are in the log)", env.Short(be.Key), be.Reason)
}

// endRun releases a run's pinned mounts and removes its scratch dir, once
// its container is gone.
func (a *Agent) endRun(log *slog.Logger, run *activeRun, dirs runDirs) {
	if err := a.Binder.Release(run.name); err != nil {
		log.Error("release the job's mounts", "err", err)
	}
	removed, err := removeRunScratch(dirs)
	if err != nil {
		log.Error("remove the job's scratch dir", "scratch", dirs.scratchName, "err", err)
	} else if removed {
		log.Info("removed the job's scratch dir", "scratch", dirs.scratchName)
	}
}

func (a *Agent) handleStop(w http.ResponseWriter, r *http.Request) {
	peer := peerFrom(r)
	var ref JobRef
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&ref); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed request"})
		return
	}
	a.mu.Lock()
	run := a.runs[ref.SlurmJobID]
	a.mu.Unlock()
	if run == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no container for Slurm job " + ref.SlurmJobID + " on this node"})
		return
	}
	if run.uid != peer.UID && peer.UID != 0 {
		a.Log.Warn("stop refused", "uid", peer.UID, "slurm_job", ref.SlurmJobID, "reason", "not the job's owner")
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "refused: not your job"})
		return
	}
	run.requestStop()
	select {
	case <-run.done:
	case <-time.After(a.grace() + 20*time.Second):
	case <-r.Context().Done():
	}
	writeJSON(w, http.StatusOK, map[string]bool{"stopped": true})
}

func (a *Agent) handleCleanup(w http.ResponseWriter, r *http.Request) {
	peer := peerFrom(r)
	var req CleanupRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.SlurmJobID == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed request"})
		return
	}
	if peer.UID != 0 {
		a.Log.Warn("cleanup refused", "uid", peer.UID, "slurm_job", req.SlurmJobID, "reason", "only root (the Slurm epilog) may clean up")
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "refused: only root (the Slurm epilog) may clean up"})
		return
	}
	a.mu.Lock()
	run := a.runs[req.SlurmJobID]
	a.mu.Unlock()
	if run != nil {
		run.requestStop()
		select {
		case <-run.done:
		case <-time.After(a.grace() + 20*time.Second):
		}
	}
	var res CleanupResult
	n, err := RemoveJobContainers(r.Context(), a.Engine, a.Policy.Cluster, a.Policy.Node, req.SlurmJobID)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	res.Removed = n
	if n > 0 {
		a.Log.Info("epilog cleanup removed containers", "slurm_job", req.SlurmJobID, "removed", n)
	}
	if req.FerryID != "" {
		res.Scratch, err = RemoveScratch(a.Policy.ScratchDir, req.FerryID, req.UID)
		if err != nil {
			res.ScratchError = err.Error()
			a.Log.Warn("epilog cleanup: remove scratch", "slurm_job", req.SlurmJobID, "ferry_job", string(req.FerryID), "err", err)
		}
		if len(res.Scratch) > 0 {
			a.Log.Info("epilog cleanup removed scratch dirs", "slurm_job", req.SlurmJobID, "ferry_job", string(req.FerryID), "scratch", res.Scratch)
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// RemoveJobContainers removes every container of cluster labelled with the
// Slurm job id on node ("" = any node). The epilog uses it directly when the
// agent is down.
func RemoveJobContainers(ctx context.Context, e Engine, cluster, node, slurmJobID string) (int, error) {
	labels := inCluster(cluster, map[string]string{LabelSlurmJob: slurmJobID})
	if node != "" {
		labels[LabelNode] = node
	}
	list, err := e.List(ctx, labels)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, c := range list {
		if err := e.Remove(ctx, c.ID, time.Second); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// frameWriter turns the container's output into "out" frames, flushed as
// they are written so the job's log follows in real time.
type frameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	rc  *http.ResponseController
	err error
}

func (f *frameWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += 32 << 10 {
		end := min(off+32<<10, len(p))
		f.frame(Frame{Type: "out", Data: p[off:end]})
	}
	return len(p), nil
}

func (f *frameWriter) frame(fr Frame) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return
	}
	b, err := json.Marshal(fr)
	if err != nil {
		f.err = err
		return
	}
	if _, err := f.w.Write(append(b, '\n')); err != nil {
		f.err = err
		return
	}
	if err := f.rc.Flush(); err != nil {
		f.err = err
	}
}

// inCluster adds cluster's label to a container filter ("" = no cluster
// named: every container matches, as before clusters were labelled).
func inCluster(cluster string, labels map[string]string) map[string]string {
	if cluster != "" {
		labels[LabelCluster] = cluster
	}
	return labels
}
