package breaker

import (
	"context"

	"seckill/domain/sale"
)

// PublishBackend is what Publisher decorates: Kafka produce.
type PublishBackend interface {
	Publish(ctx context.Context, orders ...sale.Order) error
}

// Publisher is Kafka produce behind a breaker, each call bounded by the
// call timeout through its ctx. A refused or overrun publish leaves its
// orders in the ledger's outbox, where the relay finds them after
// --relay-after; a publish the deadline cut short may still have reached
// the broker, and the duplicate that the relay then sends is harmless
// because the worker reads the fate that stands.
type Publisher struct {
	next PublishBackend
	b    *Breaker
}

// NewPublisher returns next guarded by b.
func NewPublisher(next PublishBackend, b *Breaker) *Publisher { return &Publisher{next: next, b: b} }

// Publish is next.Publish within the call timeout.
func (p *Publisher) Publish(ctx context.Context, orders ...sale.Order) error {
	_, err := do(p.b, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, p.next.Publish(ctx, orders...) })
	return err
}
