package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// BindSource is a host directory a container gets: the directory Rel
// beneath the trusted directory Root, reached without following any
// symlink, and owned by UID.
type BindSource struct {
	Name     string // names the mount point: <mount root>/<container>/<Name>
	Target   string // where the container sees it
	Root     string // trusted: the caller's real home, the scratch root
	Rel      string // beneath Root; no component may be a symlink
	UID      int
	ReadOnly bool
}

// Path is the source's host path, for messages and logs.
func (s BindSource) Path() string { return filepath.Join(s.Root, s.Rel) }

// Binder pins a run's host directories before its container starts. The
// policy checks paths, but paths can change after the check (a user swaps
// their outputs dir for a symlink to /etc), and Docker resolves a bind
// source, following symlinks, only when the container starts. A Binder
// opens each directory once, checks what it opened, and gives Docker a path
// nobody but root can change that shows exactly that directory (the fix
// Kubernetes made for subPath, CVE-2017-1002101).
type Binder interface {
	// Bind pins srcs for the container called name and returns, in order,
	// the host paths to hand Docker as bind sources. A source that is not
	// a directory owned by its UID, or that is reached through a symlink,
	// is a *Refusal. On error nothing stays bound.
	Bind(name string, srcs []BindSource) ([]string, error)
	// Release undoes Bind. Releasing a name that is not bound is not an
	// error.
	Release(name string) error
	// Bound lists the container names that hold pinned directories.
	Bound() ([]string, error)
}

// DefaultMountRootDir holds one mount root per node: agents of several
// nodes may share a host (a test cluster) and each owns its own.
const DefaultMountRootDir = "/run/ferry/mnt"

// DefaultMountRoot is node's agent's mount root.
func DefaultMountRoot(node string) string {
	return filepath.Join(DefaultMountRootDir, strings.ReplaceAll(node, "/", "_"))
}

// MountBinder is the Binder of a root agent that shares its mount
// namespace with dockerd: it opens each source with openat2
// (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS from its root, or an O_NOFOLLOW
// walk on kernels before 5.6), checks the opened directory with fstat, and
// bind-mounts it through /proc/self/fd onto <Root>/<container>/<name>, a
// mount point in a root-only (0700) tree. Read-only sources are remounted
// read-only; every pinned mount is nosuid and nodev.
type MountBinder struct {
	Root string
}

