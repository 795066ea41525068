package sandbox

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMemTotal(t *testing.T) {
	n, err := memTotal(strings.NewReader("MemTotal:       24591212 kB\nMemFree:          123 kB\n"))
	require.NoError(t, err)
	assert.Equal(t, int64(24591212)<<10, n)
	for _, bad := range []string{"", "MemFree: 1 kB\n", "MemTotal: 12 MB\n", "MemTotal: x kB\n", "MemTotal: -4 kB\n"} {
		_, err := memTotal(strings.NewReader(bad))
		assert.Error(t, err, "%q", bad)
	}
	// This machine's own.
	n, err = NodeMemory()
	require.NoError(t, err)
	assert.Greater(t, n, int64(64<<20))
}

// A sandbox's memory limit is Slurm's allotment, capped at the node's
// memory less the reserve, and that cap when Slurm allots none.
func TestMemLimit(t *testing.T) {
	const gib = int64(1) << 30
	p := &Policy{NodeMemory: 16 * gib, MemReserve: gib / 2}
	ceiling := 16*gib - gib/2
	assert.Equal(t, 2*gib, p.memLimit(2*gib), "an allotment below the ceiling stands")
	assert.Equal(t, ceiling, p.memLimit(0), "no allotment: the ceiling")
	assert.Equal(t, ceiling, p.memLimit(64*gib), "more than the node has: the ceiling")
	assert.Equal(t, ceiling, p.memLimit(ceiling))
	unknown := &Policy{MemReserve: gib / 2}
	assert.Equal(t, int64(0), unknown.memLimit(0), "node memory unknown: no cap is made up")
	assert.Equal(t, 2*gib, unknown.memLimit(2*gib))
	tiny := &Policy{NodeMemory: gib / 4, MemReserve: gib / 2}
	assert.Equal(t, 2*gib, tiny.memLimit(2*gib), "a reserve above the node's memory caps nothing")
}
