package submit_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/submit"
)

func TestReadParamsFileLikeJobYAML(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(path, []byte("layers:\n  1: 64\nday: 2024-01-01\n"), 0o600))
	m, err := submit.ReadParamsFile(path)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"layers": map[string]any{"1": 64}, "day": "2024-01-01"}, m)
}
