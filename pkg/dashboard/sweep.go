package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/plot"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// maxSweepTasks bounds the tasks one sweep page reads.
const maxSweepTasks = 5000

// topCurves is how many runs' learning curves the sweep page draws.
const topCurves = 5

// sweepView is a sweep's page.
type sweepView struct {
	ID        job.ID // "" for a project's page
	TableURL  string // the table fragment's path
	Capped    bool   // a project with more jobs than the page reads
	User      string
	Project   string
	Total     int64
	Shown     int
	Counts    map[job.State]int
	Params    []string // columns: the varying params (all with ?all=1)
	Constant  []kv     // params with one value across the sweep
	Metrics   []string
	Rows      []*sweepRow
	Sort      string // "index", "state", "duration", "param:NAME", "metric:NAME"
	Desc      bool
	Target    string // the metric the best run is chosen by
	Minimize  bool
	Best      *sweepRow
	AllParams bool
	Failures  []failureGroup
	Curves    template.HTML
	Scatters  []template.HTML
}

type sweepRow struct {
	Job     *store.Job
	Params  map[string]any
	Metrics map[string]any
	Best    map[string]bool // metric name → this row holds its best value
}

type failureGroup struct {
	Line string
	Jobs []*store.Job
}

// goalMin guesses whether a metric is better small, by its name.
var goalMin = regexp.MustCompile(`(?i)(loss|err|error|mse|mae|rmse|perplexity|time|latency|regret|cost)`)

func (s *Server) sweepPage(w http.ResponseWriter, r *http.Request, me *who) {
	since := s.hub.Last()
	v := s.sweep(w, r, me, true)
	if v == nil {
		return
	}
	s.render(w, r, "sweep.html", me, map[string]any{"S": v, "Title": "Sweep " + v.ID.Short(), "Since": since})
}

func (s *Server) sweepTable(w http.ResponseWriter, r *http.Request, me *who) {
	v := s.sweep(w, r, me, false)
	if v == nil {
		return
	}
	s.render(w, r, "sweeptable", me, map[string]any{"S": v})
}

// sweep reads and arranges a sweep; charts too when full.
func (s *Server) sweep(w http.ResponseWriter, r *http.Request, me *who, full bool) *sweepView {
	id := job.ID(r.PathValue("id"))
	if !validID(id) {
		s.fail(w, r, http.StatusNotFound, "no such sweep")
		return nil
	}
	tasks, total, err := s.o.Store.SweepTasks(r.Context(), id, 0, maxSweepTasks)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering: try again shortly")
		return nil
	}
	var mine []*store.Job
	for _, t := range tasks {
		if canSee(me, t) {
			mine = append(mine, t)
		}
	}
	if len(mine) == 0 {
		s.fail(w, r, http.StatusNotFound, "no such sweep (or not one of yours)")
		return nil
	}
	q := r.URL.Query()
	v := buildSweep(id, mine, total, q.Get("sort"), q.Get("dir") == "desc", q.Get("metric"), q.Get("goal"), q.Get("all") != "")
	v.TableURL = "/sweeps/" + string(id) + "/table"
	if full {
		v.Failures = s.failures(mine)
		s.sweepCharts(r.Context(), v)
	}
	return v
}

// maxProjectJobs bounds the jobs a project page reads (the newest).
const maxProjectJobs = 1000

func (s *Server) projectPage(w http.ResponseWriter, r *http.Request, me *who) {
	since := s.hub.Last()
	v := s.project(w, r, me, true)
	if v == nil {
		return
	}
	s.render(w, r, "sweep.html", me, map[string]any{"S": v, "Title": "Project " + v.Project, "Since": since})
}

func (s *Server) projectTable(w http.ResponseWriter, r *http.Request, me *who) {
	v := s.project(w, r, me, false)
	if v == nil {
		return
	}
	s.render(w, r, "sweeptable", me, map[string]any{"S": v})
}

