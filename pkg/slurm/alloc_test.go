package slurm

import (
	"context"
	"fmt"
	"strings"
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

// sqJob is one record slurmctld holds, as the fake squeue prints it.
type sqJob struct {
	ID, UID, State, Nodes, CPUs, MinMem, TRES, ArrayTask, ArrayJob, WorkDir, Comment string
}

func (j sqJob) field(name string) string {
	switch name {
	case "JobID":
		return j.ID
	case "UserID":
		return j.UID
	case "State":
		return j.State
	case "NodeList":
		return j.Nodes
	case "NumCPUs":
		return j.CPUs
	case "MinMemory":
		return j.MinMem
	case "tres-alloc":
		return j.TRES
	case "ArrayTaskID":
		return j.ArrayTask
	case "ArrayJobID":
		return j.ArrayJob
	case "WorkDir":
		return j.WorkDir
	case "Comment":
		return j.Comment
	}
	panic("fake squeue: unknown field " + name)
}

// fakeSqueue answers `squeue -j SEL -O FORMAT` from its jobs the way
// slurmctld does: an array's own id selects every task of the array,
// 123_4 selects that task, any other id the job with that raw id. Free
// text is printed as is, control characters included, as Slurm does.
type fakeSqueue struct {
	jobs  []sqJob
	calls [][]string
}

func (f *fakeSqueue) Run(_ context.Context, _ []string, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, args)
	if name != "squeue" {
		return nil, fmt.Errorf("fake squeue: ran %s", name)
	}
	var sel, format string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-j":
			sel = args[i+1]
		case "-O":
			format = args[i+1]
		}
	}
	type col struct{ name, suffix string }
	var cols []col
	for _, item := range strings.Split(format, ",") {
		name, rest, _ := strings.Cut(item, ":")
		cols = append(cols, col{name, strings.TrimPrefix(rest, "0")})
	}
	var b strings.Builder
	n := 0
	for _, j := range f.jobs {
		arr, task, isTask := strings.Cut(sel, "_")
		match := j.ID == sel || (j.ArrayJob == sel && j.ArrayTask != "N/A")
		if isTask {
			match = j.ArrayJob == arr && j.ArrayTask == task
		}
		if !match {
			continue
		}
		n++
		for _, c := range cols {
			b.WriteString(j.field(c.name) + c.suffix)
		}
		b.WriteString("\n")
	}
	if n == 0 {
		return nil, &CmdError{Args: append([]string{"squeue"}, args...), ExitCode: 1,
			Stderr: "slurm_load_jobs error: Invalid job id specified"}
	}
	return []byte(b.String()), nil
}

// oldRecord is a job as the former single-call format printed it (fixed
// fields, then WorkDir and Comment last): what a user would write into a
// comment to forge a record.
func oldRecord(j sqJob) string {
	return strings.Join([]string{j.ID, j.UID, j.State, j.Nodes, j.CPUs, j.MinMem, j.TRES, j.ArrayTask, j.ArrayJob, j.WorkDir, j.Comment}, fieldSep) + recordEnd + "\n"
}

