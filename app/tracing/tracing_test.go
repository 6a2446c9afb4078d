package tracing

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestOffCostsNothing: with tracing off, Start hands back the caller's
// context and a non-recording span, and Carry gives the order nothing to
// carry, so the pending record and the Kafka message stay as they were.
func TestOffCostsNothing(t *testing.T) {
	ctx := context.Background()
	got, span := Start(ctx, "reserve")
	if got != ctx || span.IsRecording() {
		t.Fatalf("Start with tracing off: new context %v, recording %v", got != ctx, span.IsRecording())
	}
	if tp := Carry(got); tp != "" {
		t.Fatalf("Carry with tracing off = %q, want empty", tp)
	}
	if n := testing.AllocsPerRun(100, func() { _, s := Start(ctx, "reserve"); s.End() }); n != 0 {
		t.Errorf("Start+End with tracing off allocates %v times", n)
	}
}

// TestSamplingAndLogs: an unsampled request carries no traceparent; a
// sampled one carries its own, which Resume turns back into the parent of
// the next process's span; its log lines get trace_id and span_id.
func TestSamplingAndLogs(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	restore := Install(NewProvider(Config{Sample: 0, Service: "t"}, sdktrace.WithSyncer(exp)))
	defer restore()
	ctx, span := Tracer().Start(context.Background(), "unsampled")
	if tp := Carry(ctx); tp != "" {
		t.Errorf("an unsampled span carried %q", tp)
	}
	span.End()
	restore()

	restore = Install(NewProvider(Config{Sample: 1, Service: "t"}, sdktrace.WithSyncer(exp)))
	defer restore()
	ctx, span = Tracer().Start(context.Background(), "purchase")
	tp := Carry(ctx)
	if !strings.Contains(tp, span.SpanContext().TraceID().String()) {
		t.Fatalf("Carry = %q, want the span's trace id %s", tp, span.SpanContext().TraceID())
	}
	_, child := Start(Resume(context.Background(), tp), "worker consume")
	if child.SpanContext().TraceID() != span.SpanContext().TraceID() {
		t.Errorf("the resumed span is in trace %s, want %s", child.SpanContext().TraceID(), span.SpanContext().TraceID())
	}
	child.End()

	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("instance", "i1")
	log.InfoContext(ctx, "http request", "request_id", "r1")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if want := `"trace_id":"` + span.SpanContext().TraceID().String(); !strings.Contains(lines[0], want) || !strings.Contains(lines[0], `"request_id":"r1"`) {
		t.Errorf("log line %s lacks %s next to the request id", lines[0], want)
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("a line without a span got a trace id: %s", lines[1])
	}
	span.End()
}

// TestGinLeavesProbesUntraced: a purchase request gets a server span and
// answers its traceparent; the metrics scrape and the probes, polled every
// second, get neither.
func TestGinLeavesProbesUntraced(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	restore := Install(NewProvider(Config{Sample: 1, Service: "t"}, sdktrace.WithSyncer(exp)))
	defer restore()
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(Gin())
	for _, p := range []string{"/metrics", "/healthz", "/readyz", "/api/v1/items/:id/purchase"} {
		r.GET(p, func(c *gin.Context) { c.Status(http.StatusOK) })
	}
	for _, p := range []string{"/metrics", "/healthz", "/readyz", "/api/v1/items/7/purchase"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
		traced := w.Header().Get(HeaderTraceparent) != ""
		if want := strings.HasPrefix(p, "/api/"); traced != want {
			t.Errorf("GET %s: traceparent answered %v, want %v", p, traced, want)
		}
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "GET /api/v1/items/:id/purchase" {
		t.Errorf("spans %v, want only the purchase's", spans.Snapshots())
	}
}

// TestChildrenOnly: the narrowed provider records a span under a sampled
// parent and starts nothing without one, so a background Redis command
// makes no trace of its own.
func TestChildrenOnly(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	restore := Install(NewProvider(Config{Sample: 1, Service: "t"}, sdktrace.WithSyncer(exp)))
	defer restore()
	tr := ChildrenOnly().Tracer("redis")
	ctx, orphan := tr.Start(context.Background(), "relay scan")
	if orphan.IsRecording() || trace.SpanContextFromContext(ctx).IsValid() {
		t.Error("a span without a parent was started")
	}
	orphan.End()
	pctx, parent := Tracer().Start(context.Background(), "purchase")
	_, child := tr.Start(pctx, "evalsha")
	child.End()
	parent.End()
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "evalsha" || spans[0].Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("spans %v, want evalsha under purchase, then purchase", spans.Snapshots())
	}
}

// TestGinChoosesAtTheRatio: at sampling 0 a request without a traceparent
// gets no span, answers none and leaves no trace id for the logs; one that
// arrives with a sampled traceparent is traced as its caller's child.
func TestGinChoosesAtTheRatio(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	restore := Install(NewProvider(Config{Sample: 0, Service: "t"}, sdktrace.WithSyncer(exp)))
	defer restore()
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(Gin())
	var sawSpan bool
	r.POST("/api/v1/items/:id/purchase", func(c *gin.Context) {
		sawSpan = trace.SpanContextFromContext(c.Request.Context()).IsValid()
		c.Status(http.StatusAccepted)
	})
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/v1/items/1/purchase", nil))
	if sawSpan || w.Header().Get(HeaderTraceparent) != "" || len(exp.GetSpans()) != 0 {
		t.Fatalf("an unchosen request: span in context %v, traceparent %q, %d spans", sawSpan, w.Header().Get(HeaderTraceparent), len(exp.GetSpans()))
	}
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req := httptest.NewRequest(http.MethodPost, "/api/v1/items/1/purchase", nil)
	req.Header.Set(HeaderTraceparent, caller)
	r.ServeHTTP(httptest.NewRecorder(), req)
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || spans[0].Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("with the caller's sampled traceparent: spans %v, want one, the caller's child", spans.Snapshots())
	}
}
