package lab

import (
	"context"
	"io"
	"log/slog"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/tools/lab/labhttp"
)

// bootLab starts one run's system and a client for its API; the caller
// closes both with the returned func.
func bootLab(ctx context.Context, env *Env, tweak func(*config.Config), swap func(*bootstrap.Parts)) (*System, *labhttp.Client, func(), error) {
	sys, err := env.Start(ctx, tweak, swap)
	if err != nil {
		return nil, nil, nil, err
	}
	c := labhttp.New(sys.URL(), sys.AdminToken, 15*time.Second)
	return sys, c, func() { c.Close(); sys.Close() }, nil
}

// waitUntil polls cond every step until it holds or timeout passes, and
// reports whether it held.
func waitUntil(ctx context.Context, timeout, step time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(step):
		}
	}
}

// labLogger is the env's log for a lab's own naive components: discarded
// unless the operator asked for the systems' logs.
func labLogger(env *Env) *slog.Logger {
	if env.Log != nil {
		return env.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// patientRedis lifts the Redis call deadline for labs that are not about
// it: the embedded Redis runs its Lua in this process, and on a busy
// 2-core machine (or under -race) a reserve can outlast the production
// deadline, so the breaker (lab breaker) would refuse purchases and blur
// the lab's figures. The deadline then only bounds a hang.
func patientRedis(cfg *config.Config) { cfg.RedisCallTimeout = 2 * time.Second }
