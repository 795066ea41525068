package submit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/bundle"
	"github.com/ferry-hpc/ferry/pkg/config"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// fakeSbatch records the script it was given and what the job dir held at
// that moment, and answers with id or err.
type fakeSbatch struct {
	id  string
	err error

	mu      sync.Mutex
	calls   int
	script  string
	content []byte
}

func (f *fakeSbatch) Submit(_ context.Context, script string, args ...string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.script = script
	f.content, _ = os.ReadFile(script)
	return f.id, f.err
}

func newConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.SpoolRoot = filepath.Join(t.TempDir(), "spool")
	cfg.Images = append(cfg.Images, "ferry/cuda:12", "ferry/py:3.12")
	cfg.Networks = []string{"bridge"}
	return cfg
}

// project makes a project dir named name holding files (path → content).
func project(t *testing.T, name string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for p, content := range files {
		full := filepath.Join(dir, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
	}
	return dir
}

const fullJobYAML = `
project: vision
name: baseline
command: python3 train.py --tag 'a b'
image: ferry/cuda:12
cpus: 4
mem: 8G
gpus: 2
time: 2h
partition: gpu
env:
  A: "1"
  B: "2"
params:
  lr: 0.1
  epochs: 10
  layers: [64, 32]
`

func TestBuildSpecLayers(t *testing.T) {
	tests := []struct {
		name    string
		jobYAML string // "" = no job.yaml
		req     submit.Request
		want    job.Spec
	}{
		{
			name: "cluster defaults only",
			req:  submit.Request{Command: []string{"echo", "hi"}, GPUs: -1},
			want: job.Spec{
				Project: "proj", Command: []string{"echo", "hi"}, Image: config.DefaultImage,
				Resources: job.Resources{CPUs: 1, MemBytes: 1 << 30, TimeLimit: 3600},
				Env:       map[string]string{}, Params: map[string]any{},
			},
		},
		{
			name:    "job.yaml over defaults",
			jobYAML: fullJobYAML,
			req:     submit.Request{GPUs: -1},
			want: job.Spec{
				Project: "vision", Name: "baseline", Command: []string{"python3", "train.py", "--tag", "a b"},
				Image: "ferry/cuda:12", Partition: "gpu",
				Resources: job.Resources{CPUs: 4, MemBytes: 8 << 30, GPUs: 2, TimeLimit: 7200},
				Env:       map[string]string{"A": "1", "B": "2"},
				Params:    map[string]any{"lr": 0.1, "epochs": 10, "layers": []any{64, 32}},
			},
		},
		{
			name:    "request over job.yaml",
			jobYAML: fullJobYAML,
			req: submit.Request{
				Command: []string{"bash", "-c", "echo $A"}, Image: "ferry/py:3.12", CPUs: 8, Mem: "512M", GPUs: 0,
				Time: "30", Partition: "debug", Name: "try 2", Network: "bridge",
				Params: map[string]any{"lr": 0.2, "fresh": true},
				Env:    map[string]string{"B": "3", "C": "4"},
			},
			want: job.Spec{
				Project: "vision", Name: "try 2", Command: []string{"bash", "-c", "echo $A"},
				Image: "ferry/py:3.12", Partition: "debug", Network: "bridge",
				Resources: job.Resources{CPUs: 8, MemBytes: 512 << 20, GPUs: 0, TimeLimit: 1800},
				Env:       map[string]string{"A": "1", "B": "3", "C": "4"},
				Params:    map[string]any{"lr": 0.2, "epochs": 10, "layers": []any{64, 32}, "fresh": true},
			},
		},
		{
			name:    "job.yaml command as a list, network none",
			jobYAML: "command: [python3, -c, 'print(1)']\nnetwork: none\n",
			req:     submit.Request{GPUs: -1},
			want: job.Spec{
				Project: "proj", Command: []string{"python3", "-c", "print(1)"}, Image: config.DefaultImage, Network: "none",
				Resources: job.Resources{CPUs: 1, MemBytes: 1 << 30, TimeLimit: 3600},
				Env:       map[string]string{}, Params: map[string]any{},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"main.py": "print(1)\n"}
			if tt.jobYAML != "" {
				files["job.yaml"] = tt.jobYAML
			}
			dir := project(t, "proj", files)
			tt.req.Dir = dir
			s := &submit.Submitter{Config: newConfig(t)}

			spec, err := s.BuildSpec(tt.req)
			require.NoError(t, err)

			tt.want.Source = dir
			assert.Equal(t, &tt.want, spec)
		})
	}
}

