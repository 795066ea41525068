package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/auth"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
	"github.com/ferry-hpc/ferry/pkg/store/storetest"
)

// The benchmarks below measure the dashboard at a course's scale on a
// real redis-server and print their figures as "BENCH dashboard" lines
// (tests/run.sh keeps them in its log). They run with FERRY_BENCH=1 (and
// under tests/run.sh, FERRY_E2E=1):
//
//	FERRY_BENCH=1 go test -count=1 -v -run '^TestBench' -timeout 30m ./pkg/dashboard/
//
// They are tests, not testing.B benchmarks: each measures once, at three
// sizes or two client counts side by side, with an environment built on
// *testing.T. They never fail on a time (times depend on the machine);
// they fail on what must not grow with scale: Redis round trips per page,
// Redis connections per event stream, events not delivered.

func benchGate(t *testing.T) {
	t.Helper()
	// They need only a redis-server: under CI they always run (and fail,
	// never skip, when it is missing: storetest sees to that).
	if os.Getenv("FERRY_BENCH") != "1" && os.Getenv("FERRY_E2E") != "1" && os.Getenv("CI") != "true" {
		t.Skip("benchmark: set FERRY_BENCH=1 (tests/run.sh runs it)")
	}
}

func benchLine(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf("BENCH dashboard "+format, args...)
	t.Log(line)
	fmt.Println(line)
}

// quantile is the nearest-rank quantile p of d.
func quantile[T int64 | time.Duration](d []T, p float64) T {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[max(0, int(math.Ceil(float64(len(s))*p))-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchEnv is an env with the users the benchmark needs (newEnv's three
// are too few) and a handle on its redis-server.
type benchEnv struct {
	*env
	redis *storetest.Server
}

// newBenchEnv starts Redis and a dashboard on which logins can log in
// with their home tokens; admins see every job. Logins are not limited,
// and the heartbeat and log poll are the defaults.
func newBenchEnv(t *testing.T, logins, admins []string) *benchEnv {
	t.Helper()
	e := newEnvUsers(t, logins, admins, func(o *Options) {
		o.Cluster, o.LoginBurst, o.LogPoll, o.Heartbeat = "bench", 1_000_000, 0, 0
	})
	return &benchEnv{env: e, redis: e.redis}
}

// session logs user in and returns the session cookie's value.
func (b *benchEnv) session(user string) string {
	b.t.Helper()
	c := b.client(user)
	u, _ := url.Parse(b.http.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == auth.CookieName {
			return ck.Value
		}
	}
	b.t.Fatalf("no session cookie for %s", user)
	return ""
}

// serve calls the dashboard's handler directly (no network) as a browser
// with the session cookie, and returns the time it took and the Redis
// round trips it made (the hub's blocking reads left out).
func (b *benchEnv) serve(path, cookie string, hdr map[string]string) (time.Duration, *httptest.ResponseRecorder, int64) {
	req := httptest.NewRequest("GET", path, nil)
	req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: cookie})
	req.Header.Set("Accept", "text/html")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h := b.srv.Handler()
	rt, hr := b.st.Stats().RoundTrips, b.srv.Hub().Reads()
	start := time.Now()
	h.ServeHTTP(rec, req)
	took := time.Since(start)
	trips := b.st.Stats().RoundTrips - rt - (b.srv.Hub().Reads() - hr)
	return took, rec, trips
}

// fetch times a whole HTTP request to the test server, body read.
func (b *benchEnv) fetch(path, cookie string) time.Duration {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.http.URL+path, nil)
	req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: cookie})
	req.Header.Set("Accept", "text/html")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(b.t, err)
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	require.NoError(b.t, err)
	require.Equal(b.t, http.StatusOK, resp.StatusCode, path)
	return took
}

// pageStats are one page's figures at one size.
type pageStats struct {
	server []time.Duration // handler time
	http   []time.Duration // whole request over loopback
	trips  []int64
	bytes  int
	rows   int
}

func (p *pageStats) row(label string) string {
	return fmt.Sprintf("%-28s %5d %8.2f %8.2f %8.2f %9.2f %6d %8.1f",
		label, p.rows, ms(quantile(p.server, 0.50)), ms(quantile(p.server, 0.95)), ms(quantile(p.server, 0.99)),
		ms(quantile(p.http, 0.50)), quantile(p.trips, 0.50), float64(p.bytes)/1024)
}

