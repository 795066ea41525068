package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/ferry-hpc/ferry/pkg/auth/oidctest"
)

const (
	testClientID = "ferry-dashboard"
	testSecret   = "dashboard-secret"
	testAdmins   = "hpc-admins"
)

// dashboard is a small site that logs in through OIDC: /login?next=... calls
// Begin, the callback calls Finish and answers the outcome as JSON (or the
// error's text with 401).
type dashboard struct {
	o    *OIDC
	cfg  OIDCConfig
	url  string
	skew atomic.Int64 // added to the OIDC's clock
}

type outcome struct {
	Identity Identity
	ReturnTo string
	Err      string // the error Finish returned, as the user would read it
}

func newDashboard(t *testing.T, p *oidctest.Provider, edit func(*OIDCConfig)) *dashboard {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	cfg := OIDCConfig{
		Issuer:       p.URL,
		ClientID:     testClientID,
		ClientSecret: testSecret,
		RedirectURL:  base + "/auth/callback",
		AdminGroup:   testAdmins,
	}
	if edit != nil {
		edit(&cfg)
	}
	p.AddClient(cfg.ClientID, cfg.ClientSecret, cfg.RedirectURL)
	o, err := NewOIDC(context.Background(), cfg)
	require.NoError(t, err)
	d := &dashboard{o: o, cfg: cfg, url: base}
	o.now = func() time.Time { return time.Now().Add(time.Duration(d.skew.Load())) }

	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		o.Begin(w, r, r.URL.Query().Get("next"))
	})
	mux.HandleFunc(o.CallbackPath(), func(w http.ResponseWriter, r *http.Request) {
		id, to, err := o.Finish(w, r)
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, err.Error())
			return
		}
		json.NewEncoder(w).Encode(outcome{Identity: id, ReturnTo: to})
	})
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return d
}

// browser is an http.Client with a cookie jar that follows redirects.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// login runs the whole flow in c, from the dashboard to the provider and back.
func (d *dashboard) login(t *testing.T, c *http.Client, next string) outcome {
	t.Helper()
	return d.get(t, c, d.url+"/login?next="+url.QueryEscape(next))
}

func (d *dashboard) get(t *testing.T, c *http.Client, u string, cookies ...*http.Cookie) outcome {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	switch resp.StatusCode {
	case http.StatusOK:
		var out outcome
		require.NoError(t, json.Unmarshal(body, &out), "body %s", body)
		return out
	case http.StatusUnauthorized:
		return outcome{Err: string(body)}
	}
	t.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	return outcome{}
}

