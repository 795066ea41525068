// Package auth is the dashboard's identity: who a request comes from and
// for how long.
//
// Two ways in. The home token (the default, needs nothing else): `ferry
// login` writes a random token to ~/.ferry/token, mode 0600, so only its
// owner (and root) can read it; presenting it proves who you are. The
// dashboard compares it with that user's file in constant time, once, and
// hands out a session cookie. OIDC (oidc.go) is for sites with Keycloak or
// another provider: the authorization-code flow with PKCE, a claim naming
// the Unix user and a group naming the admins.
//
// Sessions are records in the job store's Redis with a TTL, keyed by a hash
// of the cookie: logout and token rotation revoke them. Login attempts are
// rate-limited per client address and per user.
//
// It does not decide what an identity may see: the dashboard checks the
// owner of every job it serves.
package auth
