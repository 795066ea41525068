package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// The test cluster: its own name, image prefix, ports and host paths, so it
// never touches the host harness (tests/cluster.sh) or a real cluster.
const (
	clusterName = "ferry-e2e"
	imagePrefix = "ferry-e2e"
	root        = "/var/tmp/ferry-e2e-deploy"
	homeRoot    = root + "/home"
	jupyterPort = 18891
	redisPort   = 16391
	alice       = "alice"
	aliceUID    = 2301
	bob         = "bob"
	bobUID      = 2302
	carolUID    = 2303 // added to the users list while the cluster runs
)

// enabled fails the test under CI=true when FERRY_E2E_DEPLOY is not set
// (tests/run.sh sets it), and skips it otherwise: it needs root, Docker and
// several minutes.
func enabled(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_E2E_DEPLOY") == "1" {
		if os.Geteuid() != 0 {
			t.Fatal("FERRY_E2E_DEPLOY=1 needs root: build_cluster.sh writes host paths and talks to Docker")
		}
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but FERRY_E2E_DEPLOY is not 1: tests/run.sh runs this package with it set")
	}
	t.Skip("set FERRY_E2E_DEPLOY=1 (as root) to bring up a containerized cluster")
}

func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// writeConfig writes a config.sh for the test cluster (extra lines last,
// so they override) and its users list, and returns the config's path.
func writeConfig(t testing.TB, dir string, extra ...string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	lines := []string{
		"# the end-to-end test cluster (tests/deploy)",
		"CLUSTER_NAME=" + clusterName,
		"WORKERS=2",
		"HOME_ROOT=" + homeRoot,
		"DATA_DIR=" + root + "/data",
		"SCRATCH_DIR=" + root + "/scratch",
		"MOUNT_DIR=/run/ferry-e2e-deploy",
		"STATE_DIR=" + root + "/state",
		"USERS_FILE=users.list",
		fmt.Sprintf("JUPYTER_PORT=%d", jupyterPort),
		fmt.Sprintf("REDIS_PORT=%d", redisPort),
		fmt.Sprintf("DASHBOARD_PORT=%d", dashboardPort),
		"DASHBOARD_ADMINS=" + bob, // bob is the course's TA
		"IMAGE_PREFIX=" + imagePrefix,
		"IMAGE_TAG=test",
		"MAX_RUNNING_PER_USER=" + maxRunning,
		"MAX_JOBS_PER_USER=" + maxJobs,
	}
	lines = append(lines, extra...)
	cfg := filepath.Join(dir, "config.sh")
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	users := fmt.Sprintf("# test users\n%s:%d\n%s:%d\n", alice, aliceUID, bob, bobUID)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "users.list"), []byte(users), 0o644))
	return cfg
}

type result struct {
	Code     int
	Out, Err string
	Took     time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\n--- stdout\n%s--- stderr\n%s", r.Code, r.Took.Round(time.Millisecond), r.Out, r.Err)
}

// run runs a command with a timeout and returns what it printed.
func run(t testing.TB, timeout time.Duration, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	start := time.Now()
	err := c.Run()
	r := result{Out: out.String(), Err: errb.String(), Took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v: %v", name, args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %v: timed out after %s\n%s", name, args, timeout, r)
	}
	return r
}

// cluster runs build_cluster.sh with the test config.
func cluster(t testing.TB, cfg string, timeout time.Duration, args ...string) result {
	t.Helper()
	return run(t, timeout, "bash", append([]string{filepath.Join(repoRoot(t), "build_cluster.sh"), "--config", cfg}, args...)...)
}

func container(svc string) string { return clusterName + "_" + svc + "_1" }

// asUser runs a shell command as a user in the user node, from their home.
func asUser(t testing.TB, user string, timeout time.Duration, script string) result {
	t.Helper()
	home := homeRoot + "/" + user
	return run(t, timeout, "docker", "exec", "-u", user, "-w", home, "-e", "HOME="+home, "-e", "USER="+user,
		container("user"), "bash", "-c", script)
}

