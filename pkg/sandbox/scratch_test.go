package sandbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// scratchWorld is a scratch root with what a killed job may leave in it,
// next to a dir outside that no cleanup may touch.
type scratchWorld struct {
	root, outside string
	id, other     job.ID
}

func newScratchWorld(t *testing.T) *scratchWorld {
	t.Helper()
	w := &scratchWorld{root: filepath.Join(t.TempDir(), "scratch"), outside: t.TempDir(),
		id: job.NewID(time.Now()), other: job.NewID(time.Now())}
	require.NoError(t, os.MkdirAll(w.root, 0o777))
	require.NoError(t, os.WriteFile(filepath.Join(w.outside, "precious"), []byte("keep me\n"), 0o600))
	return w
}

func (w *scratchWorld) path(name string) string { return filepath.Join(w.root, name) }

// unpacked makes a scratch dir with a bundle unpacked into it, including a
// symlink that points outside.
func (w *scratchWorld) unpacked(t *testing.T, name string) {
	t.Helper()
	d := w.path(name)
	require.NoError(t, os.MkdirAll(filepath.Join(d, "src", "pkg"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(d, "src", "pkg", "train.py"), []byte("print(1)\n"), 0o600))
	require.NoError(t, os.Symlink(w.outside, filepath.Join(d, "src", "data")))
	require.NoError(t, os.Symlink(filepath.Join(w.outside, "precious"), filepath.Join(d, "link-to-file")))
}

func (w *scratchWorld) names(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(w.root)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// assertOutsideIntact checks that nothing outside the scratch root was
// removed through a symlink.
func (w *scratchWorld) assertOutsideIntact(t *testing.T) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(w.outside, "precious"))
	require.NoError(t, err, "a symlink's target outside the scratch dir is never removed")
	assert.Equal(t, "keep me\n", string(got))
}

func TestRemoveScratch(t *testing.T) {
	uid := os.Getuid()
	tests := []struct {
		name        string
		setup       func(t *testing.T, w *scratchWorld)
		uid         int
		wantRemoved func(w *scratchWorld) []string
		wantLeft    func(w *scratchWorld) []string
	}{
		{
			name:        "the job's unpacked scratch dir, everything in it",
			setup:       func(t *testing.T, w *scratchWorld) { w.unpacked(t, string(w.id)+".a1b2") },
			uid:         uid,
			wantRemoved: func(w *scratchWorld) []string { return []string{string(w.id) + ".a1b2"} },
		},
		{
			name: "every scratch dir of the job (a requeued job made two)",
			setup: func(t *testing.T, w *scratchWorld) {
				w.unpacked(t, string(w.id)+".a1")
				w.unpacked(t, string(w.id)+".b2")
			},
			uid:         uid,
			wantRemoved: func(w *scratchWorld) []string { return []string{string(w.id) + ".a1", string(w.id) + ".b2"} },
		},
		{
			name: "another job's scratch and other names are kept",
			setup: func(t *testing.T, w *scratchWorld) {
				w.unpacked(t, string(w.id)+".a1")
				w.unpacked(t, string(w.other)+".a1")
				require.NoError(t, os.Mkdir(w.path(string(w.id)), 0o700)) // no dot: not a scratch dir of it
				require.NoError(t, os.Mkdir(w.path("x"+string(w.id)+".a1"), 0o700))
			},
			uid:         uid,
			wantRemoved: func(w *scratchWorld) []string { return []string{string(w.id) + ".a1"} },
			wantLeft: func(w *scratchWorld) []string {
				return []string{string(w.other) + ".a1", string(w.id), "x" + string(w.id) + ".a1"}
			},
		},
		{
			name: "a symlink named like the job's scratch: the link goes, its target stays",
			setup: func(t *testing.T, w *scratchWorld) {
				require.NoError(t, os.Symlink(w.outside, w.path(string(w.id)+".lnk")))
			},
			uid:         uid,
			wantRemoved: func(w *scratchWorld) []string { return []string{string(w.id) + ".lnk"} },
		},
		{
			name: "a regular file is not a scratch dir: kept",
			setup: func(t *testing.T, w *scratchWorld) {
				require.NoError(t, os.WriteFile(w.path(string(w.id)+".txt"), nil, 0o600))
			},
			uid:      uid,
			wantLeft: func(w *scratchWorld) []string { return []string{string(w.id) + ".txt"} },
		},
		{
			name:     "another user's dir of that name is kept",
			setup:    func(t *testing.T, w *scratchWorld) { w.unpacked(t, string(w.id)+".a1") },
			uid:      otherUID,
			wantLeft: func(w *scratchWorld) []string { return []string{string(w.id) + ".a1"} },
		},
		{
			name: "nothing left",
			uid:  uid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newScratchWorld(t)
			if tt.setup != nil {
				tt.setup(t, w)
			}
			removed, err := RemoveScratch(w.root, w.id, tt.uid)
			require.NoError(t, err)
			var wantRemoved, wantLeft []string
			if tt.wantRemoved != nil {
				wantRemoved = tt.wantRemoved(w)
			}
			if tt.wantLeft != nil {
				wantLeft = tt.wantLeft(w)
			}
			assert.Equal(t, wantRemoved, removed)
			assert.ElementsMatch(t, wantLeft, w.names(t))
			w.assertOutsideIntact(t)
		})
	}
}

func TestRemoveScratchRefusesBadInput(t *testing.T) {
	w := newScratchWorld(t)
	_, err := RemoveScratch(w.root, "../etc", os.Getuid())
	assert.ErrorContains(t, err, "not a ferry job id")
	_, err = RemoveScratch("", w.id, os.Getuid())
	assert.Error(t, err)
	removed, err := RemoveScratch(filepath.Join(w.root, "missing"), w.id, os.Getuid())
	assert.NoError(t, err, "no scratch root: nothing to remove")
	assert.Empty(t, removed)
}

func TestRemoveRunScratch(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, w *scratchWorld, name string)
		uid      int
		want     bool
		wantLeft bool
	}{
		{"the run's dir", func(t *testing.T, w *scratchWorld, n string) { w.unpacked(t, n) }, os.Getuid(), true, false},
		{"swapped for a symlink after the check", func(t *testing.T, w *scratchWorld, n string) {
			require.NoError(t, os.Symlink(w.outside, w.path(n)))
		}, os.Getuid(), true, false},
		{"gone already", func(t *testing.T, w *scratchWorld, n string) {}, os.Getuid(), false, false},
		{"now someone else's", func(t *testing.T, w *scratchWorld, n string) { w.unpacked(t, n) }, otherUID, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newScratchWorld(t)
			name := string(w.id) + ".r1"
			tt.setup(t, w, name)
			removed, err := removeRunScratch(runDirs{scratchRoot: w.root, scratchName: name, uid: tt.uid})
			require.NoError(t, err)
			assert.Equal(t, tt.want, removed)
			_, err = os.Lstat(w.path(name))
			assert.Equal(t, tt.wantLeft, err == nil)
			w.assertOutsideIntact(t)
		})
	}
}
