package tracker

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// healthState is what the tracker knows of its two dependencies.
type healthState struct {
	start      time.Time
	slurm      Component
	redis      Component
	lastTick   time.Time
	tickTook   time.Duration
	slurmTook  time.Duration
	jobs       int
	states     map[job.State]int
	lastListed time.Time
}

// Component is the health of Slurm or Redis as the tracker sees it.
type Component struct {
	Status string    `json:"status"` // "ok", "unreachable", or "unknown" before the first try
	Error  string    `json:"error,omitempty"`
	Since  time.Time `json:"since,omitzero"` // when the status last changed
}

func (c *Component) set(status, errText string, at time.Time) {
	if c.Status != status {
		c.Since = at
	}
	c.Status, c.Error = status, errText
}

// Health is what /healthz answers.
type Health struct {
	OK         bool              `json:"ok"`
	Reconciled bool              `json:"reconciled"` // a listing and a spool scan were applied
	Slurm      Component         `json:"slurm"`
	Redis      Component         `json:"redis"`
	LastListed time.Time         `json:"last_listed,omitzero"` // start of the last squeue that answered
	SqueueTook string            `json:"squeue_took,omitempty"`
	Jobs       int               `json:"jobs"`
	States     map[job.State]int `json:"states,omitempty"`
	Generation int64             `json:"generation"`
	Started    time.Time         `json:"started"`
}

// Health reports the tracker's health: OK when the last squeue and the
// last store write both succeeded.
func (t *Tracker) Health() Health {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := Health{
		Reconciled: t.reconciled, Slurm: t.health.slurm, Redis: t.health.redis,
		LastListed: t.health.lastListed, Jobs: t.health.jobs, States: t.health.states,
		Generation: t.gen, Started: t.health.start,
	}
	if h.Slurm.Status == "" {
		h.Slurm.Status = "unknown"
	}
	if h.Redis.Status == "" {
		h.Redis.Status = "unknown"
	}
	if t.health.slurmTook > 0 {
		h.SqueueTook = t.health.slurmTook.Round(time.Millisecond).String()
	}
	h.OK = t.reconciled && h.Slurm.Status == "ok" && h.Redis.Status == "ok"
	return h
}

// HealthHandler serves Health as JSON: 200 when healthy, 503 otherwise.
func (t *Tracker) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := t.Health()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !h.OK {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(h)
	})
}

func (t *Tracker) slurmFailed(err error, at time.Time) {
	t.health.slurm.set("unreachable", err.Error(), at)
	t.o.Metrics.slurmUp(false)
}

func (t *Tracker) slurmOK(at time.Time, took time.Duration) {
	t.health.slurm.set("ok", "", at)
	t.health.lastListed, t.health.slurmTook = at, took
	t.o.Metrics.slurmUp(true)
}

// redisFailed records a failed store call, whichever it was (Load,
// Apply or Generation).
func (t *Tracker) redisFailed(err error) {
	t.health.redis.set("unreachable", err.Error(), t.o.Now())
	t.o.Metrics.redisUp(false)
	t.o.Metrics.redisError()
}

func (t *Tracker) redisOK() {
	t.health.redis.set("ok", "", t.o.Now())
	t.o.Metrics.redisUp(true)
}
