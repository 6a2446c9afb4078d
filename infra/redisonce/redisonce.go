// Package redisonce keeps single-use marks in Redis: Once reports true for
// the first caller of a key and false for every caller after it, across
// every instance, until the mark expires. The fair-sale challenges use it
// (app/fairness); purchase tickets do not, because their single use must
// be atomic with the reservation and lives in the stock ledger's script.
package redisonce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Marks sets single-use marks under one key prefix. It is safe for
// concurrent use.
type Marks struct {
	rdb    redis.UniversalClient
	prefix string
}

// New returns marks kept under "<prefix>:" on rdb; the caller owns rdb.
func New(rdb redis.UniversalClient, prefix string) *Marks {
	return &Marks{rdb: rdb, prefix: prefix}
}

// KeyPatterns lists the keys Marks with this prefix builds, for a mark
// named name, for the docs test.
func KeyPatterns(prefix, name string) []string { return []string{(&Marks{prefix: prefix}).key(name)} }

func (m *Marks) key(name string) string { return m.prefix + ":" + name }

// Once sets the mark name for ttl (at least a millisecond) and reports
// whether this call set it: SET NX decides between any number of callers at
// once. An error means Redis was not reached or refused; the mark may or
// may not be set.
func (m *Marks) Once(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ttl = max(ttl, time.Millisecond)
	err := m.rdb.SetArgs(ctx, m.key(name), 1, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, redis.Nil):
		return false, nil
	}
	return false, fmt.Errorf("redisonce: set %s: %w", name, err)
}
