package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/auth"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
)

const (
	jobA  = job.ID("01jdaaaaaaaaaaaaaaaaaaaaaa") // alice's, running
	jobB  = job.ID("01jdbbbbbbbbbbbbbbbbbbbbbb") // bob's, queued
	sweep = job.ID("01jdsssssssssssssssssssss0") // alice's sweep
)

func task(i int) job.ID { return job.ID("01jdt000000000000000000" + string(rune('a'+i)) + "00") }

func exit(c int) *int { return &c }

// seed puts the fixture in the store: alice's running job with a hostile
// name, a log, an output, params and metrics; bob's queued job; alice's
// sweep of three tasks, one failed.
func (e *env) seed() {
	e.t.Helper()
	dirA := e.jobDir("alice", jobA, "line one\nline two\n")
	require.NoError(e.t, os.WriteFile(filepath.Join(dirA, job.OutputsDir, "result.txt"), []byte("42\n"), 0o600))
	dirB := e.jobDir("bob", jobB, "")
	now := time.Now()
	jobs := []store.Job{
		{ID: jobA, User: "alice", Project: "mnist", Name: `<script>alert(1)</script>`, SlurmID: "101", ArrayIndex: -1,
			State: job.Running, Node: "w1", Started: now.Add(-30 * time.Second), Dir: dirA,
			Params: json.RawMessage(`{"lr":0.1}`), Metrics: json.RawMessage(`{"loss":0.5}`)},
		{ID: jobB, User: "bob", Project: "bobs", Name: "bob-job", SlurmID: "102", ArrayIndex: -1,
			State: job.Queued, Reason: "waiting: other jobs have higher priority", Dir: dirB, Priority: 100},
	}
	for i, m := range []struct {
		lr   float64
		acc  string
		st   job.State
		tail string
	}{{0.1, "0.8", job.Succeeded, "done\n"}, {0.01, "0.9", job.Succeeded, "done\n"}, {1, "", job.Failed, "Traceback\nValueError: lr too large\n"}} {
		id := task(i)
		d := e.jobDir("alice", id, m.tail)
		j := store.Job{ID: id, User: "alice", Project: "mnist", SlurmID: "200_" + string(rune('0'+i)), ArrayIndex: i,
			Sweep: sweep, TaskIndex: i, State: m.st, Dir: d, Started: now.Add(-time.Minute), Ended: now,
			Params: json.RawMessage(`{"lr":` + strings.TrimRight(strings.TrimRight(jsonNum(m.lr), "0"), ".") + `,"epochs":3}`)}
		if m.acc != "" {
			j.Metrics = json.RawMessage(`{"acc":` + m.acc + `}`)
		}
		if m.st == job.Failed {
			j.ExitCode = exit(1)
		}
		jobs = append(jobs, j)
	}
	e.put(jobs...)
}

func jsonNum(f float64) string { b, _ := json.Marshal(f); return string(b) + ".0" }

