package submit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// arraySbatch answers each array submission with the next id and keeps the
// scripts; it fails the call numbered failAt (1-based) when set.
type arraySbatch struct {
	mu        sync.Mutex
	scripts   []string
	failAt    int
	cancelled []string
}

func (a *arraySbatch) Submit(_ context.Context, script string, _ ...string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	data, _ := os.ReadFile(script)
	a.scripts = append(a.scripts, string(data))
	if len(a.scripts) == a.failAt {
		return "", errors.New("sbatch: Batch job submission failed")
	}
	return []string{"500", "600", "700"}[len(a.scripts)-1], nil
}

func (a *arraySbatch) Cancel(_ context.Context, ids []string, _ string) error {
	a.cancelled = append(a.cancelled, ids...)
	return nil
}

type maxArray int

func (m maxArray) MaxArraySize(context.Context) (int, error) { return int(m), nil }

func sets(n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"i": i}
	}
	return out
}

func TestSubmitSweepSplitsIntoArrays(t *testing.T) {
	sb := &arraySbatch{}
	s, spec := submitter(t, nil, nil)
	s.Slurm = sb
	sw, err := s.SubmitSweep(context.Background(), spec, sets(25), 3, maxArray(10))
	require.NoError(t, err)

	require.Len(t, sw.Tasks, 25)
	assert.Equal(t, []submit.ArrayJob{{SlurmID: "500", First: 0, Last: 9}, {SlurmID: "600", First: 10, Last: 19}, {SlurmID: "700", First: 20, Last: 24}}, sw.Arrays)
	require.Len(t, sb.scripts, 3)
	assert.Contains(t, sb.scripts[0], "#SBATCH --array=0-9%3\n")
	assert.Contains(t, sb.scripts[2], "#SBATCH --array=0-4%3\n")
	assert.Contains(t, sb.scripts[1], "'--first' '10'")
	assert.Contains(t, sb.scripts[0], "#SBATCH --comment=ferry:"+string(sw.ID)+"\n")

	for i, task := range sw.Tasks {
		d := job.Dir(task.Dir)
		spec, err := job.ReadSpec(d)
		require.NoError(t, err)
		assert.Equal(t, task.ID, spec.ID)
		require.NotNil(t, spec.Sweep)
		assert.Equal(t, job.SweepRef{ID: sw.ID, Index: i}, *spec.Sweep)
		assert.Equal(t, 0.1, spec.Params["lr"], "the base params stay")
		assert.EqualValues(t, i, spec.Params["i"], "the task's own params are added")
		arr := sw.Arrays[i/10]
		assert.Equal(t, arr.SlurmID+"_"+itoa(i-arr.First), job.ReadSlurmID(d))
		fi, err := os.Stat(d.Bundle())
		require.NoError(t, err)
		assert.Equal(t, spec.Bundle.Size, fi.Size())
	}
	// ids sort in task order, so ls lists a sweep in order
	for i := 1; i < len(sw.Tasks); i++ {
		assert.Less(t, string(sw.Tasks[i-1].ID), string(sw.Tasks[i].ID))
	}
	got, err := submit.ReadSweep(sw.Dir)
	require.NoError(t, err)
	assert.Equal(t, sw.Arrays, got.Arrays)
	found, err := submit.FindSweep(s.Config.SpoolRoot, string(sw.ID)[:12])
	require.NoError(t, err)
	assert.Equal(t, sw.Dir, found)
	// the sweep dir is not listed as a job
	dirs, err := job.Spool{Root: s.Config.SpoolRoot}.Dirs()
	require.NoError(t, err)
	assert.Len(t, dirs, 25)
}

