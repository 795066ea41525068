package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// Hash fields of job:<id>. Scalars are plain text (times RFC 3339 in UTC
// with milliseconds, numbers in decimal); params and metrics are JSON
// objects. An empty value is no field at all.
const (
	fID            = "id"
	fUser          = "user"
	fUID           = "uid"
	fProject       = "project"
	fName          = "name"
	fSlurmID       = "slurm_id"
	fArrayIndex    = "array_index"
	fState         = "state"
	fReason        = "reason"
	fExitCode      = "exit_code"
	fNode          = "node"
	fSubmitted     = "submitted"
	fStarted       = "started"
	fEnded         = "ended"
	fEstStart      = "est_start"
	fPriority      = "priority"
	fSweep         = "sweep"
	fTaskIndex     = "task_index"
	fParams        = "params"
	fMetrics       = "metrics"
	fMetricsOffset = "metrics_offset"
	fDir           = "dir"
	fImage         = "image"
	fSource        = "source"
	fUpdated       = "updated"
)

// TimeFormat is how times are written in hashes: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeFormat)
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// compactJSON returns raw without insignificant space, or nil when raw is
// empty, null or not JSON.
func compactJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil || b.String() == "null" {
		return ""
	}
	return b.String()
}

// fields encodes j as hash fields; empty values are left out.
func (j *Job) fields() map[string]string {
	m := make(map[string]string, 25)
	put := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	put(fID, string(j.ID))
	put(fUser, j.User)
	if j.UID >= 0 {
		put(fUID, strconv.Itoa(j.UID))
	}
	put(fProject, j.Project)
	put(fName, j.Name)
	put(fSlurmID, j.SlurmID)
	if j.ArrayIndex >= 0 {
		put(fArrayIndex, strconv.Itoa(j.ArrayIndex))
	}
	put(fState, string(j.State))
	put(fReason, j.Reason)
	if j.ExitCode != nil {
		put(fExitCode, strconv.Itoa(*j.ExitCode))
	}
	put(fNode, j.Node)
	put(fSubmitted, formatTime(j.Submitted))
	put(fStarted, formatTime(j.Started))
	put(fEnded, formatTime(j.Ended))
	put(fEstStart, formatTime(j.EstStart))
	if j.Priority != 0 {
		put(fPriority, strconv.FormatInt(j.Priority, 10))
	}
	if j.Sweep != "" {
		put(fSweep, string(j.Sweep))
		put(fTaskIndex, strconv.Itoa(j.TaskIndex))
	}
	put(fParams, compactJSON(j.Params))
	put(fMetrics, compactJSON(j.Metrics))
	if j.MetricsOffset > 0 {
		put(fMetricsOffset, strconv.FormatInt(j.MetricsOffset, 10))
	}
	put(fDir, j.Dir)
	put(fImage, j.Image)
	put(fSource, string(j.Source))
	put(fUpdated, formatTime(j.Updated))
	return m
}

// decodeJob reads a job hash back. A hash without an id is not a job.
func decodeJob(m map[string]string) (*Job, error) {
	id := m[fID]
	if id == "" {
		return nil, fmt.Errorf("job hash without %q field", fID)
	}
	j := &Job{
		ID: job.ID(id), User: m[fUser], UID: -1, Project: m[fProject], Name: m[fName],
		SlurmID: m[fSlurmID], ArrayIndex: -1, State: job.State(m[fState]), Reason: m[fReason],
		Node: m[fNode], Submitted: parseTime(m[fSubmitted]), Started: parseTime(m[fStarted]),
		Ended: parseTime(m[fEnded]), EstStart: parseTime(m[fEstStart]), Sweep: job.ID(m[fSweep]),
		Dir: m[fDir], Image: m[fImage], Source: Source(m[fSource]), Updated: parseTime(m[fUpdated]),
	}
	if v, err := strconv.ParseInt(m[fPriority], 10, 64); err == nil {
		j.Priority = v
	}
	if v, err := strconv.Atoi(m[fTaskIndex]); err == nil && j.Sweep != "" {
		j.TaskIndex = v
	}
	if v, err := strconv.Atoi(m[fUID]); err == nil {
		j.UID = v
	}
	if v, err := strconv.Atoi(m[fArrayIndex]); err == nil {
		j.ArrayIndex = v
	}
	if v, err := strconv.Atoi(m[fExitCode]); err == nil {
		j.ExitCode = &v
	}
	if v, err := strconv.ParseInt(m[fMetricsOffset], 10, 64); err == nil {
		j.MetricsOffset = v
	}
	if s := m[fParams]; s != "" {
		j.Params = json.RawMessage(s)
	}
	if s := m[fMetrics]; s != "" {
		j.Metrics = json.RawMessage(s)
	}
	return j, nil
}

// diffFields returns the fields of n that differ from o, and the fields
// o has that n has not. The update time alone is no difference.
func diffFields(o, n map[string]string) (set map[string]string, del []string) {
	set = map[string]string{}
	for k, v := range n {
		if k == fUpdated {
			continue
		}
		if ov, ok := o[k]; !ok || ov != v {
			set[k] = v
		}
	}
	for k := range o {
		if _, ok := n[k]; !ok && k != fUpdated {
			del = append(del, k)
		}
	}
	return set, del
}

// Equal reports whether a and b would be stored the same way (the update
// time aside). It is the tracker's hot path: no encoding unless the JSON
// fields differ byte for byte.
func Equal(a, b *Job) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ID == b.ID && a.User == b.User && max(a.UID, -1) == max(b.UID, -1) && a.Project == b.Project &&
		a.Name == b.Name && a.SlurmID == b.SlurmID && max(a.ArrayIndex, -1) == max(b.ArrayIndex, -1) &&
		a.State == b.State && a.Reason == b.Reason && sameInt(a.ExitCode, b.ExitCode) && a.Node == b.Node &&
		sameTime(a.Submitted, b.Submitted) && sameTime(a.Started, b.Started) && sameTime(a.Ended, b.Ended) &&
		sameTime(a.EstStart, b.EstStart) && a.Priority == b.Priority &&
		a.Sweep == b.Sweep && (a.Sweep == "" || a.TaskIndex == b.TaskIndex) &&
		sameJSON(a.Params, b.Params) && sameJSON(a.Metrics, b.Metrics) &&
		max(a.MetricsOffset, 0) == max(b.MetricsOffset, 0) && a.Dir == b.Dir && a.Image == b.Image && a.Source == b.Source
}

func sameInt(a, b *int) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// sameTime compares times as they are stored: to the millisecond.
func sameTime(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return a.IsZero() == b.IsZero()
	}
	return a.UnixMilli() == b.UnixMilli()
}

func sameJSON(a, b json.RawMessage) bool {
	return bytes.Equal(a, b) || compactJSON(a) == compactJSON(b)
}

// score is a job's place in the time-sorted indexes: its submit time in
// Unix milliseconds (the id's own time when the submit time is unknown).
func (j *Job) score() float64 {
	t := j.Submitted
	if t.IsZero() {
		t = j.ID.Time()
	}
	return float64(t.UnixMilli())
}

// queued reports whether the job belongs in the queue set.
func (j *Job) queued() bool { return j.State == job.Queued }

// queueScore is a queued job's place in the queue set: higher priority
// first. Jobs of equal priority share a score, and Redis orders them by
// member, the job id: a ULID, so in submit order.
func (j *Job) queueScore() float64 { return -float64(j.Priority) }
