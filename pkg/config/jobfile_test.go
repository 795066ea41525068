package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const fullJobFile = `# a project's job
project: mnist
name: "lr sweep"
command: python3 train.py --epochs 3 --tag 'run one'
image: ferry/cuda:12
cpus: 4
mem: 8G
gpus: 1
time: "2:00:00"
partition: gpu
env:
  OMP_NUM_THREADS: 4
  MODE: fast
params:
  lr: 0.001
  layers: [64, 32]
  nested: {a: {b: true}}
  when: 2024-05-01
  1: one
  none: ~
  anchors: &x {k: v}
  copy: *x
  merged:
    <<: *x
    extra: 2
network: labnet
`

func TestParseJobFileHappy(t *testing.T) {
	jf, err := ParseJobFile("job.yaml", []byte(fullJobFile))
	require.NoError(t, err)
	assert.Equal(t, "mnist", jf.Project)
	assert.Equal(t, "lr sweep", jf.Name)
	assert.Equal(t, StringOrList{"python3", "train.py", "--epochs", "3", "--tag", "run one"}, jf.Command)
	assert.Equal(t, "ferry/cuda:12", jf.Image)
	assert.Equal(t, 4, jf.CPUs)
	assert.Equal(t, "8G", jf.Mem)
	assert.Equal(t, 1, jf.GPUs)
	assert.Equal(t, "2:00:00", jf.Time)
	assert.Equal(t, "gpu", jf.Partition)
	assert.Equal(t, map[string]string{"OMP_NUM_THREADS": "4", "MODE": "fast"}, jf.Env)
	assert.Equal(t, "labnet", jf.Network)

	out, err := json.Marshal(jf.Params)
	require.NoError(t, err)
	assert.JSONEq(t, `{
		"lr": 0.001, "layers": [64, 32], "nested": {"a": {"b": true}},
		"when": "2024-05-01", "1": "one", "none": null,
		"anchors": {"k": "v"}, "copy": {"k": "v"}, "merged": {"k": "v", "extra": 2}
	}`, string(out))
}

func TestParseJobFileCommandList(t *testing.T) {
	jf, err := ParseJobFile("job.yaml", []byte("command: [python3, -c, \"print('a b')\", 3]\n"))
	require.NoError(t, err)
	assert.Equal(t, StringOrList{"python3", "-c", "print('a b')", "3"}, jf.Command)
}

func TestParseJobFileEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n", "---\n", "~\n"} {
		jf, err := ParseJobFile("job.yaml", []byte(in))
		require.NoError(t, err, "%q", in)
		assert.Equal(t, &JobFile{}, jf, "%q", in)
	}
}

func TestParseJobFileErrors(t *testing.T) {
	tests := []struct {
		name, in string
		want     string
	}{
		{"unknown field", "name: x\ncommand: a\n\ncpu: 2\n",
			`job.yaml line 4: unknown field "cpu" (known: project, name, command, image, cpus, mem, gpus, time, partition, env, params, network, apt)`},
		{"wrong type", "name: x\ncpus: four\n", `job.yaml line 2: cpus: want a whole number, got "four"`},
		{"list for a string", "image: [a, b]\n", `job.yaml line 1: image: want a string, got a list`},
		{"env not a mapping", "env:\n  - A=1\n", `job.yaml line 2: env: want a mapping of names to strings, got a list`},
		{"params not a mapping", "params: 3\n", `job.yaml line 1: params: want a mapping, got 3`},
		{"two documents", "name: a\n---\nname: b\n", `job.yaml line 3: more than one YAML document; remove the "---" separator and merge them`},
		{"not a mapping", "python3 main.py\n", `job.yaml line 1: want a mapping of fields such as "name: value", got "python3 main.py"`},
		{"syntax", "name: [a\n", "job.yaml line 1: did not find expected ',' or ']'"},
		{"tab indentation", "env:\n\tA: 1\n", "job.yaml line 2: found character that cannot start any token"},
		{"duplicate key", "cpus: 1\ncpus: 2\n", `job.yaml line 2: key "cpus" appears twice (first at line 1)`},
		{"command with shell syntax", "command: python3 a.py > log\n",
			`job.yaml line 1: command: ">" at character 14 is shell syntax, but the command runs without a shell; quote it to pass it literally, or use a list such as [sh, -c, "..."]`},
		{"unbalanced quote", "command: \"python3 'a\"\n", `job.yaml line 1: command: unbalanced single quote at character 9`},
		{"command mapping", "command:\n  run: x\n", `job.yaml line 2: command: want a command line or a list of arguments, got a mapping`},
		{"command list item", "command:\n  - python3\n  - [x]\n", `job.yaml line 3: command[1]: want a string, got a list`},
		{"NaN", "params:\n  lr: .nan\n", `job.yaml line 2: params.lr: .nan is not a number JSON can carry (no NaN or infinity); quote it to pass a string`},
		{"infinity deep", "params:\n  a: [1, {b: -.Inf}]\n", `job.yaml line 2: params.a[1].b: -.Inf is not a number JSON can carry (no NaN or infinity); quote it to pass a string`},
		{"list as key", "params:\n  ? [a]\n  : 1\n", `job.yaml line 2: params: want a string, got a list`},
		{"values", "mem: 4X\ntime: soon\ncpus: -1\ngpus: -2\nproject: 'my project'\n", strings.Join([]string{
			`job.yaml line 1: mem: invalid memory size "4X": want a size such as 512M or 4G`,
			`job.yaml line 2: time: invalid time limit "soon": want minutes (30), HH:MM:SS, D-HH:MM:SS or a duration such as 90m`,
			`job.yaml line 3: cpus: must not be negative, got -1`,
			`job.yaml line 4: gpus: must not be negative, got -2`,
			`job.yaml line 5: project: invalid project name "my project": use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters`,
		}, "\n")},
		{"a tag holding a newline", "!%0A", `job.yaml line 1: want a mapping of fields such as "name: value", got a value tagged "!\n"`},
		{"self-referencing anchor", "params: &a {x: *a}\n", "job.yaml: anchor 'a' value contains itself"},
		{"too large", "name: " + strings.Repeat("x", MaxJobFileSize) + "\n",
			"job.yaml is larger than 1M; keep data in the project's files and read it from the job"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jf, err := ParseJobFile("job.yaml", []byte(tt.in))
			assert.Nil(t, jf)
			assert.EqualError(t, err, tt.want)
		})
	}
}

func TestReadJobFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, JobFileName)

	_, err := ReadJobFile(path)
	assert.True(t, errors.Is(err, fs.ErrNotExist), "missing job.yaml: %v", err)

	require.NoError(t, os.WriteFile(path, []byte("command: python3 main.py\ncpus: 2\n"), 0o600))
	jf, err := ReadJobFile(path)
	require.NoError(t, err)
	assert.Equal(t, StringOrList{"python3", "main.py"}, jf.Command)
	assert.Equal(t, 2, jf.CPUs)

	require.NoError(t, os.WriteFile(path, []byte("cpus: 2\nimage: 3\nnetwrok: x\n"), 0o600))
	_, err = ReadJobFile(path)
	assert.EqualError(t, err, path+` line 3: unknown field "netwrok" (known: project, name, command, image, cpus, mem, gpus, time, partition, env, params, network, apt)`)
	assert.False(t, errors.Is(err, fs.ErrNotExist))
}
