package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Dashboard sessions live beside the job store, under their own keys
// (prefix + "session:" + key). The dashboard is their only writer; the key
// it passes is already a hash of the cookie, so a dump of Redis holds no
// usable session.

// Session returns the key of a dashboard session.
func (k Keys) Session(key string) string { return k.Prefix + "session:" + key }

// PutSession stores a session's value for ttl.
func (r *Redis) PutSession(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := r.c.Set(ctx, r.k.Session(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	return nil
}

// GetSession reads a session's value; nil when there is none (expired,
// revoked, or never made).
func (r *Redis) GetSession(ctx context.Context, key string) ([]byte, error) {
	v, err := r.c.Get(ctx, r.k.Session(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	return v, nil
}

// DeleteSession removes a session (logout, revocation).
func (r *Redis) DeleteSession(ctx context.Context, key string) error {
	if err := r.c.Del(ctx, r.k.Session(key)).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", r.o.Addr, err)
	}
	return nil
}
