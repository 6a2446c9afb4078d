package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"seckill/app/bootstrap"
)

// lockedLog collects an instance's log lines for a test to search.
type lockedLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.Split(strings.TrimSpace(string(p)), "\n")...)
	return len(p), nil
}

func (l *lockedLog) find(subs ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return line
		}
	}
	return ""
}

// TestRequestIDReachesTheWorkersLogLine: a purchase's X-Request-ID appears
// on the API's access-log line for the request (with the order id) and on
// the worker's line for the same order, after the order crossed Kafka. An
// API-only instance and a worker-only instance share the backends, so the
// id really travels in the message, not in memory.
func TestRequestIDReachesTheWorkersLogLine(t *testing.T) {
	b := newBackends(t)
	start := func(name string, roles bootstrap.Roles, logs *lockedLog) *instance {
		cfg := b.cfg
		cfg.InstanceID = name
		cfg.AccessLog = true
		cfg.LogLevel = "debug"
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		m, err := bootstrap.Open(ctx, cfg, roles, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_ = m.Shutdown(ctx)
		})
		return &instance{Main: m, url: m.URL(), t: t}
	}
	apiLog, workerLog := &lockedLog{}, &lockedLog{}
	api := start("api-1", bootstrap.Roles{API: true}, apiLog)
	start("worker-1", bootstrap.Roles{Worker: true}, workerLog)
	item := api.createSale("traced", 5, 0)
	tok := api.login("traced-buyer")
	r := api.doWithHeader("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), tok, nil, "X-Request-ID", "e2e-trace-7")
	if r.Status != 202 || r.Header.Get("X-Request-ID") != "e2e-trace-7" {
		t.Fatalf("purchase: %d %s (X-Request-ID %q)", r.Status, r.Raw, r.Header.Get("X-Request-ID"))
	}
	order := r.str("order_id")
	if line := apiLog.find("request_id=e2e-trace-7", "order_id="+order); line == "" {
		t.Fatal("the API logged no line with the request id and the order id")
	}
	deadline := time.Now().Add(20 * time.Second)
	for workerLog.find("order decided", "order_id="+order, "request_id=e2e-trace-7") == "" {
		if time.Now().After(deadline) {
			st := api.do("GET", "/api/v1/orders/"+order, tok, nil)
			t.Fatalf("the worker never logged the order with its request id (order: %s):\n%s", st.Raw, workerLog.dump())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *lockedLog) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
