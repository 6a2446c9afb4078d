package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"seckill/infra/testenv"
)

// Span names of one purchase's trace (app/tracing, infra/redisstock,
// infra/kafkaevents, app/worker).
const (
	spanPurchase     = "POST /api/v1/items/:id/purchase"
	spanPay          = "POST /api/v1/orders/:order_id/pay"
	spanReserve      = "reserve"
	spanReserveBatch = "redisstock reserve batch"
	spanPublish      = "kafka publish"
	spanConsume      = "worker consume"
	spanConfirm      = "worker confirm"
	spanConfirmBatch = "worker confirm batch"
)

// TestStackTracesAPurchase runs make stack's topology with its Jaeger and
// requires what issue 25 accepts, through Jaeger's HTTP API:
//   - one purchase through nginx (then paid, with the traceparent its 202
//     answered) is one trace, found by /api/traces?service=seckill-api, of
//     at least 6 spans from at least 2 processes (API and worker), whose
//     reserve and worker confirm spans link to their batches' spans;
//   - a purchase whose API instance is SIGKILLed right after its 202, the
//     order never published by it (its broker connection cut first), is
//     published by another instance's relay from the ledger's pending
//     record and still ends, in the same trace, in a worker's confirm.
func TestStackTracesAPurchase(t *testing.T) {
	nginx, prom := requireTools(t)
	_, prefix := testenv.Redis(t)
	redisAddr := testenv.RedisAddr(t)
	dsn := testenv.MySQLDSN(t)

	dir := t.TempDir()
	bin := buildSeckill(t, dir)
	jaeger := filepath.Join(t.TempDir(), "jaeger")
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer bcancel()
	// A link on a machine that built Jaeger before (.ci/run's make jaeger
	// does, outside this test's time); minutes on a cold build cache.
	if err := BuildJaeger(bctx, "../..", jaeger); err != nil {
		t.Fatal(err)
	}
	_, plan := loadPlan(t)
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := Start(ctx, plan, Options{
		Seckill: bin, Nginx: nginx, Prom: prom, Jaeger: jaeger, Dir: dir,
		MySQLDSN: dsn, Redis: redisAddr, RedisPrefix: prefix, Log: &log,
	})
	if err != nil {
		t.Fatalf("start the stack: %v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			for _, f := range []string{"jaeger", "api-1", "api-doomed", "worker-1"} {
				t.Logf("--- %s.log\n%s", f, tail(filepath.Join(dir, "logs", f+".log"), 15))
			}
		}
	})
	if s.JaegerURL == "" {
		t.Fatal("the stack runs Jaeger but has no URL to print")
	}
	if plan.API.Env["SECKILL_TRACE_SAMPLE"] != "1" {
		t.Fatalf("compose samples %q of the traces; this test needs every purchase traced (1)", plan.API.Env["SECKILL_TRACE_SAMPLE"])
	}

	item := createSale(t, s.LBURL, s.AdminToken, 5)
	t.Run("one purchase through nginx", func(t *testing.T) { checkPurchaseTrace(t, s, item) })
	t.Run("API SIGKILLed after the 202", func(t *testing.T) { checkKilledAPITrace(t, s, plan, item) })
}

// checkPurchaseTrace buys and pays one unit through nginx and checks the
// purchase's trace in Jaeger.
func checkPurchaseTrace(t *testing.T, s *Stack, item int64) {
	token := login(t, s.LBURL, "traced-buyer-1")
	orderID, tp := purchase(t, s.LBURL, token, item)
	waitStatus(t, s.LBURL, token, orderID, "confirmed")
	req, _ := http.NewRequest(http.MethodPost, s.LBURL+"/api/v1/orders/"+orderID+"/pay", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("traceparent", tp)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("pay: %s", res.Status)
	}

	id := traceID(t, tp)
	tr := waitTrace(t, s.JaegerURL, "seckill-api", id, spanPurchase, spanReserve, spanReserveBatch, spanPublish,
		spanConsume, spanConfirm, spanConfirmBatch, spanPay)
	services := map[string]bool{}
	for _, sp := range tr.Spans {
		services[tr.Processes[sp.ProcessID].ServiceName] = true
	}
	if len(tr.Spans) < 6 || len(tr.Processes) < 2 || !services["seckill-api"] || !services["seckill-worker"] {
		t.Errorf("trace %s: %d spans from processes %v, want at least 6 from the API and the worker", id, len(tr.Spans), services)
	}
	for span, batch := range map[string]string{spanReserve: spanReserveBatch, spanConfirm: spanConfirmBatch} {
		if !tr.linked(span, batch) {
			t.Errorf("trace %s: %q has no link to %q: %+v", id, span, batch, tr.named(span)[0].References)
		}
	}
	// The access log line of the purchase names its trace next to its
	// request id, on whichever API nginx chose.
	logged := false
	for i := range s.APIs {
		for _, line := range strings.Split(tail(filepath.Join(s.Dir, "logs", fmt.Sprintf("api-%d.log", i+1)), 100000), "\n") {
			logged = logged || (strings.Contains(line, `"trace_id":"`+id+`"`) && strings.Contains(line, `"request_id":"`) && strings.Contains(line, `"route":"/api/v1/items/:id/purchase"`))
		}
	}
	if !logged {
		t.Errorf("no access log line of the purchase has trace_id %s next to a request_id", id)
	}
	t.Logf("trace %s: %d spans, %d processes; %s/api/traces/%s", id, len(tr.Spans), len(tr.Processes), s.JaegerURL, id)
}

