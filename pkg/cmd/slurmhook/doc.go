// Package slurmhook is the hidden `ferry slurm-hook`, run by slurmctld's
// jobcomp/script plugin (as SlurmUser) when a job ends: it hands the job's
// environment to the tracker over a unix socket, quickly, and nothing else.
package slurmhook
