// Package sandbox is the hidden `ferry sandbox run`, what job.sbatch runs
// on the worker as the user.
package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/bundle"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/job"
	sb "github.com/ferry-hpc/ferry/pkg/sandbox"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// Options are sandbox run's flags.
type Options struct {
	F        *factory.Factory
	JobDir   string
	SweepDir string
	First    int
}

// NewCmdSandbox builds the hidden `ferry sandbox` group.
func NewCmdSandbox(f *factory.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "sandbox",
		Short:  "Run a job's sandbox (used by job.sbatch on the worker)",
		Hidden: true,
	}
	cmd.AddCommand(newCmdRun(f, nil))
	return cmd
}

func newCmdRun(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "run --job-dir DIR",
		Short: "Run one job in its sandbox container, inside its Slurm job",
		Long: `Run inside a Slurm batch job, as the submitting user: unpack the bundle
into node-local scratch, ask this worker's ferry agent for the container,
write its output to DIR/log, and record how it ended in DIR/result.json.
SIGTERM (scancel, the time limit) stops the container and records
cancelled or timeout. Exits with the job's exit code.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return run(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.JobDir, "job-dir", "", "the job dir")
	cmd.Flags().StringVar(&o.SweepDir, "sweep-dir", "", "a sweep's dir: run the task first+$SLURM_ARRAY_TASK_ID")
	cmd.Flags().IntVar(&o.First, "first", 0, "with --sweep-dir: the sweep index of this array's task 0")
	cmd.MarkFlagsOneRequired("job-dir", "sweep-dir")
	cmd.MarkFlagsMutuallyExclusive("job-dir", "sweep-dir")
	return cmd
}

func run(ctx context.Context, o *Options) error {
	cfg, err := o.F.Config()
	if err != nil {
		return err
	}
	slurmID := os.Getenv("SLURM_JOB_ID")
	node := os.Getenv("SLURMD_NODENAME")
	if slurmID == "" || node == "" {
		return factory.Usagef("ferry sandbox run runs inside a Slurm job (SLURM_JOB_ID and SLURMD_NODENAME are not set); submit with 'ferry submit'")
	}
	jobDir := o.JobDir
	if o.SweepDir != "" {
		if jobDir, err = taskDir(o.SweepDir, o.First, o.F.IO.ErrOut); err != nil {
			return err
		}
	}
	dir, err := filepath.Abs(jobDir)
	if err != nil {
		return err
	}
	launcher := &sb.AgentClient{Socket: cfg.AgentSocketFor(node), StopGrace: cfg.StopGrace.Duration()}
	res, err := sb.Run(ctx, sb.RunOptions{
		JobDir:      job.Dir(dir),
		SlurmJobID:  slurmID,
		Node:        node,
		ScratchRoot: cfg.ScratchDir,
		Launcher:    launcher,
		Unpack:      unpacker(job.Dir(dir), int64(cfg.MaxBundle)),
		Began:       batchStart(os.Getenv("FERRY_BATCH_START")),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.F.IO.ErrOut, "ferry: job %s %s: %s\n", job.Dir(dir).ID().Short(), res.State, res.Reason)
	switch {
	case res.State == job.Succeeded:
		return nil
	case res.ExitCode > 0 && res.ExitCode < 256:
		return &factory.ExitError{Code: res.ExitCode, Silent: true}
	default:
		return &factory.ExitError{Code: 1, Silent: true}
	}
}

// taskDir finds the job dir of this array task in the sweep's record, and
// rebuilds what a crash may have lost of it (submit.RestoreTask).
func taskDir(sweepDir string, first int, errOut io.Writer) (string, error) {
	n, err := strconv.Atoi(os.Getenv("SLURM_ARRAY_TASK_ID"))
	if err != nil {
		return "", fmt.Errorf("--sweep-dir needs SLURM_ARRAY_TASK_ID (run by an array job): %w", err)
	}
	dir, restored, err := submit.RestoreTask(sweepDir, first+n)
	if restored {
		fmt.Fprintf(errOut, "ferry: task %d's job dir %s was incomplete (a crash soon after the sweep was submitted?): rebuilt it from the sweep's record\n", first+n, dir)
	}
	return dir, err
}

// unpacker checks the bundle as it unpacks it: no more than the cluster's
// bundle cap (maxBytes) lands on the node's scratch disk, and a bundle
// that does not hash to what submit recorded in spec.json is refused.
func unpacker(d job.Dir, maxBytes int64) func(context.Context, io.Reader, string) error {
	return func(ctx context.Context, r io.Reader, dest string) error {
		spec, err := job.ReadSpec(d)
		if err != nil {
			return err
		}
		return bundle.Unpack(ctx, r, dest, bundle.UnpackOptions{MaxBytes: maxBytes, WantHash: spec.Bundle.Hash})
	}
}

// batchStart reads bash's $EPOCHREALTIME ("1767225600.123456"; the
// decimal separator is the locale's) as job.sbatch recorded it; zero when
// it is missing or does not parse.
func batchStart(v string) time.Time {
	sec, frac, _ := strings.Cut(strings.Replace(v, ",", ".", 1), ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s <= 0 {
		return time.Time{}
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		n, err := strconv.ParseInt(frac, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}
		}
		for range 9 - len(frac) {
			n *= 10
		}
		ns = n
	}
	return time.Unix(s, ns)
}
