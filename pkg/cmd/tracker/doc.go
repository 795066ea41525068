// Package tracker is `ferry tracker`, the head-node daemon that mirrors
// Slurm's view of ferry's jobs into Redis. It wires the config, the Slurm
// client, the Redis store, the HTTP endpoints (/healthz, /metrics) and the
// hook socket around pkg/tracker, which owns the reconcile loop.
package tracker
