package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// A user creates a project, submits it, waits, and gets the outputs back,
// owned by them.
func TestInitSubmitWaitGet(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "hello")
	r := ferry(t, u, dir, "submit", "--wait", "-o", "json", "--param", "n=1000", "--param", "greeting=ahoy", proj)
	require.Equal(t, 0, r.Code, r.String())
	var s submitted
	require.NoError(t, json.Unmarshal([]byte(r.Out), &s), r.String())
	require.NotNil(t, s.Status)
	assert.Equal(t, job.Succeeded, s.Status.State)
	assert.Equal(t, 0, *s.Status.ExitCode)
	assert.Contains(t, []string{"w1", "w2"}, s.Status.Node)

	out := filepath.Join(dir, "got")
	r = ferry(t, u, dir, "get", s.ID, "-o", out, "--bundle")
	require.Equal(t, 0, r.Code, r.String())

	logData, err := os.ReadFile(filepath.Join(out, "log"))
	require.NoError(t, err)
	assert.Contains(t, string(logData), "ahoy from "+s.Status.Node)
	assert.Contains(t, string(logData), `"n": 1000`)
	assert.Contains(t, string(logData), "sum of squares below 1000 = 332833500")

	got, err := os.ReadFile(filepath.Join(out, "outputs", "result.txt"))
	require.NoError(t, err)
	assert.Equal(t, "332833500\n", string(got))

	var res job.Result
	data, err := os.ReadFile(filepath.Join(out, "result.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &res))
	assert.Equal(t, job.Succeeded, res.State)
	assert.NotEmpty(t, res.ImageDigest)

	// Files the sandbox wrote to /out are the user's own.
	for _, name := range []string{"result.txt", "metrics.jsonl"} {
		fi, err := os.Stat(filepath.Join(s.Dir, "outputs", name))
		require.NoError(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		assert.Equal(t, uint32(u.UID), st.Uid, "%s owner", name)
		assert.Equal(t, uint32(u.GID), st.Gid, "%s group", name)
	}
	// --bundle unpacked the project as submitted.
	_, err = os.Stat(filepath.Join(out, "bundle", "main.py"))
	assert.NoError(t, err)

	// ls shows it, newest first, and status agrees.
	r = ferry(t, u, dir, "ls", "-o", "json")
	require.Equal(t, 0, r.Code, r.String())
	var list []job.Status
	require.NoError(t, json.Unmarshal([]byte(r.Out), &list))
	require.NotEmpty(t, list)
	assert.Equal(t, s.ID, string(list[0].ID))
	// The Slurm id and a prefix are accepted as the job's id.
	assert.Equal(t, job.ID(s.ID), status(t, u, s.SlurmID).ID)
	assert.Equal(t, job.ID(s.ID), status(t, u, s.ID[:12]).ID)
}

// A failing job ends failed with its exit code, and --wait exits with it.
func TestExitCodePassesThrough(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "fails")
	r := ferry(t, u, dir, "submit", "--wait", proj, "--", "python3", "-c", "import sys; print('bye'); sys.exit(3)")
	assert.Equal(t, 3, r.Code, r.String())
	id := strings.TrimSpace(r.Out)
	st := status(t, u, id)
	assert.Equal(t, job.Failed, st.State)
	require.NotNil(t, st.ExitCode)
	assert.Equal(t, 3, *st.ExitCode)
	assert.Equal(t, "exited with code 3", st.Reason)
	assert.Contains(t, r.Err, "failed: exited with code 3")
}

// --follow streams the log to stdout while the job runs.
func TestFollowStreamsLog(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "follow")
	r := ferry(t, u, dir, "submit", "-f", proj, "--", "sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.2; done")
	require.Equal(t, 0, r.Code, r.String())
	assert.Equal(t, "line 1\nline 2\nline 3\n", r.Out)
}

// A running job cancelled with ferry cancel ends cancelled, and its
// container is gone within 15 s.
func TestCancelRunningJob(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "cancelme")
	s := submit(t, u, dir, proj, "--", "sleep", "600")
	waitContainer(t, s.ID, 60*time.Second)
	r := ferry(t, u, dir, "cancel", s.ID[:12])
	require.Equal(t, 0, r.Code, r.String())
	assert.Equal(t, s.ID, strings.TrimSpace(r.Out))
	st := waitState(t, u, s.ID, 30*time.Second, func(st job.Status) bool { return st.State.Terminal() })
	assert.Equal(t, job.Cancelled, st.State, st.Reason)
	waitNoContainers(t, s.ID, 15*time.Second)
	res := readResult(t, s.Dir)
	assert.Equal(t, job.Cancelled, res.State)
	assert.Equal(t, "sandbox", res.WrittenBy)
	assertNoScratch(t, s.ID, 15*time.Second)
}