// checkKilledAPITrace starts one more API process whose broker connection
// runs through a relay the test cuts, buys through it (the order is
// reserved, answered 202, and can never be published by it), SIGKILLs it,
// and requires the order confirmed and its trace to end in the worker's
// confirm, under a publish by another instance's relay whose parent is the
// dead request's span.
func checkKilledAPITrace(t *testing.T, s *Stack, plan Plan, item int64) {
	cut := newBrokerCut(t, s.addrs.Broker)
	a := s.addrs
	a.Broker = cut.Addr()
	var err error
	if a.HTTP, err = freeAddr(); err != nil {
		t.Fatal(err)
	}
	const name = "api-doomed"
	bin := seckillPath(s)
	if bin == "" {
		t.Fatal("the stack runs no seckill broker to take the binary's path from")
	}
	doomed, err := s.spawn(name, bin, plan.API.Command, environ(NativeEnv(plan.API, a, name, s.redisPrefix)), plan.API.Grace)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.HTTP
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waitFor(ctx, doomed, name+" /readyz", func() error { return httpOK(base + "/readyz") }); err != nil {
		t.Fatal(err)
	}

	token := login(t, base, "traced-buyer-2")
	cut.Cut()
	orderID, tp := purchase(t, base, token, item)
	if err := syscall.Kill(doomed.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-doomed.done
	// The order exists only as the ledger's pending record now.
	waitStatus(t, s.LBURL, token, orderID, "confirmed")

	id := traceID(t, tp)
	tr := waitTrace(t, s.JaegerURL, "seckill-worker", id, spanPublish, spanConsume, spanConfirm, spanConfirmBatch)
	pub := tr.named(spanPublish)[0]
	if inst := tr.instance(pub.ProcessID); inst == name || inst == "" {
		t.Errorf("the publish ran on %q, want another API's relay", inst)
	}
	killed := strings.Split(tp, "-")[2]
	if !pub.childOf(killed) {
		t.Errorf("the relay's publish is not a child of the killed request's span %s: %+v", killed, pub.References)
	}
	if !tr.linked(spanConfirm, spanConfirmBatch) {
		t.Errorf("worker confirm has no link to its batch: %+v", tr.named(spanConfirm)[0].References)
	}
	t.Logf("trace %s of an order whose API was SIGKILLed after the 202: %d spans, publish by %s", id, len(tr.Spans), tr.instance(pub.ProcessID))
}

// seckillPath is the seckill binary the stack runs.
func seckillPath(s *Stack) string {
	for _, p := range s.procs {
		if p.name == "broker" {
			return p.cmd.Path
		}
	}
	return ""
}

// brokerCut is a TCP relay in front of the broker that the test can cut:
// it then drops every connection and holds new ones open without passing a
// byte, so the process behind it can publish nothing.
type brokerCut struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newBrokerCut(t *testing.T, target string) *brokerCut {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &brokerCut{ln: ln, target: target}
	go b.serve()
	t.Cleanup(func() { ln.Close(); b.Cut() })
	return b
}

func (b *brokerCut) Addr() string { return b.ln.Addr().String() }

func (b *brokerCut) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns = append(b.conns, c)
		cut := b.cut
		b.mu.Unlock()
		if cut {
			continue // held open: nothing read, nothing answered
		}
		up, err := net.Dial("tcp", b.target)
		if err != nil {
			c.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, up)
		b.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// Cut closes every connection through the relay and black-holes new ones.
func (b *brokerCut) Cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut = true
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
}

