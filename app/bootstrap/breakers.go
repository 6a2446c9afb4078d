package bootstrap

import (
	"seckill/app/config"
	"seckill/app/guard"
)

// guardBreakers is one circuit breaker per backend role. The Redis stock
// ledger and the Redis item cache are separate roles: a ledger that is
// refused must not also cost item pages their cache, and the cache's
// misses are cheap to send to the database.
type guardBreakers struct {
	ledger, cache, db, kafka *guard.Breaker
}

// newBreakers builds the breakers with the thresholds documented in
// docs/CONFIG.md ("Timeouts and circuit breakers"); the guard's defaults
// are those thresholds.
func newBreakers(cfg config.Config, ledgerHealth *guard.RedisHealth) guardBreakers {
	return guardBreakers{
		ledger: guard.NewBreaker("redis-ledger", guard.Settings{CallTimeout: cfg.RedisCallTimeout, OpenFor: cfg.BreakerOpenFor, Health: ledgerHealth}),
		cache:  guard.NewBreaker("redis-cache", guard.Settings{CallTimeout: cfg.RedisCallTimeout, OpenFor: cfg.BreakerOpenFor}),
		db:     guard.NewBreaker("database", guard.Settings{CallTimeout: cfg.MySQLCallTimeout, OpenFor: cfg.BreakerOpenFor}),
		kafka:  guard.NewBreaker("kafka-produce", guard.Settings{CallTimeout: cfg.KafkaCallTimeout, OpenFor: cfg.BreakerOpenFor}),
	}
}

// all lists the breakers in a fixed order, skipping any not built (Start
// failed before the backends opened).
func (g guardBreakers) all() []*guard.Breaker {
	var out []*guard.Breaker
	for _, b := range []*guard.Breaker{g.ledger, g.cache, g.db, g.kafka} {
		if b != nil {
			out = append(out, b)
		}
	}
	return out
}
