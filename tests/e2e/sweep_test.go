package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	submitpkg "github.com/ferry-hpc/ferry/pkg/submit"
)

type shown struct {
	ID    string `json:"id"`
	Tasks []struct {
		Index   int            `json:"index"`
		ID      string         `json:"id"`
		State   job.State      `json:"state"`
		Params  map[string]any `json:"params"`
		Metrics map[string]any `json:"metrics"`
	} `json:"tasks"`
}

// A 12-point grid runs as one job array; every task is a job of its own,
// and sweep show tabulates params and metrics, sorted.
func TestSweepGrid(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "grid")
	spec := filepath.Join(dir, "sweep.yaml")
	require.NoError(t, os.WriteFile(spec, []byte("params:\n  n: [10, 20, 30, 40, 50, 60]\n  greeting: [hi, yo]\n"), 0o644))
	chownTree(t, dir, u)
	r := ferry(t, u, dir, "sweep", "-o", "json", "--spec", spec, proj)
	require.Equal(t, 0, r.Code, r.String())
	var sw submitpkg.Sweep
	require.NoError(t, json.Unmarshal([]byte(r.Out), &sw), r.String())
	require.Len(t, sw.Tasks, 12)
	require.Len(t, sw.Arrays, 1, "one sbatch --array for the whole sweep")
	for _, task := range sw.Tasks {
		waitState(t, u, string(task.ID), 180*time.Second, func(st job.Status) bool { return st.State.Terminal() })
	}
	r = ferry(t, u, dir, "sweep", "show", "-o", "json", "--sort=-sum_of_squares", string(sw.ID)[:12])
	require.Equal(t, 0, r.Code, r.String())
	var s shown
	require.NoError(t, json.Unmarshal([]byte(r.Out), &s), r.String())
	require.Len(t, s.Tasks, 12)
	for _, task := range s.Tasks {
		assert.Equal(t, job.Succeeded, task.State, "task %d", task.Index)
	}
	best := s.Tasks[0]
	assert.EqualValues(t, 60, best.Params["n"])
	assert.EqualValues(t, 70210, best.Metrics["sum_of_squares"], "sum of squares below 60")
	// each task's log says its own params
	logData, err := os.ReadFile(filepath.Join(u.Home, ".ferry", "jobs", best.ID, "log"))
	require.NoError(t, err)
	assert.Contains(t, string(logData), "sum of squares below 60 = 70210")
}

// A sweep larger than the cluster's MaxArraySize (1001 here) is split into
// several arrays, not refused; cancelling the sweep cancels them all.
func TestSweepOverArrayLimitIsSplit(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "wide")
	list := make([]map[string]int, 1003)
	for i := range list {
		list[i] = map[string]int{"i": i}
	}
	data, _ := json.Marshal(list)
	pl := filepath.Join(dir, "points.json")
	require.NoError(t, os.WriteFile(pl, data, 0o644))
	chownTree(t, dir, u)
	r := ferry(t, u, dir, "sweep", "-o", "json", "--params-list", pl, "--max-parallel", "1", "--time", "1", proj, "--", "true")
	require.Equal(t, 0, r.Code, r.String())
	var sw submitpkg.Sweep
	require.NoError(t, json.Unmarshal([]byte(r.Out), &sw), r.String())
	require.Len(t, sw.Tasks, 1003)
	require.Len(t, sw.Arrays, 2)
	assert.Equal(t, submitpkg.ArrayJob{SlurmID: sw.Arrays[0].SlurmID, First: 0, Last: 1000}, sw.Arrays[0])
	assert.Equal(t, submitpkg.ArrayJob{SlurmID: sw.Arrays[1].SlurmID, First: 1001, Last: 1002}, sw.Arrays[1])

	r = ferry(t, u, dir, "cancel", string(sw.ID))
	require.Equal(t, 0, r.Code, r.String())
	waitQueueEmpty(t, u, 60*time.Second)
	// a pending task that was cancelled vanishes from Slurm; it shows as cancelled, not lost
	st := status(t, u, string(sw.Tasks[1002].ID))
	assert.Contains(t, []job.State{job.Cancelled, job.Succeeded}, st.State, st.Reason)
}

// submit waits only for the sweep's own dir to reach the disk, not for
// every task's files: a task whose dir a crash lost or emptied is rebuilt
// from the sweep's record when it starts, and runs as submitted.
func TestSweepTaskDirLostIsRebuilt(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "rebuilt")
	pl := filepath.Join(dir, "points.json")
	require.NoError(t, os.WriteFile(pl, []byte(`[{"i": 0}, {"i": 1}, {"i": 2}]`), 0o644))
	chownTree(t, dir, u)
	// One task at a time, each 3 s: tasks 1 and 2 are still pending when
	// their dirs are damaged below.
	r := ferry(t, u, dir, "sweep", "-o", "json", "--params-list", pl, "--max-parallel", "1", proj,
		"--", "sh", "-c", `sleep 3; echo "params $FERRY_PARAMS"`)
	require.Equal(t, 0, r.Code, r.String())
	var sw submitpkg.Sweep
	require.NoError(t, json.Unmarshal([]byte(r.Out), &sw), r.String())
	require.Len(t, sw.Tasks, 3)
	require.NoError(t, os.Truncate(job.Dir(sw.Tasks[1].Dir).Spec(), 0))
	require.NoError(t, os.RemoveAll(sw.Tasks[2].Dir))

	// Until task 2 starts and rebuilds its dir, only the sweep's record
	// knows it ('ferry status' says no such job).
	require.Eventually(t, func() bool {
		_, err := os.Stat(job.Dir(sw.Tasks[2].Dir).Spec())
		return err == nil
	}, 180*time.Second, 200*time.Millisecond, "task 2 rebuilds its dir when it starts")
	for i, task := range sw.Tasks {
		st := waitState(t, u, string(task.ID), 180*time.Second, func(st job.Status) bool { return st.State.Terminal() })
		require.Equal(t, job.Succeeded, st.State, "task %d: %s", i, st.Reason)
		logData, err := os.ReadFile(filepath.Join(task.Dir, "log"))
		require.NoError(t, err)
		assert.Contains(t, string(logData), fmt.Sprintf(`"i":%d,`, i), "task %d ran with its own params", i)
		spec, err := job.ReadSpec(job.Dir(task.Dir))
		require.NoError(t, err)
		assert.Equal(t, task.ID, spec.ID)
		slurmOut, err := os.ReadFile(filepath.Join(sw.Dir, fmt.Sprintf("slurm-0-%d.out", i)))
		require.NoError(t, err)
		if i == 0 {
			assert.NotContains(t, string(slurmOut), "rebuilt it", "task 0 was intact")
		} else {
			assert.Contains(t, string(slurmOut), fmt.Sprintf("ferry: task %d's job dir %s was incomplete", i, task.Dir))
		}
	}
	// Task 2's slurm_id hint went with its dir; its Slurm id still finds
	// it, through the sweep's record.
	_, err := os.Stat(job.Dir(sw.Tasks[2].Dir).SlurmID())
	require.True(t, os.IsNotExist(err), "the hint is gone: %v", err)
	r = ferry(t, u, dir, "status", "-o", "json", sw.Arrays[0].SlurmID+"_2")
	require.Equal(t, 0, r.Code, r.String())
	var st job.Status
	require.NoError(t, json.Unmarshal([]byte(r.Out), &st), r.String())
	assert.Equal(t, sw.Tasks[2].ID, st.ID)
}
