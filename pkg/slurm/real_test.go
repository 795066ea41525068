package slurm

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// requireSlurm runs a test against the real Slurm only when FERRY_E2E=1. In
// CI (CI=true) a missing FERRY_E2E fails the test: it never skips silently
// there.
func requireSlurm(t *testing.T) {
	t.Helper()
	switch {
	case os.Getenv("FERRY_E2E") == "1":
	case os.Getenv("CI") == "true" && os.Getenv("FERRY_E2E") == "":
		t.Fatal("CI=true but FERRY_E2E is unset: bring up the test cluster (tests/cluster.sh up) and set FERRY_E2E=1")
	default:
		t.Skip("real Slurm: set FERRY_E2E=1 with a cluster up (tests/cluster.sh up)")
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		require.NoError(t, err)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func findJob(jobs []Job, id string) (Job, bool) {
	for _, j := range jobs {
		if j.ID == id {
			return j, true
		}
	}
	return Job{}, false
}

func TestRealSlurm(t *testing.T) {
	requireSlurm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := New()
	me, err := user.Current()
	require.NoError(t, err)
	fid := job.NewID(time.Now())

	id, err := c.Submit(ctx, "", "--wrap", "sleep 30", "--comment=ferry:"+string(fid), "-J", "ferry/test",
		"--output=/dev/null", "--chdir=/tmp")
	require.NoError(t, err)
	require.Regexp(t, `^[0-9]+$`, id)
	t.Cleanup(func() { _ = c.Cancel(context.Background(), []string{id}, "") })

	t.Run("found by user", func(t *testing.T) {
		jobs, err := c.Jobs(ctx, Query{User: me.Username})
		require.NoError(t, err)
		j, ok := findJob(jobs, id)
		require.True(t, ok, "job %s not in %+v", id, jobs)
		assert.Equal(t, me.Username, j.User)
		assert.Equal(t, me.Uid, strconv.Itoa(j.UID))
	})

	var j Job
	t.Run("found by id", func(t *testing.T) {
		jobs, err := c.Jobs(ctx, Query{JobIDs: []string{id}})
		require.NoError(t, err)
		require.Len(t, jobs, 1)
		j = jobs[0]
		assert.Equal(t, id, j.ID)
		assert.Equal(t, id, j.RawID)
		assert.Equal(t, id, j.ArrayJobID)
		assert.Equal(t, -1, j.ArrayTaskID)
		assert.Equal(t, "ferry/test", j.Name)
		assert.Equal(t, "/tmp", j.WorkDir)
		got, ok := j.FerryID()
		assert.True(t, ok)
		assert.Equal(t, fid, got)
		st, _ := j.Observed()
		assert.Contains(t, []job.State{job.Queued, job.Running}, st)
		assert.False(t, j.Submit.IsZero())
		assert.WithinDuration(t, time.Now(), j.Submit, time.Minute)
	})

	require.NoError(t, c.Cancel(ctx, []string{id}, ""))
	waitFor(t, "the job to be cancelled", 30*time.Second, func() (bool, error) {
		jobs, err := c.Jobs(ctx, Query{JobIDs: []string{id}})
		if err != nil || len(jobs) != 1 {
			return false, err
		}
		st, reason := jobs[0].Observed()
		if st == job.Cancelled {
			assert.Equal(t, "cancelled", reason)
			return true, nil
		}
		return false, nil
	})

	t.Run("purged id is an empty list", func(t *testing.T) {
		jobs, err := c.Jobs(ctx, Query{JobIDs: []string{"987654321"}})
		require.NoError(t, err)
		assert.Empty(t, jobs)
	})

	t.Run("nodes", func(t *testing.T) {
		nodes, err := c.Nodes(ctx)
		require.NoError(t, err)
		var names []string
		for _, n := range nodes {
			names = append(names, n.Name)
			assert.Positive(t, n.CPUs, "node %s", n.Name)
			assert.NotEmpty(t, n.State, "node %s", n.Name)
		}
		assert.Subset(t, names, []string{"w1", "w2"})
	})

	t.Run("max array size", func(t *testing.T) {
		n, err := c.MaxArraySize(ctx)
		require.NoError(t, err)
		assert.Positive(t, n)
	})
}

// TestRealSlurmArrayAndOddFields checks what the fake cannot: squeue's real
// formatting of array tasks, and a comment and name that hold the
// separators and spaces.
func TestRealSlurmArrayAndOddFields(t *testing.T) {
	requireSlurm(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := New()

	odd := "ferry:odd" + fieldSep + "x | y" + recordEnd + "z,  end "
	id, err := c.Submit(ctx, "", "--hold", "--array=0-2", "--wrap", "true", "--comment="+odd,
		"-J", "ferry/odd name", "--output=/dev/null", "--chdir=/tmp")
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Cancel(context.Background(), []string{id}, "") })

	jobs, err := c.Jobs(ctx, Query{JobIDs: []string{id}})
	require.NoError(t, err)
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.ID)
		assert.Equal(t, id, j.ArrayJobID)
		assert.Equal(t, j.ID, id+"_"+strconv.Itoa(j.ArrayTaskID))
		assert.Equal(t, odd, j.Comment)
		assert.Equal(t, "ferry/odd name", j.Name)
		st, reason := j.Observed()
		assert.Equal(t, job.Queued, st)
		assert.True(t, strings.HasPrefix(reason, "waiting: "), reason)
		assert.True(t, j.Start.IsZero(), "a held job has not started")
	}
	slices.Sort(ids)
	assert.Equal(t, []string{id + "_0", id + "_1", id + "_2"}, ids)

	// A pending array task that is cancelled leaves no record at all: it is
	// dropped from the array, and squeue -j of it answers nothing, exit 0.
	require.NoError(t, c.Cancel(ctx, []string{id + "_1"}, ""))
	waitFor(t, "task 1 to leave the queue", 30*time.Second, func() (bool, error) {
		jobs, err := c.Jobs(ctx, Query{JobIDs: []string{id + "_1"}})
		return err == nil && len(jobs) == 0, err
	})
	jobs, err = c.Jobs(ctx, Query{JobIDs: []string{id}})
	require.NoError(t, err)
	ids = nil
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	slices.Sort(ids)
	assert.Equal(t, []string{id + "_0", id + "_2"}, ids)
}

