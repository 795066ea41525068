package job

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSlurmIDOf(t *testing.T) {
	spool := t.TempDir()
	ids := NewIDs(time.Now(), 4)
	sweep := ids[0]
	sdir := filepath.Join(spool, SweepsDir, string(sweep))
	require.NoError(t, os.MkdirAll(sdir, 0o700))
	// Two arrays: tasks 0-1 in Slurm job 500, task 2 in 501.
	require.NoError(t, os.WriteFile(filepath.Join(sdir, SweepFile),
		[]byte(`{"id":"`+string(sweep)+`","arrays":[{"slurm_id":"500","first":0,"last":1},{"slurm_id":"501","first":2,"last":2}]}`), 0o600))
	task := func(i int) (Dir, *Spec) {
		d := DirFor(spool, ids[1+i%3])
		require.NoError(t, os.MkdirAll(d.Path(), 0o700))
		return d, &Spec{ID: d.ID(), Sweep: &SweepRef{ID: sweep, Index: i}}
	}

	d, spec := task(0)
	require.NoError(t, os.WriteFile(d.SlurmID(), []byte("500_0\n"), 0o600))
	assert.Equal(t, "500_0", SlurmIDOf(d, spec, nil), "the recorded id")

	memo := map[ID][]SweepArray{}
	d, spec = task(2)
	assert.Equal(t, "501_0", SlurmIDOf(d, spec, memo), "no slurm_id file: the sweep's record says")
	assert.Len(t, memo, 1)
	d, spec = task(1)
	assert.Equal(t, "500_1", SlurmIDOf(d, spec, memo))

	assert.Equal(t, "", TaskSlurmID(memo[sweep], 3), "an index no array holds")
	assert.Equal(t, "", SlurmIDOf(DirFor(spool, NewID(time.Now())), &Spec{}, nil), "a plain job without a record: none yet")
	other := &Spec{Sweep: &SweepRef{ID: NewID(time.Now()), Index: 0}}
	assert.Equal(t, "", SlurmIDOf(d, other, nil), "a sweep without a record")
}
