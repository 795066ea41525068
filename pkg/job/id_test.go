package job_test

import (
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
