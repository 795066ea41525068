package tracker

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// jobs makes one plain job with Slurm id array, or a sweep of n tasks
// whose array has that id: the job ids and their lines.
func (e *env) jobs(sweep bool, array string, n int) ([]job.ID, []slurm.Job) {
	e.t.Helper()
	if !sweep {
		id, l := e.submit("p", nil)
		require.NoError(e.t, os.WriteFile(filepath.Join(e.dir(id), job.SlurmIDFile), []byte(array+"\n"), 0o600))
		l.ID, l.RawID, l.ArrayJobID = array, array, array
		return []job.ID{id}, []slurm.Job{l}
	}
	_, ids, lines := e.submitSweep(array, n)
	return ids, lines
}

// hookFor is the jobcomp event of a line's job ending.
func (e *env) hookFor(l slurm.Job, state string) HookEvent {
	ev := HookEvent{JobID: l.RawID, ArrayJobID: "0", ArrayTaskID: "4294967294", State: state, Nodes: l.Nodes,
		End: e.clock.Now().Unix(), WorkDir: l.WorkDir, UID: l.UID}
	if l.ArrayTaskID >= 0 {
		ev.ArrayJobID, ev.ArrayTaskID = l.ArrayJobID, strconv.Itoa(l.ArrayTaskID)
	}
	if !l.Start.IsZero() {
		ev.Start = l.Start.Unix()
	}
	return ev
}

// slurmctld loses its state and gives the Slurm ids of running jobs to new
// ones: each new job's states go to the new job, by the squeue listing or
// by the hook, and the old ones are left alone until they are lost.
func TestSlurmIDReuse(t *testing.T) {
	tests := []struct {
		name  string
		sweep bool
		hook  bool // the new jobs end through the hook, before any listing shows them
	}{
		{"plain job, squeue", false, false},
		{"plain job, hook", false, true},
		{"sweep tasks, squeue", true, false},
		{"sweep tasks, hook", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			old, oldLines := e.jobs(tt.sweep, "500", 2)
			for _, l := range oldLines {
				e.slurm.set(running(l, "w1", e.clock.Now()))
			}
			e.tick()
			for _, id := range old {
				require.Equal(t, job.Running, e.job(id).State)
			}

			// slurmctld restarts without its state: the old jobs leave the
			// listing, and new ones get their ids.
			for _, l := range oldLines {
				e.slurm.drop(l.ID)
			}
			e.clock.Add(time.Second)
			e.tick()
			nw, newLines := e.jobs(tt.sweep, "500", 2)
			for i := range newLines {
				require.Equal(t, oldLines[i].ID, newLines[i].ID, "the same Slurm id")
			}
			e.clock.Add(time.Second)
			start := e.clock.Now()
			if !tt.hook {
				for _, l := range newLines {
					e.slurm.set(running(l, "w2", start))
				}
				e.tick()
				for _, id := range nw {
					j := e.job(id)
					assert.Equal(t, job.Running, j.State, "new job %s", id)
					assert.Equal(t, "w2", j.Node)
				}
			}
			e.clock.Add(2 * time.Second)
			for i, id := range nw {
				e.result(id, job.Succeeded, "exited with code 0", 0)
				done := ended(running(newLines[i], "w2", start), "COMPLETED", e.clock.Now())
				if tt.hook {
					require.NoError(t, e.tr.HandleHook(context.Background(), e.hookFor(done, "COMPLETED")))
				} else {
					e.slurm.set(done)
				}
			}
			e.tick()
			for _, l := range newLines { // the listing catches up
				e.slurm.set(ended(running(l, "w2", start), "COMPLETED", e.clock.Now()))
			}
			e.tick()

			evs := e.events()
			for i, id := range nw {
				j := e.job(id)
				assert.Equal(t, job.Succeeded, j.State, "new job %s", id)
				assert.Equal(t, newLines[i].ID, j.SlurmID)
				want := []string{">running@squeue", "running>succeeded@squeue"}
				if tt.hook {
					want = []string{">succeeded@hook"}
				}
				assert.Equal(t, want, stateSources(evs, id), "new job %s", id)
			}
			for _, id := range old {
				j := e.job(id)
				assert.Equal(t, job.Running, j.State, "old job %s: the new job's states are not its", id)
				assert.Equal(t, "w1", j.Node)
				assert.Equal(t, []string{">running@squeue"}, stateSources(evs, id), "old job %s", id)
			}

			// Past the grace period the old jobs are lost; the new ones stay as they ended.
			e.clock.Add(61 * time.Second)
			e.tick()
			evs = e.events()
			for _, id := range old {
				assert.Equal(t, job.Lost, e.job(id).State)
				assert.Equal(t, []string{">running@squeue", "running>lost@lost"}, stateSources(evs, id))
			}
			for _, id := range nw {
				assert.Equal(t, job.Succeeded, e.job(id).State)
			}
		})
	}
}

