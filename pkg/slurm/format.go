package slurm

import "strings"

// formatO builds an -O argument for squeue or sinfo: every field at width 0
// (full, no padding, never truncated) followed by the field separator, and
// the record end after the last. Free-text fields belong last, so that a
// separator inside them cannot shift the others.
func formatO(fields []string) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(f)
		b.WriteString(":0")
		if i == len(fields)-1 {
			b.WriteString(recordEnd)
		} else {
			b.WriteString(fieldSep)
		}
	}
	return b.String()
}
