package oidctest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault makes the provider misbehave in one way, for a negative test.
type Fault int

const (
	NoFault       Fault = iota
	WrongAudience       // the ID token's aud is another client
	WrongIssuer         // the ID token's iss is another issuer
	Expired             // the ID token expired an hour ago
	BadSignature        // the ID token is signed by a key that is not in the JWKS (same kid)
	WrongNonce          // the ID token carries another nonce than the one sent to /authorize
	RejectPKCE          // /authorize keeps another code_challenge than it got, so /token's PKCE check fails
	DenyLogin           // /authorize sends the user back with error=access_denied
)

const (
	keyID    = "oidctest-1"
	codeTTL  = time.Minute
	tokenTTL = 5 * time.Minute
)

// The RSA keys are made once per test binary: 2048-bit key generation is
// slow enough to matter when every test makes a provider.
var (
	signingKey = sync.OnceValue(func() *rsa.PrivateKey { return newKey() })
	otherKey   = sync.OnceValue(func() *rsa.PrivateKey { return newKey() })
)

func newKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("oidctest: generate RSA key: " + err.Error())
	}
	return k
}

// Provider is an OpenID provider on an httptest.Server. Its methods may be
// called while it serves.
type Provider struct {
	// URL is the issuer, the server's base URL without a trailing slash.
	URL string

	mu          sync.Mutex
	clients     map[string]client
	user        *user
	claims      map[string]any // set by SetClaim; nil values delete
	fault       Fault
	authMethods []string
	codes       map[string]*grant
	used        map[string]bool
	last        url.Values
}

type client struct{ secret, redirectURL string }

type user struct {
	sub, name string
	groups    []string
}

type grant struct {
	clientID, redirectURI, challenge, nonce, scope string
	user                                           user
	expires                                        time.Time
}

// New starts a provider that is closed when t ends. Register a client with
// AddClient and log a user in with SetUser before a login.
func New(t testing.TB) *Provider {
	t.Helper()
	p := &Provider{
		clients:     map[string]client{},
		claims:      map[string]any{},
		codes:       map[string]*grant{},
		used:        map[string]bool{},
		authMethods: []string{"client_secret_basic", "client_secret_post", "none"},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("/authorize", p.authorize)
	mux.HandleFunc("/token", p.token)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// SetUser sets who /authorize logs in: the subject, the preferred_username
// claim ("" leaves it out) and the groups claim (nil leaves it out).
func (p *Provider) SetUser(sub, preferredUsername string, groups []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.user = &user{sub: sub, name: preferredUsername, groups: slices.Clone(groups)}
}

// SetClaim puts a claim into every ID token from now on, over the ones the
// provider sets; a nil value removes the claim.
func (p *Provider) SetClaim(name string, value any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.claims[name] = value
}

// AddClient registers a client. An empty secret makes it a public client,
// which authenticates with client_id alone (and PKCE).
func (p *Provider) AddClient(id, secret, redirectURL string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[id] = client{secret: secret, redirectURL: redirectURL}
}

// SetFault makes the provider misbehave from now on (NoFault to stop).
func (p *Provider) SetFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
}

// SetAuthMethods sets the client authentication methods the token endpoint
// takes and discovery advertises (token_endpoint_auth_methods_supported);
// the default is client_secret_basic, client_secret_post and none.
func (p *Provider) SetAuthMethods(methods ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.authMethods = slices.Clone(methods)
}

// LastAuthorize returns the parameters of the last request to /authorize.
func (p *Provider) LastAuthorize() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	methods := p.authMethods
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         p.URL,
		"authorization_endpoint":                         p.URL + "/authorize",
		"token_endpoint":                                 p.URL + "/token",
		"jwks_uri":                                       p.URL + "/jwks",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"RS256"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          methods,
		"scopes_supported":                               []string{"openid", "profile", "email", "groups"},
		"claims_supported":                               []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "preferred_username", "groups"},
		"authorization_response_iss_parameter_supported": true,
	})
}

func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	pub := signingKey().PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA",
		"use": "sig",
		"alg": "RS256",
		"kid": keyID,
		"n":   b64(pub.N.Bytes()),
		"e":   b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// pkceValue is RFC 7636's code_verifier and (for S256) code_challenge syntax.
