package sandbox

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// requireMountPrivilege skips a test that mounts when not root, and fails
// it in CI, where it must run.
func requireMountPrivilege(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test mounts: run it as root")
	}
	t.Skip("needs root: bind-mounts in a temp dir")
}

// bindWorld is a user's home with a job's outputs dir, and a root-only
// mount root, as a MountBinder sees them.
type bindWorld struct {
	home, outputs, rel string
	binder             *MountBinder
}

func newBindWorld(t *testing.T) *bindWorld {
	t.Helper()
	requireMountPrivilege(t)
	w := &bindWorld{}
	var err error
	w.home, err = filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	w.rel = ".ferry/jobs/01jd8x3k5m7n9p1q3r5s7t9v2w/outputs"
	w.outputs = filepath.Join(w.home, w.rel)
	require.NoError(t, os.MkdirAll(w.outputs, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(w.outputs, "result.txt"), []byte("the job's own\n"), 0o600))
	w.binder = &MountBinder{Root: filepath.Join(t.TempDir(), "mnt", "w1")}
	// Registered after the temp dirs, so it runs before they are removed:
	// a mount left by a failed test must not take the dirs' removal into
	// its source.
	t.Cleanup(func() {
		names, _ := w.binder.Bound()
		for _, n := range names {
			assert.NoError(t, w.binder.Release(n), "release %s", n)
		}
	})
	return w
}

func (w *bindWorld) src(readOnly bool) BindSource {
	return BindSource{Name: "out", Target: "/out", Root: w.home, Rel: w.rel, UID: os.Getuid(), ReadOnly: readOnly}
}

// mountOptions returns the per-mount options of the mount at path, from
// /proc/self/mountinfo ("" when path is not a mount point).
func mountOptions(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	require.NoError(t, err)
	defer f.Close()
	opts := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 5 && fields[4] == path {
			opts = fields[5] // the last mount at path is the visible one
		}
	}
	require.NoError(t, sc.Err())
	return opts
}

func TestMountBinderPinsTheOpenedDir(t *testing.T) {
	tests := []struct {
		name     string
		readOnly bool
	}{
		{"writable, as /out", false},
		{"read-only, as /work", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newBindWorld(t)
			paths, err := w.binder.Bind("ferry-42-01jd8x3k", []BindSource{w.src(tt.readOnly)})
			require.NoError(t, err)
			mp := filepath.Join(w.binder.Root, "ferry-42-01jd8x3k", "out")
			require.Equal(t, []string{mp}, paths)

			// The mount root and the container's dir are root's alone.
			for _, d := range []string{w.binder.Root, filepath.Dir(mp)} {
				fi, err := os.Lstat(d)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), d)
				assert.EqualValues(t, 0, fi.Sys().(*syscall.Stat_t).Uid, d)
			}
			got, err := os.ReadFile(filepath.Join(mp, "result.txt"))
			require.NoError(t, err)
			assert.Equal(t, "the job's own\n", string(got))

			// The user swaps the checked dir for a symlink to a dir they
			// must not get (as if to /etc) after the check: the mount
			// point still shows the original dir.
			elsewhere := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(elsewhere, "shadow"), []byte("secret\n"), 0o600))
			moved := w.outputs + ".moved"
			require.NoError(t, os.Rename(w.outputs, moved))
			require.NoError(t, os.Symlink(elsewhere, w.outputs))

			got, err = os.ReadFile(filepath.Join(mp, "result.txt"))
			require.NoError(t, err)
			assert.Equal(t, "the job's own\n", string(got), "the mount point shows the dir that was opened")
			_, err = os.Stat(filepath.Join(mp, "shadow"))
			assert.ErrorIs(t, err, os.ErrNotExist, "the symlink's target is not visible")

			opts := mountOptions(t, mp)
			assert.Contains(t, strings.Split(opts, ","), "nosuid")
			assert.Contains(t, strings.Split(opts, ","), "nodev")
			err = os.WriteFile(filepath.Join(mp, "new.txt"), []byte("x"), 0o600)
			if tt.readOnly {
				assert.Contains(t, strings.Split(opts, ","), "ro")
				assert.ErrorIs(t, err, syscall.EROFS, "a read-only source is mounted read-only")
			} else {
				assert.Contains(t, strings.Split(opts, ","), "rw")
				require.NoError(t, err)
				got, err := os.ReadFile(filepath.Join(moved, "new.txt"))
				require.NoError(t, err, "a write lands in the original dir")
				assert.Equal(t, "x", string(got))
			}

			names, err := w.binder.Bound()
			require.NoError(t, err)
			assert.Equal(t, []string{"ferry-42-01jd8x3k"}, names)

			require.NoError(t, w.binder.Release("ferry-42-01jd8x3k"))
			assert.Empty(t, mountOptions(t, mp), "unmounted")
			_, err = os.Lstat(filepath.Dir(mp))
			assert.ErrorIs(t, err, os.ErrNotExist, "the mount points are removed")
			got, err = os.ReadFile(filepath.Join(moved, "result.txt"))
			require.NoError(t, err, "releasing never touches the user's files")
			assert.Equal(t, "the job's own\n", string(got))
			names, err = w.binder.Bound()
			require.NoError(t, err)
			assert.Empty(t, names)
			require.NoError(t, w.binder.Release("ferry-42-01jd8x3k"), "releasing twice is no error")
		})
	}
}

