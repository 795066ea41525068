package dashboard

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/user"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferry-hpc/ferry/pkg/auth"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Reader is what the dashboard reads from the job store.
type Reader interface {
	EventSource
	Job(ctx context.Context, id job.ID) (*store.Job, error)
	Jobs(ctx context.Context, p store.Page) ([]*store.Job, int64, error)
	JobEvents(ctx context.Context, id job.ID) ([]store.Event, error)
	SweepTasks(ctx context.Context, id job.ID, offset, limit int64) ([]*store.Job, int64, error)
	QueuePosition(ctx context.Context, id job.ID) (int64, int64, error)
	Events(ctx context.Context, after string, count int64) ([]store.Event, error)
	MetricHistory(ctx context.Context, id job.ID, start, stop int64) ([]json.RawMessage, error)
	Nodes(ctx context.Context) (map[string]store.Node, error)
	Meta(ctx context.Context) (map[string]string, error)
	ActiveJobs(ctx context.Context, limit int64) ([]*store.Job, error)
	UserCounts(ctx context.Context) (map[string]int64, error)
}

// Canceller cancels a job on its owner's behalf.
type Canceller interface {
	CancelOwned(ctx context.Context, slurmID, user string) error
}

// Options configure a Server.
type Options struct {
	Store    Reader
	Sessions *auth.Sessions
	Tokens   *auth.Tokens
	OIDC     *auth.OIDC // nil: home tokens only
	// OIDCName is the provider's name on the login page.
	OIDCName string
	Cancel   Canceller
	// Admins are Unix users who see every job; AdminGroup's members too.
	Admins     []string
	AdminGroup string
	// Hosts are the Host header values accepted (DNS rebinding); empty:
	// any. The listen address and public URL's host belong here.
	Hosts []string
	// Cluster is shown in the page title.
	Cluster string
	Log     *slog.Logger
	// LoginEvery and LoginBurst rate-limit logins per user name:
	// LoginBurst at once, then one per LoginEvery. A client address gets
	// six times as many (a class behind one NAT logs in at once).
	LoginEvery time.Duration
	LoginBurst int
	// LogPoll is how often a log stream looks for new bytes (default 300 ms).
	LogPoll time.Duration
	// Heartbeat is how often an idle event stream sends a comment (15 s).
	Heartbeat time.Duration
}

// Server is the dashboard.
type Server struct {
	o       Options
	hub     *Hub
	tmpl    *template.Template
	mux     *http.ServeMux
	ipLimit *auth.Limiter
	usLimit *auth.Limiter
	log     *slog.Logger

	fpMu    sync.Mutex
	fpCheck map[string]time.Time // session key → when its token file was last checked
	bearer  sync.Map             // hash of an API bearer token → bearerEntry
}

// New builds a Server. Call Run to start its hub.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Sessions == nil {
		return nil, errors.New("dashboard: a store and sessions are needed")
	}
	if o.Tokens == nil {
		o.Tokens = &auth.Tokens{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.LoginEvery <= 0 {
		o.LoginEvery = 6 * time.Second
	}
	if o.LoginBurst <= 0 {
		o.LoginBurst = 10
	}
	if o.LogPoll <= 0 {
		o.LogPoll = 300 * time.Millisecond
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 15 * time.Second
	}
	if o.Cluster == "" {
		o.Cluster = "ferry"
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard templates: %w", err)
	}
	s := &Server{
		o: o, hub: NewHub(o.Store, o.Log), tmpl: t, log: o.Log,
		ipLimit: auth.NewLimiter(o.LoginEvery/6, 6*o.LoginBurst),
		usLimit: auth.NewLimiter(o.LoginEvery, o.LoginBurst),
		fpCheck: map[string]time.Time{},
	}
	s.routes()
	return s, nil
}

// Hub returns the server's event hub.
func (s *Server) Hub() *Hub { return s.hub }

// Run runs the event hub until ctx ends.
func (s *Server) Run(ctx context.Context) { s.hub.Run(ctx) }

// Handler is the dashboard's HTTP handler.
func (s *Server) Handler() http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusForbidden, "cross-site request refused: use the dashboard's own page")
	}))
	return s.headers(s.hosts(cop.Handler(s.mux)))
}

// headers sets the security headers every response carries.
func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// hosts refuses a Host header off the allowlist (DNS rebinding).
func (s *Server) hosts(next http.Handler) http.Handler {
	if len(s.o.Hosts) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(strings.ToLower(host), "[]")
		for _, ok := range s.o.Hosts {
			if host == ok {
				next.ServeHTTP(w, r)
				return
			}
		}
		http.Error(w, "unknown host "+r.Host+": add it to dashboard.hosts", http.StatusMisdirectedRequest)
	})
}

// who is the identity behind a request, if any.
type who struct {
	auth.Identity
	sess *auth.Session // nil for API bearer tokens
}

type ctxKey struct{}

// identify finds the request's identity: the session cookie, or an API
// bearer token ("user:token", the home token).
func (s *Server) identify(r *http.Request) (*who, error) {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return s.bearerIdentity(r, strings.TrimPrefix(h, "Bearer "))
	}
	sess, err := s.o.Sessions.Lookup(r.Context(), r)
	if err != nil || sess == nil {
		return nil, err
	}
	if sess.Via == "token" && !s.tokenStillValid(r.Context(), sess) {
		return nil, nil
	}
	return &who{Identity: sess.Identity, sess: sess}, nil
}

