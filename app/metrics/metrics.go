// Package metrics owns the Prometheus registry of one seckill instance. Each
// instance has its own registry (not the global one), so two instances can
// run in one test process without colliding.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the instruments the HTTP layer and the pipeline update
// directly. Components that keep their own atomic counters are exported
// through CounterFunc/GaugeFunc registered with Func.
type Metrics struct {
	Registry *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpLatency  *prometheus.HistogramVec
	purchases    *prometheus.CounterVec
	fairness     *prometheus.CounterVec
	WorkerBatch  prometheus.Histogram
}

// New builds a registry with the Go and process collectors and seckill's
// instruments.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seckill_http_requests_total", Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "seckill_http_request_duration_seconds", Help: "HTTP request latency by route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		purchases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seckill_purchases_total", Help: "Purchase attempts by outcome: accepted or the error code returned.",
		}, []string{"outcome"}),
		fairness: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "seckill_fairness_total", Help: "Fair-sale steps (challenge, ticket) by outcome: issued or the error code returned. Purchases refused as blocked, ticket_required or invalid_ticket are in seckill_purchases_total.",
		}, []string{"step", "outcome"}),
		WorkerBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "seckill_worker_batch_size", Help: "Orders per worker batch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
	}
	r.MustRegister(m.httpRequests, m.httpLatency, m.purchases, m.fairness, m.WorkerBatch)
	return m
}

// ObserveHTTP records one finished request.
func (m *Metrics) ObserveHTTP(route, method string, status int, d time.Duration) {
	m.httpRequests.WithLabelValues(route, method, statusText(status)).Inc()
	m.httpLatency.WithLabelValues(route).Observe(d.Seconds())
}

// Purchase records one purchase outcome.
func (m *Metrics) Purchase(outcome string) { m.purchases.WithLabelValues(outcome).Inc() }

// Fairness records one answer of a fair-sale step ("challenge", "ticket").
func (m *Metrics) Fairness(step, outcome string) { m.fairness.WithLabelValues(step, outcome).Inc() }

// CounterFunc registers a counter read from fn at scrape time.
func (m *Metrics) CounterFunc(name, help string, fn func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

// GaugeFunc registers a gauge read from fn at scrape time.
func (m *Metrics) GaugeFunc(name, help string, fn func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// Info registers a gauge that is always 1 and says something in its labels,
// the Prometheus convention for facts such as a build's version.
func (m *Metrics) Info(name, help string, labels map[string]string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	g.Set(1)
	m.Registry.MustRegister(g)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

var statusTexts = func() map[int]string {
	out := make(map[int]string)
	for s := 100; s < 600; s++ {
		out[s] = strconv.Itoa(s)
	}
	return out
}()

// statusText avoids an allocation per request for the status label.
func statusText(s int) string {
	if t, ok := statusTexts[s]; ok {
		return t
	}
	return strconv.Itoa(s)
}
