// Package submit turns a project dir and the user's choices into a job:
// it builds and checks the Spec, packs the bundle, writes the job dir
// atomically on the shared /home and hands the sbatch script to Slurm. It
// does not watch jobs (package observe) or run them (package sandbox).
package submit
