// Package redisrate enforces the per-user purchase limit across every API
// instance with a GCRA limiter kept in Redis (github.com/go-redis/redis_rate,
// one Lua call per check). It is the shared alternative to the shield's
// per-instance buckets, chosen with --user-limiter=redis.
package redisrate

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// UserLimiter admits at most Rate purchase attempts per second per user, with
// Burst, summed over all instances sharing the Redis and prefix.
type UserLimiter struct {
	l      *redis_rate.Limiter
	limit  redis_rate.Limit
	prefix string

	allowed, refused atomic.Uint64
}

// New returns a limiter of perSec attempts per second (rounded up to a whole
// number per second, the library's unit) with the given burst.
func New(rdb redis.UniversalClient, prefix string, perSec float64, burst int) *UserLimiter {
	rate := int(math.Ceil(perSec))
	if rate < 1 {
		rate = 1
	}
	if burst < 1 {
		burst = 1
	}
	return &UserLimiter{
		l:      redis_rate.NewLimiter(rdb),
		limit:  redis_rate.Limit{Rate: rate, Burst: burst, Period: time.Second},
		prefix: keyPrefix(prefix),
	}
}

// libraryPrefix is what redis_rate puts before every key it is given (its
// unexported redisPrefix); TestKeyPatternsAreTheKeysWritten catches a change.
const libraryPrefix = "rate:"

// KeyPatterns lists the key a limiter with this prefix keeps for user, as
// it appears in Redis. Unlike every other key it does not start with the
// prefix: the library puts "rate:" first. It exists so the docs test can
// check the key tables.
func KeyPatterns(prefix string, user sale.UserID) []string {
	return []string{libraryPrefix + keyPrefix(prefix) + string(user)}
}

func keyPrefix(prefix string) string { return prefix + ":user-rate:" }

// Allow reports whether the user may make one more attempt now. An error
// means Redis was not reached; the caller decides whether to fail open.
func (u *UserLimiter) Allow(ctx context.Context, user sale.UserID) (bool, error) {
	res, err := u.l.Allow(ctx, u.prefix+string(user), u.limit)
	if err != nil {
		return false, fmt.Errorf("redisrate: %w", err)
	}
	if res.Allowed > 0 {
		u.allowed.Add(1)
		return true, nil
	}
	u.refused.Add(1)
	return false, nil
}

// Stats counts decisions since New.
type Stats struct{ Allowed, Refused uint64 }

// Stats returns the counters, for metrics.
func (u *UserLimiter) Stats() Stats {
	return Stats{Allowed: u.allowed.Load(), Refused: u.refused.Load()}
}
