package dashboard

import (
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"badge":    badge,
	"short":    func(id job.ID) string { return id.Short() },
	"ago":      ago,
	"when":     when,
	"dur":      fmtDur,
	"jobDur":   jobDuration,
	"num":      fmtNum,
	"json":     prettyJSON,
	"query":    query,
	"bytes":    fmtBytes,
	"add":      func(a, b int) int { return a + b },
	"waitText": waitText,
	"terminal": func(s job.State) bool { return s.Terminal() },
	"dict":     dict,
	"sortq":    sortQuery,
}

// dict builds a map for a sub-template from key/value pairs.
func dict(kv ...any) map[string]any {
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	return m
}

// sortQuery is the link of a sweep table's column header: sort by key,
// the other way round when it is the current sort.
func sortQuery(v *sweepView, key string) template.URL {
	q := url.Values{}
	q.Set("sort", key)
	desc := false
	if v.Sort == key {
		desc = !v.Desc
	} else if name, ok := strings.CutPrefix(key, "metric:"); ok {
		desc = !goalMin.MatchString(name) // best first
	}
	if desc {
		q.Set("dir", "desc")
	}
	if v.AllParams {
		q.Set("all", "1")
	}
	return template.URL("?" + q.Encode())
}

// badge is a state's CSS class.
func badge(s job.State) string {
	switch s {
	case job.Succeeded:
		return "ok"
	case job.Running, job.Completing:
		return "run"
	case job.Queued, job.Requeued:
		return "wait"
	case job.Cancelled:
		return "muted"
	case job.Unknown:
		return "unknown"
	}
	return "bad"
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := time.Since(t)
	if d < 0 {
		return "in " + fmtDur(-d)
	}
	return fmtDur(d) + " ago"
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "—"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// jobDuration is how long a job ran (or has been running), or for a queued
// job how long it has waited.
func jobDuration(j *store.Job) string {
	switch {
	case !j.Started.IsZero() && !j.Ended.IsZero():
		return fmtDur(j.Ended.Sub(j.Started))
	case !j.Started.IsZero():
		return fmtDur(time.Since(j.Started))
	case j.State == job.Queued && !j.Submitted.IsZero():
		return "waiting " + fmtDur(time.Since(j.Submitted))
	}
	return "—"
}

// waitText is why a queued job waits: the tracker's reason ("waiting:
// <sentence>") without its prefix.
func waitText(j *store.Job) string {
	r := strings.TrimPrefix(j.Reason, "waiting: ")
	if r == "waiting" || r == "" {
		return "waiting for Slurm to schedule it"
	}
	return r
}

func fmtNum(v any) string {
	switch x := v.(type) {
	case float64:
		return fmtFloat(x)
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return fmtFloat(f)
		}
		return x.String()
	case string:
		return x
	case nil:
		return ""
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func fmtFloat(f float64) string {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return strconv.FormatFloat(f, 'g', -1, 64)
	case f == math.Trunc(f) && math.Abs(f) < 1e15:
		return strconv.FormatFloat(f, 'f', -1, 64)
	case math.Abs(f) >= 1e-3 && math.Abs(f) < 1e6:
		return strconv.FormatFloat(f, 'g', 5, 64)
	}
	return strconv.FormatFloat(f, 'e', 3, 64)
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// query builds a query string from key/value pairs, leaving out empty values.
func query(kv ...any) template.URL {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		k := fmt.Sprint(kv[i])
		s := fmt.Sprint(kv[i+1])
		if s != "" && s != "0" {
			v.Set(k, s)
		}
	}
	if len(v) == 0 {
		return ""
	}
	return template.URL("?" + v.Encode())
}

// objectFields decodes a JSON object into its fields, keys sorted.
func objectFields(raw json.RawMessage) ([]string, map[string]any) {
	if len(raw) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil {
		return nil, nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, m
}

// number reads a metric or param value as a float.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
