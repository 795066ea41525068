package dashboard

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/ferry-hpc/ferry/pkg/auth"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// localPath keeps a post-login redirect on this site: a path, never
// "//host" or a scheme.
func localPath(p string) string {
	if p = auth.LocalPath(p); p == "/" {
		return "/jobs"
	}
	return p
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if me, _ := s.identify(r); me != nil {
		http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.render(w, r, "login.html", nil, map[string]any{
		"Next": localPath(r.URL.Query().Get("next")), "OIDC": s.o.OIDC != nil, "OIDCName": s.o.OIDCName,
	})
}

// login exchanges a user name and home token for a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	name := strings.TrimSpace(r.PostFormValue("user"))
	token := strings.TrimSpace(r.PostFormValue("token"))
	next := localPath(r.PostFormValue("next"))
	again := func(code int, msg string) {
		w.WriteHeader(code)
		s.render(w, r, "login.html", nil, map[string]any{
			"Next": next, "User": name, "Error": msg, "OIDC": s.o.OIDC != nil, "OIDCName": s.o.OIDCName,
		})
	}
	if !s.allowLogin(r, name) {
		w.Header().Set("Retry-After", "60")
		again(http.StatusTooManyRequests, "Too many login attempts: wait a minute and try again.")
		return
	}
	fp, err := s.o.Tokens.Check(name, token)
	var unsafe *auth.UnsafeTokenError
	switch {
	case errors.As(err, &unsafe):
		s.log.Warn("login refused: unsafe token file", "user", name, "remote", clientIP(r), "err", err)
		again(http.StatusUnauthorized, "Your token file can be read by others, so it proves nothing: run 'ferry login --rotate' and use the new URL.")
		return
	case err != nil:
		s.log.Info("login refused", "user", name, "remote", clientIP(r), "err", err)
		again(http.StatusUnauthorized, "Wrong user name or token. Run 'ferry login' on the cluster to see yours.")
		return
	}
	id := auth.Identity{User: name, Admin: s.isAdmin(name), Via: "token"}
	if _, err := s.o.Sessions.Create(r.Context(), w, id, fp); err != nil {
		s.log.Error("session", "err", err)
		again(http.StatusServiceUnavailable, "The job store is not answering: try again shortly.")
		return
	}
	s.log.Info("login", "user", name, "via", "token", "admin", id.Admin, "remote", clientIP(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) oidcBegin(w http.ResponseWriter, r *http.Request) {
	if s.o.OIDC == nil {
		s.fail(w, r, http.StatusNotFound, "single sign-on is not configured here: use 'ferry login'")
		return
	}
	s.o.OIDC.Begin(w, r, localPath(r.URL.Query().Get("next")))
}

func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if s.o.OIDC == nil {
		s.fail(w, r, http.StatusNotFound, "single sign-on is not configured here")
		return
	}
	if ok, _ := s.ipLimit.Allow("ip:" + clientIP(r)); !ok {
		s.fail(w, r, http.StatusTooManyRequests, "too many login attempts: wait a minute and try again")
		return
	}
	id, next, err := s.o.OIDC.Finish(w, r)
	if err != nil {
		s.log.Info("oidc login refused", "remote", clientIP(r), "err", err)
		s.fail(w, r, http.StatusUnauthorized, "single sign-on failed: "+err.Error())
		return
	}
	if s.isAdmin(id.User) {
		id.Admin = true
	}
	if _, err := s.o.Sessions.Create(r.Context(), w, id, ""); err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering: try again shortly")
		return
	}
	s.log.Info("login", "user", id.User, "via", "oidc", "admin", id.Admin, "remote", clientIP(r))
	http.Redirect(w, r, localPath(next), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, me *who) {
	if me.sess != nil {
		if !checkCSRF(r, me) {
			s.fail(w, r, http.StatusForbidden, "the form is stale: reload the page and try again")
			return
		}
		_ = s.o.Sessions.Revoke(r.Context(), me.sess)
	}
	s.o.Sessions.Clear(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
