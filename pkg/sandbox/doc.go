// Package sandbox owns the single-use container a job runs in: the policy
// that turns a job's request into a locked-down container spec, the Engine
// seam in front of the Docker Engine API, the root agent that is the only
// process on a worker to touch the Docker socket, its client, and the
// `ferry sandbox run` logic that runs inside the Slurm job as the user.
//
// The agent never hands Docker a path a user can change: a Binder opens
// each run's scratch and outputs dirs without following symlinks and
// bind-mounts what it opened under a root-only mount root, and Docker gets
// those mount points. The agent also removes a run's node-local scratch
// when the run ends, and the epilog's cleanup removes what a killed job
// left there.
//
// It does not pack bundles (package bundle), talk Slurm's command language
// (package slurm) or know the job dir layout beyond package job.
package sandbox