// toCallback runs the flow up to the provider's redirect to the callback
// and returns the callback URL and the flow cookie, without following it.
func (d *dashboard) toCallback(t *testing.T, next string) (string, *http.Cookie) {
	t.Helper()
	c := browser(t)
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == d.o.CallbackPath() {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c.Get(d.url + "/login?next=" + url.QueryEscape(next))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	callback := resp.Header.Get("Location")
	require.True(t, strings.HasPrefix(callback, d.cfg.RedirectURL+"?"), "provider redirected to %s", callback)
	u, _ := url.Parse(callback)
	cookies := c.Jar.Cookies(u)
	require.Len(t, cookies, 1)
	return callback, cookies[0]
}

func TestOIDCLogin(t *testing.T) {
	tests := []struct {
		name  string
		setup func(p *oidctest.Provider)
		edit  func(c *OIDCConfig)
		next  string
		want  Identity
		back  string
	}{
		{
			name:  "admin",
			setup: func(p *oidctest.Provider) { p.SetUser("u-1", "alice", []string{"users", testAdmins}) },
			next:  "/jobs/42?tab=log",
			want:  Identity{User: "alice", Admin: true, Via: "oidc"},
			back:  "/jobs/42?tab=log",
		},
		{
			name:  "not an admin",
			setup: func(p *oidctest.Provider) { p.SetUser("u-2", "bob", []string{"users"}) },
			next:  "/",
			want:  Identity{User: "bob", Via: "oidc"},
			back:  "/",
		},
		{
			name:  "no groups claim",
			setup: func(p *oidctest.Provider) { p.SetUser("u-2", "bob", nil) },
			want:  Identity{User: "bob", Via: "oidc"},
			back:  "/",
		},
		{
			name: "groups claim is a single string",
			setup: func(p *oidctest.Provider) {
				p.SetUser("u-1", "alice", nil)
				p.SetClaim("groups", testAdmins)
			},
			want: Identity{User: "alice", Admin: true, Via: "oidc"},
			back: "/",
		},
		{
			name: "groups claim is another single string",
			setup: func(p *oidctest.Provider) {
				p.SetUser("u-2", "bob", nil)
				p.SetClaim("groups", "users")
			},
			want: Identity{User: "bob", Via: "oidc"},
			back: "/",
		},
		{
			name: "groups with non-strings",
			setup: func(p *oidctest.Provider) {
				p.SetUser("u-1", "alice", nil)
				p.SetClaim("groups", []any{1, map[string]any{"x": 1}, testAdmins})
			},
			want: Identity{User: "alice", Admin: true, Via: "oidc"},
			back: "/",
		},
		{
			name:  "no admin group configured",
			setup: func(p *oidctest.Provider) { p.SetUser("u-1", "alice", []string{testAdmins}) },
			edit:  func(c *OIDCConfig) { c.AdminGroup = "" },
			want:  Identity{User: "alice", Via: "oidc"},
			back:  "/",
		},
		{
			name: "other user and groups claims",
			setup: func(p *oidctest.Provider) {
				p.SetUser("u-3", "Carol Jones", nil)
				p.SetClaim("uid", "carol")
				p.SetClaim("roles", []string{"ops", "slurm-admins"})
			},
			edit: func(c *OIDCConfig) { c.UserClaim, c.GroupsClaim, c.AdminGroup = "uid", "roles", "slurm-admins" },
			want: Identity{User: "carol", Admin: true, Via: "oidc"},
			back: "/",
		},
		{
			name:  "public client",
			setup: func(p *oidctest.Provider) { p.SetUser("u-2", "bob", nil) },
			edit:  func(c *OIDCConfig) { c.ClientSecret = "" },
			want:  Identity{User: "bob", Via: "oidc"},
			back:  "/",
		},
		{
			name: "token endpoint takes client_secret_post only",
			setup: func(p *oidctest.Provider) {
				p.SetUser("u-2", "bob", nil)
				p.SetAuthMethods("client_secret_post")
			},
			want: Identity{User: "bob", Via: "oidc"},
			back: "/",
		},
		{name: "return to another site", setup: alice, next: "//evil.com/x", want: aliceID, back: "/"},
		{name: "return to a URL", setup: alice, next: "https://evil.com/", want: aliceID, back: "/"},
		{name: "return with a backslash", setup: alice, next: `/\evil.com`, want: aliceID, back: "/"},
		{name: "return with a tab", setup: alice, next: "/\t/evil.com", want: aliceID, back: "/"},
		{name: "return to javascript", setup: alice, next: "javascript:alert(1)", want: aliceID, back: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := oidctest.New(t)
			tt.setup(p)
			d := newDashboard(t, p, tt.edit)
			c := browser(t)

			got := d.login(t, c, tt.next)

			require.Empty(t, got.Err)
			assert.Equal(t, tt.want, got.Identity)
			assert.Equal(t, tt.back, got.ReturnTo)
			u, _ := url.Parse(d.cfg.RedirectURL)
			assert.Empty(t, c.Jar.Cookies(u), "the flow cookie is cleared")
		})
	}
}

func alice(p *oidctest.Provider) { p.SetUser("u-1", "alice", []string{testAdmins}) }

var aliceID = Identity{User: "alice", Admin: true, Via: "oidc"}

