package deploy

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// TestSwarm deploys the same services as a stack on a one-node swarm
// (MODE=swarm), reusing the images TestCluster built, runs a job as an
// unprivileged user, checks that a second `up` changes nothing, and takes
// it down. The swarm is advertised on loopback: nothing leaves this host.
// When this engine cannot make a swarm or an overlay network, the test
// says why in its output and checks nothing more.
func TestSwarm(t *testing.T) {
	enabled(t)
	state := strings.TrimSpace(run(t, time.Minute, "docker", "info", "-f", "{{.Swarm.LocalNodeState}}").Out)
	made := false
	switch state {
	case "inactive":
		r := run(t, time.Minute, "docker", "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
		if r.Code != 0 {
			notVerified(t, "docker swarm init on loopback failed: "+strings.TrimSpace(r.Err))
			return
		}
		made = true
		t.Cleanup(func() {
			r := run(t, 2*time.Minute, "docker", "swarm", "leave", "--force")
			assert.Equal(t, 0, r.Code, "docker swarm leave: %s", r)
		})
	case "active":
		t.Log("this engine is already a swarm manager: deploying the test stack on it, and leaving the swarm as it was")
	default:
		notVerified(t, "this engine's swarm state is "+state)
		return
	}
	// The overlay network is what a multi-host stack stands on: probe it.
	probe := run(t, time.Minute, "docker", "network", "create", "-d", "overlay", "--attachable", "ferry-e2e-probe")
	if probe.Code != 0 {
		notVerified(t, "this engine cannot make an overlay network: "+strings.TrimSpace(probe.Err))
		return
	}
	run(t, time.Minute, "docker", "network", "rm", "ferry-e2e-probe")

	dir := t.TempDir()
	swarmRoot := root + "-swarm"
	cfg := writeConfig(t, dir,
		"CLUSTER_NAME=ferry-e2e-swarm",
		"MODE=swarm",
		"HEAD_ADDR=127.0.0.1",
		"HOME_ROOT="+homeRoot,
		"DATA_DIR="+swarmRoot+"/data",
		"SCRATCH_DIR="+swarmRoot+"/scratch",
		"MOUNT_DIR=/run/ferry-e2e-swarm",
		"STATE_DIR="+swarmRoot+"/state",
		"JUPYTER_PORT=18893",
		"DASHBOARD_PORT=18894",
		"REDIS_PORT=16393",
	)
	require.NoError(t, os.MkdirAll(homeRoot, 0o755))
	t.Cleanup(func() {
		r := cluster(t, cfg, 5*time.Minute, "purge", "--yes", "--keep-images")
		assert.Equal(t, 0, r.Code, "purge: %s", r)
		os.RemoveAll(swarmRoot)
	})

	r := cluster(t, cfg, 15*time.Minute, "up")
	require.Equal(t, 0, r.Code, r.String())
	t.Logf("swarm bring-up:\n%s", r.Err+r.Out)
	assert.Contains(t, r.Out, "is up (swarm): head, 2 worker(s) (w1 w2), user node, redis")
	assert.Contains(t, r.Err, "smoke jobs succeeded as alice (uid 2301 in the sandbox) on:")
	// The test made the swarm (or found one): build_cluster.sh uses it.
	assert.NotContains(t, r.Err, "made a swarm")
	t.Logf("swarm made by this test: %v", made)
	svcs := run(t, time.Minute, "docker", "stack", "services", "--format", "{{.Name}} {{.Replicas}}", "ferry-e2e-swarm")
	for _, s := range []string{"redis", "head", "user", "w1", "w2"} {
		assert.Contains(t, svcs.Out, "ferry-e2e-swarm_"+s+" 1/1", svcs.String())
	}

	// A job as alice, from the swarm's user node.
	user := strings.TrimSpace(run(t, time.Minute, "docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name=ferry-e2e-swarm_user").Out)
	require.NotEmpty(t, user)
	p := project(t, alice, aliceUID, "swarmjob", map[string]string{"run.sh": intervalJob})
	home := homeRoot + "/" + alice
	sub := run(t, 5*time.Minute, "docker", "exec", "-u", alice, "-w", home, "-e", "HOME="+home, user,
		"ferry", "submit", "--wait", "-o", "json", p, "--", "sh", "run.sh", "1")
	require.Equal(t, 0, sub.Code, sub.String())
	var id job.ID
	for _, f := range strings.Split(sub.Out, "\"") {
		if parsed, err := job.ParseID(f); err == nil && len(f) == 26 {
			id = parsed
			break
		}
	}
	require.NotEmpty(t, id, sub.String())
	res := readResult(t, alice, id)
	assert.Equal(t, job.Succeeded, res.State)
	uid, err := os.ReadFile(fmt.Sprintf("%s/.ferry/jobs/%s/outputs/uid", home, id))
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("%d\n", aliceUID), string(uid))

	again := cluster(t, cfg, 10*time.Minute, "up")
	require.Equal(t, 0, again.Code, again.String())
	assert.Contains(t, again.Out, "nothing changed: the cluster was already up as configured")

	down := cluster(t, cfg, 5*time.Minute, "down")
	require.Equal(t, 0, down.Code, down.String())
	left := run(t, time.Minute, "docker", "ps", "-aq", "--filter", "label=com.docker.stack.namespace=ferry-e2e-swarm")
	assert.Empty(t, strings.TrimSpace(left.Out), "down leaves no container of the stack")
	fmt.Println("SWARM verified: the stack ran on a one-node swarm (advertised on loopback), a job succeeded, a second up changed nothing")
}

// notVerified says, in the test's output, that the swarm was not tested and
// why: the engine refused. It is not a skip.
func notVerified(t *testing.T, why string) {
	t.Helper()
	msg := "SWARM NOT VERIFIED on this machine: " + why
	t.Log(msg)
	fmt.Println(msg)
}