func TestAllocation(t *testing.T) {
	plain := sqJob{ID: "136", UID: "2101", State: "RUNNING", Nodes: "w1", CPUs: "2", MinMem: "200M", TRES: "cpu=2,node=1,billing=2",
		ArrayTask: "N/A", ArrayJob: "136", WorkDir: "/home/a/.ferry/jobs/x", Comment: "ferry:abc"}
	// Array 9: task 0 ran as raw id 12 on w2; task 5 started last and
	// carries the array's own id, 9, on w2.
	task0 := sqJob{ID: "12", UID: "2101", State: "RUNNING", Nodes: "w2", CPUs: "2", MinMem: "1G", TRES: "cpu=2,mem=1G,node=1",
		ArrayTask: "0", ArrayJob: "9", WorkDir: "/home/a/.ferry/jobs/sw", Comment: "ferry:sw"}
	task5 := task0
	task5.ID, task5.ArrayTask = "9", "5"
	// A record for job 9 the user wrote into task 0's comment: this node,
	// 64 CPUs, 1 TiB, 8 GPUs.
	forged := sqJob{ID: "9", UID: "2101", State: "RUNNING", Nodes: "w1", CPUs: "64", MinMem: "1T", TRES: "cpu=64,mem=1T,node=1,gres/gpu=8",
		ArrayTask: "5", ArrayJob: "9", WorkDir: "/home/a/.ferry/jobs/sw", Comment: "ferry:sw"}
	forging0 := task0
	forging0.Comment = "ferry:sw" + recordEnd + "\n" + strings.TrimSuffix(oldRecord(forged), recordEnd+"\n")

	tests := []struct {
		name      string
		jobs      []sqJob
		id        string
		want      Allocation
		wantErr   string
		wantIs    error
		wantCalls [][2]string // the -j selector and the first -O field of each call
	}{
		{
			name: "a plain job, memory from the request (CR_Core)",
			jobs: []sqJob{plain},
			id:   "136",
			want: Allocation{ID: "136", UID: 2101, State: "RUNNING", Nodes: []string{"w1"}, CPUs: 2, MemBytes: 200 << 20,
				Comment: "ferry:abc", WorkDir: "/home/a/.ferry/jobs/x", ArrayTask: -1, ArrayJobID: "136"},
			wantCalls: [][2]string{{"136", "JobID"}, {"136", "JobID"}},
		},
		{
			name: "TRES win where they carry memory and GPUs",
			jobs: []sqJob{{ID: "7", UID: "0", State: "COMPLETING", Nodes: "g[1-2]", CPUs: "4", MinMem: "1G", TRES: "cpu=8,mem=16G,node=2,gres/gpu=2",
				ArrayTask: "N/A", ArrayJob: "N/A", WorkDir: "/tmp", Comment: "(null)"}},
			id: "7",
			want: Allocation{ID: "7", UID: 0, State: "COMPLETING", Nodes: []string{"g1", "g2"}, CPUs: 8, MemBytes: 16 << 30, GPUs: 2,
				WorkDir: "/tmp", ArrayTask: -1},
		},
		{
			name: "memory per CPU",
			jobs: []sqJob{{ID: "8", UID: "5", State: "RUNNING", Nodes: "w2", CPUs: "2", MinMem: "512Mc", TRES: "cpu=2,node=1",
				ArrayTask: "N/A", ArrayJob: "N/A", WorkDir: "/tmp", Comment: "x"}},
			id:   "8",
			want: Allocation{ID: "8", UID: 5, State: "RUNNING", Nodes: []string{"w2"}, CPUs: 2, MemBytes: 1 << 30, WorkDir: "/tmp", Comment: "x", ArrayTask: -1},
		},
		{
			name: "the task that carries the array's own id",
			jobs: []sqJob{task0, task5},
			id:   "9",
			want: Allocation{ID: "9", UID: 2101, State: "RUNNING", Nodes: []string{"w2"}, CPUs: 2, MemBytes: 1 << 30,
				WorkDir: "/home/a/.ferry/jobs/sw", Comment: "ferry:sw", ArrayTask: 5, ArrayJobID: "9"},
			wantCalls: [][2]string{{"9", "JobID"}, {"9_5", "JobID"}},
		},
		{
			name: "a task by its own raw id",
			jobs: []sqJob{task0, task5},
			id:   "12",
			want: Allocation{ID: "12", UID: 2101, State: "RUNNING", Nodes: []string{"w2"}, CPUs: 2, MemBytes: 1 << 30,
				WorkDir: "/home/a/.ferry/jobs/sw", Comment: "ferry:sw", ArrayTask: 0, ArrayJobID: "9"},
			wantCalls: [][2]string{{"12", "JobID"}, {"9_0", "JobID"}},
		},
		{
			name: "a record forged in another task's comment is not believed",
			jobs: []sqJob{forging0, task5},
			id:   "9",
			want: Allocation{ID: "9", UID: 2101, State: "RUNNING", Nodes: []string{"w2"}, CPUs: 2, MemBytes: 1 << 30,
				WorkDir: "/home/a/.ferry/jobs/sw", Comment: "ferry:sw", ArrayTask: 5, ArrayJobID: "9"},
		},
		{
			name: "a record forged in the job's own comment is refused",
			jobs: []sqJob{func() sqJob {
				j := task5
				j.Comment = "ferry:sw" + recordEnd + "\n" + strings.TrimSuffix(oldRecord(forged), recordEnd+"\n")
				return j
			}()},
			id:      "9",
			wantErr: "the work dir or comment of Slurm job 9 holds a field or record separator",
		},
		{
			name: "a field separator in the work dir is refused",
			jobs: []sqJob{func() sqJob {
				j := plain
				j.WorkDir = "/home/a" + fieldSep + "ferry:other"
				return j
			}()},
			id:      "136",
			wantErr: "the work dir or comment of Slurm job 136 holds a field or record separator",
		},
		{
			name:    "two records carry the id",
			jobs:    []sqJob{plain, plain},
			id:      "136",
			wantErr: "squeue: 2 records carry Slurm job id 136: refusing to guess which one is the job",
		},
		{
			name: "the pending rest of an array has no record of its own to read text from",
			jobs: []sqJob{{ID: "35", UID: "0", State: "PENDING", Nodes: "", CPUs: "1", MinMem: "1G", TRES: "",
				ArrayTask: "0-2", ArrayJob: "35", WorkDir: "/tmp", Comment: "odd" + fieldSep + "x"}},
			id:        "35",
			want:      Allocation{ID: "35", UID: 0, State: "PENDING", CPUs: 1, MemBytes: 1 << 30, ArrayTask: -1, ArrayJobID: "35"},
			wantCalls: [][2]string{{"35", "JobID"}},
		},
		{
			name:   "a job slurmctld does not know",
			jobs:   []sqJob{plain},
			id:     "10",
			wantIs: ErrNoSuchJob,
		},
		{
			name: "a bad uid",
			jobs: []sqJob{func() sqJob {
				j := plain
				j.UID = "notanumber"
				return j
			}()},
			id:      "136",
			wantErr: `squeue: bad uid "notanumber"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sq := &fakeSqueue{jobs: tt.jobs}
			a, err := (&Client{Runner: sq}).Allocation(context.Background(), tt.id)
			switch {
			case tt.wantIs != nil:
				assert.ErrorIs(t, err, tt.wantIs)
			case tt.wantErr != "":
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
			default:
				require.NoError(t, err)
				assert.Equal(t, tt.want, a)
			}
			assert.LessOrEqual(t, len(sq.calls), 2, "at most two squeue calls")
			if tt.wantCalls != nil {
				var got [][2]string
				for _, c := range sq.calls {
					var sel, first string
					for i := 0; i+1 < len(c); i++ {
						if c[i] == "-j" {
							sel = c[i+1]
						}
						if c[i] == "-O" {
							first, _, _ = strings.Cut(c[i+1], ":")
						}
					}
					got = append(got, [2]string{sel, first})
				}
				assert.Equal(t, tt.wantCalls, got)
			}
			// The call that says who, where and how much carries no text a
			// user wrote.
			if len(sq.calls) > 0 {
				joined := strings.Join(sq.calls[0], " ")
				assert.NotContains(t, joined, "Comment")
				assert.NotContains(t, joined, "WorkDir")
			}
		})
	}
}

func TestParseAllocationFixedFields(t *testing.T) {
	rec := func(fields ...string) string { return strings.Join(fields, fieldSep) + recordEnd + "\n" }
	tests := []struct {
		name    string
		out     string
		wantSel string
		wantErr string
	}{
		{"one record", rec("5", "0", "RUNNING", "w1", "1", "1G", "", "N/A", "N/A"), "5", ""},
		{"a field too many", rec("5", "0", "RUNNING", "w1", "1", "1G", "", "N/A", "N/A", "x"), "", "want 9 fields, got 10"},
		{"unterminated", "5" + fieldSep + "0", "", "unterminated record"},
		{"empty", "", "", "Slurm does not know this job"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, sel, err := parseAllocation(tt.out, "5")
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantSel, sel)
		})
	}
}
