// Package oidctest is an OpenID Connect provider for tests: discovery, a
// JWKS, an authorization endpoint that logs in whichever user the test set
// without asking, and a token endpoint that checks the client, the code
// (once only), the redirect URI and PKCE (S256) before it signs an RS256 ID
// token. It follows OpenID Connect Core, RFC 6749 and RFC 7636 closely
// enough that a relying party which passes against it should pass against
// a real provider; knobs (Fault) make it misbehave for negative tests.
//
// It does not do refresh tokens, userinfo, consent, sessions or logout, and
// it is for tests only: it lives on an httptest.Server closed when the test
// ends.
package oidctest
