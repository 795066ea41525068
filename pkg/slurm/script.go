package slurm

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/lazyre"
)

// Script is everything a job's sbatch script (job.sbatch) says.
type Script struct {
	JobName   string            // "ferry/<project>"
	Comment   string            // "ferry:<id>"
	Output    string            // absolute: <jobdir>/slurm.out, stdout+stderr of the batch script; a Slurm filename pattern (%j, %a; %% is a literal %)
	Chdir     string            // the job dir, absolute
	CPUs      int               // 0 = not set
	MemBytes  int64             // 0 = not set
	GPUs      int               // 0 = no --gres
	TimeLimit int64             // seconds, 0 = not set
	Partition string            // "" = the default partition
	Array     string            // "" or e.g. "0-99%10"
	Ferry     string            // absolute path of the ferry binary on the workers
	Args      []string          // ferry's arguments, e.g. ["sandbox","run","--job-dir",dir]
	Env       map[string]string // exported before exec, sorted by key
	Header    []string          // comment lines, sanitised
}

var envKeyRE = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Quote makes s one word for a POSIX shell, whatever it holds: it is
// wrapped in single quotes, and each single quote inside is closed, escaped
// with a backslash and reopened. Nothing inside single quotes is expanded,
// a newline included.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// directiveValue checks a value that goes on an #SBATCH line. sbatch splits
// those lines itself, honours quotes in them and ends them at a newline or
// '#', so a value must be a single plain word.
func directiveValue(field, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s %q is not valid UTF-8", field, v)
	}
	for _, r := range v {
		switch {
		case unicode.IsSpace(r):
			return fmt.Errorf("%s %q contains whitespace", field, v)
		case unicode.IsControl(r) || !unicode.IsPrint(r):
			return fmt.Errorf("%s %q contains a control character", field, v)
		case strings.ContainsRune(`'"#$`+"`"+`\`, r):
			return fmt.Errorf("%s %q contains %q, which an #SBATCH line cannot carry", field, v, r)
		}
	}
	return nil
}

// Render writes the sbatch script. It refuses, naming the field, any value
// that an #SBATCH line cannot carry safely, and any Env key that is not a
// shell variable name; every value on a shell line is quoted with Quote.
func Render(s Script) ([]byte, error) {
	var errs []error
	check := func(field, v string, required, absolute bool) {
		if v == "" {
			if required {
				errs = append(errs, fmt.Errorf("%s is empty", field))
			}
			return
		}
		if err := directiveValue(field, v); err != nil {
			errs = append(errs, err)
			return
		}
		if absolute && !filepath.IsAbs(v) {
			errs = append(errs, fmt.Errorf("%s %q is not an absolute path", field, v))
		}
	}
	check("JobName", s.JobName, true, false)
	check("Comment", s.Comment, false, false)
	check("Output", s.Output, true, true)
	check("Chdir", s.Chdir, true, true)
	check("Partition", s.Partition, false, false)
	check("Array", s.Array, false, false)
	if s.CPUs < 0 || s.MemBytes < 0 || s.GPUs < 0 || s.TimeLimit < 0 {
		errs = append(errs, errors.New("CPUs, MemBytes, GPUs and TimeLimit must not be negative"))
	}
	if s.Ferry == "" || !filepath.IsAbs(s.Ferry) {
		errs = append(errs, fmt.Errorf("Ferry %q is not an absolute path", s.Ferry))
	}
	if strings.ContainsRune(s.Ferry, 0) {
		errs = append(errs, errors.New("Ferry contains a NUL byte"))
	}
	for i, a := range s.Args {
		if strings.ContainsRune(a, 0) {
			errs = append(errs, fmt.Errorf("Args[%d] contains a NUL byte", i))
		}
	}
	keys := make([]string, 0, len(s.Env))
	for k, v := range s.Env {
		if !envKeyRE.MatchString(k) {
			errs = append(errs, fmt.Errorf("Env key %q is not a shell variable name", k))
		}
		if strings.ContainsRune(v, 0) {
			errs = append(errs, fmt.Errorf("Env %s contains a NUL byte", k))
		}
		keys = append(keys, k)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("render sbatch script: %w", err)
	}
	slices.Sort(keys)

	var b bytes.Buffer
	b.WriteString("#!/bin/bash\n")
	directive := func(opt, v string) { fmt.Fprintf(&b, "#SBATCH --%s=%s\n", opt, v) }
	directive("job-name", s.JobName)
	if s.Comment != "" {
		directive("comment", s.Comment)
	}
	b.WriteString("#SBATCH --exclusive\n")
	directive("output", s.Output)
	directive("chdir", s.Chdir)
	if s.CPUs > 0 {
		directive("cpus-per-task", fmt.Sprint(s.CPUs))
	}
	if s.MemBytes > 0 {
		directive("mem", job.FormatMem(s.MemBytes))
	}
	if s.TimeLimit > 0 {
		directive("time", job.FormatTime(s.TimeLimit))
	}
	if s.GPUs > 0 {
		directive("gres", fmt.Sprintf("gpu:%d", s.GPUs))
	}
	if s.Partition != "" {
		directive("partition", s.Partition)
	}
	if s.Array != "" {
		directive("array", s.Array)
	}
	for _, h := range s.Header {
		if h = sanitizeComment(h); h != "" {
			b.WriteString("# " + h + "\n")
		}
	}
	fmt.Fprintf(&b, "# Re-run by hand with: sbatch %s\n", filepath.Join(s.Chdir, job.ScriptFile))
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, Quote(s.Env[k]))
	}
	// The moment the batch script started, for the sandbox overhead ferry
	// records (bash's own clock: no process is started to read it).
	b.WriteString("export FERRY_BATCH_START=\"$EPOCHREALTIME\"\n")
	// exec: ferry replaces the batch shell, so Slurm's signals (scancel's
	// SIGTERM, the time limit's) reach it directly.
	b.WriteString("exec " + Quote(s.Ferry))
	for _, a := range s.Args {
		b.WriteString(" " + Quote(a))
	}
	b.WriteString("\n")
	return b.Bytes(), nil
}

// sanitizeComment keeps a header line on one comment line: control
// characters (newlines among them) and invalid UTF-8 are removed.
func sanitizeComment(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
