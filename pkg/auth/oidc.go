package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Defaults of OIDCConfig.
const (
	DefaultUserClaim   = "preferred_username"
	DefaultGroupsClaim = "groups"
)

// defaultScopes are asked for when OIDCConfig.Scopes is empty. "groups" is
// not among them: many providers put the groups claim in the ID token
// without it, and some reject scopes they do not know.
var defaultScopes = []string{oidc.ScopeOpenID, "profile", "email"}

const (
	flowCookie       = "ferry_oidc_flow"
	flowTTL          = 10 * time.Minute
	maxReturnTo      = 1024 // keeps the flow cookie well under the 4 KiB a browser stores
	discoveryTimeout = 30 * time.Second
	exchangeTimeout  = 30 * time.Second
)

// unixUser is what a claim must look like to name a Unix user (useradd's
// default rule, at most 32 characters).
var unixUser = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// OIDCConfig configures a login through an OpenID Connect provider.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string   // may be empty for a public client
	RedirectURL  string   // e.g. https://dash.example/auth/callback
	UserClaim    string   // claim naming the Unix user; default "preferred_username"
	GroupsClaim  string   // default "groups"
	AdminGroup   string   // a member of this group is an admin; "" = nobody via OIDC
	Scopes       []string // default openid profile email ("openid" is always asked for)
	Secure       bool     // set the Secure flag on the flow cookie (behind TLS)

	// HTTPClient talks to the provider (discovery, keys, token exchange),
	// e.g. one that trusts a site CA. Nil means http.DefaultClient.
	HTTPClient *http.Client
}

func (c OIDCConfig) withDefaults() OIDCConfig {
	if c.UserClaim == "" {
		c.UserClaim = DefaultUserClaim
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = DefaultGroupsClaim
	}
	c.Scopes = slices.Clone(c.Scopes)
	if len(c.Scopes) == 0 {
		c.Scopes = slices.Clone(defaultScopes)
	}
	if !slices.Contains(c.Scopes, oidc.ScopeOpenID) {
		c.Scopes = append([]string{oidc.ScopeOpenID}, c.Scopes...)
	}
	return c
}

// validate reports every problem with c, on one line.
func (c OIDCConfig) validate() error {
	var errs []string
	if c.Issuer == "" {
		errs = append(errs, "issuer is empty: set it to the provider's issuer URL")
	}
	if c.ClientID == "" {
		errs = append(errs, "client id is empty: set it to the client registered at the provider")
	}
	if u, err := url.Parse(c.RedirectURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Sprintf("redirect url %q is not an absolute http(s) URL: set it to the dashboard's callback, e.g. https://dash.example/auth/callback", c.RedirectURL))
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// OIDC logs dashboard users in through an OpenID Connect provider with the
// authorization-code flow and PKCE (S256). The state, nonce and PKCE verifier
// of a login in progress live in a short-lived cookie MACed with a key made
// when the OIDC is made, so a login must finish at the process that began it.
type OIDC struct {
	cfg          OIDCConfig
	issuer       string
	oauth        oauth2.Config
	verifier     *oidc.IDTokenVerifier
	callbackPath string
	key          []byte // HMAC-SHA256 key of the flow cookie
	now          func() time.Time
}

// NewOIDC checks c and fetches the provider's discovery document.
func NewOIDC(ctx context.Context, c OIDCConfig) (*OIDC, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("oidc config: %w", err)
	}
	redirect, _ := url.Parse(c.RedirectURL) // validate parsed it
	if c.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, c.HTTPClient)
	}
	dctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	p, err := oidc.NewProvider(dctx, c.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery for issuer %s: %w (check the issuer URL and that the provider is reachable)", c.Issuer, flat{err})
	}
	var meta struct {
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
		PKCE        []string `json:"code_challenge_methods_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("oidc discovery for issuer %s: %w", c.Issuer, err)
	}
	if len(meta.PKCE) > 0 && !slices.Contains(meta.PKCE, "S256") {
		return nil, fmt.Errorf("oidc issuer %s: the provider offers PKCE %s but not S256: enable S256 PKCE at the provider", c.Issuer, strings.Join(meta.PKCE, ", "))
	}
	endpoint := p.Endpoint()
	if endpoint.AuthStyle, err = authStyle(c.ClientSecret, meta.AuthMethods); err != nil {
		return nil, fmt.Errorf("oidc issuer %s: %w", c.Issuer, err)
	}
	path := redirect.EscapedPath()
	if path == "" {
		path = "/"
	}
	return &OIDC{
		cfg:    c,
		issuer: c.Issuer,
		oauth: oauth2.Config{
			ClientID:     c.ClientID,
			ClientSecret: c.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  c.RedirectURL,
			Scopes:       c.Scopes,
		},
		verifier:     p.Verifier(&oidc.Config{ClientID: c.ClientID}),
		callbackPath: path,
		key:          randomBytes(32),
		now:          time.Now,
	}, nil
}

// authStyle picks how the client authenticates at the token endpoint from
// what discovery says the provider accepts, so a failed exchange is never
// retried (an authorization code is good for one try).
func authStyle(secret string, methods []string) (oauth2.AuthStyle, error) {
	switch {
	case secret == "":
		return oauth2.AuthStyleInParams, nil // a public client sends only client_id
	case len(methods) == 0 || slices.Contains(methods, "client_secret_basic"):
		return oauth2.AuthStyleInHeader, nil // client_secret_basic is the default
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams, nil
	}
	return 0, fmt.Errorf("the token endpoint takes none of client_secret_basic, client_secret_post (it offers %s): allow one of them for the client", strings.Join(methods, ", "))
}

// CallbackPath is the path of the redirect URL, where Finish must be served.
func (o *OIDC) CallbackPath() string { return o.callbackPath }

// flow is a login in progress, kept in the flow cookie.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r"`
	Expires  int64  `json:"e"` // Unix seconds
}