// TestAccess asks every page and API route as the owner, another user, an
// admin and an anonymous caller.
func TestAccess(t *testing.T) {
	e := newEnv(t)
	e.seed()
	clients := map[string]*http.Client{"owner": e.client("alice"), "other": e.client("bob"), "admin": e.client("carol"), "anon": e.client("")}
	A, S := string(jobA), string(sweep)
	type want struct{ owner, other, admin, anon int }
	page := func(owner, other, admin int) want { return want{owner, other, admin, http.StatusSeeOther} }
	data := func(owner, other, admin int) want { return want{owner, other, admin, http.StatusUnauthorized} }
	const ok, nf, fb = http.StatusOK, http.StatusNotFound, http.StatusForbidden
	routes := []struct {
		path   string
		html   bool // asked as a browser page
		stream bool
		want   want
	}{
		{"/jobs", true, false, page(ok, ok, ok)},
		{"/jobs/" + A, true, false, page(ok, nf, ok)},
		{"/jobs/" + A + "/row", false, false, data(ok, nf, ok)},
		{"/jobs/" + A + "/summary", false, false, data(ok, nf, ok)},
		{"/jobs/" + A + "/log", false, false, data(ok, nf, ok)},
		{"/jobs/" + A + "/log/stream", false, true, data(ok, nf, ok)},
		{"/jobs/" + A + "/outputs/result.txt", false, false, data(ok, nf, ok)},
		{"/sweeps/" + S, true, false, page(ok, nf, ok)},
		{"/sweeps/" + S + "/table", false, false, data(ok, nf, ok)},
		{"/projects/mnist", true, false, page(ok, nf, ok)},
		{"/projects/mnist/table", false, false, data(ok, nf, ok)},
		{"/nodes", true, false, page(ok, ok, ok)},
		{"/course", true, false, page(fb, fb, ok)},
		{"/events", false, true, data(ok, ok, ok)},
		{"/events?job=" + A, false, true, data(ok, nf, ok)},
		{"/api/v1/me", false, false, data(ok, ok, ok)},
		{"/api/v1/jobs", false, false, data(ok, ok, ok)},
		{"/api/v1/jobs/" + A, false, false, data(ok, nf, ok)},
		{"/api/v1/jobs/" + A + "/events", false, false, data(ok, nf, ok)},
		{"/api/v1/jobs/" + A + "/metrics", false, false, data(ok, nf, ok)},
		{"/api/v1/jobs/" + A + "/outputs", false, false, data(ok, nf, ok)},
		{"/api/v1/jobs/" + A + "/log", false, false, data(ok, nf, ok)},
		{"/api/v1/sweeps/" + S, false, false, data(ok, nf, ok)},
		{"/api/v1/nodes", false, false, data(ok, ok, ok)},
		{"/api/v1/course", false, false, data(fb, fb, ok)},
		{"/api/v1/events", false, true, data(ok, ok, ok)},
	}
	for _, rt := range routes {
		for _, who := range []string{"owner", "other", "admin", "anon"} {
			want := map[string]int{"owner": rt.want.owner, "other": rt.want.other, "admin": rt.want.admin, "anon": rt.want.anon}[who]
			t.Run(who+" "+rt.path, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+rt.path, nil)
				if rt.html {
					req.Header.Set("Accept", "text/html")
				}
				resp, err := clients[who].Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				assert.Equal(t, want, resp.StatusCode)
				if resp.StatusCode == http.StatusSeeOther {
					assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/login?next="), "sent to the login page")
				}
				if rt.stream || resp.StatusCode != http.StatusOK {
					if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusSeeOther {
						body, _ := io.ReadAll(resp.Body)
						assert.NotContains(t, string(body), "line one", "no data in a refusal")
						assert.NotContains(t, string(body), "alert", "no data in a refusal")
					}
					return
				}
				body, _ := io.ReadAll(resp.Body)
				if who == "other" {
					assert.NotContains(t, string(body), string(jobA), "bob never sees alice's job id")
					assert.NotContains(t, string(body), "mnist", "bob never sees alice's project")
				}
			})
		}
	}
}

func TestListsShowOwnJobsOnly(t *testing.T) {
	e := newEnv(t)
	e.seed()
	_, body := e.get(e.client("bob"), "/jobs")
	assert.Contains(t, body, string(jobB))
	assert.NotContains(t, body, string(jobA))
	_, body = e.get(e.client("bob"), "/jobs?user=alice")
	assert.NotContains(t, body, string(jobA), "a student cannot ask for another user's list")
	_, body = e.get(e.client("carol"), "/jobs")
	assert.Contains(t, body, string(jobA))
	assert.Contains(t, body, string(jobB))
	_, body = e.get(e.client("carol"), "/jobs?user=bob")
	assert.NotContains(t, body, string(jobA))
	assert.Contains(t, body, string(jobB))

	var out struct {
		Jobs  []apiJob `json:"jobs"`
		Total int64    `json:"total"`
	}
	// An admin's active filters read the active set, not the whole index.
	for state, want := range map[string][]job.ID{"queued": {jobB}, "running": {jobA}, "active": {jobB, jobA}} {
		var page struct {
			Jobs []apiJob `json:"jobs"`
		}
		_, raw := e.get(e.client("carol"), "/api/v1/jobs?state="+state)
		require.NoError(t, json.Unmarshal([]byte(raw), &page))
		var got []job.ID
		for _, j := range page.Jobs {
			got = append(got, j.ID)
		}
		assert.ElementsMatch(t, want, got, state)
	}

	code, raw := e.get(e.client("alice"), "/api/v1/jobs?state=failed")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal([]byte(raw), &out))
	require.Len(t, out.Jobs, 1, "the state filter keeps alice's one failed task")
	assert.Equal(t, task(2), out.Jobs[0].ID)
}

