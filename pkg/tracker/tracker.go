package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// Lister is the slice of the Slurm client the tracker needs.
type Lister interface {
	Jobs(ctx context.Context, q slurm.Query) ([]slurm.Job, error)
	Nodes(ctx context.Context) ([]slurm.Node, error)
}

// Options configure a Tracker. Zero durations take the defaults.
type Options struct {
	Slurm Lister
	Store store.Store
	// Spools are glob patterns of spool roots scanned at start and every
	// Rescan ("/home/*/.ferry/jobs"); the parents of the job dirs Slurm
	// reports are added as they are seen.
	Spools       []string
	Tick         time.Duration // squeue every Tick; default 1 s
	NodeEvery    time.Duration // sinfo every NodeEvery, apart from the tick; default 10 s
	Rescan       time.Duration // spool scan; default 5 min
	LostAfter    time.Duration // grace before a job missing from Slurm without a result is lost; default job.LostAfter
	SlurmTimeout time.Duration // one squeue or sinfo; default 10 s
	Log          *slog.Logger
	Metrics      *Metrics // nil = not exported
	Now          func() time.Time
}

// Tracker is the reconcile loop. Its methods may be called from several
// goroutines; they take turns.
type Tracker struct {
	o Options

	mu         sync.Mutex
	loaded     bool                     // the store's content is known (Load succeeded)
	reconciled bool                     // a Slurm listing and a spool scan were applied
	rebuild    bool                     // the store lost its data: write everything, no job events
	acct       map[string]slurm.AcctJob // sacct's answer in the listing being reconciled
	gen        int64
	inflight   *pending // a batch whose outcome is unknown
	entries    map[job.ID]*entry
	dirty      map[job.ID]*entry
	tasks      map[taskKey]job.ID // a sweep's array task -> its ferry id
	roots      map[string]bool    // spool roots learned from job dirs
	unresolved map[resolveKey]unresolvedLine
	sweepScans map[job.ID]time.Time // the last read of each sweep's dir asked for by an unknown task
	nodesPub   map[string]store.Node
	nodesNew   map[string]store.Node // sinfo's answer, not yet written
	removed    []*entry              // jobs whose dirs are gone, not yet removed from the store
	lastScan   time.Time
	lastMiss   time.Time // the last scan of a user's spools asked for by an unknown array task
	health     healthState
	hookCh     chan HookEvent
}

// pending is a batch that may or may not have reached the store.
type pending struct {
	gen     int64
	rebuild bool
	jobs    map[job.ID]store.Job
	nodes   map[string]store.Node
	removed []*entry
}

// New returns a tracker; Run or Tick drive it.
func New(o Options) *Tracker {
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.NodeEvery <= 0 {
		o.NodeEvery = 10 * time.Second
	}
	if o.Rescan <= 0 {
		o.Rescan = 5 * time.Minute
	}
	if o.LostAfter <= 0 {
		o.LostAfter = job.LostAfter
	}
	if o.SlurmTimeout <= 0 {
		o.SlurmTimeout = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	t := &Tracker{
		o:          o,
		entries:    map[job.ID]*entry{},
		dirty:      map[job.ID]*entry{},
		tasks:      map[taskKey]job.ID{},
		roots:      map[string]bool{},
		unresolved: map[resolveKey]unresolvedLine{},
		sweepScans: map[job.ID]time.Time{},
		nodesPub:   map[string]store.Node{},
		hookCh:     make(chan HookEvent, 1024),
	}
	t.health.start = o.Now()
	return t
}

// Accounting is what the tracker asks Slurm's accounting (sacct), when the
// Slurm client has it, before it calls a job lost.
type Accounting interface {
	Acct(ctx context.Context, ids []string) ([]slurm.AcctJob, error)
}

// listing is one squeue answer, and sacct's answer for the jobs about to
// be called lost.
type listing struct {
	jobs []slurm.Job
	err  error
	at   time.Time // when squeue was started: the listing is no newer
	took time.Duration
	acct map[string]slurm.AcctJob // by Slurm id; nil = not asked
}

func (t *Tracker) fetch(ctx context.Context) listing {
	ctx, cancel := context.WithTimeout(ctx, t.o.SlurmTimeout)
	defer cancel()
	l := listing{at: t.o.Now()}
	start := time.Now()
	l.jobs, l.err = t.o.Slurm.Jobs(ctx, slurm.Query{})
	l.took = time.Since(start)
	t.o.Metrics.slurmCall("squeue", l.took, l.err)
	t.fetchAcct(ctx, &l)
	return l
}

// fetchAcct asks sacct, in one call, how the jobs that left Slurm's
// listing without a result ended (those missing() marked). Without
// accounting sacct knows none of them, and they are lost as before.
func (t *Tracker) fetchAcct(ctx context.Context, l *listing) {
	a, ok := t.o.Slurm.(Accounting)
	if !ok || l.err != nil {
		return
	}
	var ids []string
	for _, e := range t.entries {
		if e.acctAsk && e.slurmID != "" {
			ids = append(ids, e.slurmID)
		}
	}
	if len(ids) == 0 {
		return
	}
	start := time.Now()
	jobs, err := a.Acct(ctx, ids)
	t.o.Metrics.slurmCall("sacct", time.Since(start), err)
	l.acct = map[string]slurm.AcctJob{}
	if err != nil {
		t.o.Log.Debug("sacct", "err", err)
		return
	}
	for _, j := range jobs {
		l.acct[j.ID] = j
	}
}

// Tick runs one reconcile: one squeue call, then one store batch. It
// returns the Slurm or store error, if any (the tracker keeps going).
func (t *Tracker) Tick(ctx context.Context) error {
	start := time.Now()
	l := t.fetch(ctx)
	err := t.apply(ctx, l)
	t.o.Metrics.tick(time.Since(start))
	return err
}

// Nodes polls sinfo once and writes what changed.
func (t *Tracker) Nodes(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.o.SlurmTimeout)
	defer cancel()
	start := time.Now()
	nodes, err := t.o.Slurm.Nodes(ctx)
	t.o.Metrics.slurmCall("sinfo", time.Since(start), err)
	if err != nil {
		return err
	}
	return t.applyNodes(ctx, nodes)
}