// refusalCases are sources a binder must refuse, each set up in a fresh
// world; reason is part of the refusal's message.
var refusalCases = []struct {
	name   string
	setup  func(t *testing.T, w *bindWorld, s *BindSource)
	reason string
}{
	{
		name: "outputs dir swapped for a symlink",
		setup: func(t *testing.T, w *bindWorld, s *BindSource) {
			require.NoError(t, os.Rename(w.outputs, w.outputs+".moved"))
			require.NoError(t, os.Symlink("/etc", w.outputs))
		},
		reason: "outputs: a component of the path is a symlink",
	},
	{
		name: "outputs dir swapped for a symlink to a dir the user owns",
		setup: func(t *testing.T, w *bindWorld, s *BindSource) {
			require.NoError(t, os.Rename(w.outputs, w.outputs+".moved"))
			require.NoError(t, os.Symlink(w.outputs+".moved", w.outputs))
		},
		reason: "a component of the path is a symlink",
	},
	{
		name: "a component of the path swapped for a symlink",
		setup: func(t *testing.T, w *bindWorld, s *BindSource) {
			jobs := filepath.Join(w.home, ".ferry", "jobs")
			other := filepath.Join(t.TempDir(), "jobs")
			require.NoError(t, os.Rename(jobs, other))
			require.NoError(t, os.Symlink(other, jobs))
		},
		reason: "a component of the path is a symlink",
	},
	{
		name: "the home itself swapped for a symlink",
		setup: func(t *testing.T, w *bindWorld, s *BindSource) {
			real := w.home + ".real"
			require.NoError(t, os.Rename(w.home, real))
			require.NoError(t, os.Symlink(real, w.home))
			t.Cleanup(func() { os.Remove(w.home); os.Rename(real, w.home) })
		},
		reason: "a component of the path is a symlink",
	},
	{
		name: "outputs is a file",
		setup: func(t *testing.T, w *bindWorld, s *BindSource) {
			require.NoError(t, os.RemoveAll(w.outputs))
			require.NoError(t, os.WriteFile(w.outputs, nil, 0o600))
		},
		reason: "outputs: a component of the path is a symlink or not a directory",
	},
	{
		name: "outputs owned by another uid",
		setup: func(t *testing.T, w *bindWorld, s *BindSource) {
			require.NoError(t, os.Lchown(w.outputs, otherUID, otherUID))
		},
		reason: "outputs is not owned by uid",
	},
	{
		name: "outputs missing",
		setup: func(t *testing.T, w *bindWorld, s *BindSource) {
			require.NoError(t, os.RemoveAll(w.outputs))
		},
		reason: "outputs: no such file or directory",
	},
	{
		name: "a path that climbs out of the root",
		setup: func(t *testing.T, w *bindWorld, s *BindSource) {
			s.Rel = "../" + filepath.Base(w.home) + "/" + w.rel
		},
		reason: "leads out of",
	},
}

func TestMountBinderRefuses(t *testing.T) {
	for _, tt := range refusalCases {
		t.Run(tt.name, func(t *testing.T) {
			w := newBindWorld(t)
			src := w.src(false)
			tt.setup(t, w, &src)
			work := BindSource{Name: "work", Target: "/work", Root: w.home, Rel: ".ferry", UID: os.Getuid(), ReadOnly: true}

			// The first source binds, the second is refused: nothing stays.
			paths, err := w.binder.Bind("ferry-42-01jd8x3k", []BindSource{work, src})
			require.Error(t, err)
			assert.Nil(t, paths)
			var r *Refusal
			require.ErrorAs(t, err, &r, "a source that is not the checked dir is a refusal: %v", err)
			assert.Contains(t, r.Reason, tt.reason)
			names, err := w.binder.Bound()
			require.NoError(t, err)
			assert.Empty(t, names, "a refused bind leaves no mount point")
			assert.Empty(t, mountOptions(t, filepath.Join(w.binder.Root, "ferry-42-01jd8x3k", "work")),
				"the source bound before the refusal is unmounted")
		})
	}
}

