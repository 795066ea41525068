package tracker

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// Metrics are the tracker's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	reg         *prometheus.Registry
	jobsByState *prometheus.GaugeVec
	tickSeconds prometheus.Histogram
	slurmCalls  *prometheus.HistogramVec
	slurmErrors *prometheus.CounterVec
	slurmIsUp   prometheus.Gauge
	redisErrors prometheus.Counter
	redisIsUp   prometheus.Gauge
	resyncs     prometheus.Counter
	overruns    prometheus.Counter
	hookEvents  *prometheus.CounterVec
	endLag      prometheus.Histogram
}

// NewMetrics registers the tracker's metrics, and the Go runtime's and the
// process's, in a registry of their own.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		jobsByState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ferry_tracker_jobs", Help: "Jobs the tracker follows, by observed state.",
		}, []string{"state"}),
		tickSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ferry_tracker_tick_duration_seconds", Help: "One tick: squeue, reconcile and the store write.",
			Buckets: []float64{.005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5, 10},
		}),
		slurmCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ferry_tracker_slurm_call_duration_seconds", Help: "Latency of the Slurm commands the tracker runs.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"command"}),
		slurmErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_tracker_slurm_errors_total", Help: "Slurm commands that failed or timed out.",
		}, []string{"command"}),
		slurmIsUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_tracker_slurm_up", Help: "1 when the last squeue answered.",
		}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_tracker_redis_errors_total", Help: "Store calls that failed: reads (the store's content, its generation) and writes.",
		}),
		redisIsUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_tracker_redis_up", Help: "1 when the last store write succeeded.",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_tracker_store_rebuilds_total", Help: "Times the store had lost what the tracker wrote and was rebuilt.",
		}),
		overruns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ferry_tracker_tick_overruns_total", Help: "Ticks skipped because the previous squeue had not answered.",
		}),
		hookEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_tracker_hook_events_total", Help: "jobcomp hook events, by what became of them.",
		}, []string{"result"}),
		endLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ferry_tracker_end_to_store_seconds",
			Help:    "From a job's end (result.json) to its terminal state in the store.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 3, 5, 10, 30},
		}),
	}
	reg.MustRegister(m.jobsByState, m.tickSeconds, m.slurmCalls, m.slurmErrors, m.slurmIsUp, m.redisErrors,
		m.redisIsUp, m.resyncs, m.overruns, m.hookEvents, m.endLag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, s := range job.States {
		m.jobsByState.WithLabelValues(string(s))
	}
	for _, c := range []string{"squeue", "sinfo"} {
		m.slurmErrors.WithLabelValues(c) // 0 until the first error, not absent
	}
	return m
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Register adds a collector to the tracker's registry (e.g. the store's
// round trips).
func (m *Metrics) Register(c prometheus.Collector) { m.reg.MustRegister(c) }

func (m *Metrics) jobs(counts map[job.State]int) {
	if m == nil {
		return
	}
	for _, s := range job.States {
		m.jobsByState.WithLabelValues(string(s)).Set(float64(counts[s]))
	}
}

func (m *Metrics) tick(d time.Duration) {
	if m != nil {
		m.tickSeconds.Observe(d.Seconds())
	}
}

func (m *Metrics) slurmCall(cmd string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.slurmCalls.WithLabelValues(cmd).Observe(d.Seconds())
	if err != nil {
		m.slurmErrors.WithLabelValues(cmd).Inc()
	}
}

func (m *Metrics) slurmUp(up bool) {
	if m != nil {
		m.slurmIsUp.Set(b2f(up))
	}
}

func (m *Metrics) redisUp(up bool) {
	if m != nil {
		m.redisIsUp.Set(b2f(up))
	}
}

func (m *Metrics) redisError() {
	if m != nil {
		m.redisErrors.Inc()
	}
}

func (m *Metrics) resync() {
	if m != nil {
		m.resyncs.Inc()
	}
}

func (m *Metrics) overrun() {
	if m != nil {
		m.overruns.Inc()
	}
}

func (m *Metrics) hook(result string) {
	if m != nil {
		m.hookEvents.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) endToStore(d time.Duration) {
	if m != nil && d >= 0 {
		m.endLag.Observe(d.Seconds())
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
