package envcmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/cmdtest"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/config"
	"github.com/ferry-hpc/ferry/pkg/env"
)

type fakeBuilder struct {
	specs []env.Spec
	bases []string
	list  []env.Info
}

func (f *fakeBuilder) Ensure(_ context.Context, spec env.Spec, base string, log io.Writer) (env.ImageRef, error) {
	f.specs, f.bases = append(f.specs, spec), append(f.bases, base)
	fmt.Fprintln(log, "building environment 0123456789ab")
	return env.ImageRef{Name: "ferry/env:0123456789abcdef", ID: "sha256:feed", Key: "0123456789abcdef"}, nil
}

func (f *fakeBuilder) List(context.Context) ([]env.Info, error) { return f.list, nil }

func (f *fakeBuilder) Remove(_ context.Context, name string) (env.Info, error) {
	for _, in := range f.list {
		if len(name) >= 4 && in.Key[:len(name)] == name {
			return in, nil
		}
	}
	return env.Info{}, fmt.Errorf("environment %s: %w", name, env.ErrNotFound)
}

func newEnv(t *testing.T) (*cmdtest.Env, *fakeBuilder) {
	fb := &fakeBuilder{}
	e := cmdtest.New(t, func(f *factory.Factory) *cobra.Command {
		return NewCmdEnv(f, func(*config.Config) (Builder, func(), error) { return fb, func() {}, nil })
	})
	return e, fb
}

func write(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

func TestBuildFromProjectDir(t *testing.T) {
	e, fb := newEnv(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "requirements.txt"), "# course\nFoo_Bar>=1\n")
	write(t, filepath.Join(dir, "job.yaml"), "apt: [jq]\n")
	require.Equal(t, 0, e.Run(t, "build", dir, "--apt", "python3-six"), e.ErrOut.String())
	require.Len(t, fb.specs, 1)
	assert.Equal(t, env.Spec{Pip: []string{"foo-bar>=1"}, Apt: []string{"jq", "python3-six"}}, fb.specs[0])
	assert.Equal(t, config.DefaultImage, fb.bases[0], "the default image is the base")
	assert.Contains(t, e.ErrOut.String(), "building environment", "the build's lines go to stderr")
	assert.Contains(t, e.Out.String(), "environment 0123456789ab (pip: 1 package, apt: 2 packages) on ferry/sandbox:latest: image sha256:feed")
}

func TestBuildRefusals(t *testing.T) {
	e, fb := newEnv(t)
	dir := t.TempDir()
	req := filepath.Join(dir, "reqs.txt")
	write(t, req, "numpy\n")
	cases := []struct {
		name string
		args []string
		file string // requirements content for this case ("" = leave as is)
		want string
	}{
		{"base off the allowlist", []string{"build", req, "--image", "evil/img:1"}, "",
			`ferry: image "evil/img:1" is not allowed`},
		{"an index option", []string{"build", req}, "-i https://evil.example/simple\n",
			`ferry: requirements.txt line 1: option "-i" is not allowed`},
		{"a URL", []string{"build", req}, "foo @ https://example.com/foo.tar.gz\n",
			"ferry: requirements.txt line 1: "},
		{"apt with shell metacharacters", []string{"build", req, "--apt", "jq;rm -rf /"}, "numpy\n",
			`ferry: apt package "jq;rm -rf /": shell metacharacters and spaces are not allowed`},
		{"nothing asked", []string{"build", dir}, "",
			"asks for nothing: no requirements and no apt packages"},
		{"no such file", []string{"build", filepath.Join(dir, "nope.txt")}, "",
			"no such file or directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.file != "" {
				write(t, req, c.file)
			}
			assert.Equal(t, factory.CodeUsage, e.Run(t, c.args...))
			assert.Contains(t, e.ErrOut.String(), c.want)
			assert.Equal(t, 1, strings.Count(e.ErrOut.String(), "\n"), "one line: %q", e.ErrOut.String())
		})
	}
	assert.Empty(t, fb.specs, "nothing was built")
}

func TestListAndRemove(t *testing.T) {
	e, fb := newEnv(t)
	require.Equal(t, 0, e.Run(t, "ls"), e.ErrOut.String())
	assert.Contains(t, e.Out.String(), "No environment on this worker.")
	now := time.Now()
	fb.list = []env.Info{{Key: "3f2a9c01d2e4f5a6", Name: "ferry/env:3f2a9c01d2e4f5a6", ID: "sha256:abc", OwnSize: 12 << 20,
		Created: now.Add(-time.Hour), LastUsed: now, Spec: env.Spec{Pip: []string{"scipy"}}}}
	require.Equal(t, 0, e.Run(t, "ls"), e.ErrOut.String())
	assert.Contains(t, e.Out.String(), "3f2a9c01d2e4")
	assert.Contains(t, e.Out.String(), "pip: 1 package")
	require.Equal(t, 0, e.Run(t, "ls", "-o", "json"), e.ErrOut.String())
	assert.Contains(t, e.Out.String(), `"key": "3f2a9c01d2e4f5a6"`)

	require.Equal(t, 0, e.Run(t, "rm", "3f2a"), e.ErrOut.String())
	assert.Contains(t, e.Out.String(), "removed environment 3f2a9c01d2e4 (pip: 1 package, 12M)")
	assert.Equal(t, factory.CodeNotFound, e.Run(t, "rm", "beef"))
	assert.Contains(t, e.ErrOut.String(), "environment beef: no such environment")
}
