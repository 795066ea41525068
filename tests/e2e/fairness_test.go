package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// sacctmgr runs sacctmgr as root, non-interactively.
func sacctmgr(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("sacctmgr", append([]string{"-i"}, args...)...).CombinedOutput()
	require.NoError(t, err, "sacctmgr %v: %s", args, out)
	return string(out)
}

func share(t testing.TB, user string) slurm.Share {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, ok, err := slurm.New().Share(ctx, user)
	require.NoError(t, err)
	require.True(t, ok, "sshare knows no association for %s", user)
	return s
}

// At a deadline peak, fair share lets a student through a classmate's
// flood: alice submits 20 jobs, bob one; Slurm's fair-share factor (from
// slurmdbd's usage) puts bob's job before alice's remaining backlog.
func TestFairShareAtPeak(t *testing.T) {
	a, b := lookup(t, alice), lookup(t, bob)
	adir, aproj := project(t, a, "flood")
	var flood []string
	t.Cleanup(func() { ferry(t, a, a.Home, append([]string{"cancel"}, flood...)...) })
	for i := 0; i < 20; i++ {
		flood = append(flood, submit(t, a, adir, aproj, "--time", "5", "--", "sleep", "8").ID)
	}
	// Both nodes run alice's jobs: bob's must wait for one, and the test
	// sees which job the next free node goes to.
	running := func() int {
		n := 0
		for _, id := range flood {
			if status(t, a, id).State == job.Running {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return running() == 2 }, 90*time.Second, time.Second, "alice's jobs fill both nodes")
	// Slurm charges usage and recomputes priorities every PriorityCalcPeriod
	// (a minute): wait until alice's usage shows in her standing.
	deadline := time.Now().Add(150 * time.Second)
	for {
		sa, sb := share(t, alice), share(t, bob)
		if sa.RawUsage > 0 && sa.FairShare < sb.FairShare {
			t.Logf("fair share before bob submits: alice %.3f (usage %d), bob %.3f (usage %d)", sa.FairShare, sa.RawUsage, sb.FairShare, sb.RawUsage)
			break
		}
		require.True(t, time.Now().Before(deadline), "alice's usage never lowered her fair share below bob's: alice %+v, bob %+v", sa, sb)
		time.Sleep(2 * time.Second)
	}
	bdir, bproj := project(t, b, "late")
	submitted := time.Now()
	bj := submit(t, b, bdir, bproj, "--time", "5", "--", "true")
	var queuedThen []string
	for _, id := range flood {
		if status(t, a, id).State == job.Queued {
			queuedThen = append(queuedThen, id)
		}
	}
	require.GreaterOrEqual(t, len(queuedThen), 3, "alice still has a backlog when bob submits")
	if out, err := exec.Command("sprio", "-l").CombinedOutput(); err == nil {
		t.Logf("sprio -l when bob submitted:\n%s", out)
	}

	st := waitState(t, b, bj.ID, 3*time.Minute, func(st job.Status) bool { return !st.Started.IsZero() || st.State.Terminal() })
	require.False(t, st.Started.IsZero(), "bob's job never started: %+v", st)
	var before []string
	for _, id := range queuedThen {
		as := status(t, a, id)
		if !as.Started.IsZero() && as.Started.Before(st.Started) {
			before = append(before, id)
		}
	}
	t.Logf("bob's job waited %s; of alice's %d queued jobs, %d started before it", st.Started.Sub(submitted).Round(time.Millisecond), len(queuedThen), len(before))
	assert.LessOrEqual(t, len(before), 1, "bob's job starts before alice's backlog (one may take a node freed while bob's job was being submitted)")
}

// A user over the cluster's submit limit gets ferry's sentence, not
// Slurm's raw text, and exit code 5.
func TestSubmitLimitMessage(t *testing.T) {
	b := lookup(t, bob)
	// A QOS's limit wins over the association's: bob gets a QOS of his
	// own that allows one job, for this test.
	if out, _ := exec.Command("sacctmgr", "-n", "-P", "show", "qos", "tight", "format=name").Output(); strings.TrimSpace(string(out)) == "" {
		sacctmgr(t, "add", "qos", "tight", "MaxSubmitJobsPerUser=1")
	}
	sacctmgr(t, "modify", "user", "where", "name="+bob, "account=course", "set", "qos+=tight", "defaultqos=tight")
	t.Cleanup(func() {
		sacctmgr(t, "modify", "user", "where", "name="+bob, "account=course", "set", "defaultqos=student", "qos-=tight")
	})
	dir, proj := project(t, b, "limited")
	first := submit(t, b, dir, proj, "--time", "5", "--", "sleep", "30")
	t.Cleanup(func() { ferry(t, b, b.Home, "cancel", first.ID) })
	r := ferry(t, b, dir, "submit", proj, "--", "true")
	assert.Equal(t, 5, r.Code, r.String())
	assert.Contains(t, r.Err, "you have as many jobs queued and running as the cluster allows one user")
	assert.Contains(t, r.Err, "ferry clear-queue")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(r.Err), "\n")+1, "one line: %q", r.Err)
	assert.NotContains(t, r.Err, "Batch job submission failed", "not Slurm's raw text")
	assert.Equal(t, 1, strings.Count(r.Err, "sbatch"), "names sbatch once: %q", r.Err)
}

// slurmdbd and MariaDB restarted in the middle of a run: no job is lost,
// and accounting catches up.
func TestAccountingRestart(t *testing.T) {
	a := lookup(t, alice)
	dir, proj := project(t, a, "dbdown")
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, submit(t, a, dir, proj, "--time", "5", "--", "sleep", "2").ID)
	}
	cluster(t, "stop", "slurmdbd")
	cluster(t, "stop", "mariadb")
	var slurmIDs []string
	for _, id := range ids {
		st := waitState(t, a, id, 3*time.Minute, func(st job.Status) bool { return st.State.Terminal() })
		assert.Equal(t, job.Succeeded, st.State, "job %s ran while accounting was down", id)
		slurmIDs = append(slurmIDs, st.SlurmID)
	}
	cluster(t, "start", "mariadb")
	cluster(t, "start", "slurmdbd")
	// slurmctld kept the records while slurmdbd was away and sends them now.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		recs, err := slurm.New().Acct(ctx, slurmIDs)
		cancel()
		done := 0
		if err == nil {
			for _, r := range recs {
				if r.State == "COMPLETED" {
					done++
				}
			}
		}
		if done == len(slurmIDs) {
			break
		}
		require.True(t, time.Now().Before(deadline), "sacct shows %d of %d jobs completed two minutes after slurmdbd came back (err %v)", done, len(slurmIDs), err)
		time.Sleep(time.Second)
	}
}
