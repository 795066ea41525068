package tracker

import (
	"cmp"
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// entry is what the tracker knows of one ferry job.
type entry struct {
	id         job.ID
	dir        string // the job dir; "" = unknown
	uid        int    // the job dir's owner; -1 = unknown
	spec       *job.Spec
	params     json.RawMessage
	sweep      job.ID // the sweep the job is a task of
	slurmID    string
	arrayIndex int
	res        *job.Result // the last result.json read

	inSlurm      bool
	line         lineKey   // the fields of the last listing line that matter
	estStart     time.Time // the last line's estimated start (a pending job's)
	priority     int64     // the last line's Slurm priority
	missingSince time.Time // when it was first missing from a listing
	resRead      bool      // result.json was read since it left the listing
	acctAsk      bool      // about to be lost: ask sacct on the next tick
	decidedAt    time.Time // cur holds what is known as of this time

	cur *store.Job // what the store should hold
	pub *store.Job // what the store holds (nil = nothing, or unknown)

	metricsDone bool              // terminal, and metrics.jsonl read since
	points      []json.RawMessage // metric points read, not yet written
	pointsReset bool              // the history is rewritten from the start
}

// lineKey is what of a listing line can change a job's stored state.
type lineKey struct {
	id, state, reason, nodes  string
	start, end, est, priority int64
}

func keyOf(j *slurm.Job) lineKey {
	return lineKey{id: j.ID, state: j.State, reason: j.Reason, nodes: j.Nodes, start: j.Start.Unix(), end: j.End.Unix(),
		est: j.EstStart.Unix(), priority: j.Priority}
}

func (e *entry) files() dirFiles { return dirFiles{path: e.dir, uid: e.uid} }

// reconcile applies one successful listing.
func (t *Tracker) reconcile(l listing) {
	now := t.o.Now()
	seen := make(map[job.ID]*slurm.Job, len(l.jobs))
	for i := range l.jobs {
		j := &l.jobs[i]
		fid, ok := j.FerryID()
		if !ok {
			continue
		}
		var e *entry
		if j.ArrayTaskID >= 0 {
			e = t.taskEntry(j, fid, now)
		} else {
			e = t.plainEntry(j, fid, now)
		}
		if e == nil {
			continue
		}
		// `sbatch job.sbatch` again, or a reused Slurm id: the newest
		// submission is the job.
		if prev, dup := seen[e.id]; dup && prev.Submit.After(j.Submit) {
			continue
		}
		seen[e.id] = j
	}
	for id, e := range t.entries {
		if j, ok := seen[id]; ok {
			t.listed(e, j, l.at, now)
		} else {
			t.missing(e, l.at, now)
		}
	}
}

// plainEntry attributes a plain job's line: its comment names the job, and
// the job dir must be owned by the line's uid.
func (t *Tracker) plainEntry(j *slurm.Job, fid job.ID, now time.Time) *entry {
	e := t.entries[fid]
	if e == nil || e.spec == nil {
		rk := resolveKey{fid, j.ID}
		if !t.tryResolve(rk, now) {
			return nil
		}
		dir := j.WorkDir
		if e != nil && e.dir != "" && (dir == "" || filepath.Base(dir) != string(fid)) {
			dir = e.dir
		}
		if filepath.Base(dir) != string(fid) {
			t.failedResolve(rk, now)
			return nil
		}
		ne, err := t.resolve(fid, dir)
		if err != nil {
			t.o.Log.Debug("job dir", "job", fid, "slurm_id", j.ID, "err", err)
			t.failedResolve(rk, now)
			return nil
		}
		e = ne
	}
	if e.uid != j.UID {
		return nil // someone else's job with this job's id in its comment
	}
	return e
}

// taskKey names a sweep's array task: the sweep (the comment of its
// array, and the name of the array's work dir) and the Slurm id the
// task's job dir recorded ("123_4": the array and the task's index in it).
// Slurm reuses its ids once slurmctld loses its state; with the sweep in
// the key, a new sweep's task is never taken for an old one's.
type taskKey struct {
	sweep job.ID
	slurm string
}

// indexTask records a sweep task's Slurm id.
func (t *Tracker) indexTask(e *entry) {
	if e.sweep != "" && e.slurmID != "" {
		t.tasks[taskKey{e.sweep, e.slurmID}] = e.id
	}
}

// taskEntry attributes a line of a sweep's array: the comment names the
// sweep, the task's job dir records the task's Slurm id ("123_4"). A task
// the tracker has not indexed under this sweep (a new sweep, or one that
// reuses an older sweep's Slurm ids) is looked for in the sweep's dir.
func (t *Tracker) taskEntry(j *slurm.Job, sweep job.ID, now time.Time) *entry {
	k := taskKey{sweep, j.ID}
	id, ok := t.tasks[k]
	if !ok {
		rk := resolveKey{sweep, j.ID}
		if !t.tryResolve(rk, now) {
			return nil
		}
		t.findTasks(sweep, j.WorkDir, j.UID, now)
		if id, ok = t.tasks[k]; !ok {
			t.failedResolve(rk, now)
			return nil
		}
	}
	e := t.entries[id]
	if e == nil || e.spec == nil || e.sweep != sweep || e.uid != j.UID {
		return nil
	}
	return e
}

// resultWait is how long after a job ended without a result.json the
// tracker keeps looking for one while Slurm still lists the job.
const resultWait = 2 * time.Minute

// Lines that cannot be attributed are retried after 1 s, 2 s, 4 s, ... and
// then every resolveRetry, not every tick. The first retries are quick: a
// new sweep's tasks are listed by Slurm a moment before submit has written
// their Slurm ids into their job dirs.
const resolveRetry = 30 * time.Second

// unresolvedLine is when a line last failed to be attributed, and how
// many times it has.
type unresolvedLine struct {
	at    time.Time
	tries int
}

func (u unresolvedLine) retryAt() time.Time {
	wait := resolveRetry
	if u.tries >= 1 && u.tries <= 5 {
		wait = min(resolveRetry, time.Second<<(u.tries-1))
	}
	return u.at.Add(wait)
}

// resolveKey is a line that could not be attributed: the ferry id of its
// comment (a job's or a sweep's) and its Slurm id. Both, because Slurm
// reuses its ids: a new job's line is not held back by an old failure.
type resolveKey struct {
	ferry job.ID
	slurm string
}

func (t *Tracker) tryResolve(k resolveKey, now time.Time) bool {
	u, failed := t.unresolved[k]
	return !failed || !now.Before(u.retryAt())
}

func (t *Tracker) failedResolve(k resolveKey, now time.Time) {
	if len(t.unresolved) > 100000 {
		clear(t.unresolved)
	}
	u := t.unresolved[k]
	t.unresolved[k] = unresolvedLine{at: now, tries: u.tries + 1}
}

// listed updates a job that is in the listing.
func (t *Tracker) listed(e *entry, j *slurm.Job, at, now time.Time) {
	e.inSlurm, e.missingSince, e.resRead = true, time.Time{}, false
	k := keyOf(j)
	src := store.SourceSqueue
	if e.cur != nil && k == e.line {
		// Nothing Slurm says changed. A job Slurm ended from outside
		// (scancel, time limit) gets its sandbox's record a moment later:
		// look for it for a while.
		if !e.cur.State.Terminal() || (e.res != nil && e.res.State.Terminal()) || j.Nodes == "" || now.Sub(e.decidedAt) > resultWait {
			return // (a job that never got a node has no sandbox to write one)
		}
		if t.readResult(e); e.res == nil || !e.res.State.Terminal() {
			return
		}
		src = store.SourceResult
	}
	first := e.cur == nil || e.line == lineKey{}
	e.line, e.slurmID = k, j.ID
	e.estStart, e.priority = j.EstStart, j.Priority
	if j.ArrayTaskID >= 0 {
		e.arrayIndex = j.ArrayTaskID
	}
	st, reason := j.Observed()
	sv := job.SlurmView{Known: true, State: st, Reason: reason, Node: j.Nodes, Start: j.Start, End: j.End}
	// result.json is read when the job may have ended, not every tick.
	if first || st.Terminal() || st == job.Completing || e.cur.State == job.Running && st != job.Running {
		t.readResult(e)
	}
	status := job.Observe(e.spec, j.ID, sv, nil, e.res, now)
	if e.cur != nil && e.cur.State.Terminal() && !status.State.Terminal() {
		// An ended job is not taken back by a listing older than what
		// ended it, nor by Slurm's cleanup; a requeue shows as queued.
		if status.State == job.Completing || at.Before(e.decidedAt) {
			return
		}
	}
	t.set(e, status, at, src)
}

// missing updates a job that is not in the listing.
func (t *Tracker) missing(e *entry, at, now time.Time) {
	if e.inSlurm || e.missingSince.IsZero() {
		e.inSlurm, e.missingSince = false, at
	}
	if e.cur != nil && e.cur.State.Terminal() && e.resRead {
		return // ended, and nothing more to learn
	}
	if e.spec == nil {
		t.missingUnknown(e, now)
		return
	}
	if e.slurmID == "" {
		e.slurmID = e.files().slurmID()
	}
	t.readResult(e)
	e.resRead = true
	if e.res != nil && e.res.State.Terminal() {
		t.set(e, job.Observe(e.spec, e.slurmID, job.SlurmView{}, nil, e.res, now), at, store.SourceResult)
		return
	}
	if e.cur != nil && e.cur.State.Terminal() {
		return // Slurm said how it ended (cancelled while queued, ...)
	}
	if e.files().cancelRequested() {
		st := job.Observe(e.spec, e.slurmID, job.SlurmView{}, nil, nil, now)
		st.State, st.Reason = job.Cancelled, "cancelled before it started"
		t.set(e, st, at, store.SourceCancel)
		return
	}
	e.resRead = false // keep looking for a result until it is lost
	if now.Sub(e.missingSince) < t.o.LostAfter || now.Sub(e.spec.Submitted) < t.o.LostAfter {
		if e.cur == nil || e.cur.State == job.Unknown {
			st := job.Observe(e.spec, e.slurmID, job.SlurmView{}, nil, nil, now)
			st.State, st.Reason = job.Queued, "submitted"
			t.set(e, st, at, store.SourceScan)
		}
		return // maybe sbatch has not returned yet, or Slurm is catching up
	}
	// Gone from Slurm, past the grace period, no result. Slurm's accounting
	// may know how it ended: ask sacct on the next tick, then decide.
	if _, ok := t.o.Slurm.(Accounting); ok && e.slurmID != "" {
		if !e.acctAsk || t.acct == nil {
			e.acctAsk = true // asked in the next tick's fetch
			return
		}
		e.acctAsk = false
		if a, ok := t.acct[e.slurmID]; ok {
			st, reason := slurm.ObservedState(a.State, "")
			if st.Terminal() {
				obs := job.Observe(e.spec, e.slurmID, job.SlurmView{Known: true, ID: a.ID, State: st, Reason: reason, Start: a.Start, End: a.End}, nil, nil, now)
				obs.Reason += " (from Slurm's accounting: the job left the queue without a result.json)"
				e.resRead = true
				t.set(e, obs, at, store.SourceSacct)
				return
			}
		}
	}
	// Lost, with Observe's reason.
	lostAt := now
	if earliest := e.spec.Submitted.Add(job.LostAfter + time.Second); lostAt.Before(earliest) {
		lostAt = earliest
	}
	e.resRead = true
	t.set(e, job.Observe(e.spec, e.slurmID, job.SlurmView{}, nil, nil, lostAt), at, store.SourceLost)
}

// missingUnknown handles a job the store has but whose job dir the
// tracker cannot read (removed, or its spool was not scanned).
func (t *Tracker) missingUnknown(e *entry, now time.Time) {
	if e.pub == nil || e.pub.State.Terminal() || now.Sub(e.missingSince) < t.o.LostAfter {
		return
	}
	n := *e.pub
	n.State, n.Reason, n.Updated = job.Lost, "Slurm no longer knows this job and its job dir cannot be read", time.Time{}
	n.EstStart, n.Priority = time.Time{}, 0
	t.setJob(e, &n, now, store.SourceLost)
}

func (t *Tracker) readResult(e *entry) {
	if e.dir == "" {
		return
	}
	res, err := e.files().result()
	if err != nil {
		t.o.Log.Debug("result", "job", e.id, "err", err)
		return
	}
	if res != nil {
		e.res = res
	}
}

// set makes status the job's desired store state; src is the path that
// delivered it. A queued job that Slurm lists carries Slurm's estimated
// start and priority from the listing; any other job carries neither.
func (t *Tracker) set(e *entry, st job.Status, at time.Time, src store.Source) {
	n := &store.Job{
		ID: e.id, User: st.User, UID: e.uid, Project: st.Project, Name: st.Name, SlurmID: st.SlurmID,
		ArrayIndex: e.arrayIndex, State: st.State, Reason: st.Reason, ExitCode: st.ExitCode, Node: st.Node,
		Submitted: st.Submitted, Started: st.Started, Ended: st.Ended, Params: e.params,
		Dir: e.dir, Image: st.Image, Sweep: e.sweep,
	}
	if st.State == job.Queued && e.inSlurm {
		n.EstStart, n.Priority = e.estStart, e.priority
	}
	if e.sweep != "" && e.spec != nil && e.spec.Sweep != nil {
		n.TaskIndex = e.spec.Sweep.Index
	}
	if e.cur != nil {
		n.Metrics, n.MetricsOffset = e.cur.Metrics, e.cur.MetricsOffset
	} else if e.pub != nil {
		n.Metrics, n.MetricsOffset = e.pub.Metrics, e.pub.MetricsOffset
	}
	t.setJob(e, n, at, src)
}

// setJob makes n the job's desired store state. Its source is src when
// the state changes; otherwise the state stands as it came, and so does
// its source (a listing that only confirms what the hook said is no new
// source).
func (t *Tracker) setJob(e *entry, n *store.Job, at time.Time, src store.Source) {
	if at.After(e.decidedAt) {
		e.decidedAt = at
	}
	n.Source = src
	if prev := cmp.Or(e.cur, e.pub); prev != nil && prev.State == n.State {
		n.Source = prev.Source
	}
	if e.cur != nil && store.Equal(e.cur, n) {
		return
	}
	if !n.State.Terminal() {
		e.metricsDone = false
	}
	e.cur = n
	t.dirty[e.id] = e
}

// countStates exports how many jobs are in each state.
func (t *Tracker) countStates() {
	counts := make(map[job.State]int, len(job.States))
	for _, e := range t.entries {
		switch {
		case e.cur != nil:
			counts[e.cur.State]++
		case e.pub != nil:
			counts[e.pub.State]++
		}
	}
	t.health.states = counts
	t.health.jobs = len(t.entries)
	t.o.Metrics.jobs(counts)
}
