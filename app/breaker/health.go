package breaker

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
//
// On a Redis Cluster each node's round trips are also told apart (ForNode),
// so that a master that hangs makes only its own calls slow (Node).
type RedisHealth struct {
	mu       sync.Mutex
	seq      uint64
	inflight map[uint64]roundTrip // each round trip awaiting its answer
	now      func() time.Time
}

// roundTrip is one round trip in flight: when it left, and to which node
// ("" when the hook does not know).
type roundTrip struct {
	start time.Time
	node  string
}

var _ redis.Hook = (*RedisHealth)(nil)

// NewRedisHealth returns a watcher; add it to the client with AddHook.
func NewRedisHealth() *RedisHealth {
	return &RedisHealth{inflight: map[uint64]roundTrip{}, now: time.Now}
}

// Slow reports whether a round trip has been awaiting Redis's answer for
// longer than d.
func (h *RedisHealth) Slow(d time.Duration) bool { return h.slow("", d) }

// slow is Slow for the round trips to node, or to any node for "".
func (h *RedisHealth) slow(node string, d time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	for _, rt := range h.inflight {
		if (node == "" || rt.node == node) && now.Sub(rt.start) > d {
			return true
		}
	}
	return false
}

// Node is the health of one node's round trips only: its Slow reports
// whether a round trip to node has been awaiting its answer longer than d.
// Only round trips seen through ForNode(node) count.
func (h *RedisHealth) Node(node string) interface{ Slow(d time.Duration) bool } {
	return nodeHealth{h: h, node: node}
}

type nodeHealth struct {
	h    *RedisHealth
	node string
}

func (n nodeHealth) Slow(d time.Duration) bool { return n.h.slow(n.node, d) }

// ForNode returns the hook to add to the client of the node at addr (on a
// Redis Cluster, every node's client); its round trips then count for
// Node(addr) as well as for Slow.
func (h *RedisHealth) ForNode(addr string) redis.Hook { return nodeHook{h: h, node: addr} }

type nodeHook struct {
	h    *RedisHealth
	node string
}

func (n nodeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (n nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return n.h.observe(n.node, func() error { return next(ctx, cmd) })
	}
}

func (n nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return n.h.observe(n.node, func() error { return next(ctx, cmds) })
	}
}

func (h *RedisHealth) observe(node string, f func() error) error {
	h.mu.Lock()
	h.seq++
	id := h.seq
	h.inflight[id] = roundTrip{start: h.now(), node: node}
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
		return h.observe("", func() error { return next(ctx, cmd) })
	}
}

// ProcessPipelineHook times one pipeline.
func (h *RedisHealth) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.observe("", func() error { return next(ctx, cmds) })
	}
}
