package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"seckill/app/metrics"
)

// TestReadyzShowsBreakersWithoutJudgingByThem: breaker states are listed
// under "breakers", an open breaker alone leaves the instance ready, and a
// failing ping still makes it unready.
func TestReadyzShowsBreakersWithoutJudgingByThem(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ok := func(context.Context) error { return nil }
	for _, c := range []struct {
		name   string
		ping   func(context.Context) error
		status int
	}{
		{"backends answer", ok, 200},
		{"a backend is down", func(context.Context) error { return errors.New("dial tcp: refused") }, 503},
	} {
		h := Ops(metrics.New(), []Check{
			{Name: "redis", Ping: c.ping},
			{Name: "redis-ledger", State: func() string { return "open" }},
			{Name: "database", State: func() string { return "closed" }},
		}, log)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body struct {
			Status   string            `json:"status"`
			Checks   map[string]string `json:"checks"`
			Breakers map[string]string `json:"breakers"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v: %s", c.name, err, rec.Body.String())
		}
		if rec.Code != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, rec.Code, c.status, rec.Body.String())
		}
		if body.Breakers["redis-ledger"] != "open" || body.Breakers["database"] != "closed" || len(body.Checks) != 1 {
			t.Errorf("%s: %s, want the two breakers under breakers and one check", c.name, rec.Body.String())
		}
	}
}

// TestReadyzProbesAtMostOncePerSecond: 500 requests, 50 at a time, cost at
// most one probe per started second, and a failing probe's detail stays in
// the log. Before the cache every request pinged every backend.
func TestReadyzProbesAtMostOncePerSecond(t *testing.T) {
	t.Parallel()
	var pings atomic.Int64
	h := Ops(metrics.New(), []Check{{Name: "redis", Ping: func(context.Context) error {
		pings.Add(1)
		return errors.New("redis: dial tcp 10.0.0.1:6379: connection refused")
	}}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 50; w++ {
		wg.Go(func() {
			for range 10 {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
				if rec.Code != 503 || strings.Contains(rec.Body.String(), "dial tcp") || strings.Contains(rec.Body.String(), "redis:") {
					t.Errorf("status %d body %s: want 503 without the probe's error text", rec.Code, rec.Body)
				}
			}
		})
	}
	wg.Wait()
	limit := int64(time.Since(start)/ReadyProbeEvery) + 1
	if n := pings.Load(); n > limit || n > 10 {
		t.Fatalf("500 /readyz made %d probes in %s; want at most %d", n, time.Since(start), limit)
	}
}
