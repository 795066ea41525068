package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
		"exception_class_from_main", "map_failure_names_index", "job_handle_logs_outputs_metrics", "logs_follow_streams_until_the_end",
		"cancel_running_function", "bad_sweep_specs", "sweep_over_array_limit_is_split",
	} {
		assert.Contains(t, r.Out, "CHECK "+name+" ok", "check %s", name)
	}
	assert.Contains(t, r.Out, "Python 3.9.18 in the notebook but Python 3.11")
	assert.Contains(t, r.Out, "closure variable 'lock'")
	assert.Contains(t, r.Out, `unknown key "bogus"`)
}

// ferry.run(lambda: 1) round trip against the floor, measured side
// by side: a bare `sbatch --exclusive --wrap` that runs the same one-liner
// with `docker run` of the same image (as root, since users have no
// Docker) and then touches a file, timed from submit until a 10 ms poll
// sees the file. The two alternate, one call each, after warm-up. Then a
// 1,000-point sweep against 1,000 separate `ferry submit` calls (see
// testdata/python_bench.py). Measures, never fails on a time.
func TestBenchPythonRun(t *testing.T) {
	u := lookup(t, alice)
	staged := pyStage(t, u, "tests/e2e/testdata/python_bench.py")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c := cmdAs(ctx, u, staged, []string{"PYTHONPATH=" + filepath.Join(staged, "python"), "FERRY_BIN=" + ferryBin},
		"/usr/bin/python3", "python_bench.py", "run-server")
	stdin, err := c.StdinPipe()
	require.NoError(t, err)
	stdout, err := c.StdoutPipe()
	require.NoError(t, err)
	var errb bytes.Buffer
	c.Stderr = &errb
	require.NoError(t, c.Start())
	lines := bufio.NewScanner(stdout)
	next := func() string {
		require.True(t, lines.Scan(), "python_bench.py run-server ended early: %v\n%s", lines.Err(), errb.String())
		return lines.Text()
	}
	require.Equal(t, "READY", next())

	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o777))
	floorOnce := func(i int) time.Duration {
		done := filepath.Join(dir, fmt.Sprintf("done-%d", i))
		script := fmt.Sprintf("docker run --rm --network none --user %d:%d ferry/sandbox:latest python3 -c '(lambda: 1)()' && touch %s", u.UID, u.GID, done)
		start := time.Now()
		out, err := exec.Command("sbatch", "--parsable", "--exclusive", "--job-name=ferry-bench-floor", "-o", "/dev/null", "--wrap", script).CombinedOutput()
		require.NoError(t, err, "sbatch: %s", out)
		for {
			if _, err := os.Stat(done); err == nil {
				return time.Since(start)
			}
			require.Less(t, time.Since(start), 2*time.Minute, "floor job %s never touched %s", strings.TrimSpace(string(out)), done)
			time.Sleep(10 * time.Millisecond)
		}
	}
	floorOnce(-1) // warm-up, as the Python side did two calls
	floorOnce(-2)
	const n = 20
	var runs, floors []time.Duration
	for i := range n {
		_, err := io.WriteString(stdin, "run\n")
		require.NoError(t, err)
		var secs float64
		line := next()
		_, err = fmt.Sscanf(line, "RUN %g", &secs)
		require.NoError(t, err, "answer %q", line)
		runs = append(runs, time.Duration(secs*float64(time.Second)))
		floors = append(floors, floorOnce(i))
	}
	_, _ = io.WriteString(stdin, "quit\n")
	require.NoError(t, stdin.Close())
	require.NoError(t, c.Wait(), errb.String())
	r50, r95, f50, f95 := median(runs), pct(runs, .95), median(floors), pct(floors, .95)
	bench(t, "python ferry.run(lambda: 1) round trip: p50 %s, p95 %s over %d calls; floor, alternating with it (bare sbatch --exclusive --wrap 'docker run ferry/sandbox:latest python3 -c ... && touch F', seen by a 10 ms poll): p50 %s, p95 %s; ratio p50 %.2fx, p95 %.2fx (target: p50 < 1 s and <= 1.5x the floor)",
		r50.Round(time.Millisecond), r95.Round(time.Millisecond), n, f50.Round(time.Millisecond), f95.Round(time.Millisecond),
		r50.Seconds()/f50.Seconds(), r95.Seconds()/f95.Seconds())

	r := pyRun(t, u, staged, staged, 20*time.Minute, "/usr/bin/python3", "python_bench.py", "sweep")
	require.Equal(t, 0, r.Code, r.String())
	var res struct {
		SweepS    float64 `json:"sweep_s"`
		SeparateS float64 `json:"separate_s"`
	}
	for _, line := range strings.Split(r.Out, "\n") {
		switch {
		case strings.HasPrefix(line, "BENCH "):
			bench(t, "%s", strings.TrimPrefix(line, "BENCH "))
		case strings.HasPrefix(line, "RESULT "):
			require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "RESULT ")), &res))
		}
	}
	require.NotZero(t, res.SweepS, "no RESULT line:\n%s", r)
	require.NotZero(t, res.SeparateS, "no RESULT line:\n%s", r)
}