const pageHeader = "                             rows   p50 ms   p95 ms   p99 ms  http p50  trips  page KB"

// measurePages asks each page warm times, then samples times in turn
// (server time), then httpSamples times over HTTP.
func (b *benchEnv) measurePages(paths, cookies []string, hdr map[string]string, rowMark string, warm, samples, httpSamples int) []*pageStats {
	b.t.Helper()
	out := make([]*pageStats, len(paths))
	for i := range out {
		out[i] = &pageStats{}
	}
	for i := 0; i < warm+samples; i++ {
		for c, p := range paths {
			took, rec, trips := b.serve(p, cookies[c], hdr)
			require.Equal(b.t, http.StatusOK, rec.Code, "%s: %s", p, rec.Body.String())
			if i < warm {
				continue
			}
			s := out[c]
			s.server = append(s.server, took)
			s.trips = append(s.trips, trips)
			s.bytes, s.rows = rec.Body.Len(), strings.Count(rec.Body.String(), rowMark)
		}
	}
	for i := 0; i < httpSamples; i++ {
		for c, p := range paths {
			out[c].http = append(out[c].http, b.fetch(p, cookies[c]))
		}
	}
	return out
}

var benchProjects = []string{"mnist", "cifar10", "imdb", "gpt-tiny", "resnet18", "unet", "bert-ft", "cartpole",
	"mlp", "vae", "gan", "lstm", "transformer", "yolo", "wav2vec", "gnn", "ppo", "svm", "kmeans", "diffusion"}

// benchJob is job i of a course's store: submitted at, by owner, in a
// mix of states with params and metrics as ferry's Python side logs them.
func benchJob(rng *rand.Rand, i int, at time.Time, owner string, uid int) store.Job {
	proj := benchProjects[rng.IntN(len(benchProjects))]
	id := job.NewID(at)
	j := store.Job{ID: id, User: owner, UID: uid, Project: proj, Name: proj + "-run" + strconv.Itoa(i%97),
		SlurmID: strconv.Itoa(100000 + i), ArrayIndex: -1, Submitted: at, Image: "ferry/sandbox:latest",
		Dir: "/home/" + owner + "/.ferry/jobs/" + string(id), Source: store.SourceResult,
		Params: json.RawMessage(fmt.Sprintf(`{"lr":%g,"batch":%d,"epochs":%d,"seed":%d,"model":%q,"dropout":%.2f}`,
			[]float64{1e-4, 3e-4, 1e-3, 3e-3, 1e-2}[rng.IntN(5)], 32<<rng.IntN(4), 5+rng.IntN(20), rng.IntN(1000), proj, rng.Float64()/2)),
	}
	started := at.Add(time.Duration(rng.IntN(600)) * time.Second)
	ended := started.Add(time.Duration(30+rng.IntN(3600)) * time.Second)
	code := 0
	switch r := rng.IntN(100); {
	case r < 78:
		j.State, j.Reason = job.Succeeded, "completed"
	case r < 86:
		j.State, j.Reason, code = job.Failed, "exit code 1", 1
	case r < 90:
		j.State, j.Reason, code = job.Cancelled, "cancelled by the user", 143
	case r < 92:
		j.State, j.Reason, code = job.Timeout, "time limit reached", 143
	case r < 93:
		j.State, j.Reason, code = job.OutOfMemory, "out of memory", 137
	case r < 97:
		j.State, j.Source, ended = job.Running, store.SourceSqueue, time.Time{}
	default:
		j.State, j.Source, j.Reason = job.Queued, store.SourceSqueue, "waiting: other jobs have higher priority"
		j.Priority, j.EstStart, started, ended = int64(1000+rng.IntN(5000)), time.Now().Add(time.Hour), time.Time{}, time.Time{}
	}
	if !started.IsZero() {
		j.Started, j.Node = started, "w"+strconv.Itoa(1+rng.IntN(16))
		acc := 0.5 + 0.49*rng.Float64()
		j.Metrics = json.RawMessage(fmt.Sprintf(`{"acc":%.4f,"loss":%.4f,"val_acc":%.4f,"epoch":%d}`, acc, -math.Log(acc), acc-0.02*rng.Float64(), 1+rng.IntN(20)))
		j.MetricsOffset = int64(2000 + rng.IntN(50000))
	}
	if !ended.IsZero() {
		j.Ended, j.ExitCode = ended, &code
	}
	return j
}

