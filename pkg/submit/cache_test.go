package submit

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/bundle"
)

func TestBundleCachePutGet(t *testing.T) {
	spool := t.TempDir()
	c := newBundleCache(spool)
	src := filepath.Join(t.TempDir(), "bundle.tar.zst")
	require.NoError(t, os.WriteFile(src, []byte("zstd bytes"), 0o600))
	info := bundle.Info{Hash: "abc", Size: 10, Bytes: 99, Files: 3}

	// Temp files of submits killed half-way: an old one goes, a fresh one
	// (maybe another submit's, being written now) stays.
	require.NoError(t, os.MkdirAll(c.dir, 0o700))
	old, fresh := filepath.Join(c.dir, ".info.tmp-1"), filepath.Join(c.dir, "k.tar.zst.tmp-job")
	require.NoError(t, os.WriteFile(old, nil, 0o600))
	require.NoError(t, os.WriteFile(fresh, nil, 0o600))
	long := time.Now().Add(-2 * staleTemp)
	require.NoError(t, os.Chtimes(old, long, long))

	c.put("key1", src, info)
	assert.NoFileExists(t, old)
	assert.FileExists(t, fresh)

	dst := filepath.Join(t.TempDir(), "linked")
	got, ok := c.get("key1", dst)
	require.True(t, ok)
	assert.Equal(t, info, got)
	b, err := os.ReadFile(dst)
	require.NoError(t, err)
	assert.Equal(t, "zstd bytes", string(b))

	// An info that did not reach the disk whole is a miss, not a wrong bundle.
	_, infoPath := c.paths("key1")
	require.NoError(t, os.WriteFile(infoPath, []byte(`{"hash":"ab`), 0o600))
	_, ok = c.get("key1", filepath.Join(t.TempDir(), "x"))
	assert.False(t, ok)
}