func TestOIDCLoginRefused(t *testing.T) {
	tests := []struct {
		name  string
		setup func(p *oidctest.Provider)
		want  []string // in the error, in order
		// secret, if set, is what the provider takes instead of the dashboard's
		secret string
	}{
		{
			name:  "provider denies the login",
			setup: func(p *oidctest.Provider) { alice(p); p.SetFault(oidctest.DenyLogin) },
			want:  []string{`oidc login: the provider refused the login: "access_denied" ("the user declined"): sign in again, or ask`},
		},
		{
			name:  "provider refuses the PKCE verifier",
			setup: func(p *oidctest.Provider) { alice(p); p.SetFault(oidctest.RejectPKCE) },
			want:  []string{"oidc login: the provider refused the code at", `"invalid_grant"`, "PKCE verification failed", "sign in again"},
		},
		{
			name:  "wrong audience",
			setup: func(p *oidctest.Provider) { alice(p); p.SetFault(oidctest.WrongAudience) },
			want:  []string{`oidc login: reject the id token: oidc: expected audience "ferry-dashboard" got ["another-client"]: check that the issuer and client id configured are the provider's`},
		},
		{
			name:  "wrong issuer",
			setup: func(p *oidctest.Provider) { alice(p); p.SetFault(oidctest.WrongIssuer) },
			want:  []string{"oidc login: reject the id token: oidc: id token issued by a different provider", `/elsewhere"`, "check that the issuer and client id"},
		},
		{
			name:  "expired",
			setup: func(p *oidctest.Provider) { alice(p); p.SetFault(oidctest.Expired) },
			want:  []string{"oidc login: reject the id token: oidc: token is expired (Token Expiry: ", "): check the clocks of the dashboard host and the provider"},
		},
		{
			name:  "signed by another key",
			setup: func(p *oidctest.Provider) { alice(p); p.SetFault(oidctest.BadSignature) },
			want:  []string{"oidc login: reject the id token: failed to verify signature", "the token is not signed by the issuer's published keys"},
		},
		{
			name:  "nonce of another login",
			setup: func(p *oidctest.Provider) { alice(p); p.SetFault(oidctest.WrongNonce) },
			want:  []string{"oidc login: the id token's nonce does not match this login"},
		},
		{
			name:  "user name is not a unix user",
			setup: func(p *oidctest.Provider) { p.SetUser("u-4", "Dave Smith", nil) },
			want:  []string{`oidc login: claim "preferred_username" is "Dave Smith", not a unix user name (^[a-z_][a-z0-9_.-]{0,31}$): map it to the unix login`},
		},
		{
			name:  "user name is too long",
			setup: func(p *oidctest.Provider) { p.SetUser("u-4", strings.Repeat("d", 33), nil) },
			want:  []string{`claim "preferred_username" is "ddd`, "not a unix user name"},
		},
		{
			name:  "user name is not a string",
			setup: func(p *oidctest.Provider) { alice(p); p.SetClaim("preferred_username", 1001) },
			want:  []string{`claim "preferred_username" is 1001, not a unix user name`},
		},
		{
			name:  "no user name claim",
			setup: func(p *oidctest.Provider) { p.SetUser("u-5", "", nil) },
			want:  []string{`oidc login: the id token has no "preferred_username" claim: have the provider send it`},
		},
		{
			name:  "groups claim is an object",
			setup: func(p *oidctest.Provider) { alice(p); p.SetClaim("groups", map[string]any{"admins": true}) },
			want:  []string{`oidc login: claim "groups" is {"admins":true}, not a list of group names: fix the groups mapper`},
		},
		{
			name:   "wrong client secret",
			setup:  alice,
			secret: "another-secret",
			want:   []string{"oidc login: the provider refused the code at", `"invalid_client"`, "check the client id and secret"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := oidctest.New(t)
			d := newDashboard(t, p, nil)
			tt.setup(p)
			if tt.secret != "" {
				p.AddClient(testClientID, tt.secret, d.cfg.RedirectURL)
			}
			c := browser(t)

			got := d.login(t, c, "/jobs")

			assert.Equal(t, Identity{}, got.Identity)
			assert.NotContains(t, got.Err, "\n", "one line")
			assertInOrder(t, got.Err, tt.want)
			u, _ := url.Parse(d.cfg.RedirectURL)
			assert.Empty(t, c.Jar.Cookies(u), "the flow cookie is cleared")
		})
	}
}

