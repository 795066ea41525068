package job_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

func TestParseMemOverflow(t *testing.T) {
	for _, in := range []string{"16777217T", "17179869185G"} {
		got, err := job.ParseMem(in)
		assert.Error(t, err, "%s parsed as %d bytes", in, got)
	}
}

func TestParseTimeSubSecond(t *testing.T) {
	for _, in := range []string{"1ms", "499ms"} {
		got, err := job.ParseTime(in)
		if err == nil {
			assert.Positive(t, got, "%s must not become 0 (= the partition's default)", in)
		}
	}
}

func TestSpoolDirsSkipsNonCanonicalNames(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(root, "01HZZZZZZZZZZZZZZZZZZZZZZZ"), 0o700))
	dirs, err := job.Spool{Root: root}.Dirs()
	require.NoError(t, err)
	assert.Empty(t, dirs)
	_ = time.Now
}
