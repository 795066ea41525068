package deploy

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// TestCluster brings a 2-worker cluster up with build_cluster.sh from no
// images at all, runs jobs on it as an unprivileged user from a shell and
// from a notebook on the user node, and proves it against faults: a worker
// killed mid-job, the head restarted mid-run, an update mid-queue, and a
// second `up` that must change nothing. The subtests share the cluster and
// run in order; the cluster is purged at the end.
func TestCluster(t *testing.T) {
	enabled(t)
	// As on a host with Docker alone: ferry's binaries are built in a
	// container (the host's Go would build the very same bytes).
	t.Setenv("FERRY_BUILD_IN_CONTAINER", "1")
	cfg := writeConfig(t, root)
	t.Cleanup(func() {
		if os.Getenv("FERRY_KEEP_CLUSTER") == "1" {
			t.Logf("FERRY_KEEP_CLUSTER=1: leaving the test cluster up (%s purge --yes)", cfg)
			return
		}
		// The images stay for TestSwarm; TestMain removes them at the end.
		r := cluster(t, cfg, 5*time.Minute, "purge", "--yes", "--keep-images")
		if r.Code != 0 {
			t.Errorf("purge: %s", r)
		}
	})
	require.NoError(t, os.MkdirAll(homeRoot, 0o755))

	var cold, warm time.Duration
	ok := t.Run("cold bring-up from no images", func(t *testing.T) {
		// From nothing: no image of the test prefix (not even the base),
		// no state, no data.
		cluster(t, cfg, 5*time.Minute, "purge", "--yes")
		require.NoError(t, removeImages())
		require.Empty(t, strings.TrimSpace(run(t, time.Minute, "docker", "images", "-q", imagePrefix+"/*").Out))

		r := cluster(t, cfg, 15*time.Minute, "up")
		require.Equal(t, 0, r.Code, r.String())
		cold = r.Took
		t.Logf("cold bring-up:\n%s", r.Err+r.Out)
		assert.Contains(t, r.Out, "is up (compose): head, 2 worker(s) (w1 w2), user node, redis")
		assert.Contains(t, r.Err, "built "+imagePrefix+"/debian:bookworm and "+imagePrefix+"/sandbox:test")
		assert.Contains(t, r.Err, "building ferry and ferryd in "+imagePrefix+"/gobuild:bookworm")
		assert.Contains(t, r.Err, "smoke jobs succeeded as alice (uid 2301 in the sandbox) on:")
		for _, img := range []string{"debian:bookworm", "node:test", "user:test", "sandbox:test"} {
			assert.Equal(t, 0, run(t, time.Minute, "docker", "image", "inspect", imagePrefix+"/"+img).Code, "image %s", img)
		}
	})
	require.True(t, ok, "no cluster to test")

	t.Run("bring-up with images built", func(t *testing.T) {
		r := cluster(t, cfg, 5*time.Minute, "down")
		require.Equal(t, 0, r.Code, r.String())
		assert.Empty(t, composeContainers(t), "down removes every container")
		r = cluster(t, cfg, 10*time.Minute, "up")
		require.Equal(t, 0, r.Code, r.String())
		warm = r.Took
		assert.NotContains(t, r.Err, "changed: built", "no image to build")
		assert.Contains(t, r.Err, "started or recreated: ")
	})

	t.Run("second up changes nothing", func(t *testing.T) {
		before := composeContainers(t)
		require.Len(t, before, 5, "redis, head, w1, w2, user")
		r := cluster(t, cfg, 10*time.Minute, "up")
		require.Equal(t, 0, r.Code, r.String())
		assert.Contains(t, r.Out, "nothing changed: the cluster was already up as configured")
		assert.NotContains(t, r.Err, "changed:")
		assert.Equal(t, before, composeContainers(t), "same containers (ids) started at the same times")
	})

	t.Run("a user added to the list can submit at once", func(t *testing.T) {
		before := composeContainers(t)
		require.NoError(t, os.RemoveAll(filepath.Join(homeRoot, "carol"))) // an earlier run's
		f, err := os.OpenFile(filepath.Join(root, "users.list"), os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = fmt.Fprintf(f, "carol:%d\n", carolUID)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		r := cluster(t, cfg, 10*time.Minute, "up")
		require.Equal(t, 0, r.Code, r.String())
		assert.Contains(t, r.Err, "changed: users list")
		assert.Contains(t, r.Err, "changed: created home "+homeRoot+"/carol")
		assert.Equal(t, before, composeContainers(t), "no container recreated for a new user")

		p := project(t, "carol", carolUID, "hello", map[string]string{"run.sh": intervalJob})
		id := submit(t, "carol", p, "--", "sh", "run.sh", "1")
		waitState(t, "carol", id, 3*time.Minute, job.Succeeded)
		uid, err := os.ReadFile(filepath.Join(homeRoot, "carol", ".ferry", "jobs", string(id), "outputs", "uid"))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("%d\n", carolUID), string(uid))
	})

	fmt.Printf("BENCH cluster bring-up (2 workers, build_cluster.sh up): from no images %.0f s (target < 600 s); with images built %.1f s (target < 60 s)\n",
		cold.Seconds(), warm.Seconds())

	t.Run("jupyter answers with its token only", func(t *testing.T) {
		token, err := os.ReadFile(root + "/state/jupyter.token")
		require.NoError(t, err)
		url := fmt.Sprintf("http://127.0.0.1:%d/api/status", jupyterPort)
		resp, err := http.Get(url + "?token=" + string(token))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		resp, err = http.Get(url + "?token=wrong")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		// The server runs as alice, never root, and no command line that
		// ps shows to every user carries the token.
		ps := run(t, time.Minute, "docker", "exec", container("user"), "ps", "-eo", "user:16,args")
		require.Equal(t, 0, ps.Code, ps.String())
		var server []string
		for _, line := range strings.Split(ps.Out, "\n") {
			if strings.Contains(line, "/usr/bin/jupyter-notebook") {
				server = append(server, strings.Fields(line)[0])
			}
		}
		assert.Equal(t, []string{alice}, server, ps.Out)
		assert.NotContains(t, ps.Out, string(token), "the token is on a command line")
	})

	t.Run("a user on a worker cannot reach the Docker socket", func(t *testing.T) {
		for _, w := range []string{"w1", "w2"} {
			r := run(t, time.Minute, "docker", "exec", "-u", alice, container(w), "ls", "/run/ferry-docker")
			assert.NotEqual(t, 0, r.Code, r.String())
			assert.Contains(t, r.Err, "Permission denied")
			// Nothing to become root with: no setuid or setgid file.
			r = run(t, time.Minute, "docker", "exec", container(w), "find", "/", "-xdev", "-perm", "/6000", "-type", "f")
			require.Equal(t, 0, r.Code, r.String())
			assert.Empty(t, strings.TrimSpace(r.Out), "setuid/setgid files in %s", w)
		}
	})
	var ids []job.ID
	t.Run("jobs from a shell and a notebook", func(t *testing.T) { ids = testJobs(t) })
	t.Run("dashboard on the head node", func(t *testing.T) {
		require.NotEmpty(t, ids, "the jobs subtest submitted nothing")
		testDashboard(t, ids)
	})
	t.Run("fair share and accounting on the head", func(t *testing.T) {
		require.NotEmpty(t, ids, "the jobs subtest submitted nothing")
		testAccounting(t, ids)
	})
	t.Run("an environment built once on the workers", func(t *testing.T) { testEnvironment(t) })
	t.Run("worker killed mid-job", func(t *testing.T) { testWorkerKilled(t, cfg) })
	t.Run("head restarted mid-run", func(t *testing.T) { testHeadRestart(t, ids) })
	t.Run("update mid-queue", func(t *testing.T) { testUpdate(t, cfg) })
}

