package tracker

import (
	"errors"
	"fmt"
	"io/fs"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

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
	if sweep != "" && e.slurmID != "" {
		t.bySlurm[e.slurmID] = id
	}
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
					if e.slurmID = e.files().slurmID(); e.slurmID != "" {
						t.bySlurm[e.slurmID] = e.id
					}
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
		if e.slurmID != "" && t.bySlurm[e.slurmID] == id {
			delete(t.bySlurm, e.slurmID)
		}
	}
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
