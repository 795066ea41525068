package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
	submitpkg "github.com/ferry-hpc/ferry/pkg/submit"
)

// dashURL is where tests/cluster.sh serves `ferryd dashboard`.
const dashURL = "http://127.0.0.1:8790"

// artifactDir is where the browser test keeps its screenshots
// ($FERRY_ARTIFACTS/dashboard, default /tmp/ferry-artifacts/dashboard).
func artifactDir(t testing.TB) string {
	root := os.Getenv("FERRY_ARTIFACTS")
	if root == "" {
		root = "/tmp/ferry-artifacts"
	}
	d := filepath.Join(root, "dashboard")
	require.NoError(t, os.MkdirAll(d, 0o755))
	return d
}

// browser starts Debian's headless Chromium, driven over the DevTools
// protocol; the context ends it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (apt-get install chromium): tests/run.sh installs it")
		}
		t.Skip("chromium is not installed")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// screenshot keeps a full-page screenshot as a test artifact.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
	require.NoError(t, err)
	p := filepath.Join(artifactDir(t), name+".png")
	require.NoError(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", p, len(png))
}

// loginLink is the link `ferry login` prints for u.
func loginLink(t *testing.T, u tuser) string {
	t.Helper()
	r := ferry(t, u, u.Home, "login", "-o", "json")
	require.Equal(t, 0, r.Code, r.String())
	var out struct {
		URL string `json:"url"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Out), &out), r.String())
	require.True(t, strings.HasPrefix(out.URL, dashURL+"/login#"), out.URL)
	return out.URL
}

// do runs browser actions, each batch bounded: a page that never loads
// fails the test instead of hanging it.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		// Keep what the page showed: the screenshot and its HTML.
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		if html, herr := chromedp.Run(dctx, chromedp.Evaluate[string](`location.href + "\n" + document.documentElement.outerHTML`)); herr == nil {
			_ = os.WriteFile(filepath.Join(artifactDir(t), "failed.html"), []byte(html), 0o644)
			t.Logf("the page when %s failed: %s/failed.html", what, artifactDir(t))
		}
		require.NoError(t, err, what)
	}
}

// eval runs JS in the page and decodes its value.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	require.NoError(t, err, js)
	return v
}

// waitJS polls a JS condition until it is true.
func waitJS(t *testing.T, ctx context.Context, js string, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ok, err := chromedp.Run(ectx, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDashboardInBrowser drives the real dashboard (over the real tracker,
// Redis and Slurm) in headless Chromium as a student would: log in with the
// home token, watch a job go queued → running → succeeded on the jobs page
// without reloading, watch a log grow, sort a sweep by a metric, cancel a
// running job from its page. A TA sees the course view.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	a, b := lookup(t, alice), lookup(t, bob)

	do(t, ctx, "browser", chromedp.Navigate(dashURL+"/jobs"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	screenshot(t, ctx, "01-login")

	// The link logs in: its #fragment fills the form, which submits itself.
	do(t, ctx, "browser", chromedp.Navigate(loginLink(t, a)), chromedp.WaitVisible(chromedp.CSS("#jobs")))
	assert.Equal(t, alice, eval[string](t, ctx, `document.querySelector("#me").textContent`))
	assert.NotContains(t, eval[string](t, ctx, `location.href`), "token", "the token leaves the address bar")

	// Record every state each row of the jobs table shows, and mark the
	// page: a reload would lose the mark.
	eval[bool](t, ctx, `(() => {
		window.__seen = {}; window.__mark = "kept";
		const rec = () => document.querySelectorAll("#jobs tbody tr[data-id]").forEach(r => {
			const s = (window.__seen[r.dataset.id] = window.__seen[r.dataset.id] || []);
			if (s[s.length - 1] !== r.dataset.state) s.push(r.dataset.state);
		});
		rec();
		new MutationObserver(rec).observe(document.querySelector("#jobs tbody"), {childList: true, subtree: true, attributes: true});
		return true;
	})()`)

	// Bob's two jobs hold both workers, so alice's waits in the queue first.
	bdir, bproj := project(t, b, "block")
	var blockers []string
	for i := 0; i < 2; i++ {
		s := submit(t, b, bdir, bproj, "--", "sleep", "8")
		blockers = append(blockers, s.ID)
	}
	for _, id := range blockers {
		waitState(t, b, id, 90*time.Second, func(st job.Status) bool { return st.State == job.Running || st.State.Terminal() })
	}
	adir, aproj := project(t, a, "ticks")
	ticks := submit(t, a, adir, aproj, "--", "sh", "-c", "for i in $(seq 1 12); do echo tick $i; sleep 1; done")

	waitJS(t, ctx, fmt.Sprintf(`!!document.querySelector('#job-%s')`, ticks.ID), time.Minute, "the new job's row appears without a reload")
	screenshot(t, ctx, "02-jobs-queued")
	assert.Contains(t, eval[string](t, ctx, fmt.Sprintf(`document.querySelector('#job-%s').textContent`, ticks.ID)), "waiting",
		"a queued job says why it waits")

	// A second tab follows the job's page and its log.
	tab, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()
	require.NoError(t, chromedp.Do(tab), "open a second tab") // its first run: no timeout, or the tab ends with it
	waitState(t, a, ticks.ID, 90*time.Second, func(st job.Status) bool { return st.State == job.Running || st.State.Terminal() })
	// ferry status reads Slurm itself; the dashboard reads what the tracker
	// wrote, up to a tick later.
	st := jobStore(t)
	waitStore(t, st, ticks.ID, 30*time.Second, func(j *store.Job) bool { return j.State != job.Queued })
	do(t, tab, "browser", chromedp.Navigate(dashURL+"/jobs/"+ticks.ID), chromedp.WaitVisible(chromedp.CSS("#log")))
	eval[bool](t, tab, `(window.__mark = "kept", true)`)
	waitJS(t, tab, `document.querySelector("#log").textContent.includes("tick 2")`, time.Minute, "the log shows its first lines")
	first := eval[string](t, tab, `document.querySelector("#log").textContent`)
	waitJS(t, tab, `document.querySelector("#log").textContent.includes("tick 9")`, time.Minute, "the log grows live")
	later := eval[string](t, tab, `document.querySelector("#log").textContent`)
	assert.Greater(t, len(later), len(first), "the log grew")
	assert.True(t, strings.HasPrefix(later, first), "lines are appended, never re-sent")
	assert.Equal(t, 1, strings.Count(later, "tick 2\n"), "no line twice")
	screenshot(t, tab, "03-job-log")

	// Back on the jobs page: queued → running → succeeded, without reloading.
	waitJS(t, ctx, fmt.Sprintf(`(window.__seen["%s"] || []).includes("succeeded")`, ticks.ID), 2*time.Minute, "the row reaches succeeded live")
	seen := eval[[]string](t, ctx, fmt.Sprintf(`window.__seen["%s"]`, ticks.ID))
	t.Logf("states the row showed: %v", seen)
	require.NotEmpty(t, seen)
	assert.Equal(t, "queued", seen[0])
	assert.Contains(t, seen, "running")
	assert.Equal(t, "succeeded", seen[len(seen)-1])
	assert.Equal(t, "kept", eval[string](t, ctx, `window.__mark`), "the page was never reloaded")
	screenshot(t, ctx, "04-jobs-succeeded")
	waitJS(t, tab, `document.querySelector("#log-status").textContent.includes("whole log")`, time.Minute, "the log stream ends with the job")
	assert.Contains(t, eval[string](t, tab, `document.querySelector("#log").textContent`), "tick 12")
	assert.Equal(t, "kept", eval[string](t, tab, `window.__mark`))
	waitJS(t, tab, `document.querySelector("#summary .summary").dataset.state === "succeeded"`, time.Minute, "the job page shows the end live")
	screenshot(t, tab, "05-job-succeeded")
	cancelTab() // its event stream counts against the browser's six connections to the host

	// A sweep of four tasks, sorted by its metric from the column header.
	sdir, sproj := project(t, a, "sweepy")
	spec := filepath.Join(sdir, "sweep.yaml")
	require.NoError(t, os.WriteFile(spec, []byte("params:\n  n: [40, 10, 30, 20]\n"), 0o644))
	chownTree(t, sdir, a)
	r := ferry(t, a, sdir, "sweep", "-o", "json", "--spec", spec, sproj)
	require.Equal(t, 0, r.Code, r.String())
	var sw submitpkg.Sweep
	require.NoError(t, json.Unmarshal([]byte(r.Out), &sw), r.String())
	for _, task := range sw.Tasks {
		waitState(t, a, string(task.ID), 3*time.Minute, func(st job.Status) bool { return st.State.Terminal() })
	}
	do(t, ctx, "browser", chromedp.Navigate(dashURL+"/sweeps/"+string(sw.ID)), chromedp.WaitVisible(chromedp.CSS("#tasks")))
	metric := func() []float64 {
		return eval[[]float64](t, ctx, `[...document.querySelectorAll('#tasks tbody td[data-metric="sum_of_squares"]')].map(td => parseFloat(td.textContent))`)
	}
	waitJS(t, ctx, `document.querySelectorAll('#tasks tbody td[data-metric="sum_of_squares"]').length === 4 &&
		[...document.querySelectorAll('#tasks tbody td[data-metric="sum_of_squares"]')].every(td => td.textContent.trim() !== "")`,
		time.Minute, "every task's metric is on the sweep page")
	screenshot(t, ctx, "06-sweep")
	// A click on the metric's header sorts by it, best (largest) first; a
	// second click turns it round.
	sortBy := func(want string) {
		do(t, ctx, "sort", chromedp.Click(chromedp.CSS(`a[data-sort-key="metric:sum_of_squares"]`)))
		waitJS(t, ctx, `location.search.includes("sort=metric") && location.search.includes("`+want+`") &&
			document.querySelectorAll('#tasks tbody td[data-metric="sum_of_squares"]').length === 4`, 30*time.Second, "sorted "+want)
	}
	sortBy("dir=desc")
	desc := metric()
	assert.True(t, sort.SliceIsSorted(desc, func(i, j int) bool { return desc[i] > desc[j] }), "largest first: %v", desc)
	assert.Contains(t, eval[string](t, ctx, `document.querySelector("#best").textContent`), "sum_of_squares = 20540", "the best-run card follows the sorted metric")
	sortBy("sort=metric%3Asum_of_squares")
	waitJS(t, ctx, `!location.search.includes("dir=desc")`, 30*time.Second, "ascending")
	asc := metric()
	assert.True(t, sort.Float64sAreSorted(asc), "ascending after a second click: %v", asc)
	assert.Len(t, asc, 4)
	screenshot(t, ctx, "07-sweep-sorted")

	// Cancel a running job from its page.
	long := submit(t, a, adir, aproj, "--", "sleep", "300")
	t.Cleanup(func() { ferry(t, a, a.Home, "cancel", long.ID) }) // if the page fails to, the next tests still get the nodes
	waitState(t, a, long.ID, 90*time.Second, func(st job.Status) bool { return st.State == job.Running })
	waitStore(t, st, long.ID, 30*time.Second, func(j *store.Job) bool { return j.State == job.Running })
	do(t, ctx, "browser", chromedp.Navigate(dashURL+"/jobs/"+long.ID), chromedp.WaitVisible(chromedp.CSS("#cancel")))
	do(t, ctx, "browser", chromedp.Click(chromedp.CSS("#cancel")), chromedp.WaitVisible(chromedp.CSS("#summary")))
	waitJS(t, ctx, `document.querySelector("#summary .summary").dataset.state === "cancelled"`, 90*time.Second, "the page shows the job cancelled")
	ended := waitState(t, a, long.ID, 30*time.Second, func(st job.Status) bool { return st.State.Terminal() })
	assert.Equal(t, job.Cancelled, ended.State, "ferry status agrees")
	screenshot(t, ctx, "08-job-cancelled")

	do(t, ctx, "browser", chromedp.Navigate(dashURL+"/nodes"), chromedp.WaitVisible(chromedp.CSS("#nodes")))
	assert.Contains(t, eval[string](t, ctx, `document.querySelector("#nodes").textContent`), "w1")
	screenshot(t, ctx, "09-nodes")
	// Alice may not see the course view, nor bob's jobs.
	do(t, ctx, "browser", chromedp.Navigate(dashURL+"/course"))
	assert.Contains(t, eval[string](t, ctx, `document.body.textContent`), "403")
	do(t, ctx, "browser", chromedp.Navigate(dashURL+"/jobs/"+blockers[0]))
	assert.Contains(t, eval[string](t, ctx, `document.body.textContent`), "not one of yours")

	// A TA (dashboard.admins) sees the course and every job.
	c := lookup(t, "ferry-carol")
	ta := browser(t)
	do(t, ta, "browser", chromedp.Navigate(loginLink(t, c)), chromedp.WaitVisible(chromedp.CSS("#jobs")))
	all := eval[string](t, ta, `document.querySelector("#jobs").textContent`)
	assert.Contains(t, all, ticks.ID[:10])
	assert.Contains(t, all, blockers[0][:10], "an admin sees bob's jobs too")
	do(t, ta, "browser", chromedp.Navigate(dashURL+"/course"), chromedp.WaitVisible(chromedp.CSS(".users")))
	course := eval[string](t, ta, `document.querySelector(".users").textContent`)
	assert.Contains(t, course, alice)
	assert.Contains(t, course, bob)
	screenshot(t, ta, "10-course")
}
