// Package output renders command results: JSON for programs, aligned
// tables for people on a terminal, and stable tab-separated text for pipes.
package output

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Format is the -o flag's value.
type Format string

const (
	Text Format = "text"
	JSON Format = "json"
)

// AddFlag registers -o/--output on cmd.
func AddFlag(cmd *cobra.Command, f *Format) {
	*f = Text
	cmd.Flags().VarP((*formatValue)(f), "output", "o", "output format: text or json")
}

type formatValue Format

func (v *formatValue) String() string { return string(*v) }
func (v *formatValue) Type() string   { return "format" }
func (v *formatValue) Set(s string) error {
	switch Format(s) {
	case Text, JSON:
		*v = formatValue(s)
		return nil
	}
	return fmt.Errorf("unknown output format %q: use text or json", s)
}

// WriteJSON prints v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Table prints rows under a header: aligned on a terminal, tab-separated
// without a header otherwise (stable for scripts).
func Table(w io.Writer, tty bool, header []string, rows [][]string) error {
	if !tty {
		for _, r := range rows {
			if _, err := fmt.Fprintln(w, strings.Join(r, "\t")); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// Ago renders a time relative to now for people ("3m ago"), or RFC 3339
// for pipes.
func Ago(t, now time.Time, tty bool) string {
	if t.IsZero() {
		return "-"
	}
	if !tty {
		return t.UTC().Format(time.RFC3339)
	}
	d := max(now.Sub(t), 0) // clocks of the nodes may disagree a little
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// Duration renders how long something ran.
func Duration(from, to time.Time) string {
	if from.IsZero() || to.IsZero() {
		return "-"
	}
	d := to.Sub(from)
	if d < time.Minute {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
