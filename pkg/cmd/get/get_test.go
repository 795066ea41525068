package get_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/bundle"
	"github.com/ferry-hpc/ferry/pkg/cmd/cmdtest"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/get"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe/observetest"
)

// newEnv returns a test env that runs `ferry get`.
func newEnv(t *testing.T) *cmdtest.Env {
	return cmdtest.New(t, func(f *factory.Factory) *cobra.Command { return get.NewCmdGet(f, nil) })
}

// tree lists the files under dir with their contents ("name/" for dirs).
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		require.NoError(t, err)
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
		case de.IsDir():
			out = append(out, rel+"/")
		case de.Type()&os.ModeSymlink != 0:
			link, _ := os.Readlink(p)
			out = append(out, rel+" -> "+link)
		default:
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			out = append(out, rel+": "+string(data))
		}
		return nil
	}))
	sort.Strings(out)
	return out
}

// finishedJob is a finished job with outputs, a log and a bundle of a
// small project.
func finishedJob(t *testing.T, e *cmdtest.Env, badBundle bool) job.Dir {
	d := observetest.WriteJob(t, e.Root, job.Spec{}, "4242")
	observetest.AppendLog(t, d, "epoch 1\n")
	observetest.WriteResult(t, d, job.Succeeded, 0)
	require.NoError(t, os.MkdirAll(filepath.Join(d.Outputs(), "ckpt"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(d.Outputs(), "result.txt"), []byte("42\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(d.Outputs(), "ckpt", "model.pt"), []byte("weights"), 0o600))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(d.Outputs(), "leak")))
	if badBundle {
		require.NoError(t, os.WriteFile(d.Bundle(), []byte("not a zstd stream"), 0o600))
		return d
	}
	proj := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(proj, "main.py"), []byte("print(42)\n"), 0o600))
	var b bytes.Buffer
	_, err := bundle.Pack(context.Background(), proj, &b, bundle.Options{})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(d.Bundle(), b.Bytes(), 0o600))
	return d
}

func TestGet(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name      string
		existing  []string // files already in DIR; nil = DIR does not exist
		emptyDir  bool     // DIR exists, empty
		fileDest  bool     // DIR is a file
		bundle    bool
		badBundle bool
		ctx       context.Context
		wantCode  int
		wantErr   string
	}{
		{name: "a new dir"},
		{name: "a new dir, with the bundle", bundle: true},
		{name: "an empty dir", emptyDir: true},
		{name: "a dir with files is refused, not merged", existing: []string{"notes.txt"}, wantCode: factory.CodeUsage,
			wantErr: "ferry: -o DEST: exists and is not empty; get does not merge into it, choose a new or empty dir\n"},
		{name: "a file is refused", fileDest: true, wantCode: factory.CodeUsage,
			wantErr: "ferry: -o DEST: exists and is not a dir; choose a new or empty dir\n"},
		{name: "failing part way leaves no dir", bundle: true, badBundle: true, wantCode: factory.CodeError, wantErr: "ferry: unpack bundle: "},
		{name: "failing part way leaves an empty dir empty", emptyDir: true, bundle: true, badBundle: true, wantCode: factory.CodeError, wantErr: "ferry: unpack bundle: "},
		{name: "interrupted", ctx: cancelled, wantCode: factory.CodeError, wantErr: "ferry: copy outputs: context canceled\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			d := finishedJob(t, e, tt.badBundle)
			parent := t.TempDir()
			dest := filepath.Join(parent, "results")
			switch {
			case tt.emptyDir:
				require.NoError(t, os.Mkdir(dest, 0o755))
			case tt.fileDest:
				require.NoError(t, os.WriteFile(dest, []byte("x"), 0o600))
			case tt.existing != nil:
				require.NoError(t, os.Mkdir(dest, 0o755))
				for _, name := range tt.existing {
					require.NoError(t, os.WriteFile(filepath.Join(dest, name), []byte("mine"), 0o600))
				}
			}
			before := tree(t, parent)
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			args := []string{d.ID().Short(), "-o", dest}
			if tt.bundle {
				args = append(args, "--bundle")
			}

			code := e.RunContext(t, ctx, args...)
			assert.Equal(t, tt.wantCode, code, e.ErrOut.String())
			if tt.wantCode != 0 {
				assert.Empty(t, e.Out.String())
				want := strings.ReplaceAll(tt.wantErr, "DEST", dest)
				if strings.HasSuffix(want, "\n") {
					assert.Equal(t, want, e.ErrOut.String())
				} else {
					assert.True(t, strings.HasPrefix(e.ErrOut.String(), want), e.ErrOut.String())
				}
				assert.Equal(t, before, tree(t, parent), "DIR and its parent are as they were: no half-filled DIR, no temp dir")
				return
			}
			assert.Equal(t, dest+"\n", e.Out.String())
			assert.Equal(t, "copied 2 output file(s), the log and the result of job "+d.ID().Short()+" into "+dest+"\n", e.ErrOut.String())
			got := tree(t, dest)
			for _, want := range []string{
				"log: epoch 1\n", "outputs/", "outputs/ckpt/", "outputs/ckpt/model.pt: weights",
				"outputs/leak -> /etc/passwd", "outputs/result.txt: 42\n",
			} {
				assert.Contains(t, got, want)
			}
			assert.FileExists(t, filepath.Join(dest, job.ResultFile))
			assert.FileExists(t, filepath.Join(dest, job.SpecFile))
			if tt.bundle {
				assert.Contains(t, got, "bundle/main.py: print(42)\n")
			} else {
				assert.NotContains(t, got, "bundle/")
			}
			for _, f := range got {
				assert.False(t, strings.Contains(f, ".part-") || strings.Contains(f, ".ferry-get-"), "temp dir left: %s", f)
			}
			ents, err := os.ReadDir(parent)
			require.NoError(t, err)
			require.Len(t, ents, 1, "only DIR beside DIR")
		})
	}
}

