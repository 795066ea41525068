package dashboard

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// PageSize is the number of jobs a list shows.
const PageSize = 50

// maxScan bounds how many index entries a filtered list reads to fill
// one page: a filter that matches little says so instead of reading
// everything.
const maxScan = 5000

func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("GET /static/", staticHandler())
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("GET /auth/oidc", s.oidcBegin)
	m.HandleFunc("GET /auth/callback", s.oidcCallback)
	if s.o.OIDC != nil && s.o.OIDC.CallbackPath() != "/auth/callback" {
		m.HandleFunc("GET "+s.o.OIDC.CallbackPath(), s.oidcCallback)
	}
	m.Handle("POST /logout", s.page(s.logout))
	m.Handle("GET /{$}", s.page(func(w http.ResponseWriter, r *http.Request, _ *who) {
		http.Redirect(w, r, "/jobs", http.StatusSeeOther)
	}))
	m.Handle("GET /jobs", s.page(s.jobsPage))
	m.Handle("GET /jobs/{id}", s.page(s.jobPage))
	m.Handle("GET /jobs/{id}/row", s.page(s.jobRow))
	m.Handle("GET /jobs/{id}/summary", s.page(s.jobSummary))
	m.Handle("GET /jobs/{id}/log", s.page(s.logRaw))
	m.Handle("GET /jobs/{id}/log/stream", s.page(s.logStream))
	m.Handle("GET /jobs/{id}/outputs/{path...}", s.page(s.outputFile))
	m.Handle("POST /jobs/{id}/cancel", s.page(s.cancelJob))
	m.Handle("GET /sweeps/{id}", s.page(s.sweepPage))
	m.Handle("GET /sweeps/{id}/table", s.page(s.sweepTable))
	m.Handle("GET /projects/{name}", s.page(s.projectPage))
	m.Handle("GET /projects/{name}/table", s.page(s.projectTable))
	m.Handle("GET /nodes", s.page(s.nodesPage))
	m.Handle("GET /course", s.page(s.coursePage))
	m.Handle("GET /events", s.page(s.events))
	s.apiRoutes(m)
	s.mux = m
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.o.Store.Meta(ctx); err != nil {
		http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok\n"))
}

// listQuery is a jobs list's filters and place.
type listQuery struct {
	User    string // "" = everyone (admins only)
	Project string
	State   string // a state, or a group: active, failed
	Page    int    // unfiltered lists: the page, from 0
	After   int64  // filtered lists: the index offset to go on from
}

func (s *Server) parseList(r *http.Request, me *who) listQuery {
	q := r.URL.Query()
	lq := listQuery{User: q.Get("user"), Project: q.Get("project"), State: q.Get("state")}
	if !me.Admin {
		lq.User = me.User
	} else if lq.User == "me" {
		lq.User = me.User
	}
	lq.Page, _ = strconv.Atoi(q.Get("page"))
	lq.Page = max(0, min(lq.Page, 1_000_000))
	lq.After, _ = strconv.ParseInt(q.Get("after"), 10, 64)
	lq.After = max(0, lq.After)
	if len(lq.Project) > 128 {
		lq.Project = lq.Project[:128]
	}
	return lq
}

// stateMatch reports whether st is in the filter's group.
func stateMatch(filter string, st job.State) bool {
	switch filter {
	case "":
		return true
	case "active":
		return !st.Terminal()
	case "failed":
		return st == job.Failed || st == job.Timeout || st == job.OutOfMemory || st == job.NodeFail || st == job.Lost
	}
	return string(st) == filter
}

// listResult is one page of a list.
type listResult struct {
	Jobs     []*store.Job
	Total    int64 // entries in the index read
	Filtered bool  // predicates beyond the index: paged by cursor
	Next     int64 // filtered: the cursor of the next page; 0 = none
	Scanned  int64 // filtered: index entries read for this page
	Capped   bool  // filtered: stopped at maxScan before the page was full
	HasPrev  bool
	HasNext  bool
}

// list reads one page: the user's, the project's or the global index,
// newest first. A filter the index does not cover is applied while
// reading it in chunks, at most maxScan entries per page.
func (s *Server) list(ctx context.Context, lq listQuery) (*listResult, error) {
	p := store.Page{User: lq.User, Limit: PageSize}
	projectFilter := lq.Project != "" && lq.User != ""
	if lq.User == "" {
		p.Project = lq.Project
	}
	if !projectFilter && lq.State == "" {
		p.Offset = int64(lq.Page) * PageSize
		jobs, total, err := s.o.Store.Jobs(ctx, p)
		if err != nil {
			return nil, err
		}
		return &listResult{Jobs: jobs, Total: total, HasPrev: lq.Page > 0, HasNext: p.Offset+int64(len(jobs)) < total}, nil
	}
	if lq.User == "" && activeFilter(lq.State) {
		return s.listActive(ctx, lq)
	}
	res := &listResult{Filtered: true, HasPrev: lq.After > 0}
	off := lq.After
	const chunk = 200
	for len(res.Jobs) < PageSize && res.Scanned < maxScan {
		p.Offset, p.Limit = off, chunk
		jobs, total, err := s.o.Store.Jobs(ctx, p)
		if err != nil {
			return nil, err
		}
		res.Total = total
		taken := int64(0)
		for _, j := range jobs {
			taken++
			if (!projectFilter || j.Project == lq.Project) && stateMatch(lq.State, j.State) {
				res.Jobs = append(res.Jobs, j)
				if len(res.Jobs) == PageSize {
					break
				}
			}
		}
		off += taken
		res.Scanned += taken
		if len(jobs) < chunk || off >= total {
			break
		}
	}
	if off < res.Total {
		res.Next, res.HasNext = off, true
		res.Capped = len(res.Jobs) < PageSize
	}
	return res, nil
}