// A line that could not be attributed (its job dir or sweep is gone) is
// retried only every 30 s; a new job that gets its Slurm id is not held
// back by that.
func TestUnattributedLineDoesNotHoldBackReusedID(t *testing.T) {
	for _, sweep := range []bool{false, true} {
		t.Run("sweep="+strconv.FormatBool(sweep), func(t *testing.T) {
			e := newEnv(t)
			old, oldLines := e.jobs(sweep, "700", 1)
			require.NoError(t, os.RemoveAll(e.dir(old[0])))
			if sweep {
				require.NoError(t, os.RemoveAll(oldLines[0].WorkDir))
			}
			e.slurm.set(oldLines[0])
			e.tick()
			_, err := e.st.Job(context.Background(), old[0])
			require.ErrorIs(t, err, job.ErrNotFound)

			e.slurm.drop(oldLines[0].ID)
			e.clock.Add(time.Second)
			nw, newLines := e.jobs(sweep, "700", 1)
			require.Equal(t, oldLines[0].ID, newLines[0].ID)
			e.slurm.set(newLines[0])
			e.clock.Add(time.Second)
			e.tick()
			j := e.job(nw[0])
			assert.Equal(t, job.Queued, j.State)
			assert.Equal(t, "700"+map[bool]string{true: "_0"}[sweep], j.SlurmID)
		})
	}
}

// A sweep's tasks are found through its own record, in its dir (the work
// dir of its arrays), and only in the spool the sweep is in.
func TestScanSweep(t *testing.T) {
	tests := []struct {
		name    string
		dir     func(e *env, sweep job.ID, tasks []job.ID) string
		uid     func(e *env) int
		wantErr string
		indexed bool
		lost    bool // the tasks' slurm_id files are gone
	}{
		{name: "the sweep's dir", indexed: true},
		{name: "a job dir, not a sweep's", dir: func(e *env, _ job.ID, tasks []job.ID) string { return e.dir(tasks[0]) },
			wantErr: "is not the dir of sweep"},
		{name: "another sweep's dir", dir: func(e *env, _ job.ID, _ []job.ID) string {
			return submit.SweepDir(e.spool, job.NewID(e.clock.Now()))
		}, wantErr: "is not the dir of sweep"},
		{name: "owned by another uid", uid: func(e *env) int { return e.uid + 1 }, wantErr: "not owned by the job's user"},
		{name: "the tasks' slurm_id files lost (hints): the record says", indexed: true, lost: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			sweep, tasks, lines := e.submitSweep("600", 3)
			if tt.lost {
				for _, id := range tasks {
					require.NoError(t, os.Remove(filepath.Join(e.dir(id), job.SlurmIDFile)))
				}
			}
			dir, uid := lines[0].WorkDir, e.uid
			if tt.dir != nil {
				dir = tt.dir(e, sweep, tasks)
			}
			if tt.uid != nil {
				uid = tt.uid(e)
			}
			e.tr.mu.Lock()
			err := e.tr.scanSweep(sweep, dir, uid)
			got := map[string]job.ID{}
			for k, id := range e.tr.tasks {
				got[string(k.sweep)+"/"+k.slurm] = id
			}
			e.tr.mu.Unlock()
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
			} else {
				assert.NoError(t, err)
			}
			want := map[string]job.ID{}
			if tt.indexed {
				for i, id := range tasks {
					want[string(sweep)+"/600_"+strconv.Itoa(i)] = id
				}
			}
			assert.Equal(t, want, got)
		})
	}

	// The record names a task dir outside the sweep's spool: not read.
	e := newEnv(t)
	sweep, tasks, lines := e.submitSweep("601", 1)
	other := t.TempDir()
	elsewhere := job.NewID(e.clock.Now())
	require.NoError(t, os.Rename(e.dir(tasks[0]), filepath.Join(other, string(elsewhere))))
	rec, err := submit.ReadSweep(lines[0].WorkDir)
	require.NoError(t, err)
	rec.Tasks[0].ID, rec.Tasks[0].Dir = elsewhere, filepath.Join(other, string(elsewhere))
	e.writeJSON(lines[0].WorkDir, job.SweepFile, rec)
	e.tr.mu.Lock()
	assert.NoError(t, e.tr.scanSweep(sweep, lines[0].WorkDir, e.uid))
	assert.Empty(t, e.tr.tasks)
	assert.NotContains(t, e.tr.entries, elsewhere)
	e.tr.mu.Unlock()
}
