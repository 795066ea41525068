package tracker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/store"
)

// acctSlurm is the fake Slurm with accounting: sacct knows the jobs the
// test records.
type acctSlurm struct {
	*fakeSlurm
	mu    sync.Mutex
	acct  map[string]slurm.AcctJob
	asked [][]string
}

func (a *acctSlurm) Acct(_ context.Context, ids []string) ([]slurm.AcctJob, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, ids)
	var out []slurm.AcctJob
	for _, id := range ids {
		if j, ok := a.acct[id]; ok {
			out = append(out, j)
		}
	}
	return out, nil
}

// A job that left the listing without a result.json is checked against
// sacct before it is called lost: sacct's end wins; a job sacct does not
// know is lost as before.
func TestSacctBeforeLost(t *testing.T) {
	e := newEnv(t)
	as := &acctSlurm{fakeSlurm: e.slurm, acct: map[string]slurm.AcctJob{}}
	e.tr = New(Options{Slurm: as, Store: e.st, Spools: e.tr.o.Spools, LostAfter: time.Minute, Now: e.clock.Now, Metrics: NewMetrics()})
	e.tick()
	known, knownLine := e.submit("p", nil)
	gone, goneLine := e.submit("p", nil)
	e.clock.Add(2 * time.Minute)
	e.slurm.set(running(knownLine, "w1", e.clock.Now()))
	e.slurm.set(running(goneLine, "w2", e.clock.Now()))
	e.tick()

	// Both leave the listing (MinJobAge passed while the tracker was
	// away, say), neither wrote a result.json.
	e.slurm.drop(knownLine.ID)
	e.slurm.drop(goneLine.ID)
	as.acct[knownLine.ID] = slurm.AcctJob{ID: knownLine.ID, State: "COMPLETED", ExitCode: "0:0", Start: e.clock.Now(), End: e.clock.Now().Add(time.Second)}
	e.clock.Add(time.Second)
	e.tick()
	e.clock.Add(61 * time.Second)
	e.tick()
	assert.Equal(t, job.Running, e.job(known).State, "not lost before sacct was asked")
	assert.Empty(t, as.asked, "sacct is asked on the next tick, once for all")
	e.clock.Add(time.Second)
	e.tick()
	require.Len(t, as.asked, 1)
	assert.ElementsMatch(t, []string{knownLine.ID, goneLine.ID}, as.asked[0])

	j := e.job(known)
	assert.Equal(t, job.Succeeded, j.State, "sacct says it completed")
	assert.Contains(t, j.Reason, "from Slurm's accounting")
	assert.Equal(t, store.SourceSacct, j.Source)
	assert.Equal(t, job.Lost, e.job(gone).State, "sacct does not know it: lost")

	e.clock.Add(time.Minute)
	e.tick()
	assert.Len(t, as.asked, 1, "decided jobs are not asked again")
}
