package tracker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// resolve reads the job dir at path for job id: the dir must be owned by
// the uid that spec.json names, and spec.json must be this job's.
func (t *Tracker) resolve(id job.ID, path string) (*entry, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || filepath.Base(path) != string(id) {
		return nil, fmt.Errorf("%q is not job %s's dir", path, id)
	}
	uid, err := dirOwner(path)
	if err != nil {
		return nil, err
	}
	d := dirFiles{path: path, uid: uid}
	spec, sweep, err := d.spec()
	if err != nil {
		return nil, err
	}
	if spec.ID != id {
		return nil, fmt.Errorf("%s holds the spec of job %s", path, spec.ID)
	}
	if spec.UID != uid {
		return nil, fmt.Errorf("%s is owned by uid %d, its spec names uid %d", path, uid, spec.UID)
	}
	e := t.entry(id)
	if e.spec != nil && e.dir != path {
		return nil, fmt.Errorf("job %s is already known in %s", id, e.dir)
	}
	e.dir, e.uid, e.spec, e.sweep, e.params = path, uid, spec, sweep, paramsJSON(spec)
	if sweep != "" && e.slurmID == "" {
		e.slurmID = d.slurmID()
	}
	t.indexTask(e)
	t.roots[filepath.Dir(path)] = true
	return e, nil
}

// scan reads every spool root: the configured globs and the roots learned
// from job dirs. New job dirs become entries; a sweep task that got its
// Slurm id since is indexed; a finished job whose dir is gone is removed.
func (t *Tracker) scan() {
	now := t.o.Now()
	t.lastScan = now
	roots := map[string]bool{}
	for _, g := range t.o.Spools {
		matches, err := filepath.Glob(g)
		if err != nil {
			t.o.Log.Warn("spool glob", "glob", g, "err", err)
			continue
		}
		for _, m := range matches {
			roots[m] = true
		}
	}
	for r := range t.roots {
		roots[r] = true
	}
	t.scanRoots(roots, true)
}

// scanUser reads uid's spool roots (the default one in its home, and
// those seen so far that uid owns): a sweep task the tracker does not
// know yet is there.
func (t *Tracker) scanUser(uid int) {
	roots := map[string]bool{}
	if home := homeOf(uid); home != "" {
		roots[filepath.Join(home, ".ferry", "jobs")] = true
	}
	for r := range t.roots {
		var st syscall.Stat_t
		if syscall.Stat(r, &st) == nil && int(st.Uid) == uid {
			roots[r] = true
		}
	}
	t.scanRoots(roots, false)
}

// scanRoots reads the given spool roots; with removals, a finished job
// whose dir under one of them is gone is removed from the store.
func (t *Tracker) scanRoots(roots map[string]bool, removals bool) {
	for _, e := range t.entries {
		if e.spec == nil && e.dir != "" {
			if _, err := t.resolve(e.id, e.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.o.Log.Debug("job dir", "job", e.id, "err", err)
			}
		}
	}
	present := map[job.ID]bool{}
	for root := range roots {
		dirs, err := job.Spool{Root: root}.Dirs()
		if err != nil {
			t.o.Log.Debug("spool", "root", root, "err", err)
			continue
		}
		for _, d := range dirs {
			present[d.ID()] = true
			e := t.entries[d.ID()]
			if e != nil && e.spec != nil {
				if e.sweep != "" && e.slurmID == "" {
					e.slurmID = e.files().slurmID()
					t.indexTask(e)
				}
				continue
			}
			if _, err := t.resolve(d.ID(), d.Path()); err != nil {
				t.o.Log.Debug("job dir", "dir", d.Path(), "err", err)
			}
		}
		t.roots[root] = true
	}
	if !removals {
		return
	}
	// A job dir removed (ferry rm) after the job ended: drop the job.
	for id, e := range t.entries {
		if e.spec == nil || present[id] || e.inSlurm || !roots[filepath.Dir(e.dir)] {
			continue
		}
		if _, err := dirOwner(e.dir); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if e.cur != nil && !e.cur.State.Terminal() {
			continue
		}
		t.removed = append(t.removed, e)
		delete(t.entries, id)
		delete(t.dirty, id)
		if k := (taskKey{e.sweep, e.slurmID}); e.sweep != "" && t.tasks[k] == id {
			delete(t.tasks, k)
		}
	}
}

// maxSweepBytes bounds the sweep record read (a task's entry, params
// included, is a few hundred bytes).
const maxSweepBytes = 64 << 20

// findTasks looks for the tasks of a sweep that a line or a hook event
// names but the tracker has not indexed: a sweep submitted since the last
// scan, or one that reuses the Slurm ids of an older sweep. It reads the
// sweep's dir (the array's work dir), at most once a second per sweep;
// when that is not where ferry puts a sweep, uid's spools.
func (t *Tracker) findTasks(sweep job.ID, workDir string, uid int, now time.Time) {
	if now.Sub(t.sweepScans[sweep]) < time.Second {
		return
	}
	if len(t.sweepScans) > 10000 {
		clear(t.sweepScans)
	}
	t.sweepScans[sweep] = now
	err := t.scanSweep(sweep, workDir, uid)
	if err == nil {
		return
	}
	t.o.Log.Debug("sweep dir", "sweep", sweep, "dir", workDir, "err", err)
	if now.Sub(t.lastMiss) >= time.Second {
		t.lastMiss = now
		t.scanUser(uid)
	}
}

// scanSweep reads the record of sweep in its dir (<spool>/.sweeps/<id>,
// owned by uid) and indexes its tasks: the job dirs beside the sweep's
// that the tracker does not know yet are read, and known tasks without a
// Slurm id read theirs. Only the spool the sweep is in is looked at,
// whatever paths the record holds.
func (t *Tracker) scanSweep(sweep job.ID, dir string, uid int) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || filepath.Base(dir) != string(sweep) ||
		filepath.Base(filepath.Dir(dir)) != job.SweepsDir {
		return fmt.Errorf("%q is not the dir of sweep %s", dir, sweep)
	}
	data, err := readIn(dir, uid, job.SweepFile, maxSweepBytes)
	if err != nil {
		return err
	}
	var rec struct {
		Tasks []struct {
			ID string `json:"id"`
		} `json:"tasks"`
		Arrays []job.SweepArray `json:"arrays"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(dir, job.SweepFile), err)
	}
	spool := filepath.Dir(filepath.Dir(dir))
	for _, task := range rec.Tasks {
		id, err := job.ParseID(task.ID)
		if err != nil || string(id) != task.ID {
			continue
		}
		e := t.entries[id]
		if e == nil || e.spec == nil {
			var err error
			if e, err = t.resolve(id, job.DirFor(spool, id).Path()); err != nil {
				t.o.Log.Debug("job dir", "sweep", sweep, "job", id, "err", err)
				continue
			}
		}
		if e.sweep != "" && e.slurmID == "" {
			e.slurmID = e.files().slurmID()
		}
		if e.sweep == sweep && e.slurmID == "" && e.spec.Sweep != nil {
			// The task's slurm_id file is a hint (lost in a crash, or not
			// written yet): the sweep's record says it too.
			e.slurmID = job.TaskSlurmID(rec.Arrays, e.spec.Sweep.Index)
		}
		t.indexTask(e)
	}
	return nil
}

var homes sync.Map // uid -> home dir

// homeOf returns the home dir of uid, or "".
func homeOf(uid int) string {
	if uid < 0 {
		return ""
	}
	if h, ok := homes.Load(uid); ok {
		return h.(string)
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return ""
	}
	homes.Store(uid, u.HomeDir)
	return u.HomeDir
}