const intervalJob = `#!/bin/sh
# Records where and when it ran, and as whom.
set -e
id -u >/out/uid
sleep "${1:-3}"
echo done >/out/done
`

func testJobs(t *testing.T) []job.ID {
	p := project(t, alice, aliceUID, "interval", map[string]string{"run.sh": intervalJob})
	var ids []job.ID
	for i := 0; i < 4; i++ {
		ids = append(ids, submit(t, alice, p, "--name", fmt.Sprintf("shell-%d", i), "--", "sh", "run.sh", "3"))
	}

	// A notebook, executed headless in the user node as alice.
	nb := map[string]any{
		"nbformat": 4, "nbformat_minor": 5,
		"metadata": map[string]any{"kernelspec": map[string]any{"name": "python3", "display_name": "Python 3", "language": "python"}},
		"cells": []map[string]any{{
			"cell_type": "code", "metadata": map[string]any{}, "outputs": []any{}, "execution_count": nil, "id": "c1",
			"source": "import os, ferry\n" +
				"job = ferry.run_async(lambda x: (x * 2, os.getuid()), 21)\n" +
				"print('JOB', job.id)\n" +
				"print('RESULT', job.result())\n",
		}},
	}
	data, err := json.Marshal(nb)
	require.NoError(t, err)
	p2 := project(t, alice, aliceUID, "nb", map[string]string{"run.ipynb": string(data)})
	r := asUser(t, alice, 10*time.Minute, "cd "+p2+" && jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=300 --output out.ipynb run.ipynb")
	require.Equal(t, 0, r.Code, r.String())
	out, err := os.ReadFile(filepath.Join(homeRoot, alice, p2, "out.ipynb"))
	require.NoError(t, err)
	var executed struct {
		Cells []struct {
			Outputs []struct {
				OutputType string `json:"output_type"`
				Text       any    `json:"text"`
				Ename      string `json:"ename"`
				Evalue     string `json:"evalue"`
			} `json:"outputs"`
		} `json:"cells"`
	}
	require.NoError(t, json.Unmarshal(out, &executed))
	var text strings.Builder
	for _, o := range executed.Cells[0].Outputs {
		require.NotEqual(t, "error", o.OutputType, "the cell raised %s: %s", o.Ename, o.Evalue)
		switch v := o.Text.(type) {
		case string:
			text.WriteString(v)
		case []any:
			for _, s := range v {
				text.WriteString(fmt.Sprint(s))
			}
		}
	}
	t.Logf("notebook output:\n%s", text.String())
	assert.Contains(t, text.String(), fmt.Sprintf("RESULT (42, %d)", aliceUID), "computed on the cluster, as alice's uid")
	var nbID job.ID
	for _, line := range strings.Split(text.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "JOB "); ok {
			nbID = job.ID(strings.TrimSpace(rest))
		}
	}
	require.NotEmpty(t, nbID)

	// Every shell job succeeds, and its outputs come back with ferry get.
	type run struct {
		id    job.ID
		node  string
		start time.Time
		end   time.Time
	}
	var runs []run
	for _, id := range ids {
		st := waitState(t, alice, id, 5*time.Minute, job.Succeeded)
		got := asUser(t, alice, time.Minute, "rm -rf got-"+string(id)+" && ferry get "+string(id)+" -o got-"+string(id)+" >/dev/null && cat got-"+string(id)+"/outputs/uid got-"+string(id)+"/outputs/done")
		require.Equal(t, 0, got.Code, got.String())
		assert.Equal(t, fmt.Sprintf("%d\ndone\n", aliceUID), got.Out, "outputs of %s: the sandbox ran as alice's uid", id)
		res := readResult(t, alice, id)
		assert.Equal(t, st.Node, res.Node)
		runs = append(runs, run{id, res.Node, res.Started, res.Ended})
	}
	res := readResult(t, alice, nbID)
	assert.Equal(t, job.Succeeded, res.State)
	runs = append(runs, run{nbID, res.Node, res.Started, res.Ended})

	// Exclusive: no two jobs' run intervals overlap on a worker; both
	// workers were used.
	byNode := map[string][]run{}
	for _, r := range runs {
		require.False(t, r.start.IsZero() || r.end.IsZero(), "job %s has no run interval", r.id)
		byNode[r.node] = append(byNode[r.node], r)
	}
	assert.Len(t, byNode, 2, "both workers ran jobs: %v", byNode)
	for node, rs := range byNode {
		sort.Slice(rs, func(i, j int) bool { return rs[i].start.Before(rs[j].start) })
		for i := 1; i < len(rs); i++ {
			assert.False(t, rs[i].start.Before(rs[i-1].end), "on %s, job %s started at %s before job %s ended at %s",
				node, rs[i].id, rs[i].start.Format(time.StampMicro), rs[i-1].id, rs[i-1].end.Format(time.StampMicro))
		}
		t.Logf("%s ran %d jobs", node, len(rs))
	}
	return ids
}