// Begin starts a login: it remembers a fresh state, nonce and PKCE verifier
// and where to go afterwards (returnTo, if it is a local path, else "/") in
// the flow cookie, and redirects to the provider.
func (o *OIDC) Begin(w http.ResponseWriter, r *http.Request, returnTo string) {
	f := flow{
		State:    randomString(),
		Nonce:    randomString(),
		Verifier: oauth2.GenerateVerifier(),
		ReturnTo: LocalPath(returnTo),
		Expires:  o.now().Add(flowTTL).Unix(),
	}
	http.SetCookie(w, o.flowCookie(o.seal(f), int(flowTTL/time.Second)))
	w.Header().Set("Cache-Control", "no-store")
	to := o.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	http.Redirect(w, r, to, http.StatusFound)
}

// Finish completes a login at the callback: it checks the state against the
// flow cookie, exchanges the code with the PKCE verifier, verifies the ID
// token (signature, issuer, audience, expiry, nonce) and maps its claims to
// an Identity. It returns the local path the login began from. The flow
// cookie is cleared whatever the outcome.
func (o *OIDC) Finish(w http.ResponseWriter, r *http.Request) (Identity, string, error) {
	f, err := o.readFlow(r)
	http.SetCookie(w, o.flowCookie("", -1))
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		return Identity{}, "", err
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		return Identity{}, "", errors.New("oidc login: the callback's state does not match the login in progress (a stale or forged link, or a login begun in another tab): sign in again")
	}
	if code := q.Get("error"); code != "" {
		return Identity{}, "", providerError(code, q.Get("error_description"))
	}
	if iss := q.Get("iss"); q.Has("iss") && iss != o.issuer { // RFC 9207
		return Identity{}, "", fmt.Errorf("oidc login: the callback comes from issuer %s, not %s: check the redirect URL registered at each provider", short(iss), o.issuer)
	}
	code := q.Get("code")
	if code == "" {
		return Identity{}, "", errors.New("oidc login: the callback has no code: sign in again")
	}

	ctx := r.Context()
	if o.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, o.cfg.HTTPClient)
	}
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return Identity{}, "", o.exchangeError(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, "", errors.New("oidc login: the token response has no id_token: register the dashboard as an OpenID Connect client and keep the openid scope")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, "", fmt.Errorf("oidc login: reject the id token: %w: %s", flat{err}, verifyHint(err))
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return Identity{}, "", errors.New("oidc login: the id token's nonce does not match this login (a replayed token): sign in again")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, "", fmt.Errorf("oidc login: read the id token's claims: %w", err)
	}
	user, err := o.user(claims)
	if err != nil {
		return Identity{}, "", err
	}
	admin, err := o.admin(claims)
	if err != nil {
		return Identity{}, "", err
	}
	return Identity{User: user, Admin: admin, Via: "oidc"}, LocalPath(f.ReturnTo), nil
}

func (o *OIDC) user(claims map[string]any) (string, error) {
	name := o.cfg.UserClaim
	v, ok := claims[name]
	if !ok {
		return "", fmt.Errorf("oidc login: the id token has no %q claim: have the provider send it, or set the user claim to one it sends", name)
	}
	s, ok := v.(string)
	if !ok || !unixUser.MatchString(s) {
		return "", fmt.Errorf("oidc login: claim %q is %s, not a unix user name (%s): map it to the unix login at the provider, or set another user claim", name, short(v), unixUser)
	}
	return s, nil
}

