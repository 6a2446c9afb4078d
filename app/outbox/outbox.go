// Package outbox moves accepted orders from the stock ledger to the order
// queue. The ledger's script records every accepted order as pending and
// unpublished in the same atomic step that takes the unit, so the ledger is
// the outbox: the Dispatcher publishes orders as they are accepted, in
// batches, and the Relay re-publishes any that stayed unpublished (Kafka was
// down, the process died before publishing). An order that cannot be
// published for RelayGiveUp is failed instead and its unit given back; the
// ledger's claim fence guarantees that such an order is never also
// confirmed. So every accepted order ends confirmed or given back, never
// both and never neither.
package outbox

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"seckill/domain/sale"
)

type publisher interface {
	Publish(ctx context.Context, orders ...sale.Order) error
}

type publishMarker interface {
	MarkPublished(ctx context.Context, ids ...sale.OrderID) error
}

// DispatcherOptions sizes the dispatcher.
type DispatcherOptions struct {
	Batch   int           // orders per produce call; default 256
	Linger  time.Duration // wait to fill a batch; default 2ms
	Buffer  int           // accepted orders waiting to be sent; default 16384
	Senders int           // concurrent produce calls; default 4
	Timeout time.Duration // per produce call; default 5s
}

// Dispatcher publishes accepted orders in batches, off the request path. It
// never blocks a purchase: when its buffer is full the order simply waits in
// the ledger's outbox for the Relay.
type Dispatcher struct {
	pub  publisher
	mark publishMarker
	log  *slog.Logger
	opts DispatcherOptions
	ch   chan sale.Order

	published, failed, deferred atomic.Uint64
	wg                          sync.WaitGroup
}

// NewDispatcher returns a dispatcher; call Run to start it.
func NewDispatcher(pub publisher, mark publishMarker, log *slog.Logger, o DispatcherOptions) *Dispatcher {
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.Linger <= 0 {
		o.Linger = 2 * time.Millisecond
	}
	if o.Buffer <= 0 {
		o.Buffer = 16384
	}
	if o.Senders <= 0 {
		o.Senders = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	return &Dispatcher{pub: pub, mark: mark, log: log, opts: o, ch: make(chan sale.Order, o.Buffer)}
}

// Enqueue hands an accepted order to the dispatcher without waiting.
func (d *Dispatcher) Enqueue(o sale.Order) {
	select {
	case d.ch <- o:
	default:
		// The order is safe in the ledger's outbox; the relay will send it.
		d.deferred.Add(1)
	}
}

// Run sends batches until ctx is done, then drains what is buffered, so a
// graceful shutdown flushes every order it accepted. Run returns when all
// senders have stopped.
func (d *Dispatcher) Run(ctx context.Context) {
	for i := 0; i < d.opts.Senders; i++ {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.sendLoop(ctx)
		}()
	}
	d.wg.Wait()
}

func (d *Dispatcher) sendLoop(ctx context.Context) {
	batch := make([]sale.Order, 0, d.opts.Batch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch = batch[:0]
		select {
		case o := <-d.ch:
			batch = append(batch, o)
		case <-ctx.Done():
			d.drain(batch)
			return
		}
		timer.Reset(d.opts.Linger)
	fill:
		for len(batch) < d.opts.Batch {
			select {
			case o := <-d.ch:
				batch = append(batch, o)
			case <-timer.C:
				break fill
			case <-ctx.Done():
				break fill
			}
		}
		timer.Stop()
		d.send(batch)
	}
}

// drain sends whatever is still buffered at shutdown.
func (d *Dispatcher) drain(batch []sale.Order) {
	for {
		select {
		case o := <-d.ch:
			batch = append(batch, o)
			if len(batch) >= d.opts.Batch {
				d.send(batch)
				batch = batch[:0]
			}
		default:
			if len(batch) > 0 {
				d.send(batch)
			}
			return
		}
	}
}

func (d *Dispatcher) send(batch []sale.Order) {
	// Not the caller's context: at shutdown the batch must still go out.
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.Timeout)
	defer cancel()
	if err := d.pub.Publish(ctx, batch...); err != nil {
		d.failed.Add(uint64(len(batch)))
		d.log.Warn("publish failed; the relay will retry from the outbox", "orders", len(batch), "err", err)
		return
	}
	d.published.Add(uint64(len(batch)))
	if err := d.mark.MarkPublished(ctx, ids(batch)...); err != nil {
		// Harmless: the relay re-publishes and the worker ignores the duplicate.
		d.log.Warn("mark published failed; expect a duplicate publish", "orders", len(batch), "err", err)
	}
}

