package slurm

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func pendingListing(lines ...string) []byte {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.ReplaceAll(l, "|", fieldSep) + recordEnd + "\n")
	}
	return []byte(b.String())
}

func TestPendingArgs(t *testing.T) {
	args := PendingArgs()
	assert.Equal(t, []string{"-h", "-a", "-r", "-t", "PENDING", "--noconvert", "-O"}, args[:7])
	assert.Equal(t, "JobArrayID:0"+fieldSep+",PriorityLong:0"+fieldSep+",Partition:0"+recordEnd, args[7])
}

func TestQueuePlace(t *testing.T) {
	pending, err := ParsePending(pendingListing(
		"40|100|debug",
		"41|300|debug",
		"39|100|debug",
		"42_1|100|debug",
		"42_0|100|debug",
		"43|999|other",
		"44|0|debug", // held
	))
	require.NoError(t, err)
	require.Len(t, pending, 7)
	for _, tc := range []struct {
		id         string
		pos, total int
	}{
		{"41", 1, 6},   // the highest priority
		{"39", 2, 6},   // then the oldest of the 100s
		{"40", 3, 6},   //
		{"42_0", 4, 6}, // an array's tasks in task order
		{"42_1", 5, 6},
		{"44", 6, 6}, // held: last
		{"43", 1, 1}, // alone in its partition
		{"99", 0, 0}, // not pending
	} {
		pos, total := QueuePlace(pending, tc.id)
		assert.Equal(t, [2]int{tc.pos, tc.total}, [2]int{pos, total}, tc.id)
	}
}

func TestParsePendingRefusesShortRecords(t *testing.T) {
	_, err := ParsePending([]byte("40" + fieldSep + "100" + recordEnd + "\n"))
	assert.ErrorContains(t, err, "want 3 fields")
	_, err = ParsePending(pendingListing("40|high|debug"))
	assert.ErrorContains(t, err, `priority "high"`)
	none, err := ParsePending(nil)
	require.NoError(t, err)
	assert.Empty(t, none)
}