// TestBenchJobsPage times the first page of the jobs list (50 jobs), as
// an admin (all jobs) and as a student (their own), with 1,000, 10,000
// and 100,000 jobs in Redis. The jobs belong to 200 users; alice, the
// student measured, has every tenth job so that her page is full at every
// size. The store grows in place between sizes: the sizes are measured in
// one run, on one Redis.
func TestBenchJobsPage(t *testing.T) {
	benchGate(t)
	b := newBenchEnv(t, []string{"alice", "carol"}, []string{"carol"})
	ctx := context.Background()
	owners := []string{"alice"}
	for i := 1; i < 200; i++ {
		owners = append(owners, fmt.Sprintf("s%03d", i))
	}
	admin, student := b.session("carol"), b.session("alice")
	paths := []string{"/jobs", "/jobs", "/jobs?state=failed"}
	cookies := []string{admin, student, admin}
	labels := []string{"admin, all jobs", "student, own jobs", "admin, ?state=failed (extra)"}

	const step = 2 * time.Second
	base := time.Now().Add(-100_000 * step)
	rng := rand.New(rand.NewPCG(7, 11))
	const per = 1000 // jobs per Apply: one MULTI/EXEC round trip
	filled := 0
	type result struct {
		n     int
		fill  time.Duration
		mem   int64
		pages []*pageStats
	}
	var results []result
	for _, n := range []int{1000, 10_000, 100_000} {
		start, prev := time.Now(), filled
		for filled < n {
			batch := &store.Batch{Jobs: make([]store.JobChange, 0, per)}
			for i := filled; i < min(n, filled+per); i++ {
				owner := owners[1+rng.IntN(len(owners)-1)]
				if i%10 == 0 {
					owner = "alice"
				}
				batch.Jobs = append(batch.Jobs, store.JobChange{New: benchJob(rng, i, base.Add(time.Duration(i)*step), owner, 1000+slices.Index(owners, owner))})
			}
			_, err := b.st.Apply(ctx, batch)
			require.NoError(t, err)
			filled += len(batch.Jobs)
		}
		fill := time.Since(start)
		mem, err := b.st.MemoryUsed(ctx)
		require.NoError(t, err)
		pages := b.measurePages(paths, cookies, nil, `<tr id="job-`, 20, 400, 100)
		for i, p := range pages[:2] {
			assert.Equal(t, PageSize, p.rows, "%s at %d jobs: a full first page", labels[i], n)
		}
		results = append(results, result{n, fill, mem, pages})
		benchLine(t, "jobs page: filled to %d jobs (+%d in %.1f s, %d jobs per Apply), Redis used_memory %d MB", n, n-prev, fill.Seconds(), per, mem>>20)
	}

	benchLine(t, "jobs page: first page of %d, server time = the handler called directly (httptest.NewRecorder on Server.Handler(), session cookie, Accept: text/html), 400 requests per row after 20 warm-up; http p50 = 100 whole requests over loopback; trips = Redis round trips per page (session lookup included)", PageSize)
	benchLine(t, "jobs page: %-14s %s", "jobs in Redis", pageHeader)
	for _, r := range results {
		for i, p := range r.pages {
			benchLine(t, "jobs page: %-14d %s", r.n, p.row(labels[i]))
		}
	}
	for i, label := range labels[:2] {
		first, last := results[0].pages[i], results[len(results)-1].pages[i]
		benchLine(t, "jobs page: %s: p95 %.2f ms at %d jobs → %.2f ms at %d jobs (×%.2f; target p95 < 50 ms at each size); round trips %d → %d",
			label, ms(quantile(first.server, 0.95)), results[0].n, ms(quantile(last.server, 0.95)), results[len(results)-1].n,
			float64(quantile(last.server, 0.95))/float64(quantile(first.server, 0.95)), quantile(first.trips, 0.5), quantile(last.trips, 0.5))
		for _, r := range results[1:] {
			assert.Equal(t, quantile(first.trips, 0.5), quantile(r.pages[i].trips, 0.5),
				"%s: Redis round trips per page at %d jobs vs %d: they must not grow with the store", label, r.n, results[0].n)
		}
	}
}

