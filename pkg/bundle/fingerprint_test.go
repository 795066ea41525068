package bundle

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFingerprint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("main.py", "print(1)\n")
	write("data/a.txt", "aaaa")
	write(".ferryignore", "scratch/\n")
	fp := func() string {
		k, _, _, err := Fingerprint(ctx, dir, "fastest")
		require.NoError(t, err)
		return k
	}
	hash := func() string {
		info, err := Pack(ctx, dir, io.Discard, Options{})
		require.NoError(t, err)
		return info.Hash
	}
	k0, h0 := fp(), hash()
	assert.Equal(t, k0, fp(), "nothing changed, same key")
	assert.Equal(t, h0, hash())

	// a change in an ignored dir changes neither
	write("scratch/tmp.bin", "xyz")
	assert.Equal(t, k0, fp())

	// same size, mtime put back: the content changed, and so does the key
	st, err := os.Stat(filepath.Join(dir, "data/a.txt"))
	require.NoError(t, err)
	write("data/a.txt", "bbbb")
	require.NoError(t, os.Chtimes(filepath.Join(dir, "data/a.txt"), st.ModTime(), st.ModTime()))
	k1 := fp()
	assert.NotEqual(t, k0, k1, "ctime and inode catch a rewrite with the old size and mtime")
	assert.NotEqual(t, h0, hash())

	write("new.txt", "n")
	assert.NotEqual(t, k1, fp(), "a new file")
	require.NoError(t, os.Chmod(filepath.Join(dir, "new.txt"), 0o755))
	k2 := fp()
	require.NoError(t, os.Chtimes(filepath.Join(dir, "main.py"), time.Now().Add(time.Hour), time.Now().Add(time.Hour)))
	assert.NotEqual(t, k2, fp(), "an mtime")

	_, files, total, err := Fingerprint(ctx, dir, "fastest")
	require.NoError(t, err)
	assert.Equal(t, int64(len("print(1)\n")+4+len("scratch/\n")+1), total)
	assert.Equal(t, int64(9), files[0].Size, "biggest first")
	assert.Len(t, files, 4)
	_, _, _, err = Fingerprint(ctx, filepath.Join(dir, "nope"), "fastest")
	assert.Error(t, err)
}

func TestPackFromTreePacksTheScannedEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.py"), []byte("print(1)\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "data", "a.txt"), []byte("aaaa"), 0o644))

	tree, err := ScanTree(ctx, dir, "default")
	require.NoError(t, err)
	var plain, fromTree bytes.Buffer
	want, err := Pack(ctx, dir, &plain, Options{})
	require.NoError(t, err)
	got, err := Pack(ctx, dir, &fromTree, Options{Tree: tree})
	require.NoError(t, err)
	assert.Equal(t, want, got, "the same bundle either way")
	assert.Equal(t, plain.Bytes(), fromTree.Bytes())

	// A file that appears after the scan is not in the bundle the scan's
	// key names; a walk of the dir would have packed it.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "late.txt"), []byte("late"), 0o644))
	var again bytes.Buffer
	_, err = Pack(ctx, dir, &again, Options{Tree: tree})
	require.NoError(t, err)
	assert.Equal(t, []string{"data/", "data/a.txt", "main.py"}, tarNames(t, again.Bytes()))
	var walked bytes.Buffer
	_, err = Pack(ctx, dir, &walked, Options{})
	require.NoError(t, err)
	assert.Contains(t, tarNames(t, walked.Bytes()), "late.txt")
}
