package epilog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/job"
	sb "github.com/ferry-hpc/ferry/pkg/sandbox"
	"github.com/ferry-hpc/ferry/pkg/slurm"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// fakeEngine holds containers by id; only List and Remove are used here.
type fakeEngine struct {
	mu         sync.Mutex
	containers map[string]map[string]string // id → labels
}

func (e *fakeEngine) Start(context.Context, sb.ContainerSpec, io.Writer) (sb.Container, error) {
	return sb.Container{}, errors.New("not here")
}

func (e *fakeEngine) Wait(context.Context, sb.Container) (sb.Exit, error) {
	return sb.Exit{}, errors.New("not here")
}

func (e *fakeEngine) Remove(_ context.Context, id string, _ time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.containers, id)
	return nil
}

func (e *fakeEngine) List(_ context.Context, labels map[string]string) ([]sb.ContainerInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []sb.ContainerInfo
next:
	for id, l := range e.containers {
		for k, v := range labels {
			if l[k] != v {
				continue next
			}
		}
		out = append(out, sb.ContainerInfo{ID: id, Name: id, Labels: l})
	}
	return out, nil
}

func (e *fakeEngine) ids() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id := range e.containers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// fakeAgent answers Cleanup with res or err, and records what it was asked.
type fakeAgent struct {
	res  sb.CleanupResult
	err  error
	reqs []sb.CleanupRequest
}

func (a *fakeAgent) Cleanup(_ context.Context, req sb.CleanupRequest) (sb.CleanupResult, error) {
	a.reqs = append(a.reqs, req)
	return a.res, a.err
}

func labels(sid, node string) map[string]string {
	return map[string]string{sb.LabelSlurmJob: sid, sb.LabelNode: node, sb.LabelJob: "x"}
}

// node is a worker's state after Slurm job 42 (ferry job id) was killed:
// its container still there, its bundle still unpacked in scratch.
type node struct {
	scratch string
	id      job.ID
	engine  *fakeEngine
}

func newNode(t *testing.T) *node {
	t.Helper()
	n := &node{scratch: filepath.Join(t.TempDir(), "scratch"), id: job.NewID(time.Now())}
	for _, d := range []string{string(n.id) + ".k1/src", string(n.id) + ".k2", "01jd8x3k5m7n9p1q3r5s7t9v2w.other"} {
		require.NoError(t, os.MkdirAll(filepath.Join(n.scratch, d), 0o700))
	}
	require.NoError(t, os.WriteFile(filepath.Join(n.scratch, string(n.id)+".k1", "src", "train.py"), []byte("x"), 0o600))
	n.engine = &fakeEngine{containers: map[string]map[string]string{
		"c-42-w1": labels("42", "w1"), "c-42-w2": labels("42", "w2"), "c-7-w1": labels("7", "w1"),
	}}
	return n
}

