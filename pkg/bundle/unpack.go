package bundle

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// UnpackOptions tune Unpack.
type UnpackOptions struct {
	// MaxBytes caps the total bytes of regular files extracted (a guard
	// against decompression bombs); 0 means no cap.
	MaxBytes int64
	// MaxEntries caps the number of entries; 0 means no cap.
	MaxEntries int
	// WantHash, if set, is the Info.Hash Pack reported: Unpack fails if the
	// tar stream does not hash to it. The check comes at the end, so on
	// failure dest holds what was extracted.
	WantHash string
}

// ErrLimit is wrapped by Unpack's error when a bundle exceeds a cap in
// UnpackOptions.
var ErrLimit = errors.New("bundle exceeds limit")

// UnsafeEntryError is returned by Unpack for an entry it refuses to
// extract because it could reach outside the destination or is a kind of
// file a bundle never holds.
type UnsafeEntryError struct {
	Name   string // as written in the archive
	Reason string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("refusing bundle entry %q: %s", e.Name, e.Reason)
}

const (
	maxDecoderWindow = 64 << 20 // Pack uses 8 MiB at most
	maxTrailing      = 64 << 10 // bytes allowed after the tar end marker
	dirPermOwner     = fs.FileMode(0o700)
)

// Unpack extracts a bundle written by Pack into dest, which must exist.
//
// Whatever the archive holds, nothing is created or written outside dest:
// all file operations go through an os.Root on dest, and Unpack refuses,
// with an *UnsafeEntryError naming the entry, absolute paths, ".."
// components, symlinks that are absolute or climb out of dest, entries
// whose parent is a symlink (writing through a symlink), hard links,
// devices and fifos. Files get the archive's permission bits masked with
// 0777 (never setuid, setgid or sticky); directories also keep owner rwx so
// the tree can be cleaned up. Everything is owned by the caller.
//
// On error dest may hold a partial extraction; the caller removes it.
func Unpack(ctx context.Context, r io.Reader, dest string, opts UnpackOptions) error {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	dec, err := zstd.NewReader(r,
		zstd.WithDecoderMaxWindow(maxDecoderWindow),
		zstd.WithDecoderMaxMemory(maxDecoderWindow*2),
		zstd.WithDecoderConcurrency(1)) // synchronous: no goroutines to leak, deterministic
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer dec.Close()

	var stream io.Reader = bufio.NewReaderSize(dec, 64<<10)
	var h hash.Hash
	if opts.WantHash != "" {
		h = sha256.New()
		stream = io.TeeReader(stream, h)
	}
	x := &extractor{root: root, opts: opts, verified: map[string]bool{}}
	if err := x.extract(ctx, tar.NewReader(stream)); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	if h != nil {
		// Pack hashed the whole tar stream, end marker included.
		n, err := io.Copy(io.Discard, io.LimitReader(stream, maxTrailing+1))
		if err != nil {
			return fmt.Errorf("unpack: %w", err)
		}
		if n > maxTrailing {
			return fmt.Errorf("unpack: %w: data after the end of the archive", ErrLimit)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != opts.WantHash {
			return fmt.Errorf("unpack: bundle hash is %s, want %s: the bundle is damaged", got, opts.WantHash)
		}
	}
	return nil
}

type dirMeta struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
}

type extractor struct {
	root     *os.Root
	opts     UnpackOptions
	verified map[string]bool // directories known to be real dirs in dest
	dirs     []dirMeta       // modes and mtimes to set once all is written
	bytes    int64
	entries  int
	buf      []byte
}