// submit submits a project of the user's as that user on the user node
// and returns the job's id.
func submit(t testing.TB, user, project string, args ...string) job.ID {
	t.Helper()
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	cmd := "ferry submit -o json "
	if at := splitAt(args); at < 0 {
		// No command: the project's job.yaml names it.
		cmd += strings.Join(q, " ") + " " + project
	} else {
		cmd += strings.Join(q[:at], " ") + " " + project + " -- " + strings.Join(q[at+1:], " ")
	}
	r := asUser(t, user, time.Minute, cmd)
	require.Equal(t, 0, r.Code, r.String())
	var s struct {
		ID job.ID `json:"id"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Out), &s), r.String())
	require.NotEmpty(t, s.ID, r.String())
	return s.ID
}

// splitAt is the index of the "--" before the command in submit's args,
// or -1 when there is none.
func splitAt(args []string) int {
	for i, a := range args {
		if a == "--" {
			return i
		}
	}
	return -1
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// status is `ferry status -o json ID` as the user sees it.
func status(t testing.TB, user string, id job.ID) job.Status {
	t.Helper()
	r := asUser(t, user, time.Minute, "ferry status -o json "+string(id))
	require.Equal(t, 0, r.Code, r.String())
	var s job.Status
	require.NoError(t, json.Unmarshal([]byte(r.Out), &s), r.String())
	return s
}

// waitState polls the job's state until it is one of want.
func waitState(t testing.TB, user string, id job.ID, timeout time.Duration, want ...job.State) job.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := status(t, user, id)
		for _, w := range want {
			if s.State == w {
				return s
			}
		}
		if s.State.Terminal() || time.Now().After(deadline) {
			log := asUser(t, user, time.Minute, "ferry logs "+string(id)+" | tail -n 20")
			t.Fatalf("job %s is %s (%s), want %v\nlog:\n%s", id, s.State, s.Reason, want, log.Out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// readResult reads a job's result.json on the shared /home, as root.
func readResult(t testing.TB, user string, id job.ID) *job.Result {
	t.Helper()
	r, err := job.ReadResult(job.Dir(filepath.Join(homeRoot, user, ".ferry", "jobs", string(id))))
	require.NoError(t, err)
	require.NotNil(t, r, "job %s has no result.json", id)
	return r
}

// trackerState is the job's state as the tracker wrote it into Redis.
func trackerState(t testing.TB, id job.ID) string {
	t.Helper()
	r := run(t, 30*time.Second, "docker", "exec", container("redis"), "sh", "-c",
		"REDISCLI_AUTH=$(cat /run/ferry-secrets/redis.pass) redis-cli --no-raw HGET ferry:job:"+string(id)+" state")
	require.Equal(t, 0, r.Code, r.String())
	return strings.Trim(strings.TrimSpace(r.Out), `"`)
}

// sandboxes lists the host's sandbox containers of a ferry job.
func sandboxes(t testing.TB, id job.ID) []string {
	t.Helper()
	r := run(t, 30*time.Second, "docker", "ps", "-aq", "--filter", "label=ferry.job="+string(id))
	require.Equal(t, 0, r.Code, r.String())
	return strings.Fields(r.Out)
}

// project writes a small project into the user's home (as root, then
// chowned to the user) and returns its path relative to the home.
func project(t testing.TB, user string, uid int, name string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(homeRoot, user, name)
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for f, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644))
	}
	require.NoError(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	}))
	return name
}

// composeContainers maps the cluster's container names to "id startedAt".
func composeContainers(t testing.TB) map[string]string {
	t.Helper()
	r := run(t, 30*time.Second, "docker", "ps", "-aq", "--filter", "label=com.docker.compose.project="+clusterName)
	require.Equal(t, 0, r.Code, r.String())
	out := map[string]string{}
	for _, id := range strings.Fields(r.Out) {
		ins := run(t, 30*time.Second, "docker", "inspect", "-f", "{{.Name}} {{.Id}} {{.State.StartedAt}}", id)
		require.Equal(t, 0, ins.Code, ins.String())
		f := strings.Fields(ins.Out)
		require.Len(t, f, 3, ins.Out)
		out[strings.TrimPrefix(f[0], "/")] = f[1] + " " + f[2]
	}
	return out
}

// waitWorkersIdle waits until build_cluster.sh status says every worker
// is back (idle or busy, none down).
func waitWorkersIdle(t testing.TB, cfg string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := cluster(t, cfg, time.Minute, "status")
		if r.Code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster is not healthy after %s:\n%s", timeout, r)
		}
		time.Sleep(2 * time.Second)
	}
}
