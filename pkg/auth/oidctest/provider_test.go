package oidctest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/auth/oidctest"
)

const (
	clientID = "app"
	secret   = "app-secret"
	redirect = "https://app.example/cb"
	// RFC 7636 appendix B.
	verifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

func newProvider(t *testing.T) *oidctest.Provider {
	p := oidctest.New(t)
	p.AddClient(clientID, secret, redirect)
	p.AddClient("public-app", "", "http://127.0.0.1:9999/cb")
	p.SetUser("u-1", "alice", []string{"users", "admins"})
	return p
}

var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func authorizeParams() url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirect},
		"scope":                 {"openid profile"},
		"state":                 {"st-1"},
		"nonce":                 {"n-0S6_WzA2Mj"},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
	}
}

// authorize returns the status, and the redirect's query or the body.
func authorize(t *testing.T, p *oidctest.Provider, v url.Values) (int, url.Values, string) {
	t.Helper()
	resp, err := noRedirect.Get(p.URL + "/authorize?" + v.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusFound {
		return resp.StatusCode, nil, string(body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	return resp.StatusCode, loc.Query(), ""
}

func code(t *testing.T, p *oidctest.Provider, v url.Values) string {
	t.Helper()
	status, q, body := authorize(t, p, v)
	require.Equal(t, http.StatusFound, status, body)
	require.NotEmpty(t, q.Get("code"), "redirect %v", q)
	return q.Get("code")
}

type tokenAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

// token posts form to /token, with id:secret in a Basic header unless basicID is "".
func token(t *testing.T, p *oidctest.Provider, form url.Values, basicID, basicSecret string) tokenAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.URL+"/token", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := noRedirect.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return tokenAnswer{resp.StatusCode, resp.Header, body}
}

func tokenForm(code string) url.Values {
	return url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirect},
		"code_verifier": {verifier},
	}
}

func TestDiscovery(t *testing.T) {
	p := newProvider(t)

	resp, err := http.Get(p.URL + "/.well-known/openid-configuration")
	require.NoError(t, err)
	defer resp.Body.Close()
	var d map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&d))

	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.Equal(t, p.URL, d["issuer"])
	assert.Equal(t, p.URL+"/authorize", d["authorization_endpoint"])
	assert.Equal(t, p.URL+"/token", d["token_endpoint"])
	assert.Equal(t, p.URL+"/jwks", d["jwks_uri"])
	assert.Equal(t, []any{"S256"}, d["code_challenge_methods_supported"])
	assert.Equal(t, []any{"RS256"}, d["id_token_signing_alg_values_supported"])
	assert.Equal(t, []any{"code"}, d["response_types_supported"])
	assert.Equal(t, []any{"client_secret_basic", "client_secret_post", "none"}, d["token_endpoint_auth_methods_supported"])

	_, err = oidc.NewProvider(context.Background(), p.URL)
	assert.NoError(t, err, "go-oidc takes the discovery document")
}

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(v url.Values, p *oidctest.Provider)
		status int
		body   string // for a refusal that must not redirect
		error  string // error in the redirect
		desc   string
	}{
		{name: "unknown client", edit: func(v url.Values, _ *oidctest.Provider) { v.Set("client_id", "nobody") }, status: 400, body: "unknown client_id nobody"},
		{name: "redirect_uri not registered", edit: func(v url.Values, _ *oidctest.Provider) { v.Set("redirect_uri", redirect+"/x") }, status: 400, body: "is not the one registered"},
		{name: "no redirect_uri", edit: func(v url.Values, _ *oidctest.Provider) { v.Del("redirect_uri") }, status: 400, body: "is not the one registered"},
		{name: "implicit flow", edit: func(v url.Values, _ *oidctest.Provider) { v.Set("response_type", "id_token") }, status: 302, error: "unsupported_response_type"},
		{name: "no openid scope", edit: func(v url.Values, _ *oidctest.Provider) { v.Set("scope", "profile") }, status: 302, error: "invalid_scope"},
		{name: "no PKCE", edit: func(v url.Values, _ *oidctest.Provider) { v.Del("code_challenge"); v.Del("code_challenge_method") }, status: 302, error: "invalid_request", desc: "code_challenge required (PKCE)"},
		{name: "plain PKCE", edit: func(v url.Values, _ *oidctest.Provider) { v.Set("code_challenge_method", "plain") }, status: 302, error: "invalid_request", desc: "transform algorithm not supported: code_challenge_method must be S256"},
		{name: "PKCE method left out", edit: func(v url.Values, _ *oidctest.Provider) { v.Del("code_challenge_method") }, status: 302, error: "invalid_request"},
		{name: "short challenge", edit: func(v url.Values, _ *oidctest.Provider) { v.Set("code_challenge", "abc") }, status: 302, error: "invalid_request", desc: "code_challenge is malformed"},
		{name: "user declines", edit: func(_ url.Values, p *oidctest.Provider) { p.SetFault(oidctest.DenyLogin) }, status: 302, error: "access_denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			v := authorizeParams()
			tt.edit(v, p)

			status, q, body := authorize(t, p, v)

			require.Equal(t, tt.status, status)
			if tt.body != "" {
				assert.Contains(t, body, tt.body)
				return
			}
			assert.Equal(t, tt.error, q.Get("error"))
			if tt.desc != "" {
				assert.Equal(t, tt.desc, q.Get("error_description"))
			}
			assert.Equal(t, "st-1", q.Get("state"))
			assert.Equal(t, p.URL, q.Get("iss"))
			assert.Empty(t, q.Get("code"))
		})
	}

	t.Run("no user", func(t *testing.T) {
		p := oidctest.New(t)
		p.AddClient(clientID, secret, redirect)

		_, q, _ := authorize(t, p, authorizeParams())

		assert.Equal(t, "access_denied", q.Get("error"))
		assert.Contains(t, q.Get("error_description"), "SetUser")
	})
	t.Run("logs the user in", func(t *testing.T) {
		p := newProvider(t)

		status, q, _ := authorize(t, p, authorizeParams())

		assert.Equal(t, http.StatusFound, status)
		assert.NotEmpty(t, q.Get("code"))
		assert.Equal(t, "st-1", q.Get("state"))
		assert.Equal(t, p.URL, q.Get("iss"))
		assert.Equal(t, challenge, p.LastAuthorize().Get("code_challenge"))
	})
}

