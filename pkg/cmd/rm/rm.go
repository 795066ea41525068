// Package rm is `ferry rm`.
package rm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	"github.com/ferry-hpc/ferry/pkg/job"
)

// Options are rm's arguments.
type Options struct {
	F    *factory.Factory
	Refs []string
}

// NewCmdRm builds `ferry rm ID...`.
func NewCmdRm(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:     "rm ID...",
		Aliases: []string{"delete"},
		Short:   "Delete finished jobs and all their files",
		Long: `Delete finished jobs: each one's whole job dir (bundle, log, outputs,
result) is removed, and its id printed. A job that is still queued or
running, or whose state Slurm cannot tell now, is refused (exit code 1):
cancel it first. The other IDs given are removed all the same. Copy what
you want to keep with 'ferry get' first.

` + output.ExitCodes(factory.CodeNotFound),
		Example: "  ferry rm 01jd4k\n  ferry rm 01jd4k 4242\n  ferry ls --state failed -o json | jq -r '.[].id' | xargs ferry rm",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Refs = args
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRm(cmd.Context(), o)
		},
	}
	return cmd
}

func runRm(ctx context.Context, o *Options) error {
	return o.F.EachJob(ctx, o.Refs, nil, func(d job.Dir, st job.Status) error {
		switch {
		case st.State == job.Unknown:
			return fmt.Errorf("job %s: not removed, Slurm cannot say now whether it still runs; try again later", st.ID.Short())
		case !st.State.Terminal():
			return fmt.Errorf("job %s is %s: not removed; cancel it first with 'ferry cancel %s'", st.ID.Short(), st.State, st.ID)
		}
		// Rename first so the job disappears at once, even if removing a
		// large outputs dir takes a while or is interrupted.
		trash := filepath.Join(filepath.Dir(d.Path()), ".rm-"+string(st.ID))
		if err := os.Rename(d.Path(), trash); err != nil {
			return fmt.Errorf("remove job %s: %w", st.ID.Short(), err)
		}
		if err := os.RemoveAll(trash); err != nil {
			return fmt.Errorf("remove job %s: %w", st.ID.Short(), err)
		}
		fmt.Fprintln(o.F.IO.Out, st.ID)
		return nil
	})
}
