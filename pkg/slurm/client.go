package slurm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferry-hpc/ferry/pkg/lazyre"
)

// Client runs the Slurm commands through its Runner.
type Client struct {
	Runner Runner
}

// New returns a Client that runs the real commands.
func New() *Client {
	return &Client{Runner: ExecRunner{}}
}

var (
	// jobIDRE matches what ferry hands to squeue -j and scancel: a job id,
	// an array task (123_4) or a het job component (123+1). Nothing that
	// could be read as an option or split by Slurm's list parsers.
	jobIDRE  = lazyre.New(`^[0-9]+([_+][0-9]+)?$`)
	signalRE = lazyre.New(`^[A-Za-z0-9]+$`)
)

// Submit runs `sbatch --parsable [args...] script` and returns the Slurm job
// id ("123"; a ";cluster" suffix is dropped). script may be empty when args
// carry --wrap.
func (c *Client) Submit(ctx context.Context, script string, args ...string) (string, error) {
	argv := append([]string{"--parsable"}, args...)
	if script != "" {
		argv = append(argv, script)
	}
	out, err := c.Runner.Run(ctx, nil, "sbatch", argv...)
	if err != nil {
		return "", err
	}
	return parseSubmit(out)
}

// PendingSubmit is an sbatch started before its script was ready: see
// StartSubmit.
type PendingSubmit struct {
	ctx     context.Context
	c       *Client
	args    []string
	started Started // nil when the Runner cannot start early
}

// StartSubmit starts `sbatch --parsable [args...]` now, reading its script
// from stdin, and returns at once. sbatch's start-up (the loader,
// libslurm, slurm.conf; about a third of its time, measured by
// TestBenchSubmitVsSbatch) then overlaps the caller's work; the rest comes
// after it reads the script. It submits nothing until Submit hands it one,
// and Abort kills it unfed. With a Runner that cannot start a command
// early, Submit runs sbatch on the script's path instead.
func (c *Client) StartSubmit(ctx context.Context, args ...string) *PendingSubmit {
	p := &PendingSubmit{ctx: ctx, c: c, args: append([]string{"--parsable"}, args...)}
	if st, ok := c.Runner.(Starter); ok {
		p.started = st.Start(ctx, nil, "sbatch", p.args...)
	}
	return p
}

// stdinMax is the biggest script handed over on stdin: one write of at
// most PIPE_BUF bytes reaches the pipe whole, so sbatch can never read a
// cut script (and submit it) if ferry is killed while writing. A bigger
// script is submitted by its path.
const stdinMax = 4096

// Submit hands sbatch the script (whose copy on disk is at path) and
// returns the Slurm job id.
func (p *PendingSubmit) Submit(path string, script []byte) (string, error) {
	if p.started == nil || len(script) > stdinMax {
		p.Abort()
		return p.c.Submit(p.ctx, path, p.args[1:]...)
	}
	out, err := p.started.Finish(script)
	if err != nil {
		return "", err
	}
	return parseSubmit(out)
}

// Abort kills an sbatch that was not handed its script; after Submit it
// does nothing.
func (p *PendingSubmit) Abort() {
	if p.started != nil {
		p.started.Abort()
	}
}

func parseSubmit(out []byte) (string, error) {
	// sbatch may print warnings on stdout before the id on some sites:
	// the id is the last non-empty line.
	var last string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			last = line
		}
	}
	id, _, _ := strings.Cut(last, ";")
	if !jobIDRE.MatchString(id) || strings.ContainsAny(id, "_+") {
		return "", fmt.Errorf("sbatch printed %q, not a job id", truncate(string(out), 200))
	}
	return id, nil
}

// Cancel runs scancel on the ids. Signal "" is a plain cancel; otherwise the
// signal (a name such as TERM or USR1, or a number) is sent to the whole job,
// the batch shell included (--full): ferry runs in the batch shell, so a
// signal sent only to steps would reach nothing.
func (c *Client) Cancel(ctx context.Context, ids []string, signal string) error {
	if len(ids) == 0 {
		return nil
	}
	var argv []string
	if signal != "" {
		if !signalRE.MatchString(signal) {
			return fmt.Errorf("cancel: invalid signal %q", signal)
		}
		argv = append(argv, "--full", "--signal="+signal)
	}
	for _, id := range ids {
		if !jobIDRE.MatchString(id) {
			return fmt.Errorf("cancel: invalid Slurm job id %q", id)
		}
	}
	argv = append(argv, "--")
	argv = append(argv, ids...)
	_, err := c.Runner.Run(ctx, nil, "scancel", argv...)
	return err
}

// DefaultMaxArraySize is Slurm's MaxArraySize when slurm.conf does not set it.
const DefaultMaxArraySize = 1001

var maxArrayRE = lazyre.New(`^MaxArraySize\s*=\s*(\S+)`)

// CancelPending cancels those of ids that are still pending, atomically in
// slurmctld: a job that started in the meantime is left alone.
func (c *Client) CancelPending(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		if !jobIDRE.MatchString(id) {
			return fmt.Errorf("scancel: invalid Slurm job id %q", id)
		}
	}
	_, err := c.Runner.Run(ctx, nil, "scancel", append([]string{"--state=PENDING"}, ids...)...)
	return err
}

// MaxArraySize reads MaxArraySize from `scontrol show config`; array task ids
// must be below it. It is DefaultMaxArraySize when the line is absent.
func (c *Client) MaxArraySize(ctx context.Context) (int, error) {
	out, err := c.Runner.Run(ctx, nil, "scontrol", "show", "config")
	if err != nil {
		return 0, err
	}
	return parseMaxArraySize(out)
}

func parseMaxArraySize(out []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		m := maxArrayRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("scontrol show config: MaxArraySize is %q, not a number", m[1])
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read scontrol show config: %w", err)
	}
	return DefaultMaxArraySize, nil
}

// isInvalidJobID reports whether err is squeue's answer to -j with an id that
// slurmctld no longer knows (exit 1, "Invalid job id specified").
func isInvalidJobID(err error) bool {
	var ce *CmdError
	return errors.As(err, &ce) && ce.ExitCode == 1 && strings.Contains(ce.Stderr, "Invalid job id specified")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// CancelOwned cancels one job only if user owns it (scancel --user): a
// service running as root cancels on a user's behalf without trusting a
// Slurm id that may have been reused for someone else's job.
func (c *Client) CancelOwned(ctx context.Context, id, user string) error {
	if !jobIDRE.MatchString(id) {
		return fmt.Errorf("cancel: invalid Slurm job id %q", id)
	}
	if user == "" || strings.HasPrefix(user, "-") || strings.ContainsAny(user, " \t\n=,") {
		return fmt.Errorf("cancel: invalid user %q", user)
	}
	_, err := c.Runner.Run(ctx, nil, "scancel", "--user="+user, "--", id)
	return err
}
