package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostileCases are archives Unpack must refuse. sibling is an absolute
// path beside dest that the archive aims at.
func hostileCases(sibling string) []struct {
	name    string
	entries []tarEntry
	entry   string // the entry the error must name
	reason  string // part of the error
} {
	return []struct {
		name    string
		entries []tarEntry
		entry   string
		reason  string
	}{
		{"parent dir", []tarEntry{regEntry("../evil", "x")}, "../evil", `".." in path`},
		{"parent dir into sibling", []tarEntry{regEntry("../sibling/evil", "x")}, "../sibling/evil", `".." in path`},
		{"absolute", []tarEntry{regEntry("/abs", "x")}, "/abs", "absolute path"},
		{"absolute into sibling", []tarEntry{regEntry(sibling+"/evil", "x")}, sibling + "/evil", "absolute path"},
		{"climbing after a name", []tarEntry{regEntry("a/../../evil", "x")}, "a/../../evil", `".." in path`},
		{"harmless-looking dotdot", []tarEntry{regEntry("a/../b", "x")}, "a/../b", `".." in path`},
		{"absolute symlink then write through it",
			[]tarEntry{linkEntry("link", "/etc"), regEntry("link/passwd", "x")}, "link", "absolute path"},
		{"symlink to sibling then write through it",
			[]tarEntry{linkEntry("link", sibling), regEntry("link/evil", "x")}, "link", "absolute path"},
		{"symlink pointing out", []tarEntry{dirEntry("a/"), linkEntry("a/x", "../../x")}, "a/x", "points outside"},
		{"symlink pointing out at the top", []tarEntry{linkEntry("x", "..")}, "x", "points outside"},
		{"symlink climbing through a symlink",
			[]tarEntry{linkEntry("s", "."), linkEntry("l", "s/..")}, "l", `".." after a name`},
		{"write through an inside symlink",
			[]tarEntry{dirEntry("sub/"), linkEntry("link", "sub"), regEntry("link/f", "x")}, "link/f", "symlink"},
		{"dir through an inside symlink",
			[]tarEntry{dirEntry("sub/"), linkEntry("link", "sub"), dirEntry("link/d/")}, "link/d/", "symlink"},
		{"overwrite a symlink with a file",
			[]tarEntry{regEntry("target", "t"), linkEntry("link", "target"), regEntry("link", "x")}, "link", "through a symlink"},
		{"hard link", []tarEntry{{name: "h", typ: tar.TypeLink, linkname: "/etc/passwd"}}, "h", "hard link"},
		{"hard link inside", []tarEntry{regEntry("a", "a"), {name: "h", typ: tar.TypeLink, linkname: "a"}}, "h", "hard link"},
		{"char device", []tarEntry{{name: "null", typ: tar.TypeChar}}, "null", "device"},
		{"block device", []tarEntry{{name: "sda", typ: tar.TypeBlock}}, "sda", "device"},
		{"fifo", []tarEntry{{name: "pipe", typ: tar.TypeFifo}}, "pipe", "fifo"},
		{"file named like dest", []tarEntry{regEntry(".", "x")}, ".", "names the destination"},
	}
}

func TestUnpackRefusesHostileEntries(t *testing.T) {
	for _, tt := range hostileCases("SIBLING") {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			// Rebuild with the real sibling path for cases that aim at it.
			entries := make([]tarEntry, len(tt.entries))
			for i, e := range tt.entries {
				e.name = strings.ReplaceAll(e.name, "SIBLING", s.sibling)
				e.linkname = strings.ReplaceAll(e.linkname, "SIBLING", s.sibling)
				entries[i] = e
			}
			wantEntry := strings.ReplaceAll(tt.entry, "SIBLING", s.sibling)

			err := Unpack(context.Background(), bytes.NewReader(compress(t, rawTar(t, entries...))), s.dest, UnpackOptions{})
			var unsafe *UnsafeEntryError
			require.ErrorAs(t, err, &unsafe)
			assert.Equal(t, wantEntry, unsafe.Name)
			assert.Contains(t, err.Error(), tt.reason)
			assert.Contains(t, err.Error(), `"`+wantEntry+`"`, "the error names the entry")
			assert.Empty(t, s.escapes(t))
		})
	}
}

func TestUnpackLimits(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
		opts    UnpackOptions
		wantErr string
	}{
		{"bytes over the cap", []tarEntry{regEntry("a", strings.Repeat("a", 600)), regEntry("b", strings.Repeat("b", 600))},
			UnpackOptions{MaxBytes: 1000}, `content is over the 1000 B cap at "b"`},
		{"too many entries", []tarEntry{regEntry("a", ""), regEntry("b", ""), regEntry("c", "")},
			UnpackOptions{MaxEntries: 2}, "more than 2 entries"},
		{"wrong hash", []tarEntry{regEntry("a", "a")},
			UnpackOptions{WantHash: strings.Repeat("0", 64)}, "the bundle is damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			err := Unpack(context.Background(), bytes.NewReader(compress(t, rawTar(t, tt.entries...))), s.dest, tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			if tt.opts.WantHash == "" {
				assert.ErrorIs(t, err, ErrLimit)
			}
		})
	}
}

func TestUnpackModes(t *testing.T) {
	s := newSandbox(t)
	archive := rawTar(t,
		tarEntry{name: "locked/", typ: tar.TypeDir, mode: 0o500},
		tarEntry{name: "locked/suid", typ: tar.TypeReg, content: "x", mode: 0o4755},
		tarEntry{name: "sticky/", typ: tar.TypeDir, mode: 0o1777},
		tarEntry{name: "ro", typ: tar.TypeReg, content: "r", mode: 0o400},
		tarEntry{name: "implicit/parent/f", typ: tar.TypeReg, content: "f", mode: 0o640},
	)
	require.NoError(t, Unpack(context.Background(), bytes.NewReader(compress(t, archive)), s.dest, UnpackOptions{}))
	got := describeTree(t, s.dest)
	assert.Equal(t, "dir 0700", got["locked"], "owner keeps rwx on dirs")
	assert.Equal(t, "file 0755 x", got["locked/suid"], "no setuid")
	assert.Equal(t, "dir 0777", got["sticky"], "no sticky bit")
	assert.Equal(t, "file 0400 r", got["ro"])
	assert.Equal(t, "file 0640 f", got["implicit/parent/f"])
	fi, err := os.Stat(filepath.Join(s.dest, "sticky"))
	require.NoError(t, err)
	assert.Zero(t, fi.Mode()&(os.ModeSticky|os.ModeSetuid|os.ModeSetgid))
}

func TestUnpackRejectsGarbage(t *testing.T) {
	s := newSandbox(t)
	err := Unpack(context.Background(), strings.NewReader("not a bundle"), s.dest, UnpackOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unpack")
	assert.Empty(t, s.escapes(t))
}

func TestUnpackMissingDest(t *testing.T) {
	err := Unpack(context.Background(), strings.NewReader(""), filepath.Join(t.TempDir(), "nope"), UnpackOptions{})
	assert.ErrorIs(t, err, os.ErrNotExist)
}
