package tracker

import (
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// commit writes what changed in one batch, checking that the store still
// holds what the tracker wrote last; when it does not, the store is
// rebuilt from the tracker's own state at once.
func (t *Tracker) commit(ctx context.Context, meta map[string]string) error {
	if t.inflight != nil {
		// The last batch failed with no answer: did it land?
		g, err := t.o.Store.Generation(ctx)
		if err != nil {
			t.redisFailed(err)
			return err
		}
		switch g {
		case t.gen: // it did not
		case t.inflight.gen:
			t.landed(t.inflight)
		default:
			t.startRebuild(g)
		}
		t.inflight = nil
	}
	for attempt := 0; ; attempt++ {
		b, p := t.batch(meta)
		got, err := t.o.Store.Apply(ctx, b)
		if err != nil {
			p.gen = t.gen + 1
			t.inflight = p
			t.redisFailed(err)
			return err
		}
		t.redisOK()
		p.gen = got
		if got == t.gen+1 {
			t.landed(p)
			return nil
		}
		// Flushed, restarted empty, or restored from an older snapshot.
		t.o.Log.Warn("the store does not hold what the tracker wrote: rebuilding it", "expected_gen", t.gen+1, "gen", got)
		t.o.Metrics.resync()
		t.startRebuild(got)
		if attempt == 1 {
			return nil // it changed under us twice: go on next tick
		}
	}
}

// startRebuild makes the next batch rewrite everything, metric histories
// included, as if the store were empty.
func (t *Tracker) startRebuild(gen int64) {
	t.gen, t.rebuild = gen, true
	for _, e := range t.entries {
		e.metricsDone = false
		e.points, e.pointsReset = nil, false
	}
	if t.reconciled {
		t.readAllMetrics()
	}
}

// batch builds the next batch and what the store will hold once it lands.
func (t *Tracker) batch(meta map[string]string) (*store.Batch, *pending) {
	now := t.o.Now()
	b := &store.Batch{Meta: meta}
	p := &pending{rebuild: t.rebuild && t.reconciled, jobs: map[job.ID]store.Job{}}
	switch {
	case !t.reconciled:
		// Nothing is published before Slurm and the spools were read.
		if t.nodesNew != nil {
			p.nodes = t.nodesNew
			b.Nodes, b.NodesFull = nodeList(t.nodesNew), true
		}
		return b, p
	case t.rebuild:
		for id, e := range t.entries {
			n := e.cur
			if n == nil {
				n = e.pub
			}
			if n == nil {
				continue
			}
			b.Jobs = append(b.Jobs, store.JobChange{New: *n})
			p.jobs[id] = *n
		}
		b.JobsFull = true // the queue set is rewritten too
		b.Events = append(b.Events, store.Event{Type: store.EventResync, At: now})
		nodes := t.nodesPub
		if t.nodesNew != nil {
			nodes = t.nodesNew
		}
		p.nodes = nodes
		b.Nodes, b.NodesFull = nodeList(nodes), true
	default:
		for id, e := range t.dirty {
			if e.cur == nil || store.Equal(e.pub, e.cur) {
				continue
			}
			b.Jobs = append(b.Jobs, store.JobChange{Old: e.pub, New: *e.cur})
			p.jobs[id] = *e.cur
			if e.pub == nil || e.pub.State != e.cur.State {
				ev := store.Event{Type: store.EventState, ID: id, User: e.cur.User, Project: e.cur.Project,
					SlurmID: e.cur.SlurmID, State: e.cur.State, Reason: e.cur.Reason, ExitCode: e.cur.ExitCode,
					Source: e.cur.Source, At: now}
				if e.pub != nil {
					ev.Prev = e.pub.State
				}
				b.Events = append(b.Events, ev)
			}
		}
		for _, e := range t.removed {
			n := e.pub
			if n == nil {
				n = e.cur
			}
			if n == nil {
				continue
			}
			b.Removed = append(b.Removed, *n)
			b.Events = append(b.Events, store.Event{Type: store.EventRemoved, ID: n.ID, User: n.User, Project: n.Project, At: now})
		}
		p.removed = t.removed
		if t.nodesNew != nil {
			p.nodes = t.nodesNew
			b.Nodes, b.NodesFull = nodeList(t.nodesNew), true
		}
	}
	for id, e := range t.entries {
		if len(e.points) > 0 || e.pointsReset {
			if _, written := p.jobs[id]; !written {
				continue // the offset would not move with them
			}
			b.Metrics = append(b.Metrics, store.MetricPoints{ID: id, Reset: e.pointsReset, Points: e.points})
		}
	}
	return b, p
}

// landed records that a batch reached the store.
func (t *Tracker) landed(p *pending) {
	t.gen = p.gen
	now := t.o.Now()
	for id, j := range p.jobs {
		e := t.entries[id]
		if e == nil {
			continue
		}
		if !p.rebuild && j.State.Terminal() && e.pub != nil && !e.pub.State.Terminal() && !j.Ended.IsZero() {
			t.o.Metrics.endToStore(now.Sub(j.Ended))
		}
		jj := j
		e.pub = &jj
		if e.cur != nil && store.Equal(e.cur, &jj) {
			delete(t.dirty, id)
		}
		e.points, e.pointsReset = nil, false
		if j.State.Terminal() && e.dir != "" {
			e.metricsDone = true
		}
	}
	if p.rebuild {
		t.rebuild = false
		clear(t.dirty)
		for id, e := range t.entries {
			if e.cur != nil && !store.Equal(e.cur, e.pub) {
				t.dirty[id] = e
			}
		}
	}
	if p.nodes != nil {
		t.nodesPub, t.nodesNew = p.nodes, nil
	}
	if len(p.removed) > 0 {
		t.removed = slices.DeleteFunc(t.removed, func(e *entry) bool { return slices.Contains(p.removed, e) })
	}
}

// readAllMetrics reads new lines of metrics.jsonl for the jobs that may
// have written some: running ones, ended ones once more, and all of them
// when the store is rebuilt.
func (t *Tracker) readAllMetrics() {
	for _, e := range t.entries {
		t.readMetrics(e)
	}
}

func (t *Tracker) readMetrics(e *entry) {
	if e.spec == nil || e.cur == nil {
		return
	}
	switch st := e.cur.State; {
	case t.rebuild:
	case st == job.Running || st == job.Completing:
	case st.Terminal() && !e.metricsDone:
	default:
		return
	}
	var from int64
	if !t.rebuild && e.pub != nil {
		from = e.pub.MetricsOffset
	}
	// A cheap hint first: lstat the file (following nothing but the path
	// as it is). Only its size is used; the file itself is opened safely.
	var st syscall.Stat_t
	err := syscall.Lstat(filepath.Join(e.dir, metricsRel), &st)
	if (err != nil || st.Size == from) && !t.rebuild && e.cur.MetricsOffset == from {
		if e.cur.State.Terminal() {
			e.metricsDone = true
		}
		return
	}
	var latest map[string]json.RawMessage
	if !t.rebuild && e.pub != nil && len(e.pub.Metrics) > 0 {
		_ = json.Unmarshal(e.pub.Metrics, &latest)
	}
	points, newest, next, reset, err := e.files().readMetrics(from)
	if err != nil {
		t.o.Log.Debug("metrics", "job", e.id, "err", err)
		if e.cur.State.Terminal() {
			e.metricsDone = true
		}
		return
	}
	if reset {
		latest = nil
	}
	if len(newest) > 0 {
		if latest == nil {
			latest = map[string]json.RawMessage{}
		}
		maps.Copy(latest, newest)
	}
	n := *e.cur
	n.MetricsOffset = next
	n.Metrics = nil
	if len(latest) > 0 {
		if data, err := json.Marshal(latest); err == nil {
			n.Metrics = data
		}
	}
	e.points, e.pointsReset = points, reset || (from == 0 && (len(points) > 0 || t.rebuild))
	if store.Equal(e.cur, &n) {
		if e.cur.State.Terminal() && len(points) == 0 {
			e.metricsDone = true
		}
		return
	}
	e.cur = &n
	t.dirty[e.id] = e
}

// applyNodes records sinfo's answer and writes it when it changed.
func (t *Tracker) applyNodes(ctx context.Context, nodes []slurm.Node) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.o.Now()
	next := make(map[string]store.Node, len(nodes))
	changed := len(nodes) != len(t.nodesPub)
	for _, n := range nodes {
		sn := store.Node{Name: n.Name, State: n.State, Flags: n.Flags, Responding: n.Responding(), CPUs: n.CPUs,
			MemBytes: n.MemBytes, Reason: n.Reason, Partitions: n.Partitions, Updated: now}
		old, ok := t.nodesPub[n.Name]
		if ok {
			cmp := sn
			cmp.Updated = old.Updated
			if nodeEqual(old, cmp) {
				sn = old
			} else {
				changed = true
			}
		} else {
			changed = true
		}
		next[n.Name] = sn
	}
	if !changed || !t.loaded {
		return nil
	}
	t.nodesNew = next
	return t.commit(ctx, nil)
}

func nodeEqual(a, b store.Node) bool {
	return a.Name == b.Name && a.State == b.State && a.Flags == b.Flags && a.Responding == b.Responding &&
		a.CPUs == b.CPUs && a.MemBytes == b.MemBytes && a.Reason == b.Reason && slices.Equal(a.Partitions, b.Partitions) &&
		a.Updated.Equal(b.Updated)
}

func nodeList(m map[string]store.Node) []store.Node {
	out := make([]store.Node, 0, len(m))
	for _, n := range m {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b store.Node) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