func TestQueuedJobSaysWhy(t *testing.T) {
	e := newEnv(t)
	e.seed()
	_, body := e.get(e.client("bob"), "/jobs/"+string(jobB))
	assert.Contains(t, body, "other jobs have higher priority")
	assert.Contains(t, body, "number 1 of 1 in the queue")
	var j apiJob
	_, raw := e.get(e.client("bob"), "/api/v1/jobs/"+string(jobB))
	require.NoError(t, json.Unmarshal([]byte(raw), &j))
	assert.Equal(t, int64(1), j.Position)
	assert.Equal(t, int64(1), j.InQueue)
}

func TestHostileNameIsText(t *testing.T) {
	e := newEnv(t)
	e.seed()
	for _, path := range []string{"/jobs", "/jobs/" + string(jobA)} {
		_, body := e.get(e.client("alice"), path)
		assert.NotContains(t, body, "<script>alert(1)</script>", path)
		assert.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;", path)
	}
}

func TestCrossSitePostRefused(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.client("alice")
	token := e.csrf(c)
	path := "/jobs/" + string(jobA) + "/cancel"

	resp := e.post(c, path, url.Values{"csrf": {token}}, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a cross-site POST is refused")
	resp = e.post(c, path, url.Values{"csrf": {"wrong"}}, nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a POST without the form token is refused")
	assert.Empty(t, e.cancel.Calls(), "nothing was cancelled")

	bob := e.client("bob")
	resp = e.post(bob, path, url.Values{"csrf": {e.csrf(bob)}}, nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "bob cannot cancel alice's job")
	assert.Empty(t, e.cancel.Calls())

	resp = e.post(c, path, url.Values{"csrf": {token}}, nil)
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, [][2]string{{"101", "alice"}}, e.cancel.Calls(), "scancel --user=alice 101")
	_, err := os.Stat(filepath.Join(e.homes["alice"], ".ferry", "jobs", string(jobA), job.CancelFile))
	assert.NoError(t, err, "the desired state is recorded in the job dir")

	resp = e.post(c, "/jobs/"+string(task(0))+"/cancel", url.Values{"csrf": {token}}, map[string]string{"Accept": "text/html"})
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "an ended job is not cancelled")
}

func TestOutputPaths(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.client("alice")
	dir := filepath.Join(e.homes["alice"], ".ferry", "jobs", string(jobA))
	secret := filepath.Join(e.homes["bob"], "secret.txt")
	require.NoError(t, os.WriteFile(secret, []byte("bob's secret"), 0o600))
	require.NoError(t, os.Symlink(secret, filepath.Join(dir, job.OutputsDir, "link.txt")))
	require.NoError(t, os.Symlink("..", filepath.Join(dir, job.OutputsDir, "up")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "spec.json"), []byte(`{"id":"x"}`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, job.OutputsDir, "page.html"), []byte("<script>x</script>"), 0o600))

	code, body := e.get(c, "/jobs/"+string(jobA)+"/outputs/result.txt")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "42\n", body)
	follow := &http.Client{Jar: c.Jar} // the mux answers a path with ".." by a redirect to its clean form: follow it
	for _, p := range []string{"../spec.json", "..%2Fspec.json", "%2e%2e/spec.json", "link.txt", "up/spec.json", "up/outputs/result.txt", "/etc/passwd", "a/../../spec.json"} {
		code, body := e.get(follow, "/jobs/"+string(jobA)+"/outputs/"+p)
		assert.Contains(t, []int{http.StatusBadRequest, http.StatusNotFound}, code, p)
		assert.NotContains(t, body, "bob's secret", p)
		assert.NotContains(t, body, `"id":"x"`, p)
	}
	req, _ := http.NewRequest("GET", e.http.URL+"/jobs/"+string(jobA)+"/outputs/page.html", nil)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Contains(t, resp.Header.Get("Content-Disposition"), "attachment", "HTML a job wrote is downloaded, not rendered")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "sandbox")

	_, page := e.get(c, "/jobs/"+string(jobA))
	assert.Contains(t, page, "result.txt")
	assert.NotContains(t, page, "link.txt", "links are not listed")
}