func assertInOrder(t *testing.T, s string, parts []string) {
	t.Helper()
	rest := s
	for _, part := range parts {
		i := strings.Index(rest, part)
		if !assert.GreaterOrEqual(t, i, 0, "%q not in (the rest of) %q", part, s) {
			return
		}
		rest = rest[i+len(part):]
	}
}

func TestOIDCCallbackRefused(t *testing.T) {
	p := oidctest.New(t)
	alice(p)
	d := newDashboard(t, p, nil)
	plain := &http.Client{Timeout: 10 * time.Second} // no jar: sends only the cookies given

	t.Run("state mismatch", func(t *testing.T) {
		callback, cookie := d.toCallback(t, "/")
		u, _ := url.Parse(callback)
		q := u.Query()
		q.Set("state", randomString())
		u.RawQuery = q.Encode()

		got := d.get(t, plain, u.String(), cookie)

		assert.Equal(t, "oidc login: the callback's state does not match the login in progress (a stale or forged link, or a login begun in another tab): sign in again", got.Err)
	})
	t.Run("no state", func(t *testing.T) {
		callback, cookie := d.toCallback(t, "/")
		u, _ := url.Parse(callback)
		q := u.Query()
		q.Del("state")
		u.RawQuery = q.Encode()

		got := d.get(t, plain, u.String(), cookie)

		assert.Contains(t, got.Err, "the callback's state does not match")
	})
	t.Run("missing cookie", func(t *testing.T) {
		callback, _ := d.toCallback(t, "/")

		got := d.get(t, plain, callback)

		assert.Equal(t, "oidc login: no login in progress (the ferry_oidc_flow cookie is missing or expired; a Secure cookie is not sent over plain http): sign in again", got.Err)
	})
	t.Run("forged cookie", func(t *testing.T) {
		callback, cookie := d.toCallback(t, "/")
		payload, sig, _ := strings.Cut(cookie.Value, ".")
		b, _ := base64.RawURLEncoding.DecodeString(payload)
		var f flow
		require.NoError(t, json.Unmarshal(b, &f))
		f.ReturnTo = "//evil.com"
		b, _ = json.Marshal(f)
		forged := &http.Cookie{Name: cookie.Name, Value: base64.RawURLEncoding.EncodeToString(b) + "." + sig}

		got := d.get(t, plain, callback, forged)

		assert.Equal(t, "oidc login: the login cookie is invalid (forged, or made before the dashboard restarted): sign in again", got.Err)
	})
	t.Run("garbage cookie", func(t *testing.T) {
		callback, cookie := d.toCallback(t, "/")

		got := d.get(t, plain, callback, &http.Cookie{Name: cookie.Name, Value: "bm90IGEgY29va2ll"})

		assert.Contains(t, got.Err, "the login cookie is invalid")
	})
	t.Run("cookie from another dashboard process", func(t *testing.T) {
		callback, cookie := d.toCallback(t, "/")
		other, err := NewOIDC(context.Background(), d.cfg) // same config, its own key
		require.NoError(t, err)
		req := httptest.NewRequest(http.MethodGet, callback, nil)
		req.AddCookie(cookie)

		id, to, err := other.Finish(httptest.NewRecorder(), req)

		require.Error(t, err)
		assert.Contains(t, err.Error(), "the login cookie is invalid")
		assert.Equal(t, Identity{}, id)
		assert.Empty(t, to)
	})
	t.Run("login took too long", func(t *testing.T) {
		callback, cookie := d.toCallback(t, "/")
		d.skew.Store(int64(flowTTL + time.Second))
		defer d.skew.Store(0)

		got := d.get(t, plain, callback, cookie)

		assert.Equal(t, "oidc login: the login took more than 10m0s: sign in again", got.Err)
	})
	t.Run("callback replayed", func(t *testing.T) {
		callback, cookie := d.toCallback(t, "/")
		first := d.get(t, plain, callback, cookie)
		require.Empty(t, first.Err)
		require.Equal(t, "alice", first.Identity.User)

		again := d.get(t, plain, callback, cookie) // the browser cleared it; an attacker kept it

		assertInOrder(t, again.Err, []string{"oidc login: the provider refused the code", `"invalid_grant"`, "already used"})
	})
	t.Run("callback from another issuer", func(t *testing.T) {
		callback, cookie := d.toCallback(t, "/")
		u, _ := url.Parse(callback)
		q := u.Query()
		q.Set("iss", "https://evil.example")
		u.RawQuery = q.Encode()

		got := d.get(t, plain, u.String(), cookie)

		assert.Contains(t, got.Err, `oidc login: the callback comes from issuer "https://evil.example", not `+p.URL)
	})
	t.Run("no code", func(t *testing.T) {
		callback, cookie := d.toCallback(t, "/")
		u, _ := url.Parse(callback)
		q := u.Query()
		q.Del("code")
		u.RawQuery = q.Encode()

		got := d.get(t, plain, u.String(), cookie)

		assert.Equal(t, "oidc login: the callback has no code: sign in again", got.Err)
	})
}

