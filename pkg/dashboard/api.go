package dashboard

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// The JSON API under /api/v1 serves the pages' data to the CLI, the
// notebook client and scripts. It takes the session cookie or a bearer
// token "USER:TOKEN" (the home token of `ferry login`), and checks the
// same ownership as the pages.

func (s *Server) apiRoutes(m *http.ServeMux) {
	m.Handle("GET /api/v1/me", s.page(s.apiMe))
	m.Handle("GET /api/v1/jobs", s.page(s.apiJobs))
	m.Handle("GET /api/v1/jobs/{id}", s.page(s.apiJob))
	m.Handle("GET /api/v1/jobs/{id}/events", s.page(s.apiJobEvents))
	m.Handle("GET /api/v1/jobs/{id}/metrics", s.page(s.apiJobMetrics))
	m.Handle("GET /api/v1/jobs/{id}/outputs", s.page(s.apiJobOutputs))
	m.Handle("GET /api/v1/jobs/{id}/log", s.page(s.logRaw))
	m.Handle("POST /api/v1/jobs/{id}/cancel", s.page(s.apiCancel))
	m.Handle("GET /api/v1/sweeps/{id}", s.page(s.apiSweep))
	m.Handle("GET /api/v1/nodes", s.page(s.apiNodes))
	m.Handle("GET /api/v1/course", s.page(s.apiCourse))
	m.Handle("GET /api/v1/events", s.page(s.events))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// apiJob is a job as the API shows it.
type apiJob struct {
	ID        job.ID          `json:"id"`
	User      string          `json:"user"`
	Project   string          `json:"project,omitempty"`
	Name      string          `json:"name,omitempty"`
	Sweep     job.ID          `json:"sweep,omitempty"`
	SlurmID   string          `json:"slurm_id,omitempty"`
	State     job.State       `json:"state"`
	Reason    string          `json:"reason,omitempty"`
	ExitCode  *int            `json:"exit_code,omitempty"`
	Node      string          `json:"node,omitempty"`
	Submitted *time.Time      `json:"submitted,omitempty"`
	Started   *time.Time      `json:"started,omitempty"`
	Ended     *time.Time      `json:"ended,omitempty"`
	EstStart  *time.Time      `json:"est_start,omitempty"`
	Position  int64           `json:"queue_position,omitempty"`
	InQueue   int64           `json:"queue_length,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Metrics   json.RawMessage `json:"metrics,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toAPI(j *store.Job) apiJob {
	return apiJob{
		ID: j.ID, User: j.User, Project: j.Project, Name: j.Name, Sweep: j.Sweep, SlurmID: j.SlurmID,
		State: j.State, Reason: j.Reason, ExitCode: j.ExitCode, Node: j.Node,
		Submitted: timePtr(j.Submitted), Started: timePtr(j.Started), Ended: timePtr(j.Ended), EstStart: timePtr(j.EstStart),
		Params: j.Params, Metrics: j.Metrics,
	}
}

func (s *Server) apiMe(w http.ResponseWriter, r *http.Request, me *who) {
	writeJSON(w, me.Identity)
}

func (s *Server) apiJobs(w http.ResponseWriter, r *http.Request, me *who) {
	lq := s.parseList(r, me)
	res, err := s.list(r.Context(), lq)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering")
		return
	}
	out := struct {
		Jobs  []apiJob `json:"jobs"`
		Total int64    `json:"total"`
		Next  string   `json:"next,omitempty"`
	}{Jobs: make([]apiJob, 0, len(res.Jobs)), Total: res.Total}
	for _, j := range res.Jobs {
		out.Jobs = append(out.Jobs, toAPI(j))
	}
	if res.HasNext {
		if res.Filtered {
			out.Next = "after=" + strconv.FormatInt(res.Next, 10)
		} else {
			out.Next = "page=" + strconv.Itoa(lq.Page+1)
		}
	}
	writeJSON(w, out)
}

func (s *Server) apiJob(w http.ResponseWriter, r *http.Request, me *who) {
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	a := toAPI(j)
	if j.State == job.Queued {
		a.Position, a.InQueue, _ = s.o.Store.QueuePosition(r.Context(), j.ID)
	}
	writeJSON(w, a)
}

