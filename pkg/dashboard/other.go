package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/plot"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// chart is one metric's history, drawn.
type chart struct {
	Name   string
	Points int
	SVG    template.HTML
}

// metricCharts draws each metric's history of a job.
func (s *Server) metricCharts(ctx context.Context, j *store.Job) []chart {
	if len(j.Metrics) == 0 {
		return nil
	}
	hist, err := s.o.Store.MetricHistory(ctx, j.ID, 0, -1)
	if err != nil || len(hist) == 0 {
		return nil
	}
	series := metricSeries(hist)
	names := make([]string, 0, len(series))
	for n := range series {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]chart, 0, len(names))
	for _, n := range names {
		pts := series[n]
		out = append(out, chart{Name: n, Points: len(pts), SVG: plot.Lines([]plot.Series{{Name: n, Points: pts}},
			plot.Options{Width: 480, Height: 200, Title: n, XLabel: "step", YLabel: n})})
	}
	return out
}

// reproduceView is what it takes to run a job again.
type reproduceView struct {
	Command     string
	Source      string
	BundleHash  string
	Image       string
	ImageDigest string
	Env         *envView // nil: the job asked for no environment
}

// envView is a job's environment as the reproduce box shows it: what it
// asked for (requirements.txt, apt:) and the key it ran in.
type envView struct {
	Summary string   // "pip: 2 packages, apt: 1 package"
	Key     string   // "" until a result names it
	Pip     []string // canonical requirement lines
	Apt     []string
}

// maxSpecRead bounds a spec.json or result.json read.
const maxSpecRead = 1 << 20

func readJobJSON(j *store.Job, name string, v any) bool {
	f, _, err := openJobFile(j, name)
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSpecRead))
	return err == nil && json.Unmarshal(data, v) == nil
}

// reproduce reads the job's spec and result for the "reproduce" box.
func (s *Server) reproduce(j *store.Job) *reproduceView {
	var spec job.Spec
	if !readJobJSON(j, job.SpecFile, &spec) {
		return nil
	}
	v := &reproduceView{Source: spec.Source, BundleHash: spec.Bundle.Hash, Image: spec.Image}
	if e := spec.Environment; e != nil && (len(e.Pip) > 0 || len(e.Apt) > 0) {
		v.Env = &envView{Summary: e.Summary(), Pip: e.Pip, Apt: e.Apt}
	}
	var res struct {
		Image       string `json:"image"`
		ImageDigest string `json:"image_digest"`
		Environment string `json:"environment"`
	}
	if readJobJSON(j, job.ResultFile, &res) {
		if res.Image != "" {
			v.Image = res.Image
		}
		v.ImageDigest = res.ImageDigest
		if v.Env != nil {
			v.Env.Key = res.Environment
		}
	}
	var b strings.Builder
	if spec.Source != "" {
		b.WriteString("cd " + slurm.Quote(spec.Source) + " && ")
	}
	b.WriteString("ferry submit")
	if spec.Name != "" {
		b.WriteString(" --name " + slurm.Quote(spec.Name))
	}
	keys := make([]string, 0, len(spec.Params))
	for k := range spec.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val, _ := json.Marshal(spec.Params[k])
		sv := string(val)
		if str, ok := spec.Params[k].(string); ok {
			sv = str
		}
		b.WriteString(" --param " + slurm.Quote(k+"="+sv))
	}
	if spec.Image != "" {
		b.WriteString(" --image " + slurm.Quote(spec.Image))
	}
	if len(spec.Command) > 0 {
		b.WriteString(" --")
		for _, a := range spec.Command {
			b.WriteString(" " + slurm.Quote(a))
		}
	}
	v.Command = b.String()
	return v
}

// nodeView is one worker on the nodes page.
type nodeView struct {
	store.Node
	Job   *store.Job // the ferry job it runs (nil: none, or not one the caller may see)
	Other bool       // it runs a job the caller may not see
	Since time.Time
}

