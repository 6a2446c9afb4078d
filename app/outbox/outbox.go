// Package outbox moves accepted orders from the stock ledger to the order
// queue, and makes sure each one is decided. The ledger's script records
// every accepted order as pending in the same atomic step that takes the
// unit, so the ledger is the outbox: the Dispatcher publishes orders as they
// are accepted, in batches, and the Relay publishes again any order still
// pending when its next look is due: soon after acceptance if the dispatcher
// never published it (Kafka was down, the process died), and again after
// the ledger's republish age if it was published but never decided (the
// broker lost it, retention ran out while workers were down). Consumers are
// idempotent, so a second publish is harmless.
//
// An order still pending after GiveUp is decided by the database instead:
// if a worker confirmed it, the ledger settles it; if not, the relay records
// it as failed (the database's order row is the fence, so a worker cannot
// confirm it afterwards) and gives its unit back. So every accepted order
// ends confirmed or given back, never both and never neither.
package outbox

import (
	"context"
	"errors"
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

// DispatcherDeps are the dispatcher's collaborators.
type DispatcherDeps struct {
	Publisher publisher
	Ledger    publishMarker // told which orders Kafka took
	Log       *slog.Logger
}

// DispatcherOptions sizes the dispatcher.
type DispatcherOptions struct {
	Batch int // orders per produce call; default 256
	// Linger is how long a batch waits to fill, default 50ms. The 202 never
	// waits for it (the order is in the ledger's outbox first), and each
	// produce call costs a wakeup of the broker, of Redis (MarkPublished)
	// and of the consumer's fetch: on a small machine shared with them, a
	// trickle's wakeups cost more than its orders (BENCHMARKS, What was tried).
	Linger  time.Duration
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
func NewDispatcher(d DispatcherDeps, o DispatcherOptions) *Dispatcher {
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.Linger <= 0 {
		o.Linger = 50 * time.Millisecond
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
	return &Dispatcher{pub: d.Publisher, mark: d.Ledger, log: d.Log, opts: o, ch: make(chan sale.Order, o.Buffer)}
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
//
// One goroutine fills the batches and Senders goroutines send them. With a
// sender per batch, a trickle of orders went one to a produce call: while
// one sender lingered on its first order, the next order went to another
// idle sender, so a produce, a MarkPublished and a consumer fetch were
// paid per order. With one filler the linger batches a trickle, and under
// load a full batch still goes at once to whichever sender is free.
func (d *Dispatcher) Run(ctx context.Context) {
	batches := make(chan []sale.Order)
	for i := 0; i < d.opts.Senders; i++ {
		d.wg.Add(1)
		go func() { //nolint:contextcheck // send has its own deadline so a shutdown does not abort a publish halfway
			defer d.wg.Done()
			for b := range batches {
				d.send(b)
			}
		}()
	}
	d.fill(ctx, batches)
	close(batches)
	d.wg.Wait()
}

// fill gathers orders into batches, each sent when full or Linger after
// its first order, until ctx is done; then it hands over whatever is still
// buffered.
func (d *Dispatcher) fill(ctx context.Context, batches chan<- []sale.Order) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var batch []sale.Order
		select {
		case o := <-d.ch:
			// Sized for what is already waiting: each batch is a slice of
			// its own (a sender still holds the last one), and a trickle's
			// batch of two should not cost a full batch's array.
			batch = make([]sale.Order, 1, min(d.opts.Batch, len(d.ch)+1))
			batch[0] = o
		case <-ctx.Done():
			d.drain(batches)
			return
		}
		timer.Reset(d.opts.Linger)
	gather:
		for len(batch) < d.opts.Batch {
			select {
			case o := <-d.ch:
				batch = append(batch, o)
			case <-timer.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		timer.Stop()
		batches <- batch
	}
}

// drain hands over, in full batches and one last partial one, whatever is
// still buffered at shutdown.
func (d *Dispatcher) drain(batches chan<- []sale.Order) {
	batch := make([]sale.Order, 0, d.opts.Batch)
	for {
		select {
		case o := <-d.ch:
			batch = append(batch, o)
			if len(batch) >= d.opts.Batch {
				batches <- batch
				batch = make([]sale.Order, 0, d.opts.Batch)
			}
		default:
			if len(batch) > 0 {
				batches <- batch
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
	Due(ctx context.Context, limit int) ([]sale.DueOrder, error)
	MarkPublished(ctx context.Context, ids ...sale.OrderID) error
	Settle(ctx context.Context, ids ...sale.OrderID) error
	Release(ctx context.Context, id sale.OrderID) (released bool, gen int64, err error)
	Drop(ctx context.Context, id sale.OrderID) (dropped bool, err error)
}

// decider is the database, which has the last word on an order.
type decider interface {
	Fates(ctx context.Context, ids []sale.OrderID) (map[sale.OrderID]sale.Fate, error)
	Fail(ctx context.Context, orders []sale.Order, reason string) (map[sale.OrderID]sale.Fate, error)
}

// RelayOptions sets the relay's timing. When an order is next due is the
// ledger's business (its first-look and republish ages); the relay decides
// only what to do with a due order.
type RelayOptions struct {
	Every time.Duration // how often to look; default 1s
	// GiveUp is the age, by the ledger's clock, past which a due order is
	// decided by the database instead of published again; default 10m.
	GiveUp time.Duration
	Batch  int // orders per item per look; default 500
}

// stockNotifier is the part of sale.Notifier the relay uses: units came back.
type stockNotifier interface {
	StockBack(item sale.ItemID, gen int64)
}

// RelayDeps are the relay's collaborators.
type RelayDeps struct {
	Ledger    outboxLedger
	Book      decider // the database, which decides an order given up on
	Publisher publisher
	// Notify, if set, is told of every unit given back (so the sold-out
	// flags clear).
	Notify stockNotifier
	Log    *slog.Logger
}

// Relay publishes again the pending orders that are due, and has the
// database decide those older than GiveUp. Several instances may run relays
// at once: the ledger leases each due order to one of them, a duplicate
// publish is harmless, and the database's fence decides each order once.
type Relay struct {
	ledger   outboxLedger
	book     decider
	pub      publisher
	log      *slog.Logger
	opts     RelayOptions
	notify   stockNotifier
	relayed  atomic.Uint64
	expired  atomic.Uint64
	resolved atomic.Uint64
}

// ExpiredReason is the reason recorded on an order the relay gave up on.
const ExpiredReason = "the order was not confirmed in time; its unit was returned"

// NewRelay returns a relay; call Run to start it.
func NewRelay(d RelayDeps, o RelayOptions) *Relay {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.GiveUp <= 0 {
		o.GiveUp = 10 * time.Minute
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	return &Relay{ledger: d.Ledger, book: d.Book, pub: d.Publisher, log: d.Log, opts: o, notify: d.Notify}
}

// Run looks for due orders every Every until ctx is done.
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

// Once makes one pass: have the database decide what is too old, publish
// the rest again.
//
// Due may return orders together with an error (a bucket whose master is
// down, a record that does not decode): the orders it could read are
// handled all the same, and its error is returned with the pass's own, so
// one failing bucket does not hold back the others' orders.
func (r *Relay) Once(ctx context.Context) error {
	due, err := r.ledger.Due(ctx, r.opts.Batch)
	if len(due) == 0 {
		return err
	}
	return errors.Join(err, r.handle(ctx, due))
}

// handle decides the due orders that are too old and publishes the rest.
func (r *Relay) handle(ctx context.Context, due []sale.DueOrder) error {
	var resend, old []sale.Order
	for _, d := range due {
		if d.Age >= r.opts.GiveUp {
			old = append(old, d.Order)
		} else {
			resend = append(resend, d.Order)
		}
	}
	if len(old) > 0 {
		if err := r.decide(ctx, old); err != nil {
			return err
		}
	}
	if len(resend) == 0 {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.pub.Publish(pctx, resend...); err != nil {
		// They stay leased for a moment and come due again.
		return err
	}
	r.relayed.Add(uint64(len(resend)))
	r.log.Info("outbox relay published pending orders again", "orders", len(resend))
	return r.ledger.MarkPublished(ctx, ids(resend)...)
}

// decide settles the orders the database confirmed, records the others as
// failed (unless a worker confirms them first: the fence decides), and
// gives back the units of every order that ended failed.
func (r *Relay) decide(ctx context.Context, orders []sale.Order) error {
	fates, err := r.book.Fates(ctx, ids(orders))
	if err != nil {
		return err
	}
	var undecided []sale.Order
	for _, o := range orders {
		if !fates[o.ID].Decided() {
			undecided = append(undecided, o)
		}
	}
	if len(undecided) > 0 {
		failed, err := r.book.Fail(ctx, undecided, ExpiredReason)
		if err != nil {
			return err
		}
		for id, f := range failed {
			fates[id] = f
		}
	}
	var settle []sale.OrderID
	for _, o := range orders {
		switch st := fates[o.ID].Status; {
		case st.WasConfirmed():
			// Confirmed, then perhaps paid, cancelled or expired: the ledger
			// only drops its record either way.
			settle = append(settle, o.ID)
		case fates[o.ID].Phantom():
			// A worker failed it for a unit the database does not have and
			// stopped before it dropped the record: give nothing back.
			if _, err := r.ledger.Drop(ctx, o.ID); err != nil {
				return err
			}
		case st == sale.OrderFailed:
			released, gen, err := r.ledger.Release(ctx, o.ID)
			if err != nil {
				return err
			}
			if released {
				r.expired.Add(1)
				r.log.Warn("order failed after it stayed pending too long; unit returned", "order_id", o.ID, "item_id", o.ItemID, "reason", fates[o.ID].Reason)
				if r.notify != nil {
					r.notify.StockBack(o.ItemID, gen)
				}
			}
		}
	}
	if len(settle) > 0 {
		if err := r.ledger.Settle(ctx, settle...); err != nil {
			return err
		}
		r.resolved.Add(uint64(len(settle)))
		r.log.Info("settled orders the database had confirmed but the ledger still held", "orders", len(settle))
	}
	return nil
}

// RelayStats counts what the relay did: orders published again, orders it
// failed and released, and orders it found confirmed and settled.
type RelayStats struct{ Relayed, Expired, Settled uint64 }

// Stats returns the counters, for metrics.
func (r *Relay) Stats() RelayStats {
	return RelayStats{Relayed: r.relayed.Load(), Expired: r.expired.Load(), Settled: r.resolved.Load()}
}
