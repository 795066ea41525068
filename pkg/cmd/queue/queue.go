// Package queue is `ferry queue`: the queue as a student sees it.
package queue

import (
	"context"
	"fmt"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/observe"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// Options are queue's flags.
type Options struct {
	F      *factory.Factory
	Output output.Format
	User   string // "" = the current user
}

// NewCmdQueue builds `ferry queue`.
func NewCmdQueue(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Your jobs waiting in Slurm's queue, how many are ahead, and your fair-share standing",
		Long: `Show your queued jobs: for each, why it waits (Slurm's reason in words),
its place in its partition's queue among every user's pending jobs, and
when Slurm expects it to start, when Slurm has planned that.

Where the cluster keeps accounting (slurmdbd), it also shows your
fair-share standing: 1.0 when you have used nothing lately, lower the more
you have used (recent use counts most; it fades with the cluster's decay
half-life). Jobs of those who used less start first, so a classmate who
floods the queue does not make everyone else wait.

` + output.ExitCodes(factory.CodeSlurm),
		Example: "  ferry queue\n  ferry queue -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runQueue(cmd.Context(), o)
		},
	}
	output.AddFlag(cmd, &o.Output)
	return cmd
}

// View is what queue shows; -o json prints it.
type View struct {
	Jobs      []job.Status `json:"jobs"`
	FairShare *slurm.Share `json:"fair_share"` // null: no accounting for you here
}

func runQueue(ctx context.Context, o *Options) error {
	obs, err := o.F.Observer()
	if err != nil {
		return err
	}
	name := o.User
	if name == "" {
		u, err := user.Current()
		if err != nil {
			return fmt.Errorf("who are you: %w", err)
		}
		name = u.Username
	}
	list, err := obs.List(ctx, observe.Filter{State: job.Queued})
	if err != nil {
		return err
	}
	v := View{Jobs: list}
	if v.Jobs == nil {
		v.Jobs = []job.Status{}
	}
	if s, ok, err := o.F.Slurm().Share(ctx, name); err == nil && ok {
		v.FairShare = &s
	}
	if o.Output == output.JSON {
		return output.WriteJSON(o.F.IO.Out, v)
	}
	return show(o, v)
}

// show prints the view as a table and a line on fair share.
func show(o *Options, v View) error {
	w, now, tty := o.F.IO.Out, o.F.Now(), o.F.IO.OutTTY
	if len(v.Jobs) == 0 {
		fmt.Fprintln(w, "You have no job waiting.")
	} else {
		rows := make([][]string, 0, len(v.Jobs))
		for _, s := range v.Jobs {
			place, start := "-", "-"
			if s.QueuePosition > 0 {
				place = fmt.Sprintf("%d of %d", s.QueuePosition, s.QueueLength)
			}
			if !s.EstStart.IsZero() {
				start = s.EstStart.Local().Format("15:04") + " (in " + s.EstStart.Sub(now).Round(time.Minute).String() + ")"
			}
			id := string(s.ID) // piped: whole ids
			if tty {
				id = s.ID.Short()
			}
			rows = append(rows, []string{id, s.Project, place, output.Escape(s.Reason), start})
		}
		if err := output.Table(w, tty, []string{"ID", "PROJECT", "PLACE", "WHY IT WAITS", "EXPECTED START"}, rows); err != nil {
			return err
		}
	}
	if s := v.FairShare; s != nil {
		fmt.Fprintf(w, "Your fair-share standing: %.2f (1.0 = you used nothing lately); your recent use is %.1f%% of the cluster's.\n",
			s.FairShare, 100*s.EffectiveUsage)
		fmt.Fprintln(w, "Jobs of those who used less go first; your standing recovers as your use fades.")
	} else {
		fmt.Fprintln(w, "This cluster keeps no fair share for you: its queue is first come, first served.")
	}
	return nil
}