// activeFilter reports whether a state filter keeps only jobs that have
// not ended: the active set holds them all, however many jobs have ended.
func activeFilter(state string) bool {
	switch job.State(state) {
	case "active", job.Queued, job.Running, job.Completing, job.Requeued:
		return true
	}
	return false
}

// listActive pages the jobs that have not ended (everyone's: an admin's
// view), newest first, from the active set instead of the whole index.
func (s *Server) listActive(ctx context.Context, lq listQuery) (*listResult, error) {
	active, err := s.o.Store.ActiveJobs(ctx, maxScan)
	if err != nil {
		return nil, err
	}
	res := &listResult{Filtered: true, HasPrev: lq.After > 0, Scanned: int64(len(active)), Total: int64(len(active))}
	var match []*store.Job
	for i := len(active) - 1; i >= 0; i-- { // the set is oldest first
		j := active[i]
		if (lq.Project == "" || j.Project == lq.Project) && stateMatch(lq.State, j.State) {
			match = append(match, j)
		}
	}
	from := min(lq.After, int64(len(match)))
	to := min(from+PageSize, int64(len(match)))
	res.Jobs = match[from:to]
	if to < int64(len(match)) {
		res.Next, res.HasNext = to, true
	}
	res.Capped = len(active) == maxScan
	return res, nil
}

func (s *Server) jobsPage(w http.ResponseWriter, r *http.Request, me *who) {
	since := s.hub.Last() // before the store is read: no change falls between
	lq := s.parseList(r, me)
	res, err := s.list(r.Context(), lq)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering: try again shortly")
		return
	}
	s.render(w, r, "jobs.html", me, map[string]any{
		"Q": lq, "R": res, "States": []string{"active", "queued", "running", "succeeded", "failed", "cancelled"},
		"Title": "Jobs", "Since": since,
	})
}

// jobView is what the job page and its fragments show.
type jobView struct {
	Job      *store.Job
	Events   []store.Event
	Position int64
	InQueue  int64
	Params   []kv
	Metrics  []kv
}

type kv struct {
	Key   string
	Value any
}

func (s *Server) jobView(ctx context.Context, j *store.Job) *jobView {
	v := &jobView{Job: j}
	v.Events, _ = s.o.Store.JobEvents(ctx, j.ID)
	if j.State == job.Queued {
		v.Position, v.InQueue, _ = s.o.Store.QueuePosition(ctx, j.ID)
	}
	keys, m := objectFields(j.Params)
	for _, k := range keys {
		v.Params = append(v.Params, kv{k, m[k]})
	}
	keys, m = objectFields(j.Metrics)
	for _, k := range keys {
		v.Metrics = append(v.Metrics, kv{k, m[k]})
	}
	return v
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request, me *who) {
	since := s.hub.Last()
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	v := s.jobView(r.Context(), j)
	tail, off, size, err := s.logTail(j, logTailBytes)
	outs, outErr := s.listOutputs(j)
	charts := s.metricCharts(r.Context(), j)
	s.render(w, r, "job.html", me, map[string]any{
		"V": v, "Title": "Job " + j.ID.Short(),
		"Log": tail, "LogOffset": off, "LogNext": off + int64(len(tail)), "LogSize": size, "LogErr": errText(err),
		"Outputs": outs, "OutputsErr": errText(outErr), "Charts": charts,
		"Reproduce": s.reproduce(j), "Since": since,
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// jobRow is one row of the jobs table, for live updates.
func (s *Server) jobRow(w http.ResponseWriter, r *http.Request, me *who) {
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	s.render(w, r, "jobrow", me, map[string]any{"J": j, "ShowUser": me.Admin})
}

// jobSummary is the state part of a job page, for live updates.
func (s *Server) jobSummary(w http.ResponseWriter, r *http.Request, me *who) {
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	s.render(w, r, "jobsummary", me, map[string]any{"V": s.jobView(r.Context(), j)})
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, me *who) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !checkCSRF(r, me) {
		s.fail(w, r, http.StatusForbidden, "the form is stale: reload the page and try again")
		return
	}
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	code, msg := s.cancel(r.Context(), me, j)
	if code != http.StatusOK {
		s.fail(w, r, code, msg)
		return
	}
	if r.Header.Get("X-Ferry-Fragment") != "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, "/jobs/"+string(j.ID), http.StatusSeeOther)
}

// cancel cancels j for me, who may see it.
func (s *Server) cancel(ctx context.Context, me *who, j *store.Job) (int, string) {
	switch {
	case !canSee(me, j):
		return http.StatusNotFound, "no such job (or not one of yours)"
	case j.State.Terminal():
		return http.StatusConflict, "job " + j.ID.Short() + " already ended (" + string(j.State) + "); nothing to cancel"
	case j.SlurmID == "":
		return http.StatusConflict, "job " + j.ID.Short() + " has no Slurm job yet; try again in a few seconds"
	case s.o.Cancel == nil:
		return http.StatusNotImplemented, "cancelling is not available on this dashboard"
	}
	markCancel(j)
	if err := s.o.Cancel.CancelOwned(ctx, j.SlurmID, j.User); err != nil {
		s.log.Warn("cancel", "job", j.ID, "slurm_id", j.SlurmID, "by", me.User, "err", err)
		return http.StatusBadGateway, "Slurm refused to cancel job " + j.ID.Short() + ": " + err.Error()
	}
	s.log.Info("cancel", "job", j.ID, "slurm_id", j.SlurmID, "owner", j.User, "by", me.User)
	return http.StatusOK, ""
}
