package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// Lister is the slice of the Slurm client observe needs.
type Lister interface {
	Jobs(ctx context.Context, q slurm.Query) ([]slurm.Job, error)
}

// QueueLister is what places queued jobs in the queue: every user's
// pending jobs. A Lister that is not one leaves the places out.
type QueueLister interface {
	Pending(ctx context.Context) ([]slurm.Pending, error)
}

// placeQueued fills the queue place of the queued jobs among sts, with one
// listing of the pending jobs, and only when one of them is queued in
// Slurm. A listing that fails leaves the places out: they are a hint.
func (o *Observer) placeQueued(ctx context.Context, sts []job.Status) {
	ql, ok := o.Slurm.(QueueLister)
	if !ok {
		return
	}
	var pending []slurm.Pending
	listed := false
	for i := range sts {
		st := &sts[i]
		if st.State != job.Queued || st.SlurmID == "" {
			continue
		}
		if !listed {
			listed = true
			var err error
			if pending, err = ql.Pending(ctx); err != nil {
				return
			}
		}
		st.QueuePosition, st.QueueLength = slurm.QueuePlace(pending, st.SlurmID)
	}
}

// Observer reads one user's jobs.
type Observer struct {
	Spool job.Spool
	Slurm Lister
	User  string // squeue -u; "" = all
	Now   func() time.Time
}

func (o *Observer) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// views is one squeue listing, indexed the two ways ferry finds its jobs.
type views struct {
	byFerry map[job.ID]job.SlurmView // plain jobs, by the ferry id in the comment
	byTask  map[string]taskView      // array tasks ("123_4"), whose comment names the sweep
}

type taskView struct {
	sweep job.ID
	view  job.SlurmView
}

// lookup finds a job's line in the listing, never by Slurm id alone (Slurm
// reuses ids): a sweep task's line must also name its sweep.
func (v views) lookup(spec *job.Spec, slurmID string) job.SlurmView {
	if spec.Sweep != nil {
		if t, ok := v.byTask[slurmID]; ok && t.sweep == spec.Sweep.ID {
			return t.view
		}
		return job.SlurmView{}
	}
	return v.byFerry[spec.ID]
}

// list asks Slurm once for the caller's jobs (or for the given ids).
func (o *Observer) list(ctx context.Context, ids []string) (views, error) {
	q := slurm.Query{User: o.User}
	if len(ids) > 0 {
		q = slurm.Query{JobIDs: ids}
	}
	jobs, err := o.Slurm.Jobs(ctx, q)
	if err != nil {
		return views{}, err
	}
	v := views{byFerry: make(map[job.ID]job.SlurmView, len(jobs)), byTask: map[string]taskView{}}
	for _, j := range jobs {
		id, ok := j.FerryID()
		if !ok || (o.User != "" && j.User != o.User) {
			continue // anyone may write any comment on their own jobs
		}
		st, reason := j.Observed()
		sv := job.SlurmView{Known: true, ID: j.ID, State: st, Reason: reason, Node: j.Nodes, Start: j.Start, End: j.End, EstStart: j.EstStart}
		if j.ArrayTaskID >= 0 {
			v.byTask[j.ID] = taskView{sweep: id, view: sv}
			continue
		}
		v.byFerry[id] = sv
	}
	return v, nil
}

func observeDir(d job.Dir, spec *job.Spec, v views, serr error, now time.Time, sweeps map[job.ID][]job.SweepArray) job.Status {
	res, _ := job.ReadResult(d)
	sid := job.SlurmIDOf(d, spec, sweeps)
	_, cerr := os.Stat(d.Cancel())
	return job.ObserveWithDesire(spec, sid, v.lookup(spec, sid), serr, res, cerr == nil, now)
}

// Status observes one job dir.
func (o *Observer) Status(ctx context.Context, d job.Dir) (job.Status, error) {
	spec, err := job.ReadSpec(d)
	if err != nil {
		return job.Status{}, fmt.Errorf("job %s: %w", d.ID(), err)
	}
	if _, err := job.ReadResult(d); err != nil {
		return job.Status{}, err
	}
	var v views
	var serr error
	if sid := job.SlurmIDOf(d, spec, nil); sid != "" {
		v, serr = o.list(ctx, []string{sid})
	} else if spec.Sweep == nil && !hasResult(d) {
		// No Slurm id recorded (yet, or lost in a crash): the caller's
		// listing finds the job by its comment.
		v, serr = o.list(ctx, nil)
	}
	sts := []job.Status{observeDir(d, spec, v, serr, o.now(), nil)}
	o.placeQueued(ctx, sts)
	return sts[0], nil
}

// Filter narrows List.
type Filter struct {
	Project string
	State   job.State
	Limit   int
}