// TestBenchSweepPage times a sweep of 1,000 tasks (lr × batch × seed,
// metrics acc and loss, a history of 50 steps of both per task, 3% of the
// tasks failed with a traceback in their log): the page as its owner and
// as an admin, and the table fragment the page reloads live.
func TestBenchSweepPage(t *testing.T) {
	benchGate(t)
	b := newBenchEnv(t, []string{"alice", "carol"}, []string{"carol"})
	ctx := context.Background()
	const tasks, steps = 1000, 50
	lrs := []float64{1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1, 3}
	batches := []int{32, 64, 128, 256}
	submitted := time.Now().Add(-3 * time.Hour)
	sweepID := job.NewID(submitted)
	ids := job.NewIDs(submitted, tasks)
	rng := rand.New(rand.NewPCG(3, 5))
	start := time.Now()
	points := 0
	batch := &store.Batch{}
	for i, id := range ids {
		lr, bs, seed := lrs[i%10], batches[(i/10)%4], i/40
		acc := 0.97 - 0.06*math.Abs(math.Log10(lr)+2.5) - 0.01*math.Log2(float64(bs)/32) + 0.02*(rng.Float64()-0.5)
		acc = min(0.99, max(0.1, acc))
		started := submitted.Add(time.Duration(i/50) * time.Minute)
		ok, bad := 0, 1
		j := store.Job{ID: id, User: "alice", UID: os.Getuid(), Project: "cifar10", Name: "cifar10-sweep",
			SlurmID: "5000_" + strconv.Itoa(i), ArrayIndex: i, Sweep: sweepID, TaskIndex: i, Submitted: submitted,
			Started: started, Ended: started.Add(time.Duration(200+rng.IntN(400)) * time.Second), Node: "w" + strconv.Itoa(1+i%16),
			State: job.Succeeded, Reason: "completed", ExitCode: &ok, Image: "ferry/sandbox:latest", Source: store.SourceResult,
			Dir:    filepath.Join(b.homes["alice"], ".ferry", "jobs", string(id)),
			Params: json.RawMessage(fmt.Sprintf(`{"lr":%g,"batch":%d,"seed":%d,"epochs":10,"model":"resnet18"}`, lr, bs, seed)),
		}
		n := steps
		switch {
		case i%33 == 7: // failed part way
			n = 5 + i%20
			j.State, j.Reason, j.ExitCode = job.Failed, "exit code 1", &bad
			last := "ValueError: loss is NaN"
			if i%2 == 0 {
				last = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
			}
			b.jobDir("alice", id, "epoch 1\nTraceback (most recent call last):\n  File \"train.py\", line 42, in <module>\n"+last+"\n")
		case i%50 == 13: // still running
			n = 10 + i%30
			j.State, j.Reason, j.ExitCode, j.Ended = job.Running, "", nil, time.Time{}
		}
		pts := make([]json.RawMessage, 0, 2*n)
		var a, l float64
		for s := range n {
			a = acc*(1-math.Exp(-float64(s+1)/8)) + 0.01*(rng.Float64()-0.5)
			l = -math.Log(max(a, 0.01))
			at := float64(started.Add(time.Duration(s)*10*time.Second).UnixNano()) / 1e9
			pts = append(pts,
				json.RawMessage(fmt.Sprintf(`{"name":"acc","value":%.5f,"step":%d,"time":%.3f}`, a, s, at)),
				json.RawMessage(fmt.Sprintf(`{"name":"loss","value":%.5f,"step":%d,"time":%.3f}`, l, s, at)))
		}
		points += len(pts)
		j.Metrics = json.RawMessage(fmt.Sprintf(`{"acc":%.5f,"loss":%.5f}`, a, l))
		batch.Jobs = append(batch.Jobs, store.JobChange{New: j})
		batch.Metrics = append(batch.Metrics, store.MetricPoints{ID: id, Points: pts})
		if len(batch.Jobs) == 100 || i == tasks-1 {
			_, err := b.st.Apply(ctx, batch)
			require.NoError(t, err)
			batch = &store.Batch{}
		}
	}
	benchLine(t, "sweep page: %d tasks, %d metric points (%d steps of acc and loss per finished task) written in %.1f s", tasks, points, steps, time.Since(start).Seconds())

	admin, owner := b.session("carol"), b.session("alice")
	page, table := "/sweeps/"+string(sweepID), "/sweeps/"+string(sweepID)+"/table"
	pages := b.measurePages([]string{page, page}, []string{owner, admin}, nil, `<tr data-id=`, 5, 100, 20)
	tables := b.measurePages([]string{table}, []string{owner}, map[string]string{"X-Ferry-Fragment": "1"}, `<tr data-id=`, 5, 100, 20)
	_, rec, _ := b.serve(page, owner, nil)
	body := rec.Body.String()
	assert.Contains(t, body, "Learning curves", "the top runs' curves are drawn")
	assert.Contains(t, body, "CUDA out of memory", "failures are grouped by their log's last line")
	for _, p := range append(pages, tables...) {
		assert.Equal(t, tasks, p.rows, "every task has a row")
	}

	benchLine(t, "sweep page: server time = the handler called directly (httptest.NewRecorder), 100 requests per row after 5 warm-up; http p50 = 20 whole requests over loopback")
	benchLine(t, "sweep page: %s", pageHeader)
	benchLine(t, "sweep page: %s", pages[0].row("/sweeps/{id}, owner"))
	benchLine(t, "sweep page: %s", pages[1].row("/sweeps/{id}, admin"))
	benchLine(t, "sweep page: %s", tables[0].row("/sweeps/{id}/table, owner"))
	benchLine(t, "sweep page: target p95 < 200 ms: page %.1f ms, table %.1f ms",
		ms(quantile(pages[0].server, 0.95)), ms(quantile(tables[0].server, 0.95)))
}

