package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

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
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
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
