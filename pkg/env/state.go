package env

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/pkg/atomicfile"
)

// The state dir (root-only, node-local):
//
//	locks/<key>.lock    flock: one build per key on the node
//	failed/<key>.json   the last failed build, for the failure TTL
//	used/<key>          its mtime is the environment's last use
//	logs/<key>.log      the last build's full output, for admins
type stateDir string

var stateSubdirs = []string{"locks", "failed", "used", "logs"}

var keyRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s stateDir) init() error {
	for _, sub := range stateSubdirs {
		if err := os.MkdirAll(filepath.Join(string(s), sub), 0o700); err != nil {
			return fmt.Errorf("environment state dir: %w", err)
		}
	}
	return nil
}

func (s stateDir) path(sub, key, ext string) string {
	return filepath.Join(string(s), sub, key+ext)
}

// touchUsed records that the environment was used now.
func (s stateDir) touchUsed(key string, now time.Time) {
	p := s.path("used", key, "")
	if err := os.Chtimes(p, now, now); errors.Is(err, fs.ErrNotExist) {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			_ = os.Chtimes(p, now, now)
		}
	}
}

// lastUsed is the recorded last use; zero if none.
func (s stateDir) lastUsed(key string) time.Time {
	fi, err := os.Stat(s.path("used", key, ""))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// failureRecord is a failed build as kept in failed/<key>.json.
type failureRecord struct {
	Key    string    `json:"key"`
	Reason string    `json:"reason"`
	Lines  []string  `json:"lines"`
	At     time.Time `json:"at"`
}

func (s stateDir) recordFailure(e *BuildError) error {
	return atomicfile.WriteJSON(s.path("failed", e.Key, ".json"),
		failureRecord{Key: e.Key, Reason: e.Reason, Lines: e.Lines, At: e.At}, 0o600)
}

// failure returns the recorded failure of key if it is younger than ttl.
func (s stateDir) failure(key string, now time.Time, ttl time.Duration) *BuildError {
	if ttl <= 0 {
		return nil
	}
	data, err := os.ReadFile(s.path("failed", key, ".json"))
	if err != nil {
		return nil
	}
	var r failureRecord
	if json.Unmarshal(data, &r) != nil || r.Key != key {
		return nil
	}
	if now.Sub(r.At) >= ttl || r.At.After(now.Add(time.Minute)) {
		return nil
	}
	return &BuildError{Key: key, Reason: r.Reason, Lines: r.Lines, At: r.At, RetryAfter: r.At.Add(ttl), Cached: true}
}

func (s stateDir) clearFailure(key string) {
	_ = os.Remove(s.path("failed", key, ".json"))
}

// forget removes what the state dir knows of an evicted environment. The
// caller holds the key's lock, so unlinking the lock file is safe (see
// lockKey).
func (s stateDir) forget(key string) {
	for _, p := range []string{s.path("failed", key, ".json"), s.path("used", key, ""),
		s.path("logs", key, ".log"), s.path("locks", key, ".lock")} {
		_ = os.Remove(p)
	}
}

// keyLock is a held per-key lock.
type keyLock struct{ f *os.File }

func (l *keyLock) unlock() {
	if l != nil && l.f != nil {
		_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
		_ = l.f.Close()
	}
}

// Lock polling: a waiter tries again after these delays (doubling).
var (
	lockPollMin = 25 * time.Millisecond
	lockPollMax = 500 * time.Millisecond
)

// lockKey takes key's flock, shared by every process on the node. It calls
// onWait once if another holder makes it wait, and gives up when ctx ends.
// After locking it checks the file it locked is still the one at the path:
// a lock file unlinked by forget (under the lock) is retried.
func (s stateDir) lockKey(ctx context.Context, key string, onWait func()) (*keyLock, error) {
	l, err := s.lock(ctx, key, true, onWait)
	return l, err
}

// tryLockKey takes key's lock if it is free; nil if another holds it.
func (s stateDir) tryLockKey(key string) (*keyLock, error) {
	return s.lock(context.Background(), key, false, nil)
}

func (s stateDir) lock(ctx context.Context, key string, wait bool, onWait func()) (*keyLock, error) {
	path := s.path("locks", key, ".lock")
	delay := lockPollMin
	waited := false
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("environment lock: %w", err)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			if samePath(f, path) {
				return &keyLock{f: f}, nil
			}
			_ = f.Close() // unlinked under us: take the new file
			continue
		}
		_ = f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("environment lock: %w", err)
		}
		if !wait {
			return nil, nil
		}
		if !waited && onWait != nil {
			onWait()
		}
		waited = true
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, lockPollMax)
	}
}

func samePath(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	if err != nil {
		return false
	}
	return os.SameFile(a, b)
}

// fileStamp identifies a file's version without reading it.
func fileStamp(fi os.FileInfo) string {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d %d %d", fi.Size(), fi.ModTime().UnixNano(), ino)
}

// tailWriter keeps the last n lines written to it ("\r" starts a line
// over, as progress output does).
type tailWriter struct {
	n     int
	lines []string
	cur   strings.Builder
}

func (t *tailWriter) Write(p []byte) (int, error) {
	for _, c := range string(p) {
		switch c {
		case '\n':
			t.push()
		case '\r':
			t.cur.Reset()
		default:
			if t.cur.Len() < 500 {
				t.cur.WriteRune(c)
			}
		}
	}
	return len(p), nil
}

func (t *tailWriter) push() {
	line := strings.TrimRight(t.cur.String(), " \t")
	t.cur.Reset()
	if strings.TrimSpace(line) == "" {
		return
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.n {
		t.lines = t.lines[len(t.lines)-t.n:]
	}
}

// Lines returns the kept lines, including an unfinished last one.
func (t *tailWriter) Lines() []string {
	if t.cur.Len() > 0 {
		t.push()
	}
	return append([]string(nil), t.lines...)
}