// raiseOpenFiles lifts the soft open-files limit to the hard one: each
// event stream holds a socket in the dashboard's process and one in the
// clients'.
func raiseOpenFiles() (before, after uint64) {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return 0, 0
	}
	before = l.Cur
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	return before, l.Cur
}

// memInUse is the heap and stack in use after two collections.
func memInUse() (inuse, alloc uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, m.HeapAlloc
}

// redisClients is the number of connections redis-server holds, those
// of redisClients itself (this one, a closing earlier one) left out.
func (b *benchEnv) redisClients() int {
	list, _ := b.redis.Do(b.t, "CLIENT", "LIST").(string)
	n := 0
	for _, l := range strings.Split(list, "\n") {
		if strings.TrimSpace(l) != "" && !strings.Contains(l, "cmd=client|list") {
			n++
		}
	}
	return n
}

// sseResult is what the client process reports: for each client, when
// (Unix ns) it got each event (0: never), and the streams that failed.
type sseResult struct {
	Arrivals [][]int64 `json:"arrivals"`
	Errors   []string  `json:"errors"`
}

const benchReason = "bench-event-"

// TestHelperSSEClients is the event-stream clients of TestBenchEvents, in
// a process of their own (the test binary run again), so that the
// dashboard's process measures its own memory and goroutines only. Each
// client opens /events with its session cookie, parses the stream with
// readSSE, and notes when each bench event arrives; when every client has
// all of them (or the deadline passes) it prints a RESULT line.
func TestHelperSSEClients(t *testing.T) {
	if os.Getenv("FERRY_BENCH_SSE_CLIENTS") != "1" {
		return
	}
	raiseOpenFiles()
	data, err := os.ReadFile(os.Getenv("FERRY_BENCH_SSE_COOKIES"))
	require.NoError(t, err)
	cookies := strings.Fields(string(data))
	events, err := strconv.Atoi(os.Getenv("FERRY_BENCH_SSE_EVENTS"))
	require.NoError(t, err)
	base := os.Getenv("FERRY_BENCH_SSE_URL")
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConns: len(cookies) + 1, MaxIdleConnsPerHost: len(cookies) + 1,
		DisableCompression: true}
	hc := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := sseResult{Arrivals: make([][]int64, len(cookies))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, ck := range cookies {
		res.Arrivals[i] = make([]int64, events)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) { mu.Lock(); res.Errors = append(res.Errors, err.Error()); mu.Unlock() }
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events", nil)
			req.Header.Set("Cookie", auth.CookieName+"="+ck)
			resp, err := hc.Do(req)
			if err != nil {
				fail(err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				fail(fmt.Errorf("client %d: HTTP %d", i, resp.StatusCode))
				return
			}
			ch := make(chan sseEvent, 2*events)
			go readSSE(resp.Body, ch)
			got := 0
			for ev := range ch {
				at := time.Now().UnixNano()
				var e store.Event
				if ev.Name != store.EventState || json.Unmarshal([]byte(ev.Data), &e) != nil {
					continue
				}
				k, err := strconv.Atoi(strings.TrimPrefix(e.Reason, benchReason))
				if err != nil || k < 0 || k >= events || res.Arrivals[i][k] != 0 {
					continue
				}
				res.Arrivals[i][k] = at
				if got++; got == events {
					return
				}
			}
			fail(fmt.Errorf("client %d: stream ended after %d of %d events", i, got, events))
		}()
	}
	wg.Wait()
	out, err := json.Marshal(res)
	require.NoError(t, err)
	fmt.Printf("RESULT %s\n", out)
}

