// Package ls is `ferry ls`.
package ls

import (
	"context"
	"fmt"
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

On a terminal: an aligned table with short ids (the shortest prefix that
tells a job from your others; any command takes it). Piped: one job a
line, no header, tab-separated, full ids and RFC 3339 times:
  ID PROJECT NAME STATE SLURM NODE SUBMITTED RAN REASON
A name or reason holding a tab, newline or other control character is
printed quoted, with \t, \n, \x1b escapes; -o json gives it exactly.

States: ` + states() + `.

` + output.ExitCodes(),
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

// states lists the states for the help, wrapped under "States: ".
func states() string {
	var b strings.Builder
	col := len("States: ")
	for i, st := range job.States {
		w := string(st)
		if i < len(job.States)-1 {
			w += ","
		}
		if i > 0 {
			if col+1+len(w) > 72 {
				b.WriteString("\n ")
				col = 1
			}
			b.WriteString(" ")
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
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
	if len(list) == 0 && tty {
		fmt.Fprintln(o.F.IO.ErrOut, o.none())
		return nil
	}
	var short map[job.ID]string
	if tty {
		if short, err = obs.ShortIDs(); err != nil {
			return err
		}
	}
	rows := make([][]string, 0, len(list))
	for _, s := range list {
		id := string(s.ID)
		if p, ok := short[s.ID]; ok {
			id = p
		}
		rows = append(rows, []string{id, s.Project, dash(s.Name), string(s.State), dash(s.SlurmID), dash(s.Node),
			output.Ago(s.Submitted, now, tty), output.Duration(s.Started, s.Ended), dash(reason(s))})
	}
	return output.Table(o.F.IO.Out, tty, []string{"ID", "PROJECT", "NAME", "STATE", "SLURM", "NODE", "SUBMITTED", "RAN", "REASON"}, rows)
}

// none says why the list is empty: no jobs at all, or none that match.
func (o *Options) none() string {
	var by []string
	if o.Project != "" {
		by = append(by, "--project "+output.Escape(o.Project))
	}
	if o.State != "" {
		by = append(by, "--state "+o.State)
	}
	if len(by) == 0 {
		return "no jobs yet: submit one with 'ferry submit DIR'"
	}
	return "no jobs match " + strings.Join(by, " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// reason is a job's reason, and for a queued job its place in the queue.
func reason(s job.Status) string {
	if s.State == job.Queued && s.QueuePosition > 0 {
		return fmt.Sprintf("%s (number %d of %d)", s.Reason, s.QueuePosition, s.QueueLength)
	}
	return s.Reason
}
