package bootstrap

import (
	"seckill/app/waitroom"
	"seckill/domain/sale"
)

// buildQueue builds the waiting rooms: lines in Redis beside the stock
// ledger (same prefix, same slot per item), admissions signed by the
// fair-sale service.
func (m *Main) buildQueue() {
	cfg := m.Config
	m.Queue = waitroom.New(waitroom.Deps{
		Items: m.local, Line: m.line, Fair: m.Fair,
	}, waitroom.Options{RefreshEvery: cfg.QueueRefresh, AdmissionTTL: cfg.QueueAdmissionTTL})
	m.registerQueueMetrics()
}

// registerQueueMetrics publishes this instance's copies of the lines as
// gauges, which the dashboard reads (app/dashboard): buyers waiting, and
// admissions given and used (each line's totals, kept in Redis, so every
// instance that serves a line reports the same figures: take the max
// across instances, not the sum).
func (m *Main) registerQueueMetrics() {
	sum := func(f func(sale.LineState) int64) func() float64 {
		return func() float64 {
			var n int64
			for _, st := range m.Queue.Lines() {
				n += f(st)
			}
			return float64(n)
		}
	}
	r := m.metrics
	r.GaugeFunc("seckill_queue_waiting", "Buyers waiting in the waiting rooms this instance serves.", sum(func(s sale.LineState) int64 { return s.Waiting() }))
	r.GaugeFunc("seckill_queue_admissions", "Admissions given by the waiting rooms this instance serves, since each line began.", sum(func(s sale.LineState) int64 { return s.Admitted }))
	r.GaugeFunc("seckill_queue_admissions_used", "Admissions used by a purchase, since each line began.", sum(func(s sale.LineState) int64 { return s.Used }))
}