// tokenStillValid re-reads a home-token session's token file at most once
// a minute: a rotated token (ferry login --rotate) revokes the sessions
// made with the old one.
func (s *Server) tokenStillValid(ctx context.Context, sess *auth.Session) bool {
	s.fpMu.Lock()
	last, ok := s.fpCheck[sess.Key()]
	s.fpMu.Unlock()
	if ok && time.Since(last) < time.Minute {
		return true
	}
	fp, err := s.o.Tokens.Fingerprint(sess.User)
	if err != nil || subtle.ConstantTimeCompare([]byte(fp), []byte(sess.TokenFP)) != 1 {
		_ = s.o.Sessions.Revoke(ctx, sess)
		s.fpMu.Lock()
		delete(s.fpCheck, sess.Key())
		s.fpMu.Unlock()
		return false
	}
	s.fpMu.Lock()
	if len(s.fpCheck) > 100000 {
		clear(s.fpCheck)
	}
	s.fpCheck[sess.Key()] = time.Now()
	s.fpMu.Unlock()
	return true
}

type bearerEntry struct {
	id    auth.Identity
	until time.Time
}

func (s *Server) bearerIdentity(r *http.Request, cred string) (*who, error) {
	name, token, ok := strings.Cut(cred, ":")
	if !ok || !auth.ValidUser(name) {
		return nil, nil
	}
	key := sha256Hex(cred)
	if v, ok := s.bearer.Load(key); ok {
		if e := v.(bearerEntry); time.Now().Before(e.until) {
			return &who{Identity: e.id}, nil
		}
		s.bearer.Delete(key)
	}
	if !s.allowLogin(r, name) {
		return nil, nil
	}
	if _, err := s.o.Tokens.Check(name, token); err != nil {
		s.log.Info("api token refused", "user", name, "remote", clientIP(r), "err", err)
		return nil, nil
	}
	id := auth.Identity{User: name, Admin: s.isAdmin(name), Via: "token"}
	s.bearer.Store(key, bearerEntry{id: id, until: time.Now().Add(time.Minute)})
	return &who{Identity: id}, nil
}

// isAdmin reports whether a Unix user is one of the dashboard's admins.
func (s *Server) isAdmin(name string) bool {
	if slices.Contains(s.o.Admins, name) {
		return true
	}
	if s.o.AdminGroup == "" {
		return false
	}
	u, err := user.Lookup(name)
	if err != nil {
		return false
	}
	g, err := user.LookupGroup(s.o.AdminGroup)
	if err != nil {
		return false
	}
	ids, err := u.GroupIds()
	return err == nil && slices.Contains(ids, g.Gid)
}

// allowLogin takes a login attempt from the client's and the user's budget.
func (s *Server) allowLogin(r *http.Request, name string) bool {
	ok1, _ := s.ipLimit.Allow("ip:" + clientIP(r))
	ok2, _ := s.usLimit.Allow("user:" + name)
	return ok1 && ok2
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// page wraps a handler that needs a logged-in user: anonymous requests are
// sent to the login page (HTML) or get 401 (API, fragments, streams).
func (s *Server) page(h func(http.ResponseWriter, *http.Request, *who)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		me, err := s.identify(r)
		if err != nil {
			s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering: try again shortly")
			return
		}
		if me == nil {
			if wantsHTML(r) {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
			s.fail(w, r, http.StatusUnauthorized, "log in first: run 'ferry login' and open the URL it prints")
			return
		}
		h(w, r, me)
	})
}

// wantsHTML reports whether the request is a page a browser navigates to
// (not the API, a fragment or an event stream).
func wantsHTML(r *http.Request) bool {
	if strings.HasPrefix(r.URL.Path, "/api/") || r.Header.Get("X-Ferry-Fragment") != "" {
		return false
	}
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// checkCSRF checks the form's token against the session's (forms carry
// it besides the Origin check; API bearer calls carry no cookie to abuse).
func checkCSRF(r *http.Request, me *who) bool {
	if me.sess == nil {
		return true
	}
	got := r.Header.Get("X-Ferry-CSRF")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(me.sess.CSRF)) == 1
}

// canSee reports whether me may see j: its owner or an admin.
func canSee(me *who, j *store.Job) bool {
	return me.Admin || (j.User != "" && j.User == me.User)
}

// fail writes an error: JSON for the API, a page otherwise.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/api/") || !strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = s.tmpl.ExecuteTemplate(w, "error.html", map[string]any{"Code": code, "Status": http.StatusText(code), "Message": msg, "Cluster": s.o.Cluster})
}

// loadJob reads a job the caller may see. A job that is not theirs is
// "not found", as a missing one is: the answer says nothing of others' ids.
func (s *Server) loadJob(w http.ResponseWriter, r *http.Request, me *who) *store.Job {
	return s.loadJobID(w, r, me, job.ID(r.PathValue("id")))
}

// loadJobID is loadJob for an id that is not in the path.
func (s *Server) loadJobID(w http.ResponseWriter, r *http.Request, me *who, id job.ID) *store.Job {
	if !validID(id) {
		s.fail(w, r, http.StatusNotFound, "no such job")
		return nil
	}
	j, err := s.o.Store.Job(r.Context(), id)
	if errors.Is(err, job.ErrNotFound) || (err == nil && !canSee(me, j)) {
		s.fail(w, r, http.StatusNotFound, "no such job (or not one of yours)")
		return nil
	}
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering: try again shortly")
		return nil
	}
	return j
}

func validID(id job.ID) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// render executes a page template.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, me *who, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["Me"] = me
	data["Cluster"] = s.o.Cluster
	if me != nil && me.sess != nil {
		data["CSRF"] = me.sess.CSRF
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.tmpl.ExecuteTemplate(w, name, data); err != nil {
		s.log.Error("render", "template", name, "err", err)
	}
}

// staticHandler serves the embedded assets.
func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	fsrv := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}