func TestBuildSpecRelativeDir(t *testing.T) {
	dir := project(t, "rel", map[string]string{"job.yaml": "command: echo\n"})
	t.Chdir(filepath.Dir(dir))
	spec, err := (&submit.Submitter{Config: newConfig(t)}).BuildSpec(submit.Request{Dir: "rel", GPUs: -1})
	require.NoError(t, err)
	assert.Equal(t, dir, spec.Source, "the source is recorded as an absolute path")
	assert.Equal(t, "rel", spec.Project)
}

func TestBuildSpecProjectFromDirName(t *testing.T) {
	tests := []struct {
		dir, want string
	}{
		{"plain", "plain"},
		{"My Proj!", "My-Proj-"},
		{".hidden", "hidden"},
		{"--x", "x"},
		{"日本", "project"},
		{"a.b_c-d", "a.b_c-d"},
		{strings.Repeat("x", 80), strings.Repeat("x", 63)},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			dir := project(t, tt.dir, nil)
			spec, err := (&submit.Submitter{Config: newConfig(t)}).BuildSpec(submit.Request{Dir: dir, Command: []string{"true"}, GPUs: -1})
			require.NoError(t, err)
			assert.Equal(t, tt.want, spec.Project)
			assert.NoError(t, job.ValidateProject(spec.Project))
		})
	}
}

func TestBuildSpecBadInput(t *testing.T) {
	tests := []struct {
		name    string
		jobYAML string
		req     func(dir string) submit.Request
		wantMsg []string
	}{
		{
			name:    "missing dir",
			req:     func(dir string) submit.Request { return submit.Request{Dir: filepath.Join(dir, "nope")} },
			wantMsg: []string{"does not exist"},
		},
		{
			name:    "a file instead of a dir",
			req:     func(dir string) submit.Request { return submit.Request{Dir: filepath.Join(dir, "main.py")} },
			wantMsg: []string{"is not a directory"},
		},
		{
			name:    "unknown job.yaml field",
			jobYAML: "command: echo\ncpu: 4\n",
			wantMsg: []string{"job.yaml", "cpu"},
		},
		{
			name:    "bad mem in job.yaml",
			jobYAML: "command: echo\nmem: lots\n",
			wantMsg: []string{"mem", "lots"},
		},
		{
			name: "bad mem in request",
			req: func(dir string) submit.Request {
				return submit.Request{Dir: dir, Command: []string{"x"}, Mem: "lots", GPUs: -1}
			},
			wantMsg: []string{"--mem", `invalid memory size "lots"`},
		},
		{
			name: "bad time in request",
			req: func(dir string) submit.Request {
				return submit.Request{Dir: dir, Command: []string{"x"}, Time: "1:2:3:4", GPUs: -1}
			},
			wantMsg: []string{"--time", `invalid time limit "1:2:3:4"`},
		},
		{
			name: "image off the allowlist",
			req: func(dir string) submit.Request {
				return submit.Request{Dir: dir, Command: []string{"x"}, Image: "ubuntu:24.04", GPUs: -1}
			},
			wantMsg: []string{`image "ubuntu:24.04" is not allowed`},
		},
		{
			name:    "image off the allowlist in job.yaml",
			jobYAML: "command: echo\nimage: evil/miner\n",
			wantMsg: []string{`image "evil/miner" is not allowed`},
		},
		{
			name: "network not allowed",
			req: func(dir string) submit.Request {
				return submit.Request{Dir: dir, Command: []string{"x"}, Network: "host", GPUs: -1}
			},
			wantMsg: []string{`network "host" is not allowed on this cluster (allowed: bridge)`},
		},
		{
			name: "partition with a space",
			req: func(dir string) submit.Request {
				return submit.Request{Dir: dir, Command: []string{"x"}, Partition: "a b", GPUs: -1}
			},
			wantMsg: []string{`partition "a b" is not a Slurm partition name`, "sinfo -s"},
		},
		{
			name:    "partition with a shell character in job.yaml",
			jobYAML: "command: echo\npartition: $(id)\n",
			wantMsg: []string{`partition "$(id)" is not a Slurm partition name`},
		},
		{
			name:    "no command anywhere",
			req:     func(dir string) submit.Request { return submit.Request{Dir: dir, GPUs: -1} },
			wantMsg: []string{"no command"},
		},
		{
			name: "reserved env name",
			req: func(dir string) submit.Request {
				return submit.Request{Dir: dir, Command: []string{"x"}, Env: map[string]string{"SLURM_JOB_ID": "1"}, GPUs: -1}
			},
			jobYAML: "project: ok\n",
			wantMsg: []string{`env name "SLURM_JOB_ID" is reserved`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"main.py": "print(1)\n"}
			if tt.jobYAML != "" {
				files["job.yaml"] = tt.jobYAML
			}
			dir := project(t, "proj", files)
			req := submit.Request{Dir: dir, GPUs: -1}
			if tt.req != nil {
				req = tt.req(dir)
			}
			spec, err := (&submit.Submitter{Config: newConfig(t)}).BuildSpec(req)
			require.Error(t, err)
			assert.Nil(t, spec)
			var bi *submit.BadInput
			require.ErrorAs(t, err, &bi, "want *submit.BadInput, got %T: %v", err, err)
			for _, m := range tt.wantMsg {
				assert.Contains(t, err.Error(), m)
			}
		})
	}
}

