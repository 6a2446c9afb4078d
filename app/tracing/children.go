package tracing

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// ChildrenOnly returns the global tracer provider narrowed to spans under a
// sampled parent, for the contrib instrumentation of clients that also run
// in the background (go-redis: the relay's scans, pub/sub, the
// reconciler): their calls inside a traced purchase get spans, and the
// rest starts no trace of its own, which at 100 % sampling would bury the
// purchases in the viewer under one trace per background command.
func ChildrenOnly() trace.TracerProvider { return childrenOnly{otel.GetTracerProvider()} }

type childrenOnly struct{ trace.TracerProvider }

func (p childrenOnly) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childTracer{p.TracerProvider.Tracer(name, opts...)}
}

type childTracer struct{ trace.Tracer }

// Start starts a span only when ctx holds a sampled one; otherwise it
// returns ctx and ctx's own non-recording span, on which End is a no-op.
func (t childTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.Tracer.Start(ctx, name, opts...)
}
