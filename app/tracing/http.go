package tracing

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HeaderTraceparent is the W3C header a request's trace context arrives in
// and the purchase answer's trace context leaves in.
const HeaderTraceparent = "traceparent"

// untraced are the routes polled by machines (Prometheus every second, the
// load balancer's and orchestrator's probes): a trace per poll would bury
// the purchases in the viewer and cost a span each for nothing.
var untraced = map[string]bool{"/metrics": true, "/healthz": true, "/readyz": true}

// Gin returns the middleware that traces a request (a server span) when
// its caller sends a traceparent (the span is then its child, sampled as
// the caller says) or, without one, at the configured ratio; a request it
// does not choose costs one random number. The probes and the metrics
// scrape are never traced. It answers with the span's traceparent, so a
// client that sends it back on a later request (paying the order it just
// bought) continues the same trace. There is no otelgin at the OpenTelemetry
// version this tree uses, hence this one.
func Gin() gin.HandlerFunc {
	prop := propagation.TraceContext{}
	return func(c *gin.Context) {
		route := c.FullPath()
		if untraced[route] {
			c.Next()
			return
		}
		ctx := c.Request.Context()
		// The canonical key, read directly: Header.Get would canonicalise
		// "traceparent" on every request.
		if len(c.Request.Header["Traceparent"]) > 0 {
			ctx = prop.Extract(ctx, propagation.HeaderCarrier(c.Request.Header))
		} else if choose() {
			ctx = context.WithValue(ctx, chosenKey{}, true)
		} else {
			c.Next()
			return
		}
		if route == "" {
			route = "unmatched"
		}
		ctx, span := Tracer().Start(ctx, c.Request.Method+" "+route,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", c.Request.Method),
				attribute.String("http.route", route),
				attribute.String("url.path", c.Request.URL.Path),
			))
		defer span.End()
		if span.SpanContext().IsSampled() {
			prop.Inject(ctx, propagation.HeaderCarrier(c.Writer.Header()))
		}
		c.Request = c.Request.WithContext(ctx)
		c.Next()
		st := c.Writer.Status()
		span.SetAttributes(attribute.Int("http.response.status_code", st))
		if st >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, strconv.Itoa(st))
		}
	}
}

// Inject writes ctx's trace context into h, for an outgoing HTTP call.
func Inject(ctx context.Context, h http.Header) {
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
}

// LogHandler wraps h so every record logged with a context that holds a
// valid span gets trace_id and span_id, next to the request_id the access
// log already writes: a log line leads to its trace and back.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(as)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }
