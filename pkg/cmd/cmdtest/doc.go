// Package cmdtest runs one of ferry's commands in a test as ferry's root
// runs it: over a temp spool and the fake Slurm of package observetest,
// with its output captured, flag errors mapped to exit code 2, and an
// error printed in one line as "ferry: <err>".
//
// It owns that harness only. It does not fake Slurm or write job dirs
// (observetest does), and it builds no command tree: the test hands it the
// command to run. It is imported by tests only.
package cmdtest