// project is a project's page: its jobs as a sweep's tasks (params that
// vary, metrics, sorting, the best run). A student's own jobs in it; an
// admin's, everyone's (?user= for one user's).
func (s *Server) project(w http.ResponseWriter, r *http.Request, me *who, full bool) *sweepView {
	name := r.PathValue("name")
	q := r.URL.Query()
	lq := listQuery{User: me.User, Project: name}
	if me.Admin {
		lq.User = q.Get("user")
	}
	// One user's jobs in it: that user's index, filtered; everyone's: the
	// project's index.
	var mine []*store.Job
	var total int64
	p := store.Page{User: lq.User, Limit: 500}
	if lq.User == "" {
		p.Project = name
	}
	for off := int64(0); len(mine) < maxProjectJobs && off < maxScan; off += p.Limit {
		p.Offset = off
		jobs, n, err := s.o.Store.Jobs(r.Context(), p)
		if err != nil {
			s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering: try again shortly")
			return nil
		}
		total = n
		for _, j := range jobs {
			if j.Project == name && canSee(me, j) && len(mine) < maxProjectJobs {
				mine = append(mine, j)
			}
		}
		if int64(len(jobs)) < p.Limit {
			break
		}
	}
	if len(mine) == 0 {
		s.fail(w, r, http.StatusNotFound, "no jobs in project "+strconv.Quote(name)+" (that you may see)")
		return nil
	}
	v := buildSweep("", mine, int64(len(mine)), q.Get("sort"), q.Get("dir") == "desc", q.Get("metric"), q.Get("goal"), q.Get("all") != "")
	v.Project = name
	v.TableURL = "/projects/" + url.PathEscape(name) + "/table"
	v.Capped = len(mine) == maxProjectJobs && total > maxProjectJobs
	if lq.User != "" {
		v.User = lq.User
	}
	if full {
		v.Failures = s.failures(mine)
		s.sweepCharts(r.Context(), v)
	}
	return v
}

// buildSweep arranges tasks into the table: params that vary, metrics,
// the sort, the best value of each metric, the best run.
func buildSweep(id job.ID, tasks []*store.Job, total int64, sortBy string, desc bool, target, goal string, all bool) *sweepView {
	v := &sweepView{ID: id, Total: total, Shown: len(tasks), Counts: map[job.State]int{}, AllParams: all}
	values := map[string]map[string]bool{} // param → distinct values (as JSON)
	metricSet := map[string]bool{}
	for _, t := range tasks {
		v.User, v.Project = t.User, t.Project
		v.Counts[t.State]++
		row := &sweepRow{Job: t, Best: map[string]bool{}}
		_, row.Params = objectFields(t.Params)
		_, row.Metrics = objectFields(t.Metrics)
		for k, val := range row.Params {
			if values[k] == nil {
				values[k] = map[string]bool{}
			}
			b, _ := json.Marshal(val)
			values[k][string(b)] = true
		}
		for k := range row.Metrics {
			metricSet[k] = true
		}
		v.Rows = append(v.Rows, row)
	}
	for k, vals := range values {
		if len(vals) > 1 || all {
			v.Params = append(v.Params, k)
		} else {
			for val := range vals {
				var x any
				_ = json.Unmarshal([]byte(val), &x)
				v.Constant = append(v.Constant, kv{k, x})
			}
		}
	}
	sort.Strings(v.Params)
	sort.Slice(v.Constant, func(a, b int) bool { return v.Constant[a].Key < v.Constant[b].Key })
	for k := range metricSet {
		v.Metrics = append(v.Metrics, k)
	}
	sort.Strings(v.Metrics)

	// The target metric: asked for, else the one sorted by, else the first.
	v.Target = target
	if !metricSet[v.Target] {
		v.Target = ""
		if name, ok := strings.CutPrefix(sortBy, "metric:"); ok && metricSet[name] {
			v.Target = name
		} else if len(v.Metrics) > 0 {
			v.Target = v.Metrics[0]
		}
	}
	minimize := func(m string) bool {
		if m == v.Target && goal != "" {
			return goal == "min"
		}
		return goalMin.MatchString(m)
	}
	v.Minimize = minimize(v.Target)
	for _, m := range v.Metrics {
		var best *sweepRow
		bestVal := 0.0
		for _, row := range v.Rows {
			x, ok := number(row.Metrics[m])
			if !ok {
				continue
			}
			if best == nil || (minimize(m) && x < bestVal) || (!minimize(m) && x > bestVal) {
				best, bestVal = row, x
			}
		}
		if best != nil {
			best.Best[m] = true
			if m == v.Target {
				v.Best = best
			}
		}
	}

	v.Sort, v.Desc = sortBy, desc
	if v.Sort == "" {
		v.Sort = "index"
		if v.Target != "" {
			v.Sort, v.Desc = "metric:"+v.Target, !v.Minimize
		}
	}
	key := v.Sort
	less := func(a, b *sweepRow) int {
		switch {
		case key == "state":
			return strings.Compare(string(a.Job.State), string(b.Job.State))
		case key == "duration":
			return cmpFloat(runSeconds(a.Job), runSeconds(b.Job))
		case strings.HasPrefix(key, "param:"):
			return cmpAny(a.Params[key[6:]], b.Params[key[6:]])
		case strings.HasPrefix(key, "metric:"):
			return cmpAny(a.Metrics[key[7:]], b.Metrics[key[7:]])
		}
		if a.Job.Sweep == "" || b.Job.Sweep == "" { // a project's jobs: by submit time
			return a.Job.Submitted.Compare(b.Job.Submitted)
		}
		return a.Job.TaskIndex - b.Job.TaskIndex
	}
	sort.SliceStable(v.Rows, func(i, j int) bool {
		a, b := v.Rows[i], v.Rows[j]
		// Rows without the value go last whichever the direction.
		if strings.HasPrefix(key, "metric:") || strings.HasPrefix(key, "param:") {
			ma, mb := missing(a, key), missing(b, key)
			if ma != mb {
				return mb
			}
		}
		c := less(a, b)
		if desc := v.Desc; desc {
			return c > 0
		}
		return c < 0
	})
	return v
}

