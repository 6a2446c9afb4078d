// Package dashboard turns one instance's Prometheus registry and its stock
// accounts into the frames of the live dashboard: per-second rates and
// latency quantiles computed between two samples of the counters the
// instance already keeps. It adds no counters of its own, so the page and
// /metrics can never disagree.
package dashboard

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The metric names and the label values the dashboard reads. They are the
// ones app/metrics and app/bootstrap register.
const (
	purchasesMetric = "seckill_purchases_total"
	fairnessMetric  = "seckill_fairness_total"
	latencyMetric   = "seckill_http_request_duration_seconds"
	lagMetric       = "seckill_worker_lag"
	// PurchaseRoute is the route template whose latency the dashboard shows.
	PurchaseRoute = "/api/v1/items/:id/purchase"
)

// Histogram is one cumulative Prometheus histogram: Counts[i] observations
// were at most Bounds[i]; Count is every observation, +Inf included.
type Histogram struct {
	Bounds []float64
	Counts []float64
	Count  float64
}

// Sample is what the dashboard reads from the registry at one moment.
type Sample struct {
	At        time.Time
	Purchases map[string]float64 // seckill_purchases_total by outcome
	// FairRefused is every refusal of the fair-sale steps (challenge,
	// ticket) in seckill_fairness_total: every outcome but "issued".
	FairRefused float64
	Latency     Histogram // the purchase route's latency, in seconds
	Lag         float64   // seckill_worker_lag
	// Queue is the waiting rooms' gauges (queueMetrics), summed over items.
	Queue QueueSample
}

// QueueSample is what the waiting rooms' gauges read at one moment: buyers
// waiting, and admissions given and used since each line began.
type QueueSample struct {
	Waiting, Admitted, Used float64
}

// The waiting rooms' gauges, which app/bootstrap registers from
// app/waitroom's copies of the lines.
var queueMetrics = map[string]func(*QueueSample) *float64{
	"seckill_queue_waiting":         func(q *QueueSample) *float64 { return &q.Waiting },
	"seckill_queue_admissions":      func(q *QueueSample) *float64 { return &q.Admitted },
	"seckill_queue_admissions_used": func(q *QueueSample) *float64 { return &q.Used },
}

// QueueFrame is the waiting rooms in one dashboard update: buyers waiting,
// admissions per second, and admissions used so far.
type QueueFrame struct {
	Waiting     float64 `json:"waiting"`
	AdmittedPer float64 `json:"admitted_per_s"`
	Used        float64 `json:"used"`
}

// QueueBetween is the waiting rooms' frame for the interval prev to cur.
func QueueBetween(prev, cur Sample) QueueFrame {
	return QueueFrame{Waiting: cur.Queue.Waiting, AdmittedPer: Rate(prev.Queue.Admitted, cur.Queue.Admitted, cur.At.Sub(prev.At)), Used: cur.Queue.Used}
}

// Read extracts a Sample from gathered metric families. Families or series
// it does not know are ignored; absent ones read as zero, as a counter that
// has not counted yet would.
func Read(families []*dto.MetricFamily, at time.Time) Sample {
	s := Sample{At: at, Purchases: map[string]float64{}}
	for _, f := range families {
		switch f.GetName() {
		case purchasesMetric:
			for _, m := range f.GetMetric() {
				s.Purchases[label(m, "outcome")] += m.GetCounter().GetValue()
			}
		case fairnessMetric:
			for _, m := range f.GetMetric() {
				if label(m, "outcome") != "issued" {
					s.FairRefused += m.GetCounter().GetValue()
				}
			}
		case latencyMetric:
			for _, m := range f.GetMetric() {
				if label(m, "route") != PurchaseRoute || m.GetHistogram() == nil {
					continue
				}
				h := m.GetHistogram()
				s.Latency.Count = float64(h.GetSampleCount())
				for _, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), +1) {
						continue
					}
					s.Latency.Bounds = append(s.Latency.Bounds, b.GetUpperBound())
					s.Latency.Counts = append(s.Latency.Counts, float64(b.GetCumulativeCount()))
				}
			}
		case lagMetric:
			for _, m := range f.GetMetric() {
				s.Lag = m.GetGauge().GetValue()
			}
		}
		if field, ok := queueMetrics[f.GetName()]; ok {
			for _, m := range f.GetMetric() {
				*field(&s.Queue) += m.GetGauge().GetValue()
			}
		}
	}
	return s
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// increase is how much a counter grew from prev to cur. A counter that went
// down was reset (a restarted process), so, as Prometheus does, everything
// it counts now is new.
func increase(prev, cur float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// Rate is the per-second increase of a counter between two readings dt
// apart; 0 when dt is not positive.
func Rate(prev, cur float64, dt time.Duration) float64 {
	if dt <= 0 {
		return 0
	}
	return increase(prev, cur) / dt.Seconds()
}

// Quantile estimates the q-quantile (0 < q < 1) of the observations made
// between prev and cur, the way Prometheus's histogram_quantile does: it
// finds the bucket holding the rank and interpolates linearly inside it,
// the first bucket starting at 0. A rank beyond the last finite bound
// answers that bound. ok is false when nothing was observed in between or
// the two histograms do not have the same buckets.
func Quantile(q float64, prev, cur Histogram) (v float64, ok bool) {
	if len(prev.Bounds) == 0 && prev.Count == 0 {
		// Nothing observed before: the whole of cur is new.
		prev = Histogram{Bounds: cur.Bounds, Counts: make([]float64, len(cur.Counts))}
	}
	if len(cur.Bounds) == 0 || len(prev.Bounds) != len(cur.Bounds) || len(cur.Counts) != len(cur.Bounds) || len(prev.Counts) != len(prev.Bounds) {
		return 0, false
	}
	for i := range cur.Bounds {
		if prev.Bounds[i] != cur.Bounds[i] {
			return 0, false
		}
	}
	reset := cur.Count < prev.Count
	delta := func(p, c float64) float64 {
		if reset {
			return c
		}
		return c - p
	}
	total := delta(prev.Count, cur.Count)
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, upper := range cur.Bounds {
		n := delta(prev.Counts[i], cur.Counts[i])
		if n >= rank {
			inBucket := n - below
			if inBucket <= 0 {
				return upper, true
			}
			return lower + (upper-lower)*(rank-below)/inBucket, true
		}
		lower, below = upper, n
	}
	return cur.Bounds[len(cur.Bounds)-1], true
}

// Rates are purchases per second by outcome. The four named ones are the
// answers a spike produces (202, 409 sold_out, 429, 503); Refused is the
// fair-sale refusals (docs/FAIRNESS.md): purchases answered blocked,
// ticket_required or invalid_ticket, plus refused challenge and ticket
// requests; Other is every other outcome (already_purchased, not_started,
// ...).
type Rates struct {
	Accepted    float64 `json:"accepted"`
	SoldOut     float64 `json:"sold_out"`
	RateLimited float64 `json:"rate_limited"`
	Unavailable float64 `json:"unavailable"`
	Refused     float64 `json:"refused"`
	Other       float64 `json:"other"`
}

// Latency is the purchase route's p50 and p99 over the last interval, in
// milliseconds; nil when no purchase finished in it.
type Latency struct {
	P50 *float64 `json:"p50"`
	P99 *float64 `json:"p99"`
}

// Item is one sale's stock accounts, as catalog.Stats reports them.
type Item struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	StockRedis int64  `json:"stock_redis"`
	StockDB    int64  `json:"stock_db"`
	// Pending orders hold a unit in Redis and are not in the database yet.
	Pending int64 `json:"pending"`
	// Confirmed orders are in the database and hold a unit (paid or not).
	Confirmed int64 `json:"confirmed"`
}

