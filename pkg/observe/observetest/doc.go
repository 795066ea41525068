// Package observetest fakes what package observe reads, for the tests of
// the commands built on it: a Slurm behind a slurm.Runner that answers
// squeue in squeue's exact format (so the real parser reads it) and obeys
// scancel as slurmctld would, and job dirs in a spool as submit leaves them.
// It is imported by tests only; it submits nothing and runs no command.
package observetest