func (o *OIDC) admin(claims map[string]any) (bool, error) {
	if o.cfg.AdminGroup == "" {
		return false, nil
	}
	switch g := claims[o.cfg.GroupsClaim].(type) {
	case nil:
		return false, nil
	case string:
		return g == o.cfg.AdminGroup, nil
	case []any:
		for _, e := range g {
			if s, ok := e.(string); ok && s == o.cfg.AdminGroup {
				return true, nil
			}
		}
		return false, nil
	default:
		return false, fmt.Errorf("oidc login: claim %q is %s, not a list of group names: fix the groups mapper at the provider, or set another groups claim", o.cfg.GroupsClaim, short(g))
	}
}

// verifyHint says what to fix when go-oidc rejects an ID token. It checks
// the signature, then the issuer, audience and expiry; only the expiry has
// a type of its own.
func verifyHint(err error) string {
	var expired *oidc.TokenExpiredError
	switch {
	case errors.As(err, &expired):
		return "check the clocks of the dashboard host and the provider"
	case strings.Contains(err.Error(), "signature"):
		return "the token is not signed by the issuer's published keys; check the issuer URL"
	}
	return "check that the issuer and client id configured are the provider's"
}

func providerError(code, desc string) error {
	hint := "check the dashboard's client registration at the provider"
	if code == "access_denied" {
		hint = "sign in again, or ask the provider's admins to let you use the dashboard"
	}
	if desc != "" {
		return fmt.Errorf("oidc login: the provider refused the login: %s (%s): %s", short(code), short(desc), hint)
	}
	return fmt.Errorf("oidc login: the provider refused the login: %s: %s", short(code), hint)
}

func (o *OIDC) exchangeError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return fmt.Errorf("oidc login: exchange the code at %s: %w (check that the provider is reachable from the dashboard)", o.oauth.Endpoint.TokenURL, flat{err})
	}
	hint := "check the dashboard's client registration at the provider"
	switch re.ErrorCode {
	case "invalid_client", "unauthorized_client":
		hint = "check the client id and secret"
	case "invalid_grant":
		hint = "the code expired or was used, or the PKCE verifier did not match; sign in again"
	}
	return fmt.Errorf("oidc login: the provider refused the code at %s: %w: %s", o.oauth.Endpoint.TokenURL, flat{err}, hint)
}

func (o *OIDC) flowCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     flowCookie,
		Value:    value,
		Path:     o.callbackPath,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   o.cfg.Secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// seal encodes f as base64url(JSON) "." base64url(HMAC-SHA256).
func (o *OIDC) seal(f flow) string {
	b, _ := json.Marshal(f) // strings and an int: cannot fail
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(o.mac(payload))
}

func (o *OIDC) mac(payload string) []byte {
	m := hmac.New(sha256.New, o.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func (o *OIDC) readFlow(r *http.Request) (flow, error) {
	c, err := r.Cookie(flowCookie)
	if err != nil {
		return flow{}, fmt.Errorf("oidc login: no login in progress (the %s cookie is missing or expired; a Secure cookie is not sent over plain http): sign in again", flowCookie)
	}
	invalid := errors.New("oidc login: the login cookie is invalid (forged, or made before the dashboard restarted): sign in again")
	payload, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return flow{}, invalid
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, o.mac(payload)) {
		return flow{}, invalid
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return flow{}, invalid
	}
	var f flow
	if err := json.Unmarshal(b, &f); err != nil || f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return flow{}, invalid
	}
	if o.now().Unix() > f.Expires {
		return flow{}, fmt.Errorf("oidc login: the login took more than %s: sign in again", flowTTL)
	}
	return f, nil
}

// LocalPath returns s if it is a path on this site ("/jobs?state=running"),
// else "/". It refuses what a browser would take to another site:
// "//host", "/\host", a scheme, control characters (browsers drop tabs and
// newlines, so "/\t/host" is "//host"), and anything over 1 KiB.
func LocalPath(s string) string {
	if len(s) == 0 || len(s) > maxReturnTo || s[0] != '/' {
		return "/"
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return "/"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails; crashes the program if the OS has no randomness
	return b
}

func randomString() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

// short shows a claim or parameter in an error message, on one line and
// at most ~80 characters: a string quoted, anything else as JSON.
func short(v any) string {
	s, isString := v.(string)
	if !isString {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Sprintf("a %T", v)
		}
		s = string(b)
	}
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	if isString {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// flat prints a wrapped error on one short line: discovery and token
// endpoints may answer with a multi-line HTML page that ends up in it.
type flat struct{ err error }

func (f flat) Error() string {
	s := strings.Join(strings.Fields(f.err.Error()), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func (f flat) Unwrap() error { return f.err }
