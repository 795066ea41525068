package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// pidsLimit is the sandboxes' pids limit in the test cluster's config (the
// default: tests/cluster.sh sets none).
const pidsLimit = 512

// hostAddrs lists the host's IPv4 addresses other than loopback.
func hostAddrs(t *testing.T) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

// runJob submits a python snippet as u, waits, and returns its status and log.
func runJob(t *testing.T, u tuser, dir, proj string, extra []string, py string) (job.Status, string) {
	t.Helper()
	args := append([]string{"submit", "--wait", "-o", "json"}, extra...)
	args = append(args, proj, "--", "python3", "-c", py)
	r := ferry(t, u, dir, args...)
	var s submitted
	require.NoError(t, json.Unmarshal([]byte(r.Out), &s), r.String())
	require.NotNil(t, s.Status, r.String())
	logData, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
	return *s.Status, string(logData)
}

// The sandbox runs as the submitting user, never root.
func TestSandboxRunsAsTheUser(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "whoami")
	st, logText := runJob(t, u, dir, proj, nil, "import os; print(os.getuid(), os.geteuid(), os.getgid(), sorted(set(os.getgroups()) - {os.getgid()}))")
	require.Equal(t, job.Succeeded, st.State, logText)
	// no supplementary groups beyond the user's own
	assert.Equal(t, fmt.Sprintf("%d %d %d []\n", u.UID, u.UID, u.GID), logText)
}

// Test users cannot reach the Docker socket themselves, with every group
// a login gives them.
func TestUsersCannotUseDocker(t *testing.T) {
	u := lookup(t, alice)
	if g, err := user.LookupGroup("docker"); err == nil {
		gid, _ := strconv.Atoi(g.Gid)
		require.NotContains(t, u.Groups, uint32(gid), "%s is in the docker group", u.Name)
	}
	c := cmdAs(t.Context(), u, u.Home, nil, "/usr/bin/python3", "-c",
		"import socket; s=socket.socket(socket.AF_UNIX); s.connect('/var/run/docker.sock'); print('connected')")
	out, err := c.CombinedOutput()
	require.Error(t, err, string(out))
	assert.Contains(t, string(out), "PermissionError")
	assert.NotContains(t, string(out), "connected\n")
}

