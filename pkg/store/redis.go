package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// Options configure Open.
type Options struct {
	Addr     string // host:port
	Password string
	DB       int
	// Prefix starts every key; default "ferry:".
	Prefix string
	// MaxEvents caps the event stream (XADD MAXLEN ~); default 100000.
	MaxEvents int64
	// MaxMetricPoints caps each job's metric history; default 10000.
	MaxMetricPoints int64
	// MaxJobEvents caps each job's own event history; default 200.
	MaxJobEvents int64
	// Timeout bounds dialing, each read and each write; default 5 s.
	Timeout time.Duration
}

// DefaultPrefix starts every key ferry writes.
const DefaultPrefix = "ferry:"

// Redis is the Store on a Redis server.
type Redis struct {
	c    *redis.Client
	o    Options
	k    Keys
	hook *counter
}

// Stats are counters of what a Redis store sent.
type Stats struct {
	RoundTrips int64 // commands and pipelines sent, each one network round trip
	Errors     int64 // round trips that failed (a missing key is no failure)
}

// Open returns a store on the server at o.Addr. It does not dial: the first
// command does, so a tracker can start while Redis is down.
func Open(o Options) *Redis {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = 100000
	}
	if o.MaxMetricPoints <= 0 {
		o.MaxMetricPoints = 10000
	}
	if o.MaxJobEvents <= 0 {
		o.MaxJobEvents = 200
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	c := redis.NewClient(&redis.Options{
		Addr:         o.Addr,
		Password:     o.Password,
		DB:           o.DB,
		Protocol:     2,
		DialTimeout:  o.Timeout,
		ReadTimeout:  o.Timeout,
		WriteTimeout: o.Timeout,
		// No silent retries: a batch whose reply was lost must not be
		// sent twice (its events would be doubled). The tracker checks
		// the generation instead.
		MaxRetries:               -1,
		DialerRetries:            1,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	h := &counter{}
	c.AddHook(h)
	return &Redis{c: c, o: o, k: Keys{Prefix: o.Prefix}, hook: h}
}

// Close closes the connections.
func (r *Redis) Close() error { return r.c.Close() }

// Keys returns the store's key names.
func (r *Redis) Keys() Keys { return r.k }

// Stats returns the counters since Open.
func (r *Redis) Stats() Stats {
	return Stats{RoundTrips: r.hook.trips.Load(), Errors: r.hook.errs.Load()}
}

// Ping checks that the server answers and accepts the password.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	return nil
}

// Generation implements Store.
func (r *Redis) Generation(ctx context.Context) (int64, error) {
	n, err := r.c.HGet(ctx, r.k.Meta(), metaGen).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	return n, nil
}

// Fields of the tracker's hash.
const metaGen = "gen"

// Apply implements Store: one MULTI/EXEC transaction, one round trip.
// Each event about a job is also appended to the job's own history (but
// the removal of a job, whose history goes with it).
func (r *Redis) Apply(ctx context.Context, b *Batch) (int64, error) {
	now := time.Now()
	pipe := r.c.TxPipeline()
	gen := pipe.HIncrBy(ctx, r.k.Meta(), metaGen, 1)
	if b.JobsFull {
		pipe.Del(ctx, r.k.Queue(), r.k.Active())
	}
	for i := range b.Jobs {
		r.writeJob(ctx, pipe, &b.Jobs[i], b.JobsFull, now)
	}
	removed := make(map[job.ID]bool, len(b.Removed))
	for i := range b.Removed {
		j := &b.Removed[i]
		removed[j.ID] = true
		pipe.Del(ctx, r.k.Job(j.ID), r.k.Metrics(j.ID), r.k.JobEvents(j.ID))
		pipe.ZRem(ctx, r.k.Jobs(), string(j.ID))
		pipe.ZRem(ctx, r.k.Queue(), string(j.ID))
		pipe.ZRem(ctx, r.k.Active(), string(j.ID))
		if j.User != "" {
			pipe.ZRem(ctx, r.k.User(j.User), string(j.ID))
		}
		if j.Project != "" {
			pipe.ZRem(ctx, r.k.Project(j.Project), string(j.ID))
		}
		if j.Sweep != "" {
			pipe.ZRem(ctx, r.k.Sweep(j.Sweep), string(j.ID))
		}
	}
	for _, m := range b.Metrics {
		key := r.k.Metrics(m.ID)
		if m.Reset {
			pipe.Del(ctx, key)
		}
		if len(m.Points) > 0 {
			vals := make([]any, len(m.Points))
			for i, p := range m.Points {
				vals[i] = string(p)
			}
			pipe.RPush(ctx, key, vals...)
			pipe.LTrim(ctx, key, -r.o.MaxMetricPoints, -1)
		}
	}
	if b.NodesFull {
		pipe.Del(ctx, r.k.Nodes())
	}
	if len(b.Nodes) > 0 {
		vals := make([]any, 0, 2*len(b.Nodes))
		for _, n := range b.Nodes {
			data, err := json.Marshal(n)
			if err != nil {
				return 0, err
			}
			vals = append(vals, n.Name, string(data))
		}
		pipe.HSet(ctx, r.k.Nodes(), vals...)
	}
	var perJob map[job.ID][]any // each job's events, in order
	var order []job.ID
	for _, e := range b.Events {
		if e.At.IsZero() {
			e.At = now
		}
		data, err := json.Marshal(e)
		if err != nil {
			return 0, err
		}
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: r.k.Events(), MaxLen: r.o.MaxEvents, Approx: true,
			Values: []any{"type", e.Type, "id", string(e.ID), "user", e.User, "event", string(data)},
		})
		if e.ID == "" || e.Type == EventRemoved || removed[e.ID] {
			continue
		}
		if perJob == nil {
			perJob = map[job.ID][]any{}
		}
		if _, ok := perJob[e.ID]; !ok {
			order = append(order, e.ID)
		}
		perJob[e.ID] = append(perJob[e.ID], string(data))
	}
	for _, id := range order {
		key := r.k.JobEvents(id)
		pipe.RPush(ctx, key, perJob[id]...)
		pipe.LTrim(ctx, key, -r.o.MaxJobEvents, -1)
	}
	if len(b.Meta) > 0 {
		vals := make([]any, 0, 2*len(b.Meta))
		for k, v := range b.Meta {
			vals = append(vals, k, v)
		}
		pipe.HSet(ctx, r.k.Meta(), vals...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	return gen.Val(), nil
}

// writeJob writes one job; full says the queue set was emptied first.
func (r *Redis) writeJob(ctx context.Context, pipe redis.Pipeliner, ch *JobChange, full bool, now time.Time) {
	n := ch.New
	if n.Updated.IsZero() {
		n.Updated = now
	}
	key := r.k.Job(n.ID)
	nf := n.fields()
	index := func() {
		z := redis.Z{Score: n.score(), Member: string(n.ID)}
		pipe.ZAdd(ctx, r.k.Jobs(), z)
		if n.User != "" {
			pipe.ZAdd(ctx, r.k.User(n.User), z)
		}
		if n.Project != "" {
			pipe.ZAdd(ctx, r.k.Project(n.Project), z)
		}
	}
	sweep := func() {
		pipe.ZAdd(ctx, r.k.Sweep(n.Sweep), redis.Z{Score: float64(n.TaskIndex), Member: string(n.ID)})
	}
	if ch.Old == nil {
		pipe.Del(ctx, key)
		pipe.HSet(ctx, key, flat(nf)...)
		index()
		if n.Sweep != "" {
			sweep()
		}
		switch {
		case n.queued():
			pipe.ZAdd(ctx, r.k.Queue(), redis.Z{Score: n.queueScore(), Member: string(n.ID)})
		case !full: // it may have been queued before
			pipe.ZRem(ctx, r.k.Queue(), string(n.ID))
		}
		switch {
		case !n.State.Terminal():
			pipe.ZAdd(ctx, r.k.Active(), redis.Z{Score: n.score(), Member: string(n.ID)})
		case !full: // it may have been active before
			pipe.ZRem(ctx, r.k.Active(), string(n.ID))
		}
		return
	}
	set, del := diffFields(ch.Old.fields(), nf)
	if len(set) == 0 && len(del) == 0 {
		return
	}
	set[fUpdated] = nf[fUpdated]
	pipe.HSet(ctx, key, flat(set)...)
	if len(del) > 0 {
		pipe.HDel(ctx, key, del...)
	}
	o := ch.Old
	if o.User != n.User && o.User != "" {
		pipe.ZRem(ctx, r.k.User(o.User), string(n.ID))
	}
	if o.Project != n.Project && o.Project != "" {
		pipe.ZRem(ctx, r.k.Project(o.Project), string(n.ID))
	}
	if o.User != n.User || o.Project != n.Project || o.score() != n.score() {
		index()
	}
	if o.Sweep != n.Sweep && o.Sweep != "" {
		pipe.ZRem(ctx, r.k.Sweep(o.Sweep), string(n.ID))
	}
	if n.Sweep != "" && (o.Sweep != n.Sweep || o.TaskIndex != n.TaskIndex) {
		sweep()
	}
	// The queue set moves only when a job joins or leaves the queue, or
	// its priority changes.
	switch {
	case n.queued() && (!o.queued() || o.Priority != n.Priority):
		pipe.ZAdd(ctx, r.k.Queue(), redis.Z{Score: n.queueScore(), Member: string(n.ID)})
	case o.queued() && !n.queued():
		pipe.ZRem(ctx, r.k.Queue(), string(n.ID))
	}
	// The active set (jobs not ended) moves when a job ends or comes back.
	switch {
	case !n.State.Terminal() && (o.State.Terminal() || o.score() != n.score()):
		pipe.ZAdd(ctx, r.k.Active(), redis.Z{Score: n.score(), Member: string(n.ID)})
	case o.State.Terminal() != n.State.Terminal() && n.State.Terminal():
		pipe.ZRem(ctx, r.k.Active(), string(n.ID))
	}
}

func flat(m map[string]string) []any {
	out := make([]any, 0, 2*len(m))
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}

// Load implements Store: two round trips, whatever the number of jobs.
func (r *Redis) Load(ctx context.Context) (*Snapshot, error) {
	pipe := r.c.Pipeline()
	gen := pipe.HGet(ctx, r.k.Meta(), metaGen)
	ids := pipe.ZRange(ctx, r.k.Jobs(), 0, -1)
	nodes := pipe.HGetAll(ctx, r.k.Nodes())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	s := &Snapshot{Jobs: map[job.ID]*Job{}, Nodes: map[string]Node{}}
	if v, err := gen.Int64(); err == nil {
		s.Gen = v
	}
	for name, data := range nodes.Val() {
		var n Node
		if json.Unmarshal([]byte(data), &n) == nil {
			s.Nodes[name] = n
		}
	}
	jobs, err := r.getJobs(ctx, ids.Val())
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		s.Jobs[j.ID] = j
	}
	return s, nil
}

