package job

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// ID is ferry's own job id: a lowercase ULID, so ids sort by submit time and
// stay unique across Slurm controller restarts (Slurm reuses its ids).
type ID string

// ErrNotFound is returned when no job matches an id or prefix.
var ErrNotFound = errors.New("job not found")

// ErrAmbiguous is returned when a prefix matches more than one job.
var ErrAmbiguous = errors.New("job id prefix is ambiguous")

// lookupError is an ErrNotFound or ErrAmbiguous whose message says it all:
// it reads as the message alone, not "…: job not found".
type lookupError struct {
	msg  string
	kind error
}

func (e *lookupError) Error() string { return e.msg }
func (e *lookupError) Unwrap() error { return e.kind }

// NotFoundf returns an error that is ErrNotFound (exit code 4) and reads as
// the formatted message alone.
func NotFoundf(format string, args ...any) error {
	return &lookupError{msg: fmt.Sprintf(format, args...), kind: ErrNotFound}
}

// Ambiguousf returns an error that is ErrAmbiguous and reads as the
// formatted message alone.
func Ambiguousf(format string, args ...any) error {
	return &lookupError{msg: fmt.Sprintf(format, args...), kind: ErrAmbiguous}
}

// NewID returns a fresh id for a job submitted at t.
func NewID(t time.Time) ID {
	return ID(strings.ToLower(ulid.MustNew(ulid.Timestamp(t), rand.Reader).String()))
}

// NewIDs returns n fresh ids for jobs submitted together at t, in
// increasing order, so that they list in the order they were made.
func NewIDs(t time.Time, n int) []ID {
	entropy := ulid.Monotonic(rand.Reader, 0)
	ids := make([]ID, n)
	for i := range ids {
		ids[i] = ID(strings.ToLower(ulid.MustNew(ulid.Timestamp(t), entropy).String()))
	}
	return ids
}

// ParseID checks that s is a whole ferry id.
func ParseID(s string) (ID, error) {
	if len(s) != ulid.EncodedSize {
		return "", fmt.Errorf("invalid job id %q: want %d characters", s, ulid.EncodedSize)
	}
	if _, err := ulid.ParseStrict(strings.ToUpper(s)); err != nil {
		return "", fmt.Errorf("invalid job id %q: %w", s, err)
	}
	return ID(strings.ToLower(s)), nil
}

// Time is the submit time encoded in the id.
func (id ID) Time() time.Time {
	u, err := ulid.ParseStrict(strings.ToUpper(string(id)))
	if err != nil {
		return time.Time{}
	}
	return ulid.Time(u.Time())
}

// shortLen is how many characters Short keeps: the id's millisecond.
const shortLen = 10

// Short is the id's first 10 characters, enough to be unique in practice and
// accepted everywhere an id is. Ids made in the same millisecond (a sweep's
// tasks) share them: ShortUnique tells those apart.
func (id ID) Short() string {
	if len(id) > shortLen {
		return string(id[:shortLen])
	}
	return string(id)
}

// ShortUnique returns, for each of ids, its shortest prefix that is at least
// as long as Short and that no other of ids starts with; given all of a
// user's ids, each prefix resolves to its job.
func ShortUnique(ids []ID) map[ID]string {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	out := make(map[ID]string, len(sorted))
	for i, id := range sorted {
		n := shortLen
		if i > 0 {
			n = max(n, commonPrefix(id, sorted[i-1])+1)
		}
		if i+1 < len(sorted) {
			n = max(n, commonPrefix(id, sorted[i+1])+1)
		}
		out[id] = string(id[:min(n, len(id))])
	}
	return out
}

func commonPrefix(a, b ID) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// IsPrefixChar reports whether r may appear in an id (Crockford base32, lowercase).
func IsPrefixChar(r rune) bool {
	return (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z' && r != 'i' && r != 'l' && r != 'o' && r != 'u')
}
