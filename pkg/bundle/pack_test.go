package bundle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var projectTree = []node{
	{path: "main.py", content: "print('hi')\n"},
	{path: "bin/run.sh", content: "#!/bin/sh\necho run\n", mode: 0o755},
	{path: "src/pkg/deep/mod.py", content: "x = 1\n"},
	{path: "src/pkg/readonly.txt", content: "ro\n", mode: 0o444},
	{path: "empty/"},
	{path: "private/", mode: 0o700},
	{path: "latest", link: "main.py"},
	{path: "src/pkg/up", link: "../../bin"},
	{path: "src/dangling", link: "nowhere"},
	{path: ".git/HEAD", content: "ref: refs/heads/main\n"},
}

func TestPackUnpackRoundTrip(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, projectTree...)
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	require.NoError(t, os.Chtimes(filepath.Join(src, "main.py"), mtime, mtime))

	bundle, info := pack(t, src, Options{})
	assert.Equal(t, 4, info.Files)
	assert.Equal(t, int64(len("print('hi')\n")+len("#!/bin/sh\necho run\n")+len("x = 1\n")+len("ro\n")), info.Bytes)
	assert.Equal(t, int64(len(bundle)), info.Size)
	assert.Len(t, info.Hash, 64)

	s := newSandbox(t)
	require.NoError(t, Unpack(context.Background(), bytes.NewReader(bundle), s.dest, UnpackOptions{WantHash: info.Hash}))

	want := describeTree(t, src) // skips .git
	got := describeTree(t, s.dest)
	assert.Equal(t, want, got)
	assert.Equal(t, "file 0755 #!/bin/sh\necho run\n", got["bin/run.sh"])
	assert.Equal(t, "link -> ../../bin", got["src/pkg/up"])
	assert.NotContains(t, got, ".git/HEAD")

	fi, err := os.Stat(filepath.Join(s.dest, "main.py"))
	require.NoError(t, err)
	assert.True(t, fi.ModTime().Equal(mtime), "mtime %v", fi.ModTime())
	assert.Empty(t, s.escapes(t))

	// The extracted tree packs to the same bundle hash.
	_, repacked := pack(t, s.dest, Options{})
	assert.Equal(t, info.Hash, repacked.Hash)
}

func TestPackHashIsReproducible(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, projectTree...)
	_, first := pack(t, src, Options{})
	_, again := pack(t, src, Options{})
	assert.Equal(t, first.Hash, again.Hash, "same tree, same hash")

	// One byte changed, same size and mtime: the hash changes.
	p := filepath.Join(src, "src/pkg/deep/mod.py")
	fi, err := os.Stat(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, []byte("x = 2\n"), 0o644))
	require.NoError(t, os.Chtimes(p, fi.ModTime(), fi.ModTime()))
	_, changed := pack(t, src, Options{})
	assert.NotEqual(t, first.Hash, changed.Hash)
}

func TestPackIgnore(t *testing.T) {
	tests := []struct {
		name   string
		ignore string
		tree   []string
		want   []string // entry names in the bundle, in order
	}{
		{
			name:   "glob anywhere",
			ignore: "*.pyc\n",
			tree:   []string{"a.py", "a.pyc", "sub/b.pyc", "sub/b.py"},
			want:   []string{".ferryignore", "a.py", "sub/", "sub/b.py"},
		},
		{
			name:   "dir pattern with a negation below it",
			ignore: "data/big/\n!data/big/keep.txt\n",
			tree:   []string{"data/big/x.bin", "data/big/keep.txt", "data/big/more/y.bin", "data/small.txt"},
			want:   []string{".ferryignore", "data/", "data/big/", "data/big/keep.txt", "data/small.txt"},
		},
		{
			name:   "negation of a bare name reaches into ignored dirs",
			ignore: "logs/\n!*.keep\n",
			tree:   []string{"logs/a.log", "logs/deep/b.keep", "logs/deep/c.log"},
			want:   []string{".ferryignore", "logs/", "logs/deep/", "logs/deep/b.keep"},
		},
		{
			name:   "a later pattern wins over an earlier negation",
			ignore: "!data/big/keep.txt\ndata/big/\n",
			tree:   []string{"data/big/keep.txt", "data/ok.txt"},
			want:   []string{".ferryignore", "data/", "data/ok.txt"},
		},
		{
			name:   "anchored pattern only at the top",
			ignore: "/build\n",
			tree:   []string{"build/out.o", "src/build/gen.go"},
			want:   []string{".ferryignore", "src/", "src/build/", "src/build/gen.go"},
		},
		{
			name:   "comments and blank lines",
			ignore: "# scratch files\n\n   \n*.tmp\r\n# *.py\n",
			tree:   []string{"x.tmp", "x.py", "# scratch files"},
			want:   []string{"# scratch files", ".ferryignore", "x.py"},
		},
		{
			name:   "dir-only pattern spares a file of that name",
			ignore: "cache/\n",
			tree:   []string{"cache/x", "sub/cache/y", "other/cache"},
			want:   []string{".ferryignore", "other/", "other/cache", "sub/"},
		},
		{
			name:   "double star",
			ignore: "**/tmp/**\n",
			tree:   []string{"a/tmp/x", "a/b/tmp/y", "a/keep"},
			want:   []string{".ferryignore", "a/", "a/b/", "a/keep"},
		},
		{
			name:   ".git is always left out, even when negated",
			ignore: "!.git\n",
			tree:   []string{".git/HEAD", "sub/.git", "sub/x"},
			want:   []string{".ferryignore", "sub/", "sub/x"},
		},
		{
			name: "no .ferryignore",
			tree: []string{"a", "b/c"},
			want: []string{"a", "b/", "b/c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			if tt.ignore != "" {
				writeTree(t, src, node{path: IgnoreFile, content: tt.ignore})
			}
			for _, p := range tt.tree {
				writeTree(t, src, node{path: p, content: p})
			}
			bundle, _ := pack(t, src, Options{})
			assert.Equal(t, tt.want, tarNames(t, bundle))
		})
	}
}

