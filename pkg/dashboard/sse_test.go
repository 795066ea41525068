package dashboard

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// waitSubs waits until the hub has n subscribers.
func (e *env) waitSubs(n int) {
	e.t.Helper()
	require.Eventually(e.t, func() bool { return e.srv.Hub().Subscribers() == n }, 5*time.Second, 5*time.Millisecond)
}

func TestEventsFanOutByOwner(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, alice := e.stream(ctx, e.client("alice"), "/events", nil)
	_, bob := e.stream(ctx, e.client("bob"), "/events", nil)
	_, carol := e.stream(ctx, e.client("carol"), "/events", nil)
	_, aliceJob := e.stream(ctx, e.client("alice"), "/events?job="+string(jobA), nil)
	e.waitSubs(4)
	reads := e.srv.Hub().Reads()

	e.change(jobB, func(j *store.Job) { j.State, j.Reason = job.Running, "" })
	e.change(jobA, func(j *store.Job) { j.State, j.Reason = job.Succeeded, "completed" })

	got := decodeEvent(t, next(t, bob, "state"))
	assert.Equal(t, jobB, got.ID)
	assert.Equal(t, job.Running, got.State)
	got = decodeEvent(t, next(t, alice, "state"))
	assert.Equal(t, jobA, got.ID, "alice never gets bob's event: her first is her own job's")
	got = decodeEvent(t, next(t, aliceJob, "state"))
	assert.Equal(t, jobA, got.ID)
	assert.Equal(t, job.Succeeded, got.State)
	first := decodeEvent(t, next(t, carol, "state"))
	second := decodeEvent(t, next(t, carol, "state"))
	assert.Equal(t, []job.ID{jobB, jobA}, []job.ID{first.ID, second.ID}, "the admin sees everyone's")
	assert.LessOrEqual(t, e.srv.Hub().Reads()-reads, int64(4), "one reader for all four streams, not one read per stream")

	// A browser that reconnects with Last-Event-ID gets what it missed.
	e.change(jobB, func(j *store.Job) { j.State, j.Reason = job.Succeeded, "completed" })
	_, again := e.stream(ctx, e.client("carol"), "/events", map[string]string{"Last-Event-ID": first.StreamID})
	got = decodeEvent(t, next(t, again, "state"))
	assert.Equal(t, jobA, got.ID, "replayed from after the last event it saw")
	got = decodeEvent(t, next(t, again, "state"))
	assert.Equal(t, jobB, got.ID)
	assert.Equal(t, job.Succeeded, got.State)
}

func TestSlowSubscriberIsDropped(t *testing.T) {
	e := newEnv(t)
	e.seed()
	sub := e.srv.Hub().Subscribe(nil)
	fast := e.srv.Hub().Subscribe(nil)
	done := make(chan int)
	go func() {
		n := 0
		for range fast.C {
			n++
			if n == 300 {
				break
			}
		}
		done <- n
	}()
	for i := 0; i < 300; i++ {
		st := job.Running
		if i%2 == 1 {
			st = job.Completing
		}
		e.change(jobA, func(j *store.Job) { j.State = st })
	}
	select {
	case n := <-done:
		assert.Equal(t, 300, n, "a reader that keeps up gets every event")
	case <-time.After(10 * time.Second):
		t.Fatal("the fast subscriber did not get 300 events")
	}
	require.Eventually(t, func() bool { return e.srv.Hub().Dropped() >= 1 }, 5*time.Second, 10*time.Millisecond)
	n := 0
	for range sub.C {
		n++
	}
	assert.Equal(t, subBuffer, n, "the slow one got its buffer's worth, then its channel was closed")
	e.srv.Hub().Unsubscribe(sub)
	e.srv.Hub().Unsubscribe(fast)
}

func TestLogStream(t *testing.T) {
	e := newEnv(t)
	e.seed()
	c := e.client("alice")
	logPath := filepath.Join(e.homes["alice"], ".ferry", "jobs", string(jobA), job.LogFile)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	code, ch := e.stream(ctx, c, "/jobs/"+string(jobA)+"/log/stream?offset=9", nil)
	require.Equal(t, 200, code)
	ev := next(t, ch, "log")
	assert.Equal(t, "line two", ev.Data, "from the byte offset, not the whole file")
	assert.Equal(t, "18", ev.ID, "the id is the offset after the bytes sent")

	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, _ = f.WriteString("line three\npartial")
	ev = next(t, ch, "log")
	assert.Equal(t, "line three", ev.Data, "a line is sent when it is whole")
	_, _ = f.WriteString(" line\n")
	ev = next(t, ch, "log")
	assert.Equal(t, "partial line", ev.Data)
	f.Close()
	size, _ := strconv.Atoi(ev.ID)

	// Reconnecting with Last-Event-ID resumes exactly there.
	_, resumed := e.stream(ctx, c, "/jobs/"+string(jobA)+"/log/stream", map[string]string{"Last-Event-ID": "18"})
	ev = next(t, resumed, "log")
	assert.Equal(t, "line three\npartial line", ev.Data)
	assert.Equal(t, strconv.Itoa(size), ev.ID)

	// The job ends: the stream sends what is left and an end event.
	require.NoError(t, os.WriteFile(logPath, append(mustRead(t, logPath), "last words\n"...), 0o600))
	e.change(jobA, func(j *store.Job) { j.State = job.Succeeded })
	ev = next(t, ch, "log")
	assert.Equal(t, "last words", ev.Data)
	ev = next(t, ch, "end")
	assert.Equal(t, "succeeded", ev.Data)
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

func TestLogNotFollowedThroughLink(t *testing.T) {
	e := newEnv(t)
	e.seed()
	secret := filepath.Join(e.homes["bob"], "secret.txt")
	require.NoError(t, os.WriteFile(secret, []byte("bob's secret\n"), 0o600))
	logPath := filepath.Join(e.homes["alice"], ".ferry", "jobs", string(jobA), job.LogFile)
	require.NoError(t, os.Remove(logPath))
	require.NoError(t, os.Symlink(secret, logPath))
	code, body := e.get(e.client("alice"), "/jobs/"+string(jobA)+"/log")
	assert.Equal(t, 404, code)
	assert.NotContains(t, body, "secret")
	_, body = e.get(e.client("alice"), "/jobs/"+string(jobA))
	assert.NotContains(t, body, "bob's secret")
}

// A page hands its event stream the position it was rendered at: a change
// between the render and the stream's start is not lost.
func TestEventsSinceRender(t *testing.T) {
	e := newEnv(t)
	e.seed()
	<-e.srv.Hub().Ready()
	c := e.client("alice")
	_, page := e.get(c, "/jobs")
	i := strings.Index(page, `data-since="`)
	require.GreaterOrEqual(t, i, 0, "the page carries its stream position")
	since := page[i+len(`data-since="`):]
	since = since[:strings.IndexByte(since, '"')]
	require.True(t, validStreamID(since), since)

	e.change(jobA, func(j *store.Job) { j.State = job.Succeeded }) // before the stream starts
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, ch := e.stream(ctx, c, "/events?since="+since, nil)
	got := decodeEvent(t, next(t, ch, "state"))
	assert.Equal(t, jobA, got.ID)
	assert.Equal(t, job.Succeeded, got.State)
}