func (x *extractor) extract(ctx context.Context, tr *tar.Reader) error {
	x.buf = make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		x.entries++
		if x.opts.MaxEntries > 0 && x.entries > x.opts.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrLimit, x.opts.MaxEntries)
		}
		if err := x.entry(ctx, hdr, tr); err != nil {
			return err
		}
	}
	// Deepest first, though with owner rwx kept the order does not matter.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.root.Chmod(d.name, d.mode); err != nil {
			return err
		}
		if err := x.root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	unsafe := func(reason string) error { return &UnsafeEntryError{Name: hdr.Name, Reason: reason} }
	name, reason := cleanName(hdr.Name)
	if reason != "" {
		return unsafe(reason)
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeLink:
		return unsafe("hard links are not allowed")
	case tar.TypeChar, tar.TypeBlock:
		return unsafe("device files are not allowed")
	case tar.TypeFifo:
		return unsafe("fifos are not allowed")
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink:
	default:
		return unsafe(fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil // the destination itself
		}
		return unsafe("not a directory but names the destination")
	}
	if err := x.parents(hdr.Name, path.Dir(name)); err != nil {
		return err
	}
	existing, err := x.root.Lstat(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if existing != nil && existing.Mode()&fs.ModeSymlink != 0 {
		return unsafe("would write through a symlink")
	}
	mtime := hdr.ModTime

	switch hdr.Typeflag {
	case tar.TypeDir:
		if existing == nil {
			if err := x.root.Mkdir(name, dirPermOwner); err != nil {
				return err
			}
		} else if !existing.IsDir() {
			return unsafe("a non-directory with this name was already extracted")
		}
		x.verified[name] = true
		x.dirs = append(x.dirs, dirMeta{name, fs.FileMode(hdr.Mode)&0o777 | dirPermOwner, mtime})
		return nil

	case tar.TypeSymlink:
		if reason := checkLinkTarget(name, hdr.Linkname); reason != "" {
			return unsafe("symlink " + reason)
		}
		if existing != nil {
			return unsafe("a file with this name was already extracted")
		}
		return x.root.Symlink(hdr.Linkname, name)

	default: // regular file
		if existing != nil && !existing.Mode().IsRegular() {
			return unsafe("a non-file with this name was already extracted")
		}
		x.bytes += hdr.Size
		if x.opts.MaxBytes > 0 && x.bytes > x.opts.MaxBytes {
			return fmt.Errorf("%w: content is over the %s cap at %q", ErrLimit, FormatBytes(x.opts.MaxBytes), hdr.Name)
		}
		return x.file(ctx, name, fs.FileMode(hdr.Mode)&0o777, mtime, r)
	}
}

func (x *extractor) file(ctx context.Context, name string, perm fs.FileMode, mtime time.Time, r io.Reader) error {
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, x.buf)
		if n > 0 {
			if _, err := f.Write(x.buf[:n]); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read archive: %w", rerr)
		}
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return x.root.Chtimes(name, mtime, mtime)
}

// parents makes sure every directory of dir (clean, relative) is a real
// directory in dest, creating missing ones, and refuses a symlink among them.
func (x *extractor) parents(entryName, dir string) error {
	if dir == "." || x.verified[dir] {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		if x.verified[p] {
			continue
		}
		fi, err := x.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return &UnsafeEntryError{Name: entryName, Reason: fmt.Sprintf("parent %q is a symlink; writing through it is not allowed", p)}
		case !fi.IsDir():
			return &UnsafeEntryError{Name: entryName, Reason: fmt.Sprintf("parent %q is not a directory", p)}
		}
		x.verified[p] = true
	}
	return nil
}

// cleanName turns an archive name into a clean relative slash path, or
// gives the reason it is unsafe. "." stands for the destination itself.
func cleanName(name string) (string, string) {
	if name == "" {
		return "", "empty name"
	}
	if strings.HasPrefix(name, "/") {
		return "", "absolute path"
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", `".." in path`
		}
	}
	return path.Clean(name), ""
}

// checkLinkTarget gives the reason a symlink at name (clean, relative to the
// bundle root) pointing at target could lead outside the root, or "".
//
// A target may climb with leading ".." no higher than the link's own
// directory, then only descend. A ".." after a name is refused even when it
// looks harmless, because the name may itself be a symlink ("s/.." with s
// pointing at "." would climb out).
func checkLinkTarget(name, target string) string {
	if target == "" {
		return "has an empty target"
	}
	if strings.HasPrefix(target, "/") {
		return fmt.Sprintf("points to an absolute path (%s)", target)
	}
	up, named := 0, false
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			if named {
				return fmt.Sprintf("target %s has \"..\" after a name", target)
			}
			up++
		default:
			named = true
		}
	}
	if up > strings.Count(name, "/") {
		return fmt.Sprintf("points outside the bundle (%s)", target)
	}
	return ""
}