func testWorkerKilled(t *testing.T, cfg string) {
	p := project(t, alice, aliceUID, "long", map[string]string{"run.sh": intervalJob})
	id := submit(t, alice, p, "--name", "killed", "--", "sh", "run.sh", "300")
	st := waitState(t, alice, id, 2*time.Minute, job.Running)
	require.NotEmpty(t, st.Node)
	// The job's sandbox runs on the host's engine.
	deadline := time.Now().Add(time.Minute)
	for len(sandboxes(t, id)) == 0 {
		require.True(t, time.Now().Before(deadline), "no sandbox container of job %s", id)
		time.Sleep(200 * time.Millisecond)
	}
	// A crash, as Docker sees one: the worker's init dies by SIGKILL
	// (docker kill would count as a stop the restart policy respects).
	pid := strings.TrimSpace(run(t, time.Minute, "docker", "inspect", "-f", "{{.State.Pid}}", container(st.Node)).Out)
	require.NotEqual(t, "0", pid)
	killed := time.Now()
	require.Equal(t, 0, run(t, time.Minute, "kill", "-KILL", pid).Code)

	var tracked string
	for time.Since(killed) < 60*time.Second {
		if tracked = trackerState(t, id); tracked == string(job.NodeFail) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.Equal(t, string(job.NodeFail), tracked, "the tracker shows node_fail within 60 s of the kill")
	t.Logf("the tracker showed node_fail %s after the worker was killed", time.Since(killed).Round(time.Millisecond))
	for time.Since(killed) < 60*time.Second && len(sandboxes(t, id)) > 0 {
		time.Sleep(500 * time.Millisecond)
	}
	assert.Empty(t, sandboxes(t, id), "no sandbox container of the job is left on the host 60 s after the kill")
	assert.Equal(t, job.NodeFail, status(t, alice, id).State, "ferry status agrees")
	waitWorkersIdle(t, cfg, 3*time.Minute)
}

// testHeadRestart restarts the head (MariaDB, slurmdbd, slurmctld, the
// tracker) while 4 jobs queue and run: all succeed, and the accounting
// kept the jobs from before the restart and caught up with these.
func testHeadRestart(t *testing.T, earlier []job.ID) {
	p := project(t, alice, aliceUID, "restart", map[string]string{"run.sh": intervalJob})
	var ids []job.ID
	for i := 0; i < 4; i++ {
		ids = append(ids, submit(t, alice, p, "--name", fmt.Sprintf("restart-%d", i), "--", "sh", "run.sh", "6"))
	}
	waitState(t, alice, ids[0], 2*time.Minute, job.Running)
	r := run(t, 3*time.Minute, "docker", "restart", container("head"))
	require.Equal(t, 0, r.Code, r.String())
	for _, id := range ids {
		waitState(t, alice, id, 5*time.Minute, job.Succeeded)
		assert.Equal(t, job.Succeeded, readResult(t, alice, id).State)
	}
	sacctKnows(t, append(ids, earlier...))
}

func testUpdate(t *testing.T, cfg string) {
	p := project(t, alice, aliceUID, "update", map[string]string{"run.sh": intervalJob})
	var ids []job.ID
	for i := 0; i < 4; i++ {
		ids = append(ids, submit(t, alice, p, "--name", fmt.Sprintf("update-%d", i), "--", "sh", "run.sh", "8"))
	}
	spool := func() map[string]bool {
		files := map[string]bool{}
		for _, id := range ids {
			dir := filepath.Join(homeRoot, alice, ".ferry", "jobs", string(id))
			require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				files[p] = true
				return nil
			}))
		}
		return files
	}
	before := spool()
	images := func() string {
		return run(t, time.Minute, "docker", "image", "inspect", "-f", "{{.Id}}", imagePrefix+"/node:test", imagePrefix+"/user:test").Out
	}
	oldImages := images()
	r := cluster(t, cfg, 20*time.Minute, "update")
	require.Equal(t, 0, r.Code, r.String())
	t.Logf("update:\n%s", r.Err+r.Out)
	assert.NotEqual(t, oldImages, images(), "update rebuilt the node and user images")
	for _, id := range ids {
		waitState(t, alice, id, 10*time.Minute, job.Succeeded)
	}
	after := spool()
	for f := range before {
		assert.True(t, after[f], "the spool lost %s in the update", f)
	}
	for _, f := range []string{"job_state", "node_state"} {
		_, err := os.Stat(filepath.Join(root, "data", "head", "slurmctld", f))
		assert.NoError(t, err, "Slurm's saved state keeps %s", f)
	}
}