// createSale creates an open sale of stock units and returns its id.
func createSale(t *testing.T, base, admin string, stock int) int64 {
	t.Helper()
	now := time.Now().UTC()
	var created struct {
		ID int64 `json:"id"`
	}
	if st := doJSON(t, "POST", base+"/api/v1/admin/items", admin, map[string]any{
		"name": "traced", "price_cents": 100, "stock": stock,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
	}, &created); st != http.StatusCreated || created.ID == 0 {
		t.Fatalf("create sale: status %d id %d", st, created.ID)
	}
	return created.ID
}

func login(t *testing.T, base, user string) string {
	t.Helper()
	var r struct {
		Token string `json:"token"`
	}
	if st := doJSON(t, "POST", base+"/api/v1/login", "", map[string]string{"user_id": user}, &r); st != 200 || r.Token == "" {
		t.Fatalf("login %s at %s: %d", user, base, st)
	}
	return r.Token
}

// purchase buys one unit and returns the order id and the traceparent the
// 202 answered with.
func purchase(t *testing.T, base, token string, item int64) (orderID, traceparent string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/v1/items/%d/purchase", base, item), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r struct {
		OrderID string `json:"order_id"`
	}
	_ = json.NewDecoder(res.Body).Decode(&r)
	tp := res.Header.Get("traceparent")
	if res.StatusCode != http.StatusAccepted || r.OrderID == "" || tp == "" {
		t.Fatalf("purchase at %s: %s, order %q, traceparent %q", base, res.Status, r.OrderID, tp)
	}
	return r.OrderID, tp
}

// waitStatus polls the order (at most 40 s) until it has status want.
func waitStatus(t *testing.T, base, token, orderID, want string) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		var o struct {
			Status string `json:"status"`
		}
		st := doJSON(t, "GET", base+"/api/v1/orders/"+orderID, token, nil, &o)
		if st == 200 && o.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s: status %d %q after 40s, want %q", orderID, st, o.Status, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// traceID is the trace id of a W3C traceparent.
func traceID(t *testing.T, tp string) string {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		t.Fatalf("not a traceparent: %q", tp)
	}
	return parts[1]
}

// jTrace is one trace as Jaeger's HTTP API returns it.
type jTrace struct {
	TraceID string  `json:"traceID"`
	Spans   []jSpan `json:"spans"`
	// Processes maps a span's processID to the process that sent it.
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
		Tags        []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	} `json:"processes"`
}

type jSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"` // CHILD_OF (the parent) or FOLLOWS_FROM (a link)
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
}

func (tr jTrace) named(name string) []jSpan {
	var out []jSpan
	for _, s := range tr.Spans {
		if s.OperationName == name {
			out = append(out, s)
		}
	}
	return out
}

// linked reports whether a span named from references a span named to
// other than as its parent: an OpenTelemetry link.
func (tr jTrace) linked(from, to string) bool {
	for _, f := range tr.named(from) {
		for _, r := range f.References {
			for _, s := range tr.named(to) {
				if r.RefType == "FOLLOWS_FROM" && r.SpanID == s.SpanID {
					return true
				}
			}
		}
	}
	return false
}

func (s jSpan) childOf(spanID string) bool {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" && r.SpanID == spanID {
			return true
		}
	}
	return false
}

// instance is the service.instance.id of a trace's process.
func (tr jTrace) instance(processID string) string {
	for _, tag := range tr.Processes[processID].Tags {
		if tag.Key == "service.instance.id" {
			v, _ := tag.Value.(string)
			return v
		}
	}
	return ""
}

// waitTrace searches Jaeger (/api/traces?service=...) for trace id until
// it holds a span of every name in want (at most 40 s: the processes
// export their spans in batches every few seconds).
func waitTrace(t *testing.T, jaeger, service, id string, want ...string) jTrace {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	q := url.Values{"service": {service}, "lookback": {"1h"}, "limit": {"1000"}}
	for {
		var body struct {
			Data []jTrace `json:"data"`
		}
		var missing []string
		found := false
		res, err := client.Get(jaeger + "/api/traces?" + q.Encode())
		if err == nil {
			err = json.NewDecoder(res.Body).Decode(&body)
			res.Body.Close()
		}
		for _, tr := range body.Data {
			if tr.TraceID != id {
				continue
			}
			found = true
			for _, n := range want {
				if len(tr.named(n)) == 0 {
					missing = append(missing, n)
				}
			}
			if len(missing) == 0 {
				return tr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Jaeger /api/traces?service=%s after 40s: trace %s found %v, missing spans %v (last error %v)", service, id, found, missing, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
