// Package logs is `ferry logs`.
package logs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	"github.com/ferry-hpc/ferry/pkg/observe"
)

// Options are logs's flags.
type Options struct {
	F      *factory.Factory
	Ref    string
	Follow bool
	Slurm  bool

	wait observe.WaitOptions // how often -f looks; tests shorten it
}

// NewCmdLogs builds `ferry logs [-f] ID`.
func NewCmdLogs(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "logs [-f] ID",
		Short: "Print a job's output (stdout and stderr)",
		Long: `Print what the job's program wrote to stdout and stderr, as it wrote it.
With -f, keep printing as it grows until the job ends, then print how it
ended on stderr and exit with the job's code (as 'submit --wait' does);
Ctrl-C stops following, not the job.

--slurm prints the batch script's own output (slurm.out) instead: look
there when a job failed before its program started.

` + output.ExitCodes(factory.CodeNotFound) + `
With -f, once the job ended, the job's: 0 succeeded, its own code when it
failed (1 if it has none), 130 cancelled, 124 timed out, 137 out of
memory, 1 otherwise.`,
		Example: "  ferry logs 01jd4k\n  ferry logs -f 4242\n  ferry logs --slurm 01jd4k",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runLogs(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "follow the log until the job ends, then exit with the job's code")
	cmd.Flags().BoolVar(&o.Slurm, "slurm", false, "show the batch script's slurm.out instead")
	return cmd
}

func runLogs(ctx context.Context, o *Options) error {
	d, err := o.F.Resolve(ctx, o.Ref)
	if err != nil {
		return err
	}
	path := d.Log()
	if o.Slurm {
		path = d.SlurmOut()
	}
	if !o.Follow {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(o.F.IO.ErrOut, "job %s has no %s yet: it has not started, or wrote nothing (see 'ferry status %s')\n",
				d.ID().Short(), filepath.Base(path), d.ID())
			return nil
		}
		t := &observe.Tail{Path: path}
		_, err := t.Copy(o.F.IO.Out)
		return err
	}
	obs, err := o.F.Observer()
	if err != nil {
		return err
	}
	wait := o.wait
	wait.Follow, wait.FollowPath = o.F.IO.Out, path
	st, err := obs.Wait(ctx, d, wait)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted by the user: the job goes on
		}
		return err
	}
	fmt.Fprintln(o.F.IO.ErrOut, observe.Summary(st))
	if code := observe.ExitCode(st); code != 0 {
		return &factory.ExitError{Code: code, Silent: true}
	}
	return nil
}