func TestTokenIssuesAVerifiableIDToken(t *testing.T) {
	p := newProvider(t)
	c := code(t, p, authorizeParams())

	got := token(t, p, tokenForm(c), clientID, secret)

	require.Equal(t, http.StatusOK, got.status, "%v", got.body)
	assert.Equal(t, "no-store", got.header.Get("Cache-Control"))
	assert.Equal(t, "Bearer", got.body["token_type"])
	assert.NotEmpty(t, got.body["access_token"])
	assert.EqualValues(t, 300, got.body["expires_in"])
	raw, _ := got.body["id_token"].(string)
	header, _, _ := strings.Cut(raw, ".")
	hb, err := base64.RawURLEncoding.DecodeString(header)
	require.NoError(t, err)
	assert.JSONEq(t, `{"alg":"RS256","kid":"oidctest-1","typ":"JWT"}`, string(hb))

	// go-oidc, an independent implementation, checks the signature against
	// the JWKS, the issuer, the audience and the expiry.
	op, err := oidc.NewProvider(context.Background(), p.URL)
	require.NoError(t, err)
	idt, err := op.Verifier(&oidc.Config{ClientID: clientID}).Verify(context.Background(), raw)
	require.NoError(t, err)
	var claims struct {
		Name   string   `json:"preferred_username"`
		Groups []string `json:"groups"`
	}
	require.NoError(t, idt.Claims(&claims))
	assert.Equal(t, p.URL, idt.Issuer)
	assert.Equal(t, "u-1", idt.Subject)
	assert.Equal(t, []string{clientID}, idt.Audience)
	assert.Equal(t, "n-0S6_WzA2Mj", idt.Nonce)
	assert.Equal(t, "alice", claims.Name)
	assert.Equal(t, []string{"users", "admins"}, claims.Groups)
	assert.WithinDuration(t, time.Now().Add(5*time.Minute), idt.Expiry, 5*time.Second)
}

