// Package bootstrap wires seckill together, in two plain steps: Build opens
// the backends and builds the adapters (Parts), Start builds the use cases
// on them and runs the instance (Main). It is the only package besides main
// that builds concrete adapters; the end-to-end tests, the labs and the
// bench call the very same two functions, swapping a port of Parts between
// them, so what they test is what runs.
package bootstrap

import (
	"context"
	"log/slog"

	"seckill/app/broadcast"
	"seckill/app/config"
	"seckill/app/lifecycle"
	"seckill/domain/sale"
	"seckill/infra/redisbus"
	"seckill/infra/rediscache"
	"seckill/infra/redisdelay"
	"seckill/infra/redisline"
	"seckill/infra/redisonce"
	"seckill/infra/redisrate"
	"seckill/infra/redisstock"
)

// startupConfig is the config as the start-up line logs it: Config.LogValue,
// with a secret this instance generated shown as "generated" rather than as
// the empty setting it was generated for. The value itself is never logged.
type startupConfig struct {
	cfg                                       config.Config
	generatedAdminToken, generatedTokenSecret bool
}

// LogValue implements slog.LogValuer.
func (s startupConfig) LogValue() slog.Value {
	attrs := s.cfg.LogValue().Group()
	for i, a := range attrs {
		if (a.Key == "admin_token" && s.generatedAdminToken) || (a.Key == "token_secret" && s.generatedTokenSecret) {
			attrs[i] = slog.String(a.Key, "generated")
		}
	}
	return slog.GroupValue(attrs...)
}

// EventsChannel is the Redis pub/sub channel the instances with this key
// prefix broadcast on (invalidations, sold-out and restocked flags, the
// blocklist); `seckill reconcile --repair` announces its repairs there too.
func EventsChannel(prefix string) string { return prefix + ":events" }

// delayKey and seedLockKey name the Redis keys the wiring itself chooses;
// RedisKeyPatterns lists them with the adapters'.
func delayKey(prefix string) string    { return prefix + ":{delayed}" }
func seedLockKey(prefix string) string { return prefix + ":seed-lock" }

// RedisKeyPatterns lists every Redis key and channel an instance with this
// prefix uses, for one item and one user, built by the same functions the
// adapters and the wiring use. The docs test checks the documented keys
// against it.
func RedisKeyPatterns(prefix string, item sale.ItemID, user sale.UserID) []string {
	var out []string
	out = append(out, redisstock.KeyPatterns(prefix, item)...)
	out = append(out, rediscache.KeyPatterns(prefix, item)...)
	out = append(out, redisdelay.KeyPatterns(delayKey(prefix))...)
	out = append(out, redisrate.KeyPatterns(prefix, user)...)
	out = append(out, redisonce.KeyPatterns(prefix, "challenge:<challenge id>")...)
	out = append(out, redisline.KeyPatterns(prefix, item)...)
	return append(out, EventsChannel(prefix), seedLockKey(prefix))
}

// returnLedger gives the lifecycle the ledger's return step in its own
// terms.
type returnLedger struct{ s *redisstock.Store }

func (l returnLedger) Return(ctx context.Context, ids ...sale.OrderID) ([]lifecycle.Return, error) {
	rs, err := l.s.Return(ctx, ids...)
	out := make([]lifecycle.Return, 0, len(rs))
	for _, r := range rs {
		out = append(out, lifecycle.Return{Item: r.Item, Units: r.Units, Gen: r.Gen})
	}
	return out, err
}

// busAdapter lets the notifier publish on the Redis bus.
type busAdapter struct{ b *redisbus.Bus }

func (a busAdapter) Publish(ctx context.Context, e broadcast.Event) error {
	return a.b.Publish(ctx, redisbus.Event{Kind: redisbus.Kind(e.Kind), Item: e.Item, Gen: e.Gen, User: e.User})
}
