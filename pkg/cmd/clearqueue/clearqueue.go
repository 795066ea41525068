// Package clearqueue is `ferry clear-queue`.
package clearqueue

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
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
optionally only those of one project. Running jobs and other users' jobs
are never touched: Slurm cancels only those still pending when it gets
the request (scancel --state=PENDING), and a job that started just before
is left running and named on stderr.

Prints one line per job cancelled, tab-separated: ID SLURM-ID PROJECT.

` + output.ExitCodes(factory.CodeSlurm),
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
	if o.DryRun {
		for _, st := range queued {
			if st.SlurmID != "" {
				fmt.Fprintf(o.F.IO.Out, "%s\t%s\t%s\n", st.ID, st.SlurmID, st.Project)
			}
		}
		fmt.Fprintf(o.F.IO.ErrOut, "would cancel %d queued job(s)\n", len(ids))
		return nil
	}
	// The desired state first: a pending array task that is cancelled
	// vanishes from Slurm, and this tells "cancelled" from "lost".
	for _, st := range queued {
		if st.SlurmID != "" {
			_ = os.WriteFile(job.Dir(st.Dir).Cancel(), nil, 0o600)
		}
	}
	if err := o.F.Slurm().CancelPending(ctx, ids); err != nil {
		return fmt.Errorf("cancel queued jobs: %w", err)
	}
	// Ask once more: a job that started before Slurm got the request runs on.
	after, err := obs.List(ctx, observe.Filter{Project: o.Project})
	if err != nil {
		return err
	}
	now := make(map[job.ID]job.State, len(after))
	for _, st := range after {
		now[st.ID] = st.State
	}
	n := 0
	for _, st := range queued {
		if st.SlurmID == "" {
			continue
		}
		if s, ok := now[st.ID]; ok && s != job.Cancelled && (s.Active() || s.Terminal()) {
			_ = os.Remove(job.Dir(st.Dir).Cancel())
			if s == job.Queued {
				fmt.Fprintf(o.F.IO.ErrOut, "job %s is still queued: Slurm did not cancel it; try 'ferry cancel %s'\n", st.ID.Short(), st.ID)
			} else {
				fmt.Fprintf(o.F.IO.ErrOut, "job %s is %s: it started before it could be cancelled, left alone\n", st.ID.Short(), s)
			}
			continue
		}
		fmt.Fprintf(o.F.IO.Out, "%s\t%s\t%s\n", st.ID, st.SlurmID, st.Project)
		n++
	}
	fmt.Fprintf(o.F.IO.ErrOut, "cancelled %d queued job(s)\n", n)
	return nil
}