// ssePhase is one run of TestBenchEvents with some number of clients.
type ssePhase struct {
	clients          int
	connect          time.Duration // from starting the clients to all subscribed
	memPerConn       float64       // HeapInuse+StackInuse, bytes per stream
	allocPerConn     float64       // HeapAlloc, bytes per stream
	gorPerConn       float64
	redisBefore      int // Redis connections before the clients connect
	redisDuring      int // ... with every stream open
	lat, last, apply []time.Duration
	dropped          int64
}

// runSSE connects one client process's streams with cookies, sends
// events events (changing jobs[0:events]) spaced every apart, and
// collects when each client got each event.
func (b *benchEnv) runSSE(cookies []string, jobs []store.Job, every time.Duration) *ssePhase {
	t := b.t
	t.Helper()
	ctx := context.Background()
	p := &ssePhase{clients: len(cookies)}
	file := filepath.Join(t.TempDir(), "cookies")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(cookies, "\n")), 0o600))
	p.redisBefore = b.redisClients()
	dropped := b.srv.Hub().Dropped()
	gor := runtime.NumGoroutine()
	mem, alloc := memInUse()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSSEClients$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), "FERRY_BENCH_SSE_CLIENTS=1", "FERRY_BENCH_SSE_COOKIES="+file,
		"FERRY_BENCH_SSE_URL="+b.http.URL, "FERRY_BENCH_SSE_EVENTS="+strconv.Itoa(len(jobs)))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(time.Minute)
	for b.srv.Hub().Subscribers() < len(cookies) {
		select {
		case err := <-exited:
			t.Fatalf("the client process ended before subscribing: %v\n%s%s", err, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("%d of %d streams subscribed within a minute", b.srv.Hub().Subscribers(), len(cookies))
		case <-time.After(5 * time.Millisecond):
		}
	}
	p.connect = time.Since(start)
	time.Sleep(200 * time.Millisecond) // the streams' first flush and ready comment
	mem2, alloc2 := memInUse()
	p.memPerConn = (float64(mem2) - float64(mem)) / float64(len(cookies))
	p.allocPerConn = (float64(alloc2) - float64(alloc)) / float64(len(cookies))
	p.gorPerConn = float64(runtime.NumGoroutine()-gor) / float64(len(cookies))
	p.redisDuring = b.redisClients()

	sent := make([]time.Time, len(jobs))
	for k := range jobs {
		old := jobs[k]
		n := old
		n.State, n.Reason, n.Ended, n.ExitCode = job.Succeeded, benchReason+strconv.Itoa(k), time.Now(), new(int)
		sent[k] = time.Now()
		_, err := b.st.Apply(ctx, &store.Batch{
			Jobs:   []store.JobChange{{Old: &old, New: n}},
			Events: []store.Event{{Type: store.EventState, ID: n.ID, User: n.User, Project: n.Project, State: n.State, Prev: old.State, Reason: n.Reason}},
		})
		require.NoError(t, err)
		p.apply = append(p.apply, time.Since(sent[k]))
		time.Sleep(every)
	}
	select {
	case err := <-exited:
		require.NoError(t, err, "client process: %s", stderr.String())
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the client process did not end")
	}
	var res sseResult
	for _, line := range strings.Split(stdout.String(), "\n") {
		if s, ok := strings.CutPrefix(line, "RESULT "); ok {
			require.NoError(t, json.Unmarshal([]byte(s), &res))
		}
	}
	require.Len(t, res.Arrivals, len(cookies), "the client process's result: %s", stdout.String())
	assert.Empty(t, res.Errors, "every stream opened and lasted")
	missing := 0
	for k := range jobs {
		var last time.Duration
		for c := range res.Arrivals {
			at := res.Arrivals[c][k]
			if at == 0 {
				missing++
				continue
			}
			d := time.Duration(at - sent[k].UnixNano())
			p.lat = append(p.lat, d)
			last = max(last, d)
		}
		p.last = append(p.last, last)
	}
	assert.Zero(t, missing, "every client got every event (%d clients × %d events)", len(cookies), len(jobs))
	p.dropped = b.srv.Hub().Dropped() - dropped
	require.Eventually(t, func() bool { return b.srv.Hub().Subscribers() == 0 }, 30*time.Second, 10*time.Millisecond)
	return p
}

