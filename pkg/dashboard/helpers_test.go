package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/auth"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
	"github.com/ferry-hpc/ferry/pkg/store/storetest"
)

// env is a dashboard on a real Redis with three users: alice and bob are
// students, carol is an admin. Their homes and job dirs are temp dirs.
type env struct {
	t      *testing.T
	redis  *storetest.Server
	st     *store.Redis
	srv    *Server
	http   *httptest.Server
	homes  map[string]string
	tokens map[string]string
	cancel *fakeCancel
}

type fakeCancel struct {
	mu    sync.Mutex
	calls [][2]string
	err   error
}

func (f *fakeCancel) CancelOwned(_ context.Context, id, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, [2]string{id, user})
	return f.err
}

func (f *fakeCancel) Calls() [][2]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][2]string(nil), f.calls...)
}

var users = []string{"alice", "bob", "carol"}

func newEnv(t *testing.T, mod ...func(*Options)) *env {
	t.Helper()
	return newEnvUsers(t, users, []string{"carol"}, mod...)
}

// newEnvUsers is newEnv with other users (each with a home and a home
// token) and admins.
func newEnvUsers(t *testing.T, logins, admins []string, mod ...func(*Options)) *env {
	t.Helper()
	rs := storetest.Start(t)
	st := store.Open(store.Options{Addr: rs.Addr, Password: rs.Password, Prefix: "ferry:"})
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, redis: rs, st: st, homes: map[string]string{}, tokens: map[string]string{}, cancel: &fakeCancel{}}
	root := t.TempDir()
	for _, u := range logins {
		h := filepath.Join(root, u)
		require.NoError(t, os.MkdirAll(filepath.Join(h, ".ferry", "jobs"), 0o700))
		tok, err := auth.NewToken()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(h, auth.TokenFile), []byte(tok), 0o600))
		e.homes[u], e.tokens[u] = h, tok
	}
	tokens := &auth.Tokens{Lookup: func(name string) (auth.Account, error) {
		h, ok := e.homes[name]
		if !ok {
			return auth.Account{}, errors.New("no such user")
		}
		return auth.Account{Home: h, UID: os.Getuid()}, nil
	}}
	o := Options{
		Store: st, Sessions: &auth.Sessions{Store: st}, Tokens: tokens, Cancel: e.cancel,
		Admins: admins, Cluster: "test", LogPoll: 20 * time.Millisecond, Heartbeat: time.Second,
	}
	for _, m := range mod {
		m(&o)
	}
	srv, err := New(o)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Run(ctx)
	e.srv = srv
	e.http = httptest.NewServer(srv.Handler())
	t.Cleanup(func() { e.http.Close(); cancel() })
	return e
}

// jobDir makes a job dir for user with a log.
func (e *env) jobDir(user string, id job.ID, log string) string {
	d := filepath.Join(e.homes[user], ".ferry", "jobs", string(id))
	require.NoError(e.t, os.MkdirAll(filepath.Join(d, job.OutputsDir), 0o700))
	if log != "" {
		require.NoError(e.t, os.WriteFile(filepath.Join(d, job.LogFile), []byte(log), 0o600))
	}
	return d
}

// put writes jobs (and a state event each) to the store as the tracker would.
func (e *env) put(jobs ...store.Job) {
	e.t.Helper()
	b := &store.Batch{}
	for _, j := range jobs {
		if j.UID == 0 {
			j.UID = os.Getuid()
		}
		if j.Submitted.IsZero() {
			j.Submitted = time.Now().Add(-time.Minute)
		}
		b.Jobs = append(b.Jobs, store.JobChange{New: j})
		b.Events = append(b.Events, store.Event{Type: store.EventState, ID: j.ID, User: j.User, Project: j.Project, State: j.State, Reason: j.Reason})
	}
	_, err := e.st.Apply(context.Background(), b)
	require.NoError(e.t, err)
}

// change moves a job to a new state, with its event.
func (e *env) change(id job.ID, mut func(*store.Job)) {
	e.t.Helper()
	old, err := e.st.Job(context.Background(), id)
	require.NoError(e.t, err)
	n := *old
	mut(&n)
	_, err = e.st.Apply(context.Background(), &store.Batch{
		Jobs:   []store.JobChange{{Old: old, New: n}},
		Events: []store.Event{{Type: store.EventState, ID: id, User: n.User, Project: n.Project, State: n.State, Prev: old.State, Reason: n.Reason}},
	})
	require.NoError(e.t, err)
}

// client is a browser logged in as user ("" = anonymous).
func (e *env) client(user string) *http.Client {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if user == "" {
		return c
	}
	resp, err := c.PostForm(e.http.URL+"/login", url.Values{"user": {user}, "token": {e.tokens[user]}, "next": {"/jobs"}})
	require.NoError(e.t, err)
	resp.Body.Close()
	require.Equal(e.t, http.StatusSeeOther, resp.StatusCode, "login as %s", user)
	return c
}

// get fetches a path as a browser page (Accept: text/html).
func (e *env) get(c *http.Client, path string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.http.URL+path, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// csrf reads the session's form token from a page.
func (e *env) csrf(c *http.Client) string {
	e.t.Helper()
	_, body := e.get(c, "/jobs")
	i := strings.Index(body, `name="csrf" value="`)
	require.GreaterOrEqual(e.t, i, 0, "the page has a form token")
	rest := body[i+len(`name="csrf" value="`):]
	return rest[:strings.IndexByte(rest, '"')]
}

// post sends a same-origin form POST, as the page's own form does.
func (e *env) post(c *http.Client, path string, form url.Values, hdr map[string]string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.http.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.http.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(e.t, err)
	resp.Body.Close()
	return resp
}

// sse reads server-sent events from a stream.
type sseEvent struct{ Name, ID, Data string }

func readSSE(r io.Reader, out chan<- sseEvent) {
	defer close(out)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 || ev.Name != "" {
				ev.Data = strings.Join(data, "\n")
				out <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, "event: "):
			ev.Name = line[7:]
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:])
		}
	}
}

// stream opens an SSE stream; cancel the context to close it.
func (e *env) stream(ctx context.Context, c *http.Client, path string, hdr map[string]string) (int, <-chan sseEvent) {
	e.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(e.t, err)
	ch := make(chan sseEvent, 100)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		close(ch)
		return resp.StatusCode, ch
	}
	go func() { defer resp.Body.Close(); readSSE(resp.Body, ch) }()
	return resp.StatusCode, ch
}

// next waits for the next event of a stream whose name is in names.
func next(t *testing.T, ch <-chan sseEvent, names ...string) sseEvent {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream closed while waiting for %v", names)
			}
			for _, n := range names {
				if ev.Name == n {
					return ev
				}
			}
		case <-deadline:
			t.Fatalf("no %v event within 10s", names)
		}
	}
}

func decodeEvent(t *testing.T, ev sseEvent) store.Event {
	var e store.Event
	require.NoError(t, json.Unmarshal([]byte(ev.Data), &e))
	e.StreamID = ev.ID
	return e
}
