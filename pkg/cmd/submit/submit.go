// Package submit is `ferry submit`.
package submit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// Options are submit's parsed flags and dependencies.
type Options struct {
	F          *factory.Factory
	Request    submit.Request
	ParamKVs   []string
	ParamsFile string
	EnvKVs     []string
	Wait       bool
	Follow     bool
	Output     output.Format
}

// NewCmdSubmit builds the command; runF replaces the run function in tests.
func NewCmdSubmit(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	o.Request.GPUs = -1
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
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			n := len(args)
			if dash >= 0 {
				n = dash
			}
			if n != 1 {
				return factory.Usagef("submit takes one project DIR (then, optionally, -- COMMAND ARGS...); got %d arguments before --", n)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Request.Dir = args[0]
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				o.Request.Command = args[dash:]
			}
			if o.Follow {
				o.Wait = true
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runSubmit(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&o.ParamKVs, "param", nil, "set a parameter, key=value (repeatable)")
	fl.StringVar(&o.ParamsFile, "params", "", "read parameters from a JSON or YAML `FILE`")
	fl.StringArrayVar(&o.EnvKVs, "env", nil, "set an environment variable in the sandbox, NAME=value (repeatable)")
	fl.StringVar(&o.Request.Image, "image", "", "sandbox image (must be on the cluster's allowlist)")
	fl.IntVar(&o.Request.CPUs, "cpus", 0, "CPUs to ask for")
	fl.StringVar(&o.Request.Mem, "mem", "", "memory to ask for, e.g. 512M or 4G")
	fl.IntVar(&o.Request.GPUs, "gpus", -1, "GPUs to ask for")
	fl.StringVar(&o.Request.Time, "time", "", "time limit: minutes, HH:MM:SS, D-HH:MM:SS or e.g. 90m")
	fl.StringVar(&o.Request.Partition, "partition", "", "Slurm partition")
	fl.StringVar(&o.Request.Name, "name", "", "a name for this run, shown by ls")
	fl.StringVar(&o.Request.Network, "network", "", "a network the cluster allows (default: none)")
	fl.BoolVar(&o.Wait, "wait", false, "wait for the job to end; exit with its exit code")
	fl.BoolVarP(&o.Follow, "follow", "f", false, "stream the job's log while waiting (implies --wait)")
	output.AddFlag(cmd, &o.Output)
	return cmd
}

func runSubmit(ctx context.Context, o *Options) error {
	f := o.F
	cfg, err := f.Config()
	if err != nil {
		return &factory.UsageError{Err: err}
	}
	params := map[string]any{}
	if o.ParamsFile != "" {
		p, err := submit.ReadParamsFile(o.ParamsFile)
		if err != nil {
			return &factory.UsageError{Err: err}
		}
		maps.Copy(params, p)
	}
	for _, kv := range o.ParamKVs {
		k, v, err := submit.ParseParam(kv)
		if err != nil {
			return &factory.UsageError{Err: err}
		}
		params[k] = v
	}
	o.Request.Params = params
	o.Request.Env = map[string]string{}
	for _, kv := range o.EnvKVs {
		k, v, ok := cutKV(kv)
		if !ok {
			return factory.Usagef("--env %q: want NAME=value", kv)
		}
		o.Request.Env[k] = v
	}
	ferry := cfg.FerryBinary
	if ferry == "" {
		exe, err := f.Executable()
		if err != nil {
			return fmt.Errorf("find the ferry binary: %w", err)
		}
		if ferry, err = filepath.EvalSymlinks(exe); err != nil {
			return fmt.Errorf("find the ferry binary: %w", err)
		}
	}
	s := &submit.Submitter{Config: cfg, Slurm: f.Slurm(), Ferry: ferry, Now: f.Now, Progress: f.IO.ErrOut, TTY: f.IO.ErrTTY}
	res, err := s.Submit(ctx, o.Request)
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
			res.Spec.ID.Short(), res.SlurmID, humanBytes(res.Spec.Bundle.Size), res.Spec.Bundle.Files, res.Spec.ID.Short())
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

func cutKV(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], i > 0
		}
	}
	return "", "", false
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
