package tracker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/localsock"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// DefaultHookSocket is where the tracker listens for jobcomp events.
const DefaultHookSocket = "/run/ferry/tracker.sock"

// HookEvent is what Slurm's jobcomp/script hook knows of a job that just
// ended (or was requeued): its environment, as `ferry slurm-hook` sends it.
type HookEvent struct {
	JobID       string `json:"job_id"`
	ArrayJobID  string `json:"array_job_id,omitempty"`
	ArrayTaskID string `json:"array_task_id,omitempty"`
	State       string `json:"state"`
	ExitCode    string `json:"exit_code,omitempty"`
	Nodes       string `json:"nodes,omitempty"`
	Start       int64  `json:"start,omitempty"`
	End         int64  `json:"end,omitempty"`
	WorkDir     string `json:"work_dir"`
	UID         int    `json:"uid"`
	User        string `json:"user,omitempty"`
}

// HookEventFromEnv reads the variables slurmctld gives a jobcomp/script
// program (JOBID, JOBSTATE, EXITCODE, NODES, START, END, WORK_DIR, UID,
// USERNAME, ARRAYJOBID, ARRAYTASKID).
func HookEventFromEnv(getenv func(string) string) (HookEvent, error) {
	ev := HookEvent{
		JobID: getenv("JOBID"), State: getenv("JOBSTATE"), ExitCode: getenv("EXITCODE"),
		Nodes: getenv("NODES"), WorkDir: getenv("WORK_DIR"), User: getenv("USERNAME"),
		ArrayJobID: getenv("ARRAYJOBID"), ArrayTaskID: getenv("ARRAYTASKID"),
	}
	ev.Start, _ = strconv.ParseInt(getenv("START"), 10, 64)
	ev.End, _ = strconv.ParseInt(getenv("END"), 10, 64)
	uid, err := strconv.Atoi(getenv("UID"))
	if ev.JobID == "" || ev.State == "" || err != nil {
		return ev, errors.New("JOBID, JOBSTATE or UID is not set: ferry slurm-hook runs as Slurm's jobcomp/script")
	}
	ev.UID = uid
	return ev, nil
}

// SlurmID is the id users see: "123", or "123_4" for an array task.
func (ev HookEvent) SlurmID() string {
	task, err := strconv.ParseUint(ev.ArrayTaskID, 10, 32)
	if err != nil || task >= 0xfffffffe || ev.ArrayJobID == "" || ev.ArrayJobID == "0" {
		return ev.JobID // not an array task (NO_VAL)
	}
	return ev.ArrayJobID + "_" + strconv.FormatUint(task, 10)
}

// FerryID is the ferry id the event's work dir names: a plain job's dir
// is named by the job's id; an array task runs in its sweep's dir,
// <spool>/.sweeps/<sweep id>. ok is false when the work dir is neither.
func (ev HookEvent) FerryID() (id job.ID, ok bool) {
	id, err := job.ParseID(filepath.Base(ev.WorkDir))
	if err != nil {
		return "", false
	}
	if ev.SlurmID() != ev.JobID && filepath.Base(filepath.Dir(ev.WorkDir)) != job.SweepsDir {
		return "", false
	}
	return id, true
}

// SendHook gives ev to the tracker listening on socket, within the
// context's deadline. It never waits for the tracker to write the store.
func SendHook(ctx context.Context, socket string, ev HookEvent) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("tracker socket: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(ev); err != nil {
		return fmt.Errorf("tracker socket: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("tracker socket: no answer: %w", err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return fmt.Errorf("tracker refused the event: %s", line)
	}
	return nil
}

// ListenHook opens the hook socket at path, replacing a stale one. Anyone
// may connect; ServeHook accepts events only from the uids it is given.
func ListenHook(path string) (net.Listener, error) { return localsock.Listen(path, "tracker") }

// ServeHook reads one event per connection from ln until ctx is done and
// queues it for the tracker's loop. Only peers whose uid (from the kernel,
// SO_PEERCRED) is in uids are heard: the hook runs as SlurmUser. A full
// queue drops the event; the next squeue catches the change.
func (t *Tracker) ServeHook(ctx context.Context, ln net.Listener, uids []int) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go t.serveHookConn(c, uids)
	}
}

