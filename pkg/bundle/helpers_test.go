package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// node is one thing to create in a test tree. A path ending in "/" is a
// directory; link makes a symlink; mode defaults to 0644 (0755 for dirs).
type node struct {
	path    string
	content string
	link    string
	mode    fs.FileMode
}

func writeTree(t testing.TB, dir string, nodes ...node) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join(dir, filepath.FromSlash(n.path))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		switch {
		case strings.HasSuffix(n.path, "/"):
			mode := n.mode
			if mode == 0 {
				mode = 0o755
			}
			require.NoError(t, os.MkdirAll(p, 0o755))
			require.NoError(t, os.Chmod(p, mode))
		case n.link != "":
			require.NoError(t, os.Symlink(n.link, p))
		default:
			mode := n.mode
			if mode == 0 {
				mode = 0o644
			}
			require.NoError(t, os.WriteFile(p, []byte(n.content), mode))
			require.NoError(t, os.Chmod(p, mode))
		}
	}
}

// describeTree lists what is under dir, one line per path:
// "dir 0755", "file 0644 <content>", "link -> target".
func describeTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if d.Name() == ".git" {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %04o", fi.Mode().Perm())
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link -> " + target
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %04o %s", fi.Mode().Perm(), data)
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

func pack(t testing.TB, dir string, opts Options) ([]byte, Info) {
	t.Helper()
	var buf bytes.Buffer
	info, err := Pack(context.Background(), dir, &buf, opts)
	require.NoError(t, err)
	return buf.Bytes(), info
}

// tarNames decompresses a bundle and lists its entry names in order.
func tarNames(t testing.TB, bundle []byte) []string {
	t.Helper()
	dec, err := zstd.NewReader(bytes.NewReader(bundle))
	require.NoError(t, err)
	defer dec.Close()
	tr := tar.NewReader(dec)
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		require.NoError(t, err)
		names = append(names, hdr.Name)
	}
}

// tarEntry is one entry of a hand-made archive.
type tarEntry struct {
	name     string
	typ      byte
	content  string
	linkname string
	mode     int64
}

func regEntry(name, content string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeReg, content: content}
}
func dirEntry(name string) tarEntry { return tarEntry{name: name, typ: tar.TypeDir, mode: 0o755} }
func linkEntry(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeSymlink, linkname: target}
}

// rawTar builds an uncompressed tar stream.
func rawTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{
			Name: e.name, Typeflag: e.typ, Linkname: e.linkname, Mode: mode,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX,
		}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.content))
		}
		require.NoError(t, tw.WriteHeader(hdr))
		if e.typ == tar.TypeReg {
			_, err := io.WriteString(tw, e.content)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// testEncoder compresses hand-made archives; EncodeAll is safe for
// concurrent use and starts no goroutines.
var testEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))

func compress(t testing.TB, raw []byte) []byte {
	t.Helper()
	return testEncoder.EncodeAll(raw, nil)
}

// sandbox is a parent dir holding dest, where Unpack extracts, and an
// empty sibling that hostile archives aim at.
type sandbox struct {
	parent, dest, sibling string
}

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	parent, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	s := sandbox{parent, filepath.Join(parent, "dest"), filepath.Join(parent, "sibling")}
	require.NoError(t, os.Mkdir(s.dest, 0o755))
	require.NoError(t, os.Mkdir(s.sibling, 0o755))
	return s
}

// escapes returns a description of everything Unpack left outside dest,
// and of each symlink in dest that resolves outside it; "" if none.
func (s sandbox) escapes(t testing.TB) string {
	t.Helper()
	var bad []string
	des, err := os.ReadDir(s.parent)
	require.NoError(t, err)
	for _, de := range des {
		if de.Name() != "dest" && de.Name() != "sibling" {
			bad = append(bad, "created "+de.Name()+" beside dest")
		}
	}
	des, err = os.ReadDir(s.sibling)
	require.NoError(t, err)
	for _, de := range des {
		bad = append(bad, "created sibling/"+de.Name())
	}
	fi, err := os.Lstat(s.dest)
	require.NoError(t, err)
	if !fi.IsDir() {
		bad = append(bad, "dest replaced")
	}
	_ = filepath.WalkDir(s.dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if r := resolve(p, 0); r != s.dest && !strings.HasPrefix(r, s.dest+"/") {
			rel, _ := filepath.Rel(s.dest, p)
			bad = append(bad, fmt.Sprintf("symlink %s resolves to %s", rel, r))
		}
		return nil
	})
	sort.Strings(bad)
	return strings.Join(bad, "; ")
}

// resolve follows symlinks in the absolute path p as the kernel would,
// treating missing components lexically, and returns where p leads.
func resolve(p string, depth int) string {
	parts := strings.Split(p, "/")
	cur := "/"
	for i, part := range parts {
		switch part {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(next)
		if err == nil && fi.Mode()&fs.ModeSymlink != 0 && depth < 40 {
			target, err := os.Readlink(next)
			if err == nil {
				rest := strings.Join(parts[i+1:], "/")
				if !filepath.IsAbs(target) {
					target = cur + "/" + target
				}
				return resolve(target+"/"+rest, depth+1)
			}
		}
		cur = next
	}
	return cur
}
