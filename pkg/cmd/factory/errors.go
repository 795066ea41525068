package factory

import (
	"errors"
	"fmt"

	"github.com/ferry-hpc/ferry/pkg/job"
	"github.com/ferry-hpc/ferry/pkg/slurm"
)

// Exit codes. A job's own exit code passes through `submit --wait` and
// `ferry wait`; ferry's own codes are these.
const (
	CodeOK        = 0
	CodeError     = 1   // something failed; the message says what
	CodeUsage     = 2   // bad flags, arguments or input files
	CodeNotFound  = 4   // no such job, or not yours
	CodeSlurm     = 5   // Slurm could not be reached or refused the request
	CodeCancelled = 130 // --wait: the job was cancelled
	// CodeInterrupted is ferry itself stopped by Ctrl-C or SIGTERM, as a
	// shell reports a command SIGINT ended.
	CodeInterrupted = 130
	CodeTimeout     = 124 // --wait: the job hit its time limit
	CodeOOM         = 137 // --wait: the job ran out of memory
)

// ExitCodesHelp is appended to commands' help.
const ExitCodesHelp = `Exit codes:
  0    success
  1    error (the message says what went wrong)
  2    bad flags, arguments or input files
  4    no such job (or not one of yours)
  5    Slurm could not be reached or refused the request`

// UsageError marks bad input from the user.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitError carries an exit code without a message, e.g. a job's own code
// passed through by --wait. Silent ones print nothing.
type ExitError struct {
	Code   int
	Silent bool
	Err    error
}

func (e *ExitError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps an error to ferry's exit code.
func ExitCode(err error) int {
	if err == nil {
		return CodeOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return CodeUsage
	}
	if errors.Is(err, job.ErrNotFound) || errors.Is(err, job.ErrAmbiguous) {
		return CodeNotFound
	}
	var ce *slurm.CmdError
	if errors.As(err, &ce) {
		return CodeSlurm
	}
	return CodeError
}

// Silent reports whether err should print nothing (its code says it all).
func Silent(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Silent
}
