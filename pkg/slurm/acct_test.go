package slurm

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAcctArgs(t *testing.T) {
	args, err := AcctArgs([]string{"57", "60_3"})
	require.NoError(t, err)
	assert.Equal(t, []string{"-X", "-n", "-P", "-a", "--noconvert", "-S", "1970-01-01", "-o", "JobID,State,ExitCode,Start,End", "-j", "57,60_3"}, args)
	_, err = AcctArgs([]string{"57;rm"})
	assert.ErrorContains(t, err, "invalid Slurm job id")
}

func TestParseAcct(t *testing.T) {
	jobs, err := ParseAcct([]byte("57|COMPLETED|0:0|1765000000|1765000005\n58|CANCELLED by 2101|0:15|1765000001|1765000009\n60_3|FAILED|1:0|Unknown|Unknown\n"))
	require.NoError(t, err)
	require.Len(t, jobs, 3)
	assert.Equal(t, AcctJob{ID: "57", State: "COMPLETED", ExitCode: "0:0", Start: time.Unix(1765000000, 0), End: time.Unix(1765000005, 0)}, jobs[0])
	assert.Equal(t, "CANCELLED", jobs[1].State, "the 'by UID' is dropped")
	assert.Equal(t, "60_3", jobs[2].ID)
	assert.True(t, jobs[2].Start.IsZero())
	none, err := ParseAcct(nil)
	require.NoError(t, err)
	assert.Empty(t, none, "no accounting: no rows")
	_, err = ParseAcct([]byte("57|COMPLETED\n"))
	assert.ErrorContains(t, err, "want 5 fields")
}

func TestParseShare(t *testing.T) {
	out := []byte("students|ferry-alice|3600|0.500000|0.250000\nstudents|ferry-bob|0|0.000000|1.000000\n")
	s, ok, err := ParseShare(out, "ferry-bob")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, Share{Account: "students", RawUsage: 0, EffectiveUsage: 0, FairShare: 1}, s)
	s, ok, err = ParseShare(out, "ferry-alice")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, int64(3600), s.RawUsage)
	assert.InDelta(t, 0.25, s.FairShare, 1e-9)
	_, ok, err = ParseShare(out, "carol")
	require.NoError(t, err)
	assert.False(t, ok, "no association, no standing")
	_, err = ShareArgs("-x")
	assert.Error(t, err)
}

func TestPolicyMessage(t *testing.T) {
	stderr := "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)\n"
	msg, ok := PolicyMessage(stderr)
	require.True(t, ok)
	assert.Contains(t, msg, "you have as many jobs queued and running as the cluster allows one user")
	e := &CmdError{Args: []string{"sbatch"}, ExitCode: 1, Stderr: stderr}
	assert.Equal(t, "sbatch: "+msg+" (exit 1)", e.Error(), "the sentence, not Slurm's raw text")
	_, ok = PolicyMessage("sbatch: error: Batch job submission failed: Invalid partition name specified\n")
	assert.False(t, ok)
}