func (s *Server) apiJobEvents(w http.ResponseWriter, r *http.Request, me *who) {
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	evs, err := s.o.Store.JobEvents(r.Context(), j.ID)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering")
		return
	}
	if evs == nil {
		evs = []store.Event{}
	}
	writeJSON(w, evs)
}

func (s *Server) apiJobMetrics(w http.ResponseWriter, r *http.Request, me *who) {
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	hist, err := s.o.Store.MetricHistory(r.Context(), j.ID, 0, -1)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering")
		return
	}
	if hist == nil {
		hist = []json.RawMessage{}
	}
	writeJSON(w, map[string]any{"latest": j.Metrics, "history": hist})
}

func (s *Server) apiJobOutputs(w http.ResponseWriter, r *http.Request, me *who) {
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	outs, err := s.listOutputs(j)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, err.Error())
		return
	}
	type file struct {
		Path string    `json:"path"`
		Size int64     `json:"size"`
		Mod  time.Time `json:"modified"`
		URL  string    `json:"url"`
	}
	list := make([]file, 0, len(outs))
	for _, o := range outs {
		list = append(list, file{o.Path, o.Size, o.Mod, "/jobs/" + string(j.ID) + "/outputs/" + o.Path})
	}
	writeJSON(w, list)
}

func (s *Server) apiCancel(w http.ResponseWriter, r *http.Request, me *who) {
	if !checkCSRF(r, me) {
		s.fail(w, r, http.StatusForbidden, "missing or stale X-Ferry-CSRF header")
		return
	}
	j := s.loadJob(w, r, me)
	if j == nil {
		return
	}
	if code, msg := s.cancel(r.Context(), me, j); code != http.StatusOK {
		s.fail(w, r, code, msg)
		return
	}
	writeJSON(w, map[string]any{"id": j.ID, "cancelled": true})
}

func (s *Server) apiSweep(w http.ResponseWriter, r *http.Request, me *who) {
	v := s.sweep(w, r, me, false)
	if v == nil {
		return
	}
	type task struct {
		apiJob
		Index int `json:"index"`
	}
	out := struct {
		ID      job.ID   `json:"id"`
		User    string   `json:"user"`
		Project string   `json:"project,omitempty"`
		Total   int64    `json:"total"`
		Params  []string `json:"varying_params"`
		Metrics []string `json:"metrics"`
		Target  string   `json:"target,omitempty"`
		Best    job.ID   `json:"best,omitempty"`
		Tasks   []task   `json:"tasks"`
	}{ID: v.ID, User: v.User, Project: v.Project, Total: v.Total, Params: v.Params, Metrics: v.Metrics, Target: v.Target}
	if v.Best != nil {
		out.Best = v.Best.Job.ID
	}
	for _, row := range v.Rows {
		out.Tasks = append(out.Tasks, task{toAPI(row.Job), row.Job.TaskIndex})
	}
	writeJSON(w, out)
}

func (s *Server) apiNodes(w http.ResponseWriter, r *http.Request, me *who) {
	nodes, _, err := s.nodes(r.Context(), me)
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering")
		return
	}
	type node struct {
		store.Node
		Job   job.ID     `json:"job,omitempty"`
		Busy  bool       `json:"busy"`
		Since *time.Time `json:"since,omitempty"`
	}
	out := make([]node, 0, len(nodes))
	for _, n := range nodes {
		x := node{Node: n.Node, Busy: n.Job != nil || n.Other, Since: timePtr(n.Since)}
		if n.Job != nil {
			x.Job = n.Job.ID
		}
		out = append(out, x)
	}
	writeJSON(w, out)
}

func (s *Server) apiCourse(w http.ResponseWriter, r *http.Request, me *who) {
	if !me.Admin {
		s.fail(w, r, http.StatusForbidden, "the course view is for admins")
		return
	}
	v, err := s.course(r.Context())
	if err != nil {
		s.fail(w, r, http.StatusServiceUnavailable, "the job store is not answering")
		return
	}
	waiting := make([]apiJob, 0, len(v.Waiting))
	for _, j := range v.Waiting {
		waiting = append(waiting, toAPI(j))
	}
	writeJSON(w, map[string]any{"users": v.Users, "waiting": waiting, "running": v.Running, "queued": v.Queued})
}
