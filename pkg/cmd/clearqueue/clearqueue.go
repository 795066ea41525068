// Package clearqueue is `ferry clear-queue`.
package clearqueue

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe"
)

// Options are clear-queue's flags.
type Options struct {
	F       *factory.Factory
	Project string
	DryRun  bool
}

// NewCmdClearQueue builds `ferry clear-queue`.
func NewCmdClearQueue(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "clear-queue",
		Short: "Cancel all your queued (not yet running) jobs",
		Long: `Cancel every one of your ferry jobs that is still waiting in the queue,
optionally only those of one project, and print each one cancelled.
Running jobs and other users' jobs are never touched.

` + factory.ExitCodesHelp,
		Example: "  ferry clear-queue\n  ferry clear-queue --project sweep-lr --dry-run",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return run(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Project, "project", "", "only jobs of this project")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "print what would be cancelled, cancel nothing")
	return cmd
}

func run(ctx context.Context, o *Options) error {
	obs, err := o.F.Observer()
	if err != nil {
		return err
	}
	queued, err := obs.List(ctx, observe.Filter{Project: o.Project, State: job.Queued})
	if err != nil {
		return err
	}
	var ids []string
	for _, st := range queued {
		if st.SlurmID != "" {
			ids = append(ids, st.SlurmID)
		}
	}
	if len(ids) == 0 {
		fmt.Fprintln(o.F.IO.ErrOut, "no queued jobs to cancel")
		return nil
	}
	if !o.DryRun {
		if err := o.F.Slurm().CancelPending(ctx, ids); err != nil {
			return fmt.Errorf("cancel queued jobs: %w", err)
		}
	}
	for _, st := range queued {
		if st.SlurmID != "" {
			fmt.Fprintf(o.F.IO.Out, "%s\t%s\t%s\n", st.ID, st.SlurmID, st.Project)
		}
	}
	verb := "cancelled"
	if o.DryRun {
		verb = "would cancel"
	}
	fmt.Fprintf(o.F.IO.ErrOut, "%s %d queued job(s)\n", verb, len(ids))
	return nil
}
