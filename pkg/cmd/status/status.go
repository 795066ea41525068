// Package status is `ferry status`.
package status

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
	"github.com/ferry-hpc/ferry/pkg/job"
)

// Options are status's flags.
type Options struct {
	F      *factory.Factory
	Ref    string
	Output output.Format
}

// NewCmdStatus builds `ferry status ID`.
func NewCmdStatus(f *factory.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{F: f}
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show one job's state, reason, exit code and times",
		Long: `Show one job's state, why it is in it, its exit code, where and when it
ran, and its job dir. ID is ferry's job id, a unique prefix of it, or the
Slurm job id. A name, command or reason holding a control character is
printed quoted, with \t, \n, \x1b escapes; -o json gives it exactly.

` + output.ExitCodes(factory.CodeNotFound),
		Example: "  ferry status 01jd4k\n  ferry status -o json 4242 | jq -r .state",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runStatus(cmd.Context(), o)
		},
	}
	output.AddFlag(cmd, &o.Output)
	return cmd
}

func runStatus(ctx context.Context, o *Options) error {
	d, err := o.F.Resolve(ctx, o.Ref)
	if err != nil {
		return err
	}
	obs, err := o.F.Observer()
	if err != nil {
		return err
	}
	st, err := obs.Status(ctx, d)
	if err != nil {
		return err
	}
	if o.Output == output.JSON {
		return output.WriteJSON(o.F.IO.Out, st)
	}
	w := o.F.IO.Out
	code := "-"
	if st.ExitCode != nil {
		code = fmt.Sprint(*st.ExitCode)
	}
	rows := [][2]string{
		{"id", string(st.ID)}, {"project", st.Project}, {"name", output.Escape(st.Name)},
		{"state", string(st.State)}, {"reason", output.Escape(st.Reason)}, {"queue", Queue(st, time.Now())}, {"exit code", code},
		{"slurm job", st.SlurmID}, {"node", output.Escape(st.Node)}, {"image", output.Escape(st.Image)},
		{"env", envLine(st)},
		{"command", output.Command(st.Command)},
		{"submitted", fmtTime(st.Submitted)}, {"started", fmtTime(st.Started)}, {"ended", fmtTime(st.Ended)},
		{"dir", output.Escape(st.Dir)},
	}
	for _, r := range rows {
		if (r[0] == "queue" || r[0] == "env") && r[1] == "" {
			continue // a queued job's line, a job with an environment's
		}
		if r[1] == "" {
			r[1] = "-"
		}
		if _, err := fmt.Fprintf(w, "%-10s %s\n", r[0]+":", r[1]); err != nil {
			return err
		}
	}
	return nil
}

// envLine says what a job's environment holds and, once it ran, its key
// and image: "pip: 2 packages, apt: 1 package; 3f2a9c01d2e4 (image
// sha256:…)". "" for a job without one.
func envLine(st job.Status) string {
	if st.EnvSpec == nil || st.EnvSpec.Empty() {
		return ""
	}
	s := st.EnvSpec.Summary()
	if st.Environment != "" {
		k := st.Environment
		if len(k) > 12 {
			k = k[:12]
		}
		s += "; " + k
		if st.ImageDigest != "" {
			s += " (image " + st.ImageDigest + ")"
		}
	}
	return s
}

// Queue says where a queued job stands: its place in its partition's
// queue and when Slurm expects it to start; "" for a job not queued.
func Queue(st job.Status, now time.Time) string {
	if st.State != job.Queued {
		return ""
	}
	var parts []string
	if st.QueuePosition > 0 {
		parts = append(parts, fmt.Sprintf("number %d of %d waiting (%d ahead of it)", st.QueuePosition, st.QueueLength, st.QueuePosition-1))
	}
	if !st.EstStart.IsZero() {
		parts = append(parts, "Slurm expects it to start at "+st.EstStart.Local().Format("15:04:05")+" (in "+st.EstStart.Sub(now).Round(time.Second).String()+")")
	} else if st.QueuePosition > 0 {
		parts = append(parts, "no start estimate from Slurm yet")
	}
	return strings.Join(parts, "; ")
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05.000 MST")
}
