package cmdtest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/config"
	"github.com/ferry-hpc/ferry/pkg/observe/observetest"
)

// Env is one command's test environment: a spool, a fake Slurm, and the
// streams the last run wrote.
type Env struct {
	Root        string             // the spool root, a temp dir
	Slurm       *observetest.Slurm // the fake Slurm the command talks to
	Out, ErrOut bytes.Buffer       // what the last run wrote
	TTY         bool               // whether stdout and stderr are terminals
	Now         func() time.Time   // the factory's clock
	// NewCmd builds the command under test from the factory.
	NewCmd func(*factory.Factory) *cobra.Command
}

// New returns an Env over a new temp spool and a fake Slurm with no jobs,
// running the command newCmd builds, with the real clock.
func New(t testing.TB, newCmd func(*factory.Factory) *cobra.Command) *Env {
	return &Env{Root: t.TempDir(), Slurm: observetest.NewSlurm(t), Now: time.Now, NewCmd: newCmd}
}

// Factory returns a factory whose streams are e's buffers, whose config is
// the default one over e's spool, and whose Slurm is e's fake.
func (e *Env) Factory() *factory.Factory {
	return &factory.Factory{
		IO: &factory.IOStreams{Out: &e.Out, ErrOut: &e.ErrOut, OutTTY: e.TTY, ErrTTY: e.TTY},
		Config: func() (*config.Config, error) {
			c := config.Default()
			c.SpoolRoot = e.Root
			return c, nil
		},
		Slurm: e.Slurm.Client,
		Now:   e.Now,
	}
}

// Run runs the command with args and returns the exit code ferry would
// exit with; see RunContext.
func (e *Env) Run(t testing.TB, args ...string) int {
	t.Helper()
	return e.RunContext(t, context.Background(), args...)
}

// RunContext runs the command with args under ctx, after emptying Out and
// ErrOut, and returns the exit code ferry would exit with. As ferry's root
// does, it silences cobra's usage and errors, makes a flag error (of the
// command or any subcommand) a usage error, and prints an error that is
// not silent to ErrOut in one line as "ferry: <err>".
func (e *Env) RunContext(t testing.TB, ctx context.Context, args ...string) int {
	t.Helper()
	e.Out.Reset()
	e.ErrOut.Reset()
	cmd := e.NewCmd(e.Factory())
	cmd.SetArgs(args)
	cmd.SetOut(&e.Out)
	cmd.SetErr(&e.ErrOut)
	quiet(cmd)
	err := cmd.ExecuteContext(ctx)
	if err != nil && !factory.Silent(err) {
		e.ErrOut.WriteString("ferry: " + oneLine(err) + "\n")
	}
	return factory.ExitCode(err)
}

// quiet silences c and every command below it and maps their flag errors
// to usage errors.
func quiet(c *cobra.Command) {
	c.SilenceUsage, c.SilenceErrors = true, true
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &factory.UsageError{Err: err} })
	for _, sub := range c.Commands() {
		quiet(sub)
	}
}

// oneLine is err's message in one line, as ferry's root prints it.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
