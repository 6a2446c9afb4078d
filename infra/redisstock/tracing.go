package redisstock

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// traceBatch starts the span of one reserve pipeline when a request it
// carries is traced: a child of the first traced request's span (so it is
// sampled with it), linked to every traced request's span, each of which
// links back to it. It returns ctx carrying that span for the pipeline,
// and the function that ends it; with no traced request (tracing off) it
// returns ctx and a no-op at the cost of one context lookup per request.
func traceBatch(ctx context.Context, batch []*reserveReq) (context.Context, func()) {
	var links []trace.Link
	for _, r := range batch {
		if sc := trace.SpanContextFromContext(r.ctx); sc.IsSampled() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if len(links) == 0 {
		return ctx, func() {}
	}
	_, span := otel.Tracer("seckill/infra/redisstock").Start(
		trace.ContextWithSpanContext(ctx, links[0].SpanContext), "redisstock reserve batch",
		trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("seckill.batch.orders", len(batch)), attribute.Int("seckill.batch.traced", len(links))))
	back := trace.Link{SpanContext: span.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("seckill.link", "carried by")}}
	for _, r := range batch {
		if s := trace.SpanFromContext(r.ctx); s.IsRecording() {
			s.AddLink(back)
		}
	}
	return trace.ContextWithSpan(ctx, span), func() { span.End() }
}