// getJobs reads the hashes of ids in one round trip; missing ones are left out.
func (r *Redis) getJobs(ctx context.Context, ids []string) ([]*Job, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := r.c.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, r.k.Job(job.ID(id)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	out := make([]*Job, 0, len(ids))
	for _, c := range cmds {
		if j, err := decodeJob(c.Val()); err == nil {
			out = append(out, j)
		}
	}
	return out, nil
}

// Job reads one job's hash.
func (r *Redis) Job(ctx context.Context, id job.ID) (*Job, error) {
	m, err := r.c.HGetAll(ctx, r.k.Job(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("job %s is not in the store: %w", id, job.ErrNotFound)
	}
	return decodeJob(m)
}

// Jobs reads one page of jobs, and how many the index holds: newest
// first, or a sweep's tasks in task order (see Page).
func (r *Redis) Jobs(ctx context.Context, p Page) ([]*Job, int64, error) {
	key := r.k.Jobs()
	switch {
	case p.Sweep != "":
		key = r.k.Sweep(p.Sweep)
	case p.User != "":
		key = r.k.User(p.User)
	case p.Project != "":
		key = r.k.Project(p.Project)
	}
	if p.Limit <= 0 {
		p.Limit = 50
	}
	pipe := r.c.Pipeline()
	var ids *redis.StringSliceCmd
	if p.Sweep != "" {
		ids = pipe.ZRange(ctx, key, p.Offset, p.Offset+p.Limit-1)
	} else {
		ids = pipe.ZRevRange(ctx, key, p.Offset, p.Offset+p.Limit-1)
	}
	total := pipe.ZCard(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	jobs, err := r.getJobs(ctx, ids.Val())
	return jobs, total.Val(), err
}

// SweepTasks reads one page of a sweep's tasks in task order (index 0
// first), and how many tasks the store holds for the sweep: Jobs with
// Page.Sweep.
func (r *Redis) SweepTasks(ctx context.Context, id job.ID, offset, limit int64) ([]*Job, int64, error) {
	return r.Jobs(ctx, Page{Sweep: id, Offset: offset, Limit: limit})
}

// QueuePosition is a job's place in the queue of ferry's queued jobs
// (1 = next to start: higher priority first, then earlier submit), and
// how many jobs are queued, in one round trip. pos is 0 when the job is
// not queued. The queue holds ferry's jobs only, in every partition:
// Slurm may start a job out of this order (backfill, another partition).
func (r *Redis) QueuePosition(ctx context.Context, id job.ID) (pos, total int64, err error) {
	pipe := r.c.Pipeline()
	rank := pipe.ZRank(ctx, r.k.Queue(), string(id))
	card := pipe.ZCard(ctx, r.k.Queue())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	if n, err := rank.Result(); err == nil {
		pos = n + 1
	}
	return pos, card.Val(), nil
}

// JobEvents reads a job's own event history, oldest first: the last
// MaxJobEvents events about it (StreamID is empty). A job the store does
// not hold has none. After a rebuild of the store the history starts
// again.
func (r *Redis) JobEvents(ctx context.Context, id job.ID) ([]Event, error) {
	vals, err := r.c.LRange(ctx, r.k.JobEvents(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	out := make([]Event, 0, len(vals))
	for _, v := range vals {
		var e Event
		if err := json.Unmarshal([]byte(v), &e); err == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// Events reads up to count events after the stream id after ("" = from
// the oldest one kept).
func (r *Redis) Events(ctx context.Context, after string, count int64) ([]Event, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	msgs, err := r.c.XRangeN(ctx, r.k.Events(), start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	return decodeEvents(msgs), nil
}

// LastEventID is the stream id of the newest event ("0-0" when there is
// none): where a reader that wants only what comes next starts.
func (r *Redis) LastEventID(ctx context.Context) (string, error) {
	msgs, err := r.c.XRevRangeN(ctx, r.k.Events(), "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// WaitEvents blocks up to block for events after the stream id after ("$"
// = only new ones), as a dashboard following the stream does.
func (r *Redis) WaitEvents(ctx context.Context, after string, block time.Duration, count int64) ([]Event, error) {
	streams, err := r.c.XRead(ctx, &redis.XReadArgs{Streams: []string{r.k.Events(), after}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	var out []Event
	for _, s := range streams {
		out = append(out, decodeEvents(s.Messages)...)
	}
	return out, nil
}

func decodeEvents(msgs []redis.XMessage) []Event {
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		var e Event
		if s, ok := m.Values["event"].(string); ok {
			_ = json.Unmarshal([]byte(s), &e)
		}
		e.StreamID = m.ID
		out = append(out, e)
	}
	return out
}

// MetricHistory reads points start..stop (inclusive, negative from the
// end, as LRANGE) of a job's metric history.
func (r *Redis) MetricHistory(ctx context.Context, id job.ID, start, stop int64) ([]json.RawMessage, error) {
	vals, err := r.c.LRange(ctx, r.k.Metrics(id), start, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	out := make([]json.RawMessage, len(vals))
	for i, v := range vals {
		out[i] = json.RawMessage(v)
	}
	return out, nil
}

// Nodes reads the node states.
func (r *Redis) Nodes(ctx context.Context) (map[string]Node, error) {
	m, err := r.c.HGetAll(ctx, r.k.Nodes()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	out := make(map[string]Node, len(m))
	for name, data := range m {
		var n Node
		if err := json.Unmarshal([]byte(data), &n); err == nil {
			out[name] = n
		}
	}
	return out, nil
}

// Meta reads the tracker's own hash (generation, health, last tick).
func (r *Redis) Meta(ctx context.Context) (map[string]string, error) {
	m, err := r.c.HGetAll(ctx, r.k.Meta()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	return m, nil
}

// MemoryUsed is the server's used_memory (INFO memory), in bytes.
func (r *Redis) MemoryUsed(ctx context.Context) (int64, error) {
	info, err := r.c.InfoMap(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	return strconv.ParseInt(info["Memory"]["used_memory"], 10, 64)
}

// Keys names ferry's Redis keys.
type Keys struct{ Prefix string }

func (k Keys) Job(id job.ID) string       { return k.Prefix + "job:" + string(id) }
func (k Keys) Metrics(id job.ID) string   { return k.Prefix + "job:" + string(id) + ":metrics" }
func (k Keys) Jobs() string               { return k.Prefix + "jobs" }
func (k Keys) User(user string) string    { return k.Prefix + "user:" + user + ":jobs" }
func (k Keys) Project(name string) string { return k.Prefix + "project:" + name + ":jobs" }
func (k Keys) Events() string             { return k.Prefix + "events" }
func (k Keys) Nodes() string              { return k.Prefix + "nodes" }
func (k Keys) Meta() string               { return k.Prefix + "tracker" }

// JobEvents is a job's own event history: a list of JSON events, oldest
// first, capped to the last Options.MaxJobEvents.
func (k Keys) JobEvents(id job.ID) string { return k.Prefix + "job:" + string(id) + ":events" }

// Queue is the sorted set of the queued jobs (member = job id), in the
// order they wait: ZRANK is a job's place in line. The score is minus the
// job's Slurm priority; equal scores sort by id, that is by submit time.
func (k Keys) Queue() string { return k.Prefix + "queue" }

// Sweep is the sorted set of a sweep's tasks (member = job id, score =
// task index): ZRANGE lists them in task order.
func (k Keys) Sweep(id job.ID) string { return k.Prefix + "sweep:" + string(id) + ":jobs" }

// counter counts round trips: one per command, one per pipeline.
type counter struct {
	trips, errs atomic.Int64
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.trips.Add(1)
		err := next(ctx, cmd)
		if err != nil && !errors.Is(err, redis.Nil) {
			c.errs.Add(1)
		}
		return err
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.trips.Add(1)
		err := next(ctx, cmds)
		if err != nil && !errors.Is(err, redis.Nil) {
			c.errs.Add(1)
		}
		return err
	}
}
