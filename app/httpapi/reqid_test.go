package httpapi

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"seckill/app/reqid"
)

// syncBuffer is a log sink safe for the handler's goroutine and the test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRequestIDTravelsWithTheOrder: a usable X-Request-ID is answered back,
// copied onto the accepted order (which carries it to Kafka) and written on
// the request's access-log line with the order id; a missing or unusable one
// is replaced by a fresh id.
func TestRequestIDTravelsWithTheOrder(t *testing.T) {
	t.Parallel()
	q := &capturedQueue{}
	logs := &syncBuffer{}
	f := newFixtureWith(t, q, func(d *Deps) {
		d.AccessLog = true
		d.Log = slog.New(slog.NewTextHandler(logs, nil))
	})
	tok := f.userToken("tracer")
	rec := f.serve("POST", "/api/v1/items/1/purchase", nil, "Authorization", tok, reqid.Header, "trace-me-42")
	if rec.Code != 202 || rec.Header().Get(reqid.Header) != "trace-me-42" {
		t.Fatalf("purchase: %d, %s %q", rec.Code, reqid.Header, rec.Header().Get(reqid.Header))
	}
	if len(q.orders) != 1 || q.orders[0].RequestID != "trace-me-42" {
		t.Fatalf("enqueued orders %+v; want one carrying the request id", q.orders)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "request_id=trace-me-42") {
			line = l
		}
	}
	if !strings.Contains(line, "order_id="+string(q.orders[0].ID)) || !strings.Contains(line, "status=202") {
		t.Fatalf("access log has no line with the request id, order id and status:\n%s", logs.String())
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", reqid.MaxLen+1)} {
		rec := f.serve("GET", "/healthz", nil, reqid.Header, bad)
		got := rec.Header().Get(reqid.Header)
		if got == bad || !reqid.Valid(got) {
			t.Fatalf("X-Request-ID %q answered as %q; want a fresh id", bad, got)
		}
	}
}

// TestAccessLogCanBeSilenced: with AccessLog off, requests write no line.
func TestAccessLogCanBeSilenced(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	f := newFixtureWith(t, nopQueue{}, func(d *Deps) { d.Log = slog.New(slog.NewTextHandler(logs, nil)) })
	f.serve("GET", "/healthz", nil)
	if strings.Contains(logs.String(), "http request") {
		t.Fatalf("access log written although off: %s", logs.String())
	}
}