// TestRealSlurmRenderedScript submits a script Render made, with hostile
// values in Env and Args, as a two-task array, and checks that sbatch takes
// every directive, that both tasks succeed and that the values arrive
// verbatim on the worker.
func TestRealSlurmRenderedScript(t *testing.T) {
	requireSlurm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := New()

	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	hostile := "$(touch " + marker + ") `touch " + marker + "` a'b \"c\"\nline2 $HOME"
	fid := job.NewID(time.Now())
	script, err := Render(Script{
		JobName:   "ferry/render-test",
		Comment:   "ferry:" + string(fid),
		Output:    dir + "/slurm-%a.out",
		Chdir:     dir,
		CPUs:      1,
		MemBytes:  64 << 20,
		TimeLimit: 120,
		Array:     "0-1",
		Ferry:     "/bin/sh",
		Args:      []string{"-c", `printf '%s\0%s' "$1" "$FERRY_HOSTILE" > "out-$SLURM_ARRAY_TASK_ID"`, "printer", hostile},
		Env:       map[string]string{"FERRY_HOSTILE": hostile},
		Header:    []string{"ferry job " + string(fid) + ", project render-test"},
	})
	require.NoError(t, err)
	path := filepath.Join(dir, "job.sbatch")
	require.NoError(t, os.WriteFile(path, script, 0o600))

	id, err := c.Submit(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Cancel(context.Background(), []string{id}, "") })

	waitFor(t, "both tasks to end", 150*time.Second, func() (bool, error) {
		jobs, err := c.Jobs(ctx, Query{JobIDs: []string{id}})
		if err != nil {
			return false, err
		}
		done := 0
		for _, j := range jobs {
			st, reason := j.Observed()
			if st.Terminal() {
				require.Equal(t, job.Succeeded, st, "task %s: %s; slurm.out: %s", j.ID, reason, readFile(dir, "slurm-"+strconv.Itoa(j.ArrayTaskID)+".out"))
				got, ok := j.FerryID()
				assert.True(t, ok)
				assert.Equal(t, fid, got)
				assert.Equal(t, "ferry/render-test", j.Name)
				assert.Equal(t, "2:00", j.TimeLimit)
				done++
			}
		}
		return done == 2, nil
	})
	for _, task := range []string{"0", "1"} {
		assert.Equal(t, hostile+"\x00"+hostile, readFile(dir, "out-"+task))
	}
	assert.NoFileExists(t, marker)
}

