package slurmhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/tracker"
)

func hookCmd(t *testing.T, socket string, env map[string]string) error {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &factory.Factory{IO: &factory.IOStreams{Out: &out, ErrOut: &errOut}}
	cmd := NewCmdSlurmHook(f, func(ctx context.Context, o *Options) error {
		o.Getenv = func(k string) string { return env[k] }
		return run(ctx, o)
	})
	cmd.SetArgs([]string{"--socket", socket, "--timeout", "300ms"})
	return cmd.Execute()
}

func TestSlurmHook(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "tracker.sock")
	ln, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan tracker.HookEvent, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var ev tracker.HookEvent
			_ = json.NewDecoder(bufio.NewReader(c)).Decode(&ev)
			got <- ev
			c.Write([]byte("ok\n"))
			c.Close()
		}
	}()
	env := map[string]string{"JOBID": "42", "JOBSTATE": "FAILED", "EXITCODE": "3:0", "UID": "2101",
		"WORK_DIR": "/home/ferry-alice/.ferry/jobs/01m81j9cen5w8ma61gam260fq6", "ARRAYJOBID": "0", "ARRAYTASKID": "4294967294",
		"START": "100", "END": "103", "NODES": "w1"}
	require.NoError(t, hookCmd(t, sock, env))
	select {
	case ev := <-got:
		assert.Equal(t, "42", ev.JobID)
		assert.Equal(t, "FAILED", ev.State)
		assert.Equal(t, 2101, ev.UID)
		assert.Equal(t, int64(103), ev.End)
	case <-time.After(time.Second):
		t.Fatal("no event reached the socket")
	}

	// Not a ferry job: nothing is sent.
	env["WORK_DIR"] = "/home/ferry-alice"
	require.NoError(t, hookCmd(t, sock, env))
	select {
	case ev := <-got:
		t.Fatalf("sent %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}

	// No tracker: an error, quickly.
	env["WORK_DIR"] = "/home/ferry-alice/.ferry/jobs/01m81j9cen5w8ma61gam260fq6"
	start := time.Now()
	err = hookCmd(t, filepath.Join(t.TempDir(), "none.sock"), env)
	assert.ErrorContains(t, err, "job 42: tracker socket")
	assert.Less(t, time.Since(start), 2*time.Second)

	// Not run by Slurm.
	err = hookCmd(t, sock, map[string]string{})
	assert.Equal(t, factory.CodeUsage, factory.ExitCode(err))
}

// Only ferry's jobs reach the tracker: a plain job in a ferry job dir, an
// array task in a ferry sweep's dir.
func TestSlurmHookSendsOnlyFerrysJobs(t *testing.T) {
	const id = "01m81j9cen5w8ma61gam260fq6"
	tests := []struct {
		name    string
		workDir string
		array   bool
		sent    bool
	}{
		{"plain job in its job dir", "/home/ferry-alice/.ferry/jobs/" + id, false, true},
		{"plain job elsewhere", "/home/ferry-alice/project", false, false},
		{"array task in a sweep's dir", "/home/ferry-alice/.ferry/jobs/.sweeps/" + id, true, true},
		{"array task in a job dir", "/home/ferry-alice/.ferry/jobs/" + id, true, false},
		{"array task elsewhere", "/home/ferry-alice/project", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "tracker.sock")
			ln, err := net.Listen("unix", sock)
			require.NoError(t, err)
			defer ln.Close()
			got := make(chan tracker.HookEvent, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				var ev tracker.HookEvent
				_ = json.NewDecoder(bufio.NewReader(c)).Decode(&ev)
				got <- ev
				_, _ = c.Write([]byte("ok\n"))
			}()
			env := map[string]string{"JOBID": "57", "JOBSTATE": "COMPLETED", "EXITCODE": "0:0", "UID": "2101",
				"WORK_DIR": tt.workDir, "ARRAYJOBID": "0", "ARRAYTASKID": "4294967294"}
			if tt.array {
				env["ARRAYJOBID"], env["ARRAYTASKID"] = "50", "7"
			}
			require.NoError(t, hookCmd(t, sock, env))
			select {
			case ev := <-got:
				assert.True(t, tt.sent, "sent %+v", ev)
				if tt.array {
					assert.Equal(t, "50_7", ev.SlurmID())
				}
			case <-time.After(100 * time.Millisecond):
				assert.False(t, tt.sent, "nothing reached the socket")
			}
		})
	}
}
