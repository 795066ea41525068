package observe

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// Metric is one line of a job's metrics.jsonl.
type Metric struct {
	Name  string  `json:"name"`
	Value any     `json:"value"`
	Step  *int64  `json:"step,omitempty"`
	Time  float64 `json:"time,omitempty"`
}

// LatestMetrics reads a job's metrics.jsonl and returns each metric's last
// value. Lines that are not metrics (a partial last line) are skipped.
func LatestMetrics(d job.Dir) (map[string]any, error) {
	f, err := os.Open(d.Metrics())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]any{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var m Metric
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Name != "" {
			out[m.Name] = m.Value
		}
	}
	return out, sc.Err()
}
