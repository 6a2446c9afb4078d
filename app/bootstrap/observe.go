package bootstrap

import (
	"github.com/prometheus/client_golang/prometheus"

	"seckill/app/breaker"
	"seckill/app/buildinfo"
)

// registerMetrics exports the counters that components keep as atomics.
func (m *Main) registerMetrics() {
	r := m.metrics
	bi := buildinfo.Read()
	r.Info("seckill_build_info", "The running build: version, commit and Go toolchain (always 1).",
		map[string]string{"version": bi.Version, "commit": bi.Commit, "go_version": bi.GoVersion})
	r.GaugeFunc("seckill_blocklist_size", "Users on this instance's copy of the fair-sale blocklist.", func() float64 { return float64(m.Fair.BlockedCount()) })
	// One series per backend role, told apart by the backend label; on a
	// Redis Cluster the ledger's per-master breakers add one set, summed.
	var views []breakerView
	for _, b := range m.breakers.all() {
		views = append(views, b)
	}
	if m.breakers.ledgerNodes != nil {
		views = append(views, m.breakers.ledgerNodes)
	}
	for _, b := range views {
		m.registerBreaker(b)
	}
	m.registerEdgeMetrics()
	m.registerFlowMetrics()
}

// registerBreaker exports one backend role's breaker.
func (m *Main) registerBreaker(b breakerView) {
	labels := prometheus.Labels{"backend": b.Name()}
	m.metrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "seckill_breaker_state", ConstLabels: labels,
			Help: "Circuit breaker state per backend role: 0 closed, 1 half-open, 2 open."}, b.StateValue),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "seckill_breaker_rejected_total", ConstLabels: labels,
			Help: "Calls a circuit breaker refused without reaching its backend."}, breakerStat(b, func(s breaker.Stats) uint64 { return s.Rejected })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "seckill_breaker_failures_total", ConstLabels: labels,
			Help: "Backend calls that failed or overran their call timeout (domain answers such as sold out are not failures)."}, breakerStat(b, func(s breaker.Stats) uint64 { return s.Failures })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "seckill_breaker_opened_total", ConstLabels: labels,
			Help: "Times a circuit breaker opened."}, breakerStat(b, func(s breaker.Stats) uint64 { return s.Opened })),
	)
}

// registerEdgeMetrics exports what the API answers before the ledger: the
// shield, the user limiter, the caches and the instance bus.
func (m *Main) registerEdgeMetrics() {
	r := m.metrics
	r.CounterFunc("seckill_shield_rejected_item_total", "Purchases refused by the per-item (hot key) limiter.", func() float64 { return float64(m.shield.Stats().RejectedItem) })
	r.CounterFunc("seckill_shield_rejected_user_total", "Purchases refused by the per-user limiter.", func() float64 { return float64(m.shield.Stats().RejectedUser) })
	r.CounterFunc("seckill_shield_rejected_inflight_total", "Purchases refused because the in-flight bound was reached.", func() float64 { return float64(m.shield.Stats().RejectedInFlight) })
	r.CounterFunc("seckill_shield_rejected_soldout_total", "Purchases answered sold out by the local flag, without Redis.", func() float64 { return float64(m.shield.Stats().RejectedSoldOut) })
	r.CounterFunc("seckill_ledger_reserve_calls_total", "Purchases that reached the Redis stock script (all others were answered locally).", func() float64 { return float64(m.Purchase.Stats().LedgerCalls) })
	r.CounterFunc("seckill_user_limiter_redis_refused_total", "Purchases refused by the shared (Redis GCRA) per-user limiter.", func() float64 {
		if m.userRate == nil {
			return 0
		}
		return float64(m.userRate.Stats().Refused)
	})
	r.GaugeFunc("seckill_shield_inflight", "Purchases in progress.", func() float64 { return float64(m.shield.Stats().InFlight) })
	r.GaugeFunc("seckill_shield_soldout_flags", "Items this instance currently believes sold out.", func() float64 { return float64(m.shield.Stats().SoldOutFlags) })
	r.GaugeFunc("seckill_shield_tracked_users", "Per-user buckets held in memory.", func() float64 { return float64(m.shield.Stats().TrackedUsers) })

	r.CounterFunc("seckill_cache_local_hits_total", "Item reads served by the local freecache.", func() float64 { return float64(m.local.Stats().Hits) })
	r.CounterFunc("seckill_cache_local_misses_total", "Item reads the local freecache passed on.", func() float64 { return float64(m.local.Stats().Misses) })
	r.CounterFunc("seckill_cache_redis_hits_total", "Item reads served by the Redis item cache.", func() float64 { return float64(m.shared.Stats().Hits) })
	r.CounterFunc("seckill_cache_redis_misses_total", "Item reads the Redis item cache passed on.", func() float64 { return float64(m.shared.Stats().Misses) })
	r.CounterFunc("seckill_cache_db_loads_total", "Item reads that reached the database.", func() float64 { return float64(m.shared.Stats().Loads) })
	r.CounterFunc("seckill_invalidations_sent_total", "Broadcasts sent on the instance bus.", func() float64 { return float64(m.bus.Stats().Sent) })
	r.CounterFunc("seckill_invalidations_received_total", "Broadcasts received from the instance bus.", func() float64 { return float64(m.bus.Stats().Received) })
}

