// Package job owns ferry's job model: the job ID, the Spec a user submits,
// the observed State and the Result the sandbox records, and the layout of a
// job dir on the shared /home. It knows nothing about Slurm commands, Docker
// or Redis; those packages translate into these types.
package job
