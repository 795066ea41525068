package job_test

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

func TestNewIDRoundTrip(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC)
	id := job.NewID(at)

	assert.Len(t, string(id), 26)
	assert.Equal(t, strings.ToLower(string(id)), string(id), "ids are lowercase")
	for _, r := range string(id) {
		assert.True(t, job.IsPrefixChar(r), "%q is not an id character", r)
	}
	assert.True(t, id.Time().Equal(at), "id time %v, want %v", id.Time(), at)

	got, err := job.ParseID(string(id))
	require.NoError(t, err)
	assert.Equal(t, id, got)

	upper, err := job.ParseID(strings.ToUpper(string(id)))
	require.NoError(t, err)
	assert.Equal(t, id, upper, "ParseID lowercases")

	assert.Equal(t, string(id)[:10], id.Short())
	assert.Equal(t, "abc", job.ID("abc").Short())
}

func TestNewIDSortsByTime(t *testing.T) {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 50 {
		ids = append(ids, string(job.NewID(base.Add(time.Duration(i)*time.Millisecond))))
	}
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	assert.Equal(t, ids, sorted, "ids in submit order must sort in that order")

	a, b := job.NewID(base), job.NewID(base)
	assert.NotEqual(t, a, b, "two ids in the same millisecond must differ")
}

func TestParseIDRejects(t *testing.T) {
	valid := string(job.NewID(time.Now()))
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"short", valid[:25]},
		{"long", valid + "0"},
		{"letter i", "i" + valid[1:]},
		{"letter l", valid[:25] + "l"},
		{"letter o", valid[:25] + "o"},
		{"letter u", valid[:25] + "u"},
		{"punctuation", valid[:25] + "-"},
		{"path", "../" + valid[3:]},
		{"overflow", "8" + valid[1:]},
		{"spaces", " " + valid[1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := job.ParseID(tt.in)
			require.Error(t, err)
			assert.Empty(t, id)
			assert.Contains(t, err.Error(), "invalid job id")
		})
	}
}

func TestIDTimeOfGarbage(t *testing.T) {
	assert.True(t, job.ID("nonsense").Time().IsZero())
}

func TestIsPrefixChar(t *testing.T) {
	for _, r := range "0123456789abcdefghjkmnpqrstvwxyz" {
		assert.True(t, job.IsPrefixChar(r), "%q", r)
	}
	for _, r := range "ilouABZ-_./ " {
		assert.False(t, job.IsPrefixChar(r), "%q", r)
	}
}

func TestShortUnique(t *testing.T) {
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	lone := job.NewID(at.Add(-time.Hour))
	tasks := job.NewIDs(at, 3)
	tests := []struct {
		name string
		ids  []job.ID
	}{
		{"none", nil},
		{"one", []job.ID{lone}},
		{"distinct milliseconds", []job.ID{lone, job.NewID(at)}},
		{"a sweep's tasks", append([]job.ID{lone}, tasks...)},
		{"duplicates", []job.ID{lone, lone, tasks[0]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := job.ShortUnique(tt.ids)
			seen := map[string]job.ID{}
			for _, id := range tt.ids {
				p, ok := got[id]
				require.True(t, ok, "no prefix for %s", id)
				assert.True(t, strings.HasPrefix(string(id), p))
				assert.GreaterOrEqual(t, len(p), len(id.Short()))
				for _, other := range tt.ids {
					if other != id {
						assert.False(t, strings.HasPrefix(string(other), p), "%q is also a prefix of %s", p, other)
					}
				}
				seen[p] = id
			}
		})
	}
	assert.Equal(t, lone.Short(), job.ShortUnique([]job.ID{lone, job.NewID(at)})[lone], "Short when that is unique")
	got := job.ShortUnique(tasks)
	assert.Greater(t, len(got[tasks[0]]), 10, "tasks made in one millisecond share their Short")
}

func TestLookupErrors(t *testing.T) {
	nf := job.NotFoundf("no sweep %q among your sweeps", "zz")
	assert.EqualError(t, nf, `no sweep "zz" among your sweeps`)
	assert.ErrorIs(t, nf, job.ErrNotFound)
	assert.NotErrorIs(t, nf, job.ErrAmbiguous)
	amb := fmt.Errorf("cancel: %w", job.Ambiguousf("%q matches 2 sweeps", "01"))
	assert.EqualError(t, amb, `cancel: "01" matches 2 sweeps`)
	assert.ErrorIs(t, amb, job.ErrAmbiguous)
	assert.False(t, errors.Is(amb, job.ErrNotFound))
}
