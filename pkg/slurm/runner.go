package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Runner runs one command and returns its stdout. A non-zero exit returns
// *CmdError (and whatever the command printed on stdout).
type Runner interface {
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
}

// DefaultTimeout bounds one Slurm command when ExecRunner.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// ExecRunner runs commands with os/exec. env is appended to os.Environ(); a
// later entry wins over an inherited one. Inherited SQUEUE_* and SINFO_*
// variables are dropped: they silently filter or reshape squeue's and
// sinfo's output (SQUEUE_PARTITION, SQUEUE_USERS, ...), and ferry passes
// every option it relies on on the command line.
type ExecRunner struct {
	Timeout time.Duration // 0 = DefaultTimeout
}

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(inheritedEnv(), env...)
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return stdout.Bytes(), fmt.Errorf("%s: no answer within %s: %w", filepath.Base(name), timeout, ctxErr)
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w", filepath.Base(name), ctxErr)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return stdout.Bytes(), &CmdError{
			Args:     append([]string{name}, args...),
			ExitCode: exitErr.ExitCode(),
			Stderr:   stderr.String(),
		}
	}
	if errors.Is(err, exec.ErrNotFound) {
		return nil, fmt.Errorf("%s not found in PATH: install the Slurm client commands (slurm-client): %w", name, err)
	}
	return nil, fmt.Errorf("run %s: %w", name, err)
}

func inheritedEnv() []string {
	all := os.Environ()
	env := make([]string, 0, len(all))
	for _, kv := range all {
		if strings.HasPrefix(kv, "SQUEUE_") || strings.HasPrefix(kv, "SINFO_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// CmdError is a Slurm command that exited non-zero.
type CmdError struct {
	Args     []string // the whole command line, Args[0] is the command
	ExitCode int      // -1 when killed by a signal
	Stderr   string
}

// Error reads "sbatch: Batch job submission failed: ... (exit 1)": the
// command's name and the first error line of its stderr, without the
// "sbatch: error: " prefix Slurm puts there itself.
func (e *CmdError) Error() string {
	name := "command"
	if len(e.Args) > 0 {
		name = filepath.Base(e.Args[0])
	}
	msg := e.Message()
	if msg == "" {
		msg = "failed with no message"
	}
	return fmt.Sprintf("%s: %s (exit %d)", name, msg, e.ExitCode)
}

// Message is the most useful line of stderr: the first one that reports an
// error, else the first non-empty one, with Slurm's "<cmd>: error: " prefix
// removed.
func (e *CmdError) Message() string {
	var first string
	for _, line := range strings.Split(e.Stderr, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if first == "" {
			first = line
		}
		if strings.Contains(strings.ToLower(line), "error") {
			first = line
			break
		}
	}
	if len(e.Args) > 0 {
		first = strings.TrimPrefix(first, filepath.Base(e.Args[0])+": ")
	}
	first = strings.TrimPrefix(first, "error: ")
	first = strings.TrimPrefix(first, "fatal: ")
	return first
}
