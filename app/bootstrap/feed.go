package bootstrap

import (
	"context"
	"time"

	"seckill/domain/sale"
	"seckill/infra/kafkaevents"
)

// delivery adapts a Kafka delivery to the worker's view of a message.
type delivery struct{ kafkaevents.Delivery }

// DeliveredOrder returns the decoded order or why it could not be decoded.
func (d delivery) DeliveredOrder() (sale.Order, error) { return d.Order, d.Err }

// kafkaFeed adapts the Kafka consumer to the worker's feed interface.
type kafkaFeed struct{ c *kafkaevents.Consumer }

func (f kafkaFeed) Fetch(ctx context.Context, max int, linger time.Duration) ([]delivery, error) {
	ds, err := f.c.Fetch(ctx, max, linger)
	out := make([]delivery, len(ds))
	for i, d := range ds {
		out[i] = delivery{d}
	}
	return out, err
}

func (f kafkaFeed) Commit(ctx context.Context, ds []delivery) error {
	return f.c.Commit(ctx, unwrap(ds))
}

func (f kafkaFeed) DeadLetter(ctx context.Context, d delivery, reason string) error {
	return f.c.DeadLetter(ctx, d.Delivery, reason)
}

func unwrap(ds []delivery) []kafkaevents.Delivery {
	out := make([]kafkaevents.Delivery, len(ds))
	for i, d := range ds {
		out[i] = d.Delivery
	}
	return out
}