func missing(r *sweepRow, key string) bool {
	if name, ok := strings.CutPrefix(key, "metric:"); ok {
		_, ok := number(r.Metrics[name])
		return !ok
	}
	_, ok := r.Params[strings.TrimPrefix(key, "param:")]
	return !ok
}

func runSeconds(j *store.Job) float64 {
	if j.Started.IsZero() || j.Ended.IsZero() {
		return math.Inf(1)
	}
	return j.Ended.Sub(j.Started).Seconds()
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmpAny orders numbers numerically, anything else as text.
func cmpAny(a, b any) int {
	x, okA := number(a)
	y, okB := number(b)
	if okA && okB {
		return cmpFloat(x, y)
	}
	return strings.Compare(fmtNum(a), fmtNum(b))
}

// maxFailuresRead bounds the failed tasks whose log ends are read.
const maxFailuresRead = 200

// failures groups the failed tasks by the last line of their log (their
// error, for a Python traceback), or their reason when there is no log.
func (s *Server) failures(tasks []*store.Job) []failureGroup {
	groups := map[string]*failureGroup{}
	read := 0
	for _, t := range tasks {
		if !stateMatch("failed", t.State) {
			continue
		}
		line := t.Reason
		if read < maxFailuresRead {
			read++
			if l := lastLogLine(t); l != "" {
				line = l
			}
		}
		if line == "" {
			line = string(t.State)
		}
		g := groups[line]
		if g == nil {
			g = &failureGroup{Line: line}
			groups[line] = g
		}
		g.Jobs = append(g.Jobs, t)
	}
	out := make([]failureGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(a, b int) bool {
		if len(out[a].Jobs) != len(out[b].Jobs) {
			return len(out[a].Jobs) > len(out[b].Jobs)
		}
		return out[a].Line < out[b].Line
	})
	return out
}

// logStamp is the timestamp the sandbox puts before each log line.
var logStamp = regexp.MustCompile(`^\S*\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?\s+`)

// lastLogLine is the last line of a job's log that is not ferry's own.
func lastLogLine(j *store.Job) string {
	f, fi, err := openJobFile(j, job.LogFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	off := max(0, fi.Size()-4096)
	data, _ := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(logStamp.ReplaceAllString(lines[i], ""))
		if l == "" || strings.HasPrefix(l, "--- ferry") || strings.HasPrefix(l, "ferry:") {
			continue
		}
		if len(l) > 200 {
			l = l[:200] + "…"
		}
		return l
	}
	return ""
}

// sweepCharts draws the top runs' learning curves and one scatter per
// param of the target metric.
func (s *Server) sweepCharts(ctx context.Context, v *sweepView) {
	if v.Target == "" {
		return
	}
	ranked := make([]*sweepRow, 0, len(v.Rows))
	for _, row := range v.Rows {
		if _, ok := number(row.Metrics[v.Target]); ok {
			ranked = append(ranked, row)
		}
	}
	sort.SliceStable(ranked, func(i, j int) bool {
		a, _ := number(ranked[i].Metrics[v.Target])
		b, _ := number(ranked[j].Metrics[v.Target])
		if v.Minimize {
			return a < b
		}
		return a > b
	})
	var series []plot.Series
	for i, row := range ranked {
		if i == topCurves {
			break
		}
		hist, err := s.o.Store.MetricHistory(ctx, row.Job.ID, 0, -1)
		if err != nil {
			continue
		}
		pts := metricSeries(hist)[v.Target]
		if len(pts) == 0 {
			continue
		}
		series = append(series, plot.Series{
			Name: fmt.Sprintf("#%d %s", row.Job.TaskIndex, row.Job.ID.Short()), Points: pts,
			Highlight: i == 0, Href: "/jobs/" + string(row.Job.ID),
		})
	}
	if len(series) > 0 {
		v.Curves = plot.Lines(series, plot.Options{Title: fmt.Sprintf("%s of the top %d runs", v.Target, len(series)), XLabel: "step", YLabel: v.Target})
	}
	for _, p := range v.Params {
		var pts []plot.Point
		var labels []string
		cats := map[string]float64{}
		var catNames []string
		for _, row := range ranked {
			y, _ := number(row.Metrics[v.Target])
			x, ok := number(row.Params[p])
			if !ok {
				name := fmtNum(row.Params[p])
				if _, seen := cats[name]; !seen {
					cats[name] = float64(len(cats))
					catNames = append(catNames, name)
				}
				x = cats[name]
			}
			pts = append(pts, plot.Point{X: x, Y: y})
			labels = append(labels, fmt.Sprintf("%s=%s → %s=%s (#%d)", p, fmtNum(row.Params[p]), v.Target, fmtNum(row.Metrics[v.Target]), row.Job.TaskIndex))
		}
		xlabel := p
		if len(catNames) > 0 {
			xlabel = p + " (" + strings.Join(catNames, ", ") + ")"
		}
		v.Scatters = append(v.Scatters, plot.Scatter([]plot.Series{{Name: v.Target, Points: pts, Labels: labels}},
			plot.Options{Width: 320, Height: 200, Title: v.Target + " by " + p, XLabel: xlabel, YLabel: v.Target}))
	}
}

// metricSeries splits a metric history (lines {"name","value","step","time"})
// into one series per metric: X is the step, or the point's place when the
// job logged none.
func metricSeries(hist []json.RawMessage) map[string][]plot.Point {
	out := map[string][]plot.Point{}
	for _, raw := range hist {
		var p struct {
			Name  string   `json:"name"`
			Value any      `json:"value"`
			Step  *float64 `json:"step"`
		}
		if json.Unmarshal(raw, &p) != nil || p.Name == "" {
			continue
		}
		y, ok := number(p.Value)
		if !ok {
			continue
		}
		x := float64(len(out[p.Name]))
		if p.Step != nil {
			x = *p.Step
		}
		out[p.Name] = append(out[p.Name], plot.Point{X: x, Y: y})
	}
	return out
}
