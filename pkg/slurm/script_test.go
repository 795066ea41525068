package slurm

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./pkg/slurm/ -run %s -update to create it", t.Name())
	assert.Equal(t, string(want), string(got))
}

func fullScript() Script {
	const dir = "/home/alice/.ferry/jobs/01jd8x3k5m7n9p1q3r5s7t9v2w"
	return Script{
		JobName:   "ferry/demo",
		Comment:   "ferry:01jd8x3k5m7n9p1q3r5s7t9v2w",
		Output:    dir + "/slurm.out",
		Chdir:     dir,
		CPUs:      2,
		MemBytes:  512 << 20,
		GPUs:      1,
		TimeLimit: 600,
		Partition: "debug",
		Array:     "0-99%10",
		Ferry:     "/usr/local/bin/ferry",
		Args:      []string{"sandbox", "run", "--job-dir", dir},
		Env:       map[string]string{"FERRY_CONFIG": "/etc/ferry/config.yaml", "FERRY_DEBUG": "it's on"},
		Header: []string{
			"ferry job 01jd8x3k5m7n9p1q3r5s7t9v2w, project demo, submitted by alice",
			"command: python train.py\n#SBATCH --uid=0\rx\x1b[2J",
		},
	}
}

func TestRenderGolden(t *testing.T) {
	got, err := Render(fullScript())
	require.NoError(t, err)
	golden(t, "full", got)

	t.Run("minimal", func(t *testing.T) {
		s := Script{JobName: "ferry/p", Output: "/j/slurm.out", Chdir: "/j", Ferry: "/bin/ferry"}
		got, err := Render(s)
		require.NoError(t, err)
		assert.Equal(t, `#!/bin/bash
#SBATCH --job-name=ferry/p
#SBATCH --exclusive
#SBATCH --output=/j/slurm.out
#SBATCH --chdir=/j
# Re-run by hand with: sbatch /j/job.sbatch
export FERRY_BATCH_START="$EPOCHREALTIME"
exec '/bin/ferry'
`, string(got))
	})
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"plain", "'plain'"},
		{"a'b", `'a'\''b'`},
		{"''", `''\'''\'''`},
		{"$(id) `id` \\ \"x\" \n", "'$(id) `id` \\ \"x\" \n'"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, Quote(tt.in), "Quote(%q)", tt.in)
	}
}

// TestRenderedScriptRuns renders hostile values into Env and Args, runs the
// script with bash and checks that each value arrives verbatim and that
// none of them ran.
func TestRenderedScriptRuns(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	payloads := []string{
		"$(touch " + marker + ")",
		"`touch " + marker + "`",
		"a'b",
		"a'\"'\"'b",
		"x\ny",
		"'; touch " + marker + "; '",
		"$HOME ${PATH} $((1+1)) !! ~ * ? [a] {a,b}",
		"\\'\\\\'",
		"-n",
		"",
		"tab\there\r\n",
		"ünï ☃",
	}
	env := map[string]string{}
	var args []string
	// /bin/sh prints its arguments, then the exported variables, each
	// followed by a NUL.
	args = append(args, "-c", `for a in "$@"; do printf '%s\0' "$a"; done; for v in $FERRY_VARS; do eval "printf '%s\0' \"\$$v\""; done`, "printer")
	var vars []string
	for i, p := range payloads {
		args = append(args, p)
		k := "FERRY_T" + string(rune('A'+i))
		env[k] = p
		vars = append(vars, k)
	}
	env["FERRY_VARS"] = strings.Join(vars, " ")

	script, err := Render(Script{
		JobName: "ferry/test", Comment: "ferry:x", Output: dir + "/slurm.out", Chdir: dir,
		Ferry: "/bin/sh", Args: args, Env: env,
		Header: payloads,
	})
	require.NoError(t, err)
	path := filepath.Join(dir, "job.sbatch")
	require.NoError(t, os.WriteFile(path, script, 0o600))

	cmd := exec.Command(bash, path)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "stderr: %s\nscript:\n%s", stderr.String(), script)
	assert.Empty(t, stderr.String())

	got := strings.Split(string(out), "\x00")
	require.Equal(t, "", got[len(got)-1])
	got = got[:len(got)-1]
	want := append(append([]string{}, payloads...), payloads...)
	assert.Equal(t, want, got, "script:\n%s", script)
	assert.NoFileExists(t, marker)
}

func TestRenderRefuses(t *testing.T) {
	bad := []string{
		"$(touch /tmp/x)", "a'b", "x\ny", "`id`", "a b", "a\tb", `a"b`, "a#b", `a\b`, "a\x00b", "a\rb",
		"a\u00a0b", "\xff",
	}
	fields := []struct {
		name string
		set  func(*Script, string)
	}{
		{"JobName", func(s *Script, v string) { s.JobName = v }},
		{"Comment", func(s *Script, v string) { s.Comment = v }},
		{"Output", func(s *Script, v string) { s.Output = "/j/" + v }},
		{"Chdir", func(s *Script, v string) { s.Chdir = "/j/" + v }},
		{"Partition", func(s *Script, v string) { s.Partition = v }},
		{"Array", func(s *Script, v string) { s.Array = v }},
	}
	for _, f := range fields {
		for _, v := range bad {
			t.Run(f.name+"/"+v, func(t *testing.T) {
				s := fullScript()
				f.set(&s, v)
				out, err := Render(s)
				require.Error(t, err)
				assert.Nil(t, out)
				assert.Contains(t, err.Error(), f.name+" ")
			})
		}
	}

	others := []struct {
		name    string
		set     func(*Script)
		wantErr string
	}{
		{"env key with newline", func(s *Script) { s.Env["A\nB"] = "x" }, `Env key "A\nB" is not a shell variable name`},
		{"env key with expansion", func(s *Script) { s.Env["A$(id)"] = "x" }, `Env key "A$(id)" is not a shell variable name`},
		{"env key starting with a digit", func(s *Script) { s.Env["1A"] = "x" }, `Env key "1A" is not a shell variable name`},
		{"empty env key", func(s *Script) { s.Env[""] = "x" }, `Env key "" is not a shell variable name`},
		{"env value with NUL", func(s *Script) { s.Env["A"] = "x\x00" }, "Env A contains a NUL byte"},
		{"arg with NUL", func(s *Script) { s.Args = []string{"a\x00"} }, "Args[0] contains a NUL byte"},
		{"relative output", func(s *Script) { s.Output = "slurm.out" }, `Output "slurm.out" is not an absolute path`},
		{"relative chdir", func(s *Script) { s.Chdir = "jobs/x" }, `Chdir "jobs/x" is not an absolute path`},
		{"relative ferry", func(s *Script) { s.Ferry = "ferry" }, `Ferry "ferry" is not an absolute path`},
		{"no job name", func(s *Script) { s.JobName = "" }, "JobName is empty"},
		{"negative cpus", func(s *Script) { s.CPUs = -1 }, "must not be negative"},
	}
	for _, tt := range others {
		t.Run(tt.name, func(t *testing.T) {
			s := fullScript()
			tt.set(&s)
			_, err := Render(s)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}
