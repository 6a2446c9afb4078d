package dashboard

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		prev, cur float64
		dt        time.Duration
		want      float64
	}{
		{"steady", 100, 300, 2 * time.Second, 100},
		{"half a second", 10, 15, 500 * time.Millisecond, 10},
		{"no change", 7, 7, time.Second, 0},
		{"reset counts from zero", 500, 40, time.Second, 40},
		{"no time passed", 1, 9, 0, 0},
	} {
		if got := Rate(tc.prev, tc.cur, tc.dt); got != tc.want {
			t.Errorf("%s: Rate(%v, %v, %v) = %v, want %v", tc.name, tc.prev, tc.cur, tc.dt, got, tc.want)
		}
	}
}

var bounds = []float64{.001, .005, .01, .1}

func hist(count float64, counts ...float64) Histogram {
	return Histogram{Bounds: bounds, Counts: counts, Count: count}
}

func TestQuantile(t *testing.T) {
	t.Parallel()
	before := hist(100, 10, 50, 90, 100)
	for _, tc := range []struct {
		name      string
		q         float64
		prev, cur Histogram
		want      float64
		ok        bool
	}{
		// 100 new observations: 40 at most 1ms, 40 in (1ms, 5ms], 20 in (5ms, 10ms].
		{"p50 interpolates in the second bucket", 0.5, before, hist(200, 50, 130, 190, 200), 0.001 + 0.004*10/40, true},
		{"p99 lands in the third bucket", 0.99, before, hist(200, 50, 130, 190, 200), 0.005 + 0.005*19/20, true},
		{"p20 in the first bucket starts at zero", 0.2, before, hist(200, 50, 130, 190, 200), 0.001 * 20 / 40, true},
		// Only the deltas count: what was observed before prev is ignored.
		{"old observations do not count", 0.5, hist(1000, 1000, 1000, 1000, 1000), hist(1010, 1000, 1000, 1000, 1010), 0.01 + 0.09*5/10, true},
		{"beyond the last bound answers the last bound", 0.99, hist(0, 0, 0, 0, 0), hist(10, 0, 0, 0, 5), 0.1, true},
		{"nothing observed in between", 0.5, before, before, 0, false},
		{"no previous sample: all of cur is new", 0.5, Histogram{}, hist(4, 2, 4, 4, 4), 0.001, true},
		{"a reset takes cur as the delta", 0.5, before, hist(4, 0, 4, 4, 4), 0.001 + 0.004*2/4, true},
		{"different buckets", 0.5, Histogram{Bounds: []float64{1}, Counts: []float64{1}, Count: 1}, hist(4, 2, 4, 4, 4), 0, false},
	} {
		got, ok := Quantile(tc.q, tc.prev, tc.cur)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: Quantile(%v) = %v, %v; want %v, %v", tc.name, tc.q, got, ok, tc.want, tc.ok)
		}
	}
}

// registry builds the metrics the dashboard reads, named and labelled as
// app/metrics and app/bootstrap register them.
func registry() (*prometheus.Registry, *prometheus.CounterVec, *prometheus.HistogramVec, prometheus.Gauge) {
	r := prometheus.NewRegistry()
	purchases := prometheus.NewCounterVec(prometheus.CounterOpts{Name: purchasesMetric}, []string{"outcome"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: latencyMetric, Buckets: bounds}, []string{"route"})
	lag := prometheus.NewGauge(prometheus.GaugeOpts{Name: lagMetric})
	r.MustRegister(purchases, latency, lag)
	return r, purchases, latency, lag
}

func TestRead(t *testing.T) {
	t.Parallel()
	r, purchases, latency, lag := registry()
	purchases.WithLabelValues("accepted").Add(3)
	purchases.WithLabelValues("sold_out").Add(5)
	latency.WithLabelValues(PurchaseRoute).Observe(0.002)
	latency.WithLabelValues(PurchaseRoute).Observe(0.5)
	latency.WithLabelValues("/api/v1/items").Observe(0.0001) // another route: ignored
	lag.Set(42)
	fams, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(100, 0)
	s := Read(fams, at)
	if !s.At.Equal(at) || s.Purchases["accepted"] != 3 || s.Purchases["sold_out"] != 5 || s.Lag != 42 {
		t.Errorf("Read = %+v", s)
	}
	want := hist(2, 0, 1, 1, 1)
	if s.Latency.Count != want.Count || len(s.Latency.Counts) != len(want.Counts) {
		t.Fatalf("latency = %+v, want %+v", s.Latency, want)
	}
	for i := range want.Counts {
		if s.Latency.Counts[i] != want.Counts[i] || s.Latency.Bounds[i] != want.Bounds[i] {
			t.Errorf("latency = %+v, want %+v", s.Latency, want)
		}
	}
}

