package bootstrap

import (
	"seckill/app/config"
	"seckill/app/guard"
	"seckill/infra/redisstock"
)

// guardBreakers is one circuit breaker per backend role. The Redis stock
// ledger and the Redis item cache are separate roles: a ledger that is
// refused must not also cost item pages their cache, and the cache's
// misses are cheap to send to the database.
type guardBreakers struct {
	ledger, cache, db, kafka *guard.Breaker
	// ledgerNodes, on a Redis Cluster only, is one breaker per master for
	// the ledger's purchases and order lookups (guard.NewClusterLedger).
	ledgerNodes *guard.NodeBreakers
}

// newBreakers builds the breakers with the thresholds documented in
// docs/CONFIG.md ("Timeouts and circuit breakers"); the guard's defaults
// are those thresholds.
func newBreakers(cfg config.Config, ledgerHealth *guard.RedisHealth) guardBreakers {
	var nodes *guard.NodeBreakers
	if cfg.RedisClusterMode() {
		nodes = guard.NewNodeBreakers("redis-ledger-node", guard.Settings{CallTimeout: cfg.RedisCallTimeout, OpenFor: cfg.BreakerOpenFor}, ledgerHealth)
	}
	return guardBreakers{
		ledgerNodes: nodes,
		ledger:      guard.NewBreaker("redis-ledger", guard.Settings{CallTimeout: cfg.RedisCallTimeout, OpenFor: cfg.BreakerOpenFor, Health: ledgerHealth}),
		cache:       guard.NewBreaker("redis-cache", guard.Settings{CallTimeout: cfg.RedisCallTimeout, OpenFor: cfg.BreakerOpenFor}),
		db:          guard.NewBreaker("database", guard.Settings{CallTimeout: cfg.MySQLCallTimeout, OpenFor: cfg.BreakerOpenFor}),
		kafka:       guard.NewBreaker("kafka-produce", guard.Settings{CallTimeout: cfg.KafkaCallTimeout, OpenFor: cfg.BreakerOpenFor}),
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

// ledgerOptions are the stock ledger's options; on a Redis Cluster a
// buyer's refill skips the buckets on a master whose breaker is open.
func ledgerOptions(cfg config.Config, g guardBreakers) redisstock.Options {
	o := redisstock.Options{Prefix: cfg.RedisPrefix, FirstLook: cfg.RelayAfter, RepublishAfter: cfg.RepublishAfter}
	if g.ledgerNodes != nil {
		o.NodeDown = g.ledgerNodes.Down
	}
	return o
}

// ledgerGuard puts the ledger behind its breakers: one for a single
// Redis; on a Redis Cluster one per master for purchases and order
// lookups, and the ledger breaker for the calls that span buckets.
func ledgerGuard(l *redisstock.Store, g guardBreakers) *guard.Ledger {
	if g.ledgerNodes != nil {
		return guard.NewClusterLedger(l, g.ledger, g.ledgerNodes, l)
	}
	return guard.NewLedger(l, g.ledger)
}
