package dashboard

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// sseWriter writes server-sent events.
type sseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startSSE(w http.ResponseWriter) (*sseWriter, bool) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, false
	}
	// A stream lives long: no write deadline.
	_ = rc.SetWriteDeadline(time.Time{})
	return &sseWriter{w: w, rc: rc}, true
}

// event sends one event; data may hold newlines (one data: line each).
func (s *sseWriter) event(name, id, data string) error {
	var b strings.Builder
	if name != "" {
		b.WriteString("event: " + name + "\n")
	}
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	data = strings.TrimSuffix(data, "\n")
	for _, line := range strings.Split(data, "\n") {
		b.WriteString("data: ")
		b.WriteString(strings.TrimSuffix(line, "\r"))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	if _, err := s.w.Write([]byte(b.String())); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sseWriter) comment(c string) error {
	if _, err := s.w.Write([]byte(": " + c + "\n\n")); err != nil {
		return err
	}
	return s.rc.Flush()
}

// eventFilter is what one subscriber may and wants to see.
func eventFilter(me *who, jobID job.ID) func(*store.Event) bool {
	return func(e *store.Event) bool {
		if e.Type == store.EventResync {
			return true
		}
		if !me.Admin && e.User != me.User {
			return false
		}
		return jobID == "" || e.ID == jobID
	}
}

// maxReplay bounds the events replayed to a reconnecting browser; past it
// the browser is told to reload.
const maxReplay = 1000

// events streams the job events the caller may see (?job=ID for one job),
// with the Redis stream id as each event's id: a browser that reconnects
// sends Last-Event-ID and gets what it missed, or "resync" when that is
// more than maxReplay events (or older than the stream keeps).
func (s *Server) events(w http.ResponseWriter, r *http.Request, me *who) {
	jobID := job.ID(r.URL.Query().Get("job"))
	if jobID != "" {
		if j := s.loadJobID(w, r, me, jobID); j == nil {
			return
		}
	}
	filter := eventFilter(me, jobID)
	sub := s.hub.Subscribe(filter)
	defer s.hub.Unsubscribe(sub)
	sse, ok := startSSE(w)
	if !ok {
		return
	}
	ctx := r.Context()
	// A page sends the stream position it was rendered at (?since=); a
	// reconnecting browser, the last event it got (Last-Event-ID).
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("since")
	}
	if last != "" && validStreamID(last) {
		// Subscribed first, so nothing falls between the replay and the
		// live events; live ones already replayed are skipped below.
		evs, err := s.o.Store.Events(ctx, last, maxReplay+1)
		switch {
		case err != nil || len(evs) > maxReplay:
			if sse.event("resync", "", `{"type":"resync"}`) != nil {
				return
			}
		default:
			for i := range evs {
				if !filter(&evs[i]) {
					last = evs[i].StreamID
					continue
				}
				if s.sendEvent(sse, &evs[i]) != nil {
					return
				}
				last = evs[i].StreamID
			}
		}
	} else {
		last = ""
		_ = sse.comment("ready")
	}
	beat := time.NewTicker(s.o.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if sse.comment("keep-alive") != nil {
				return
			}
		case e, ok := <-sub.C:
			if !ok {
				// Dropped for falling behind: the browser reconnects
				// with its Last-Event-ID.
				return
			}
			if last != "" && !streamLess(last, e.StreamID) {
				continue
			}
			if s.sendEvent(sse, e) != nil {
				return
			}
		}
	}
}

func (s *Server) sendEvent(sse *sseWriter, e *store.Event) error {
	data, err := json.Marshal(e)
	if err != nil {
		return nil
	}
	name := e.Type
	if name == "" {
		name = "message"
	}
	return sse.event(name, e.StreamID, string(data))
}
