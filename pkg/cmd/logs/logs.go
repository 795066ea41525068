// Package logs is `ferry logs`.
package logs

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/observe"
)

// Options are logs's flags.
type Options struct {
	F      *factory.Factory
	Ref    string
	Follow bool
	Slurm  bool
}

// NewCmdLogs builds `ferry logs [-f] ID`.
func NewCmdLogs(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "logs [-f] ID",
		Short: "Print a job's output (stdout and stderr)",
		Long: `Print what the job's program wrote to stdout and stderr. With -f, keep
printing as it grows until the job ends; the exit code is then the job's
(as with 'submit --wait').

--slurm prints the batch script's own output (slurm.out) instead: look
there when a job failed before its program started.

` + factory.ExitCodesHelp,
		Example: "  ferry logs 01jd4k\n  ferry logs -f 4242",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runLogs(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "follow the log until the job ends")
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
		t := &observe.Tail{Path: path}
		_, err := t.Copy(o.F.IO.Out)
		return err
	}
	obs, err := o.F.Observer()
	if err != nil {
		return err
	}
	st, err := obs.Wait(ctx, d, observe.WaitOptions{Follow: o.F.IO.Out})
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
