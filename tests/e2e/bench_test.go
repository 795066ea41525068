package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/agent"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/sandbox"
	"github.com/ferry-hpc/ferry/pkg/sandbox/docker"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// The benchmarks below print their figures as "BENCH" lines in the test
// output (tests/run.sh keeps it in /tmp/ferry-test.log). They measure and
// report; they never fail on a time, since times depend on the machine.

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func bench(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("BENCH "+format, args...)
	t.Log(line)
	fmt.Println(line)
}

// timeAs runs a command as u and returns how long it took.
func timeAs(t *testing.T, u tuser, dir string, name string, args ...string) time.Duration {
	t.Helper()
	c := cmdAs(context.Background(), u, dir, nil, name, args...)
	start := time.Now()
	out, err := c.CombinedOutput()
	took := time.Since(start)
	require.NoError(t, err, string(out))
	return took
}

// `ferry submit` of a 100-file, 1 MB project against a bare
// `sbatch --parsable --wrap true`, 20 runs each, interleaved. Both submit
// into the parked partition (State=DOWN: jobs queue and never start), so
// that the jobs do not start containers on this machine's two cores while
// submit itself is timed: on a cluster the user node is not a worker.
//
// More is timed in the same rounds, to show where ferry's time goes:
// `ferry version` (ferry's start-up and exit, no work); sbatchfloor, the
// least a Go program that submits through sbatch can do
// (testdata/sbatchfloor: start, run sbatch with a script on stdin, exit);
// and how long sbatch still takes once handed its script after it has
// started, which bounds what ferry gains by starting sbatch early.
func TestBenchSubmitVsSbatch(t *testing.T) {
	u := lookup(t, alice)
	dir := workdir(t, u)
	proj := filepath.Join(dir, "hundred")
	require.NoError(t, os.MkdirAll(filepath.Join(proj, "data"), 0o755))
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 10<<10)
	for i := range 100 {
		for j := range buf {
			buf[j] = byte('a' + rng.IntN(26)) // text-like, compressible
		}
		name := filepath.Join(proj, "data", fmt.Sprintf("f%03d.txt", i))
		if i == 0 {
			name = filepath.Join(proj, "main.py")
		}
		require.NoError(t, os.WriteFile(name, buf, 0o644))
	}
	floor := filepath.Join(dir, "sbatchfloor")
	build := exec.Command("go", "build", "-o", floor, "./testdata/sbatchfloor")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build testdata/sbatchfloor: %s", out)
	chownTree(t, dir, u)
	const runs = 20
	// warm: the same project each time (its bundle is linked from the
	// cache); cold: a byte changed before each submit, so it is packed anew.
	var warmT, coldT, sbatchT, floorT, versionT, afterFeedT []time.Duration
	mainPy := filepath.Join(proj, "main.py")
	t.Cleanup(func() { _ = exec.Command("scancel", "-p", parked).Run() })
	for i := range runs {
		warmT = append(warmT, timeAs(t, u, dir, ferryBin, "submit", "--partition", parked, proj, "--", "true"))
		require.NoError(t, os.WriteFile(mainPy, append(buf[:len(buf)-8], fmt.Sprintf("%08d", i)...), 0o644))
		coldT = append(coldT, timeAs(t, u, dir, ferryBin, "submit", "--partition", parked, proj, "--", "true"))
		sbatchT = append(sbatchT, timeAs(t, u, dir, "/usr/bin/sbatch", "--parsable", "--partition", parked, "--wrap", "true"))
		floorT = append(floorT, timeAs(t, u, dir, floor, "--partition", parked))
		versionT = append(versionT, timeAs(t, u, dir, ferryBin, "version"))
		afterFeedT = append(afterFeedT, afterFeed(t, u, dir, floor, feedAfter))
	}
	mw, mc, ms, mf, mv := median(warmT), median(coldT), median(sbatchT), median(floorT), median(versionT)
	us := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	bench(t, "submit: ferry submit (100 files, 1 MB): unchanged project (bundle from the cache) median %v, p95 %v; changed project (packed) median %v, p95 %v; sbatch --parsable --wrap true median %v, p95 %v; ratio of medians %.2f unchanged, %.2f changed (target <= 1.5)",
		us(mw), us(pct(warmT, .95)), us(mc), us(pct(coldT, .95)), us(ms), us(pct(sbatchT, .95)), float64(mw)/float64(ms), float64(mc)/float64(ms))
	bench(t, "submit: in the same rounds: a minimal Go program running sbatch with a script on stdin (testdata/sbatchfloor) median %v, %.2f x sbatch; ferry version (start-up and exit only) median %v",
		us(mf), float64(mf)/float64(ms), us(mv))
	bench(t, "submit: sbatch handed its script %v after it started still took a median %v (p25 %v) to exit: the part of sbatch that nothing done before the hand-over can overlap (%.0f%% of sbatch's median)",
		feedAfter, us(median(afterFeedT)), us(pct(afterFeedT, .25)), 100*float64(median(afterFeedT))/float64(ms))
	require.NoError(t, exec.Command("scancel", "-p", parked).Run())
}