// A hostile job is contained, and the worker keeps running jobs afterwards.
func TestHostileJobIsContained(t *testing.T) {
	u := lookup(t, alice)
	b := lookup(t, bob)
	dir, proj := project(t, u, "hostile")
	// bob has a job dir alice's job will try to read
	bdir, bproj := project(t, b, "secret")
	bs := submit(t, b, bdir, bproj, "--", "true")
	waitState(t, b, bs.ID, 60*time.Second, func(st job.Status) bool { return st.State.Terminal() })

	t.Run("no network", func(t *testing.T) {
		// The host's own services (Redis, slurmctld, a slurmd) on every
		// address the host has, the Docker bridge's gateway, and an
		// outside address: none is reachable from the sandbox.
		targets := [][2]string{{"127.0.0.1", "6390"}, {"localhost", "17001"}, {"172.17.0.1", "6817"}, {"1.1.1.1", "53"}}
		for _, ip := range hostAddrs(t) {
			targets = append(targets, [2]string{ip, "6817"}, [2]string{ip, "6390"})
		}
		list, err := json.Marshal(targets)
		require.NoError(t, err)
		st, logText := runJob(t, u, dir, proj, nil, `
import json, os, socket
print("ifaces", sorted(os.listdir("/sys/class/net")))
for host, port in json.loads(`+"'"+string(list)+"'"+`):
    try:
        socket.create_connection((host, int(port)), timeout=2); print("CONNECTED", host, port)
    except OSError as e:
        print("refused", host, port, type(e).__name__)
`)
		require.Equal(t, job.Succeeded, st.State, logText)
		assert.Contains(t, logText, "ifaces ['lo']")
		assert.NotContains(t, logText, "CONNECTED")
		assert.Equal(t, len(targets), strings.Count(logText, "refused "), logText)
	})
	t.Run("writes only to /out and /tmp", func(t *testing.T) {
		st, logText := runJob(t, u, dir, proj, nil, `
for p in ["/out/ok", "/tmp/ok", "/work/x", "/x", "/etc/x", "/usr/x", "/home/x", "/var/tmp/x", "/root/x"]:
    try:
        open(p, "w").write("x"); print("WROTE", p)
    except OSError as e:
        print("denied", p, e.strerror)
`)
		require.Equal(t, job.Succeeded, st.State, logText)
		assert.Contains(t, logText, "WROTE /out/ok")
		assert.Contains(t, logText, "WROTE /tmp/ok")
		assert.Equal(t, 2, strings.Count(logText, "WROTE"), logText)
		assert.Equal(t, 7, strings.Count(logText, "\ndenied "), logText)
	})
	t.Run("cannot read another user's job dir", func(t *testing.T) {
		st, logText := runJob(t, u, dir, proj, nil, fmt.Sprintf(`
import os
print("home holds", os.listdir("/home"))
for p in [%q, %q]:
    try:
        print("READ", p, os.listdir(p) if os.path.isdir(p) else open(p).read()[:20])
    except OSError as e:
        print("denied", p, type(e).__name__)
`, bs.Dir, filepath.Join(bs.Dir, "spec.json")))
		require.Equal(t, job.Succeeded, st.State, logText)
		assert.Contains(t, logText, "home holds []\n", "no user's home is visible in the sandbox")
		assert.NotContains(t, logText, "READ", logText)
		assert.Equal(t, 2, strings.Count(logText, "denied"), logText)
		// and on the host, alice cannot read bob's spool either
		c := cmdAs(t.Context(), u, u.Home, nil, "/bin/ls", bs.Dir)
		out, err := c.CombinedOutput()
		assert.Error(t, err, string(out))
	})
	t.Run("a fork bomb stops at the pids limit", func(t *testing.T) {
		st, logText := runJob(t, u, dir, proj, []string{"--time", "2m"}, `
import os, time
n = 0
try:
    while n < 100000:
        pid = os.fork()
        if pid == 0:
            time.sleep(30); os._exit(0)
        n += 1
except OSError as e:
    print("fork failed after", n, type(e).__name__, flush=True)
os._exit(0)
`)
		require.Equal(t, job.Succeeded, st.State, logText)
		require.Contains(t, logText, "fork failed after")
		var n int
		var kind string
		_, err := fmt.Sscanf(logText[strings.Index(logText, "after")+6:], "%d %s", &n, &kind)
		require.NoError(t, err)
		// The limit, not something else, stopped it: fork failed with
		// EAGAIN once the container held about pids_limit tasks.
		assert.Equal(t, "BlockingIOError", kind)
		assert.Less(t, n, pidsLimit, "forks allowed")
		assert.Greater(t, n, pidsLimit/2, "forks allowed")
	})
	t.Run("more memory than allocated ends out_of_memory", func(t *testing.T) {
		st, logText := runJob(t, u, dir, proj, []string{"--mem", "200M"}, `
b = []
for i in range(64):
    b.append(bytearray(32 << 20))
print("ALLOCATED 2 GiB")
`)
		assert.Equal(t, job.OutOfMemory, st.State, "%s: %s", st.Reason, logText)
		assert.NotContains(t, logText, "ALLOCATED")
		assert.Contains(t, st.Reason, "200M")
	})
	t.Run("both workers still run jobs", func(t *testing.T) {
		// Two jobs at once: with --exclusive they take a worker each,
		// whichever ran the hostile jobs above. Up to three rounds, in case
		// a worker is still finishing an earlier job's epilog.
		ran := map[string]bool{}
		for round := 0; round < 3 && len(ran) < 2; round++ {
			var subs []submitted
			for range 2 {
				subs = append(subs, submit(t, u, dir, proj, "--", "python3", "-c", "import time; time.sleep(3); print('still here')"))
			}
			for _, s := range subs {
				st := waitState(t, u, s.ID, 2*time.Minute, func(st job.Status) bool { return st.State.Terminal() })
				logText, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
				require.Equal(t, job.Succeeded, st.State, "%s: %s", st.Reason, logText)
				assert.Equal(t, "still here\n", string(logText))
				ran[st.Node] = true
			}
		}
		assert.Equal(t, map[string]bool{"w1": true, "w2": true}, ran, "jobs ran on both workers")
	})
}

