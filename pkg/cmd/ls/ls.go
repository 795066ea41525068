// Package ls is `ferry ls`.
package ls

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe"
)

// Options are ls's flags.
type Options struct {
	F       *factory.Factory
	Project string
	State   string
	Limit   int
	Output  output.Format
}

// NewCmdLs builds `ferry ls`.
func NewCmdLs(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List your jobs, newest first",
		Long: `List your jobs, newest first, from your spool and one squeue call
(Redis is not needed).

States: ` + states() + `.

` + factory.ExitCodesHelp,
		Example: `  ferry ls
  ferry ls --project demo --state failed
  ferry ls -o json | jq '.[] | select(.state=="running") | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runLs(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.Project, "project", "", "only jobs of this project")
	cmd.Flags().StringVar(&o.State, "state", "", "only jobs in this state")
	cmd.Flags().IntVarP(&o.Limit, "limit", "n", 0, "show at most this many jobs")
	output.AddFlag(cmd, &o.Output)
	return cmd
}

func states() string {
	s := make([]string, len(job.States))
	for i, st := range job.States {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func runLs(ctx context.Context, o *Options) error {
	var st job.State
	if o.State != "" {
		var err error
		if st, err = job.ParseState(o.State); err != nil {
			return factory.Usagef("--state: %v", err)
		}
	}
	obs, err := o.F.Observer()
	if err != nil {
		return err
	}
	list, err := obs.List(ctx, observe.Filter{Project: o.Project, State: st, Limit: o.Limit})
	if err != nil {
		return err
	}
	if o.Output == output.JSON {
		if list == nil {
			list = []job.Status{}
		}
		return output.WriteJSON(o.F.IO.Out, list)
	}
	now := o.F.Now()
	tty := o.F.IO.OutTTY
	rows := make([][]string, 0, len(list))
	for _, s := range list {
		id := string(s.ID)
		if tty {
			id = s.ID.Short()
		}
		name := s.Name
		if name == "" {
			name = "-"
		}
		rows = append(rows, []string{id, s.Project, name, string(s.State), s.SlurmID, dash(s.Node),
			output.Ago(s.Submitted, now, tty), output.Duration(s.Started, s.Ended), s.Reason})
	}
	if len(rows) == 0 && tty {
		o.F.IO.ErrOut.Write([]byte("no jobs yet: submit one with 'ferry submit DIR'\n"))
		return nil
	}
	return output.Table(o.F.IO.Out, tty, []string{"ID", "PROJECT", "NAME", "STATE", "SLURM", "NODE", "SUBMITTED", "RAN", "REASON"}, rows)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