var pkceValue = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// authorize is the authorization endpoint (OpenID Connect Core 3.1.2).
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	q := r.Form
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = q

	// Without a known client and its exact redirect URI, the provider must
	// not redirect (RFC 6749 4.1.2.1): it tells the user.
	c, ok := p.clients[q.Get("client_id")]
	if !ok {
		http.Error(w, "unknown client_id "+q.Get("client_id"), http.StatusBadRequest)
		return
	}
	if q.Get("redirect_uri") != c.redirectURL {
		http.Error(w, "redirect_uri "+q.Get("redirect_uri")+" is not the one registered for the client", http.StatusBadRequest)
		return
	}
	back := func(v url.Values) {
		u, _ := url.Parse(c.redirectURL) // registered by the test
		qq := u.Query()
		for k, vv := range v {
			qq[k] = vv
		}
		if s := q.Get("state"); s != "" {
			qq.Set("state", s)
		}
		qq.Set("iss", p.URL)
		u.RawQuery = qq.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	fail := func(code, desc string) {
		back(url.Values{"error": {code}, "error_description": {desc}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		fail("invalid_scope", "scope must include openid")
	case q.Get("code_challenge") == "":
		fail("invalid_request", "code_challenge required (PKCE)")
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "transform algorithm not supported: code_challenge_method must be S256")
	case !pkceValue.MatchString(q.Get("code_challenge")):
		fail("invalid_request", "code_challenge is malformed")
	case p.fault == DenyLogin:
		fail("access_denied", "the user declined")
	case p.user == nil:
		fail("access_denied", "no user is logged in (the test did not call SetUser)")
	default:
		challenge := q.Get("code_challenge")
		if p.fault == RejectPKCE {
			challenge = b64(sha256Sum("not the client's verifier"))
		}
		code := randomString()
		p.codes[code] = &grant{
			clientID:    q.Get("client_id"),
			redirectURI: q.Get("redirect_uri"),
			challenge:   challenge,
			nonce:       q.Get("nonce"),
			scope:       q.Get("scope"),
			user:        *p.user,
			expires:     time.Now().Add(codeTTL),
		}
		back(url.Values{"code": {code}})
	}
}

// token is the token endpoint (OpenID Connect Core 3.1.3, RFC 6749 4.1.3,
// RFC 7636 4.6).
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); ct != "application/x-www-form-urlencoded" {
		tokenError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f := r.PostForm
	p.mu.Lock()
	defer p.mu.Unlock()

	// Client authentication (RFC 6749 2.3.1): one method, never two.
	id, secret, basic := r.BasicAuth()
	method := "none"
	switch {
	case basic && (f.Has("client_secret") || (f.Has("client_id") && f.Get("client_id") != mustUnescape(id))):
		tokenError(w, http.StatusBadRequest, "invalid_request", "more than one client authentication method")
		return
	case basic:
		id, secret, method = mustUnescape(id), mustUnescape(secret), "client_secret_basic"
	case f.Has("client_secret"):
		id, secret, method = f.Get("client_id"), f.Get("client_secret"), "client_secret_post"
	default:
		id = f.Get("client_id")
	}
	c, known := p.clients[id]
	switch {
	case !slices.Contains(p.authMethods, method):
		invalidClient(w, basic, "client authentication method "+method+" is not allowed")
		return
	case !known:
		invalidClient(w, basic, "unknown client")
		return
	case c.secret == "" && secret != "":
		invalidClient(w, basic, "a public client has no secret")
		return
	case c.secret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1:
		invalidClient(w, basic, "wrong client secret")
		return
	}

	if f.Get("grant_type") != "authorization_code" {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code is supported")
		return
	}
	code := f.Get("code")
	g, ok := p.codes[code]
	delete(p.codes, code)
	switch {
	case p.used[code]:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "the code was already used")
		return
	case !ok:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown code")
		return
	}
	p.used[code] = true
	verifier := f.Get("code_verifier")
	switch {
	case time.Now().After(g.expires):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "the code expired")
	case g.clientID != id:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "the code was issued to another client")
	case f.Get("redirect_uri") != g.redirectURI:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
	case verifier == "":
		tokenError(w, http.StatusBadRequest, "invalid_request", "code_verifier required (PKCE)")
	case !pkceValue.MatchString(verifier):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "code_verifier is malformed")
	case subtle.ConstantTimeCompare([]byte(b64(sha256Sum(verifier))), []byte(g.challenge)) != 1:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed: code_verifier does not match code_challenge")
	default:
		w.Header().Set("Pragma", "no-cache")
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": randomString(),
			"token_type":   "Bearer",
			"expires_in":   int(tokenTTL / time.Second),
			"scope":        g.scope,
			"id_token":     p.idToken(g),
		})
	}
}

// idToken signs g's ID token, bent by the current fault. p.mu is held.
func (p *Provider) idToken(g *grant) string {
	now := time.Now()
	c := map[string]any{
		"iss":       p.URL,
		"sub":       g.user.sub,
		"aud":       g.clientID,
		"exp":       now.Add(tokenTTL).Unix(),
		"iat":       now.Unix(),
		"auth_time": now.Unix(),
	}
	if g.nonce != "" {
		c["nonce"] = g.nonce
	}
	if g.user.name != "" {
		c["preferred_username"] = g.user.name
	}
	if g.user.groups != nil {
		c["groups"] = g.user.groups
	}
	for k, v := range p.claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	key := signingKey()
	switch p.fault {
	case WrongAudience:
		c["aud"] = "another-client"
	case WrongIssuer:
		c["iss"] = p.URL + "/elsewhere"
	case Expired:
		c["exp"] = now.Add(-time.Hour).Unix()
		c["iat"] = now.Add(-2 * time.Hour).Unix()
	case WrongNonce:
		c["nonce"] = "not-the-nonce-of-this-login"
	case BadSignature:
		key = otherKey()
	}
	return sign(key, c)
}

// sign makes a compact RS256 JWS (RFC 7515, 7518 3.3) by hand, so the
// relying party's verifier is checked against an independent encoder.
func sign(key *rsa.PrivateKey, claims map[string]any) string {
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": keyID})
	payload, err := json.Marshal(claims)
	if err != nil {
		panic("oidctest: a claim does not encode as JSON: " + err.Error())
	}
	input := b64(header) + "." + b64(payload)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sha256Sum(input))
	if err != nil {
		panic("oidctest: sign: " + err.Error())
	}
	return input + "." + b64(sig)
}

func invalidClient(w http.ResponseWriter, basic bool, desc string) {
	if basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="oidctest"`)
	}
	tokenError(w, http.StatusUnauthorized, "invalid_client", desc)
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// mustUnescape undoes the form encoding of client_secret_basic's id and
// secret (RFC 6749 2.3.1); a bad escape is left as it is, and fails later.
func mustUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomString() string {
	b := make([]byte, 24)
	rand.Read(b)
	return b64(b)
}
