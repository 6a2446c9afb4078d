package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"seckill/domain/sale"
)

// OrderSpans are the spans one worker batch opened for its traced orders:
// per order, a consume span continuing the order's trace (from the
// traceparent its message carried) and, under it, the span of the step the
// batch takes for it. A nil *OrderSpans (nothing traced) is valid.
type OrderSpans struct {
	consume, step []trace.Span
	ctxs          []context.Context
}

// StartOrders opens the spans of the traced orders among orders; it returns
// nil, at the cost of one comparison per order, when none is traced.
func StartOrders(orders []sale.Order, step string) *OrderSpans {
	if !enabled.Load() {
		return nil
	}
	var s *OrderSpans
	for _, o := range orders {
		if o.TraceParent == "" {
			continue
		}
		if s == nil {
			s = &OrderSpans{}
		}
		attrs := trace.WithAttributes(attribute.String("seckill.order_id", string(o.ID)))
		ctx, c := Start(Resume(context.Background(), o.TraceParent), "worker consume", trace.WithSpanKind(trace.SpanKindConsumer), attrs)
		ctx, st := Start(ctx, step, attrs)
		s.consume, s.step, s.ctxs = append(s.consume, c), append(s.step, st), append(s.ctxs, ctx)
	}
	return s
}

// Contexts returns the contexts of the step spans, for StartBatch.
func (s *OrderSpans) Contexts() []context.Context {
	if s == nil {
		return nil
	}
	return s.ctxs
}

// End ends every span, marking them failed when err is not nil.
func (s *OrderSpans) End(err error) {
	if s == nil {
		return
	}
	for i := range s.step {
		for _, sp := range []trace.Span{s.step[i], s.consume[i]} {
			if err != nil {
				sp.SetStatus(codes.Error, err.Error())
			}
			sp.End()
		}
	}
}
