// Package sweep is `ferry sweep` and `ferry sweep show`.
package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	cmdsubmit "github.com/ferry-hpc/ferry/pkg/cmd/submit"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe"
	"github.com/ferry-hpc/ferry/pkg/submit"
	"github.com/ferry-hpc/ferry/pkg/sweep"
)

// Options are sweep's flags.
type Options struct {
	F           *factory.Factory
	Job         cmdsubmit.JobFlags
	Spec        string
	ParamsList  string
	MaxParallel int
	Output      output.Format
}

// NewCmdSweep builds `ferry sweep`.
func NewCmdSweep(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "sweep [flags] DIR --spec sweep.yaml [-- COMMAND ARGS...]",
		Short: "Run a project once per parameter set, as one Slurm job array",
		Long: `Run DIR once per parameter set of a sweep: a grid or seeded random
samples (--spec), or an explicit list (--params-list, a JSON array of
objects). The whole sweep is one 'sbatch --array' submission (several when
it is larger than the cluster's MaxArraySize). Every task is a normal job
with its own id, dir and params: 'ferry status', 'logs', 'get' and 'cancel'
work on it; 'ferry sweep show ID' tabulates all of them with their latest
metrics. Other flags are as for 'ferry submit'; a task's params override
--param and job.yaml's params.

sweep.yaml:
  method: grid                       # or random (the default when count is set)
  count: 12                          # random: how many tasks
  seed: 42                           # random: the same seed draws the same tasks
  params:
    lr: [0.1, 0.01, 0.001]           # a grid axis, or random choices
    momentum: 0.9                    # a constant
    layers: {choices: [1, 2, 3]}
    dropout: {min: 0.0, max: 0.5}
    wd: {min: 1.0e-5, max: 1.0e-1, log: true}
    width: {min: 16, max: 256, int: true}
    hidden: {min: 16, max: 128, int: true, count_min: 1, count_max: 3}

` + factory.ExitCodesHelp,
		Example: `  ferry sweep ./proj --spec sweep.yaml --max-parallel 4
  ferry sweep -o json ./proj --params-list points.json -- python3 eval.py
  ferry sweep show 01jd4k --sort=-accuracy`,
		Args: func(cmd *cobra.Command, args []string) error { return o.Job.Args(cmd, args) },
		RunE: func(cmd *cobra.Command, args []string) error {
			if (o.Spec == "") == (o.ParamsList == "") {
				return factory.Usagef("give exactly one of --spec FILE and --params-list FILE")
			}
			if o.MaxParallel < 0 {
				return factory.Usagef("--max-parallel must be 0 (no limit) or more")
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runSweep(cmd.Context(), o)
		},
	}
	o.Job.Bind(cmd)
	cmd.Flags().StringVar(&o.Spec, "spec", "", "the sweep spec (YAML): a grid or random sampling")
	cmd.Flags().StringVar(&o.ParamsList, "params-list", "", "a JSON `FILE` holding an array of param objects, one per task")
	cmd.Flags().IntVar(&o.MaxParallel, "max-parallel", 0, "run at most K tasks at a time (per array); 0 = as many as fit")
	output.AddFlag(cmd, &o.Output)
	cmd.AddCommand(newCmdShow(f))
	return cmd
}

func readSets(o *Options) ([]map[string]any, error) {
	if o.Spec != "" {
		spec, err := sweep.ReadSpec(o.Spec)
		if err != nil {
			return nil, &factory.UsageError{Err: err}
		}
		sets, err := spec.Expand()
		if err != nil {
			return nil, &factory.UsageError{Err: err}
		}
		return sets, nil
	}
	data, err := os.ReadFile(o.ParamsList)
	if err != nil {
		return nil, &factory.UsageError{Err: err}
	}
	var sets []map[string]any
	if err := json.Unmarshal(data, &sets); err != nil {
		return nil, factory.Usagef("--params-list %s: want a JSON array of objects: %v", o.ParamsList, err)
	}
	if len(sets) == 0 {
		return nil, factory.Usagef("--params-list %s: the list is empty", o.ParamsList)
	}
	if len(sets) > sweep.MaxTasks {
		return nil, factory.Usagef("--params-list %s: %d tasks, over the limit of %d", o.ParamsList, len(sets), sweep.MaxTasks)
	}
	return sets, nil
}

