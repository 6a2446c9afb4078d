package bootstrap

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterStateMaxAge bounds how long a cluster client routes by a slot map
// no failed command has questioned. go-redis refreshes the map on MOVED and
// ASK, and otherwise only every 60 s by default; 5 s costs one CLUSTER
// SLOTS per client per 5 s and bounds a stale map for clients whose own
// commands never hit the dead node (the pub/sub bus on a quiet instance).
const clusterStateMaxAge = 5 * time.Second

// NewRedisClient returns the client o describes, as redis.NewUniversalClient
// does (the instances and `seckill reconcile` build theirs with it), except
// that on Redis Cluster the client reloads its slot map as soon
// as a connection to a node cannot be made or a command fails on the
// network, on a deadline or with CLUSTERDOWN, and at least every
// clusterStateMaxAge.
//
// Why: when a master dies and its replica is promoted, nothing answers
// MOVED. The dead node refuses connections, go-redis retries it, and its map
// keeps naming it as the owner of its slots until the next periodic reload:
// in the redis-cluster-failover chaos scenario that stopped the purchases of
// every buyer whose stock bucket lived there for 57 s after the replica had
// taken over (docs/RELIABILITY.md).
//
// roundTrip hooks are added where they see each round trip to a Redis
// server and nothing else: on a cluster, to every node's client, so that
// go-redis's own redirects and retry pauses (up to 170 ms of sleeping
// while it retries a TRYAGAIN) are not taken for a server that is slow to
// answer; otherwise to the client itself.
func NewRedisClient(o *redis.UniversalOptions, roundTrip ...redis.Hook) redis.UniversalClient {
	if o.MasterName != "" || (len(o.Addrs) <= 1 && !o.IsClusterMode) {
		c := redis.NewUniversalClient(o)
		for _, h := range roundTrip {
			c.AddHook(h)
		}
		return c
	}
	co := o.Cluster()
	co.ClusterStateReloadInterval = clusterStateMaxAge
	// Node clients are made (and may start dialling their idle
	// connections) while the cluster client is being built, hence the
	// atomic pointer, nil until it exists.
	r := &slotRefresher{}
	co.NewClient = func(opt *redis.Options) *redis.Client {
		n := redis.NewClient(opt)
		n.AddHook(r)
		for _, h := range roundTrip {
			// A hook that tells nodes apart (breaker.RedisHealth) gets this
			// node's address, so one hung master makes only its own calls
			// slow.
			if pn, ok := h.(interface{ ForNode(addr string) redis.Hook }); ok {
				h = pn.ForNode(opt.Addr)
			}
			n.AddHook(h)
		}
		return n
	}
	c := redis.NewClusterClient(co)
	r.c.Store(c)
	c.AddHook(r)
	return c
}

// slotRefresher asks its cluster client for a fresh slot map after a dial
// to any node failed (hooked into every node client: the first sign of a
// dead master, long before the command's own retries give up) and after
// any command that failed in a way a topology change explains (hooked into
// the cluster client). The reload is lazy and coalesced by go-redis (one
// at a time, 200 ms apart at most), so a burst of failures costs a few
// CLUSTER SLOTS, not one per failure.
type slotRefresher struct {
	c atomic.Pointer[redis.ClusterClient]
}

// reload asks for a fresh slot map once the cluster client exists.
func (r *slotRefresher) reload(ctx context.Context) {
	if c := r.c.Load(); c != nil {
		c.ReloadState(ctx)
	}
}

// DialHook reloads the slot map when a connection to a node cannot be made.
func (r *slotRefresher) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil && !errors.Is(err, context.Canceled) {
			r.reload(ctx)
		}
		return conn, err
	}
}

// ProcessHook reloads the slot map when the command failed on topology.
func (r *slotRefresher) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if staleTopology(err) {
			r.reload(ctx)
		}
		return err
	}
}

// ProcessPipelineHook reloads the slot map when any command of the pipeline
// failed on topology; a pipeline's commands fail one by one, per node.
func (r *slotRefresher) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if staleTopology(cmd.Err()) {
				r.reload(ctx)
				break
			}
		}
		return err
	}
}

// staleTopology reports whether err may mean the slot map is out of date:
// a connection that could not be made or broke (a dead node), a node that
// did not answer in time (a dead or unreachable one: go-redis returns the
// deadline, not the refused dial, when the deadline ends its retries), or a
// node saying the cluster is down (a failover under way). Replies such as
// a script's own errors, redis.Nil, a caller's cancelled context and a
// circuit breaker's refusal say nothing about the topology.
func staleTopology(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return strings.HasPrefix(err.Error(), "CLUSTERDOWN")
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}