// agentRequest sends a hand-made request to an agent socket as u, with
// python3 (so the kernel sees u's uid), and returns the raw HTTP answer.
func agentRequest(t *testing.T, u tuser, socket, path, body string) string {
	t.Helper()
	c := cmdAs(t.Context(), u, u.Home, nil, "/usr/bin/python3", "-c", `
import socket, sys
body = sys.stdin.buffer.read()
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(20)
s.sendall(b"POST " + sys.argv[2].encode() + b" HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
out = b""
while True:
    d = s.recv(65536)
    if not d: break
    out += d
sys.stdout.write(out.decode(errors="replace"))
`, socket, path)
	c.Stdin = strings.NewReader(body)
	out, err := c.CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

func agentSocket(node string) string { return "/run/ferry/agent-" + node + ".sock" }

func agentLog(node string) string { return "/var/log/ferry/agent-" + node + ".log" }

// logHas reports whether the agent's log has a refusal line with all the words.
func logHas(t *testing.T, node string, words ...string) bool {
	t.Helper()
	return logHasLine(t, node, append([]string{`"decision":"refused"`}, words...)...)
}

// logHasLine reports whether the agent's log has a line with all the words.
func logHasLine(t *testing.T, node string, words ...string) bool {
	t.Helper()
	f, err := os.Open(agentLog(node))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			return true
		}
	}
	return false
}

// Hand-made requests to the agent are refused, and each refusal is logged
// with the caller's uid and the reason.
func TestAgentRefusesForgedRequests(t *testing.T) {
	u := lookup(t, alice)
	b := lookup(t, bob)
	dir, proj := project(t, u, "forger")
	mine := submit(t, u, dir, proj, "--", "sleep", "600")
	t.Cleanup(func() { ferry(t, u, dir, "cancel", mine.ID) })
	bdir, bproj := project(t, b, "victim")
	theirs := submit(t, b, bdir, bproj, "--", "sleep", "600")
	t.Cleanup(func() { ferry(t, b, bdir, "cancel", theirs.ID) })
	ms := waitState(t, u, mine.ID, 90*time.Second, func(st job.Status) bool { return st.State == job.Running })
	ts := waitState(t, b, theirs.ID, 90*time.Second, func(st job.Status) bool { return st.State == job.Running })
	other := map[string]string{"w1": "w2", "w2": "w1"}[ms.Node]
	require.NotEmpty(t, other, "node %q", ms.Node)

	// alice's own scratch dir for the image case, so only the image is wrong
	scratch := "/var/tmp/ferry/" + mine.ID + ".forged"
	mk := cmdAs(t.Context(), u, u.Home, nil, "/bin/mkdir", "-p", scratch)
	require.NoError(t, mk.Run())
	t.Cleanup(func() { os.RemoveAll(scratch) })

	req := func(fields map[string]any) string {
		base := map[string]any{
			"slurm_job_id": mine.SlurmID, "job_dir": mine.Dir, "scratch": scratch,
			"image": "ferry/sandbox:latest", "command": []string{"id"},
		}
		for k, v := range fields {
			base[k] = v
		}
		data, _ := json.Marshal(base)
		return string(data)
	}
	cases := []struct {
		name   string
		node   string
		body   string
		reason string
	}{
		{"another user's running job", ts.Node, req(map[string]any{"slurm_job_id": theirs.SlurmID, "job_dir": theirs.Dir}),
			fmt.Sprintf("belongs to uid %d, not to the caller (uid %d)", b.UID, u.UID)},
		{"a job not running on this node", other, req(nil), "not on this node (" + other + ")"},
		{"a job dir outside the caller's spool", ms.Node, req(map[string]any{"job_dir": "/tmp"}), "outside the caller's spool"},
		{"another user's job dir", ms.Node, req(map[string]any{"job_dir": theirs.Dir}), "outside the caller's spool"},
		{"an image off the allowlist", ms.Node, req(map[string]any{"image": "alpine:latest"}), `image "alpine:latest" is not on this cluster's allowlist`},
		{"a host path mount", ms.Node, req(map[string]any{"mounts": []map[string]any{{"source": "/", "target": "/host"}}}), "host path mounts are not allowed"},
		{"privileged mode", ms.Node, req(map[string]any{"privileged": true}), "privileged containers are never allowed"},
		{"extra capabilities", ms.Node, req(map[string]any{"cap_add": []string{"SYS_ADMIN"}}), "extra capabilities (SYS_ADMIN)"},
		{"running as root", ms.Node, req(map[string]any{"user": "0:0"}), "always the caller's uid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := agentRequest(t, u, agentSocket(c.node), "/v1/run", c.body)
			assert.Contains(t, out, "HTTP/1.1 403", out)
			escaped := strings.ReplaceAll(c.reason, `"`, `\"`) // both are JSON
			assert.Contains(t, out, escaped)
			assert.True(t, logHas(t, c.node, `"uid":`+strconv.Itoa(u.UID), escaped),
				"no refusal with reason %q in %s", c.reason, agentLog(c.node))
		})
	}
	// cleanup is root's (the epilog's) alone
	out := agentRequest(t, u, agentSocket(ms.Node), "/v1/cleanup", `{"slurm_job_id":"`+theirs.SlurmID+`"}`)
	assert.Contains(t, out, "HTTP/1.1 403")
	assert.Len(t, containers(t, theirs.ID), 1, "bob's container survived alice's cleanup request")
}