// The walk that replaces openat2 on kernels before 5.6 refuses the same.
func TestWalkBeneath(t *testing.T) {
	t.Run("opens the dir", func(t *testing.T) {
		w := newBindWorld(t)
		fd, err := walkBeneath(w.home, w.rel)
		require.NoError(t, err)
		defer unix.Close(fd)
		var got, want unix.Stat_t
		require.NoError(t, unix.Fstat(fd, &got))
		require.NoError(t, unix.Stat(w.outputs, &want))
		assert.Equal(t, want.Ino, got.Ino)
	})
	for _, tt := range refusalCases {
		if strings.Contains(tt.name, "owned by") {
			continue // the owner is checked on the opened fd, after either open
		}
		t.Run(tt.name, func(t *testing.T) {
			w := newBindWorld(t)
			src := w.src(false)
			tt.setup(t, w, &src)
			fd, err := walkBeneath(src.Root, src.Rel)
			if err == nil {
				unix.Close(fd)
			}
			require.Error(t, err)
			var r *Refusal
			require.ErrorAs(t, err, &r, "%v", err)
			if strings.Contains(tt.reason, "symlink") {
				// O_NOFOLLOW|O_DIRECTORY says ENOTDIR for a symlink
				assert.Contains(t, r.Reason, "a component of the path is a symlink")
			} else {
				assert.Contains(t, r.Reason, tt.reason)
			}
		})
	}
}

func TestMountBinderLeftoversAndNames(t *testing.T) {
	w := newBindWorld(t)
	_, err := w.binder.Bind("ferry-7-01jd8x3k", []BindSource{w.src(false)})
	require.NoError(t, err)
	// A run of the same name whose mounts were left behind (the agent
	// died): binding again replaces them.
	paths, err := w.binder.Bind("ferry-7-01jd8x3k", []BindSource{w.src(true)})
	require.NoError(t, err)
	assert.Contains(t, strings.Split(mountOptions(t, paths[0]), ","), "ro")
	require.NoError(t, w.binder.Release("ferry-7-01jd8x3k"))
	assert.Empty(t, mountOptions(t, paths[0]), "no mount stays stacked below")

	for _, bad := range []string{"", ".", "..", "a/b", "../etc"} {
		_, err := w.binder.Bind(bad, []BindSource{w.src(false)})
		assert.Error(t, err, "name %q", bad)
		assert.Error(t, w.binder.Release(bad), "name %q", bad)
	}
	_, err = w.binder.Bind("ferry-8-x", []BindSource{w.src(false), w.src(false)})
	assert.ErrorContains(t, err, `repeated mount name "out"`)

	// A mount root that is not root's own directory, or that a user could
	// move away, is not used.
	link := filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Symlink(t.TempDir(), link))
	_, err = (&MountBinder{Root: link}).Bind("ferry-9-x", []BindSource{w.src(false)})
	assert.ErrorContains(t, err, "is not a directory owned by uid 0")
	userDir := t.TempDir()
	require.NoError(t, os.Chown(userDir, otherUID, otherUID))
	_, err = (&MountBinder{Root: filepath.Join(userDir, "mnt")}).Bind("ferry-9-x", []BindSource{w.src(false)})
	assert.ErrorContains(t, err, "which users other than root can change")
	open := t.TempDir()
	require.NoError(t, os.Chmod(open, 0o777))
	_, err = (&MountBinder{Root: filepath.Join(open, "mnt")}).Bind("ferry-9-x", []BindSource{w.src(false)})
	assert.ErrorContains(t, err, "which users other than root can change")
}

// A bind remount sets a mount's flags anew: the source mount's own
// restrictions are repeated, so that a noexec scratch stays noexec.
func TestKeptFlags(t *testing.T) {
	tests := []struct {
		name   string
		statfs int64
		want   uintptr
	}{
		{"none", 0, 0},
		{"noexec", unix.ST_NOEXEC, unix.MS_NOEXEC},
		{"read-only", unix.ST_RDONLY, unix.MS_RDONLY},
		{"relatime (a different bit in statfs)", unix.ST_RELATIME, unix.MS_RELATIME},
		{"noatime and nodiratime", unix.ST_NOATIME | unix.ST_NODIRATIME, unix.MS_NOATIME | unix.MS_NODIRATIME},
		{"nosymfollow", stNoSymFollow, unix.MS_NOSYMFOLLOW},
		{"nosuid and nodev are added anyway, not copied", unix.ST_NOSUID | unix.ST_NODEV, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, keptFlags(tt.statfs))
		})
	}
}

func TestDefaultMountRoot(t *testing.T) {
	assert.Equal(t, "/run/ferry/mnt/w1", DefaultMountRoot("w1"))
	assert.Equal(t, "/run/ferry/mnt/a_b", DefaultMountRoot("a/b"))
}
