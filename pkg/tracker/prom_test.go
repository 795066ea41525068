package tracker

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape returns the tracker's own samples from the metrics endpoint, as
// Prometheus reads them (histogram buckets left out), one per line.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "ferry_tracker_") && !strings.Contains(line, "_bucket{") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// Every failed Slurm command and every failed store call is counted, be
// it a write (Apply) or a read (Load at start, Generation after a write
// whose answer was lost).
func TestMetricsCountErrors(t *testing.T) {
	e := newEnv(t)
	flaky := &flakyStore{Store: e.st}
	e.tr = e.newTracker()
	e.tr.o.Store = flaky
	m := e.tr.o.Metrics
	_, l := e.submit("p", nil)
	e.slurm.set(l)
	ctx := context.Background()

	body := scrape(t, m)
	for _, want := range []string{
		`ferry_tracker_slurm_errors_total{command="squeue"} 0`,
		`ferry_tracker_slurm_errors_total{command="sinfo"} 0`,
		`ferry_tracker_redis_errors_total 0`,
	} {
		assert.Contains(t, body, want+"\n", "before any error")
	}

	steps := []struct {
		name    string
		fail    func()
		wantErr string
		want    []string
	}{
		{"the store cannot be read at start (Load)", func() { flaky.failLoad = true }, "connection refused",
			[]string{`ferry_tracker_redis_errors_total 1`, `ferry_tracker_redis_up 0`}},
		{"a write fails (Apply)", func() { flaky.failBefore = true }, "connection reset",
			[]string{`ferry_tracker_redis_errors_total 2`, `ferry_tracker_redis_up 0`}},
		{"the generation check after it fails (Generation)", func() { flaky.failGen = true }, "i/o timeout",
			[]string{`ferry_tracker_redis_errors_total 3`, `ferry_tracker_redis_up 0`}},
		{"squeue fails", func() { e.slurm.fail(errors.New("squeue: Unable to contact slurm controller")) }, "Unable to contact",
			[]string{`ferry_tracker_slurm_errors_total{command="squeue"} 1`, `ferry_tracker_slurm_up 0`,
				`ferry_tracker_redis_errors_total 3`, `ferry_tracker_redis_up 1`}},
	}
	for _, st := range steps {
		st.fail()
		err := e.tr.Tick(ctx)
		assert.ErrorContains(t, err, st.wantErr, st.name)
		body := scrape(t, m)
		for _, want := range st.want {
			assert.Contains(t, body, want+"\n", st.name)
		}
	}
	// sinfo fails (Slurm is still down), then everything answers again.
	assert.Error(t, e.tr.Nodes(ctx))
	e.slurm.fail(nil)
	e.tick()
	require.NoError(t, e.tr.Nodes(ctx))
	body = scrape(t, m)
	for _, want := range []string{
		`ferry_tracker_slurm_errors_total{command="squeue"} 1`,
		`ferry_tracker_slurm_errors_total{command="sinfo"} 1`,
		`ferry_tracker_slurm_up 1`,
		`ferry_tracker_redis_errors_total 3`,
		`ferry_tracker_redis_up 1`,
		`ferry_tracker_jobs{state="queued"} 1`,
	} {
		assert.Contains(t, body, want+"\n")
	}
}