func (t *Tracker) serveHookConn(c net.Conn, uids []int) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	uid, err := peerUID(c)
	var ev HookEvent
	if derr := json.NewDecoder(bufio.NewReader(&limitedConn{c, 64 << 10})).Decode(&ev); derr != nil {
		t.o.Metrics.hook("bad")
		fmt.Fprintf(c, "bad event: %v\n", derr)
		return
	}
	if err != nil || !slices.Contains(uids, uid) {
		t.o.Metrics.hook("refused")
		fmt.Fprintf(c, "refused: uid %d may not send job events\n", uid)
		return
	}
	select {
	case t.hookCh <- ev:
		t.o.Metrics.hook("queued")
	default:
		t.o.Metrics.hook("dropped")
	}
	fmt.Fprintln(c, "ok")
}

type limitedConn struct {
	c net.Conn
	n int
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("event too large")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}

func peerUID(c net.Conn) (int, error) {
	cred, err := localsock.PeerCred(c)
	if err != nil {
		return -1, err
	}
	return cred.UID, nil
}

// HandleHook applies one jobcomp event at once: it reads the job dir's
// result.json and spec.json and writes the job's state in one batch. The
// event is a hint checked against the job dir, never trusted alone.
func (t *Tracker) HandleHook(ctx context.Context, ev HookEvent) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.loaded || !t.reconciled {
		return errNotReady // the first listing will see the job
	}
	now := t.o.Now()
	e, err := t.hookEntry(ev)
	if err != nil {
		t.o.Metrics.hook("unmatched")
		return err
	}
	st, reason := slurm.ObservedState(ev.State, "")
	sv := job.SlurmView{Known: true, State: st, Reason: reason, Node: ev.Nodes}
	if ev.Start > 0 {
		sv.Start = time.Unix(ev.Start, 0)
	}
	if ev.End > 0 && st.Terminal() {
		sv.End = time.Unix(ev.End, 0)
	}
	e.slurmID = ev.SlurmID()
	t.readResult(e)
	t.set(e, job.Observe(e.spec, e.slurmID, sv, nil, e.res, now), now, store.SourceHook)
	t.readMetrics(e)
	return t.commit(ctx, nil)
}

// hookEntry finds the job an event is about, owned by the event's uid:
// a plain job by its job dir; a sweep task by its sweep (the work dir of
// its array) and the Slurm id the task recorded, so that an event of a
// new sweep that reuses an old sweep's Slurm ids is not applied to the
// old sweep's task.
func (t *Tracker) hookEntry(ev HookEvent) (*entry, error) {
	sid := ev.SlurmID()
	id, ok := ev.FerryID()
	if !ok {
		return nil, fmt.Errorf("Slurm job %s: %s is not a ferry job or sweep dir", sid, ev.WorkDir)
	}
	if sid != ev.JobID {
		k := taskKey{id, sid}
		if _, ok := t.tasks[k]; !ok {
			t.findTasks(id, ev.WorkDir, ev.UID, t.o.Now()) // a sweep submitted since the last scan
		}
		if tid, ok := t.tasks[k]; ok {
			if e := t.entries[tid]; e != nil && e.spec != nil && e.sweep == id && e.uid == ev.UID {
				return e, nil
			}
		}
		return nil, fmt.Errorf("Slurm job %s: no task of sweep %s of uid %d records this id", sid, id, ev.UID)
	}
	e := t.entries[id]
	if e == nil || e.spec == nil {
		var err error
		if e, err = t.resolve(id, ev.WorkDir); err != nil {
			return nil, fmt.Errorf("Slurm job %s: %w", sid, err)
		}
	}
	if e.uid != ev.UID || e.dir != ev.WorkDir {
		return nil, fmt.Errorf("Slurm job %s of uid %d: job %s is in %s, owned by uid %d", sid, ev.UID, id, e.dir, e.uid)
	}
	return e, nil
}
