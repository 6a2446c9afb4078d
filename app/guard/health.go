package guard

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisHealth watches a go-redis client's round trips, without changing
// them, and tells the ledger's guard whether Redis itself is slow. It
// exists because a Reserve that overruns its deadline may be waiting in
// this process's own queue (a spike: thousands of buyers share a few
// pipelines) rather than on Redis. Giving up on such a call would answer
// 503 to a buyer whose purchase Redis is about to accept, and counting it
// would open the breaker on a healthy Redis. So the guard gives up only
// when Redis is slow: a command has been in flight with nothing completing
// for the call timeout (a black hole, a stalled failover), or the latest
// round trips each took longer than the call timeout (latency, a narrow
// link).
type RedisHealth struct {
	// Commands and pipelines are watched apart: the ledger's pipelines
	// (Reserve) carry far more bytes than single commands, so a narrow link
	// slows them while small commands still pass quickly.
	cmds, pipes roundTrips
	threshold   time.Duration
	now         func() time.Time
}

// roundTrips is what RedisHealth knows of one kind of round trip.
type roundTrips struct {
	inflight atomic.Int64
	lastDone atomic.Int64 // unix nanos of the latest completed round trip
	// streak counts the latest round trips in a row that took longer than
	// the threshold; one slow round trip is a scheduling hiccup under a
	// spike, several in a row are a slow Redis.
	streak atomic.Int64
}

// slowStreak is how many slow round trips in a row make Redis slow.
const slowStreak = 3

var _ redis.Hook = (*RedisHealth)(nil)

// NewRedisHealth returns a watcher that calls a round trip slow when it
// takes longer than threshold (the call timeout); add it to the client
// with AddHook.
func NewRedisHealth(threshold time.Duration) *RedisHealth {
	return &RedisHealth{threshold: threshold, now: time.Now}
}

// Slow reports whether Redis has not answered within d, for commands or for
// pipelines: round trips are in flight and none completed in the last d,
// or the latest few in a row each took longer than the threshold.
func (h *RedisHealth) Slow(d time.Duration) bool {
	return h.cmds.slow(h.now(), d) || h.pipes.slow(h.now(), d)
}

func (r *roundTrips) slow(now time.Time, d time.Duration) bool {
	if r.streak.Load() >= slowStreak {
		return true
	}
	return r.inflight.Load() > 0 && now.Sub(time.Unix(0, r.lastDone.Load())) > d
}

func (h *RedisHealth) observe(r *roundTrips, f func() error) error {
	r.inflight.Add(1)
	start := h.now()
	err := f()
	end := h.now()
	r.inflight.Add(-1)
	var ne net.Error
	if err == nil || errors.Is(err, redis.Nil) || !errors.As(err, &ne) {
		// Any reply, even a script error, is Redis answering.
		if end.Sub(start) > h.threshold {
			r.streak.Add(1)
		} else {
			r.streak.Store(0)
		}
		r.lastDone.Store(end.UnixNano())
	}
	return err
}

// DialHook leaves dialling alone.
func (h *RedisHealth) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook times one command.
func (h *RedisHealth) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.observe(&h.cmds, func() error { return next(ctx, cmd) })
	}
}

// ProcessPipelineHook times one pipeline.
func (h *RedisHealth) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.observe(&h.pipes, func() error { return next(ctx, cmds) })
	}
}