func (s *Server) nodes(ctx context.Context, me *who) ([]nodeView, time.Time, error) {
	nodes, err := s.o.Store.Nodes(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	active, err := s.o.Store.ActiveJobs(ctx, 10000)
	if err != nil {
		return nil, time.Time{}, err
	}
	onNode := map[string]*store.Job{}
	for _, j := range active {
		if j.State != job.Running && j.State != job.Completing {
			continue
		}
		for _, n := range expandNodes(j.Node) {
			onNode[n] = j
		}
	}
	var out []nodeView
	var updated time.Time
	for _, n := range nodes {
		v := nodeView{Node: n, Since: n.Updated}
		if j := onNode[n.Name]; j != nil {
			if canSee(me, j) {
				v.Job = j
			} else {
				v.Other = true
			}
			v.Since = j.Started
		}
		if n.Updated.After(updated) {
			updated = n.Updated
		}
		out = append(out, v)
	}
	sort.Slice(out, func(a, b int) bool { return naturalLess(out[a].Name, out[b].Name) })
	return out, updated, nil
}

// expandNodes expands a simple Slurm hostlist ("w1", "w[1-3,5]").
func expandNodes(list string) []string {
	if list == "" {
		return nil
	}
	var out []string
	for _, part := range splitHostlist(list) {
		pre, rest, ok := strings.Cut(part, "[")
		if !ok {
			out = append(out, part)
			continue
		}
		rest = strings.TrimSuffix(rest, "]")
		for _, r := range strings.Split(rest, ",") {
			a, b, isRange := strings.Cut(r, "-")
			if !isRange {
				out = append(out, pre+a)
				continue
			}
			var lo, hi int
			if _, err := fmt.Sscan(a, &lo); err != nil {
				continue
			}
			if _, err := fmt.Sscan(b, &hi); err != nil || hi-lo > 4096 {
				continue
			}
			for i := lo; i <= hi; i++ {
				out = append(out, fmt.Sprintf("%s%0*d", pre, len(a), i))
			}
		}
	}
	return out
}

// splitHostlist splits at commas outside brackets.
func splitHostlist(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// naturalLess orders "w2" before "w10".
func naturalLess(a, b string) bool {
	ta, na := splitNum(a)
	tb, nb := splitNum(b)
	if ta != tb {
		return ta < tb
	}
	if na != nb {
		return na < nb
	}
	return a < b
}

func splitNum(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n := 0
	fmt.Sscan(s[i:], &n)
	return s[:i], n
}

func (s *Server) nodesPage(w http.ResponseWriter, r *http.Request, me *who) {
	nodes, updated, err := s.nodes(r.Context(), me)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering: try again shortly")
		return
	}
	s.render(w, r, "nodes.html", me, map[string]any{"Nodes": nodes, "Updated": updated, "Title": "Nodes"})
}

// courseView is the admins' view of the whole course.
type courseView struct {
	Users   []userRow
	Waiting []*store.Job // queued jobs, longest waiting first
	Running int
	Queued  int
}

type userRow struct {
	User    string `json:"user"`
	Jobs    int64  `json:"jobs"`
	Running int    `json:"running"`
	Queued  int    `json:"queued"`
}

// maxWaitingShown is how many of the longest-waiting jobs the course view lists.
const maxWaitingShown = 50

func (s *Server) course(ctx context.Context) (*courseView, error) {
	counts, err := s.o.Store.UserCounts(ctx)
	if err != nil {
		return nil, err
	}
	active, err := s.o.Store.ActiveJobs(ctx, 10000)
	if err != nil {
		return nil, err
	}
	rows := map[string]*userRow{}
	for u, n := range counts {
		rows[u] = &userRow{User: u, Jobs: n}
	}
	v := &courseView{}
	for _, j := range active {
		row := rows[j.User]
		if row == nil {
			row = &userRow{User: j.User}
			rows[j.User] = row
		}
		switch j.State {
		case job.Running, job.Completing:
			row.Running++
			v.Running++
		case job.Queued, job.Requeued:
			row.Queued++
			v.Queued++
			v.Waiting = append(v.Waiting, j)
		}
	}
	sort.Slice(v.Waiting, func(a, b int) bool { return v.Waiting[a].Submitted.Before(v.Waiting[b].Submitted) })
	if len(v.Waiting) > maxWaitingShown {
		v.Waiting = v.Waiting[:maxWaitingShown]
	}
	for _, r := range rows {
		v.Users = append(v.Users, *r)
	}
	sort.Slice(v.Users, func(a, b int) bool {
		x, y := v.Users[a], v.Users[b]
		if x.Running+x.Queued != y.Running+y.Queued {
			return x.Running+x.Queued > y.Running+y.Queued
		}
		if x.Jobs != y.Jobs {
			return x.Jobs > y.Jobs
		}
		return x.User < y.User
	})
	return v, nil
}

func (s *Server) coursePage(w http.ResponseWriter, r *http.Request, me *who) {
	if !me.Admin {
		s.fail(w, r, http.StatusForbidden, "the course view is for the course's admins and TAs")
		return
	}
	v, err := s.course(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering: try again shortly")
		return
	}
	s.render(w, r, "course.html", me, map[string]any{"C": v, "Title": "Course"})
}