// When the batch script dies by SIGKILL (no trap can run), the job still
// ends with a recorded reason and no container is left: the agent sees its
// client go, and the Slurm epilog removes anything labelled with the job.
func TestSigkilledBatchScriptLeavesNoContainer(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "killme")
	s := submit(t, u, dir, proj, "--", "sleep", "600")
	waitContainer(t, s.ID, 60*time.Second)
	pid := sandboxPID(t, s.Dir)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	waitNoContainers(t, s.ID, 15*time.Second)
	st := waitEpilogRecord(t, u, s)
	assert.Equal(t, job.Failed, st.State)
	assert.Contains(t, st.Reason, "sandbox process was killed")
	res := readResult(t, s.Dir)
	assert.Equal(t, "epilog", res.WrittenBy)
	fi, err := os.Stat(filepath.Join(s.Dir, job.ResultFile))
	require.NoError(t, err)
	assert.Equal(t, uint32(u.UID), fi.Sys().(*syscall.Stat_t).Uid, "the epilog writes result.json as the user's file")
	assertNoScratch(t, s.ID, 15*time.Second)
}

// With the agent down as well, a SIGKILLed batch script still leaves no
// container: the epilog finds the agent gone and removes the job's
// containers through the Docker API itself, and records the end.
func TestSigkilledBatchScriptWithAgentDown(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "killboth")
	s := submit(t, u, dir, proj, "--", "sleep", "600")
	waitContainer(t, s.ID, 60*time.Second)
	node := status(t, u, s.ID).Node
	pid := sandboxPID(t, s.Dir)
	// Freeze the job's sandbox process, so it cannot react, then take the
	// agent away, then kill the batch script: nobody but the epilog is
	// left to clean up.
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	killAgent(t, node)
	t.Cleanup(func() { restartAgent(t, node) })
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	waitNoContainers(t, s.ID, 15*time.Second)
	st := waitEpilogRecord(t, u, s)
	assert.Equal(t, job.Failed, st.State)
	assert.Contains(t, st.Reason, "sandbox process was killed")
	assert.Contains(t, st.Reason, "the epilog removed its container")
	res := readResult(t, s.Dir)
	assert.Equal(t, "epilog", res.WrittenBy)
	epilog, err := os.ReadFile("/var/log/ferry/epilog.log")
	require.NoError(t, err)
	assert.Contains(t, string(epilog), "removing job "+s.SlurmID+"'s containers directly")
	assertNoScratch(t, s.ID, 15*time.Second)
}

// waitEpilogRecord waits until the job has ended and its result.json is
// written: Slurm may report the end a moment before the epilog has
// written its record.
func waitEpilogRecord(t *testing.T, u tuser, s submitted) job.Status {
	t.Helper()
	return waitState(t, u, s.ID, 30*time.Second, func(st job.Status) bool {
		_, err := os.Stat(filepath.Join(s.Dir, job.ResultFile))
		return st.State.Terminal() && err == nil
	})
}

