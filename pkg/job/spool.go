package job

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Spool is a user's spool root, the parent of their job dirs.
type Spool struct{ Root string }

// Dirs lists the job dirs in the spool, newest first. Entries that are not
// job dirs (temp dirs of a submit in flight, stray files) are skipped.
func (s Spool) Dirs() ([]Dir, error) {
	ents, err := os.ReadDir(s.Root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Dir
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if id, err := ParseID(e.Name()); err != nil || string(id) != e.Name() {
			continue // not a job dir ferry made (ids are lowercase)
		}
		out = append(out, DirFor(s.Root, ID(e.Name())))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() > out[j].ID() })
	return out, nil
}

// ReadSlurmID returns the Slurm job id recorded after sbatch, or "".
func ReadSlurmID(d Dir) string {
	b, err := os.ReadFile(d.SlurmID())
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Resolve finds one job dir by ferry id, unique id prefix, or Slurm job id.
func (s Spool) Resolve(ref string) (Dir, error) {
	ref = strings.ToLower(strings.TrimSpace(ref))
	if ref == "" {
		return "", fmt.Errorf("empty job id: %w", ErrNotFound)
	}
	if strings.ContainsAny(ref, `/\`) || ref == "." || ref == ".." {
		return "", fmt.Errorf("invalid job id %q: %w", ref, ErrNotFound)
	}
	if id, err := ParseID(ref); err == nil { // a whole id: no need to list the spool
		d := DirFor(s.Root, id)
		if fi, err := os.Stat(d.Path()); err == nil && fi.IsDir() {
			return d, nil
		}
	}
	dirs, err := s.Dirs()
	if err != nil {
		return "", err
	}
	if isDigits(ref) {
		for _, d := range dirs {
			if ReadSlurmID(d) == ref {
				return d, nil
			}
		}
	}
	var matches []Dir
	for _, d := range dirs {
		if strings.HasPrefix(string(d.ID()), ref) {
			matches = append(matches, d)
		}
	}
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("no job %q in %s: %w", ref, s.Root, ErrNotFound)
	case 1:
		return matches[0], nil
	default:
		return "", fmt.Errorf("%q matches %d jobs (%s, %s, …): give more characters: %w", ref, len(matches), matches[0].ID().Short(), matches[1].ID().Short(), ErrAmbiguous)
	}
}

// Within reports whether path lies inside the spool root.
func (s Spool) Within(path string) bool {
	rel, err := filepath.Rel(s.Root, path)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}
