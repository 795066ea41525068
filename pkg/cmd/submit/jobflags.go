package submit

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/submit"
)

// JobFlags are the flags that describe a job, shared by submit and sweep.
type JobFlags struct {
	Request    submit.Request
	ParamKVs   []string
	ParamsFile string
	EnvKVs     []string
	cmd        *cobra.Command
}

// Bind registers the job flags on cmd.
func (j *JobFlags) Bind(cmd *cobra.Command) {
	j.cmd = cmd
	fl := cmd.Flags()
	fl.StringArrayVar(&j.ParamKVs, "param", nil, "set a parameter, key=value (repeatable)")
	fl.StringVar(&j.ParamsFile, "params", "", "read parameters from a JSON or YAML `FILE`")
	fl.StringArrayVar(&j.EnvKVs, "env", nil, "set an environment variable in the sandbox, NAME=value (repeatable)")
	fl.StringVar(&j.Request.Image, "image", "", "sandbox image (must be on the cluster's allowlist)")
	fl.IntVar(&j.Request.CPUs, "cpus", 0, "CPUs to ask for")
	fl.StringVar(&j.Request.Mem, "mem", "", "memory to ask for, e.g. 512M or 4G")
	fl.IntVar(&j.Request.GPUs, "gpus", 0, "GPUs to ask for (default: job.yaml's, else none)")
	fl.StringVar(&j.Request.Time, "time", "", "time limit: minutes, HH:MM:SS, D-HH:MM:SS or e.g. 90m")
	fl.StringVar(&j.Request.Partition, "partition", "", "Slurm partition")
	fl.StringVar(&j.Request.Name, "name", "", "a name for this run, shown by ls")
	fl.StringVar(&j.Request.Network, "network", "", "a network the cluster allows (default: none)")
}

// Args checks DIR [-- COMMAND ARGS...] and fills Dir and Command.
func (j *JobFlags) Args(cmd *cobra.Command, args []string) error {
	dash := cmd.ArgsLenAtDash()
	n := len(args)
	if dash >= 0 {
		n = dash
	}
	if n != 1 {
		return factory.Usagef("%s takes one project DIR (then, optionally, -- COMMAND ARGS...); got %d arguments before --", cmd.Name(), n)
	}
	j.Request.Dir = args[0]
	if dash >= 0 {
		j.Request.Command = args[dash:]
	}
	return nil
}

// Submitter builds the request's params and env, and a Submitter for it.
func (j *JobFlags) Submitter(f *factory.Factory) (*submit.Submitter, error) {
	cfg, err := f.Config()
	if err != nil {
		return nil, &factory.UsageError{Err: err}
	}
	if j.cmd != nil {
		fl := j.cmd.Flags()
		if fl.Changed("cpus") && j.Request.CPUs < 1 {
			return nil, factory.Usagef("--cpus %d: ask for at least 1 CPU", j.Request.CPUs)
		}
		if fl.Changed("gpus") && j.Request.GPUs < 0 {
			return nil, factory.Usagef("--gpus %d: must not be negative (0 asks for none)", j.Request.GPUs)
		}
		if !fl.Changed("gpus") {
			j.Request.GPUs = -1 // not given: job.yaml decides
		}
	}
	params := map[string]any{}
	if j.ParamsFile != "" {
		p, err := submit.ReadParamsFile(j.ParamsFile)
		if err != nil {
			return nil, &factory.UsageError{Err: err}
		}
		maps.Copy(params, p)
	}
	for _, kv := range j.ParamKVs {
		k, v, err := submit.ParseParam(kv)
		if err != nil {
			return nil, &factory.UsageError{Err: err}
		}
		params[k] = v
	}
	j.Request.Params = params
	j.Request.Env = map[string]string{}
	for _, kv := range j.EnvKVs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, factory.Usagef("--env %q: want NAME=value", kv)
		}
		j.Request.Env[k] = v
	}
	ferry := cfg.FerryBinary
	if ferry == "" {
		exe, err := f.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the ferry binary: %w", err)
		}
		if ferry, err = filepath.EvalSymlinks(exe); err != nil {
			return nil, fmt.Errorf("find the ferry binary: %w", err)
		}
	}
	return &submit.Submitter{Config: cfg, Slurm: f.Slurm(), Ferry: ferry, Now: f.Now, Progress: f.IO.ErrOut, TTY: f.IO.ErrTTY}, nil
}
