// Package tracing sets up OpenTelemetry tracing for one seckill process and
// holds the few helpers the purchase path uses to keep one purchase in one
// trace across processes: the W3C traceparent of a span as a string (it
// rides on the order, in the outbox record and in the Kafka headers), and
// batch spans linked both ways to the requests they carry.
//
// Tracing is off by default: the global provider stays OpenTelemetry's
// no-op one, every span is non-recording, and the hooks cost a context
// lookup. Setup with an exporter turns it on.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Exporters Setup accepts.
const (
	ExporterOff    = "off"
	ExporterStdout = "stdout"
	ExporterOTLP   = "otlp"
)

// Config is how a process traces.
type Config struct {
	// Exporter is off, stdout (JSON spans on Stdout) or otlp (OTLP over
	// HTTP to Endpoint, or to OTEL_EXPORTER_OTLP_ENDPOINT when empty).
	Exporter string
	// Sample is the share of new traces recorded, 0 to 1; a request that
	// arrives with a sampled traceparent is recorded whatever it is.
	Sample float64
	// Endpoint is the OTLP/HTTP collector, host:port (Jaeger: 4318).
	Endpoint string
	// Service names the process in the trace viewer (seckill-api, ...).
	Service string
	// Instance is the process's instance id (service.instance.id), so the
	// viewer tells two replicas of one service apart; "" leaves it out.
	Instance string
	// Stdout receives the stdout exporter's spans.
	Stdout io.Writer
}

// enabled is set once Setup installed a recording provider; the hooks that
// cost something even with the no-op provider (the HTTP middleware) check it.
var enabled atomic.Bool

// Enabled reports whether Setup turned tracing on in this process.
func Enabled() bool { return enabled.Load() }

// Setup installs the global tracer provider and the W3C trace-context
// propagator that cfg asks for, and returns the function that flushes and
// stops it. With Exporter off it installs nothing.
func Setup(ctx context.Context, cfg Config) (shutdown func(context.Context) error, err error) {
	var exp sdktrace.SpanExporter
	switch cfg.Exporter {
	case "", ExporterOff:
		return func(context.Context) error { return nil }, nil
	case ExporterStdout:
		w := cfg.Stdout
		if w == nil {
			return nil, errors.New("tracing: stdout exporter without a writer")
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
	case ExporterOTLP:
		var opts []otlptracehttp.Option
		if cfg.Endpoint != "" {
			opts = append(opts, otlptracehttp.WithEndpoint(cfg.Endpoint), otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("tracing: unknown exporter %q (want off, stdout or otlp)", cfg.Exporter)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: %s exporter: %w", cfg.Exporter, err)
	}
	tp := NewProvider(cfg, sdktrace.WithBatcher(exp))
	Install(tp)
	return tp.Shutdown, nil
}

// headRatio is Config.Sample as float64 bits: the share of requests without
// a traceparent that the HTTP middleware traces (see Gin).
var headRatio atomic.Uint64

// NewProvider returns a provider for cfg.Service that follows a caller's
// sampled flag, records the new traces the HTTP middleware chose, and
// samples any other new trace at cfg.Sample by its id; it also sets the
// share of requests the middleware chooses (cfg.Sample: one provider per
// process). opts add the span processors (tests pass an in-memory
// exporter).
func NewProvider(cfg Config, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	headRatio.Store(math.Float64bits(cfg.Sample))
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.Service)}
	if cfg.Instance != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.Instance))
	}
	res := resource.NewSchemaless(attrs...)
	opts = append([]sdktrace.TracerProviderOption{
		sdktrace.WithSampler(sdktrace.ParentBased(headSampler{ratio: sdktrace.TraceIDRatioBased(cfg.Sample)})),
		sdktrace.WithResource(res),
	}, opts...)
	return sdktrace.NewTracerProvider(opts...)
}

// chosenKey marks a request's context once the middleware chose to trace it.
type chosenKey struct{}

// choose reports whether a request without a traceparent is traced: at
// the configured ratio, by one random number, so the requests that are
// not pay nothing else (no span, no context, no trace id).
func choose() bool {
	r := math.Float64frombits(headRatio.Load())
	return r >= 1 || (r > 0 && rand.Float64() < r) //nolint:gosec // a sampling coin needs speed, not unpredictability
}

// headSampler records the new traces the middleware chose, and decides any
// other new trace by its id at the configured ratio.
type headSampler struct{ ratio sdktrace.Sampler }

func (h headSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if p.ParentContext.Value(chosenKey{}) != nil {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: trace.SpanContextFromContext(p.ParentContext).TraceState()}
	}
	return h.ratio.ShouldSample(p)
}

func (h headSampler) Description() string { return "HeadChosenOr{" + h.ratio.Description() + "}" }

// Install makes tp the global provider and W3C trace context the global
// propagator, and turns the hooks on. The returned function turns them
// off again and installs a no-op provider (tests).
func Install(tp trace.TracerProvider) (restore func()) {
	prevProp := otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	enabled.Store(true)
	return func() {
		enabled.Store(false)
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(prevProp)
	}
}

// Tracer is the tracer of the app's packages.
func Tracer() trace.Tracer { return otel.Tracer("seckill") }

// off is the span Start returns while tracing is off.
var off = trace.SpanFromContext(context.Background())

// Start starts a span as a child of ctx's sampled span. Without one (a
// request the middleware did not choose, or tracing off) it returns ctx
// and a no-op span without touching the provider: the purchase path pays
// one atomic load and one context lookup per hook. New traces start only
// in the HTTP middleware (Gin).
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !enabled.Load() || !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx, off
	}
	return Tracer().Start(ctx, name, opts...)
}

// Carry returns the traceparent of ctx's span when it is sampled, else "".
// Only sampled spans travel: an unsampled order carries nothing, so the
// outbox record and the Kafka message stay as they were with tracing off.
func Carry(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return ""
	}
	var c propagation.MapCarrier = map[string]string{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// Resume returns ctx with the remote span tp names as its parent; ctx
// unchanged when tp is empty or unusable.
func Resume(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
}

// StartBatch starts the span of one batch carrying the requests whose
// contexts are members, when one of them is traced: a child of the first
// traced member's span (so it is sampled with it), linked to every traced
// member's span, each of which links back to it. The viewer then goes
// from a purchase to the batch that carried it and on to every other
// purchase in it. The span is put in parent, not in a member's context,
// so one member's cancellation cannot cancel the batch. With no traced
// member it returns parent and a no-op span.
func StartBatch(parent context.Context, name string, members []context.Context, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	var links []trace.Link
	for _, m := range members {
		if sc := trace.SpanContextFromContext(m); sc.IsSampled() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if len(links) == 0 || !enabled.Load() {
		return parent, off
	}
	opts = append(opts, trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("seckill.batch.orders", len(members)), attribute.Int("seckill.batch.traced", len(links))))
	_, span := Tracer().Start(trace.ContextWithSpanContext(parent, links[0].SpanContext), name, opts...)
	back := trace.Link{SpanContext: span.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("seckill.link", "carried by")}}
	for _, m := range members {
		if s := trace.SpanFromContext(m); s.IsRecording() {
			s.AddLink(back)
		}
	}
	return trace.ContextWithSpan(parent, span), span
}
