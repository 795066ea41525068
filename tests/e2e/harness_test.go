package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/sandbox"
	"github.com/ferry-hpc/ferry/pkg/sandbox/docker"
)

const (
	alice = "ferry-alice"
	bob   = "ferry-bob"
)

// ferryBin is the users' CLI, ferrydBin the daemons' binary (agent, tracker).
var ferryBin, ferrydBin string

func TestMain(m *testing.M) {
	if os.Getenv("FERRY_E2E") != "1" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: FERRY_E2E is not set under CI: run the tests with tests/run.sh, which brings up Slurm, Docker images and the agents")
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "e2e: skipped (set FERRY_E2E=1, or run tests/run.sh)")
		os.Exit(0)
	}
	ferryBin = os.Getenv("FERRY_BIN")
	if ferryBin == "" {
		ferryBin = "/usr/local/bin/ferry"
	}
	ferrydBin = filepath.Join(filepath.Dir(ferryBin), "ferryd")
	for _, b := range []string{ferryBin, ferrydBin} {
		if _, err := os.Stat(b); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: binary %s: %v (tests/run.sh builds it)\n", b, err)
			os.Exit(1)
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: must run as root (it runs ferry as the test users)")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// result of one command run.
type result struct {
	Out, Err string
	Code     int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.Code, r.Out, r.Err)
}

type tuser struct {
	Name     string
	UID, GID int
	Home     string
	Groups   []uint32 // supplementary groups, as a login gives them
}

func lookup(t testing.TB, name string) tuser {
	t.Helper()
	u, err := user.Lookup(name)
	require.NoError(t, err, "test user %s missing: run tests/users.sh", name)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	gids, err := u.GroupIds()
	require.NoError(t, err, "groups of %s", name)
	groups := make([]uint32, 0, len(gids))
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		require.NoError(t, err, "group id %q of %s", g, name)
		groups = append(groups, uint32(n))
	}
	return tuser{Name: name, UID: uid, GID: gid, Home: u.HomeDir, Groups: groups}
}

// cmdAs builds a command that runs as u, with a clean login-like env and
// the user's supplementary groups (as a login would give them).
func cmdAs(ctx context.Context, u tuser, dir string, env []string, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	c.Env = append([]string{
		"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name,
		"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
	}, env...)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: u.Groups}}
	return c
}

// ferry runs the ferry binary as u in dir and returns what it printed.
func ferry(t testing.TB, u tuser, dir string, args ...string) result {
	t.Helper()
	return ferryEnv(t, u, dir, nil, args...)
}

func ferryEnv(t testing.TB, u tuser, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := cmdAs(ctx, u, dir, env, ferryBin, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	r := result{Out: out.String(), Err: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run ferry %v as %s: %v", args, u.Name, err)
	}
	return r
}

// workdir makes a fresh dir owned by u under u's home.
func workdir(t testing.TB, u tuser) string {
	t.Helper()
	d := filepath.Join(u.Home, "e2e", strings.ReplaceAll(t.Name(), "/", "_")+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	require.NoError(t, os.MkdirAll(d, 0o755))
	for p := d; p != u.Home; p = filepath.Dir(p) {
		require.NoError(t, os.Chown(p, u.UID, u.GID))
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// project creates a project dir with ferry init, as u.
func project(t testing.TB, u tuser, name string) (dir, path string) {
	t.Helper()
	dir = workdir(t, u)
	r := ferry(t, u, dir, "init", name)
	require.Equal(t, 0, r.Code, r.String())
	return dir, filepath.Join(dir, name)
}

// submitted is `ferry submit -o json` output.
type submitted struct {
	ID      string      `json:"id"`
	SlurmID string      `json:"slurm_id"`
	Dir     string      `json:"dir"`
	Status  *job.Status `json:"status"`
}

func submit(t testing.TB, u tuser, dir string, args ...string) submitted {
	t.Helper()
	r := ferry(t, u, dir, append([]string{"submit", "-o", "json"}, args...)...)
	require.Equal(t, 0, r.Code, r.String())
	var s submitted
	require.NoError(t, json.Unmarshal([]byte(r.Out), &s), r.String())
	require.NotEmpty(t, s.ID)
	return s
}

func status(t testing.TB, u tuser, id string) job.Status {
	t.Helper()
	r := ferry(t, u, u.Home, "status", "-o", "json", id)
	require.Equal(t, 0, r.Code, r.String())
	var st job.Status
	require.NoError(t, json.Unmarshal([]byte(r.Out), &st), r.String())
	return st
}

// waitState polls `ferry status` until cond holds or the timeout passes.
func waitState(t testing.TB, u tuser, id string, timeout time.Duration, cond func(job.Status) bool) job.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var st job.Status
	for time.Now().Before(deadline) {
		st = status(t, u, id)
		if cond(st) {
			return st
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("job %s: condition not met within %s; last status %+v", id, timeout, st)
	return st
}

func readResult(t testing.TB, dir string) *job.Result {
	t.Helper()
	r, err := job.ReadResult(job.Dir(dir))
	require.NoError(t, err)
	require.NotNil(t, r, "no result.json in %s", dir)
	return r
}

// containers lists the sandbox containers labelled with a ferry job id.
func containers(t testing.TB, ferryID string) []sandbox.ContainerInfo {
	t.Helper()
	d, err := docker.New()
	require.NoError(t, err)
	defer d.Close()
	list, err := d.List(context.Background(), map[string]string{sandbox.LabelJob: ferryID})
	require.NoError(t, err)
	return list
}

// waitNoContainers waits up to timeout for every container of the job to go.
func waitNoContainers(t testing.TB, ferryID string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		list := containers(t, ferryID)
		if len(list) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %d container(s) still present %s after the job ended", ferryID, len(list), timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitContainer waits until the job's container is running.
func waitContainer(t testing.TB, ferryID string, timeout time.Duration) sandbox.ContainerInfo {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, c := range containers(t, ferryID) {
			if c.Running {
				return c
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s: no running container within %s", ferryID, timeout)
	return sandbox.ContainerInfo{}
}

// spoolEntries lists a user's spool, to check that refused submits leave
// nothing behind.
func spoolEntries(t testing.TB, u tuser) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(u.Home, ".ferry", "jobs"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
