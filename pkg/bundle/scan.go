package bundle

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// FileSize is one regular file of a project and its size in bytes.
type FileSize struct {
	Path string // slash-separated, relative to the project dir
	Size int64
}

// entry is one thing Pack writes: a directory, a regular file or a symlink.
type entry struct {
	rel   string      // slash-separated, relative to the project dir
	mode  fs.FileMode // type bits and permissions, from lstat
	size  int64       // regular files only
	mtime time.Time
	link  string // symlink target
	// change is what else identifies this version of the file: on Unix its
	// inode and ctime, which change with any write and cannot be set back.
	change [2]int64
}

// SkipFunc is told about each path Pack leaves out although .ferryignore
// does not ask for it: sockets, devices, fifos, and symlinks that point
// outside the project (Unpack would refuse them).
type SkipFunc func(path, reason string)

type walker struct {
	root    string
	ign     *ignorer
	onSkip  SkipFunc
	entries []entry
}

// scan lists, in a deterministic order, what Pack would write for dir. It
// only stats files; nothing is read but .ferryignore and symlink targets.
func scan(ctx context.Context, dir string, onSkip SkipFunc) ([]entry, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("project dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("project dir %s is not a directory", dir)
	}
	ign, err := loadIgnore(dir)
	if err != nil {
		return nil, err
	}
	if onSkip == nil {
		onSkip = func(string, string) {}
	}
	w := &walker{root: dir, ign: ign, onSkip: onSkip}
	if _, err := w.walk(ctx, "", nil, false); err != nil {
		return nil, err
	}
	return w.entries, nil
}

// walk appends the entries below rel and reports whether it appended any.
func (w *walker) walk(ctx context.Context, rel string, parts []string, dirExcluded bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	des, err := os.ReadDir(filepath.Join(w.root, filepath.FromSlash(rel)))
	if err != nil {
		return false, fmt.Errorf("scan %s: %w", displayPath(rel), err)
	}
	start := len(w.entries)
	for _, de := range des {
		name := de.Name()
		if name == ".git" {
			continue
		}
		childRel := path.Join(rel, name)
		childParts := append(parts[:len(parts):len(parts)], name)
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since ReadDir
		}
		if err != nil {
			return false, fmt.Errorf("scan %s: %w", childRel, err)
		}
		mode := fi.Mode()
		excluded := w.ign.excluded(childParts, mode.IsDir(), dirExcluded)
		e := entry{rel: childRel, mode: mode, mtime: fi.ModTime(), change: changeStamp(fi)}
		switch {
		case mode.IsDir():
			if excluded && !w.ign.mayReinclude(childParts) {
				continue
			}
			idx := len(w.entries)
			w.entries = append(w.entries, e)
			kept, err := w.walk(ctx, childRel, childParts, excluded)
			if err != nil {
				return false, err
			}
			if excluded && !kept {
				w.entries = w.entries[:idx]
			}
		case excluded:
			continue
		case mode.IsRegular():
			e.size = fi.Size()
			w.entries = append(w.entries, e)
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(filepath.Join(w.root, filepath.FromSlash(childRel)))
			if err != nil {
				return false, fmt.Errorf("scan %s: %w", childRel, err)
			}
			if reason := checkLinkTarget(childRel, target); reason != "" {
				w.onSkip(childRel, "symlink "+reason)
				continue
			}
			e.link = target
			w.entries = append(w.entries, e)
		default:
			w.onSkip(childRel, "special file ("+mode.Type().String()+")")
		}
	}
	return len(w.entries) > start, nil
}

func displayPath(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// Scan walks dir as Pack would, without reading any file, and returns the
// regular files Pack would include, biggest first, and their total size.
func Scan(ctx context.Context, dir string) (files []FileSize, total int64, err error) {
	entries, err := scan(ctx, dir, nil)
	if err != nil {
		return nil, 0, err
	}
	files, total = regularFiles(entries)
	sortBiggest(files)
	return files, total, nil
}

func regularFiles(entries []entry) ([]FileSize, int64) {
	var files []FileSize
	var total int64
	for _, e := range entries {
		if e.mode.IsRegular() {
			files = append(files, FileSize{Path: e.rel, Size: e.size})
			total += e.size
		}
	}
	return files, total
}

func sortBiggest(files []FileSize) {
	slices.SortFunc(files, func(a, b FileSize) int {
		if c := cmp.Compare(b.Size, a.Size); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
}

// TooBigError is returned by Pack, before anything is written, when the
// project's content exceeds Options.MaxBytes.
type TooBigError struct {
	Total, Max int64
	Biggest    []FileSize // up to 3, biggest first
}

func (e *TooBigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "project is %s, over the %s cap", FormatBytes(e.Total), FormatBytes(e.Max))
	if len(e.Biggest) > 0 {
		b.WriteString("; biggest: ")
		for i, f := range e.Biggest {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s (%s)", f.Path, FormatBytes(f.Size))
		}
		b.WriteString(" — add them to " + IgnoreFile + " or ask for a larger cap")
	} else {
		b.WriteString(" — add large files to " + IgnoreFile + " or ask for a larger cap")
	}
	return b.String()
}

func newTooBigError(files []FileSize, total, max int64) *TooBigError {
	files = slices.Clone(files)
	sortBiggest(files)
	return &TooBigError{Total: total, Max: max, Biggest: files[:min(3, len(files))]}
}

// FormatBytes renders n in binary units for people: "512 B", "1.2 GiB",
// "800 MiB". Values under 10 of a unit keep one decimal.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i := -1
	for math.Abs(v) >= unit-0.5 && i < len(units)-1 {
		v /= unit
		i++
	}
	s := fmt.Sprintf("%.0f", v)
	if v < 10 && v > -10 {
		s = strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0")
	}
	return s + " " + units[i]
}
