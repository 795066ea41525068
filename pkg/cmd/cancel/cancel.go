// Package cancel is `ferry cancel`.
package cancel

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// Options are cancel's arguments.
type Options struct {
	F    *factory.Factory
	Refs []string
}

// NewCmdCancel builds `ferry cancel ID...`.
func NewCmdCancel(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:     "cancel ID...",
		Aliases: []string{"stop"},
		Short:   "Cancel jobs (queued or running)",
		Long: `Cancel jobs with scancel; a sweep's id cancels all its tasks. A running
job's container is stopped (SIGTERM, then SIGKILL after the grace period)
and removed, and the job ends as 'cancelled', not 'failed'. Its log and
outputs so far stay in the job dir. A job that already ended is left as
it is (said on stderr). Prints the id of each job or sweep cancelled.

` + output.ExitCodes(factory.CodeNotFound, factory.CodeSlurm),
		Example: "  ferry cancel 01jd4k\n  ferry cancel 4242 4243\n  ferry cancel 01jd4m   # a sweep: all its tasks",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Refs = args
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runCancel(cmd.Context(), o)
		},
	}
	return cmd
}

func runCancel(ctx context.Context, o *Options) error {
	sweep := func(ref string) (bool, error) { return cancelSweep(ctx, o, ref) }
	return o.F.EachJob(ctx, o.Refs, sweep, func(d job.Dir, st job.Status) error {
		if st.State.Terminal() {
			fmt.Fprintf(o.F.IO.ErrOut, "job %s already ended (%s); nothing to cancel\n", st.ID.Short(), st.State)
			return nil
		}
		if st.SlurmID == "" {
			return fmt.Errorf("job %s has no Slurm job to cancel", st.ID.Short())
		}
		_ = os.WriteFile(d.Cancel(), nil, 0o600) // the desired state, for tasks that vanish
		if err := o.F.Slurm().Cancel(ctx, []string{st.SlurmID}, ""); err != nil {
			return fmt.Errorf("cancel job %s: %w", st.ID.Short(), err)
		}
		fmt.Fprintln(o.F.IO.Out, st.ID)
		return nil
	})
}

// cancelSweep cancels every array of the sweep ref names. It reports false
// when ref is no sweep.
func cancelSweep(ctx context.Context, o *Options, ref string) (bool, error) {
	cfg, err := o.F.Config()
	if err != nil {
		return false, nil
	}
	dir, err := submit.FindSweep(cfg.SpoolRoot, ref)
	if err != nil {
		return false, nil
	}
	sw, err := submit.ReadSweep(dir)
	if err != nil {
		return true, err
	}
	var ids []string
	for _, a := range sw.Arrays {
		ids = append(ids, a.SlurmID)
	}
	for _, t := range sw.Tasks {
		_ = os.WriteFile(job.Dir(t.Dir).Cancel(), nil, 0o600)
	}
	if err := o.F.Slurm().Cancel(ctx, ids, ""); err != nil {
		return true, fmt.Errorf("cancel sweep %s: %w", sw.ID.Short(), err)
	}
	fmt.Fprintln(o.F.IO.Out, sw.ID)
	fmt.Fprintf(o.F.IO.ErrOut, "cancelled sweep %s (%d tasks)\n", sw.ID.Short(), len(sw.Tasks))
	return true, nil
}