func runSweep(ctx context.Context, o *Options) error {
	sets, err := readSets(o)
	if err != nil {
		return err
	}
	s, err := o.Job.Submitter(o.F)
	if err != nil {
		return err
	}
	base, err := s.BuildSpec(o.Job.Request)
	if err != nil {
		return &factory.UsageError{Err: err}
	}
	sw, err := s.SubmitSweep(ctx, base, sets, o.MaxParallel, o.F.Slurm())
	if err != nil {
		var bi *submit.BadInput
		if errors.As(err, &bi) {
			return &factory.UsageError{Err: err}
		}
		return err
	}
	if o.Output == output.JSON {
		return output.WriteJSON(o.F.IO.Out, sw)
	}
	fmt.Fprintln(o.F.IO.Out, sw.ID)
	var arrays []string
	for _, a := range sw.Arrays {
		arrays = append(arrays, a.SlurmID)
	}
	fmt.Fprintf(o.F.IO.ErrOut, "submitted sweep %s: %d tasks as Slurm array job(s) %s; see them with 'ferry sweep show %s'\n",
		sw.ID.Short(), len(sw.Tasks), strings.Join(arrays, ", "), sw.ID.Short())
	return nil
}

// Row is one task in `sweep show`.
type Row struct {
	Index   int            `json:"index"`
	ID      job.ID         `json:"id"`
	State   job.State      `json:"state"`
	Reason  string         `json:"reason,omitempty"`
	Params  map[string]any `json:"params"`
	Metrics map[string]any `json:"metrics"`
}

// Shown is `sweep show -o json`.
type Shown struct {
	ID      job.ID `json:"id"`
	Project string `json:"project"`
	Tasks   []Row  `json:"tasks"`
}

type showOptions struct {
	F      *factory.Factory
	Ref    string
	Sort   string
	Output output.Format
}

func newCmdShow(f *factory.Factory) *cobra.Command {
	o := &showOptions{F: f}
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a sweep's tasks: params, state and latest metrics",
		Long: `Show each task of a sweep (ID is the sweep's id, as 'ferry sweep' printed
it, or a unique prefix) with its params, state and the latest value of
each metric it logged, one row per task in task order. --sort METRIC sorts
by a metric's latest value, ascending; --sort=-METRIC descending. Tasks
without the metric (yet), or whose value is not a number, come last.

Piped, rows are tab-separated without a header, in the columns
# ID STATE, then the params, then the metrics, each group by name.
A value holding a control character is printed quoted, with \t, \n, \x1b
escapes; -o json gives it exactly.

` + output.ExitCodes(factory.CodeNotFound),
		Example: "  ferry sweep show 01jd4k --sort=-accuracy\n  ferry sweep show 01jd4k --sort loss\n  ferry sweep show -o json 01jd4k | jq '.tasks[0]'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Ref = args[0]
			return runShow(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Sort, "sort", "", "sort by this `METRIC`, ascending; -METRIC descending")
	output.AddFlag(cmd, &o.Output)
	return cmd
}

