package slurm

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

const ferryID = "01jd8x3k5m7n9p1q3r5s7t9v2w"

func TestSqueueArgs(t *testing.T) {
	const format = "JobArrayID:0\x1f,JobID:0\x1f,ArrayJobID:0\x1f,ArrayTaskID:0\x1f,State:0\x1f,Reason:0\x1f," +
		"UserID:0\x1f,UserName:0\x1f,Partition:0\x1f,NodeList:0\x1f," +
		"SubmitTime:0\x1f,StartTime:0\x1f,EndTime:0\x1f,TimeLimit:0\x1f,PriorityLong:0\x1f,WorkDir:0\x1f,Name:0\x1f,Comment:0\x1e"
	base := []string{"-h", "-a", "-t", "all", "-r", "--noconvert", "-O", format}
	tests := []struct {
		name    string
		q       Query
		want    []string
		wantErr string
	}{
		{name: "all", want: base},
		{name: "user", q: Query{User: "alice"}, want: append(append([]string{}, base...), "-u", "alice")},
		{name: "ids", q: Query{JobIDs: []string{"12", "13_4"}}, want: append(append([]string{}, base...), "-j", "12,13_4")},
		{name: "both", q: Query{User: "bob", JobIDs: []string{"7"}}, want: append(append([]string{}, base...), "-u", "bob", "-j", "7")},
		{name: "bad id", q: Query{JobIDs: []string{"12,13"}}, wantErr: `invalid Slurm job id "12,13"`},
		{name: "bad user", q: Query{User: "a,b"}, wantErr: `invalid user name "a,b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SqueueArgs(tt.q)
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// squeueOutput is what squeue prints for a small, busy queue: a running
// ferry job, a pending array (tasks expanded by -r) of which one task runs,
// a pending job with N/A and Unknown times, a cancelled job, foreign jobs
// with a null comment and with a comment and a name holding the separators,
// and a pending job with an estimated start in 2100 (102_1's, in 2025, has
// passed).
var squeueOutput = squeueLine("101", "101", "101", "N/A", "RUNNING", "None", "1000", "alice", "debug", "w1",
	"1763808000", "1763808001", "1763808601", "10:00", "4294901659", "/home/alice/.ferry/jobs/"+ferryID, "ferry/demo", "ferry:"+ferryID) +
	squeueLine("102_0", "103", "102", "0", "RUNNING", "None", "1000", "alice", "debug", "w2",
		"1763808010", "1763808011", "1763811611", "1:00:00", "4294901658", "/home/alice/.ferry/sweeps", "ferry/sweep", "ferry:"+ferryID) +
	squeueLine("102_1", "102", "102", "1", "PENDING", "Resources", "1000", "alice", "debug", "",
		"1763808010", "1763811611", "1763815211", "1:00:00", "4294901658", "/home/alice/.ferry/sweeps", "ferry/sweep", "ferry:"+ferryID) +
	squeueLine("102_2", "102", "102", "2", "PENDING", "Resources", "1000", "alice", "debug", "",
		"1763808010", "N/A", "Unknown", "1:00:00", "4294901658", "/home/alice/.ferry/sweeps", "ferry/sweep", "ferry:"+ferryID) +
	squeueLine("104", "104", "104", "N/A", "PENDING", "Priority", "1001", "bob", "gpu", "",
		"1763808020", "0", "NONE", "UNLIMITED", "1000", "/home/bob", "bash", "(null)") +
	squeueLine("105", "105", "105", "N/A", "CANCELLED", "None", "1001", "bob", "debug", "w1",
		"1763807000", "1763807001", "1763807100", "1-00:00:00", "0", "/home/bob/a b", "train", "") +
	squeueLine("106", "106", "106", "N/A", "FAILED", "NonZeroExitCode", "1002", "carol", "debug", "w[1-2]",
		"1763807000", "1763807001", "1763807100", "5:00", "4294901654", "(null)", "a\x1fname", "ferry:x\x1fy\nz") +
	squeueLine("107", "107", "107", "N/A", "COMPLETED", "None", "1003", "1003", "debug", "w1",
		"2026-11-22T10:00:00", "2026-11-22T10:00:01", "2026-11-22T10:00:02", "5:00", "4294901653", "/tmp", "(null)", "  spaced  ") +
	squeueLine("108", "108", "108", "N/A", "PENDING", "QOSMaxJobsPerUserLimit", "1000", "alice", "debug", "",
		"1763808030", "4102444800", "4102448400", "1:00:00", "4294901652", "/home/alice", "ferry/later", "(null)")

func TestJobsParsing(t *testing.T) {
	f := &fakeRunner{replies: map[string]reply{"squeue": {Out: squeueOutput}}}
	jobs, err := (&Client{Runner: f}).Jobs(context.Background(), Query{})
	require.NoError(t, err)
	assert.Equal(t, []string{"SLURM_TIME_FORMAT=%s"}, f.last().Env)
	assert.Equal(t, "squeue", f.last().Name)

	local := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local)
		require.NoError(t, err)
		return tm
	}
	want := []Job{
		{ID: "101", RawID: "101", ArrayJobID: "101", ArrayTaskID: -1, Name: "ferry/demo", State: "RUNNING",
			Comment: "ferry:" + ferryID, User: "alice", UID: 1000, Partition: "debug", Nodes: "w1",
			Submit: time.Unix(1763808000, 0), Start: time.Unix(1763808001, 0), TimeLimit: "10:00", Priority: 4294901659,
			WorkDir: "/home/alice/.ferry/jobs/" + ferryID},
		{ID: "102_0", RawID: "103", ArrayJobID: "102", ArrayTaskID: 0, Name: "ferry/sweep", State: "RUNNING",
			Comment: "ferry:" + ferryID, User: "alice", UID: 1000, Partition: "debug", Nodes: "w2",
			Submit: time.Unix(1763808010, 0), Start: time.Unix(1763808011, 0), TimeLimit: "1:00:00", Priority: 4294901658,
			WorkDir: "/home/alice/.ferry/sweeps"},
		{ID: "102_1", RawID: "102", ArrayJobID: "102", ArrayTaskID: 1, Name: "ferry/sweep", State: "PENDING", Reason: "Resources",
			Comment: "ferry:" + ferryID, User: "alice", UID: 1000, Partition: "debug",
			Submit: time.Unix(1763808010, 0), TimeLimit: "1:00:00", Priority: 4294901658, WorkDir: "/home/alice/.ferry/sweeps"},
		{ID: "102_2", RawID: "102", ArrayJobID: "102", ArrayTaskID: 2, Name: "ferry/sweep", State: "PENDING", Reason: "Resources",
			Comment: "ferry:" + ferryID, User: "alice", UID: 1000, Partition: "debug",
			Submit: time.Unix(1763808010, 0), TimeLimit: "1:00:00", Priority: 4294901658, WorkDir: "/home/alice/.ferry/sweeps"},
		{ID: "104", RawID: "104", ArrayJobID: "104", ArrayTaskID: -1, Name: "bash", State: "PENDING", Reason: "Priority",
			User: "bob", UID: 1001, Partition: "gpu", Submit: time.Unix(1763808020, 0), TimeLimit: "UNLIMITED", Priority: 1000,
			WorkDir: "/home/bob"},
		{ID: "105", RawID: "105", ArrayJobID: "105", ArrayTaskID: -1, Name: "train", State: "CANCELLED",
			User: "bob", UID: 1001, Partition: "debug", Nodes: "w1", Submit: time.Unix(1763807000, 0),
			Start: time.Unix(1763807001, 0), End: time.Unix(1763807100, 0), TimeLimit: "1-00:00:00", WorkDir: "/home/bob/a b"},
		// A separator inside the name shifts it into the comment: only the
		// two free-text fields can be affected, never the state or ids.
		{ID: "106", RawID: "106", ArrayJobID: "106", ArrayTaskID: -1, Name: "a", State: "FAILED", Reason: "NonZeroExitCode",
			Comment: "name\x1fferry:x\x1fy\nz", User: "carol", UID: 1002, Partition: "debug", Nodes: "w[1-2]",
			Submit: time.Unix(1763807000, 0), Start: time.Unix(1763807001, 0), End: time.Unix(1763807100, 0), TimeLimit: "5:00",
			Priority: 4294901654},
		{ID: "107", RawID: "107", ArrayJobID: "107", ArrayTaskID: -1, State: "COMPLETED", Comment: "  spaced  ",
			User: "1003", UID: 1003, Partition: "debug", Nodes: "w1",
			Submit: local("2026-11-22T10:00:00"), Start: local("2026-11-22T10:00:01"), End: local("2026-11-22T10:00:02"), TimeLimit: "5:00",
			Priority: 4294901653, WorkDir: "/tmp"},
		{ID: "108", RawID: "108", ArrayJobID: "108", ArrayTaskID: -1, Name: "ferry/later", State: "PENDING", Reason: "QOSMaxJobsPerUserLimit",
			User: "alice", UID: 1000, Partition: "debug", Submit: time.Unix(1763808030, 0), EstStart: time.Unix(4102444800, 0),
			TimeLimit: "1:00:00", Priority: 4294901652, WorkDir: "/home/alice"},
	}
	assert.Equal(t, want, jobs)

	id, ok := jobs[0].FerryID()
	assert.True(t, ok)
	assert.Equal(t, job.ID(ferryID), id)
	for _, j := range jobs[4:] {
		_, ok := j.FerryID()
		assert.False(t, ok, "job %s has no ferry id", j.ID)
	}
}

func TestParseJobsErrors(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		wantErr string
	}{
		{name: "too few fields", out: "1\x1fRUNNING\x1e\n", wantErr: "squeue: want 18 fields, got 2"},
		{name: "unterminated", out: squeueOutput + "12\x1f13", wantErr: "squeue: unterminated line"},
		{name: "old format", out: "JOBID PARTITION NAME\n", wantErr: "squeue: unterminated line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseJobs([]byte(tt.out))
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}

	t.Run("empty queue", func(t *testing.T) {
		jobs, err := ParseJobs(nil)
		require.NoError(t, err)
		assert.Empty(t, jobs)
		assert.NotNil(t, jobs)
	})
	t.Run("cluster header", func(t *testing.T) {
		jobs, err := ParseJobs([]byte("CLUSTER: linux\n" + squeueOutput))
		require.NoError(t, err)
		assert.Len(t, jobs, 9)
		assert.Equal(t, "101", jobs[0].ID)
	})
}

func TestJobsInvalidJobID(t *testing.T) {
	invalid := &CmdError{Args: []string{"squeue", "-j", "99"}, ExitCode: 1,
		Stderr: "slurm_load_jobs error: Invalid job id specified\n"}
	down := &CmdError{Args: []string{"squeue"}, ExitCode: 1,
		Stderr: "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"}

	t.Run("purged id is an empty list", func(t *testing.T) {
		f := &fakeRunner{replies: map[string]reply{"squeue": {Err: invalid}}}
		jobs, err := (&Client{Runner: f}).Jobs(context.Background(), Query{JobIDs: []string{"99"}})
		require.NoError(t, err)
		assert.Empty(t, jobs)
		assert.Equal(t, []string{"-j", "99"}, f.last().Args[len(f.last().Args)-2:])
	})
	t.Run("without -j it is an error", func(t *testing.T) {
		f := &fakeRunner{replies: map[string]reply{"squeue": {Err: invalid}}}
		_, err := (&Client{Runner: f}).Jobs(context.Background(), Query{User: "alice"})
		assert.ErrorAs(t, err, new(*CmdError))
	})
	t.Run("controller down is an error, never an empty list", func(t *testing.T) {
		f := &fakeRunner{replies: map[string]reply{"squeue": {Err: down}}}
		jobs, err := (&Client{Runner: f}).Jobs(context.Background(), Query{JobIDs: []string{"99"}})
		assert.EqualError(t, err, "squeue: slurm_load_jobs error: Unable to contact slurm controller (connect failure) (exit 1)")
		assert.Nil(t, jobs)
	})
	t.Run("bad query runs nothing", func(t *testing.T) {
		f := &fakeRunner{}
		_, err := (&Client{Runner: f}).Jobs(context.Background(), Query{JobIDs: []string{"--me"}})
		assert.EqualError(t, err, `squeue: invalid Slurm job id "--me"`)
		assert.Empty(t, f.calls)
	})
}

func TestFerryID(t *testing.T) {
	tests := []struct {
		comment string
		want    job.ID
		ok      bool
	}{
		{"ferry:" + ferryID, job.ID(ferryID), true},
		{"ferry:01JD8X3K5M7N9P1Q3R5S7T9V2W", job.ID(ferryID), true},
		{"ferry:" + ferryID + "x", "", false},
		{"ferry:" + ferryID[:10], "", false},
		{"ferry: " + ferryID, "", false},
		{ferryID, "", false},
		{"", "", false},
		{"ferry:", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.comment, func(t *testing.T) {
			id, ok := Job{Comment: tt.comment}.FerryID()
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, id)
		})
	}
}

func TestObserved(t *testing.T) {
	tests := []struct {
		state, reason string
		want          job.State
		wantReason    string
	}{
		{"PENDING", "Resources", job.Queued, "waiting for a free node"},
		{"PENDING", "Priority", job.Queued, "waiting: other jobs have higher priority"},
		{"PENDING", "JobHeldUser", job.Queued, "waiting: held by its owner: `scontrol release` lets it start"},
		{"PENDING", "QOSGrpCpuLimit", job.Queued, "waiting: the jobs of its QOS together use all the CPUs the QOS allows"},
		{"PENDING", "SomethingNew", job.Queued, "waiting: Slurm says: SomethingNew"},
		{"PENDING", "", job.Queued, "waiting"},
		{"PENDING", "None", job.Queued, "waiting"},
		{"RESV_DEL_HOLD", "", job.Queued, "held: its reservation was deleted"},
		{"CONFIGURING", "", job.Running, "starting: its nodes are being set up"},
		{"RUNNING", "", job.Running, ""},
		{"SUSPENDED", "", job.Running, "suspended"},
		{"STOPPED", "", job.Running, "suspended"},
		{"COMPLETING", "", job.Completing, "ended; Slurm is cleaning up its nodes"},
		{"SIGNALING", "", job.Completing, "being signalled by Slurm"},
		{"STAGE_OUT", "", job.Completing, "ended; staging out files"},
		{"COMPLETED", "", job.Succeeded, "completed"},
		{"FAILED", "NonZeroExitCode", job.Failed, "the batch script failed: see slurm.out"},
		{"FAILED", "", job.Failed, "the batch script failed: see slurm.out"},
		{"FAILED", "RaisedSignal:9_Killed", job.Failed, "the batch script failed (RaisedSignal:9_Killed): see slurm.out"},
		{"CANCELLED", "", job.Cancelled, "cancelled"},
		{"CANCELLED by 0", "", job.Cancelled, "cancelled"},
		{"CANCELLED+", "", job.Cancelled, "cancelled"},
		{"TIMEOUT", "TimeLimit", job.Timeout, "hit its time limit"},
		{"DEADLINE", "", job.Timeout, "missed its deadline"},
		{"OUT_OF_MEMORY", "OutOfMemory", job.OutOfMemory, "ran out of memory"},
		{"NODE_FAIL", "NodeDown", job.NodeFail, "its node failed"},
		{"BOOT_FAIL", "", job.NodeFail, "its node failed to boot"},
		{"PREEMPTED", "", job.Preempted, "preempted by a higher-priority job"},
		{"REQUEUED", "", job.Requeued, "requeued by Slurm"},
		{"REQUEUE_FED", "", job.Requeued, "requeued by Slurm"},
		{"REQUEUE_HOLD", "", job.Requeued, "requeued by Slurm and held"},
		{"RESIZING", "", job.Requeued, "being resized by Slurm"},
		{"REVOKED", "", job.Failed, "revoked: it runs on another cluster of the federation"},
		{"SPECIAL_EXIT", "", job.Failed, "held by Slurm after a special exit"},
		{"running", "", job.Running, ""},
		{"LAUNCH_FAILED", "", job.Unknown, "unknown Slurm state LAUNCH_FAILED"},
		{"", "", job.Unknown, "Slurm reported no state"},
	}
	for _, tt := range tests {
		t.Run(tt.state+"/"+tt.reason, func(t *testing.T) {
			st, reason := Job{State: tt.state, Reason: tt.reason}.Observed()
			assert.Equal(t, tt.want, st)
			assert.Equal(t, tt.wantReason, reason)
		})
	}

	// Every observed state but lost (which needs the job dir) is reachable.
	reached := map[job.State]bool{}
	for _, tt := range tests {
		reached[tt.want] = true
	}
	for _, s := range job.States {
		if s != job.Lost {
			assert.True(t, reached[s], "no Slurm state maps to %s", s)
		}
	}
}

// TestParseRecordedSqueue parses output recorded from Slurm 22.05's squeue
// with the exact command line of SqueueArgs (testdata/squeue-22.05.out).
// The WorkDir column was added to the recording when the field was added:
// /tmp, the --chdir those test jobs were submitted with. So was the
// PriorityLong column: priority/basic's 4294901760 minus the job id, 0 for
// the jobs held when they were recorded.
func TestParseRecordedSqueue(t *testing.T) {
	out, err := os.ReadFile(filepath.Join("testdata", "squeue-22.05.out"))
	require.NoError(t, err)
	jobs, err := ParseJobs(out)
	require.NoError(t, err)
	require.Len(t, jobs, 44)
	byID := map[string]Job{}
	for _, j := range jobs {
		byID[j.ID] = j
		st, _ := j.Observed()
		assert.NotEqual(t, job.Unknown, st, "job %s state %q", j.ID, j.State)
		assert.False(t, j.Submit.IsZero(), "job %s", j.ID)
	}

	pending := byID["36"]
	st, reason := pending.Observed()
	assert.Equal(t, job.Queued, st)
	assert.Equal(t, "waiting for a free node", reason)
	assert.Equal(t, "10:00", pending.TimeLimit)
	assert.Equal(t, int64(4294901724), pending.Priority)
	assert.True(t, pending.EstStart.IsZero(), "StartTime N/A: no estimate")
	assert.True(t, pending.Start.IsZero())
	assert.True(t, pending.End.IsZero())
	assert.Equal(t, "", pending.Nodes)
	fid, ok := pending.FerryID()
	assert.True(t, ok)
	assert.Equal(t, job.ID(ferryID), fid)

	for _, task := range []string{"35_0", "35_1", "35_2"} {
		j := byID[task]
		assert.Equal(t, "35", j.ArrayJobID)
		assert.Equal(t, "35", j.RawID)
		assert.Equal(t, "ferry/odd name", j.Name)
		assert.Equal(t, "odd\x1fx | y\x1ez,  end ", j.Comment, "comment with both separators and spaces survives")
		assert.Equal(t, "JobHeldUser", j.Reason)
		assert.Equal(t, int64(0), j.Priority, "a held job has priority 0")
	}
	assert.Equal(t, 2, byID["35_2"].ArrayTaskID)

	running := byID["32_2"]
	assert.Equal(t, "37", running.RawID, "a started array task has its own job id")
	assert.Equal(t, "32", running.ArrayJobID)
	assert.Equal(t, 2, running.ArrayTaskID)
	assert.Equal(t, "w2", running.Nodes)
	assert.Equal(t, time.Unix(1795347545, 0), running.Start)
	assert.True(t, running.End.IsZero(), `EndTime "NONE" of a running job`)
	assert.Equal(t, "32", byID["32_3"].RawID, "the last task keeps the array's own id")

	failed := byID["24"]
	assert.Equal(t, "root", failed.User)
	assert.Equal(t, 0, failed.UID)
	st, reason = failed.Observed()
	assert.Equal(t, job.Failed, st)
	assert.Equal(t, "the batch script failed: see slurm.out", reason)
	assert.Equal(t, time.Unix(1795347480, 0), failed.End)

	assert.Equal(t, "", byID["1"].Comment, "(null) comment")
	assert.Equal(t, "/tmp", byID["22"].WorkDir)
	_, ok = byID["27"].FerryID()
	assert.False(t, ok, `"ferry:test" is not a ferry id`)
}

func TestFormatJobsRoundTrip(t *testing.T) {
	jobs, err := ParseJobs([]byte(squeueOutput))
	require.NoError(t, err)
	// FormatJobs prints what ParseJobs reads back; the name with a
	// separator (job 106) cannot survive by design, and times are seconds.
	var keep []Job
	for _, j := range jobs {
		if j.ID != "106" {
			keep = append(keep, j)
		}
	}
	back, err := ParseJobs(FormatJobs(keep))
	require.NoError(t, err)
	assert.Equal(t, keep, back)

	one := FormatJobs([]Job{{ID: "7", State: "PENDING", UID: -1, ArrayTaskID: -1}})
	assert.Equal(t, "7\x1f7\x1f7\x1fN/A\x1fPENDING\x1fNone\x1f\x1f\x1fN/A\x1f\x1fN/A\x1fN/A\x1fN/A\x1fN/A\x1f0\x1fN/A\x1fN/A\x1fN/A\x1e\n", string(one))
}

// A pending job's StartTime is Slurm's estimate: kept as EstStart when it
// is still to come, dropped when it has passed or is none. A started job's
// StartTime is when it started, never an estimate.
func TestParseEstStart(t *testing.T) {
	now := time.Unix(1795347600, 0)
	tests := []struct {
		name, state, start string
		wantStart, wantEst time.Time
	}{
		{name: "estimate ahead", state: "PENDING", start: "1795351200", wantEst: time.Unix(1795351200, 0)},
		{name: "estimate passed", state: "PENDING", start: "1795347000"},
		{name: "estimate now", state: "PENDING", start: "1795347600"},
		{name: "no estimate", state: "PENDING", start: "N/A"},
		{name: "unknown", state: "PENDING", start: "Unknown"},
		{name: "held after requeue", state: "REQUEUE_HOLD", start: "1795351200", wantEst: time.Unix(1795351200, 0)},
		{name: "running", state: "RUNNING", start: "1795347000", wantStart: time.Unix(1795347000, 0)},
		{name: "running, odd future start", state: "RUNNING", start: "1795351200", wantStart: time.Unix(1795351200, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := squeueLine("9", "9", "9", "N/A", tt.state, "Priority", "1000", "alice", "debug", "",
				"1795347000", tt.start, "N/A", "10:00", "77", "/tmp", "x", "(null)")
			jobs, err := parseJobs([]byte(out), now)
			require.NoError(t, err)
			require.Len(t, jobs, 1)
			assert.Equal(t, tt.wantStart, jobs[0].Start)
			assert.Equal(t, tt.wantEst, jobs[0].EstStart)
			assert.Equal(t, int64(77), jobs[0].Priority)
		})
	}
}

func TestParsePriority(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"4294901659", 4294901659},
		{"1", 1},
		{"0", 0},
		{"N/A", 0},
		{"", 0},
		{"-5", 0},
		{"0.99998474121093", 4294901759}, // squeue's "Priority" field: the priority over 2^32-1
		{"0.00000000000000", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			assert.Equal(t, tt.want, parsePriority(tt.in))
		})
	}
}
