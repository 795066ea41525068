package tracker

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
)

// Every state event, and the job's hash, say which path delivered the
// state: a dashboard (or a test) can tell the hook's push from polling.
func TestStateSource(t *testing.T) {
	tests := []struct {
		name string
		// run takes a job through one path and returns it.
		run        func(e *env) job.ID
		wantEvents []string // "prev>state@source"
		wantSource string   // the hash's source field at the end
	}{
		{
			name: "the hook pushes the end; squeue confirms it later",
			run: func(e *env) job.ID {
				id, l := e.submit("p", nil)
				start := e.clock.Now()
				e.slurm.set(running(l, "w1", start))
				e.tick()
				e.clock.Add(2 * time.Second)
				e.result(id, job.Succeeded, "exited with code 0", 0)
				require.NoError(e.t, e.tr.HandleHook(context.Background(), HookEvent{JobID: l.ID, State: "COMPLETED",
					Nodes: "w1", Start: start.Unix(), End: e.clock.Now().Unix(), WorkDir: e.dir(id), UID: e.uid}))
				e.slurm.set(ended(running(l, "w1", start), "COMPLETED", e.clock.Now()))
				e.tick()
				return id
			},
			wantEvents: []string{">running@squeue", "running>succeeded@hook"},
			wantSource: "hook",
		},
		{
			name: "polling alone: squeue shows the end",
			run: func(e *env) job.ID {
				id, l := e.submit("p", nil)
				e.slurm.set(l)
				e.tick()
				start := e.clock.Now()
				e.slurm.set(running(l, "w1", start))
				e.tick()
				e.result(id, job.Failed, "exited with code 3", 3)
				e.slurm.set(ended(running(l, "w1", start), "FAILED", e.clock.Now()))
				e.tick()
				return id
			},
			wantEvents: []string{">queued@squeue", "queued>running@squeue", "running>failed@squeue"},
			wantSource: "squeue",
		},
		{
			name: "the job left the listing; result.json says how it ended",
			run: func(e *env) job.ID {
				id, l := e.submit("p", nil)
				e.slurm.set(running(l, "w1", e.clock.Now()))
				e.tick()
				e.slurm.drop(l.ID)
				e.result(id, job.Succeeded, "exited with code 0", 0)
				e.tick()
				return id
			},
			wantEvents: []string{">running@squeue", "running>succeeded@result"},
			wantSource: "result",
		},
		{
			name: "Slurm ended the job; its result.json, read later, says otherwise",
			run: func(e *env) job.ID {
				id, l := e.submit("p", nil)
				start := e.clock.Now()
				e.slurm.set(ended(running(l, "w1", start), "COMPLETED", start))
				e.tick()
				e.clock.Add(time.Second)
				e.result(id, job.Failed, "exited with code 3", 3)
				e.tick()
				return id
			},
			wantEvents: []string{">succeeded@squeue", "succeeded>failed@result"},
			wantSource: "result",
		},
		{
			name: "cancelled while queued: the job vanished, the cancel marker says why",
			run: func(e *env) job.ID {
				id, l := e.submit("p", nil)
				e.slurm.set(l)
				e.tick()
				e.slurm.drop(l.ID)
				require.NoError(e.t, os.WriteFile(filepath.Join(e.dir(id), job.CancelFile), nil, 0o600))
				e.tick()
				return id
			},
			wantEvents: []string{">queued@squeue", "queued>cancelled@cancel"},
			wantSource: "cancel",
		},
		{
			name: "the spool scan finds a job Slurm does not list yet",
			run: func(e *env) job.ID {
				id, _ := e.submit("p", nil)
				e.tr.mu.Lock()
				e.tr.scan()
				e.tr.mu.Unlock()
				e.tick()
				return id
			},
			wantEvents: []string{">queued@scan"},
			wantSource: "scan",
		},
		{
			name: "gone from Slurm without a result: lost after the grace period",
			run: func(e *env) job.ID {
				id, l := e.submit("p", nil)
				e.clock.Add(2 * time.Minute)
				e.slurm.set(running(l, "w1", e.clock.Now()))
				e.tick()
				e.slurm.drop(l.ID)
				e.tick()
				e.clock.Add(61 * time.Second)
				e.tick()
				return id
			},
			wantEvents: []string{">running@squeue", "running>lost@lost"},
			wantSource: "lost",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := tt.run(e)
			assert.Equal(t, tt.wantEvents, stateSources(e.events(), id))
			assert.Equal(t, tt.wantSource, e.hashField(id, "source"))
			assert.Equal(t, tt.wantSource, string(e.job(id).Source))

			// A restarted tracker, and a rebuilt store, keep the source.
			e.tr = e.newTracker()
			e.tick()
			e.srv.Do(t, "FLUSHALL")
			e.tick()
			assert.Equal(t, tt.wantSource, e.hashField(id, "source"))
		})
	}
}
