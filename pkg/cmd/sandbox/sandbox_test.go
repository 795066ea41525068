package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/bundle"
	"github.com/ferry-hpc/ferry/pkg/job"
)

// packedJob packs a small project and writes a job dir whose spec records
// the bundle's hash, as ferry submit does.
func packedJob(t *testing.T) (job.Dir, []byte) {
	t.Helper()
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "main.py"), []byte(strings.Repeat("print(1)\n", 100)), 0o644))
	var buf bytes.Buffer
	info, err := bundle.Pack(context.Background(), src, &buf, bundle.Options{})
	require.NoError(t, err)
	d := job.Dir(filepath.Join(t.TempDir(), "01m8t4gyk2p7brzmz9sz72r7bc"))
	require.NoError(t, os.Mkdir(d.Path(), 0o700))
	spec := job.Spec{ID: d.ID(), Bundle: job.Bundle{File: job.BundleFile, Hash: info.Hash, Size: info.Size}}
	data, err := json.Marshal(spec)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(d.Spec(), data, 0o600))
	return d, buf.Bytes()
}

func TestUnpackerChecksTheBundle(t *testing.T) {
	t.Run("intact bundle within the cap", func(t *testing.T) {
		d, data := packedJob(t)
		dest := t.TempDir()
		require.NoError(t, unpacker(d, 1<<20)(context.Background(), bytes.NewReader(data), dest))
		got, err := os.ReadFile(filepath.Join(dest, "main.py"))
		require.NoError(t, err)
		assert.Equal(t, strings.Repeat("print(1)\n", 100), string(got))
	})
	t.Run("bundle swapped after submit", func(t *testing.T) {
		d, _ := packedJob(t)
		other := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(other, "main.py"), []byte("print('not what was submitted')\n"), 0o644))
		var buf bytes.Buffer
		_, err := bundle.Pack(context.Background(), other, &buf, bundle.Options{})
		require.NoError(t, err)
		err = unpacker(d, 1<<20)(context.Background(), &buf, t.TempDir())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "the bundle is damaged")
	})
	t.Run("over the cluster's bundle cap", func(t *testing.T) {
		d, data := packedJob(t)
		err := unpacker(d, 100)(context.Background(), bytes.NewReader(data), t.TempDir())
		require.Error(t, err)
		assert.True(t, errors.Is(err, bundle.ErrLimit), "want ErrLimit, got %v", err)
	})
}

func TestBatchStart(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"1767225600.123456", time.Unix(1767225600, 123456000)},
		{"1767225600,5", time.Unix(1767225600, 500000000)},
		{"1767225600", time.Unix(1767225600, 0)},
		{"", time.Time{}},
		{"soon", time.Time{}},
		{"1767225600.-1", time.Time{}},
		{"-5.0", time.Time{}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, batchStart(tt.in), "%q", tt.in)
	}
}
