// Package store is ferry's job store: the Redis schema behind a small domain
// interface, Store. The tracker is its only writer; the dashboard and the
// CLI read it. It owns the key names, how a job, an event, a node and a
// metric point are encoded (plain text for scalars, JSON for anything
// structured, never a pickle), and the one-round-trip, all-or-nothing
// batches the tracker writes with.
//
// It does not know Slurm, the spool or the reconcile rules: the tracker
// decides what changed, the store writes it. go-redis stays inside this
// package; nothing else sees a Cmdable.
//
// Every batch bumps a generation counter in the same transaction. A writer
// that remembers the generation it last wrote sees at once when Redis lost
// its data (FLUSHALL, a restart without persistence) or came back with an
// older snapshot: the counter is not the one it expects.
package store
