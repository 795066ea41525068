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

func TestHookEventFromEnv(t *testing.T) {
	env := map[string]string{
		"JOBID": "137", "JOBSTATE": "COMPLETED", "EXITCODE": "3:0", "NODES": "w2", "START": "1795348040",
		"END": "1795348041", "WORK_DIR": "/home/a/.ferry/jobs/x", "UID": "2101", "USERNAME": "a",
		"ARRAYJOBID": "0", "ARRAYTASKID": "4294967294",
	}
	ev, err := HookEventFromEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, HookEvent{JobID: "137", ArrayJobID: "0", ArrayTaskID: "4294967294", State: "COMPLETED",
		ExitCode: "3:0", Nodes: "w2", Start: 1795348040, End: 1795348041, WorkDir: "/home/a/.ferry/jobs/x",
		UID: 2101, User: "a"}, ev)
	assert.Equal(t, "137", ev.SlurmID())
	ev.ArrayJobID, ev.ArrayTaskID = "130", "7"
	assert.Equal(t, "130_7", ev.SlurmID())
	ev.ArrayTaskID = "4294967294" // the array's own record
	assert.Equal(t, "137", ev.SlurmID())

	_, err = HookEventFromEnv(func(string) string { return "" })
	assert.ErrorContains(t, err, "jobcomp/script")
}

// The socket hears only the uids it is given, and the event reaches the
// store at once.
func TestHookSocket(t *testing.T) {
	e := newEnv(t)
	id, l := e.submit("p", nil)
	e.slurm.set(running(l, "w1", e.clock.Now()))
	e.tick()
	sock := filepath.Join(t.TempDir(), "tracker.sock")
	ln, err := ListenHook(sock)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Not an allowed uid: refused.
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = e.tr.ServeHook(ctx, ln, []int{e.uid + 1})
	}()
	ev := HookEvent{JobID: l.ID, State: "COMPLETED", WorkDir: e.dir(id), UID: e.uid}
	sctx, scancel := context.WithTimeout(ctx, time.Second)
	defer scancel()
	err = SendHook(sctx, sock, ev)
	assert.ErrorContains(t, err, "refused: uid")
	cancel()
	<-served

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	ln, err = ListenHook(sock)
	require.NoError(t, err)
	go func() { _ = e.tr.ServeHook(ctx, ln, []int{e.uid}) }()
	go func() { _ = e.tr.Run(ctx) }()
	e.result(id, job.Succeeded, "exited with code 0", 0)
	sctx, scancel = context.WithTimeout(ctx, time.Second)
	defer scancel()
	require.NoError(t, SendHook(sctx, sock, ev))
	deadline := time.Now().Add(5 * time.Second)
	for e.job(id).State != job.Succeeded {
		require.True(t, time.Now().Before(deadline), "the event did not reach the store")
		time.Sleep(5 * time.Millisecond)
	}

	_, err = ListenHook(sock)
	assert.ErrorContains(t, err, "already listening")
}

// A job dir whose sbatch never ran is found by the spool scan and ends
// lost, with Observe's reason, after the grace period.
func TestNeverReachedSlurm(t *testing.T) {
	e := newEnv(t)
	id, _ := e.submit("p", nil)
	require.NoError(t, os.Remove(filepath.Join(e.dir(id), job.SlurmIDFile)))
	e.tr.mu.Lock()
	e.tr.scan()
	e.tr.mu.Unlock()
	e.tick()
	assert.Equal(t, job.Queued, e.job(id).State)
	assert.Equal(t, "submitted", e.job(id).Reason)
	e.clock.Add(2 * time.Minute)
	e.tick()
	assert.Equal(t, job.Lost, e.job(id).State)
	assert.Equal(t, "never reached Slurm: sbatch failed or was interrupted", e.job(id).Reason)

	// Its dir removed (ferry rm): the job leaves the store at the next scan.
	require.NoError(t, os.RemoveAll(e.dir(id)))
	e.tr.mu.Lock()
	e.tr.scan()
	e.tr.mu.Unlock()
	e.tick()
	_, err := e.st.Job(context.Background(), id)
	assert.ErrorIs(t, err, job.ErrNotFound)
	evs := e.events()
	assert.Equal(t, "removed", evs[len(evs)-1].Type)
}