func TestSubmitSweepRefusedLeavesNothing(t *testing.T) {
	sb := &arraySbatch{failAt: 2}
	s, spec := submitter(t, nil, nil)
	s.Slurm = sb
	_, err := s.SubmitSweep(context.Background(), spec, sets(15), 0, maxArray(10))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "was not submitted: ")
	assert.Equal(t, []string{"500"}, sb.cancelled, "the array already submitted is cancelled")
	for _, e := range spoolEntries(t, s.Config.SpoolRoot) {
		if e == job.SweepsDir {
			assert.Empty(t, spoolEntries(t, filepath.Join(s.Config.SpoolRoot, e)))
			continue
		}
		t.Errorf("left behind in the spool: %s", e)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Submit waits only for the sweep's own dir to reach the disk; a task
// whose dir a crash lost or emptied is rebuilt from the sweep's record as
// it starts, byte for byte as submit wrote it.
func TestRestoreTask(t *testing.T) {
	s, spec := submitter(t, nil, nil)
	s.Slurm = &arraySbatch{}
	points := sets(4)
	for i, p := range points { // integers past 2^53, as a seeded random sweep draws them
		p["seed"] = int64(1<<53) + 1 + int64(i)
		p["big"] = uint64(12345678901234567890)
	}
	sw, err := s.SubmitSweep(context.Background(), spec, points, 0, maxArray(10))
	require.NoError(t, err)
	base, err := job.ReadSpec(job.Dir(sw.Dir))
	require.NoError(t, err, "the sweep's dir holds its base spec")
	require.NotEmpty(t, base.Bundle.Hash)
	assert.Equal(t, spec.Bundle.Hash, base.Bundle.Hash)
	assert.Nil(t, base.Sweep)

	read := func(p string) []byte {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		return data
	}
	dirs := make([]job.Dir, len(sw.Tasks))
	wantSpec := make([][]byte, len(sw.Tasks))
	wantParams := make([][]byte, len(sw.Tasks))
	for i, task := range sw.Tasks {
		dirs[i] = job.Dir(task.Dir)
		wantSpec[i], wantParams[i] = read(dirs[i].Spec()), read(dirs[i].Params())
	}

	// Task 0 is intact: nothing is touched.
	dir, restored, err := submit.RestoreTask(sw.Dir, 0)
	require.NoError(t, err)
	assert.False(t, restored)
	assert.Equal(t, sw.Tasks[0].Dir, dir)

	assert.Contains(t, string(wantParams[2]), `"seed":9007199254740995`)
	assert.Contains(t, string(wantParams[2]), `"big":12345678901234567890`)

	// Task 1's dir is gone, task 2's spec and params are empty (written,
	// never flushed), task 3 lost its bundle link and outputs dir.
	require.NoError(t, os.RemoveAll(dirs[1].Path()))
	require.NoError(t, os.Truncate(dirs[2].Spec(), 0))
	require.NoError(t, os.Truncate(dirs[2].Params(), 0))
	require.NoError(t, os.Remove(dirs[3].Bundle()))
	require.NoError(t, os.Remove(dirs[3].Outputs()))
	for i := 1; i < 4; i++ {
		dir, restored, err := submit.RestoreTask(sw.Dir, i)
		require.NoError(t, err, "task %d", i)
		assert.True(t, restored, "task %d", i)
		assert.Equal(t, sw.Tasks[i].Dir, dir)
		assert.Equal(t, string(wantSpec[i]), string(read(dirs[i].Spec())), "task %d's spec", i)
		assert.Equal(t, string(wantParams[i]), string(read(dirs[i].Params())), "task %d's params", i)
		a, err := os.Stat(filepath.Join(sw.Dir, job.BundleFile))
		require.NoError(t, err)
		b, err := os.Stat(dirs[i].Bundle())
		require.NoError(t, err)
		assert.True(t, os.SameFile(a, b), "task %d's bundle is the sweep's, linked", i)
		fi, err := os.Stat(dirs[i].Outputs())
		require.NoError(t, err)
		assert.True(t, fi.IsDir())
		fi, err = os.Stat(dirs[i].Path())
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
		// A second look finds it complete.
		_, again, err := submit.RestoreTask(sw.Dir, i)
		require.NoError(t, err)
		assert.False(t, again)
	}

	_, _, err = submit.RestoreTask(sw.Dir, 4)
	require.EqualError(t, err, "sweep "+string(sw.ID)+" has no task 4")

	wantBase := read(filepath.Join(sw.Dir, job.SpecFile))
	// Without the base spec (a sweep submitted before it was kept), an
	// incomplete task cannot be rebuilt, and says why.
	require.NoError(t, os.Remove(filepath.Join(sw.Dir, job.SpecFile)))
	require.NoError(t, os.RemoveAll(dirs[1].Path()))
	_, _, err = submit.RestoreTask(sw.Dir, 1)
	require.ErrorContains(t, err, "task 1's job dir "+dirs[1].Path()+" is incomplete, and the sweep's base spec to rebuild it from cannot be read")
	_, err = os.Stat(dirs[1].Path())
	assert.True(t, os.IsNotExist(err), "nothing half-built is left")

	// A rebuild that fails half-way (the sweep's bundle is gone) leaves
	// no half-built dir either.
	require.NoError(t, os.WriteFile(filepath.Join(sw.Dir, job.SpecFile), wantBase, 0o600))
	require.NoError(t, os.Remove(filepath.Join(sw.Dir, job.BundleFile)))
	_, _, err = submit.RestoreTask(sw.Dir, 1)
	require.ErrorContains(t, err, "rebuild task 1: link bundle")
	_, err = os.Stat(dirs[1].Path())
	assert.True(t, os.IsNotExist(err), "nothing half-built is left: %v", err)
	ents, err := os.ReadDir(filepath.Dir(dirs[1].Path()))
	require.NoError(t, err)
	for _, e := range ents {
		assert.NotContains(t, e.Name(), ".tmp-", "no staging dir is left")
	}
}
