package slurm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExpandHostlist(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  bool
	}{
		{"w1", []string{"w1"}, false},
		{"w[1-3]", []string{"w1", "w2", "w3"}, false},
		{"w[1-2,5],gpu07", []string{"w1", "w2", "w5", "gpu07"}, false},
		{"n[08-10]", []string{"n08", "n09", "n10"}, false},
		{"a[1-2]b", []string{"a1b", "a2b"}, false},
		{"w[3-1]", nil, true},
		{"w]1[", nil, true},
	}
	for _, c := range cases {
		got, err := ExpandHostlist(c.in)
		if c.err {
			assert.Error(t, err, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		assert.Equal(t, c.want, got, c.in)
	}
}

func TestParseAllocation(t *testing.T) {
	line := func(fields ...string) string {
		s := ""
		for i, f := range fields {
			s += f
			if i < len(fields)-1 {
				s += fieldSep
			}
		}
		return s + recordEnd + "\n"
	}
	// as squeue prints it without memory in the TRES (CR_Core)
	a, err := parseAllocation(line("136", "2101", "RUNNING", "w1", "2", "200M", "cpu=2,node=1,billing=2", "N/A", "N/A", "/home/a/.ferry/jobs/x", "ferry:abc"), "136")
	require.NoError(t, err)
	assert.Equal(t, Allocation{ID: "136", UID: 2101, State: "RUNNING", Nodes: []string{"w1"}, CPUs: 2, MemBytes: 200 << 20,
		Comment: "ferry:abc", WorkDir: "/home/a/.ferry/jobs/x", ArrayTask: -1}, a)

	// TRES win where they carry memory and GPUs
	a, err = parseAllocation(line("7", "0", "COMPLETING", "g[1-2]", "4", "1G", "cpu=8,mem=16G,node=2,gres/gpu=2", "3", "7", "/tmp", "(null)"), "7")
	require.NoError(t, err)
	assert.Equal(t, []string{"g1", "g2"}, a.Nodes)
	assert.Equal(t, 8, a.CPUs)
	assert.Equal(t, int64(16<<30), a.MemBytes)
	assert.Equal(t, 2, a.GPUs)
	assert.Equal(t, "", a.Comment)
	assert.Equal(t, 3, a.ArrayTask)

	// memory per CPU
	a, err = parseAllocation(line("8", "5", "RUNNING", "w2", "2", "512Mc", "cpu=2,node=1", "N/A", "N/A", "/tmp", "x"), "8")
	require.NoError(t, err)
	assert.Equal(t, int64(1<<30), a.MemBytes)

	// an array's own id lists all its tasks: the record with that JobID wins
	out := line("12", "5", "COMPLETED", "w1", "2", "1G", "", "0", "9", "/s", "ferry:sw") +
		line("9", "5", "RUNNING", "w2", "2", "1G", "", "5", "9", "/s", "ferry:sw")
	a, err = parseAllocation(out, "9")
	require.NoError(t, err)
	assert.Equal(t, "RUNNING", a.State)
	assert.Equal(t, 5, a.ArrayTask)
	assert.Equal(t, "9", a.ArrayJobID)
	_, err = parseAllocation(out, "10")
	assert.ErrorIs(t, err, ErrNoSuchJob)

	_, err = parseAllocation("", "1")
	assert.ErrorIs(t, err, ErrNoSuchJob)
	_, err = parseAllocation(line("8", "notanumber", "RUNNING", "w2", "2", "1G", "", "N/A", "N/A", "/tmp", "x"), "8")
	assert.Error(t, err)
}