func TestBuildSpecValidationIsOneLine(t *testing.T) {
	dir := project(t, "proj", nil)
	cfg := newConfig(t)
	cfg.Defaults.CPUs = 0
	_, err := (&submit.Submitter{Config: cfg}).BuildSpec(submit.Request{Dir: dir, GPUs: -1, Env: map[string]string{"FERRY_X": "1"}})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "\n")
	assert.Contains(t, err.Error(), "no command")
	assert.Contains(t, err.Error(), `env name "FERRY_X" is reserved`)
}

func TestParseParam(t *testing.T) {
	tests := []struct {
		in      string
		key     string
		want    any
		wantErr bool
	}{
		{in: "lr=0.1", key: "lr", want: 0.1},
		{in: "epochs=10", key: "epochs", want: float64(10)},
		{in: "debug=true", key: "debug", want: true},
		{in: "debug=false", key: "debug", want: false},
		{in: "x=null", key: "x", want: nil},
		{in: "layers=[64,32]", key: "layers", want: []any{float64(64), float64(32)}},
		{in: `opt={"a":1}`, key: "opt", want: map[string]any{"a": float64(1)}},
		{in: "name=resnet", key: "name", want: "resnet"},
		{in: `name="10"`, key: "name", want: "10"},
		{in: `q="a b"`, key: "q", want: "a b"},
		{in: "expr=a=b", key: "expr", want: "a=b"},
		{in: "empty=", key: "empty", want: ""},
		{in: " k =v", key: "k", want: "v"},
		{in: "novalue", wantErr: true},
		{in: "=x", wantErr: true},
		{in: " =x", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, v, err := submit.ParseParam(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				var bi *submit.BadInput
				assert.ErrorAs(t, err, &bi)
				assert.Contains(t, err.Error(), "want key=value")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.key, k)
			assert.Equal(t, tt.want, v)
		})
	}
}

