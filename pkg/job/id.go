package job

import (
	"crypto/rand"
	"errors"
	"fmt"
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

// Short is the id's first 10 characters, enough to be unique in practice and
// accepted everywhere an id is.
func (id ID) Short() string {
	if len(id) > 10 {
		return string(id[:10])
	}
	return string(id)
}

// IsPrefixChar reports whether r may appear in an id (Crockford base32, lowercase).
func IsPrefixChar(r rune) bool {
	return (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z' && r != 'i' && r != 'l' && r != 'o' && r != 'u')
}
