package guard

import (
	"context"
	"sync"
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
// when some round trip to Redis (a command or a pipeline) has been waiting
// for its answer longer than the call timeout: a black hole, a stalled
// failover, added latency or a narrow link all show as that, and a spike
// on a healthy Redis does not (its pipelines come back in milliseconds).
type RedisHealth struct {
	mu       sync.Mutex
	seq      uint64
	inflight map[uint64]time.Time // start of each round trip awaiting its answer
	now      func() time.Time
}

var _ redis.Hook = (*RedisHealth)(nil)

// NewRedisHealth returns a watcher; add it to the client with AddHook.
func NewRedisHealth() *RedisHealth {
	return &RedisHealth{inflight: map[uint64]time.Time{}, now: time.Now}
}

// Slow reports whether a round trip has been awaiting Redis's answer for
// longer than d.
func (h *RedisHealth) Slow(d time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	for _, start := range h.inflight {
		if now.Sub(start) > d {
			return true
		}
	}
	return false
}

func (h *RedisHealth) observe(f func() error) error {
	h.mu.Lock()
	h.seq++
	id := h.seq
	h.inflight[id] = h.now()
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.inflight, id)
		h.mu.Unlock()
	}()
	return f()
}

// DialHook leaves dialling alone.
func (h *RedisHealth) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook times one command.
func (h *RedisHealth) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.observe(func() error { return next(ctx, cmd) })
	}
}

// ProcessPipelineHook times one pipeline.
func (h *RedisHealth) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.observe(func() error { return next(ctx, cmds) })
	}
}