func TestPackTooBig(t *testing.T) {
	src := t.TempDir()
	sizes := map[string]int64{"data/x.bin": 800 << 10, "data/y.bin": 300 << 10, "model.pt": 90 << 10, "notes.txt": 1 << 10}
	for p, size := range sizes {
		writeTree(t, src, node{path: p})
		require.NoError(t, os.Truncate(filepath.Join(src, p), size))
	}

	var out bytes.Buffer
	_, err := Pack(context.Background(), src, &out, Options{MaxBytes: 100 << 10})
	var tooBig *TooBigError
	require.ErrorAs(t, err, &tooBig)
	assert.Equal(t, int64(1191<<10), tooBig.Total)
	assert.Equal(t, "project is 1.2 MiB, over the 100 KiB cap; biggest: data/x.bin (800 KiB), "+
		"data/y.bin (300 KiB), model.pt (90 KiB) — add them to .ferryignore or ask for a larger cap", err.Error())
	assert.Zero(t, out.Len(), "nothing written before the cap check")

	// Exactly at the cap is fine.
	_, err = Pack(context.Background(), src, &out, Options{MaxBytes: 1191 << 10})
	require.NoError(t, err)
}

func TestPackSkipsSpecialFilesAndOutwardLinks(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src,
		node{path: "a.txt", content: "a"},
		node{path: "abs", link: "/etc/passwd"},
		node{path: "sub/out", link: "../../elsewhere"},
		node{path: "sub/trick", link: "x/../.."},
		node{path: "sub/ok", link: "../a.txt"},
	)
	require.NoError(t, syscall.Mkfifo(filepath.Join(src, "sub/fifo"), 0o644))

	skipped := map[string]string{}
	bundle, info := pack(t, src, Options{OnSkip: func(p, reason string) { skipped[p] = reason }})
	assert.Equal(t, []string{"a.txt", "sub/", "sub/ok"}, tarNames(t, bundle))
	assert.Equal(t, 1, info.Files)
	assert.Equal(t, map[string]string{
		"abs":       "symlink points to an absolute path (/etc/passwd)",
		"sub/out":   "symlink points outside the bundle (../../elsewhere)",
		"sub/trick": `symlink target x/../.. has ".." after a name`,
		"sub/fifo":  "special file (p---------)",
	}, skipped)
}

func TestPackCancelled(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, node{path: "a", content: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Pack(ctx, src, &bytes.Buffer{}, Options{})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestPackNoProgressWhenQuick(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, projectTree...)
	var bar bytes.Buffer
	_, err := Pack(context.Background(), src, &bytes.Buffer{}, Options{Progress: &bar, IsTerminal: true})
	require.NoError(t, err)
	assert.Empty(t, bar.String(), "no bar for packing under a second")
}

func TestPackProgressWhenSlow(t *testing.T) {
	defer func(d time.Duration) { progressDelay = d }(progressDelay)
	progressDelay = 10 * time.Millisecond
	// 32 MiB that does not compress, written out slowly: reading stays
	// well short of 100% when the first frame is drawn.
	src := t.TempDir()
	rng := rand.NewChaCha8([32]byte{})
	data := make([]byte, 1<<20)
	for i := range 32 {
		_, _ = rng.Read(data)
		require.NoError(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), data, 0o644))
	}
	var bar bytes.Buffer
	_, err := Pack(context.Background(), src, slowWriter{30 * time.Millisecond}, Options{Progress: &bar, IsTerminal: true})
	require.NoError(t, err)
	assert.Contains(t, bar.String(), "packing")
	assert.True(t, strings.HasSuffix(bar.String(), "\r"), "bar cleared at the end: %q", bar.String())

	bar.Reset()
	_, err = Pack(context.Background(), src, slowWriter{30 * time.Millisecond}, Options{Progress: &bar, IsTerminal: false})
	require.NoError(t, err)
	assert.Empty(t, bar.String(), "no bar when not a terminal")
}

type slowWriter struct{ d time.Duration }

func (s slowWriter) Write(p []byte) (int, error) {
	time.Sleep(s.d)
	return len(p), nil
}

func TestPackWriteError(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, projectTree...)
	boom := errors.New("disk full")
	_, err := Pack(context.Background(), src, failWriter{boom}, Options{})
	assert.ErrorIs(t, err, boom)
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestScan(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src,
		node{path: IgnoreFile, content: "*.log\n"},
		node{path: "big", content: "0123456789"},
		node{path: "sub/mid", content: "01234"},
		node{path: "x.log", content: "ignored ignored"},
		node{path: "link", link: "big"},
	)
	files, total, err := Scan(context.Background(), src)
	require.NoError(t, err)
	assert.Equal(t, []FileSize{{"big", 10}, {IgnoreFile, 6}, {"sub/mid", 5}}, files)
	assert.Equal(t, int64(21), total)
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{1536, "1.5 KiB"},
		{1024*1024 - 1, "1 MiB"},
		{100 << 20, "100 MiB"},
		{800 << 20, "800 MiB"},
		{1288490189, "1.2 GiB"},
		{5 << 40, "5 TiB"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, FormatBytes(tt.n), "FormatBytes(%d)", tt.n)
	}
}