// assertNoScratch waits until no scratch dir of the job is left on the
// workers' node-local scratch root.
func assertNoScratch(t *testing.T, id string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left, err := filepath.Glob("/var/tmp/ferry/" + id + ".*")
		require.NoError(t, err)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("scratch dirs of job %s left on the node after %s: %v", id, timeout, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clear-queue cancels only the caller's own queued jobs (of one project
// when asked), never a running job or another user's; rm refuses a job
// that has not ended and removes one that has; logs prints a job's log,
// and logs -f follows it to the end.
func TestClearQueueRmLogs(t *testing.T) {
	u := lookup(t, alice)
	b := lookup(t, bob)
	dir, proj := project(t, u, "q")
	otherDir, other := project(t, u, "other")
	bdir, bproj := project(t, b, "q")

	// Two running jobs take both workers; the rest queue behind them.
	var running []submitted
	for range 2 {
		running = append(running, submit(t, u, dir, proj, "--", "sh", "-c", "echo started; sleep 600"))
	}
	for _, s := range running {
		t.Cleanup(func() { ferry(t, u, dir, "cancel", s.ID) })
		waitState(t, u, s.ID, 90*time.Second, func(st job.Status) bool { return st.State == job.Running })
	}
	queuedQ := submit(t, u, dir, proj, "--", "true")
	queuedOther := submit(t, u, otherDir, other, "--", "true")
	bobs := submit(t, b, bdir, bproj, "--", "true")
	t.Cleanup(func() { ferry(t, b, bdir, "cancel", bobs.ID) })
	for _, s := range []submitted{queuedQ, queuedOther} {
		assert.Equal(t, job.Queued, status(t, u, s.ID).State)
	}

	r := ferry(t, u, dir, "clear-queue", "--project", "q")
	require.Equal(t, 0, r.Code, r.String())
	// piped: one line per cancelled job, id, Slurm id and project
	assert.Equal(t, queuedQ.ID+"\t"+queuedQ.SlurmID+"\tq\n", r.Out, "cancelled only alice's queued job of project q")
	r = ferry(t, u, dir, "clear-queue")
	require.Equal(t, 0, r.Code, r.String())
	assert.Equal(t, queuedOther.ID+"\t"+queuedOther.SlurmID+"\tother\n", r.Out)
	for _, s := range []submitted{queuedQ, queuedOther} {
		st := waitState(t, u, s.ID, 30*time.Second, func(st job.Status) bool { return st.State.Terminal() })
		assert.Equal(t, job.Cancelled, st.State, st.Reason)
	}
	for _, s := range running {
		assert.Equal(t, job.Running, status(t, u, s.ID).State, "a running job is not clear-queue's")
	}
	assert.Equal(t, job.Queued, status(t, b, bobs.ID).State, "bob's queued job is not alice's to clear")

	// logs: what the running job printed so far.
	r = ferry(t, u, dir, "logs", running[0].ID)
	require.Equal(t, 0, r.Code, r.String())
	assert.Equal(t, "started\n", r.Out)

	// rm: not while it runs; a finished job's dir goes entirely.
	r = ferry(t, u, dir, "rm", running[0].ID)
	assert.NotEqual(t, 0, r.Code, r.String())
	assert.Contains(t, r.Err, "running")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(r.Err), "\n")+1, "one line: %q", r.Err)
	assert.DirExists(t, running[0].Dir)

	r = ferry(t, u, dir, "rm", queuedQ.ID, queuedOther.ID)
	require.Equal(t, 0, r.Code, r.String())
	assert.NoDirExists(t, queuedQ.Dir)
	assert.NoDirExists(t, queuedOther.Dir)
	r = ferry(t, u, dir, "status", queuedQ.ID)
	assert.Equal(t, 4, r.Code, "a removed job is unknown: %s", r)

	// logs -f follows a job to its end.
	for _, s := range running {
		ferry(t, u, dir, "cancel", s.ID)
	}
	f := submit(t, u, dir, proj, "--", "sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.5; done")
	r = ferry(t, u, dir, "logs", "-f", f.ID)
	require.Equal(t, 0, r.Code, r.String())
	assert.Equal(t, "tick 1\ntick 2\ntick 3\n", r.Out)
	assert.True(t, status(t, u, f.ID).State.Terminal(), "logs -f returned only when the job ended")
}

// sandboxPID finds the `ferry sandbox run` process of a job dir.
func sandboxPID(t testing.TB, jobDir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if len(args) >= 5 && strings.HasSuffix(args[0], "ferry") && args[1] == "sandbox" && args[2] == "run" && args[4] == jobDir {
			var pid int
			_, err := fmt.Sscan(e.Name(), &pid)
			require.NoError(t, err)
			return pid
		}
	}
	t.Fatalf("no ferry sandbox run process for %s", jobDir)
	return 0
}

// Both workers run jobs, and a worker never runs two jobs at once.
func TestBothWorkersExclusive(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "spread")
	const n = 6
	ids := make([]submitted, n)
	runs := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { // no require in a goroutine: collect, then check
			defer wg.Done()
			runs[i] = ferry(t, u, dir, "submit", "-o", "json", proj, "--", "sleep", "1.5")
		}()
	}
	wg.Wait()
	for i, r := range runs {
		require.Equal(t, 0, r.Code, r.String())
		require.NoError(t, json.Unmarshal([]byte(r.Out), &ids[i]), r.String())
	}
	type span struct {
		node       string
		start, end time.Time
	}
	var spans []span
	for _, s := range ids {
		st := waitState(t, u, s.ID, 120*time.Second, func(st job.Status) bool { return st.State.Terminal() })
		require.Equal(t, job.Succeeded, st.State, st.Reason)
		res := readResult(t, s.Dir)
		spans = append(spans, span{res.Node, res.BatchStart, res.Ended})
	}
	nodes := map[string][]span{}
	for _, sp := range spans {
		nodes[sp.node] = append(nodes[sp.node], sp)
	}
	assert.Len(t, nodes, 2, "jobs ran on %v", nodes)
	for node, list := range nodes {
		sort.Slice(list, func(i, j int) bool { return list[i].start.Before(list[j].start) })
		for i := 1; i < len(list); i++ {
			assert.False(t, list[i].start.Before(list[i-1].end),
				"two jobs overlapped on %s: one ran %s–%s, the next started %s", node,
				list[i-1].start.Format(time.StampMilli), list[i-1].end.Format(time.StampMilli), list[i].start.Format(time.StampMilli))
		}
	}
}
