package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Python client against the real cluster, as a user: a Python version
// mismatch fails at once naming both versions, a lambda over an unpicklable
// object is refused before anything is submitted, remote exceptions keep
// their type (also a class defined in __main__), a failed map element names
// its index, job handles (logs, outputs, metrics, cancel), bad sweep specs,
// and a sweep over the cluster's MaxArraySize split into several arrays.
func TestPythonClientOnCluster(t *testing.T) {
	u := lookup(t, alice)
	staged := pyStage(t, u, "examples", "tests/e2e/testdata/python_checks.py")
	r := pyRun(t, u, staged, staged, 10*time.Minute, "/usr/bin/python3", "python_checks.py")
	t.Logf("python_checks.py:\n%s\n%s", r.Out, r.Err)
	require.Equal(t, 0, r.Code, "failed checks: %d\n%s", r.Code, r)
	for _, name := range []string{
		"version_mismatch_fails_at_once", "unpicklable_closure_is_refused_before_submit",
		"exception_class_from_main", "map_failure_names_index", "job_handle_logs_outputs_metrics",
		"cancel_running_function", "bad_sweep_specs", "sweep_over_array_limit_is_split",
	} {
		assert.Contains(t, r.Out, "CHECK "+name+" ok", "check %s", name)
	}
	assert.Contains(t, r.Out, "Python 3.9.18 in the notebook but Python 3.11")
	assert.Contains(t, r.Out, "closure variable 'lock'")
	assert.Contains(t, r.Out, `unknown key "bogus"`)
}

// ferry.run(lambda: 1) round trip against two floors, and a 1,000-point
// sweep submission against separate submits: see testdata/python_bench.py.
// The second floor is the issue's own: a bare `sbatch --exclusive --wrap`
// that runs the same one-liner with `docker run` of the same image (as
// root, since users have no Docker) and then touches a file, timed from
// submit until a 10 ms poll sees the file. Measures, never fails on a time.
func TestBenchPythonRun(t *testing.T) {
	u := lookup(t, alice)
	staged := pyStage(t, u, "tests/e2e/testdata/python_bench.py")
	r := pyRun(t, u, staged, staged, 15*time.Minute, "/usr/bin/python3", "python_bench.py")
	require.Equal(t, 0, r.Code, r.String())
	var res struct {
		RunP50   float64 `json:"run_p50"`
		FloorP50 float64 `json:"floor_p50"`
		SweepS   float64 `json:"sweep_s"`
	}
	for _, line := range strings.Split(r.Out, "\n") {
		switch {
		case strings.HasPrefix(line, "BENCH "):
			bench(t, "%s", strings.TrimPrefix(line, "BENCH "))
		case strings.HasPrefix(line, "RESULT "):
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "RESULT ")), &res))
		}
	}
	require.NotZero(t, res.RunP50, "no RESULT line:\n%s", r)

	// The bare sbatch + docker floor, right after, N runs.
	n := 20
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	var floors []time.Duration
	for i := range n + 2 {
		done := filepath.Join(dir, fmt.Sprintf("done-%d", i))
		script := fmt.Sprintf("docker run --rm --network none --user %d:%d ferry/sandbox:latest python3 -c '(lambda: 1)()' && touch %s", u.UID, u.GID, done)
		start := time.Now()
		out, err := exec.Command("sbatch", "--parsable", "--exclusive", "--job-name=ferry-bench-floor", "-o", "/dev/null", "--wrap", script).CombinedOutput()
		require.NoError(t, err, "sbatch: %s", out)
		for {
			if _, err := os.Stat(done); err == nil {
				break
			}
			require.Less(t, time.Since(start), 2*time.Minute, "floor job %s never touched %s", strings.TrimSpace(string(out)), done)
			time.Sleep(10 * time.Millisecond)
		}
		if i >= 2 { // two warm-up runs, as on the Python side
			floors = append(floors, time.Since(start))
		}
	}
	f50 := median(floors)
	bench(t, "python ferry.run(lambda: 1) vs bare sbatch --wrap 'docker run ferry/sandbox:latest python3 -c ... && touch F' (10 ms poll): floor p50 %s, p95 %s over %d; ferry.run p50 %.0f ms = %.2fx that floor",
		f50.Round(time.Millisecond), pct(floors, 0.95).Round(time.Millisecond), n, res.RunP50*1000, res.RunP50/f50.Seconds())
}
