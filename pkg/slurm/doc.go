// Package slurm is ferry's only interface to Slurm. It runs the Slurm
// commands (sbatch, squeue, scancel, sinfo, scontrol) through one exec seam,
// Runner, parses their formatted output, maps Slurm's job states onto ferry's
// observed job.State, and renders the sbatch script of a job with every value
// quoted or refused.
//
// It owns the command lines and their parsing, and nothing else: it does not
// know the spool, Redis or the sandbox, and it never decides what a job should
// do. There is no REST client: slurmrestd cannot submit as the calling user
// (see SLURM-NOTES), and squeue --json ignores its filters in 22.05, so the
// formatted form of squeue is used.
//
// A job's Comment ("ferry:<id>") ties a Slurm job to a ferry job. Any user can
// set any comment on their own jobs, so callers that attribute a Slurm job to
// a ferry job must also check that the job's UID owns that ferry job.
package slurm
