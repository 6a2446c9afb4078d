package naive

// WRONG ON PURPOSE: lacks the outbox; the real one is the ledger's outbox
// (the reserve script, infra/redisstock/lua/reserve.lua, records every accepted
// order as pending in the same atomic step) drained by the dispatcher and
// the relay (app/outbox/outbox.go), which publish again whatever Kafka did
// not take.

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"seckill/domain/sale"
)

type orderPublisher interface {
	Publish(ctx context.Context, orders ...sale.Order) error
}

// DirectPublisher sends each accepted order straight to Kafka from the
// request, fire and forget, as in "reserve in Redis, then
// producer.Send(order)". The buyer already has the 202; when the send fails
// (the broker is down, the process dies) the order exists nowhere else and
// is never confirmed. It implements the purchase's queue port, Enqueue.
type DirectPublisher struct {
	pub     orderPublisher
	log     *slog.Logger
	timeout time.Duration

	sent, lost atomic.Uint64
}

// NewDirectPublisher publishes through pub (the bare Kafka publisher).
func NewDirectPublisher(pub orderPublisher, log *slog.Logger) *DirectPublisher {
	if log == nil {
		log = slog.Default()
	}
	return &DirectPublisher{pub: pub, log: log, timeout: 5 * time.Second}
}

// Enqueue publishes o on a goroutine of its own and logs a failure: that is
// all a newcomer's handler does after the Lua step said yes.
func (d *DirectPublisher) Enqueue(o sale.Order) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
		defer cancel()
		if err := d.pub.Publish(ctx, o); err != nil {
			d.lost.Add(1)
			d.log.Warn("publish failed; the order is gone", "order_id", o.ID, "err", err)
			return
		}
		d.sent.Add(1)
	}()
}

// Counts returns how many orders reached Kafka and how many sends failed.
func (d *DirectPublisher) Counts() (sent, lost uint64) { return d.sent.Load(), d.lost.Load() }

// Run does nothing until ctx ends: direct sends keep nothing to flush.
func (d *DirectPublisher) Run(ctx context.Context) { <-ctx.Done() }

// NoRelay is the relay of a system without an outbox: there is nothing to
// publish again, so it does nothing until ctx ends.
type NoRelay struct{}

// Run waits for ctx to end.
func (NoRelay) Run(ctx context.Context) { <-ctx.Done() }
