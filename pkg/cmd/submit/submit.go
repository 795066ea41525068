// Package submit is `ferry submit`.
package submit

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/bundle"
	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// Options are submit's parsed flags and dependencies.
type Options struct {
	F      *factory.Factory
	Job    JobFlags
	Wait   bool
	Follow bool
	Output output.Format
}

// NewCmdSubmit builds the command; runF replaces the run function in tests.
func NewCmdSubmit(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "submit [flags] DIR [-- COMMAND ARGS...]",
		Short: "Pack a project dir and run it on the cluster",
		Long: `Pack DIR (minus what .ferryignore excludes) and run it as a Slurm job,
alone on an exclusive worker, in a single-use sandbox container.

The command, image and resources come from DIR/job.yaml; flags override
them, and a command after -- replaces job.yaml's. The job's files live in
~/.ferry/jobs/<id>/: spec.json, params.json, the bundle, job.sbatch, and,
once it ran, log, result.json and outputs/.

Parameters reach the program as /work/ferry_params.json and in the
FERRY_PARAMS environment variable. --param values are read as JSON when
they parse (lr=0.1 is a number, tags=[1,2] a list), else as strings.

Inside the sandbox: the project is at /work (read-only), write results
to /out (they come back with 'ferry get'), /tmp is a small tmpfs, you run
as your own uid, and there is no network unless the cluster allows one.

` + factory.ExitCodesHelp + `
  With --wait: the job's own exit code; 130 cancelled, 124 time limit,
  137 out of memory.`,
		Example: `  ferry submit ./myproj
  ferry submit --wait -f ./myproj -- python3 train.py --epochs 3
  ferry submit --param lr=0.01 --param layers=[64,64] --cpus 2 --mem 4G ./myproj
  ferry submit -o json ./myproj | jq -r .id`,
		Args: func(cmd *cobra.Command, args []string) error { return o.Job.Args(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Follow {
				o.Wait = true
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runSubmit(cmd.Context(), o)
		},
	}
	o.Job.Bind(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&o.Wait, "wait", false, "wait for the job to end; exit with its exit code")
	fl.BoolVarP(&o.Follow, "follow", "f", false, "stream the job's log while waiting (implies --wait)")
	output.AddFlag(cmd, &o.Output)
	return cmd
}

func runSubmit(ctx context.Context, o *Options) error {
	f := o.F
	s, err := o.Job.Submitter(f)
	if err != nil {
		return err
	}
	res, err := s.Submit(ctx, o.Job.Request)
	if err != nil && ctx.Err() != nil {
		// Ctrl-C or SIGTERM: whatever was under way (the scan, sbatch, the
		// pack) stopped, and SubmitSpec removed what it had made.
		return &factory.ExitError{Code: factory.CodeInterrupted, Err: errors.New("interrupted: the submit stopped and removed what it had written")}
	}
	if err != nil {
		var bi *submit.BadInput
		if errors.As(err, &bi) {
			return &factory.UsageError{Err: err}
		}
		return err
	}
	if !o.Wait {
		if o.Output == output.JSON {
			return output.WriteJSON(f.IO.Out, submittedJSON(res, nil))
		}
		fmt.Fprintln(f.IO.Out, res.Spec.ID)
		fmt.Fprintf(f.IO.ErrOut, "submitted job %s (Slurm job %s, %s, %d files): follow it with 'ferry logs -f %s'\n",
			res.Spec.ID.Short(), res.SlurmID, bundle.FormatBytes(res.Spec.Bundle.Size), res.Spec.Bundle.Files, res.Spec.ID.Short())
		return nil
	}
	fmt.Fprintf(f.IO.ErrOut, "submitted job %s (Slurm job %s); waiting for it to end\n", res.Spec.ID.Short(), res.SlurmID)
	obs, err := f.Observer()
	if err != nil {
		return err
	}
	wo := observe.WaitOptions{}
	if o.Follow {
		wo.Follow = f.IO.Out
		if o.Output == output.JSON {
			wo.Follow = f.IO.ErrOut // keep stdout valid JSON
		}
	}
	st, err := obs.Wait(ctx, res.Dir, wo)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("stopped waiting; job %s keeps running (cancel it with 'ferry cancel %s')", res.Spec.ID.Short(), res.Spec.ID.Short())
		}
		return err
	}
	if o.Output == output.JSON {
		if err := output.WriteJSON(f.IO.Out, submittedJSON(res, &st)); err != nil {
			return err
		}
	} else if !o.Follow {
		fmt.Fprintln(f.IO.Out, res.Spec.ID)
	}
	fmt.Fprintln(f.IO.ErrOut, observe.Summary(st))
	if code := observe.ExitCode(st); code != 0 {
		return &factory.ExitError{Code: code, Silent: true}
	}
	return nil
}

type submittedOut struct {
	ID      job.ID      `json:"id"`
	SlurmID string      `json:"slurm_id"`
	Dir     string      `json:"dir"`
	Project string      `json:"project"`
	Bundle  job.Bundle  `json:"bundle"`
	Status  *job.Status `json:"status,omitempty"`
}

func submittedJSON(r *submit.Submitted, st *job.Status) submittedOut {
	return submittedOut{ID: r.Spec.ID, SlurmID: r.SlurmID, Dir: r.Dir.Path(), Project: r.Spec.Project, Bundle: r.Spec.Bundle, Status: st}
}