func TestOIDCBegin(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprint("secure=", secure), func(t *testing.T) { testOIDCBegin(t, secure) })
	}
}

func testOIDCBegin(t *testing.T, secure bool) {
	{
		p := oidctest.New(t)
		d := newDashboard(t, p, func(c *OIDCConfig) { c.Secure = secure })
		rec := httptest.NewRecorder()

		d.o.Begin(rec, httptest.NewRequest(http.MethodGet, "/login", nil), "/jobs")

		resp := rec.Result()
		require.Equal(t, http.StatusFound, resp.StatusCode)
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		to, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, p.URL+"/authorize", to.Scheme+"://"+to.Host+to.Path)
		require.Len(t, resp.Cookies(), 1)
		ck := resp.Cookies()[0]
		assert.Equal(t, "ferry_oidc_flow", ck.Name)
		assert.Equal(t, "/auth/callback", ck.Path)
		assert.Equal(t, 600, ck.MaxAge)
		assert.True(t, ck.HttpOnly)
		assert.Equal(t, http.SameSiteLaxMode, ck.SameSite)
		assert.Equal(t, secure, ck.Secure)

		req := httptest.NewRequest(http.MethodGet, "/auth/callback", nil)
		req.AddCookie(ck)
		f, err := d.o.readFlow(req)
		require.NoError(t, err)
		q := to.Query()
		assert.Equal(t, "code", q.Get("response_type"))
		assert.Equal(t, testClientID, q.Get("client_id"))
		assert.Equal(t, d.cfg.RedirectURL, q.Get("redirect_uri"))
		assert.Equal(t, "openid profile email", q.Get("scope"))
		assert.Equal(t, f.State, q.Get("state"))
		assert.Equal(t, f.Nonce, q.Get("nonce"))
		assert.Equal(t, "S256", q.Get("code_challenge_method"))
		assert.Equal(t, oauth2.S256ChallengeFromVerifier(f.Verifier), q.Get("code_challenge"))
		assert.Equal(t, "/jobs", f.ReturnTo)
		assert.Len(t, f.State, 43, "256 random bits")
		assert.Len(t, f.Nonce, 43, "256 random bits")
	}
}

func TestOIDCBeginFresh(t *testing.T) {
	p := oidctest.New(t)
	d := newDashboard(t, p, nil)
	seen := map[string]bool{}
	for range 3 {
		rec := httptest.NewRecorder()
		d.o.Begin(rec, httptest.NewRequest(http.MethodGet, "/login", nil), "/")
		to, _ := url.Parse(rec.Header().Get("Location"))
		for _, k := range []string{"state", "nonce", "code_challenge"} {
			v := to.Query().Get(k)
			assert.False(t, seen[v], "%s %s repeats", k, v)
			seen[v] = true
		}
	}
}

func TestOIDCScopes(t *testing.T) {
	p := oidctest.New(t)
	alice(p)
	d := newDashboard(t, p, func(c *OIDCConfig) { c.Scopes = []string{"profile", "groups"} })

	got := d.login(t, browser(t), "/")

	require.Empty(t, got.Err)
	assert.Equal(t, "openid profile groups", p.LastAuthorize().Get("scope"), "openid is always asked for")
}