// TestBenchEvents watches /events with 50 and then 500 clients, each its
// own user and session (the users are admins, so that every stream gets
// every event: the most fan-out a dashboard does), from a separate
// process. It measures the dashboard process's memory and goroutines per
// stream, the Redis connections it holds, and the latency from the
// Apply that XADDs an event to its arrival at each client.
func TestBenchEvents(t *testing.T) {
	benchGate(t)
	before, after := raiseOpenFiles()
	const events, every = 50, 5 * time.Millisecond
	var users []string
	for i := range 500 {
		users = append(users, fmt.Sprintf("u%03d", i))
	}
	b := newBenchEnv(t, users, users)
	cookies := make([]string, len(users))
	for i, u := range users {
		cookies[i] = b.session(u)
	}
	// The jobs whose state changes are the events: events per run.
	counts := []int{50, 500}
	jobs := make([]store.Job, events*len(counts))
	batch := &store.Batch{}
	now := time.Now()
	for i := range jobs {
		id := job.NewID(now.Add(time.Duration(i) * time.Millisecond))
		jobs[i] = store.Job{ID: id, User: users[i%len(users)], UID: os.Getuid(), Project: "mnist", Name: "train",
			SlurmID: strconv.Itoa(7000 + i), ArrayIndex: -1, State: job.Running, Node: "w1", Submitted: now.Add(-time.Minute),
			Started: now, Source: store.SourceSqueue, Params: json.RawMessage(`{"lr":0.01}`)}
		batch.Jobs = append(batch.Jobs, store.JobChange{New: jobs[i]})
	}
	_, err := b.st.Apply(context.Background(), batch)
	require.NoError(t, err)

	var phases []*ssePhase
	for i, n := range counts {
		phases = append(phases, b.runSSE(cookies[:n], jobs[i*events:(i+1)*events], every))
	}

	benchLine(t, "events: clients in a separate process (the test binary run again), each its own admin user and session, parsing the stream with readSSE; open files limit %d → %d; %d events, one Apply (job change + XADD) every %s after the last; latency = from just before the Apply to the client reading the event",
		before, after, events, every)
	benchLine(t, "events: %7s %10s %11s %9s %11s %11s %8s %8s %8s %10s %10s %8s %7s",
		"clients", "connect", "KB/stream", "alloc KB", "gor/stream", "redis conns", "p50 ms", "p99 ms", "max ms", "last p50", "last p99", "apply", "dropped")
	for _, p := range phases {
		benchLine(t, "events: %7d %8.0fms %11.1f %9.1f %11.2f %5d → %-3d %8.2f %8.2f %8.2f %10.2f %10.2f %8.2f %7d",
			p.clients, ms(p.connect), p.memPerConn/1024, p.allocPerConn/1024, p.gorPerConn, p.redisBefore, p.redisDuring,
			ms(quantile(p.lat, 0.5)), ms(quantile(p.lat, 0.99)), ms(slices.Max(p.lat)),
			ms(quantile(p.last, 0.5)), ms(quantile(p.last, 0.99)), ms(quantile(p.apply, 0.5)), p.dropped)
	}
	probe := b.srv.Hub().Subscribe(nil)
	chanBytes := cap(probe.C) * int(unsafe.Sizeof(&store.Event{}))
	b.srv.Hub().Unsubscribe(probe)
	benchLine(t, "events: of each stream's memory, its hub channel (%d pointers to shared events, %d bytes each) is %.1f KB",
		cap(probe.C), unsafe.Sizeof(&store.Event{}), float64(chanBytes)/1024)
	// The dashboard reads the stream once for all streams; its other
	// Redis connections are go-redis's pools (10 per CPU, and 10 for
	// pipelines), used by the session lookups while the streams connect.
	pool := 10*runtime.GOMAXPROCS(0) + 10
	for _, p := range phases {
		assert.LessOrEqual(t, p.redisDuring, pool, "%d streams hold at most go-redis's pools, not a connection each", p.clients)
		assert.Zero(t, p.dropped, "no stream fell behind")
	}
}
