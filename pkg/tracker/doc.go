// Package tracker mirrors Slurm's view of ferry's jobs into the job store.
//
// Each tick it takes one cluster-wide squeue listing (never one call per
// job), attributes each line to a ferry job by the id in its comment and
// the owner of its job dir (Slurm reuses its own ids; anyone may write any
// comment; a sweep's array task by its sweep and the Slurm id its job dir
// recorded, never by the Slurm id alone), combines it with the job dir's
// result.json through pkg/job's Observe (the same rules as the CLI's), and
// writes only what changed, in one store batch. A jobcomp hook pushes
// end-of-job events over a unix socket so terminal states land within
// milliseconds; polling catches whatever the hook missed. Each state is
// written with the path that delivered it (store.Source: the hook, the
// squeue listing, a result.json, the cancel marker, the spool scan, or the
// lost timeout).
//
// Safety rules: a Slurm error changes no job's state (health reports it);
// a job that left Slurm without a result is lost only after a grace
// period; a terminal state is never taken back by an older listing. On
// start, and whenever the store's generation is not the one it wrote last
// (FLUSHALL, a Redis restart), the tracker rebuilds the store from its own
// state, Slurm and a scan of the spools, and emits no state event twice.
//
// It does not own the Redis schema (pkg/store), the state rules (pkg/job),
// or the squeue command line (pkg/slurm).
package tracker