// feedAfter is how long sbatchfloor -feed-after lets sbatch start before it
// hands it the script: longer than sbatch takes to reach its read of stdin.
const feedAfter = 3 * time.Millisecond

// afterFeed runs sbatchfloor -feed-after d as u and returns the time from
// the hand-over of the script to sbatch's exit, which it prints.
func afterFeed(t *testing.T, u tuser, dir, floor string, d time.Duration) time.Duration {
	t.Helper()
	out, err := cmdAs(context.Background(), u, dir, nil, floor, "-feed-after", d.String(), "--partition", parked).Output()
	require.NoError(t, err, string(out))
	lines := strings.Fields(string(out))
	require.Len(t, lines, 2, "sbatchfloor -feed-after prints the job id and the microseconds: %q", out)
	micros, err := strconv.ParseInt(lines[1], 10, 64)
	require.NoError(t, err, "%q", out)
	return time.Duration(micros) * time.Microsecond
}

// parked is the test cluster's partition whose jobs never start
// (slurm/slurm.conf.in).
const parked = "parked"

func waitQueueEmpty(t *testing.T, u tuser, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, err := exec.Command("squeue", "-h", "-u", u.Name, "-t", "pending,running,completing", "-o", "%i").Output()
		if err == nil && strings.TrimSpace(string(out)) == "" {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s still has jobs queued after %s", u.Name, timeout)
}

// Sandbox overhead: from the start of the Slurm batch script (job.sbatch
// records bash's $EPOCHREALTIME before it execs ferry sandbox run) to the
// first line the user's program prints inside its container: unpacking,
// the agent's checks, container create and start. Median of 20 jobs.
func TestBenchSandboxOverhead(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "overhead")
	const runs = 20
	var over []time.Duration
	for range runs {
		s := submit(t, u, dir, "--wait", proj, "--", "python3", "-c", "import time; print(repr(time.time()), flush=True)")
		require.Equal(t, job.Succeeded, s.Status.State, s.Status.Reason)
		res := readResult(t, s.Dir)
		f, err := os.Open(filepath.Join(s.Dir, "log"))
		require.NoError(t, err)
		line, _ := bufio.NewReader(f).ReadString('\n')
		f.Close()
		secs, err := strconv.ParseFloat(strings.TrimSpace(line), 64)
		require.NoError(t, err, line)
		first := time.Unix(0, int64(secs*1e9))
		over = append(over, first.Sub(res.BatchStart))
	}
	bench(t, "sandbox overhead: batch script start -> first line in the container: median %v, p95 %v, min %v over %d jobs (target median < 500ms)",
		median(over).Round(time.Millisecond), pct(over, .95).Round(time.Millisecond), pct(over, 0).Round(time.Millisecond), runs)
}