func (n *node) scratchLeft(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(n.scratch)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestCleanup(t *testing.T) {
	tests := []struct {
		name         string
		agent        *fakeAgent
		engineErr    error
		noFerryJob   bool
		wantRemoved  int
		wantErr      string
		wantEngine   []string // containers left
		wantScratch  func(n *node) []string
		wantMessages []string
	}{
		{
			name:        "the agent cleans up",
			agent:       &fakeAgent{res: sb.CleanupResult{Removed: 1, Scratch: []string{"a.k1"}}},
			wantRemoved: 1,
			wantEngine:  []string{"c-42-w1", "c-42-w2", "c-7-w1"}, // the fake agent did it, not the epilog
			wantScratch: func(n *node) []string {
				return []string{"01jd8x3k5m7n9p1q3r5s7t9v2w.other", string(n.id) + ".k1", string(n.id) + ".k2"}
			},
			wantMessages: []string{"removed 1 container(s) of Slurm job 42", "removed scratch a.k1 of job"},
		},
		{
			name:        "the agent is down: the epilog removes the job's containers and scratch itself",
			agent:       &fakeAgent{err: errors.New("reach the ferry agent at /run/ferry/agent-w1.sock: connection refused")},
			wantRemoved: 1,
			wantEngine:  []string{"c-42-w2", "c-7-w1"},
			wantScratch: func(n *node) []string { return []string{"01jd8x3k5m7n9p1q3r5s7t9v2w.other"} },
			wantMessages: []string{
				"agent: reach the ferry agent at /run/ferry/agent-w1.sock: connection refused; removing job 42's containers directly (and its scratch dirs)",
				"removed 1 container(s) of Slurm job 42",
				"removed scratch {id}.k1, {id}.k2 of job {id}",
			},
		},
		{
			name:        "the agent and Docker are both down: the scratch goes all the same",
			agent:       &fakeAgent{err: errors.New("connection refused")},
			engineErr:   errors.New("docker client: no socket"),
			wantErr:     "docker client: no socket",
			wantEngine:  []string{"c-42-w1", "c-42-w2", "c-7-w1"},
			wantScratch: func(n *node) []string { return []string{"01jd8x3k5m7n9p1q3r5s7t9v2w.other"} },
		},
		{
			name:        "not a ferry job: containers only",
			agent:       &fakeAgent{err: errors.New("connection refused")},
			noFerryJob:  true,
			wantRemoved: 1,
			wantEngine:  []string{"c-42-w2", "c-7-w1"},
			wantScratch: func(n *node) []string {
				return []string{"01jd8x3k5m7n9p1q3r5s7t9v2w.other", string(n.id) + ".k1", string(n.id) + ".k2"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			var errOut bytes.Buffer
			c := &cleaner{
				agent: tt.agent,
				engine: func() (sb.Engine, func(), error) {
					if tt.engineErr != nil {
						return nil, nil, tt.engineErr
					}
					return n.engine, func() {}, nil
				},
				node: "w1", scratchRoot: n.scratch, errOut: &errOut,
			}
			fj := ferryJob{id: n.id, uid: os.Getuid()}
			if tt.noFerryJob {
				fj = ferryJob{}
			}
			removed, err := c.cleanup(context.Background(), "42", fj)
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.wantRemoved, removed)
			}
			require.Len(t, tt.agent.reqs, 1)
			assert.Equal(t, sb.CleanupRequest{SlurmJobID: "42", FerryID: fj.id, UID: fj.uid}, tt.agent.reqs[0],
				"the agent is told the ferry job and its owner")
			assert.Equal(t, tt.wantEngine, n.engine.ids())
			assert.ElementsMatch(t, tt.wantScratch(n), n.scratchLeft(t))
			for _, m := range tt.wantMessages {
				m = string(bytes.ReplaceAll([]byte(m), []byte("{id}"), []byte(n.id)))
				assert.Contains(t, errOut.String(), "ferry epilog: "+m)
			}
		})
	}
}

