package kafkaevents

import (
	"context"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"seckill/domain/sale"
)

// HeaderTraceparent carries the W3C traceparent of a traced order (see
// sale.Order.TraceParent): the span that published the message, so the
// worker's spans for the order continue the purchase's trace.
const HeaderTraceparent = "traceparent"

var traceContext propagation.TraceContext

// startPublish starts a producer span for each traced order, a child of
// the span its TraceParent names (the purchase's request, or the same for
// an order the relay publishes again), and makes that span the message's
// traceparent header. Untraced orders cost one comparison.
func startPublish(ctx context.Context, orders []sale.Order, msgs []kafka.Message) []trace.Span {
	var spans []trace.Span
	for i, o := range orders {
		if o.TraceParent == "" {
			continue
		}
		// The order's traceparent, not ctx's span, is the parent: the
		// dispatcher and the relay publish many requests' orders at once.
		octx := traceContext.Extract(trace.ContextWithSpanContext(ctx, trace.SpanContext{}), propagation.MapCarrier{HeaderTraceparent: o.TraceParent})
		octx, span := otel.Tracer("seckill/infra/kafkaevents").Start(octx, "kafka publish",
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("seckill.order_id", string(o.ID)),
				attribute.Int("seckill.batch.orders", len(orders))))
		c := propagation.MapCarrier{}
		traceContext.Inject(octx, c)
		setHeader(&msgs[i], HeaderTraceparent, c[HeaderTraceparent])
		spans = append(spans, span)
	}
	return spans
}

// endPublish ends the spans startPublish started, with the produce call's
// error.
func endPublish(spans []trace.Span, err error) {
	for _, s := range spans {
		if err != nil {
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
}

func setHeader(m *kafka.Message, key, value string) {
	for i := range m.Headers {
		if m.Headers[i].Key == key {
			m.Headers[i].Value = []byte(value)
			return
		}
	}
	m.Headers = append(m.Headers, kafka.Header{Key: key, Value: []byte(value)})
}

// header returns the value of m's header key, or "".
func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
