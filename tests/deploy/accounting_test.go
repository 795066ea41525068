package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// The test cluster's students' QOS (writeConfig's MAX_*_PER_USER).
const (
	maxRunning = "2"
	maxJobs    = "500"
)

// testAccounting: the head runs Slurm's accounting (MariaDB, slurmdbd):
// every user of the list, carol added later too, has an association with
// the student QOS and config.sh's limits; the queue is ordered by fair
// share; sacct, asked by alice on the user node, knows how her jobs ended.
func testAccounting(t *testing.T, ids []job.ID) {
	head := func(args ...string) string {
		t.Helper()
		r := run(t, time.Minute, "docker", append([]string{"exec", container("head")}, args...)...)
		require.Equal(t, 0, r.Code, r.String())
		return r.Out
	}
	assoc := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(head("sacctmgr", "-n", "-P", "show", "assoc", "account=course", "format=user,qos,defaultqos")), "\n") {
		f := strings.Split(line, "|")
		if len(f) == 3 && f[0] != "" {
			assoc[f[0]] = f[1] + " default " + f[2]
		}
	}
	for _, u := range []string{alice, bob, "carol"} {
		assert.Equal(t, "normal,student default student", assoc[u], "%s's association", u)
	}
	assert.Equal(t, maxRunning+"|"+maxJobs, strings.TrimSpace(head("sacctmgr", "-n", "-P", "show", "qos", "student", "format=MaxJobsPU,MaxSubmitPU")),
		"the student QOS has config.sh's limits")
	conf := head("scontrol", "show", "config")
	assert.Regexp(t, `PriorityType\s+= priority/multifactor`, conf)
	assert.Regexp(t, `AccountingStorageEnforce\s+= associations,limits,qos,safe`, conf)
	assert.Regexp(t, `PriorityDecayHalfLife\s+= 04:00:00`, conf)

	sacctKnows(t, ids)

	r := asUser(t, alice, time.Minute, "ferry queue")
	require.Equal(t, 0, r.Code, r.String())
	assert.Contains(t, r.Out, "Your fair-share standing: ", "sshare answers on the user node")
	assert.NotContains(t, r.Out, "first come, first served")
}

// sacctKnows: sacct, as alice on the user node, reports each of her jobs
// COMPLETED, under the Slurm id its result.json names.
func sacctKnows(t *testing.T, ids []job.ID) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		res := readResult(t, alice, id)
		require.NotEmpty(t, res.SlurmJobID, "job %s's result names no Slurm id", id)
		want[res.SlurmJobID] = true
	}
	sids := make([]string, 0, len(want))
	for s := range want {
		sids = append(sids, s)
	}
	// Slurm hands accounting records to slurmdbd asynchronously: give it
	// a few seconds after the jobs ended.
	var got map[string]string
	var r result
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
		r = asUser(t, alice, time.Minute, "sacct -n -X -P -o JobID,State,User -j "+strings.Join(sids, ","))
		require.Equal(t, 0, r.Code, r.String())
		got = map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(r.Out), "\n") {
			if f := strings.Split(line, "|"); len(f) == 3 {
				got[f[0]] = f[1] + " " + f[2]
			}
		}
		done := true
		for s := range want {
			done = done && got[s] == "COMPLETED "+alice
		}
		if done || time.Now().After(deadline) {
			break
		}
	}
	for s := range want {
		assert.Equal(t, "COMPLETED "+alice, got[s], "sacct on job %s\n%s", s, r.Out)
	}
}

// testEnvironment: a worker builds a job's environment (apt: jq, from the
// Debian mirror) once; the next job with the same one starts in it at
// once, whichever worker runs it (the workers of a host share the lock and
// the host's images).
func testEnvironment(t *testing.T) {
	p := project(t, alice, aliceUID, "withjq", map[string]string{"job.yaml": "command: [jq, --version]\napt: [jq]\n"})
	var logs []string
	var key string
	for i := 0; i < 2; i++ {
		id := submit(t, alice, p)
		waitState(t, alice, id, 5*time.Minute, job.Succeeded)
		r := asUser(t, alice, time.Minute, "ferry logs "+string(id))
		require.Equal(t, 0, r.Code, r.String())
		logs = append(logs, r.Out)
		res := readResult(t, alice, id)
		require.NotEmpty(t, res.Environment, "result.json names the environment")
		if key == "" {
			key = res.Environment
		}
		assert.Equal(t, key, res.Environment)
	}
	assert.Contains(t, logs[0], "building environment ")
	assert.Contains(t, logs[0], " only, through ferry's egress proxy\n", "the worker's build is confined to the mirror")
	assert.Contains(t, logs[0], "jq-1.6")
	assert.NotContains(t, logs[1], "building environment ", "built once")
	assert.Contains(t, logs[1], "jq-1.6")
	r := run(t, time.Minute, "docker", "exec", "-e", workerDocker, container("w1"), "ferryd", "env", "ls")
	require.Equal(t, 0, r.Code, r.String())
	assert.Contains(t, r.Out, key[:12], "ferryd env ls on a worker")
	r = run(t, time.Minute, "docker", "exec", "-e", workerDocker, container("w1"), "ferryd", "env", "rm", key)
	assert.Equal(t, 0, r.Code, r.String())
}

// workerDocker is how root in a worker reaches the host's Docker Engine.
const workerDocker = "DOCKER_HOST=unix:///run/ferry-docker/docker.sock"