// The agent's added latency per container: a full run of `true` through the
// agent (unix socket, SO_PEERCRED, a real squeue lookup, the policy, the
// streamed output) against the same container run straight on the Docker
// Engine. Runs as root, with a real Slurm job of root's to satisfy the policy.
func TestBenchAgentLatency(t *testing.T) {
	ctx := t.Context()
	id := job.NewID(time.Now())
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	jobDir := filepath.Join(home, ".ferry", "jobs", string(id))
	require.NoError(t, os.MkdirAll(filepath.Join(jobDir, "outputs"), 0o700))
	t.Cleanup(func() { os.RemoveAll(jobDir) })
	scratch := filepath.Join("/var/tmp/ferry", string(id)+".bench")
	require.NoError(t, os.MkdirAll(scratch, 0o700))
	t.Cleanup(func() { os.RemoveAll(scratch) })

	sl := slurm.New()
	sid, err := sl.Submit(ctx, "", "--exclusive", "--comment=ferry:"+string(id), "-J", "ferry/bench", "--chdir", jobDir, "-o", "/dev/null", "--mem=512M", "--wrap", "sleep 300")
	require.NoError(t, err)
	t.Cleanup(func() { _ = sl.Cancel(context.Background(), []string{sid}, "") })
	var alloc slurm.Allocation
	deadline := time.Now().Add(60 * time.Second)
	for {
		alloc, err = sl.Allocation(ctx, sid)
		require.NoError(t, err)
		if alloc.State == "RUNNING" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, "RUNNING", alloc.State)
	// One agent per node, as on a cluster: the node's own agent would take
	// this bench agent's containers (labelled for its node, held by none
	// of its clients) for orphans and remove them on its next reconcile.
	killAgent(t, alloc.Nodes[0])
	t.Cleanup(func() { restartAgent(t, alloc.Nodes[0]) })

	eng, err := docker.New()
	require.NoError(t, err)
	defer eng.Close()
	pol := &sandbox.Policy{Node: alloc.Nodes[0], Images: []string{"ferry/sandbox:latest"}, ScratchDir: "/var/tmp/ferry", PidsLimit: 512}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := sandbox.Listen(sock)
	require.NoError(t, err)
	actx, stop := context.WithCancel(ctx)
	defer stop()
	a := &sandbox.Agent{Policy: pol, Engine: eng, Slurm: agent.Allocations{Client: sl},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), StopGrace: time.Second,
		MountRoot: filepath.Join(t.TempDir(), "mnt")}
	go a.Serve(actx, ln)

	req := sandbox.Request{SlurmJobID: sid, JobDir: jobDir, Scratch: scratch, Image: "ferry/sandbox:latest", Command: []string{"true"}}
	me := sandbox.Peer{UID: os.Getuid(), GID: os.Getgid()}
	sa := sandbox.Allocation{SlurmJobID: sid, FerryID: id, UID: alloc.UID, State: alloc.State, Nodes: alloc.Nodes, CPUs: alloc.CPUs, MemBytes: alloc.MemBytes}
	spec, err := pol.Decide(req, me, sa)
	require.NoError(t, err)
	client := &sandbox.AgentClient{Socket: sock}

	const runs = 20
	var viaAgent, direct []time.Duration
	viaAgentOnce := func() {
		// The agent removes a run's scratch dir when it ends, as it does
		// for every job: each run gets a fresh one, as from sandbox run.
		require.NoError(t, os.MkdirAll(scratch, 0o700))
		start := time.Now()
		exit, err := client.Launch(ctx, req, io.Discard)
		require.NoError(t, err)
		require.Equal(t, 0, exit.Code)
		viaAgent = append(viaAgent, time.Since(start))
	}
	directOnce := func(i int) {
		require.NoError(t, os.MkdirAll(scratch, 0o700))
		start := time.Now()
		spec.Name = fmt.Sprintf("ferry-bench-direct-%s-%d", id.Short(), i)
		c, err := eng.Start(ctx, spec, io.Discard)
		require.NoError(t, err)
		exit, err := eng.Wait(ctx, c)
		require.NoError(t, err)
		require.NoError(t, eng.Remove(ctx, c.ID, 0))
		require.Equal(t, 0, exit.Code)
		direct = append(direct, time.Since(start))
	}
	// Alternate which goes first, so that neither always follows the
	// other's container removal.
	for i := range runs {
		if i%2 == 0 {
			viaAgentOnce()
			directOnce(i)
		} else {
			directOnce(i)
			viaAgentOnce()
		}
	}
	ma, md := median(viaAgent), median(direct)
	bench(t, "agent latency: container run via the agent median %v (p95 %v); straight on the Docker Engine median %v (p95 %v); added by the agent %v per container (%d runs each)",
		ma.Round(time.Millisecond), pct(viaAgent, .95).Round(time.Millisecond), md.Round(time.Millisecond), pct(direct, .95).Round(time.Millisecond), (ma - md).Round(time.Millisecond), runs)
}
