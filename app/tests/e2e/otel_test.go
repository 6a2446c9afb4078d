package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"seckill/app/bootstrap"
	"seckill/app/tracing"
	"seckill/domain/sale"
)

// installTracing records every span of this test process in memory until
// the test ends. The provider is global, so these tests are not parallel
// (top-level tests that are run before the parallel ones start).
func installTracing(t *testing.T) *tracetest.InMemoryExporter {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := tracing.NewProvider(tracing.Config{Sample: 1, Service: "seckill-e2e"}, sdktrace.WithSyncer(exp))
	restore := tracing.Install(tp)
	t.Cleanup(restore)
	return exp
}

// traceOf returns the ended spans of trace id by name (a name may repeat).
func traceOf(exp *tracetest.InMemoryExporter, id trace.TraceID) map[string][]tracetest.SpanStub {
	out := map[string][]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if s.SpanContext.TraceID() == id {
			out[s.Name] = append(out[s.Name], s)
		}
	}
	return out
}

// linked reports whether s links to a span named target in spans.
func linked(s tracetest.SpanStub, spans tracetest.SpanStubs, target string) bool {
	for _, l := range s.Links {
		for _, o := range spans {
			if o.Name == target && o.SpanContext.SpanID() == l.SpanContext.SpanID() {
				return true
			}
		}
	}
	return false
}

// waitSpans waits until the trace holds every name in want.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, id trace.TraceID, want ...string) map[string][]tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := traceOf(exp, id)
		missing := false
		for _, n := range want {
			missing = missing || len(got[n]) == 0
		}
		if !missing {
			return got
		}
		if time.Now().After(deadline) {
			var have []string
			for _, s := range exp.GetSpans() {
				have = append(have, s.Name+"@"+s.SpanContext.TraceID().String()[:8])
			}
			t.Fatalf("trace %s lacks some of %s after 20s; spans recorded: %v", id, strings.Join(want, ", "), have)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOnePurchaseIsOneTrace: a purchase through the API, confirmed by a
// separate worker instance and then paid, is one trace: the HTTP request,
// the reserve (linked both ways to the Lua batch that carried it), the
// publish, the worker's consume and confirm (linked to its transaction's
// batch span) and the payment request, which continues the trace from the
// traceparent the purchase answered with.
func TestOnePurchaseIsOneTrace(t *testing.T) {
	exp := installTracing(t)
	b := newBackends(t)
	api := b.start(t, "api-1", bootstrap.Roles{API: true}, nil)
	b.start(t, "worker-1", bootstrap.Roles{Worker: true}, nil)

	item := api.createSale("traced", 5, 0)
	token := api.login("tracer-1")
	r := api.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), token, nil)
	if r.Status != 202 {
		t.Fatalf("purchase: %d %s", r.Status, r.Raw)
	}
	tp := r.Header.Get(tracing.HeaderTraceparent)
	parts := strings.Split(tp, "-")
	if len(parts) != 4 {
		t.Fatalf("the 202 carries no traceparent: %q", tp)
	}
	id, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	orderID := r.str("order_id")
	api.waitOrder(orderID, token, "confirmed", 20*time.Second)
	if p := api.doWithHeader("POST", "/api/v1/orders/"+orderID+"/pay", token, nil, tracing.HeaderTraceparent, tp); p.Status != 200 {
		t.Fatalf("pay: %d %s", p.Status, p.Raw)
	}

	const (
		purchase = "POST /api/v1/items/:id/purchase"
		pay      = "POST /api/v1/orders/:order_id/pay"
	)
	got := waitSpans(t, exp, id, purchase, "reserve", "redisstock reserve batch", "kafka publish",
		"worker consume", "worker confirm", "worker confirm batch", pay)
	all := exp.GetSpans()
	reserve, confirm := got["reserve"][0], got["worker confirm"][0]
	if !linked(reserve, all, "redisstock reserve batch") || !linked(got["redisstock reserve batch"][0], all, "reserve") {
		t.Errorf("reserve and its Lua batch are not linked both ways: reserve links %v", reserve.Links)
	}
	if !linked(confirm, all, "worker confirm batch") || !linked(got["worker confirm batch"][0], all, "worker confirm") {
		t.Errorf("worker confirm and its batch are not linked both ways: confirm links %v", confirm.Links)
	}
	// The worker's spans hang under the publish, the publish under the
	// purchase request.
	if c := got["worker consume"][0]; c.Parent.SpanID() != got["kafka publish"][0].SpanContext.SpanID() {
		t.Errorf("worker consume's parent is %v, want the kafka publish span", c.Parent.SpanID())
	}
	if p := got["kafka publish"][0]; p.Parent.SpanID() != got[purchase][0].SpanContext.SpanID() {
		t.Errorf("kafka publish's parent is %v, want the purchase request's span", p.Parent.SpanID())
	}
	// go-redis's own spans (redisotel) hang under the spans of the calls
	// that made them: the Lua batch's pipeline under the batch span.
	batch := got["redisstock reserve batch"][0].SpanContext.SpanID()
	redisUnderBatch := false
	n := 0
	var names []string
	for name, ss := range got {
		n += len(ss)
		names = append(names, name)
		for _, s := range ss {
			redisUnderBatch = redisUnderBatch || (strings.HasPrefix(s.Name, "redis.pipeline") && s.Parent.SpanID() == batch)
		}
	}
	// The store's statements (infra/mysqlstore's gorm callbacks) hang under
	// the worker's batch span.
	cbatch := got["worker confirm batch"][0].SpanContext.SpanID()
	sqlUnderBatch := false
	for _, s := range all {
		sqlUnderBatch = sqlUnderBatch || (s.SpanContext.TraceID() == id && s.Parent.SpanID() == cbatch && s.SpanKind == trace.SpanKindClient)
	}
	if !sqlUnderBatch {
		t.Error("no SQL statement span under the worker confirm batch span")
	}
	if !redisUnderBatch {
		t.Errorf("no go-redis pipeline span under the reserve batch span; the trace has %v", names)
	}
	t.Logf("trace %s: %d spans: %v", id, n, names)
}