// DispatcherStats counts orders by what happened to them.
type DispatcherStats struct{ Published, Failed, Deferred uint64 }

// Stats returns the counters, for metrics.
func (d *Dispatcher) Stats() DispatcherStats {
	return DispatcherStats{Published: d.published.Load(), Failed: d.failed.Load(), Deferred: d.deferred.Load()}
}

func ids(orders []sale.Order) []sale.OrderID {
	out := make([]sale.OrderID, len(orders))
	for i, o := range orders {
		out[i] = o.ID
	}
	return out
}

type outboxLedger interface {
	Unpublished(ctx context.Context, before time.Time, limit int) ([]sale.Order, error)
	MarkPublished(ctx context.Context, ids ...sale.OrderID) error
	Expire(ctx context.Context, id sale.OrderID, reason string) (released bool, gen int64, err error)
}

// RelayOptions sets the relay's timing.
type RelayOptions struct {
	Every  time.Duration // how often to look; default 1s
	After  time.Duration // re-publish orders unpublished for this long; default 3s
	GiveUp time.Duration // fail orders unpublished for this long; default 10m
	Batch  int           // orders per look; default 500
	Now    func() time.Time
}

// Relay re-publishes accepted orders that the Dispatcher did not get into
// the queue, and gives up on those that could not be published for GiveUp.
// Several instances may run relays at once: a duplicate publish is harmless
// because the worker confirms idempotently.
type Relay struct {
	ledger  outboxLedger
	pub     publisher
	log     *slog.Logger
	opts    RelayOptions
	onFail  func(item sale.ItemID, gen int64)
	relayed atomic.Uint64
	expired atomic.Uint64
}

// ExpiredReason is the reason recorded on an order the relay gave up on.
const ExpiredReason = "the order could not be handed to the order queue in time; its unit was returned"

// NewRelay returns a relay. onExpire, if not nil, is told of every unit given
// back (so the caller can clear sold-out flags).
func NewRelay(ledger outboxLedger, pub publisher, log *slog.Logger, o RelayOptions, onExpire func(sale.ItemID, int64)) *Relay {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.After <= 0 {
		o.After = 3 * time.Second
	}
	if o.GiveUp <= o.After {
		o.GiveUp = 10 * time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Relay{ledger: ledger, pub: pub, log: log, opts: o, onFail: onExpire}
}

// Run looks for stale orders every Every until ctx is done.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Once(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("outbox relay pass failed", "err", err)
			}
		}
	}
}

// Once makes one pass: expire what is too old, re-publish the rest.
func (r *Relay) Once(ctx context.Context) error {
	now := r.opts.Now()
	stale, err := r.ledger.Unpublished(ctx, now.Add(-r.opts.After), r.opts.Batch)
	if err != nil || len(stale) == 0 {
		return err
	}
	var resend []sale.Order
	for _, o := range stale {
		if now.Sub(o.CreatedAt) < r.opts.GiveUp {
			resend = append(resend, o)
			continue
		}
		released, gen, err := r.ledger.Expire(ctx, o.ID, ExpiredReason)
		if err != nil {
			return err
		}
		if released {
			r.expired.Add(1)
			r.log.Warn("order expired in the outbox; unit returned", "order_id", o.ID, "item_id", o.ItemID, "age", now.Sub(o.CreatedAt))
			if r.onFail != nil {
				r.onFail(o.ItemID, gen)
			}
		}
	}
	if len(resend) == 0 {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.pub.Publish(pctx, resend...); err != nil {
		return err
	}
	r.relayed.Add(uint64(len(resend)))
	r.log.Info("outbox relay re-published orders", "orders", len(resend))
	return r.ledger.MarkPublished(ctx, ids(resend)...)
}

// RelayStats counts relayed and expired orders.
type RelayStats struct{ Relayed, Expired uint64 }

// Stats returns the counters, for metrics.
func (r *Relay) Stats() RelayStats {
	return RelayStats{Relayed: r.relayed.Load(), Expired: r.expired.Load()}
}