// registerFlowMetrics exports the order's way after the ledger: Kafka, the
// outbox, the reconciler, the lifecycle and the worker.
func (m *Main) registerFlowMetrics() {
	r := m.metrics
	r.CounterFunc("seckill_kafka_published_total", "Orders acknowledged by Kafka.", func() float64 { return float64(m.kafka.Published()) })
	r.CounterFunc("seckill_kafka_produce_errors_total", "Orders whose produce call failed (they stay in the outbox).", func() float64 { return float64(m.kafka.Failed()) })
	r.CounterFunc("seckill_outbox_relayed_total", "Orders re-published by the outbox relay.", func() float64 { return float64(m.relay.Stats().Relayed) })
	r.CounterFunc("seckill_outbox_expired_total", "Orders the relay recorded as failed after --relay-give-up; their units were returned.", func() float64 { return float64(m.relay.Stats().Expired) })
	r.CounterFunc("seckill_outbox_settled_total", "Orders past --relay-give-up that the database had confirmed; the relay settled them in Redis.", func() float64 { return float64(m.relay.Stats().Settled) })
	r.CounterFunc("seckill_reconcile_checks_total", "Comparisons of an item's Redis ledger with the database.", func() float64 { return float64(m.recon.Stats().Checks) })
	r.CounterFunc("seckill_reconcile_deferred_total", "Periodic checks left for a later pass because the worker was deciding the item's pending orders.", func() float64 { return float64(m.recon.Stats().Deferred) })
	r.CounterFunc("seckill_reconcile_drifts_total", "Comparisons that found the ledger and the database disagreeing.", func() float64 { return float64(m.recon.Stats().Drifts) })
	r.CounterFunc("seckill_reconcile_repairs_total", "Repairs of an item's ledger from the database.", func() float64 { return float64(m.recon.Stats().Repairs) })
	r.CounterFunc("seckill_ledger_rebuilds_total", "Sales rebuilt in Redis after the ledger lost them.", func() float64 { return float64(m.recon.Stats().Rebuilds) })
	r.GaugeFunc("seckill_ledger_drift_units", "Units by which the latest unrepaired comparisons found the ledger off.", func() float64 { return float64(m.recon.DriftUnits()) })
	r.CounterFunc("seckill_orders_paid_total", "Orders this instance recorded as paid.", func() float64 { return float64(m.Lifecycle.Stats().Paid) })
	r.CounterFunc("seckill_orders_cancelled_total", "Orders this instance recorded as cancelled by their buyer.", func() float64 { return float64(m.Lifecycle.Stats().Cancelled) })
	r.CounterFunc("seckill_orders_expired_total", "Orders this instance expired after their payment window passed.", func() float64 { return float64(m.Lifecycle.Stats().Expired) })
	r.CounterFunc("seckill_ledger_returned_units_total", "Units of cancelled or expired orders this instance put back in Redis (by the return step or the sweep).", func() float64 { return float64(m.Lifecycle.Stats().Returned) })
	r.CounterFunc("seckill_outbox_deferred_total", "Accepted orders left to the relay because the dispatcher buffer was full.", func() float64 { return float64(m.dispatch.Stats().Deferred) })
	r.CounterFunc("seckill_worker_confirmed_total", "Orders inserted as confirmed.", func() float64 { return m.workerStat(func(c, _, _ uint64) uint64 { return c }) })
	r.CounterFunc("seckill_worker_duplicates_total", "Redelivered orders that were already confirmed.", func() float64 { return m.workerStat(func(_, d, _ uint64) uint64 { return d }) })
	r.CounterFunc("seckill_worker_dead_lettered_total", "Orders sent to the dead-letter topic.", func() float64 { return m.workerStat(func(_, _, x uint64) uint64 { return x }) })
	r.CounterFunc("seckill_worker_released_total", "Failed orders whose units the worker gave back in Redis.", func() float64 {
		if m.worker == nil {
			return 0
		}
		return float64(m.worker.Stats().Released)
	})
	r.GaugeFunc("seckill_worker_lag", "Messages in the orders topic not yet consumed by this worker.", func() float64 {
		if m.consumer == nil {
			return 0
		}
		return float64(m.consumer.Lag())
	})
}

func (m *Main) workerStat(pick func(confirmed, dup, dead uint64) uint64) float64 {
	if m.worker == nil {
		return 0
	}
	s := m.worker.Stats()
	return float64(pick(s.Confirmed, s.Duplicates, s.DeadLettered))
}

// breakerView is what the metrics read of a breaker or of a set of them.
type breakerView interface {
	Name() string
	StateValue() float64
	Stats() breaker.Stats
}

func breakerStat(b breakerView, pick func(breaker.Stats) uint64) func() float64 {
	return func() float64 { return float64(pick(b.Stats())) }
}
