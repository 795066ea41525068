package slurm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCmdErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  CmdError
		want string
	}{
		{
			name: "sbatch prefix stripped",
			err: CmdError{Args: []string{"sbatch", "--parsable", "x"}, ExitCode: 1,
				Stderr: "sbatch: error: Batch job submission failed: Invalid partition name specified\n"},
			want: "sbatch: Batch job submission failed: Invalid partition name specified (exit 1)",
		},
		{
			name: "squeue without prefix",
			err: CmdError{Args: []string{"/usr/bin/squeue", "-h"}, ExitCode: 1,
				Stderr: "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"},
			want: "squeue: slurm_load_jobs error: Unable to contact slurm controller (connect failure) (exit 1)",
		},
		{
			name: "error line preferred over a warning",
			err: CmdError{Args: []string{"sbatch"}, ExitCode: 1,
				Stderr: "sbatch: warning: can't honor --ntasks-per-node\nsbatch: error: Memory specification can not be satisfied\n"},
			want: "sbatch: Memory specification can not be satisfied (exit 1)",
		},
		{
			name: "first line when none says error",
			err:  CmdError{Args: []string{"scancel"}, ExitCode: 2, Stderr: "\n  something odd\nmore\n"},
			want: "scancel: something odd (exit 2)",
		},
		{
			name: "empty stderr",
			err:  CmdError{Args: []string{"sinfo"}, ExitCode: 1},
			want: "sinfo: failed with no message (exit 1)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.err.Error())
		})
	}
}

func TestExecRunner(t *testing.T) {
	ctx := context.Background()
	r := ExecRunner{}

	t.Run("stdout and env", func(t *testing.T) {
		out, err := r.Run(ctx, []string{"FERRY_TEST_X=a b"}, "/bin/sh", "-c", `printf '%s|%s' "$FERRY_TEST_X" "$1"; echo warn >&2`, "sh", "arg 1")
		require.NoError(t, err)
		assert.Equal(t, "a b|arg 1", string(out))
	})

	t.Run("non-zero exit is a CmdError", func(t *testing.T) {
		out, err := r.Run(ctx, nil, "/bin/sh", "-c", `echo partial; echo "sh: error: it broke" >&2; exit 3`)
		var ce *CmdError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, 3, ce.ExitCode)
		assert.Equal(t, []string{"/bin/sh", "-c", `echo partial; echo "sh: error: it broke" >&2; exit 3`}, ce.Args)
		assert.Equal(t, "sh: error: it broke\n", ce.Stderr)
		assert.Equal(t, "sh: it broke (exit 3)", err.Error())
		assert.Equal(t, "partial\n", string(out))
	})

	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		_, err := ExecRunner{Timeout: 200 * time.Millisecond}.Run(ctx, nil, "/bin/sleep", "10")
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "sleep: no answer within 200ms")
		assert.Less(t, time.Since(start), 5*time.Second)
	})

	t.Run("missing command", func(t *testing.T) {
		_, err := r.Run(ctx, nil, "ferry-no-such-command")
		require.Error(t, err)
		var ce *CmdError
		assert.False(t, errors.As(err, &ce))
		assert.Contains(t, err.Error(), "not found in PATH")
	})

	t.Run("inherited SQUEUE_ and SINFO_ variables are dropped", func(t *testing.T) {
		t.Setenv("SQUEUE_PARTITION", "secret")
		t.Setenv("SINFO_FORMAT", "%N")
		t.Setenv("FERRY_TEST_KEEP", "kept")
		out, err := r.Run(ctx, []string{"SQUEUE_SORT=i"}, "/usr/bin/env")
		require.NoError(t, err)
		env := strings.Split(string(out), "\n")
		assert.Contains(t, env, "FERRY_TEST_KEEP=kept")
		assert.Contains(t, env, "SQUEUE_SORT=i", "variables passed explicitly are kept")
		assert.NotContains(t, string(out), "SQUEUE_PARTITION")
		assert.NotContains(t, string(out), "SINFO_FORMAT")
		assert.Equal(t, "secret", os.Getenv("SQUEUE_PARTITION"), "the caller's own environment is untouched")
	})
}

func TestExecRunnerStart(t *testing.T) {
	ctx := context.Background()
	r := ExecRunner{}

	t.Run("the command gets its stdin only at Finish", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "read")
		// The command records when it got EOF on stdin, then echoes it.
		p := r.Start(ctx, nil, "/bin/sh", "-c", `in=$(cat; echo .); : > "$1"; printf '%s' "${in%.}"`, "sh", marker)
		time.Sleep(100 * time.Millisecond)
		assert.NoFileExists(t, marker, "nothing was handed over yet")
		out, err := p.Finish([]byte("#!/bin/bash\ntrue\n"))
		require.NoError(t, err)
		assert.Equal(t, "#!/bin/bash\ntrue\n", string(out))
		assert.FileExists(t, marker)
		p.Abort() // after Finish: nothing to do, no panic
	})

	t.Run("Abort kills it unfed", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "fed")
		p := r.Start(ctx, nil, "/bin/sh", "-c", `cat >/dev/null; : > "$1"`, "sh", marker)
		p.Abort()
		p.Abort()
		time.Sleep(100 * time.Millisecond)
		assert.NoFileExists(t, marker, "a killed command never saw the end of its input")
	})

	t.Run("a command that dies before reading reports why", func(t *testing.T) {
		p := r.Start(ctx, nil, "/bin/sh", "-c", `echo "sh: error: no slurm.conf" >&2; exit 1`)
		time.Sleep(100 * time.Millisecond) // it is gone: the write fails, quietly
		_, err := p.Finish(bytes.Repeat([]byte("x"), 1<<20))
		var ce *CmdError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "sh: no slurm.conf (exit 1)", err.Error())
	})

	t.Run("missing command", func(t *testing.T) {
		p := r.Start(ctx, nil, "ferry-no-such-command")
		_, err := p.Finish([]byte("x"))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not found in PATH")
		p.Abort()
	})

	t.Run("the timeout counts from Finish", func(t *testing.T) {
		got := filepath.Join(t.TempDir(), "got")
		p := ExecRunner{Timeout: 200 * time.Millisecond}.Start(ctx, nil, "/bin/sh", "-c", `cat > "$1"; sleep 10`, "sh", got)
		time.Sleep(300 * time.Millisecond) // the caller preparing the input: no timeout yet
		start := time.Now()
		_, err := p.Finish([]byte("x"))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "sh: no answer within 200ms")
		assert.Less(t, time.Since(start), 5*time.Second)
		b, rerr := os.ReadFile(got)
		require.NoError(t, rerr)
		assert.Equal(t, "x", string(b), "it was alive to read its input")
	})

	t.Run("cancelling ctx kills it unfed", func(t *testing.T) {
		c, cancel := context.WithCancel(ctx)
		marker := filepath.Join(t.TempDir(), "fed")
		p := r.Start(c, nil, "/bin/sh", "-c", `cat >/dev/null; : > "$1"`, "sh", marker)
		cancel()
		_, err := p.Finish([]byte("x"))
		assert.ErrorIs(t, err, context.Canceled)
		assert.NoFileExists(t, marker)
	})
}
