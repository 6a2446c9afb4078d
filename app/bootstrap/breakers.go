package bootstrap

import (
	"seckill/app/breaker"
	"seckill/app/config"
	"seckill/infra/redisstock"
)

// backendBreakers is one circuit breaker per backend role. The Redis stock
// ledger and the Redis item cache are separate roles: a ledger that is
// refused must not also cost item pages their cache, and the cache's
// misses are cheap to send to the database.
type backendBreakers struct {
	ledger, cache, db, kafka *breaker.Breaker
	// ledgerNodes, on a Redis Cluster only, is one breaker per master for
	// the ledger's purchases and order lookups (breaker.NewClusterLedger).
	ledgerNodes *breaker.NodeBreakers
}

// newBreakers builds the breakers with the thresholds documented in
// docs/CONFIG.md ("Timeouts and circuit breakers"); the guard's defaults
// are those thresholds.
func newBreakers(cfg config.Config, ledgerHealth *breaker.RedisHealth) backendBreakers {
	var nodes *breaker.NodeBreakers
	if cfg.RedisClusterMode() {
		nodes = breaker.NewNodeBreakers("redis-ledger-node", breaker.Settings{CallTimeout: cfg.RedisCallTimeout, OpenFor: cfg.BreakerOpenFor}, ledgerHealth)
	}
	return backendBreakers{
		ledgerNodes: nodes,
		ledger:      breaker.NewBreaker("redis-ledger", breaker.Settings{CallTimeout: cfg.RedisCallTimeout, OpenFor: cfg.BreakerOpenFor, Health: ledgerHealth}),
		cache:       breaker.NewBreaker("redis-cache", breaker.Settings{CallTimeout: cfg.RedisCallTimeout, OpenFor: cfg.BreakerOpenFor}),
		db:          breaker.NewBreaker("database", breaker.Settings{CallTimeout: cfg.MySQLCallTimeout, OpenFor: cfg.BreakerOpenFor}),
		kafka:       breaker.NewBreaker("kafka-produce", breaker.Settings{CallTimeout: cfg.KafkaCallTimeout, OpenFor: cfg.BreakerOpenFor}),
	}
}

// all lists the breakers in a fixed order, skipping any not built (Start
// failed before the backends opened).
func (g backendBreakers) all() []*breaker.Breaker {
	var out []*breaker.Breaker
	for _, b := range []*breaker.Breaker{g.ledger, g.cache, g.db, g.kafka} {
		if b != nil {
			out = append(out, b)
		}
	}
	return out
}

// ledgerOptions are the stock ledger's options; on a Redis Cluster a
// buyer's refill skips the buckets on a master whose breaker is open.
func ledgerOptions(cfg config.Config, g backendBreakers) redisstock.Options {
	o := redisstock.Options{Prefix: cfg.RedisPrefix, FirstLook: cfg.RelayAfter, RepublishAfter: cfg.RepublishAfter}
	if g.ledgerNodes != nil {
		o.NodeDown = g.ledgerNodes.Down
	}
	return o
}

// ledgerGuard puts the ledger behind its breakers: one for a single
// Redis; on a Redis Cluster one per master for purchases and order
// lookups, and the ledger breaker for the calls that span buckets.
func ledgerGuard(l *redisstock.Store, g backendBreakers) *breaker.Ledger {
	if g.ledgerNodes != nil {
		return breaker.NewClusterLedger(l, g.ledger, g.ledgerNodes, l)
	}
	return breaker.NewLedger(l, g.ledger)
}
