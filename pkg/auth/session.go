package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// SessionStore keeps session records; the job store's Redis implements it.
type SessionStore interface {
	PutSession(ctx context.Context, key string, value []byte, ttl time.Duration) error
	GetSession(ctx context.Context, key string) ([]byte, error)
	DeleteSession(ctx context.Context, key string) error
}

// Session is one logged-in browser.
type Session struct {
	Identity
	// TokenFP is the fingerprint of the token file the session was made
	// with (home-token sessions): another fingerprint means the token was
	// rotated, and the session is revoked.
	TokenFP string    `json:"token_fp,omitempty"`
	Created time.Time `json:"created"`
	// CSRF is a per-session secret the dashboard's forms echo back.
	CSRF string `json:"csrf"`

	key string // the store key (a hash of the cookie)
}

// Key is the session's store key: a hash of its cookie, never the cookie.
func (s *Session) Key() string { return s.key }

// CookieName is the dashboard's session cookie.
const CookieName = "ferry_session"

// Sessions makes, finds and ends sessions.
type Sessions struct {
	Store SessionStore
	TTL   time.Duration // default 12h
	// Secure marks the cookie Secure (the dashboard is served over TLS,
	// or behind a proxy that terminates it).
	Secure bool
}

func (s *Sessions) ttl() time.Duration {
	if s.TTL <= 0 {
		return 12 * time.Hour
	}
	return s.TTL
}

func storeKey(cookie string) string {
	h := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(h[:])
}

func random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Create starts a session for id and sets its cookie.
func (s *Sessions) Create(ctx context.Context, w http.ResponseWriter, id Identity, tokenFP string) (*Session, error) {
	cookie, err := random(32)
	if err != nil {
		return nil, err
	}
	csrf, err := random(24)
	if err != nil {
		return nil, err
	}
	sess := &Session{Identity: id, TokenFP: tokenFP, Created: time.Now().UTC().Truncate(time.Second), CSRF: csrf, key: storeKey(cookie)}
	data, err := json.Marshal(sess)
	if err != nil {
		return nil, err
	}
	if err := s.Store.PutSession(ctx, sess.key, data, s.ttl()); err != nil {
		return nil, fmt.Errorf("save session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: cookie, Path: "/", MaxAge: int(s.ttl().Seconds()),
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode,
	})
	return sess, nil
}

// Lookup returns the request's session; nil when it has none, or its
// session expired or was revoked. An error is the store failing.
func (s *Sessions) Lookup(ctx context.Context, r *http.Request) (*Session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil, nil
	}
	key := storeKey(c.Value)
	data, err := s.Store.GetSession(ctx, key)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return nil, nil
	}
	var sess Session
	if err := json.Unmarshal(data, &sess); err != nil || sess.User == "" {
		return nil, nil
	}
	sess.key = key
	return &sess, nil
}

// Revoke deletes a session's record.
func (s *Sessions) Revoke(ctx context.Context, sess *Session) error {
	return s.Store.DeleteSession(ctx, sess.key)
}

// Clear expires the cookie in the browser.
func (s *Sessions) Clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
}