func TestLogin(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LoginBurst = 3; o.LoginEvery = time.Hour })
	c := e.client("")
	resp, err := c.PostForm(e.http.URL+"/login", url.Values{"user": {"alice"}, "token": {"nope"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	u, _ := url.Parse(e.http.URL)
	assert.Empty(t, c.Jar.Cookies(u), "no session for a wrong token")

	resp, err = c.PostForm(e.http.URL+"/login", url.Values{"user": {"alice"}, "token": {e.tokens["alice"]}, "next": {"//evil.example/x"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/jobs", resp.Header.Get("Location"), "no open redirect after login")
	code, _ := e.get(c, "/jobs")
	assert.Equal(t, http.StatusOK, code)

	// The burst is 3 per user name: the 4th attempt is refused, even with
	// the right token; another user is not held back by it.
	for i := 0; i < 3; i++ {
		resp, err = e.client("").PostForm(e.http.URL+"/login", url.Values{"user": {"bob"}, "token": {"guess"}})
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	resp, err = e.client("").PostForm(e.http.URL+"/login", url.Values{"user": {"bob"}, "token": {e.tokens["bob"]}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "60", resp.Header.Get("Retry-After"))
	resp, err = e.client("").PostForm(e.http.URL+"/login", url.Values{"user": {"carol"}, "token": {e.tokens["carol"]}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
}

func TestRotatedTokenEndsSessions(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.client("alice")
	code, _ := e.get(c, "/jobs")
	require.Equal(t, http.StatusOK, code)
	tok, _ := auth.NewToken()
	require.NoError(t, os.WriteFile(filepath.Join(e.homes["alice"], auth.TokenFile), []byte(tok), 0o600))
	e.srv.fpMu.Lock()
	clear(e.srv.fpCheck) // as a minute passing would
	e.srv.fpMu.Unlock()
	code, _ = e.get(c, "/jobs")
	assert.Equal(t, http.StatusSeeOther, code, "the old session is gone after ferry login --rotate")
}

func TestLogoutNeedsFormToken(t *testing.T) {
	e := newEnv(t)
	c := e.client("alice")
	resp := e.post(c, "/logout", url.Values{"csrf": {"x"}}, nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp = e.post(c, "/logout", url.Values{"csrf": {e.csrf(c)}}, nil)
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	code, _ := e.get(c, "/jobs")
	assert.Equal(t, http.StatusSeeOther, code, "logged out")
}

func TestAPIBearerToken(t *testing.T) {
	e := newEnv(t)
	e.seed()
	do := func(cred string) (int, string) {
		req, _ := http.NewRequest("GET", e.http.URL+"/api/v1/jobs/"+string(jobA), nil)
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("alice:" + e.tokens["alice"])
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"state": "running"`)
	code, _ = do("bob:" + e.tokens["bob"])
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = do("alice:" + e.tokens["bob"])
	assert.Equal(t, http.StatusUnauthorized, code)
}

func TestHostAllowlist(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Hosts = []string{"127.0.0.1", "dash.example"} })
	req, _ := http.NewRequest("GET", e.http.URL+"/login", nil)
	req.Host = "rebound.example"
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	resp, err = http.Get(e.http.URL + "/login")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestSweepPage(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.client("alice")
	code, body := e.get(c, "/sweeps/"+string(sweep))
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "Best run by acc")
	assert.Contains(t, body, `class="param"`, "lr varies: a column")
	assert.Contains(t, body, "epochs = 3", "epochs does not vary: shown once, not as a column")
	assert.Contains(t, body, "ValueError: lr too large", "the failure is grouped by its last log line")
	// Sorted by acc, best (highest) first: task 1 (0.9) before task 0 (0.8).
	assert.Less(t, strings.Index(body, `data-id="`+string(task(1))+`"`), strings.Index(body, `data-id="`+string(task(0))+`"`))
	_, body = e.get(c, "/sweeps/"+string(sweep)+"/table?sort=metric:acc")
	assert.Less(t, strings.Index(body, `data-id="`+string(task(0))+`"`), strings.Index(body, `data-id="`+string(task(1))+`"`), "ascending on request")
	// A project's page is the same table over its jobs.
	code, body = e.get(c, "/projects/mnist")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "Project mnist")
	assert.Contains(t, body, `data-table="/projects/mnist/table"`)
	assert.Contains(t, body, `data-id="`+string(jobA)+`"`, "the project's plain job is a row too")
	_, body = e.get(c, "/sweeps/"+string(sweep)+"?all=1")
	assert.Contains(t, body, `param%3Aepochs`, "all params as columns on request")
}

// One client address gets six times a user's budget: guessing many users'
// tokens from one address is held back too.
func TestLoginLimitPerAddress(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LoginBurst = 1; o.LoginEvery = time.Hour })
	codes := []int{}
	for i := 0; i < 7; i++ {
		resp, err := e.client("").PostForm(e.http.URL+"/login", url.Values{"user": {fmt.Sprintf("user%d", i)}, "token": {"guess"}})
		require.NoError(t, err)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	assert.Equal(t, []int{401, 401, 401, 401, 401, 401, 429}, codes)
}

// A job that ran in an environment says, in its reproduce box, what it
// asked for and the environment and image it ran in.
func TestReproduceNamesTheEnvironment(t *testing.T) {
	e := newEnv(t)
	id := job.ID("01jdeeeeeeeeeeeeeeeeeeeeee")
	dir := e.jobDir("alice", id, "done\n")
	spec := map[string]any{"id": id, "project": "sci", "command": []string{"python3", "main.py"}, "image": "ferry/sandbox:latest",
		"source": "/home/alice/sci", "bundle": map[string]any{"hash": "ab12"},
		"environment": map[string]any{"pip": []string{"pandas", "scipy>=1.10"}, "apt": []string{"python3-six", "jq"}}}
	key := strings.Repeat("3f2a", 16)
	res := map[string]any{"image": "ferry/env:" + key, "image_digest": "sha256:" + strings.Repeat("9", 64), "environment": key}
	for name, v := range map[string]any{job.SpecFile: spec, job.ResultFile: res} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	e.put(store.Job{ID: id, User: "alice", Project: "sci", SlurmID: "300", ArrayIndex: -1, State: job.Succeeded,
		Dir: dir, Started: time.Now().Add(-time.Minute), Ended: time.Now(), ExitCode: exit(0)})

	_, body := e.get(e.client("alice"), "/jobs/"+string(id))
	assert.Contains(t, body, "<th>environment</th><td>pip: 2 packages, apt: 2 packages · <span class=\"mono\">"+key+"</span>")
	assert.Contains(t, body, "<th>requirements.txt</th><td><pre class=\"mono\">pandas\nscipy&gt;=1.10\n</pre>")
	assert.Contains(t, body, "<th>apt</th><td class=\"mono\">python3-six jq</td>")
	assert.Contains(t, body, "sha256:"+strings.Repeat("9", 64))

	// A job with no environment has no such rows.
	e.seed()
	_, body = e.get(e.client("alice"), "/jobs/"+string(jobA))
	assert.NotContains(t, body, "<th>environment</th>")
}