// List observes every job in the spool, newest first, with one squeue call.
func (o *Observer) List(ctx context.Context, f Filter) ([]job.Status, error) {
	dirs, err := o.Spool.Dirs()
	if err != nil {
		return nil, err
	}
	v, serr := o.list(ctx, nil)
	now := o.now()
	sweeps := map[job.ID][]job.SweepArray{}
	var out []job.Status
	for _, d := range dirs {
		spec, err := job.ReadSpec(d)
		if err != nil {
			continue // a dir being removed, or not ferry's
		}
		if f.Project != "" && spec.Project != f.Project {
			continue
		}
		st := observeDir(d, spec, v, serr, now, sweeps)
		if f.State != "" && st.State != f.State {
			continue
		}
		out = append(out, st)
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
	}
	o.placeQueued(ctx, out)
	return out, nil
}

// ShortIDs gives each job in the spool the shortest prefix of its id, at
// least Short's 10 characters, that tells it from the others: what a
// person sees and types. A sweep's tasks share their first 10 characters.
func (o *Observer) ShortIDs() (map[job.ID]string, error) {
	dirs, err := o.Spool.Dirs()
	if err != nil {
		return nil, err
	}
	ids := make([]job.ID, len(dirs))
	for i, d := range dirs {
		ids[i] = d.ID()
	}
	return job.ShortUnique(ids), nil
}

// WaitOptions tune Wait.
type WaitOptions struct {
	Follow     io.Writer     // copy the log here as it grows; nil = don't
	FollowPath string        // the file Follow follows; "" = the job's log
	Poll       time.Duration // result.json stat interval; default 50 ms
	Check      time.Duration // squeue interval; default 2 s
}

// Wait blocks until the job reaches a terminal state and returns it. The
// end is seen from result.json within one Poll; Slurm is asked every Check
// for jobs that end without one (cancelled while queued, lost).
func (o *Observer) Wait(ctx context.Context, d job.Dir, opt WaitOptions) (job.Status, error) {
	if opt.Poll <= 0 {
		opt.Poll = 50 * time.Millisecond
	}
	if opt.Check <= 0 {
		opt.Check = 2 * time.Second
	}
	var tail *Tail
	if opt.Follow != nil {
		tail = &Tail{Path: d.Log()}
		if opt.FollowPath != "" {
			tail.Path = opt.FollowPath
		}
	}
	drain := func() {
		if tail != nil {
			_, _ = tail.Copy(opt.Follow)
		}
	}
	lastCheck := time.Time{}
	t := time.NewTicker(opt.Poll)
	defer t.Stop()
	for {
		drain()
		if res, err := job.ReadResult(d); err == nil && res != nil && res.State.Terminal() {
			drain()
			return o.Status(ctx, d)
		}
		if time.Since(lastCheck) >= opt.Check {
			lastCheck = time.Now()
			st, err := o.Status(ctx, d)
			if err != nil {
				return st, err
			}
			if st.State.Terminal() {
				// Slurm says it is over; a result may still be landing.
				time.Sleep(opt.Poll)
				drain()
				return o.Status(ctx, d)
			}
		}
		select {
		case <-ctx.Done():
			return job.Status{}, ctx.Err()
		case <-t.C:
		}
	}
}

// Tail copies what was appended to a file since the last call.
type Tail struct {
	Path string
	off  int64
}

// Copy writes the file's new bytes to w. A missing file is not an error.
func (t *Tail) Copy(w io.Writer) (int64, error) {
	f, err := os.Open(t.Path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < t.off {
		t.off = 0 // truncated
	}
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.Copy(w, f)
	t.off += n
	return n, err
}

// ExitCode is the code `--wait` exits with for a finished job.
func ExitCode(st job.Status) int {
	switch st.State {
	case job.Succeeded:
		return 0
	case job.Cancelled:
		return 130
	case job.Timeout:
		return 124
	case job.OutOfMemory:
		return 137
	case job.Failed:
		if st.ExitCode != nil && *st.ExitCode > 0 && *st.ExitCode < 256 {
			return *st.ExitCode
		}
	}
	return 1
}

// Summary is a one-line description of a finished job for stderr.
func Summary(st job.Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s %s", st.ID.Short(), st.State)
	if st.Reason != "" {
		fmt.Fprintf(&b, ": %s", st.Reason)
	}
	if !st.Started.IsZero() && !st.Ended.IsZero() {
		fmt.Fprintf(&b, " (ran %s on %s)", st.Ended.Sub(st.Started).Round(10*time.Millisecond), st.Node)
	}
	return b.String()
}

func hasResult(d job.Dir) bool {
	_, err := os.Stat(d.Result())
	return err == nil
}