func TestBetween(t *testing.T) {
	t.Parallel()
	prev := Sample{At: time.Unix(10, 0), Purchases: map[string]float64{"accepted": 10, "sold_out": 0, "rate_limited": 4}, Latency: hist(0, 0, 0, 0, 0)}
	cur := Sample{At: time.Unix(12, 0), Purchases: map[string]float64{
		"accepted": 30, "sold_out": 100, "rate_limited": 8, "unavailable": 2, "already_purchased": 6, "not_started": 2,
	}, Latency: hist(10, 5, 10, 10, 10)}
	r, l := Between(prev, cur)
	want := Rates{Accepted: 10, SoldOut: 50, RateLimited: 2, Unavailable: 1, Other: 4}
	if r != want {
		t.Errorf("rates = %+v, want %+v", r, want)
	}
	if l.P50 == nil || l.P99 == nil || *l.P50 != 1 || math.Abs(*l.P99-(1+4*4.9/5)) > 1e-9 {
		t.Errorf("latency = %v, %v; want 1ms and 4.92ms", deref(l.P50), deref(l.P99))
	}
	_, l = Between(cur, cur)
	if l.P50 != nil || l.P99 != nil {
		t.Errorf("latency with no purchases = %v, %v; want none", deref(l.P50), deref(l.P99))
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestSamplerSharesFramesWithinMinGap(t *testing.T) {
	t.Parallel()
	r, purchases, _, _ := registry()
	now := time.Unix(1000, 0)
	reads := 0
	s := NewSampler(r, func(context.Context) ([]Item, error) {
		reads++
		return []Item{{ID: 2, Name: "b"}, {ID: 1, Name: "a", StockRedis: 3, StockDB: 5, Pending: 2}}, nil
	})
	s.Now = func() time.Time { return now }
	ctx := context.Background()

	first, err := s.Frame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Purchases != nil || first.Latency != nil {
		t.Errorf("first frame has rates %+v: a rate needs two samples", first.Purchases)
	}
	if len(first.Items) != 2 || first.Items[0].ID != 1 || first.Items[0].StockRedis != 3 {
		t.Errorf("items = %+v, want item 1 first", first.Items)
	}
	purchases.WithLabelValues("accepted").Add(50)
	now = now.Add(200 * time.Millisecond)
	shared, _ := s.Frame(ctx)
	if shared.T != first.T || reads != 1 {
		t.Errorf("a frame asked for within MinGap was sampled again (t %d → %d, %d stock reads)", first.T, shared.T, reads)
	}
	now = now.Add(300 * time.Millisecond)
	next, _ := s.Frame(ctx)
	if next.T != first.T+500 || reads != 2 || next.Purchases == nil || next.Purchases.Accepted != 100 {
		t.Errorf("next frame = %+v (%d stock reads); want t+500 and 100 accepted/s", next, reads)
	}
}

func TestSamplerReportsStockErrors(t *testing.T) {
	t.Parallel()
	r, _, _, lag := registry()
	lag.Set(7)
	s := NewSampler(r, func(context.Context) ([]Item, error) { return nil, errors.New("database down") })
	f, err := s.Frame(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.StockError != "database down" || f.Lag != 7 || f.Items == nil || len(f.Items) != 0 {
		t.Errorf("frame = %+v; want the error, the lag, and an empty item list", f)
	}
}

// TestBetweenFairRefusals: the fair-sale refusals of purchases and of the
// challenge and ticket steps are one "refused" rate, apart from other.
func TestBetweenFairRefusals(t *testing.T) {
	t.Parallel()
	r := prometheus.NewRegistry()
	purchases := prometheus.NewCounterVec(prometheus.CounterOpts{Name: purchasesMetric}, []string{"outcome"})
	fair := prometheus.NewCounterVec(prometheus.CounterOpts{Name: fairnessMetric}, []string{"step", "outcome"})
	r.MustRegister(purchases, fair)
	fams, _ := r.Gather()
	prev := Read(fams, time.Unix(10, 0))
	purchases.WithLabelValues("ticket_required").Add(6)
	purchases.WithLabelValues("invalid_ticket").Add(4)
	purchases.WithLabelValues("blocked").Add(2)
	purchases.WithLabelValues("not_started").Add(2)
	fair.WithLabelValues("ticket", "invalid_challenge").Add(6)
	fair.WithLabelValues("challenge", "blocked").Add(2)
	fair.WithLabelValues("ticket", "issued").Add(100) // not a refusal
	fams, _ = r.Gather()
	cur := Read(fams, time.Unix(12, 0))
	got, _ := Between(prev, cur)
	if want := (Rates{Refused: 10, Other: 1}); got != want {
		t.Fatalf("rates = %+v, want %+v", got, want)
	}
}