// Run ticks until ctx is done. squeue runs in the background, so hook
// events are handled while it runs; a tick that comes while the previous
// squeue has not answered is skipped.
func (t *Tracker) Run(ctx context.Context) error {
	tick := time.NewTicker(t.o.Tick)
	defer tick.Stop()
	nodeTick := time.NewTicker(t.o.NodeEvery)
	defer nodeTick.Stop()
	scanTick := time.NewTicker(t.o.Rescan)
	defer scanTick.Stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	results := make(chan listing, 1)
	var fetching bool
	var started time.Time
	startFetch := func() {
		fetching, started = true, time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- t.fetch(ctx)
		}()
	}
	nodesDone := make(chan struct{}, 1)
	var polling bool
	pollNodes := func() {
		polling = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.Nodes(ctx); err != nil && ctx.Err() == nil {
				t.o.Log.Warn("sinfo", "err", err)
			}
			nodesDone <- struct{}{}
		}()
	}
	startFetch()
	pollNodes()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if fetching {
				t.o.Metrics.overrun()
				continue
			}
			startFetch()
		case l := <-results:
			fetching = false
			if err := t.apply(ctx, l); err != nil && ctx.Err() == nil {
				t.o.Log.Warn("tick", "err", err)
			}
			t.o.Metrics.tick(time.Since(started))
		case <-nodeTick.C:
			if !polling {
				pollNodes()
			}
		case <-nodesDone:
			polling = false
		case <-scanTick.C:
			t.mu.Lock()
			if t.loaded {
				t.scan()
			}
			t.mu.Unlock()
		case ev := <-t.hookCh:
			if err := t.HandleHook(ctx, ev); err != nil && ctx.Err() == nil {
				t.o.Log.Debug("hook event", "job", ev.SlurmID(), "err", err)
			}
		}
	}
}

// errNotReady is returned while the store's content is unknown.
var errNotReady = errors.New("the tracker has not read the store yet")

// load reads the store once: what a restarted tracker reconciles against.
func (t *Tracker) load(ctx context.Context) error {
	snap, err := t.o.Store.Load(ctx)
	if err != nil {
		t.redisFailed(err)
		return err
	}
	t.gen = snap.Gen
	t.rebuild = snap.Gen == 0 // nothing there (first start, or flushed)
	for id, j := range snap.Jobs {
		e := t.entry(id)
		pub, cur := *j, *j
		e.pub, e.cur = &pub, &cur // what was published stands until something says otherwise
		e.dir = j.Dir
		e.slurmID = j.SlurmID
		e.arrayIndex = j.ArrayIndex
	}
	t.nodesPub = snap.Nodes
	t.loaded = true
	t.redisOK()
	t.scan()
	t.o.Log.Info("store loaded", "gen", snap.Gen, "jobs", len(snap.Jobs), "tracked", len(t.entries))
	return nil
}

func (t *Tracker) entry(id job.ID) *entry {
	e := t.entries[id]
	if e == nil {
		e = &entry{id: id, uid: -1, arrayIndex: -1}
		t.entries[id] = e
	}
	return e
}

// apply reconciles one listing and writes the result.
func (t *Tracker) apply(ctx context.Context, l listing) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.loaded {
		if err := t.load(ctx); err != nil {
			return err
		}
	}
	meta := map[string]string{"heartbeat": formatTime(t.o.Now())}
	if l.err != nil {
		// Slurm did not answer: every job keeps its state.
		t.slurmFailed(l.err, l.at)
		meta["slurm"], meta["slurm_error"] = "unreachable", l.err.Error()
		_ = t.commit(ctx, meta) // health, and a check that the store kept its data
		return fmt.Errorf("slurm: %w", l.err)
	}
	t.slurmOK(l.at, l.took)
	meta["slurm"], meta["slurm_error"] = "ok", ""
	t.acct = l.acct
	t.reconcile(l)
	t.acct = nil
	t.reconciled = true
	t.readAllMetrics()
	t.countStates()
	return t.commit(ctx, meta)
}

func formatTime(tm time.Time) string { return tm.UTC().Format(store.TimeFormat) }

// paramsJSON is the spec's params as a JSON object, or nil.
func paramsJSON(s *job.Spec) json.RawMessage {
	if s == nil || len(s.Params) == 0 {
		return nil
	}
	data, err := json.Marshal(s.Params)
	if err != nil {
		return nil
	}
	return data
}
