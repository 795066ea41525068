package dashboard

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/auth"
	"github.com/ferry-hpc/ferry/pkg/auth/oidctest"
	"github.com/ferry-hpc/ferry/pkg/store"
	"github.com/ferry-hpc/ferry/pkg/store/storetest"
)

// TestOIDCLogin logs in through a spec-following OpenID provider
// (discovery, JWKS, RS256 ID tokens, PKCE) and sees only the mapped user's
// jobs; a member of the admin group sees everyone's.
func TestOIDCLogin(t *testing.T) {
	rs := storetest.Start(t)
	st := store.Open(store.Options{Addr: rs.Addr, Password: rs.Password})
	t.Cleanup(func() { st.Close() })
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	p := oidctest.New(t)
	p.AddClient("ferry-dashboard", "s3cret", base+"/auth/callback")
	oidc, err := auth.NewOIDC(context.Background(), auth.OIDCConfig{
		Issuer: p.URL, ClientID: "ferry-dashboard", ClientSecret: "s3cret", RedirectURL: base + "/auth/callback", AdminGroup: "tas",
	})
	require.NoError(t, err)
	srv, err := New(Options{Store: st, Sessions: &auth.Sessions{Store: st}, OIDC: oidc, OIDCName: "Keycloak", Cluster: "test"})
	require.NoError(t, err)
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	e := &env{t: t, st: st, srv: srv, http: ts, homes: map[string]string{}}
	e.put(
		store.Job{ID: jobA, User: "alice", ArrayIndex: -1, State: "running"},
		store.Job{ID: jobB, User: "bob", ArrayIndex: -1, State: "queued"},
	)

	login := func(user string, groups []string) *http.Client {
		p.SetUser("sub-"+user, user, groups)
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		code, body := e.get(c, "/login")
		require.Equal(t, http.StatusOK, code)
		assert.Contains(t, body, "Sign in with Keycloak")
		// The browser follows: dashboard → provider → callback → /jobs.
		req, _ := http.NewRequest("GET", ts.URL+"/auth/oidc?next=/jobs", nil)
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "/jobs", resp.Request.URL.Path, "back on the dashboard, logged in")
		assert.Equal(t, "S256", p.LastAuthorize().Get("code_challenge_method"))
		return c
	}
	alice := login("alice", []string{"students"})
	_, body := e.get(alice, "/jobs")
	assert.Contains(t, body, string(jobA))
	assert.NotContains(t, body, string(jobB), "alice sees her own jobs only")
	code, _ := e.get(alice, "/course")
	assert.Equal(t, http.StatusForbidden, code)

	ta := login("tina", []string{"students", "tas"})
	_, body = e.get(ta, "/jobs")
	assert.Contains(t, body, string(jobA))
	assert.Contains(t, body, string(jobB), "a member of the admin group sees every job")

	// A refused login gives no session.
	p.SetFault(oidctest.WrongAudience)
	p.SetUser("sub-mallory", "mallory", nil)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(ts.URL + "/auth/oidc")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	for _, ck := range jar.Cookies(resp.Request.URL) {
		assert.NotEqual(t, auth.CookieName, ck.Name, "no session cookie after a refused login")
	}
	noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	code, _ = e.get(noFollow, "/jobs")
	assert.Equal(t, http.StatusSeeOther, code, "still sent to the login page")
}