func TestNewOIDCRefused(t *testing.T) {
	p := oidctest.New(t)
	noS256 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := "http://" + r.Host
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": base, "authorization_endpoint": base + "/a", "token_endpoint": base + "/t", "jwks_uri": base + "/k",
			"code_challenge_methods_supported": []string{"plain"},
		})
	}))
	t.Cleanup(noS256.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	good := OIDCConfig{Issuer: p.URL, ClientID: testClientID, ClientSecret: testSecret, RedirectURL: "https://dash.example/auth/callback"}

	tests := []struct {
		name  string
		edit  func(c *OIDCConfig)
		setup func()
		want  string
	}{
		{
			name: "empty config",
			edit: func(c *OIDCConfig) { *c = OIDCConfig{} },
			want: `oidc config: issuer is empty: set it to the provider's issuer URL; client id is empty: set it to the client registered at the provider; redirect url "" is not an absolute http(s) URL: set it to the dashboard's callback, e.g. https://dash.example/auth/callback`,
		},
		{
			name: "relative redirect url",
			edit: func(c *OIDCConfig) { c.RedirectURL = "/auth/callback" },
			want: `oidc config: redirect url "/auth/callback" is not an absolute http(s) URL`,
		},
		{
			name: "provider unreachable",
			edit: func(c *OIDCConfig) { c.Issuer = closed.URL },
			want: "oidc discovery for issuer " + closed.URL + ": Get",
		},
		{
			name: "provider unreachable, what to do",
			edit: func(c *OIDCConfig) { c.Issuer = closed.URL },
			want: "connection refused (check the issuer URL and that the provider is reachable)",
		},
		{
			name: "issuer differs from discovery",
			edit: func(c *OIDCConfig) { c.Issuer = p.URL + "/" },
			want: "oidc discovery for issuer " + p.URL + "/: oidc: issuer URL provided to client (\"" + p.URL + "/\") did not match the issuer URL returned by provider (\"" + p.URL + "\")",
		},
		{
			name: "no S256 PKCE",
			edit: func(c *OIDCConfig) { c.Issuer = noS256.URL },
			want: "oidc issuer " + noS256.URL + ": the provider offers PKCE plain but not S256: enable S256 PKCE at the provider",
		},
		{ // last: it changes p
			name:  "no usable client authentication",
			setup: func() { p.SetAuthMethods("private_key_jwt") },
			want:  "oidc issuer " + p.URL + ": the token endpoint takes none of client_secret_basic, client_secret_post (it offers private_key_jwt): allow one of them for the client",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			if tt.edit != nil {
				tt.edit(&c)
			}
			if tt.setup != nil {
				tt.setup()
			}

			o, err := NewOIDC(context.Background(), c)

			require.Error(t, err)
			assert.Nil(t, o)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestNewOIDCNotFound(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>\n<body>\n<h1>Not Found</h1>\n</body>\n</html>", http.StatusNotFound)
	}))
	t.Cleanup(page.Close)

	_, err := NewOIDC(context.Background(), OIDCConfig{Issuer: page.URL, ClientID: "x", RedirectURL: "https://dash.example/cb"})

	require.Error(t, err)
	assert.Equal(t, "oidc discovery for issuer "+page.URL+": 404 Not Found: <html> <body> <h1>Not Found</h1> </body> </html> (check the issuer URL and that the provider is reachable)", err.Error())
}

func TestLocalPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/jobs", "/jobs"},
		{"/jobs/01J?state=running&user=alice#log", "/jobs/01J?state=running&user=alice#log"},
		{"/a//b", "/a//b"},
		{"", "/"},
		{"jobs", "/"},
		{"//evil.com", "/"},
		{"//evil.com/jobs", "/"},
		{"https://evil.com", "/"},
		{"https://evil.com/jobs", "/"},
		{"javascript:alert(1)", "/"},
		{`/\evil.com`, "/"},
		{`/jobs\..\x`, "/"},
		{"/\t/evil.com", "/"},
		{"/\n/evil.com", "/"},
		{"/\r\nSet-Cookie: x=y", "/"},
		{"/%zz", "/"},
		{"/" + strings.Repeat("a", maxReturnTo), "/"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, LocalPath(tt.in), "LocalPath(%q)", tt.in)
	}
}
