package breaker

import (
	"context"
	"errors"
	"net"

	"github.com/redis/go-redis/v9"
)

// RedisHook guards a go-redis client: every command and pipeline passes the
// breaker and gets the call timeout. It is for the Redis item cache, whose
// port to Redis is the client itself: rediscache already sends a read
// that failed to the next reader and skips its write, so a refused command
// degrades to a database read. The client must have ContextTimeoutEnabled,
// or go-redis waits for its own read timeout instead of the deadline.
type RedisHook struct{ b *Breaker }

var _ redis.Hook = RedisHook{}

// NewRedisHook returns a hook that guards a client with b.
func NewRedisHook(b *Breaker) RedisHook { return RedisHook{b: b} }

// DialHook leaves dialling alone; the command that needed the connection
// carries the deadline.
func (h RedisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

// ProcessHook runs one command under the breaker and the deadline. A nil
// reply (a cache miss) is an answer.
func (h RedisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		var orig error
		_, err := do(h.b, ctx, func(ctx context.Context) (struct{}, error) {
			orig = next(ctx, cmd)
			return struct{}{}, redisErr(orig)
		})
		if errors.Is(err, ErrOpen) {
			cmd.SetErr(err)
			return err
		}
		return orig
	}
}

// ProcessPipelineHook runs one pipeline under the breaker and the deadline.
func (h RedisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var orig error
		_, err := do(h.b, ctx, func(ctx context.Context) (struct{}, error) {
			orig = next(ctx, cmds)
			return struct{}{}, redisErr(orig)
		})
		if errors.Is(err, ErrOpen) {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		return orig
	}
}

// redisErr drops redis.Nil, which is a reply, not a failure.
func redisErr(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}
