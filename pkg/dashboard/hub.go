package dashboard

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-hpc/ferry/pkg/store"
)

// EventSource is what the hub reads: one blocking read of the event stream
// at a time.
type EventSource interface {
	LastEventID(ctx context.Context) (string, error)
	WaitEvents(ctx context.Context, after string, block time.Duration, count int64) ([]store.Event, error)
}

// Hub is the one reader of the event stream in a dashboard process. It runs
// a single XREAD BLOCK loop and fans each event out to the subscribers whose
// filter takes it, over bounded channels: Redis sees one connection however
// many browsers watch. A subscriber that falls behind is dropped (its
// channel closed); its browser reconnects and resumes with Last-Event-ID.
type Hub struct {
	src   EventSource
	log   *slog.Logger
	block time.Duration
	buf   int

	mu    sync.Mutex
	subs  map[*Sub]struct{}
	last  string        // the last stream id read
	ready chan struct{} // closed once last is known

	reads   atomic.Int64 // blocking reads sent
	dropped atomic.Int64 // subscribers dropped for being slow
}

// Sub is one subscriber.
type Sub struct {
	C      chan *store.Event // shared with the other subscribers: read only
	filter func(*store.Event) bool
	closed bool
}

// subBuffer is how many events a subscriber may fall behind before it is
// dropped; readCount is how many one read takes, less than subBuffer so
// that one burst of the tracker never drops a subscriber that keeps up.
const (
	subBuffer = 256
	readCount = 128
)

// NewHub returns a hub over src.
func NewHub(src EventSource, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{src: src, log: log, block: 5 * time.Second, buf: subBuffer, subs: map[*Sub]struct{}{}, ready: make(chan struct{})}
}

// Subscribe adds a subscriber that receives the events filter accepts
// (nil: all). Call Unsubscribe when done.
func (h *Hub) Subscribe(filter func(*store.Event) bool) *Sub {
	s := &Sub{C: make(chan *store.Event, h.buf), filter: filter}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Unsubscribe removes s and closes its channel (if the hub has not already).
func (h *Hub) Unsubscribe(s *Sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
	}
	if !s.closed {
		s.closed = true
		close(s.C)
	}
}

// Subscribers is the number of subscribers now.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Reads is the number of blocking reads the hub has sent to Redis.
func (h *Hub) Reads() int64 { return h.reads.Load() }

// Dropped is the number of subscribers dropped for falling behind.
func (h *Hub) Dropped() int64 { return h.dropped.Load() }

// Last is the stream id of the last event the hub read: a page that reads
// the store after taking it and hands it to its event stream (?since=)
// misses no change. "" while the hub has not reached Redis yet.
func (h *Hub) Last() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// Ready is closed once the hub knows its place in the stream.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run reads the stream until ctx ends, starting with events newer than now.
func (h *Hub) Run(ctx context.Context) {
	after := ""
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if after == "" {
			// Start from the newest event by its id, not "$": Last is then
			// a real position from the start, which pages hand to their
			// event streams.
			id, err := h.src.LastEventID(ctx)
			if err != nil {
				if !h.pause(ctx, err, &backoff) {
					return
				}
				continue
			}
			after = id
			h.mu.Lock()
			h.last = id
			h.mu.Unlock()
			close(h.ready)
		}
		h.reads.Add(1)
		evs, err := h.src.WaitEvents(ctx, after, h.block, readCount)
		if err != nil {
			if !h.pause(ctx, err, &backoff) {
				return
			}
			continue
		}
		backoff = 100 * time.Millisecond
		if len(evs) == 0 {
			continue
		}
		after = evs[len(evs)-1].StreamID
		h.publish(evs)
	}
}

// pause logs a failed read and waits out the backoff, doubling it (up to
// 5 s); false when ctx ended.
func (h *Hub) pause(ctx context.Context, err error, backoff *time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	h.log.Warn("event stream", "err", err)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(*backoff):
	}
	*backoff = min(2**backoff, 5*time.Second)
	return true
}

func (h *Hub) publish(evs []store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = evs[len(evs)-1].StreamID
	for i := range evs {
		e := &evs[i]
		for s := range h.subs {
			if s.filter != nil && !s.filter(e) {
				continue
			}
			select {
			case s.C <- e:
			default:
				delete(h.subs, s)
				s.closed = true
				close(s.C)
				h.dropped.Add(1)
			}
		}
	}
}

// streamLess reports whether Redis stream id a comes before b.
func streamLess(a, b string) bool {
	am, as := splitStreamID(a)
	bm, bs := splitStreamID(b)
	if am != bm {
		return am < bm
	}
	return as < bs
}

func splitStreamID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}

// validStreamID reports whether id looks like a Redis stream id ("ms-seq").
func validStreamID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok || ms == "" || seq == "" || len(id) > 41 {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}
