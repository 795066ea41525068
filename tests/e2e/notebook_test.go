package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repoRoot is the repository, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// pyStage copies python/ferry and the given repository paths into a fresh
// dir of u's, owned by u, as a notebook user would have them.
func pyStage(t testing.TB, u tuser, paths ...string) string {
	t.Helper()
	dir := workdir(t, u)
	root := repoRoot(t)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "python"), 0o755))
	copies := map[string]string{filepath.Join(root, "python", "ferry"): filepath.Join(dir, "python", "ferry")}
	for _, p := range paths {
		copies[filepath.Join(root, p)] = filepath.Join(dir, filepath.Base(p))
	}
	for src, dst := range copies {
		out, err := exec.Command("cp", "-r", src, dst).CombinedOutput()
		require.NoError(t, err, "cp -r %s %s: %s", src, dst, out)
	}
	require.NoError(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.UID, u.GID)
	}))
	return dir
}

// pyRun runs a command as u with python/ferry of the staged dir importable.
func pyRun(t testing.TB, u tuser, staged, dir string, timeout time.Duration, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := cmdAs(ctx, u, dir, []string{"PYTHONPATH=" + filepath.Join(staged, "python"), "FERRY_BIN=" + ferryBin}, name, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	r := result{Out: out.String(), Err: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v as %s: %v", name, args, u.Name, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %v as %s: timed out after %s\n%s", name, args, u.Name, timeout, r)
	}
	return r
}

type nbOutput struct {
	OutputType string                     `json:"output_type"`
	Name       string                     `json:"name"`
	Text       json.RawMessage            `json:"text"`
	Data       map[string]json.RawMessage `json:"data"`
	Ename      string                     `json:"ename"`
	Evalue     string                     `json:"evalue"`
}

type nbCell struct {
	CellType string          `json:"cell_type"`
	Source   json.RawMessage `json:"source"`
	Outputs  []nbOutput      `json:"outputs"`
}

// nbText joins a notebook multiline string (a string or a list of strings).
func nbText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []string
	_ = json.Unmarshal(raw, &parts)
	return strings.Join(parts, "")
}

// The example notebook runs headless against the real cluster as an
// unprivileged user: a closure over a numpy array, a map over 20 inputs as
// one job array, a 12-point sweep and its best point, a remote exception
// caught by type, and a job's status line.
func TestNotebookExample(t *testing.T) {
	if _, err := exec.LookPath("jupyter-nbconvert"); err != nil {
		t.Fatalf("jupyter-nbconvert is not installed (Debian: jupyter-nbconvert python3-ipykernel; tests/run.sh installs them): %v", err)
	}
	u := lookup(t, alice)
	staged := pyStage(t, u, "examples")
	nbDir := filepath.Join(staged, "examples")
	start := time.Now()
	r := pyRun(t, u, staged, nbDir, 10*time.Minute, "jupyter", "nbconvert", "--to", "notebook", "--execute",
		"--ExecutePreprocessor.timeout=600", "--output", "executed.ipynb", "ferry_notebook.ipynb")
	require.Equal(t, 0, r.Code, r.String())
	t.Logf("notebook executed in %s", time.Since(start).Round(time.Millisecond))

	data, err := os.ReadFile(filepath.Join(nbDir, "executed.ipynb"))
	require.NoError(t, err)
	var nb struct {
		Cells []nbCell `json:"cells"`
	}
	require.NoError(t, json.Unmarshal(data, &nb))
	var stdout, html strings.Builder
	for _, c := range nb.Cells {
		for _, o := range c.Outputs {
			switch o.OutputType {
			case "error":
				t.Errorf("cell raised %s: %s\n%s", o.Ename, o.Evalue, nbText(c.Source))
			case "stream":
				if o.Name == "stdout" {
					stdout.WriteString(nbText(o.Text))
				}
			case "display_data", "execute_result":
				html.WriteString(nbText(o.Data["text/html"]) + "\n")
			}
		}
	}
	out := stdout.String()
	t.Logf("notebook stdout:\n%s", out)
	assert.Contains(t, out, "closure result: 10100.0\n", "sum(1..100) * 2, computed on the cluster")
	assert.Contains(t, out, "map result: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121, 144, 169, 196, 225, 256, 289, 324, 361]\n")
	assert.Contains(t, out, "sweep tasks: 12 states: ['succeeded']\n")
	assert.Contains(t, out, `best point: {"layers": 3, "lr": 0.01} loss = 0.05`+"\n")
	assert.Contains(t, out, "caught remote ValueError: negative input: -4\n")
	assert.Regexp(t, `remote frame: File "[^"]+", line \d+, in risky`, out)
	assert.Contains(t, out, "async result: 4.0\n")
	assert.Contains(t, html.String(), "ferry function <code", "a Job shows its status line")
	assert.Contains(t, html.String(), "<b>ferry sweep</b>", "a Sweep shows its table")
	assert.Contains(t, html.String(), "<td>0.01</td>")
}