func readFile(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}

// TestRealSlurmSignal checks that Cancel with a signal reaches the batch
// shell, where ferry runs: the job traps USR1 and exits 0.
func TestRealSlurmSignal(t *testing.T) {
	requireSlurm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := New()
	ready := filepath.Join(t.TempDir(), "ready")
	id, err := c.Submit(ctx, "", "--wrap", "trap 'exit 0' USR1; touch "+Quote(ready)+"; while :; do sleep 0.1; done",
		"-J", "ferry/signal-test", "--output=/dev/null", "--chdir=/tmp")
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Cancel(context.Background(), []string{id}, "") })

	// The job has set its trap once it created the ready file.
	waitFor(t, "the job to run and set its trap", 90*time.Second, func() (bool, error) {
		_, err := os.Stat(ready)
		return err == nil, nil
	})
	ended := func() (bool, error) {
		jobs, err := c.Jobs(ctx, Query{JobIDs: []string{id}})
		if err != nil || len(jobs) != 1 {
			return false, err
		}
		st, reason := jobs[0].Observed()
		if st.Terminal() {
			assert.Equal(t, job.Succeeded, st, reason)
			return true, nil
		}
		return false, nil
	}
	require.NoError(t, c.Cancel(ctx, []string{id}, "USR1"))
	waitFor(t, "the job to exit 0 on USR1", 30*time.Second, ended)
}

// TestRealSlurmQueuePlace lists the real queue: three jobs submitted in a
// row to the parked partition (down: they wait) take three consecutive
// places there, in submit order (same user, same priority factors), and
// the partition's queue grows by three. Where they stand among jobs
// already waiting depends on their priority (fair share), not asserted.
func TestRealSlurmQueuePlace(t *testing.T) {
	requireSlurm(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := New()
	before, err := c.Pending(ctx)
	require.NoError(t, err)
	_, ahead := QueuePlace(append(before, Pending{ID: "0", Partition: "parked"}), "0")
	var ids []string
	for i := 0; i < 3; i++ {
		id, err := c.Submit(ctx, "", "--wrap", "true", "-p", "parked", "-J", "ferry/queue-test", "--output=/dev/null", "--chdir=/tmp")
		require.NoError(t, err)
		ids = append(ids, id)
	}
	t.Cleanup(func() { _ = c.Cancel(context.Background(), ids, "") })
	pending, err := c.Pending(ctx)
	require.NoError(t, err)
	first, _ := QueuePlace(pending, ids[0])
	require.Positive(t, first, "job %s is in the listing", ids[0])
	for i, id := range ids {
		pos, total := QueuePlace(pending, id)
		assert.Equal(t, first+i, pos, "job %s", id)
		assert.Equal(t, ahead-1+3, total)
	}
	for _, p := range pending {
		if slices.Contains(ids, p.ID) {
			assert.Equal(t, "parked", p.Partition)
		}
	}
}
