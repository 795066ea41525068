package slurmhook

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/tracker"
)

// Options are slurm-hook's flags.
type Options struct {
	F       *factory.Factory
	Socket  string
	Timeout time.Duration
	Getenv  func(string) string
}

// NewCmdSlurmHook builds `ferry slurm-hook`.
func NewCmdSlurmHook(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f, Getenv: os.Getenv}
	cmd := &cobra.Command{
		Use:    "slurm-hook",
		Short:  "Slurm jobcomp/script hook: tell the tracker a job ended",
		Hidden: true,
		Long: `Run by slurmctld (as SlurmUser) through the jobcomp/script wrapper when a
job ends or is requeued. It reads the job from its environment (JOBID,
JOBSTATE, WORK_DIR, UID, ...) and hands it to the tracker over its unix
socket, waiting at most --timeout: it never talks to Redis and never holds
slurmctld up for long. Jobs that are not ferry's (whose work dir is not a
ferry job dir, or for an array task a ferry sweep's dir) are skipped. Polling
catches whatever this misses.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return run(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Socket, "socket", tracker.DefaultHookSocket, "the tracker's hook socket")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 500*time.Millisecond, "give up after this long")
	return cmd
}

func run(ctx context.Context, o *Options) error {
	ev, err := tracker.HookEventFromEnv(o.Getenv)
	if err != nil {
		return factory.Usagef("%v", err)
	}
	// A job whose work dir is not a ferry job dir (an array task: a ferry
	// sweep's dir) is not ferry's.
	if _, ok := ev.FerryID(); !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := tracker.SendHook(ctx, o.Socket, ev); err != nil {
		return fmt.Errorf("job %s: %w", ev.SlurmID(), err)
	}
	return nil
}
