package login

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/cmdtest"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
)

func newEnv(t *testing.T) (*cmdtest.Env, string) {
	home := t.TempDir()
	e := cmdtest.New(t, func(f *factory.Factory) *cobra.Command {
		return NewCmdLogin(f, func(ctx context.Context, o *Options) error {
			o.Home, o.User = home, "alice"
			return run(ctx, o)
		})
	})
	return e, home
}

func linkToken(t *testing.T, link string) (string, string) {
	t.Helper()
	base, frag, ok := strings.Cut(strings.TrimSpace(link), "#")
	require.True(t, ok, "the token is in the fragment: %q", link)
	v, err := url.ParseQuery(frag)
	require.NoError(t, err)
	assert.Equal(t, "alice", v.Get("user"))
	return base, v.Get("token")
}

func TestLoginMakesAndKeepsToken(t *testing.T) {
	e, home := newEnv(t)
	require.Equal(t, 0, e.Run(t))
	base, tok := linkToken(t, e.Out.String())
	assert.Equal(t, "http://127.0.0.1:8090/login", base, "the default dashboard.listen")
	assert.Len(t, tok, 43)
	assert.Contains(t, e.ErrOut.String(), "made your token")
	fi, err := os.Stat(filepath.Join(home, TokenFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(filepath.Join(home, ".ferry"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())

	require.Equal(t, 0, e.Run(t))
	_, again := linkToken(t, e.Out.String())
	assert.Equal(t, tok, again, "the token stays between calls")

	require.Equal(t, 0, e.Run(t, "--rotate"))
	_, rotated := linkToken(t, e.Out.String())
	assert.NotEqual(t, tok, rotated)
	assert.Contains(t, e.ErrOut.String(), "sessions made with the old one end")

	require.Equal(t, 0, e.Run(t, "-o", "json"))
	var out map[string]string
	require.NoError(t, json.Unmarshal(e.Out.Bytes(), &out))
	assert.Equal(t, rotated, out["token"])
	assert.Equal(t, "alice", out["user"])
}

func TestLoginReplacesUnsafeToken(t *testing.T) {
	e, home := newEnv(t)
	p := filepath.Join(home, TokenFile)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
	old := strings.Repeat("x", 43)
	require.NoError(t, os.WriteFile(p, []byte(old), 0o644))
	require.Equal(t, 0, e.Run(t))
	_, tok := linkToken(t, e.Out.String())
	assert.NotEqual(t, old, tok, "a token others could read is replaced")
	assert.Contains(t, e.ErrOut.String(), "others may have read it")
	fi, _ := os.Stat(p)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestLoginBadFlag(t *testing.T) {
	e, _ := newEnv(t)
	assert.Equal(t, 2, e.Run(t, "-o", "yaml"))
	assert.Contains(t, e.ErrOut.String(), "the only format is json")
}
