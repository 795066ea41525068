package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// The node-local scratch root (/var/tmp/ferry) is world-writable and
// sticky; each run unpacks its bundle into <root>/<ferry id>.<random>,
// owned by the job's user. `ferry sandbox run` removes it when it ends, but
// a batch script killed by SIGKILL cannot, so the agent removes a run's
// scratch dir when the run ends and the epilog removes whatever of a job
// is left. Both do it as root, in a directory users write to: they never
// follow a symlink (os.Root confines every step to the scratch root, and
// RemoveAll opens nothing below the top without O_NOFOLLOW), and remove
// only a directory or a symlink itself, owned by the job's user.

// removeScratchEntry removes name in the scratch root when it is a
// directory owned by uid (with everything in it) or a symlink owned by uid
// (the link, never what it points to). It reports whether it removed
// anything; an entry that is gone already is no error.
func removeScratchEntry(root *os.Root, name string, uid int) (bool, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return false, fmt.Errorf("scratch entry %q is not a name in the scratch dir", name)
	}
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != uid {
		return false, nil // not this job's
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		err = root.Remove(name)
	case fi.IsDir():
		err = root.RemoveAll(name)
	default:
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("remove scratch %s: %w", name, err)
	}
	return err == nil, nil
}

// RemoveScratch removes every scratch dir of ferry job id (the entries
// <scratchRoot>/<id>.*) that uid owns, and returns the names it removed.
// The epilog calls it, through the agent or directly when the agent is
// down.
func RemoveScratch(scratchRoot string, id job.ID, uid int) ([]string, error) {
	if _, err := job.ParseID(string(id)); err != nil || scratchRoot == "" {
		return nil, fmt.Errorf("remove scratch of job %q in %q: not a ferry job id or no scratch dir", id, scratchRoot)
	}
	root, err := os.OpenRoot(scratchRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("remove scratch: %w", err)
	}
	defer root.Close()
	dir, err := root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("remove scratch: %w", err)
	}
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return nil, fmt.Errorf("remove scratch: list %s: %w", scratchRoot, err)
	}
	slices.Sort(names)
	var removed []string
	var errs []error
	for _, n := range names {
		if !strings.HasPrefix(n, string(id)+".") {
			continue
		}
		ok, err := removeScratchEntry(root, n, uid)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			removed = append(removed, n)
		}
	}
	return removed, errors.Join(errs...)
}

// removeRunScratch removes one run's scratch dir, which the policy checked
// to lie directly in the scratch root and to belong to uid.
func removeRunScratch(d runDirs) (bool, error) {
	if d.scratchRoot == "" || d.scratchName == "" {
		return false, nil
	}
	root, err := os.OpenRoot(d.scratchRoot)
	if err != nil {
		return false, fmt.Errorf("remove scratch: %w", err)
	}
	defer root.Close()
	return removeScratchEntry(root, d.scratchName, d.uid)
}
