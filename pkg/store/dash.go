package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Reads the dashboard's admin views need, beyond pages of one index.

// Active is the sorted set of the jobs that have not ended (queued,
// running, completing, requeued...), scored by submit time: what the nodes
// page and the course view read instead of every job.
func (k Keys) Active() string { return k.Prefix + "active" }

// ActiveJobs reads up to limit jobs that have not ended, oldest submit
// first, in two round trips.
func (r *Redis) ActiveJobs(ctx context.Context, limit int64) ([]*Job, error) {
	if limit <= 0 {
		limit = 10000
	}
	ids, err := r.c.ZRange(ctx, r.k.Active(), 0, limit-1).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	return r.getJobs(ctx, ids)
}

// UserCounts is the number of jobs each user has in the store. It walks
// the per-user indexes with SCAN (never KEYS) and reads their sizes in
// pipelined batches: one round trip per hundred users or so.
func (r *Redis) UserCounts(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	prefix, suffix := r.k.Prefix+"user:", ":jobs"
	match := strings.NewReplacer("*", `\*`, "?", `\?`, "[", `\[`).Replace(prefix) + "*" + suffix
	var cursor uint64
	for {
		keys, next, err := r.c.Scan(ctx, cursor, match, 500).Result()
		if err != nil {
			return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
		}
		if len(keys) > 0 {
			pipe := r.c.Pipeline()
			cmds := make([]*redis.IntCmd, len(keys))
			for i, k := range keys {
				cmds[i] = pipe.ZCard(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
			}
			for i, k := range keys {
				user := strings.TrimSuffix(strings.TrimPrefix(k, prefix), suffix)
				if n := cmds[i].Val(); n > 0 && user != "" {
					out[user] = n
				}
			}
		}
		cursor = next
		if cursor == 0 {
			return out, nil
		}
	}
}