func TestLookupFerryJob(t *testing.T) {
	home := t.TempDir()
	uid := os.Getuid()
	homeOf := func(int) (string, error) { return home, nil }
	plainID := job.NewID(time.Now())
	sweepID := job.NewID(time.Now())
	taskIDs := job.NewIDs(time.Now(), 3)
	sweepDir := filepath.Join(home, ".ferry", "jobs", ".sweeps", string(sweepID))
	require.NoError(t, os.MkdirAll(sweepDir, 0o700))
	sw := submit.Sweep{ID: sweepID, Dir: sweepDir, Arrays: []submit.ArrayJob{{SlurmID: "390", First: 0, Last: 2}}}
	for i, id := range taskIDs {
		sw.Tasks = append(sw.Tasks, submit.SweepTask{Index: i, ID: id, Dir: filepath.Join(home, ".ferry", "jobs", string(id))})
	}
	data, err := json.Marshal(sw)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(sweepDir, job.SweepFile), data, 0o600))

	tests := []struct {
		name    string
		alloc   slurm.Allocation
		want    ferryJob
		wantErr string
	}{
		{
			name:  "a plain job: the comment names it",
			alloc: slurm.Allocation{ID: "42", UID: uid, Comment: "ferry:" + string(plainID), WorkDir: "/somewhere", ArrayTask: -1},
			want:  ferryJob{id: plainID, dir: "/somewhere", home: home, uid: uid},
		},
		{
			name:  "a sweep task: its own id, from the sweep's record",
			alloc: slurm.Allocation{ID: "391", UID: uid, Comment: "ferry:" + string(sweepID), WorkDir: sweepDir, ArrayTask: 1, ArrayJobID: "390"},
			want:  ferryJob{id: taskIDs[1], dir: sw.Tasks[1].Dir, home: home, uid: uid},
		},
		{
			name:    "a sweep task the record does not list",
			alloc:   slurm.Allocation{ID: "399", UID: uid, Comment: "ferry:" + string(sweepID), WorkDir: sweepDir, ArrayTask: 7, ArrayJobID: "390"},
			wantErr: "has no task for array 390_7",
		},
		{
			name:  "not a ferry job",
			alloc: slurm.Allocation{ID: "5", UID: uid, Comment: "my own job", WorkDir: "/tmp", ArrayTask: -1},
		},
		{
			name:  "a comment that is not a ferry id",
			alloc: slurm.Allocation{ID: "5", UID: uid, Comment: "ferry:../../etc", WorkDir: "/tmp", ArrayTask: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookupFerryJob(tt.alloc, homeOf)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// The record the epilog writes for a job whose sandbox could not: a
// cancelled job is still COMPLETING in Slurm while its epilog runs, so the
// user's cancel marker, not Slurm's state, makes it cancelled.
func TestBackfillResult(t *testing.T) {
	tests := []struct {
		name        string
		slurmState  string
		marker, log bool
		removed     int
		wantState   job.State
		wantReason  string
	}{
		{name: "cancelled before the sandbox started", slurmState: "COMPLETING", marker: true,
			wantState: job.Cancelled, wantReason: "cancelled before its sandbox started"},
		{name: "cancelled while it ran, sandbox killed", slurmState: "COMPLETING", marker: true, log: true, removed: 1,
			wantState: job.Cancelled, wantReason: "cancelled before its sandbox could record the end"},
		{name: "scancel by an admin, Slurm already says so", slurmState: "CANCELLED", log: true,
			wantState: job.Cancelled, wantReason: "the job's sandbox process was killed before it could record how the job ended"},
		{name: "sandbox process killed", slurmState: "COMPLETING", log: true, removed: 1,
			wantState: job.Failed, wantReason: "the job's sandbox process was killed before it could record how the job ended; the epilog removed its container"},
		{name: "never started", slurmState: "COMPLETING",
			wantState: job.Failed, wantReason: "the job ended before its sandbox started: see slurm.out ('ferry logs --slurm')"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			id := job.NewID(time.Now())
			d := job.DirFor(filepath.Join(home, ".ferry", "jobs"), id)
			require.NoError(t, os.MkdirAll(d.Path(), 0o700))
			if tt.marker {
				require.NoError(t, os.WriteFile(d.Cancel(), nil, 0o600))
			}
			if tt.log {
				require.NoError(t, os.WriteFile(d.Log(), []byte("started\n"), 0o600))
			}
			a := slurm.Allocation{ID: "42", UID: os.Getuid(), State: tt.slurmState}
			fj := ferryJob{id: id, dir: d.Path(), home: home, uid: os.Getuid()}
			require.NoError(t, backfillResult(a, fj, "w1", tt.removed))
			res, err := job.ReadResult(d)
			require.NoError(t, err)
			require.NotNil(t, res)
			assert.Equal(t, tt.wantState, res.State)
			assert.Equal(t, tt.wantReason, res.Reason)
			assert.Equal(t, "epilog", res.WrittenBy)
			assert.Equal(t, -1, res.ExitCode)
		})
	}
}
