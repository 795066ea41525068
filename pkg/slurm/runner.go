package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	p := r.start(ctx, env, name, args, false)
	return p.wait()
}

// Started is a command started before its standard input was ready.
type Started interface {
	// Finish hands the command its whole standard input, closes it and
	// waits: the result is what Run would have returned.
	Finish(stdin []byte) ([]byte, error)
	// Abort kills a command that was not given its input yet and reaps it;
	// after Finish it does nothing.
	Abort()
}

// Starter is a Runner that can start a command at once and give it its
// standard input later (sbatch reads its script from stdin).
type Starter interface {
	Start(ctx context.Context, env []string, name string, args ...string) Started
}

// Start implements Starter. The timeout counts from Finish: until then the
// command only waits for its input, for as long as the caller prepares it
// (cancelling ctx kills it).
func (r ExecRunner) Start(ctx context.Context, env []string, name string, args ...string) Started {
	return r.start(ctx, env, name, args, true)
}

type started struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer // the timeout, once armed
	timeout time.Duration
	name    string
	args    []string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  bytes.Buffer
	stderr  bytes.Buffer
	err     error // from Start
	done    bool
}

func (r ExecRunner) start(ctx context.Context, env []string, name string, args []string, pipe bool) *started {
	p := &started{timeout: r.Timeout, name: name, args: args}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	p.ctx, p.cancel = context.WithCancelCause(ctx)
	if !pipe {
		p.arm()
	}
	p.cmd = exec.CommandContext(p.ctx, name, args...)
	p.cmd.Env = append(inheritedEnv(), env...)
	p.cmd.WaitDelay = 2 * time.Second
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if pipe {
		if p.stdin, p.err = p.cmd.StdinPipe(); p.err != nil {
			return p
		}
	}
	p.err = p.cmd.Start()
	return p
}

// arm starts the timeout.
func (p *started) arm() {
	p.timer = time.AfterFunc(p.timeout, func() { p.cancel(context.DeadlineExceeded) })
}

// Finish implements Started.
func (p *started) Finish(stdin []byte) ([]byte, error) {
	p.arm()
	if p.err == nil {
		// A command that died early makes the write fail (EPIPE); Wait
		// says why it died.
		_, _ = p.stdin.Write(stdin)
		_ = p.stdin.Close()
	}
	return p.wait()
}

// Abort implements Started.
func (p *started) Abort() {
	if p.done {
		return
	}
	if p.err == nil {
		_ = p.cmd.Process.Kill()
		if p.stdin != nil {
			_ = p.stdin.Close()
		}
		_ = p.cmd.Wait()
	}
	p.done = true
	p.cancel(nil)
}

func (p *started) wait() ([]byte, error) {
	p.done = true
	defer func() {
		p.timer.Stop()
		p.cancel(nil)
	}()
	err := p.err
	if err == nil {
		err = p.cmd.Wait()
	}
	if err == nil {
		return p.stdout.Bytes(), nil
	}
	if p.ctx.Err() != nil {
		ctxErr := context.Cause(p.ctx)
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return p.stdout.Bytes(), fmt.Errorf("%s: no answer within %s: %w", filepath.Base(p.name), p.timeout, ctxErr)
		}
		return p.stdout.Bytes(), fmt.Errorf("%s: %w", filepath.Base(p.name), ctxErr)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return p.stdout.Bytes(), &CmdError{
			Args:     append([]string{p.name}, p.args...),
			ExitCode: exitErr.ExitCode(),
			Stderr:   p.stderr.String(),
		}
	}
	if errors.Is(err, exec.ErrNotFound) {
		return nil, fmt.Errorf("%s not found in PATH: install the Slurm client commands (slurm-client): %w", p.name, err)
	}
	return nil, fmt.Errorf("run %s: %w", p.name, err)
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
	if msg, ok := PolicyMessage(e.Stderr); ok {
		return msg
	}
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