func TestGetDefaultDirAndUnknownID(t *testing.T) {
	e := newEnv(t)
	d := finishedJob(t, e, false)
	wd := t.TempDir()
	t.Chdir(wd)
	require.Equal(t, 0, e.RunContext(t, context.Background(), "4242"))
	assert.Equal(t, "ferry-"+d.ID().Short()+"\n", e.Out.String())
	assert.FileExists(t, filepath.Join(wd, "ferry-"+d.ID().Short(), "log"))

	assert.Equal(t, factory.CodeUsage, e.RunContext(t, context.Background(), "4242"), "a second get into the same default dir is refused")
	assert.Contains(t, e.ErrOut.String(), "exists and is not empty")

	assert.Equal(t, factory.CodeNotFound, e.RunContext(t, context.Background(), "zzzz", "-o", "x"))
	assert.Equal(t, "ferry: no job \"zzzz\" among your jobs (see 'ferry ls')\n", e.ErrOut.String())
	_, err := os.Stat(filepath.Join(wd, "x"))
	assert.True(t, os.IsNotExist(err))
}

// -o . in an empty current dir fills it, and the dir stays (a shell may be in it).
func TestGetIntoCurrentDir(t *testing.T) {
	e := newEnv(t)
	finishedJob(t, e, false)
	wd := t.TempDir()
	t.Chdir(wd)
	fi, err := os.Stat(wd)
	require.NoError(t, err)
	require.Equal(t, 0, e.RunContext(t, context.Background(), "4242", "-o", "."), e.ErrOut.String())
	assert.Equal(t, ".\n", e.Out.String())
	assert.FileExists(t, filepath.Join(wd, "log"))
	assert.FileExists(t, filepath.Join(wd, "outputs", "result.txt"))
	after, err := os.Stat(wd)
	require.NoError(t, err)
	assert.True(t, os.SameFile(fi, after), "the dir itself was kept")
	ents, err := os.ReadDir(wd)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"log", "outputs", "result.json", "spec.json"}, names, "no temp dir left")
}
