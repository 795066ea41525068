// Package output renders command results: JSON for programs, aligned
// tables for people on a terminal, and stable tab-separated text for pipes,
// all of it escaped so that no value breaks a row or reaches the terminal
// raw; and the exit-code section of commands' help.
package output

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
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

// Escape makes s safe to print for people and in tab-separated text. A
// string holding a control character (newline, tab, escape, …), any other
// rune that does not print, or invalid UTF-8 is printed quoted, with Go's
// escapes: "a\nb", "\x1b[31m". So is one that starts with a quote, so that a
// quoted string is never mistaken for a raw one. Anything else is printed
// as it is. `-o json` never goes through it: JSON is exact.
func Escape(s string) string {
	if !strings.HasPrefix(s, `"`) && printable(s) {
		return s
	}
	return strconv.Quote(s)
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// Command renders a command line for people: each argument as it is, or
// quoted with Go's escapes when it is empty or holds a space, a quote, a
// backslash or something that does not print.
func Command(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \"'\\") || !printable(a) {
			out[i] = strconv.Quote(a)
			continue
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// Table prints rows under a header: aligned on a terminal, tab-separated
// without a header otherwise (stable for scripts). Every cell goes through
// Escape: a job's name can hold a tab, a newline or a terminal escape
// sequence, and must neither break a row nor reach the terminal.
func Table(w io.Writer, tty bool, header []string, rows [][]string) error {
	line := func(cells []string) string {
		esc := make([]string, len(cells))
		for i, c := range cells {
			esc[i] = Escape(c)
		}
		return strings.Join(esc, "\t")
	}
	if !tty {
		for _, r := range rows {
			if _, err := fmt.Fprintln(w, line(r)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, line(header))
	for _, r := range rows {
		fmt.Fprintln(tw, line(r))
	}
	return tw.Flush()
}

// ExitCodes is the "Exit codes:" section of a command's help: the codes
// every command may exit with (0, 1 and 2) and the given ones, worded as
// factory.ExitCodesHelp words them.
func ExitCodes(codes ...int) string {
	lines := strings.Split(factory.ExitCodesHelp, "\n")
	out := lines[:1:1]
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.Atoi(f[0]); err == nil && (n <= factory.CodeUsage || slices.Contains(codes, n)) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
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