func validMountName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// Bind implements Binder.
func (b *MountBinder) Bind(name string, srcs []BindSource) (_ []string, err error) {
	if !validMountName(name) {
		return nil, fmt.Errorf("bind: invalid container name %q", name)
	}
	if err := b.prepareRoot(); err != nil {
		return nil, err
	}
	dir := filepath.Join(b.Root, name)
	mkErr := os.Mkdir(dir, 0o700)
	if errors.Is(mkErr, os.ErrExist) {
		// left by a run the agent did not see end: nobody holds it
		if err := b.Release(name); err != nil {
			return nil, fmt.Errorf("bind: release leftover %s: %w", dir, err)
		}
		mkErr = os.Mkdir(dir, 0o700)
	}
	if mkErr != nil {
		return nil, fmt.Errorf("bind: %w", mkErr)
	}
	defer func() {
		if err != nil {
			_ = b.Release(name)
		}
	}()
	paths := make([]string, 0, len(srcs))
	seen := map[string]bool{}
	for _, s := range srcs {
		if !validMountName(s.Name) || seen[s.Name] {
			return nil, fmt.Errorf("bind: invalid or repeated mount name %q", s.Name)
		}
		seen[s.Name] = true
		p, err := bindOne(filepath.Join(dir, s.Name), s)
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// prepareRoot makes the mount root: a directory (not a symlink) owned by
// the agent's user, mode 0700, below directories only root can change, so
// that nobody else can change what lies below it.
func (b *MountBinder) prepareRoot() error {
	if b.Root == "" || !filepath.IsAbs(b.Root) {
		return fmt.Errorf("bind: mount root %q is not an absolute path", b.Root)
	}
	if err := os.MkdirAll(b.Root, 0o700); err != nil {
		return fmt.Errorf("bind: mount root: %w", err)
	}
	euid := os.Geteuid()
	fi, err := os.Lstat(b.Root)
	if err != nil {
		return fmt.Errorf("bind: mount root: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != euid {
		return fmt.Errorf("bind: mount root %s is not a directory owned by uid %d", b.Root, euid)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(b.Root, 0o700); err != nil {
			return fmt.Errorf("bind: mount root: %w", err)
		}
	}
	// Its parents: root's, and writable by others only with the sticky
	// bit (as /tmp), so that no user can move the mount root away.
	real, err := filepath.EvalSymlinks(filepath.Dir(b.Root))
	if err != nil {
		return fmt.Errorf("bind: mount root: %w", err)
	}
	for d := real; ; d = filepath.Dir(d) {
		fi, err := os.Lstat(d)
		if err != nil {
			return fmt.Errorf("bind: mount root: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || (int(st.Uid) != euid && st.Uid != 0) || (fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0) {
			return fmt.Errorf("bind: mount root %s lies in %s, which users other than root can change", b.Root, d)
		}
		if d == "/" {
			return nil
		}
	}
}

// bindOne opens s safely and bind-mounts what it opened at mp.
func bindOne(mp string, s BindSource) (string, error) {
	fd, err := openBeneath(s.Root, s.Rel)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("bind: stat %s: %w", s.Path(), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return "", refuse("%s is not a directory", s.Path())
	}
	if int(st.Uid) != s.UID {
		return "", refuse("%s is not owned by uid %d", s.Path(), s.UID)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return "", fmt.Errorf("bind: statfs %s: %w", s.Path(), err)
	}
	if err := os.Mkdir(mp, 0o700); err != nil {
		return "", fmt.Errorf("bind: %w", err)
	}
	// Not MS_REC: what is mounted below the source stays out, as Docker's
	// non-recursive binds did.
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", fd), mp, "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("bind: mount %s at %s: %w", s.Path(), mp, err)
	}
	flags := uintptr(unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV) | keptFlags(int64(fs.Flags))
	if s.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("", mp, "", flags, ""); err != nil {
		return "", fmt.Errorf("bind: remount %s: %w", mp, err)
	}
	// The mount point shows the directory that was opened and checked.
	var got unix.Stat_t
	if err := unix.Lstat(mp, &got); err != nil || got.Dev != st.Dev || got.Ino != st.Ino {
		return "", fmt.Errorf("bind: %s does not show %s after mounting", mp, s.Path())
	}
	return mp, nil
}

// stNoSymFollow is statfs's ST_NOSYMFOLLOW (Linux 5.10), which x/sys/unix
// does not name.
const stNoSymFollow = 0x2000

// keptFlags are the source mount's flags a bind remount must repeat, or
// the kernel would clear them (a noexec /var/tmp stays noexec).
func keptFlags(st int64) uintptr {
	var f uintptr
	for _, m := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
		{stNoSymFollow, unix.MS_NOSYMFOLLOW},
	} {
		if st&m.st != 0 {
			f |= m.ms
		}
	}
	return f
}

// openBeneath opens the directory rel beneath root as an O_PATH fd,
// refusing any symlink on the way (the root included: it was resolved by
// the policy, so a symlink in it now is a swap) and any escape from root.
func openBeneath(root, rel string) (int, error) {
	fd, err := openat2Beneath(root, rel)
	if errors.Is(err, unix.ENOSYS) {
		return walkBeneath(root, rel)
	}
	return fd, err
}

func openat2Beneath(root, rel string) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	rootFD, err := unix.Openat2(unix.AT_FDCWD, root, &how)
	if err != nil {
		return -1, openError(root, root, err)
	}
	defer unix.Close(rootFD)
	how.Resolve |= unix.RESOLVE_BENEATH
	for range 3 {
		fd, err := unix.Openat2(rootFD, rel, &how)
		if errors.Is(err, unix.EAGAIN) { // a concurrent rename: try again
			continue
		}
		if err != nil {
			return -1, openError(filepath.Join(root, rel), root, err)
		}
		return fd, nil
	}
	return -1, fmt.Errorf("bind: open %s: %w", filepath.Join(root, rel), unix.EAGAIN)
}

// walkBeneath is openat2Beneath for kernels without openat2: one
// component at a time from /, none followed if it is a symlink, each
// checked to be a directory.
func walkBeneath(root, rel string) (int, error) {
	if !filepath.IsAbs(root) {
		return -1, fmt.Errorf("bind: root %q is not absolute", root)
	}
	const flags = unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Open("/", flags, 0)
	if err != nil {
		return -1, err
	}
	walk := func(path string) error {
		for _, c := range strings.Split(path, "/") {
			if c == "" || c == "." {
				continue
			}
			if c == ".." {
				return unix.EXDEV
			}
			next, err := unix.Openat(fd, c, flags, 0)
			if err != nil {
				return err
			}
			unix.Close(fd)
			fd = next
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				return err
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return unix.ENOTDIR
			}
		}
		return nil
	}
	if err := walk(root); err != nil {
		unix.Close(fd)
		return -1, openError(root, root, err)
	}
	if err := walk(rel); err != nil {
		unix.Close(fd)
		return -1, openError(filepath.Join(root, rel), root, err)
	}
	return fd, nil
}

// openError turns a failed safe open into what the user is told.
func openError(path, root string, err error) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("bind: open %s: %w", path, err)
	}
	switch errno {
	case unix.ELOOP:
		return refuse("%s: a component of the path is a symlink (not followed)", path)
	case unix.ENOTDIR:
		// O_NOFOLLOW|O_DIRECTORY on a symlink also lands here
		return refuse("%s: a component of the path is a symlink or not a directory", path)
	case unix.EXDEV:
		return refuse("%s leads out of %s", path, root)
	case unix.ENOENT:
		return refuse("%s: no such file or directory", path)
	}
	return &openErr{path: path, err: errno}
}

type openErr struct {
	path string
	err  error
}

func (e *openErr) Error() string { return fmt.Sprintf("bind: open %s: %v", e.path, e.err) }
func (e *openErr) Unwrap() error { return e.err }

// Release implements Binder: it detaches each mount point below the
// container's dir and removes the (then empty) directories. It never
// removes anything recursively: a mount point that stays mounted keeps its
// directory, and the error says so.
func (b *MountBinder) Release(name string) error {
	if !validMountName(name) {
		return fmt.Errorf("release: invalid container name %q", name)
	}
	dir := filepath.Join(b.Root, name)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	var errs []error
	for _, e := range entries {
		mp := filepath.Join(dir, e.Name())
		for range 8 { // a point mounted twice needs two unmounts
			err := unix.Unmount(mp, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				break // not (any more) a mount point
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("release: unmount %s: %w", mp, err))
				break
			}
		}
		if err := os.Remove(mp); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("release: %w", err))
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("release: %w", err))
	}
	return errors.Join(errs...)
}

// Bound implements Binder.
func (b *MountBinder) Bound() ([]string, error) {
	entries, err := os.ReadDir(b.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list mount root: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

var _ Binder = (*MountBinder)(nil)