func TestReadParamsFile(t *testing.T) {
	tests := []struct {
		name    string
		content *string // nil = no file
		want    map[string]any
		wantMsg string
	}{
		{name: "json", content: ptr(`{"lr": 0.1, "tags": ["a", "b"], "deep": {"x": true}}`),
			want: map[string]any{"lr": 0.1, "tags": []any{"a", "b"}, "deep": map[string]any{"x": true}}},
		{name: "yaml", content: ptr("lr: 0.1\nepochs: 10\nname: resnet\n"),
			want: map[string]any{"lr": 0.1, "epochs": 10, "name": "resnet"}},
		{name: "empty file", content: ptr(""), want: map[string]any{}},
		{name: "a list", content: ptr("- a\n- b\n"), wantMsg: "want a mapping"},
		{name: "a scalar", content: ptr("42\n"), wantMsg: "want a mapping"},
		{name: "broken json", content: ptr(`{"lr": `), wantMsg: "line 1: did not find expected node content"},
		{name: "missing file", wantMsg: "--params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "params.yaml")
			if tt.content != nil {
				require.NoError(t, os.WriteFile(path, []byte(*tt.content), 0o600))
			}
			got, err := submit.ReadParamsFile(path)
			if tt.wantMsg != "" {
				require.Error(t, err)
				var bi *submit.BadInput
				assert.ErrorAs(t, err, &bi)
				assert.Contains(t, err.Error(), tt.wantMsg)
				assert.NotContains(t, err.Error(), "\n")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// submitter returns a Submitter with a fake sbatch, and a spec built from a
// small project.
func submitter(t *testing.T, sb *fakeSbatch, files map[string]string) (*submit.Submitter, *job.Spec) {
	t.Helper()
	cfg := newConfig(t)
	s := &submit.Submitter{
		Config: cfg, Slurm: sb, Ferry: "/usr/local/bin/ferry",
		Now: func() time.Time { return time.Date(2024, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600)) },
	}
	if files == nil {
		files = map[string]string{"main.py": "print('hi')\n", "data/in.txt": "x\n"}
	}
	dir := project(t, "demo", files)
	spec, err := s.BuildSpec(submit.Request{Dir: dir, Command: []string{"python3", "main.py"}, GPUs: -1,
		Params: map[string]any{"lr": 0.1}})
	require.NoError(t, err)
	return s, spec
}

func spoolEntries(t *testing.T, spool string) []string {
	t.Helper()
	ents, err := os.ReadDir(spool)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		if e.Name() == ".cache" {
			continue // the bundle cache: see TestSubmitReusesBundle
		}
		names = append(names, e.Name())
	}
	return names
}

func TestSubmitSpec(t *testing.T) {
	t.Setenv("FERRY_CONFIG", "/etc/ferry/test config.yaml")
	sb := &fakeSbatch{id: "42"}
	s, spec := submitter(t, sb, nil)
	spool := s.Config.SpoolRoot

	got, err := s.SubmitSpec(context.Background(), spec)
	require.NoError(t, err)

	id := got.Spec.ID
	_, err = job.ParseID(string(id))
	require.NoError(t, err)
	assert.Equal(t, "42", got.SlurmID)
	d := job.DirFor(spool, id)
	assert.Equal(t, d, got.Dir)
	assert.Equal(t, time.Date(2024, 3, 1, 11, 0, 0, 0, time.UTC), got.Spec.Submitted, "submit time is recorded in UTC")
	assert.True(t, id.Time().Equal(got.Spec.Submitted), "the id encodes the submit time")

	assert.Equal(t, []string{string(id)}, spoolEntries(t, spool), "one job dir, no .tmp- dir left")
	fi, err := os.Stat(d.Path())
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	var names []string
	for _, n := range spoolEntries(t, d.Path()) {
		names = append(names, n)
	}
	assert.ElementsMatch(t, []string{"spec.json", "params.json", "bundle.tar.zst", "job.sbatch", "outputs", "slurm_id"}, names)
	fi, err = os.Stat(d.Outputs())
	require.NoError(t, err)
	assert.True(t, fi.IsDir())

	slurmID, err := os.ReadFile(d.SlurmID())
	require.NoError(t, err)
	assert.Equal(t, "42\n", string(slurmID))
	assert.Equal(t, "42", job.ReadSlurmID(d))

	params, err := os.ReadFile(d.Params())
	require.NoError(t, err)
	assert.JSONEq(t, `{"lr": 0.1}`, string(params))

	onDisk, err := job.ReadSpec(d)
	require.NoError(t, err)
	assert.Equal(t, id, onDisk.ID)
	assert.Equal(t, d.Path(), onDisk.Dir)
	assert.Equal(t, "demo", onDisk.Project)
	assert.Equal(t, []string{"python3", "main.py"}, onDisk.Command)
	assert.NotEmpty(t, onDisk.User)
	assert.Equal(t, os.Getuid(), onDisk.UID)
	assert.Equal(t, job.BundleFile, onDisk.Bundle.File)
	assert.Equal(t, 2, onDisk.Bundle.Files)
	assert.Equal(t, int64(len("print('hi')\n")+len("x\n")), onDisk.Bundle.Bytes)
	bfi, err := os.Stat(d.Bundle())
	require.NoError(t, err)
	assert.Equal(t, bfi.Size(), onDisk.Bundle.Size)
	assert.Len(t, onDisk.Bundle.Hash, 64)

	script, err := os.ReadFile(d.Script())
	require.NoError(t, err)
	for _, want := range []string{
		"#SBATCH --comment=ferry:" + string(id) + "\n",
		"#SBATCH --exclusive\n",
		"#SBATCH --job-name=ferry/demo\n",
		"#SBATCH --output=" + d.SlurmOut() + "\n",
		"#SBATCH --chdir=" + d.Path() + "\n",
		"#SBATCH --mem=1G\n",
		"#SBATCH --time=0-01:00:00\n",
		"export FERRY_CONFIG='/etc/ferry/test config.yaml'\n",
		"exec '/usr/local/bin/ferry' 'sandbox' 'run' '--job-dir' '" + d.Path() + "'\n",
	} {
		assert.Contains(t, string(script), want)
	}
	assert.NotContains(t, string(script), ".tmp-", "the script names the final job dir, not the staging dir")

	// sbatch was given the committed script.
	assert.Equal(t, 1, sb.calls)
	assert.Equal(t, d.Script(), sb.script)
	assert.Equal(t, script, sb.content)
}

func TestSubmitSpecSbatchFails(t *testing.T) {
	sb := &fakeSbatch{err: errors.New("sbatch: error: Batch job submission failed: Invalid partition name specified")}
	s, spec := submitter(t, sb, nil)

	got, err := s.SubmitSpec(context.Background(), spec)
	require.Error(t, err)
	assert.Nil(t, got)
	assert.Contains(t, err.Error(), "was not submitted: ")
	assert.Contains(t, err.Error(), "Invalid partition name specified")
	assert.Equal(t, 1, sb.calls)
	assert.Empty(t, spoolEntries(t, s.Config.SpoolRoot), "no job dir and no .tmp- dir is left behind")
}

func TestSubmitSpecBundleTooBig(t *testing.T) {
	sb := &fakeSbatch{id: "42"}
	s, spec := submitter(t, sb, map[string]string{
		"main.py":            "print(1)\n",
		"data/big-model.bin": strings.Repeat("x", 64<<10),
	})
	s.Config.MaxBundle = 16 << 10

	got, err := s.SubmitSpec(context.Background(), spec)
	require.Error(t, err)
	assert.Nil(t, got)
	var bi *submit.BadInput
	require.ErrorAs(t, err, &bi)
	assert.Contains(t, err.Error(), "big-model.bin")
	assert.Contains(t, err.Error(), ".ferryignore")
	assert.Equal(t, 0, sb.calls, "sbatch is not run")
	assert.Empty(t, spoolEntries(t, s.Config.SpoolRoot), "nothing is left in the spool")
}

func TestSubmitSpecFerryignore(t *testing.T) {
	sb := &fakeSbatch{id: "7"}
	s, spec := submitter(t, sb, map[string]string{
		"main.py":            "print(1)\n",
		".ferryignore":       "data/\n",
		"data/big-model.bin": strings.Repeat("x", 64<<10),
	})
	s.Config.MaxBundle = 16 << 10

	got, err := s.SubmitSpec(context.Background(), spec)
	require.NoError(t, err, "an ignored file does not count against the cap")
	assert.Equal(t, "7", got.SlurmID)
	assert.Equal(t, 2, got.Spec.Bundle.Files, "main.py and .ferryignore")
}

func TestSubmit(t *testing.T) {
	sb := &fakeSbatch{id: "99"}
	cfg := newConfig(t)
	s := &submit.Submitter{Config: cfg, Slurm: sb, Ferry: "/opt/ferry"}
	dir := project(t, "end-to-end", map[string]string{"job.yaml": "command: ./run.sh\ncpus: 2\n", "run.sh": "#!/bin/sh\n"})

	got, err := s.Submit(context.Background(), submit.Request{Dir: dir, GPUs: -1})
	require.NoError(t, err)
	assert.Equal(t, "99", got.SlurmID)
	assert.Equal(t, "end-to-end", got.Spec.Project)
	assert.Equal(t, 2, got.Spec.Resources.CPUs)
	assert.WithinDuration(t, time.Now(), got.Spec.Submitted, time.Minute)
	script, err := os.ReadFile(got.Dir.Script())
	require.NoError(t, err)
	assert.Contains(t, string(script), "#SBATCH --cpus-per-task=2\n")

	// Bad input never reaches sbatch or the spool.
	_, err = s.Submit(context.Background(), submit.Request{Dir: dir, GPUs: -1, Mem: "lots"})
	var bi *submit.BadInput
	require.ErrorAs(t, err, &bi)
	assert.Equal(t, 1, sb.calls)
	assert.Equal(t, []string{string(got.Spec.ID)}, spoolEntries(t, cfg.SpoolRoot))
}

// Submitting an unchanged project again links the bundle packed the first
// time; any change to the project packs anew.
func TestSubmitReusesBundle(t *testing.T) {
	sb := &fakeSbatch{id: "42"}
	s, spec := submitter(t, sb, nil)
	inode := func(d job.Dir) uint64 {
		fi, err := os.Stat(d.Bundle())
		require.NoError(t, err)
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	first, err := s.SubmitSpec(context.Background(), spec)
	require.NoError(t, err)
	again := *spec
	second, err := s.SubmitSpec(context.Background(), &again)
	require.NoError(t, err)
	assert.Equal(t, inode(first.Dir), inode(second.Dir), "the same bundle, linked")
	assert.Equal(t, first.Spec.Bundle, second.Spec.Bundle)

	require.NoError(t, os.WriteFile(filepath.Join(spec.Source, "main.py"), []byte("print('changed')\n"), 0o644))
	changed := *spec
	third, err := s.SubmitSpec(context.Background(), &changed)
	require.NoError(t, err)
	assert.NotEqual(t, inode(first.Dir), inode(third.Dir))
	assert.NotEqual(t, first.Spec.Bundle.Hash, third.Spec.Bundle.Hash)

	// the job's bundle unpacks to the changed project
	f, err := os.Open(third.Dir.Bundle())
	require.NoError(t, err)
	defer f.Close()
	out := t.TempDir()
	require.NoError(t, bundle.Unpack(context.Background(), f, out, bundle.UnpackOptions{WantHash: third.Spec.Bundle.Hash}))
	data, err := os.ReadFile(filepath.Join(out, "main.py"))
	require.NoError(t, err)
	assert.Equal(t, "print('changed')\n", string(data))
}

// startingSbatch is a Runner that starts sbatch early (slurm.Starter): it
// records what the spool held at the moment sbatch was handed its script.
type startingSbatch struct {
	t       *testing.T
	spool   string
	starts  int
	fed     []byte
	dirs    []string // job dirs in the spool when fed, staging dirs included
	onDisk  []byte   // the committed job.sbatch when fed
	aborted int
}

func (s *startingSbatch) Run(context.Context, []string, string, ...string) ([]byte, error) {
	s.t.Error("sbatch was run the slow way")
	return nil, errors.New("no")
}

func (s *startingSbatch) Start(_ context.Context, _ []string, name string, args ...string) slurm.Started {
	assert.Equal(s.t, "sbatch", name)
	assert.Equal(s.t, []string{"--parsable"}, args, "the script comes on stdin, not as a path")
	s.starts++
	return &startedSbatch{s: s}
}

type startedSbatch struct{ s *startingSbatch }

func (p *startedSbatch) Finish(stdin []byte) ([]byte, error) {
	s := p.s
	s.fed = stdin
	s.dirs = spoolEntries(s.t, s.spool)
	if len(s.dirs) == 1 {
		s.onDisk, _ = os.ReadFile(job.DirFor(s.spool, job.ID(s.dirs[0])).Script())
	}
	return []byte("42\n"), nil
}

func (p *startedSbatch) Abort() { p.s.aborted++ }

func TestSubmitSpecStartsSbatchEarly(t *testing.T) {
	t.Run("it is fed the committed script", func(t *testing.T) {
		s, spec := submitter(t, &fakeSbatch{}, nil)
		st := &startingSbatch{t: t, spool: s.Config.SpoolRoot}
		s.Slurm = &slurm.Client{Runner: st}
		got, err := s.SubmitSpec(context.Background(), spec)
		require.NoError(t, err)
		assert.Equal(t, "42", got.SlurmID)
		assert.Equal(t, 1, st.starts)
		assert.Equal(t, []string{string(got.Spec.ID)}, st.dirs, "the job dir was committed (renamed from staging) before sbatch saw the script")
		assert.Equal(t, st.onDisk, st.fed, "sbatch got the very script in the job dir")
		assert.Contains(t, string(st.fed), "#SBATCH --comment=ferry:"+string(got.Spec.ID)+"\n")
	})

	t.Run("bad input kills it unfed", func(t *testing.T) {
		s, spec := submitter(t, &fakeSbatch{}, map[string]string{"main.py": "print(1)\n", "big.bin": strings.Repeat("x", 64<<10)})
		s.Config.MaxBundle = 16 << 10
		st := &startingSbatch{t: t, spool: s.Config.SpoolRoot}
		s.Slurm = &slurm.Client{Runner: st}
		_, err := s.SubmitSpec(context.Background(), spec)
		var bi *submit.BadInput
		require.ErrorAs(t, err, &bi)
		assert.Equal(t, 1, st.aborted)
		assert.Nil(t, st.fed, "sbatch never got a script, so Slurm got no job")
		assert.Empty(t, spoolEntries(t, s.Config.SpoolRoot))
	})
}

func TestBuildSpecEnvironment(t *testing.T) {
	s := &submit.Submitter{Config: newConfig(t)}
	dir := project(t, "envproj", map[string]string{
		"job.yaml":         "command: python3 main.py\napt: [jq, python3-six]\n",
		"requirements.txt": "# the course's\nSciPy>=1.10\n\npandas\n",
	})
	spec, err := s.BuildSpec(submit.Request{Dir: dir, GPUs: -1})
	require.NoError(t, err)
	require.NotNil(t, spec.Environment)
	assert.Equal(t, []string{"pandas", "scipy>=1.10"}, spec.Environment.Pip, "normalised and sorted")
	assert.Equal(t, []string{"jq", "python3-six"}, spec.Environment.Apt)

	plain := project(t, "plain", map[string]string{"job.yaml": "command: true\n"})
	spec, err = s.BuildSpec(submit.Request{Dir: plain, GPUs: -1})
	require.NoError(t, err)
	assert.Nil(t, spec.Environment, "no requirements.txt, no apt: no environment")

	for _, c := range []struct{ name, jobYAML, reqs, want string }{
		{"another index", "command: true\n", "numpy\n--extra-index-url https://evil.example/simple\n",
			`requirements.txt line 2: option "--extra-index-url" is not allowed`},
		{"a URL", "command: true\n", "https://evil.example/pkg.whl\n", "requirements.txt line 1: "},
		{"apt with shell metacharacters", "command: true\napt: ['jq; rm -rf ~']\n", "",
			`job.yaml line 2: apt: apt package "jq; rm -rf ~": shell metacharacters and spaces are not allowed`},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"job.yaml": c.jobYAML}
			if c.reqs != "" {
				files["requirements.txt"] = c.reqs
			}
			_, err := s.BuildSpec(submit.Request{Dir: project(t, "bad", files), GPUs: -1})
			require.Error(t, err)
			var bi *submit.BadInput
			assert.ErrorAs(t, err, &bi, "bad input: exit code 2")
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}