func TestTokenClientAuthentication(t *testing.T) {
	tests := []struct {
		name          string
		methods       []string // SetAuthMethods, if set
		form          func(url.Values)
		basic, basic2 string
		status        int
		error         string
	}{
		{name: "client_secret_basic", basic: clientID, basic2: secret, status: 200},
		{name: "client_secret_post", form: func(f url.Values) { f.Set("client_id", clientID); f.Set("client_secret", secret) }, status: 200},
		{name: "basic with the same client_id in the body", form: func(f url.Values) { f.Set("client_id", clientID) }, basic: clientID, basic2: secret, status: 200},
		{name: "wrong secret", basic: clientID, basic2: "nope", status: 401, error: "invalid_client"},
		{name: "wrong secret in the body", form: func(f url.Values) { f.Set("client_id", clientID); f.Set("client_secret", "nope") }, status: 401, error: "invalid_client"},
		{name: "no secret", form: func(f url.Values) { f.Set("client_id", clientID) }, status: 401, error: "invalid_client"},
		{name: "unknown client", basic: "nobody", basic2: secret, status: 401, error: "invalid_client"},
		{name: "two methods", form: func(f url.Values) { f.Set("client_secret", secret) }, basic: clientID, basic2: secret, status: 400, error: "invalid_request"},
		{name: "basic not allowed", methods: []string{"client_secret_post"}, basic: clientID, basic2: secret, status: 401, error: "invalid_client"},
		{name: "post not allowed", methods: []string{"client_secret_basic"}, form: func(f url.Values) { f.Set("client_id", clientID); f.Set("client_secret", secret) }, status: 401, error: "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			if tt.methods != nil {
				p.SetAuthMethods(tt.methods...)
			}
			f := tokenForm(code(t, p, authorizeParams()))
			if tt.form != nil {
				tt.form(f)
			}

			got := token(t, p, f, tt.basic, tt.basic2)

			assert.Equal(t, tt.status, got.status, "%v", got.body)
			if tt.error != "" {
				assert.Equal(t, tt.error, got.body["error"])
				assert.Nil(t, got.body["id_token"])
			} else {
				assert.NotEmpty(t, got.body["id_token"])
			}
			if tt.status == 401 && tt.basic != "" {
				assert.Equal(t, `Basic realm="oidctest"`, got.header.Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("public client", func(t *testing.T) {
		p := newProvider(t)
		v := authorizeParams()
		v.Set("client_id", "public-app")
		v.Set("redirect_uri", "http://127.0.0.1:9999/cb")
		f := tokenForm(code(t, p, v))
		f.Set("client_id", "public-app")
		f.Set("redirect_uri", "http://127.0.0.1:9999/cb")

		got := token(t, p, f, "", "")

		assert.Equal(t, http.StatusOK, got.status, "%v", got.body)
		assert.NotEmpty(t, got.body["id_token"])
	})
}

func TestTokenChecksTheGrant(t *testing.T) {
	tests := []struct {
		name   string
		form   func(url.Values)
		status int
		error  string
		desc   string
	}{
		{name: "wrong verifier", form: func(f url.Values) { f.Set("code_verifier", strings.Repeat("a", 43)) }, status: 400, error: "invalid_grant", desc: "PKCE verification failed: code_verifier does not match code_challenge"},
		{name: "challenge as verifier", form: func(f url.Values) { f.Set("code_verifier", challenge) }, status: 400, error: "invalid_grant"},
		{name: "no verifier", form: func(f url.Values) { f.Del("code_verifier") }, status: 400, error: "invalid_request", desc: "code_verifier required (PKCE)"},
		{name: "short verifier", form: func(f url.Values) { f.Set("code_verifier", "abc") }, status: 400, error: "invalid_grant", desc: "code_verifier is malformed"},
		{name: "other redirect_uri", form: func(f url.Values) { f.Set("redirect_uri", redirect+"/x") }, status: 400, error: "invalid_grant", desc: "redirect_uri does not match the authorization request"},
		{name: "unknown code", form: func(f url.Values) { f.Set("code", "made-up") }, status: 400, error: "invalid_grant", desc: "unknown code"},
		{name: "refresh grant", form: func(f url.Values) { f.Set("grant_type", "refresh_token") }, status: 400, error: "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			f := tokenForm(code(t, p, authorizeParams()))
			tt.form(f)

			got := token(t, p, f, clientID, secret)

			assert.Equal(t, tt.status, got.status)
			assert.Equal(t, tt.error, got.body["error"])
			if tt.desc != "" {
				assert.Equal(t, tt.desc, got.body["error_description"])
			}
			assert.Nil(t, got.body["id_token"])
		})
	}

	t.Run("code used twice", func(t *testing.T) {
		p := newProvider(t)
		f := tokenForm(code(t, p, authorizeParams()))
		require.Equal(t, http.StatusOK, token(t, p, f, clientID, secret).status)

		again := token(t, p, f, clientID, secret)

		assert.Equal(t, http.StatusBadRequest, again.status)
		assert.Equal(t, "invalid_grant", again.body["error"])
		assert.Equal(t, "the code was already used", again.body["error_description"])
	})
	t.Run("code of another client", func(t *testing.T) {
		p := newProvider(t)
		p.AddClient("other", "other-secret", redirect)
		f := tokenForm(code(t, p, authorizeParams()))

		got := token(t, p, f, "other", "other-secret")

		assert.Equal(t, "invalid_grant", got.body["error"])
		assert.Equal(t, "the code was issued to another client", got.body["error_description"])
	})
	t.Run("a failed try uses the code up", func(t *testing.T) {
		p := newProvider(t)
		f := tokenForm(code(t, p, authorizeParams()))
		f.Set("code_verifier", strings.Repeat("b", 43))
		require.Equal(t, "invalid_grant", token(t, p, f, clientID, secret).body["error"])
		f.Set("code_verifier", verifier)

		got := token(t, p, f, clientID, secret)

		assert.Equal(t, "the code was already used", got.body["error_description"])
	})
	t.Run("GET", func(t *testing.T) {
		p := newProvider(t)

		resp, err := http.Get(p.URL + "/token")
		require.NoError(t, err)
		resp.Body.Close()

		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})
}

func TestFaults(t *testing.T) {
	tests := []struct {
		fault oidctest.Fault
		want  string // go-oidc's complaint
	}{
		{oidctest.WrongAudience, `expected audience "app" got ["another-client"]`},
		{oidctest.WrongIssuer, "id token issued by a different provider"},
		{oidctest.Expired, "token is expired"},
		{oidctest.BadSignature, "failed to verify signature"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			p := newProvider(t)
			p.SetFault(tt.fault)
			got := token(t, p, tokenForm(code(t, p, authorizeParams())), clientID, secret)
			require.Equal(t, http.StatusOK, got.status)
			op, err := oidc.NewProvider(context.Background(), p.URL)
			require.NoError(t, err)

			_, err = op.Verifier(&oidc.Config{ClientID: clientID}).Verify(context.Background(), got.body["id_token"].(string))

			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}

	t.Run("wrong nonce", func(t *testing.T) {
		p := newProvider(t)
		p.SetFault(oidctest.WrongNonce)
		got := token(t, p, tokenForm(code(t, p, authorizeParams())), clientID, secret)
		op, err := oidc.NewProvider(context.Background(), p.URL)
		require.NoError(t, err)

		idt, err := op.Verifier(&oidc.Config{ClientID: clientID}).Verify(context.Background(), got.body["id_token"].(string))

		require.NoError(t, err, "go-oidc leaves the nonce to the caller")
		assert.NotEqual(t, "n-0S6_WzA2Mj", idt.Nonce)
	})
	t.Run("reject PKCE", func(t *testing.T) {
		p := newProvider(t)
		p.SetFault(oidctest.RejectPKCE)

		got := token(t, p, tokenForm(code(t, p, authorizeParams())), clientID, secret)

		assert.Equal(t, "invalid_grant", got.body["error"])
		assert.Contains(t, got.body["error_description"], "PKCE verification failed")
	})
	t.Run("claims", func(t *testing.T) {
		p := newProvider(t)
		p.SetClaim("uid", "alice2")
		p.SetClaim("groups", nil)
		got := token(t, p, tokenForm(code(t, p, authorizeParams())), clientID, secret)
		_, payload, _ := strings.Cut(got.body["id_token"].(string), ".")
		payload, _, _ = strings.Cut(payload, ".")
		b, err := base64.RawURLEncoding.DecodeString(payload)
		require.NoError(t, err)
		var claims map[string]any

		require.NoError(t, json.Unmarshal(b, &claims))

		assert.Equal(t, "alice2", claims["uid"])
		assert.NotContains(t, claims, "groups")
		assert.Equal(t, "alice", claims["preferred_username"])
	})
}