// Frame is one dashboard update.
type Frame struct {
	// T is when the sample was taken, in Unix milliseconds.
	T int64 `json:"t"`
	// Purchases and Latency are nil in the first frame: a rate needs two
	// samples.
	Purchases *Rates   `json:"purchases"`
	Latency   *Latency `json:"latency_ms"`
	Lag       float64  `json:"lag"`
	Items     []Item   `json:"items"`
	// StockError says why Items is empty when the stock could not be read;
	// the metric figures are still good.
	StockError string `json:"stock_error,omitempty"`
	// Queue is the waiting rooms; nil in the first frame.
	Queue *QueueFrame `json:"queue,omitempty"`
}

// Between computes the rates and latency of the interval from prev to cur.
func Between(prev, cur Sample) (Rates, Latency) {
	dt := cur.At.Sub(prev.At)
	var r Rates
	for outcome, v := range cur.Purchases {
		x := Rate(prev.Purchases[outcome], v, dt)
		switch outcome {
		case "accepted":
			r.Accepted += x
		case "sold_out":
			r.SoldOut += x
		case "rate_limited":
			r.RateLimited += x
		case "unavailable":
			r.Unavailable += x
		case "blocked", "ticket_required", "invalid_ticket", "not_admitted":
			r.Refused += x
		default:
			r.Other += x
		}
	}
	r.Refused += Rate(prev.FairRefused, cur.FairRefused, dt)
	var l Latency
	if v, ok := Quantile(0.5, prev.Latency, cur.Latency); ok {
		ms := v * 1000
		l.P50 = &ms
	}
	if v, ok := Quantile(0.99, prev.Latency, cur.Latency); ok {
		ms := v * 1000
		l.P99 = &ms
	}
	return r, l
}

// StockFunc reads the stock accounts of the sales worth showing.
type StockFunc func(ctx context.Context) ([]Item, error)

// Sampler makes frames for any number of viewers while reading the
// registry and the stock at most once per MinGap: viewers who ask within
// MinGap of the last sample share its frame, so a room full of laptops
// costs the database what one does.
type Sampler struct {
	gather prometheus.Gatherer
	stock  StockFunc
	// MinGap is the shortest time between two samples; default 500ms, half
	// the page's one-second update.
	MinGap time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	mu    sync.Mutex
	prev  Sample
	have  bool
	frame Frame
}

// NewSampler returns a sampler of g and stock. stock may be nil (no items).
func NewSampler(g prometheus.Gatherer, stock StockFunc) *Sampler {
	return &Sampler{gather: g, stock: stock, MinGap: 500 * time.Millisecond, Now: time.Now}
}

// Frame returns the frame of the latest sample, taking a new one unless the
// latest is younger than MinGap. A failing stock read is reported in the
// frame, not as an error; the error is the registry's.
func (s *Sampler) Frame(ctx context.Context) (Frame, error) {
	// Held across the reads on purpose: a viewer arriving meanwhile waits
	// for this sample instead of starting another.
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	if s.have && now.Sub(s.prev.At) < s.MinGap {
		return s.frame, nil
	}
	fams, err := s.gather.Gather()
	if err != nil && len(fams) == 0 {
		return Frame{}, err
	}
	cur := Read(fams, now)
	f := Frame{T: now.UnixMilli(), Lag: cur.Lag, Items: []Item{}}
	if s.have {
		r, l := Between(s.prev, cur)
		f.Purchases, f.Latency = &r, &l
		q := QueueBetween(s.prev, cur)
		f.Queue = &q
	}
	if s.stock != nil {
		items, err := s.stock(ctx)
		if err != nil {
			f.StockError = err.Error()
		} else {
			sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
			f.Items = items
		}
	}
	s.prev, s.have, s.frame = cur, true, f
	return f, nil
}