// Killing the agent while a job runs ends the job with a clear reason, not
// a hang; after the agent restarts, no container of an ended job is left.
func TestAgentKilledWhileJobRuns(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "orphan")
	s := submit(t, u, dir, proj, "--", "sleep", "600")
	waitContainer(t, s.ID, 60*time.Second)
	node := status(t, u, s.ID).Node
	killAgent(t, node)
	t.Cleanup(func() { restartAgent(t, node) })

	st := waitState(t, u, s.ID, 60*time.Second, func(st job.Status) bool { return st.State.Terminal() })
	assert.Equal(t, job.Failed, st.State)
	assert.Contains(t, st.Reason, "ferry agent on "+node+" went away")
	restartAgent(t, node)
	waitNoContainers(t, s.ID, 15*time.Second)
	// and the restarted agent serves jobs again
	r := ferry(t, u, dir, "submit", "--wait", proj, "--", "true")
	assert.Equal(t, 0, r.Code, r.String())
}

// A container whose agent died and whose job has not ended (its sandbox
// process is frozen, so neither it nor the epilog cleans up) is removed by
// the restarted agent's first reconcile; the job then ends with a reason.
func TestRestartedAgentRemovesOrphans(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "orphan2")
	s := submit(t, u, dir, proj, "--", "sleep", "600")
	c := waitContainer(t, s.ID, 60*time.Second)
	node := status(t, u, s.ID).Node
	pid := sandboxPID(t, s.Dir)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	killAgent(t, node)
	t.Cleanup(func() { restartAgent(t, node) })
	assert.Len(t, containers(t, s.ID), 1, "the container outlives its agent until someone removes it")

	restartAgent(t, node)
	waitNoContainers(t, s.ID, 15*time.Second)
	assert.True(t, logHasLine(t, node, "reconcile: removed orphaned container", c.ID[:12]),
		"no reconcile line for %s in %s", c.ID[:12], agentLog(node))

	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	st := waitState(t, u, s.ID, 60*time.Second, func(st job.Status) bool { return st.State.Terminal() })
	assert.Equal(t, job.Failed, st.State)
	assert.Contains(t, st.Reason, "ferry agent on "+node+" went away")
}

