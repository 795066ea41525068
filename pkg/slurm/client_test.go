package slurm

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSubmit(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		err     error
		want    string
		wantErr string
	}{
		{name: "plain", out: "123\n", want: "123"},
		{name: "with cluster", out: "4567;linux\n", want: "4567"},
		{name: "no newline", out: "9", want: "9"},
		{name: "garbage", out: "Submitted batch job 12\n", wantErr: `sbatch printed "Submitted batch job 12\n", not a job id`},
		{name: "empty", out: "", wantErr: `sbatch printed "", not a job id`},
		{name: "array task is not a submit answer", out: "12_3\n", wantErr: `sbatch printed "12_3\n", not a job id`},
		{
			name:    "sbatch fails",
			err:     &CmdError{Args: []string{"sbatch"}, ExitCode: 1, Stderr: "sbatch: error: Batch job submission failed: Invalid account\n"},
			wantErr: "sbatch: Batch job submission failed: Invalid account (exit 1)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRunner{replies: map[string]reply{"sbatch": {Out: tt.out, Err: tt.err}}}
			c := &Client{Runner: f}
			id, err := c.Submit(context.Background(), "/home/u/.ferry/jobs/x/job.sbatch", "--hold")
			assert.Equal(t, call{Name: "sbatch", Args: []string{"--parsable", "--hold", "/home/u/.ferry/jobs/x/job.sbatch"}}, f.last())
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, id)
		})
	}

	t.Run("wrap without a script", func(t *testing.T) {
		f := &fakeRunner{replies: map[string]reply{"sbatch": {Out: "5\n"}}}
		id, err := (&Client{Runner: f}).Submit(context.Background(), "", "--wrap", "sleep 30")
		require.NoError(t, err)
		assert.Equal(t, "5", id)
		assert.Equal(t, []string{"--parsable", "--wrap", "sleep 30"}, f.last().Args)
	})
}

func TestCancel(t *testing.T) {
	tests := []struct {
		name     string
		ids      []string
		signal   string
		wantArgs []string
		wantErr  string
	}{
		{name: "plain", ids: []string{"12", "13_4"}, wantArgs: []string{"--", "12", "13_4"}},
		{name: "signal", ids: []string{"12"}, signal: "USR1", wantArgs: []string{"--full", "--signal=USR1", "--", "12"}},
		{name: "bad id", ids: []string{"12", "-u root"}, wantErr: `cancel: invalid Slurm job id "-u root"`},
		{name: "list in one id", ids: []string{"12,13"}, wantErr: `cancel: invalid Slurm job id "12,13"`},
		{name: "bad signal", ids: []string{"12"}, signal: "TERM --user=x", wantErr: `cancel: invalid signal "TERM --user=x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRunner{}
			err := (&Client{Runner: f}).Cancel(context.Background(), tt.ids, tt.signal)
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
				assert.Empty(t, f.calls, "nothing runs when an argument is refused")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, call{Name: "scancel", Args: tt.wantArgs}, f.last())
		})
	}

	t.Run("no ids runs nothing", func(t *testing.T) {
		f := &fakeRunner{}
		require.NoError(t, (&Client{Runner: f}).Cancel(context.Background(), nil, ""))
		assert.Empty(t, f.calls)
	})

	t.Run("failure is a CmdError", func(t *testing.T) {
		f := &fakeRunner{replies: map[string]reply{"scancel": {Err: &CmdError{Args: []string{"scancel", "--", "1"}, ExitCode: 1,
			Stderr: "scancel: error: Kill job error on job id 1: Access/permission denied\n"}}}}
		err := (&Client{Runner: f}).Cancel(context.Background(), []string{"1"}, "")
		var ce *CmdError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "scancel: Kill job error on job id 1: Access/permission denied (exit 1)", err.Error())
	})
}

func TestMaxArraySize(t *testing.T) {
	const config = `Configuration data as of 2026-11-22T11:00:00
AccountingStorageBackupHost = (null)
MailProg                = /bin/mail
MaxArraySize            = 4000
MaxDBDMsgs              = 20008
`
	tests := []struct {
		name    string
		out     string
		err     error
		want    int
		wantErr string
	}{
		{name: "set", out: config, want: 4000},
		{name: "absent", out: "Configuration data as of x\nMailProg = /bin/mail\n", want: DefaultMaxArraySize},
		{name: "garbage", out: "MaxArraySize = many\n", wantErr: `scontrol show config: MaxArraySize is "many", not a number`},
		{name: "controller down", err: &CmdError{Args: []string{"scontrol"}, ExitCode: 1,
			Stderr: "slurm_load_ctl_conf error: Unable to contact slurm controller (connect failure)\n"},
			wantErr: "scontrol: slurm_load_ctl_conf error: Unable to contact slurm controller (connect failure) (exit 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRunner{replies: map[string]reply{"scontrol": {Out: tt.out, Err: tt.err}}}
			n, err := (&Client{Runner: f}).MaxArraySize(context.Background())
			assert.Equal(t, call{Name: "scontrol", Args: []string{"show", "config"}}, f.last())
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, n)
		})
	}
}

func TestNodes(t *testing.T) {
	out := sinfoLine("w1", "idle", "2", "7800", "debug*", "none") +
		sinfoLine("w1", "idle", "2", "7800", "gpu", "none") +
		sinfoLine("w2", "down*", "2", "7800", "debug*", "Not responding") +
		sinfoLine("w3", "drain", "64", "515000", "debug*", "disk check failed, see ticket #12\x1fx")
	f := &fakeRunner{replies: map[string]reply{"sinfo": {Out: out}}}
	nodes, err := (&Client{Runner: f}).Nodes(context.Background())
	require.NoError(t, err)
	assert.Equal(t, call{Name: "sinfo", Args: []string{"-N", "-h", "-a", "--noconvert", "-O",
		"NodeList:0\x1f,StateCompact:0\x1f,CPUs:0\x1f,Memory:0\x1f,PartitionName:0\x1f,Reason:0\x1e"}}, f.last())
	assert.Equal(t, []Node{
		{Name: "w1", State: "idle", CPUs: 2, MemBytes: 7800 << 20, Partitions: []string{"debug", "gpu"}},
		{Name: "w2", State: "down", Flags: "*", CPUs: 2, MemBytes: 7800 << 20, Reason: "Not responding", Partitions: []string{"debug"}},
		{Name: "w3", State: "drain", CPUs: 64, MemBytes: 515000 << 20, Reason: "disk check failed, see ticket #12\x1fx", Partitions: []string{"debug"}},
	}, nodes)
	assert.True(t, nodes[0].Responding())
	assert.False(t, nodes[1].Responding())

	t.Run("short line", func(t *testing.T) {
		_, err := ParseNodes([]byte("w1\x1fidle\x1e\n"))
		assert.ErrorContains(t, err, "sinfo: want 6 fields, got 2")
	})
	t.Run("controller down", func(t *testing.T) {
		f := &fakeRunner{replies: map[string]reply{"sinfo": {Err: &CmdError{Args: []string{"sinfo"}, ExitCode: 1}}}}
		_, err := (&Client{Runner: f}).Nodes(context.Background())
		var ce *CmdError
		assert.True(t, errors.As(err, &ce))
	})
}
