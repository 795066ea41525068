package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// Each bad input gets one line on stderr, a non-zero exit, and leaves
// nothing behind: no job dir, no file in the project.
func TestBadInput(t *testing.T) {
	u := lookup(t, alice)
	b := lookup(t, bob)
	dir, proj := project(t, u, "bad")

	// a job of bob's, running, to name from alice's side
	bdir, bproj := project(t, b, "bobs")
	bs := submit(t, b, bdir, bproj, "--", "sleep", "600")
	t.Cleanup(func() { ferry(t, b, bdir, "cancel", bs.ID) })
	// a job of alice's, running, to rm
	as := submit(t, u, dir, proj, "--", "sleep", "600")
	t.Cleanup(func() { ferry(t, u, dir, "cancel", as.ID) })

	big := filepath.Join(dir, "big")
	require.NoError(t, os.MkdirAll(filepath.Join(big, "data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(big, "data", "huge.bin"), make([]byte, 3<<20), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(big, "main.py"), []byte("print(1)\n"), 0o644))
	chownTree(t, big, u)

	badYAML := filepath.Join(dir, "badyaml")
	require.NoError(t, os.MkdirAll(badYAML, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(badYAML, "job.yaml"), []byte("project: x\ncommand: python3 main.py\ncpu: 2\n"), 0o644))
	chownTree(t, badYAML, u)

	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want string // in the one-line message
	}{
		{"missing dir", nil, []string{"submit", filepath.Join(dir, "nope")}, 2, "does not exist"},
		{"unknown job.yaml field", nil, []string{"submit", badYAML}, 2, `unknown field "cpu"`},
		{"bundle over the cap", []string{"FERRY_MAX_BUNDLE=1M"}, []string{"submit", big, "--", "true"}, 2, "data/huge.bin"},
		{"image off the allowlist", nil, []string{"submit", "--image", "evil/miner:latest", proj}, 2, "evil/miner:latest"},
		{"unparsable --mem", nil, []string{"submit", "--mem", "lots", proj}, 2, `"lots"`},
		{"bad --param", nil, []string{"submit", "--param", "novalue", proj}, 2, "key=value"},
		{"unknown job id", nil, []string{"status", "zzzzzzzz"}, 4, "no job"},
		{"rm on a running job", nil, []string{"rm", as.ID}, 1, "cancel it first"},
		{"another user's job id", nil, []string{"status", bs.SlurmID}, 4, "belongs to ferry-bob"},
		{"cancel another user's job", nil, []string{"cancel", bs.SlurmID}, 4, "belongs to ferry-bob"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := spoolEntries(t, u)
			beforeFiles := treeList(t, dir)
			r := ferryEnv(t, u, dir, c.env, c.args...)
			assert.Equal(t, c.code, r.Code, r.String())
			msg := strings.TrimRight(r.Err, "\n")
			assert.NotContains(t, msg, "\n", "want a one-line error, got:\n%s", r.Err)
			assert.Contains(t, msg, c.want)
			assert.True(t, strings.HasPrefix(msg, "ferry: "), msg)
			assert.Empty(t, r.Out)
			assert.Equal(t, before, spoolEntries(t, u), "the spool changed")
			assert.Equal(t, beforeFiles, treeList(t, dir), "files appeared in the project dir")
		})
	}
	// bob's job is untouched by alice's attempt
	assert.Contains(t, []job.State{job.Queued, job.Running}, status(t, b, bs.ID).State)
}

// Values that reach the sbatch script can never run as shell code.
func TestHostileValuesNeverRun(t *testing.T) {
	u := lookup(t, alice)
	dir, proj := project(t, u, "quoting")
	marker := fmt.Sprintf("/tmp/ferry-pwned-%d", time.Now().UnixNano())
	t.Cleanup(func() { os.Remove(marker) })
	hostile := "$(touch " + marker + ")`touch " + marker + "`'\"\n; touch " + marker
	r := ferry(t, u, dir, "submit", "--wait", "-o", "json", "--name", hostile, "--param", "x="+hostile,
		"--env", "HOSTILE="+hostile, proj, "--", "python3", "-c",
		"import json,os; p=json.load(open('/work/ferry_params.json')); print(json.dumps([p['x'], os.environ['HOSTILE']]))")
	require.Equal(t, 0, r.Code, r.String())
	var s submitted
	require.NoError(t, json.Unmarshal([]byte(r.Out), &s))
	logData, err := os.ReadFile(filepath.Join(s.Dir, "log"))
	require.NoError(t, err)
	var got []string
	require.NoError(t, json.Unmarshal(logData, &got), string(logData))
	assert.Equal(t, []string{hostile, hostile}, got)
	_, err = os.Stat(marker)
	assert.True(t, os.IsNotExist(err), "a hostile value ran as shell code")
	script, err := os.ReadFile(filepath.Join(s.Dir, "job.sbatch"))
	require.NoError(t, err)
	assert.NotContains(t, string(script), "touch", "user values do not belong in the script")
}

func chownTree(t testing.TB, root string, u tuser) {
	t.Helper()
	require.NoError(t, filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.UID, u.GID)
	}))
}

func treeList(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	}))
	return out
}
