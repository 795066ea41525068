// Package root assembles ferry's command tree and runs it.
package root

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/cancel"
	"github.com/ferry-hpc/ferry/pkg/cmd/clearqueue"
	"github.com/ferry-hpc/ferry/pkg/cmd/configcmd"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/get"
	"github.com/ferry-hpc/ferry/pkg/cmd/initcmd"
	"github.com/ferry-hpc/ferry/pkg/cmd/login"
	"github.com/ferry-hpc/ferry/pkg/cmd/logs"
	"github.com/ferry-hpc/ferry/pkg/cmd/ls"
	"github.com/ferry-hpc/ferry/pkg/cmd/queue"
	"github.com/ferry-hpc/ferry/pkg/cmd/rm"
	"github.com/ferry-hpc/ferry/pkg/cmd/sandbox"
	"github.com/ferry-hpc/ferry/pkg/cmd/status"
	"github.com/ferry-hpc/ferry/pkg/cmd/submit"
	"github.com/ferry-hpc/ferry/pkg/cmd/sweep"
	"github.com/ferry-hpc/ferry/pkg/cmd/version"
)

// NewCmdRoot builds the `ferry` command: what users run, and the hidden
// `sandbox run` that their jobs run. The cluster's daemons are in ferryd
// (package rootd), so this binary carries no Docker, Redis or Prometheus
// client and starts in a few milliseconds.
func NewCmdRoot(f *factory.Factory) *cobra.Command {
	cmd := Base(f, "ferry", "Run your code on the cluster's Slurm workers, alone, in a sandbox", `ferry runs a project dir (or, from Python, a function call) as a Slurm job
on an exclusive worker, in a single-use sandbox container, and brings the
results back.

Start with:
  ferry init hello                 # an example project
  ferry submit --wait -f hello     # run it, stream its log
  ferry ls                         # your jobs
  ferry get ID                     # its outputs, log and result

A job ID is ferry's id, any unique prefix of it, or the Slurm job id.`)
	cmd.AddGroup(&cobra.Group{ID: "jobs", Title: "Jobs:"})
	for _, c := range []*cobra.Command{
		initcmd.NewCmdInit(f, nil),
		submit.NewCmdSubmit(f, nil),
		sweep.NewCmdSweep(f, nil),
		ls.NewCmdLs(f, nil),
		status.NewCmdStatus(f, nil),
		queue.NewCmdQueue(f, nil),
		logs.NewCmdLogs(f, nil),
		cancel.NewCmdCancel(f, nil),
		get.NewCmdGet(f, nil),
		rm.NewCmdRm(f, nil),
		clearqueue.NewCmdClearQueue(f, nil),
		login.NewCmdLogin(f, nil),
	} {
		c.GroupID = "jobs"
		cmd.AddCommand(c)
	}
	cmd.AddCommand(configcmd.NewCmdConfig(f, nil), version.NewCmdVersion(f), sandbox.NewCmdSandbox(f))
	return cmd
}

// Base is the top of a command tree: silent about usage and errors (Run
// prints them, once, in one line) and mapping flag errors to exit code 2.
func Base(f *factory.Factory, use, short, long string) *cobra.Command {
	cmd := &cobra.Command{
		Use:           use,
		Short:         short,
		Long:          long,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       f.Version,
	}
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return factory.Usagef("%v (see '%s --help')", err, c.CommandPath())
	})
	return cmd
}

// Main runs ferry with the process's arguments and returns the exit code.
func Main(version string) int { return Run(version, NewCmdRoot) }

// Run executes the command tree newRoot builds, with a context that SIGTERM
// and SIGINT cancel, prints the error in one line and maps it to the exit
// code. ferry and ferryd both run through it.
func Run(version string, newRoot func(*factory.Factory) *cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	f := factory.New(version)
	cmd := newRoot(f)
	err := execute(ctx, cmd)
	if err != nil && !factory.Silent(err) {
		fmt.Fprintln(f.IO.ErrOut, cmd.Name()+": "+oneLine(err))
	}
	return factory.ExitCode(err)
}

// execute runs the command tree; a command line it cannot read (an unknown
// command, a wrong number of arguments, a bad flag) is a usage error.
func execute(ctx context.Context, cmd *cobra.Command) error {
	argsAreUsage(cmd)
	err := cmd.ExecuteContext(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command ") {
		// cobra's own error, untyped.
		err = factory.Usagef("%v (see '%s --help')", unknownCommand(err.Error()), cmd.Name())
	}
	return err
}

// argsAreUsage makes a wrong number of arguments a usage error (exit code
// 2) that points at the command's help, for every command in the tree.
func argsAreUsage(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			var ue *factory.UsageError
			if err == nil || errors.As(err, &ue) {
				return err
			}
			name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
			return factory.Usagef("%s %v (see '%s --help')", name, err, cmd.CommandPath())
		}
	}
	for _, sub := range c.Commands() {
		argsAreUsage(sub)
	}
}

// unknownCommand rewrites cobra's several-line "unknown command" message
// (with its "Did you mean this?" list) as one line.
func unknownCommand(msg string) error {
	lines := strings.Split(msg, "\n")
	var maybe []string
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Did you mean") {
			maybe = append(maybe, strconv.Quote(l))
		}
	}
	if len(maybe) > 0 {
		return fmt.Errorf("%s; did you mean %s?", lines[0], strings.Join(maybe, " or "))
	}
	return errors.New(lines[0])
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