// killAgent kills a node's agent with SIGKILL (no chance to clean up).
func killAgent(t *testing.T, node string) {
	t.Helper()
	require.NoError(t, stopAgent(node))
}

// stopAgent kills the node's agent by its pid file (SIGKILL) and waits
// until it is gone.
func stopAgent(node string) error {
	pidData, err := os.ReadFile("/run/ferry/agent-" + node + ".pid")
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidData)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("agent %s: bad pid file %q", node, pidData)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("agent %s (pid %d): %w", node, pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// restartAgent starts the node's agent again the way tests/cluster.sh does,
// unless it is already serving.
func restartAgent(t *testing.T, node string) {
	t.Helper()
	if c := exec.Command(ferrydBin, "agent", "--node", node, "--health"); c.Run() == nil {
		return
	}
	startAgent(t, node)
}

// startAgent starts the node's agent the way tests/cluster.sh does, with
// env added to its environment, and waits until it serves.
func startAgent(t *testing.T, node string, env ...string) {
	t.Helper()
	logf, err := os.OpenFile(agentLog(node), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	defer logf.Close()
	c := exec.Command(ferrydBin, "agent", "--node", node)
	c.Env = append(os.Environ(), env...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, c.Start())
	require.NoError(t, os.WriteFile("/run/ferry/agent-"+node+".pid", []byte(strconv.Itoa(c.Process.Pid)+"\n"), 0o644))
	go c.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if exec.Command(ferrydBin, "agent", "--node", node, "--health").Run() == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("agent %s did not come back", node)
}

// node_mem_reserve caps a sandbox's memory below Slurm's allotment: with the
// agents' reserve set to all but 300M of this machine, a job allotted 1G
// gets a 300M cgroup, and running past it ends out_of_memory, with the
// limit it met in the reason.
func TestNodeMemReserveCapsSandboxMemory(t *testing.T) {
	u := lookup(t, alice)
	meminfo, err := os.ReadFile("/proc/meminfo")
	require.NoError(t, err)
	var kb int64
	for _, line := range strings.Split(string(meminfo), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			_, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb)
			require.NoError(t, err, line)
		}
	}
	require.Positive(t, kb)
	const limit = 300 << 20
	sys, err := os.ReadFile("/etc/ferry/config.yaml")
	require.NoError(t, err)
	require.NotContains(t, string(sys), "node_mem_reserve", "the test sets it in a copy of the system file")
	conf := "/etc/ferry/e2e-memcap.yaml"
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(sys, "\nnode_mem_reserve: %d\n", kb<<10-limit), 0o644))
	t.Cleanup(func() { os.Remove(conf) })
	for _, node := range []string{"w1", "w2"} {
		killAgent(t, node)
		// Registered before the capped agent starts: the node gets its
		// usual agent back whatever happens from here.
		t.Cleanup(func() {
			_ = stopAgent(node) // whatever runs (or not): the usual agent comes back
			restartAgent(t, node)
		})
		startAgent(t, node, "FERRY_CONFIG="+conf)
	}

	dir, proj := project(t, u, "memcap")
	st, logText := runJob(t, u, dir, proj, []string{"--mem", "1G"}, `
import os
for p in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
    if os.path.exists(p):
        print("LIMIT", open(p).read().strip(), flush=True)
b = []
for i in range(64):
    b.append(bytearray(16 << 20))
print("ALLOCATED 1 GiB", flush=True)
`)
	assert.Contains(t, logText, fmt.Sprintf("LIMIT %d\n", limit), "the cgroup's limit is the node's memory less the reserve")
	assert.NotContains(t, logText, "ALLOCATED")
	assert.Equal(t, job.OutOfMemory, st.State, "%s: %s", st.Reason, logText)
	assert.Contains(t, st.Reason, "its 300M of memory")
}
