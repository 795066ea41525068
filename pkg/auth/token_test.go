package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// home makes a home dir with a token file of the given mode.
func home(t *testing.T, token string, mode os.FileMode) (string, *Tokens) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ".ferry"), 0o700))
	if token != "" {
		p := filepath.Join(dir, TokenFile)
		require.NoError(t, os.WriteFile(p, []byte(token+"\n"), mode))
		require.NoError(t, os.Chmod(p, mode))
	}
	tk := &Tokens{Lookup: func(name string) (Account, error) {
		if name != "alice" {
			return Account{}, errors.New("unknown user")
		}
		return Account{Home: dir, UID: os.Getuid()}, nil
	}}
	return dir, tk
}

func TestTokenCheck(t *testing.T) {
	tok, err := NewToken()
	require.NoError(t, err)
	assert.Len(t, tok, 43)
	_, tk := home(t, tok, 0o600)

	fp, err := tk.Check("alice", tok)
	require.NoError(t, err)
	assert.Len(t, fp, 16)
	fp2, err := tk.Fingerprint("alice")
	require.NoError(t, err)
	assert.Equal(t, fp, fp2, "the fingerprint of the file is the one the login saw")

	for _, tc := range []struct{ name, user, token string }{
		{"wrong token", "alice", tok[:42] + "x"},
		{"empty token", "alice", ""},
		{"unknown user", "bob", tok},
		{"invalid user name", "../alice", tok},
		{"prefix of the token", "alice", tok[:10]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tk.Check(tc.user, tc.token)
			assert.ErrorIs(t, err, ErrBadLogin)
		})
	}
}

func TestTokenFileRefused(t *testing.T) {
	t.Run("readable by others", func(t *testing.T) {
		_, tk := home(t, "secret", 0o644)
		_, err := tk.Check("alice", "secret")
		var unsafe *UnsafeTokenError
		require.ErrorAs(t, err, &unsafe)
		assert.Contains(t, err.Error(), "ferry login --rotate")
	})
	t.Run("symlink", func(t *testing.T) {
		dir, tk := home(t, "", 0)
		other := filepath.Join(t.TempDir(), "elsewhere")
		require.NoError(t, os.WriteFile(other, []byte("secret"), 0o600))
		require.NoError(t, os.Symlink(other, filepath.Join(dir, TokenFile)))
		_, err := tk.Check("alice", "secret")
		assert.ErrorIs(t, err, ErrBadLogin, "a link is not followed")
	})
	t.Run("a dir", func(t *testing.T) {
		dir, tk := home(t, "", 0)
		require.NoError(t, os.Mkdir(filepath.Join(dir, TokenFile), 0o700))
		_, err := tk.Check("alice", "x")
		assert.ErrorIs(t, err, ErrBadLogin)
	})
	t.Run("no file", func(t *testing.T) {
		_, tk := home(t, "", 0)
		_, err := tk.Check("alice", "x")
		assert.ErrorIs(t, err, ErrBadLogin)
	})
	t.Run("another owner", func(t *testing.T) {
		_, tk := home(t, "secret", 0o600)
		inner := tk.Lookup
		tk.Lookup = func(n string) (Account, error) {
			a, err := inner(n)
			a.UID++
			return a, err
		}
		_, err := tk.Check("alice", "secret")
		assert.ErrorIs(t, err, ErrBadLogin)
		assert.Contains(t, err.Error(), "not owned by alice")
	})
}

func TestValidUser(t *testing.T) {
	for name, ok := range map[string]bool{"alice": true, "s2301": true, "_svc": true, "a.b-c": true,
		"": false, "Alice": false, "-x": false, "a b": false, "../x": false, "a/b": false, "123": false} {
		assert.Equal(t, ok, ValidUser(name), name)
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(time.Second, 3)
	l.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		ok, _ := l.Allow("ip:1")
		assert.True(t, ok, "attempt %d is within the burst", i)
	}
	ok, wait := l.Allow("ip:1")
	assert.False(t, ok)
	assert.Equal(t, time.Second, wait)
	ok, _ = l.Allow("ip:2")
	assert.True(t, ok, "another key has its own bucket")
	now = now.Add(time.Second)
	ok, _ = l.Allow("ip:1")
	assert.True(t, ok, "one token back after one interval")
	now = now.Add(time.Hour)
	l.Allow("ip:3")
	assert.Equal(t, 1, l.Len(), "idle full buckets are forgotten")
}

// memStore is a SessionStore in memory.
type memStore map[string][]byte

func (m memStore) PutSession(_ context.Context, k string, v []byte, _ time.Duration) error {
	m[k] = v
	return nil
}
func (m memStore) GetSession(_ context.Context, k string) ([]byte, error) { return m[k], nil }
func (m memStore) DeleteSession(_ context.Context, k string) error {
	delete(m, k)
	return nil
}

func TestSessions(t *testing.T) {
	st := memStore{}
	s := &Sessions{Store: st, TTL: time.Hour, Secure: true}
	w := httptest.NewRecorder()
	made, err := s.Create(context.Background(), w, Identity{User: "alice", Via: "token"}, "fp1")
	require.NoError(t, err)
	cookies := w.Result().Cookies()
	require.Len(t, cookies, 1)
	c := cookies[0]
	assert.Equal(t, CookieName, c.Name)
	assert.True(t, c.HttpOnly)
	assert.True(t, c.Secure)
	assert.Equal(t, http.SameSiteLaxMode, c.SameSite)
	assert.Equal(t, 3600, c.MaxAge)
	for k, v := range st {
		assert.NotContains(t, k, c.Value, "the store key is a hash, not the cookie")
		assert.NotContains(t, string(v), c.Value)
	}

	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(c)
	got, err := s.Lookup(context.Background(), r)
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, "alice", got.User)
	assert.Equal(t, "fp1", got.TokenFP)
	assert.Equal(t, made.CSRF, got.CSRF)
	assert.NotEmpty(t, got.CSRF)

	forged := httptest.NewRequest("GET", "/", nil)
	forged.AddCookie(&http.Cookie{Name: CookieName, Value: c.Value + "x"})
	none, err := s.Lookup(context.Background(), forged)
	require.NoError(t, err)
	assert.Nil(t, none)

	require.NoError(t, s.Revoke(context.Background(), got))
	gone, err := s.Lookup(context.Background(), r)
	require.NoError(t, err)
	assert.Nil(t, gone, "a revoked session is no session")
}