func runShow(ctx context.Context, o *showOptions) error {
	cfg, err := o.F.Config()
	if err != nil {
		return err
	}
	dir, err := submit.FindSweep(cfg.SpoolRoot, o.Ref)
	switch {
	case errors.Is(err, job.ErrNotFound):
		return job.NotFoundf("no sweep %q among your sweeps: give the id 'ferry sweep' printed", strings.ToLower(strings.TrimSpace(o.Ref)))
	case errors.Is(err, job.ErrAmbiguous):
		return job.Ambiguousf("%q matches more than one sweep; give more characters", strings.ToLower(strings.TrimSpace(o.Ref)))
	case err != nil:
		return err
	}
	sw, err := submit.ReadSweep(dir)
	if err != nil {
		return err
	}
	obs, err := o.F.Observer()
	if err != nil {
		return err
	}
	all, err := obs.List(ctx, observe.Filter{Project: sw.Project})
	if err != nil {
		return err
	}
	byID := map[job.ID]job.Status{}
	for _, st := range all {
		byID[st.ID] = st
	}
	shown := Shown{ID: sw.ID, Project: sw.Project}
	for _, t := range sw.Tasks {
		st, ok := byID[t.ID]
		if !ok {
			// A crash soon after the sweep was submitted can lose a task's
			// dir (submit does not wait for it): only this record knows it.
			st.State, st.Reason = job.Unknown, "its job dir is missing; if the task has not started yet, it rebuilds the dir from the sweep's record when it does"
			if len(sw.Arrays) == 0 {
				st.Reason = "its job dir is missing, and the sweep never reached Slurm (ferry stopped before sbatch)"
			}
		}
		m, _ := observe.LatestMetrics(job.Dir(t.Dir))
		shown.Tasks = append(shown.Tasks, Row{Index: t.Index, ID: t.ID, State: st.State, Reason: st.Reason, Params: t.Params, Metrics: m})
	}
	if o.Sort != "" {
		if !sortRows(shown.Tasks, o.Sort) {
			fmt.Fprintf(o.F.IO.ErrOut, "no task has logged a number for %s yet: not sorted\n", output.Escape(strings.TrimPrefix(o.Sort, "-")))
		}
	}
	if o.Output == output.JSON {
		return output.WriteJSON(o.F.IO.Out, shown)
	}
	var short map[job.ID]string
	if o.F.IO.OutTTY {
		if short, err = obs.ShortIDs(); err != nil {
			return err
		}
	}
	return table(o.F, shown, short)
}

// sortRows sorts rows by the metric key ("-key": descending), those without
// a number for it last, and reports whether any row has one.
func sortRows(rows []Row, key string) bool {
	desc := strings.HasPrefix(key, "-")
	key = strings.TrimPrefix(key, "-")
	num := func(r Row) (float64, bool) {
		v, ok := r.Metrics[key].(float64)
		return v, ok
	}
	if !slices.ContainsFunc(rows, func(r Row) bool { _, ok := num(r); return ok }) {
		return false
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, aok := num(rows[i])
		b, bok := num(rows[j])
		switch {
		case aok != bok:
			return aok // tasks without the metric last
		case !aok:
			return false
		case desc:
			return a > b
		}
		return a < b
	})
	return true
}

// table renders s; short, when set, holds the ids to show (on a terminal).
func table(f *factory.Factory, s Shown, short map[job.ID]string) error {
	pkeys := map[string]bool{}
	mkeys := map[string]bool{}
	for _, r := range s.Tasks {
		for k := range r.Params {
			pkeys[k] = true
		}
		for k := range r.Metrics {
			mkeys[k] = true
		}
	}
	ps, ms := sortedKeys(pkeys), sortedKeys(mkeys)
	header := append([]string{"#", "ID", "STATE"}, ps...)
	header = append(header, ms...)
	var rows [][]string
	for _, r := range s.Tasks {
		id := string(r.ID)
		if p, ok := short[r.ID]; ok {
			id = p
		}
		state := string(r.State)
		if state == "" {
			state = "-" // its dir was removed
		}
		row := []string{fmt.Sprint(r.Index), id, state}
		for _, k := range ps {
			row = append(row, cell(r.Params[k]))
		}
		for _, k := range ms {
			row = append(row, cell(r.Metrics[k]))
		}
		rows = append(rows, row)
	}
	return output.Table(f.IO.Out, f.IO.OutTTY, header, rows)
}

func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		return v
	case float64:
		return fmt.Sprintf("%.6g", v)
	case json.Number: // a param, as the sweep's record holds it
		if !strings.ContainsAny(v.String(), ".eE") { // an integer: exactly
			return v.String()
		}
		if f, err := v.Float64(); err == nil {
			return fmt.Sprintf("%.6g", f)
		}
		return v.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