// TestRelayRepublishJoinsTheTrace: an order whose API died right after the
// reserve (nothing enqueued or published; only the ledger's pending record
// knows it) is published by the relay of another instance, and the
// worker's confirm still lands in the purchase's trace, because the
// traceparent rides in the pending record.
func TestRelayRepublishJoinsTheTrace(t *testing.T) {
	exp := installTracing(t)
	b := newBackends(t)
	api := b.start(t, "api-1", bootstrap.Roles{API: true}, nil)
	b.start(t, "worker-1", bootstrap.Roles{Worker: true}, nil)
	item := api.createSale("traced-relay", 5, 0)

	// The traced request of an API that is then SIGKILLed: its span never
	// ends, and only its traceparent survives, on the order.
	ctx, span := tracing.Tracer().Start(t.Context(), "POST /api/v1/items/:id/purchase (killed)")
	id := span.SpanContext().TraceID()
	it, err := api.Store().Item(ctx, sale.ItemID(item))
	if err != nil {
		t.Fatal(err)
	}
	o := sale.NewOrder(it, "tracer-2", time.Now())
	o.TraceParent = tracing.Carry(ctx)
	if o.TraceParent == "" {
		t.Fatal("no traceparent for a sampled span")
	}
	if res, err := api.Ledger().Reserve(ctx, o); err != nil || res.Outcome != sale.Accepted {
		t.Fatalf("reserve: %+v %v", res, err)
	}
	got := waitSpans(t, exp, id, "kafka publish", "worker consume", "worker confirm", "worker confirm batch")
	if p := got["kafka publish"][0]; p.Parent.SpanID() != span.SpanContext().SpanID() {
		t.Errorf("the relay's publish is not a child of the purchase's span: parent %v", p.Parent.SpanID())
	}
}
