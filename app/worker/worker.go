// Package worker turns queued orders into decided orders. It consumes the
// order queue in batches and, for each batch: confirms the orders in the
// database in one transaction that also lowers stock_left by the number
// inserted and reports every order's fate, makes the ledger follow (Settle
// the confirmed, Release the failed), and only then commits the queue
// offsets. A crash anywhere in that sequence means redelivery, and every
// step is idempotent, so an order is decided exactly once: the database's
// order row is the fence, and whoever writes it first (this worker, another
// one after a rebalance, or the relay giving up) decides. An order that can
// never be confirmed is recorded as failed and goes to the dead-letter
// topic; its unit is given back, unless the database refused it because the
// ledger sold a unit the database does not have (the stock guard tripped:
// a phantom, see sale.Fate.Phantom): that unit is dropped, so it is never
// sold again.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"seckill/app/tracing"
	"seckill/domain/sale"
)

// Delivery is one message from the queue: a decoded order, or Err when the
// payload could not be decoded.
type Delivery interface {
	DeliveredOrder() (sale.Order, error)
}

type feed[D Delivery] interface {
	Fetch(ctx context.Context, limit int, linger time.Duration) ([]D, error)
	Commit(ctx context.Context, ds []D) error
	DeadLetter(ctx context.Context, d D, reason string) error
}

type settlement interface {
	Settle(ctx context.Context, ids ...sale.OrderID) error
	Release(ctx context.Context, id sale.OrderID) (released bool, gen int64, err error)
	Drop(ctx context.Context, id sale.OrderID) (dropped bool, err error)
}

type confirmer interface {
	Confirm(ctx context.Context, orders []sale.Order) (inserted int, fates map[sale.OrderID]sale.Fate, err error)
	Fail(ctx context.Context, orders []sale.Order, reason string) (map[sale.OrderID]sale.Fate, error)
}

// stockNotifier is the part of sale.Notifier the worker uses: units came back.
type stockNotifier interface {
	StockBack(item sale.ItemID, gen int64)
}

// Deps are the worker's collaborators.
type Deps[D Delivery] struct {
	Feed   feed[D]    // the order queue (Kafka)
	Ledger settlement // the Redis ledger, which follows the database
	Book   confirmer  // the database, which decides each order
	// Notify, if set, is told of every unit given back (to clear
	// sold-out flags across instances).
	Notify stockNotifier
	Log    *slog.Logger
}

// Options sizes the worker.
type Options struct {
	Batch int // messages per batch; default 500
	// Linger is how long a batch waits to fill, default 200ms. A full
	// batch goes at once, so under load it costs nothing; at a trickle
	// (100 orders/s) each batch costs a transaction, an offset commit and
	// a settle, and on a small machine the wakeups of MariaDB, the broker
	// and Redis for lone orders cost more CPU than the orders (BENCHMARKS,
	// What was tried). Kafka's own consumer waits up to 500ms (fetch.max.wait.ms).
	Linger time.Duration
	// BatchTimeout bounds one batch's processing; default 30s.
	BatchTimeout time.Duration
	// OnBatch, if set, observes each batch's size and how many orders it
	// inserted, for metrics.
	OnBatch func(size, inserted int)
	// OnConfirmed, if set, is told the payment deadline of every order of
	// a batch that stands confirmed (to schedule its expiry), after the
	// ledger has settled them. A redelivery tells it again; it must be
	// idempotent.
	OnConfirmed func(ctx context.Context, deadlines map[sale.OrderID]time.Time)
}

// Worker is one consumer-group member. Run several, in one process or many;
// the queue's partitioning by item and stock bucket keeps one bucket's
// orders on one member, so a hot item split over buckets is confirmed by
// several.
type Worker[D Delivery] struct {
	feed   feed[D]
	ledger settlement
	book   confirmer
	log    *slog.Logger
	notify stockNotifier
	opts   Options

	confirmed, duplicates, deadLettered, released, dropped, batches atomic.Uint64
}

// New returns a worker; call Run to start it.
func New[D Delivery](d Deps[D], o Options) *Worker[D] {
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Linger <= 0 {
		o.Linger = 200 * time.Millisecond
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = 30 * time.Second
	}
	return &Worker[D]{feed: d.Feed, ledger: d.Ledger, book: d.Book, notify: d.Notify, log: d.Log, opts: o}
}

// Run consumes until ctx is done. A batch already fetched is finished and
// committed even after ctx is done, so a graceful shutdown leaves nothing
// half-processed; then Run returns nil.
//
// Each batch goes through two stages: the database decides it (decode,
// one confirm transaction, the fates), then the ledger follows and the
// offsets are committed (settle, release, expiry schedule, commit). The
// stages overlap by one batch: while the ledger follows batch k, the
// database already decides batch k+1, so a partition's rate is set by the
// slower stage rather than by their sum. Following and committing stay in
// batch order, one at a time, so offsets are committed in order, and
// never before their batch's orders are decided and followed. A crash in
// between leaves both batches uncommitted, and both are redelivered; every
// step is idempotent.
func (w *Worker[D]) Run(ctx context.Context) error {
	decided := make(chan decidedBatch[D], 1)
	stopped := make(chan struct{}) // the follow stage gave up (ctx done)
	followDone := make(chan struct{})
	go func() {
		defer close(followDone)
		w.followLoop(ctx, decided, stopped)
	}()
	defer func() {
		close(decided)
		<-followDone
	}()
	backoff := 100 * time.Millisecond
	for {
		ds, err := w.feed.Fetch(ctx, w.opts.Batch, w.opts.Linger)
		if ctx.Err() != nil && len(ds) == 0 {
			return nil
		}
		if err != nil && len(ds) == 0 {
			w.log.Warn("fetch from the order queue failed", "err", err)
			if !sleep(ctx, backoff) {
				return nil
			}
			continue
		}
		// Retry the batch until it is decided: its offsets must not be
		// committed before its orders are confirmed, and skipping it would
		// lose them. Only a stop request ends the retries, leaving the
		// batch for redelivery.
		for attempt := 0; ; attempt++ {
			b, err := w.decideBatch(ctx, ds)
			if err == nil {
				select {
				case decided <- b:
				case <-stopped:
					// The follow stage stopped with an earlier batch
					// uncommitted; this one must not be committed past it.
					return nil
				}
				break
			}
			w.log.Warn("order batch failed; retrying", "size", len(ds), "attempt", attempt+1, "err", err)
			if !sleep(ctx, min(backoff<<min(attempt, 6), 5*time.Second)) {
				return nil
			}
		}
	}
}

// followLoop runs the second stage of every decided batch, in order,
// retrying each until it succeeds. If ctx ends while a batch still fails,
// it stops: that batch and every later one stay uncommitted, for
// redelivery.
func (w *Worker[D]) followLoop(ctx context.Context, decided <-chan decidedBatch[D], stopped chan<- struct{}) {
	backoff := 100 * time.Millisecond
	for b := range decided {
		for attempt := 0; ; attempt++ {
			err := w.followBatch(ctx, b)
			if err == nil {
				break
			}
			w.log.Warn("order batch failed after its confirm; retrying the ledger and commit", "size", len(b.ds), "attempt", attempt+1, "err", err)
			if !sleep(ctx, min(backoff<<min(attempt, 6), 5*time.Second)) {
				close(stopped)
				for range decided {
					// Drop what is still queued; it is redelivered.
				}
				return
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// decidedBatch is a batch the database has decided: its deliveries, its
// distinct orders and every order's fate.
type decidedBatch[D Delivery] struct {
	ds     []D
	orders []sale.Order
	fates  map[sale.OrderID]sale.Fate
}

// decideBatch is the first stage: decode, dead-letter what cannot be
// decoded, confirm the rest in one transaction and read every fate. It
// runs with its own deadline, detached from Run's context, so that a
// shutdown does not abort a transaction halfway.
func (w *Worker[D]) decideBatch(ctx context.Context, ds []D) (decidedBatch[D], error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.BatchTimeout)
	defer cancel()

	b := decidedBatch[D]{ds: ds}
	seen := make(map[sale.OrderID]struct{}, len(ds))
	b.orders = make([]sale.Order, 0, len(ds))
	for _, d := range ds {
		o, err := d.DeliveredOrder()
		if err == nil {
			err = o.Check()
		}
		if err != nil {
			if err := w.deadLetter(ctx, d, o, "undecodable order message: "+err.Error()); err != nil {
				return b, err
			}
			continue
		}
		if _, dup := seen[o.ID]; !dup {
			seen[o.ID] = struct{}{}
			b.orders = append(b.orders, o)
		}
	}
	if len(b.orders) > 0 {
		spans := tracing.StartOrders(b.orders, "worker confirm")
		bctx, bspan := tracing.StartBatch(ctx, "worker confirm batch", spans.Contexts())
		fates, err := w.confirm(bctx, b.orders, ds)
		bspan.End()
		spans.End(err)
		if err != nil {
			return b, err
		}
		b.fates = fates
	}
	return b, nil
}

// followBatch is the second stage: the ledger follows the database (drop
// the records of confirmed orders, give back the units of failed ones, a
// redelivered order someone else failed included; Release is a no-op the
// second time), the confirmed orders' expiries are scheduled, and the
// offsets are committed. Every step is idempotent, so a retry repeats it
// whole.
func (w *Worker[D]) followBatch(ctx context.Context, b decidedBatch[D]) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.BatchTimeout)
	defer cancel()

	if len(b.orders) > 0 {
		// Sized for the usual batch, in which every order is confirmed.
		confirmed := make([]sale.OrderID, 0, len(b.orders))
		var deadlines map[sale.OrderID]time.Time
		if w.opts.OnConfirmed != nil {
			deadlines = make(map[sale.OrderID]time.Time, len(b.orders))
		}
		trace := w.log.Enabled(ctx, slog.LevelDebug)
		for _, o := range b.orders {
			f := b.fates[o.ID]
			if trace {
				// One line per order ties it to the request that made it
				// (request_id); debug only, since a sale decides thousands
				// a second.
				w.log.Debug("order decided", "order_id", o.ID, "request_id", o.RequestID, "status", f.Status)
			}
			if deadlines != nil && f.Status == sale.OrderConfirmed && !f.PayBy.IsZero() {
				deadlines[o.ID] = f.PayBy
			}
			switch {
			case f.Status.WasConfirmed():
				// Paid, cancelled or expired since (a late redelivery):
				// still an order the database confirmed, so the ledger
				// settles it; a returned unit comes back by the return step.
				confirmed = append(confirmed, o.ID)
			case f.Status == sale.OrderFailed:
				if f.Refused {
					if err := w.deadLetter(ctx, deliveryFor(b.ds, o.ID), o, f.Reason); err != nil {
						return err
					}
				}
				if err := w.release(ctx, o, f); err != nil {
					return err
				}
			default:
				return fmt.Errorf("confirm reported no fate for order %s", o.ID)
			}
		}
		if len(confirmed) > 0 {
			if err := w.ledger.Settle(ctx, confirmed...); err != nil {
				return fmt.Errorf("settle: %w", err)
			}
		}
		if len(deadlines) > 0 {
			w.opts.OnConfirmed(ctx, deadlines)
		}
	}

	if err := w.feed.Commit(ctx, b.ds); err != nil {
		return fmt.Errorf("commit offsets: %w", err)
	}
	w.batches.Add(1)
	return nil
}

// confirm writes the batch in one transaction and returns every order's
// fate. If the database refuses the batch for a reason that belongs to some
// order (its item is gone, or the stock guard tripped), it falls back to one
// order per transaction, and records as failed, and dead-letters, only the
// orders that can never succeed.
func (w *Worker[D]) confirm(ctx context.Context, orders []sale.Order, ds []D) (map[sale.OrderID]sale.Fate, error) {
	n, fates, err := w.book.Confirm(ctx, orders)
	if err == nil {
		w.count(len(orders), n)
		return fates, nil
	}
	if !permanent(err) {
		return nil, fmt.Errorf("confirm: %w", err)
	}
	w.log.Warn("batch refused by the database; confirming one by one", "size", len(orders), "err", err)
	fates = make(map[sale.OrderID]sale.Fate, len(orders))
	for _, o := range orders {
		n, one, err := w.book.Confirm(ctx, []sale.Order{o})
		switch {
		case err == nil:
			w.count(1, n)
			fates[o.ID] = one[o.ID]
		case permanent(err):
			reason := err.Error()
			if errors.Is(err, sale.ErrStockExhausted) {
				// The ledger accepted this order for a unit the database
				// no longer has: it lost writes (see sale.Fate.Phantom).
				// The buyer reads the reason on the order.
				reason = sale.ReasonLedgerRolledBack
			}
			failed, ferr := w.book.Fail(ctx, []sale.Order{o}, reason)
			if ferr != nil {
				return nil, fmt.Errorf("record failed order: %w", ferr)
			}
			fates[o.ID] = failed[o.ID]
			// Dead-letter only what this call failed: if another worker
			// confirmed it meanwhile, its fate says so and it is settled.
			if failed[o.ID].Status == sale.OrderFailed {
				if err := w.deadLetter(ctx, deliveryFor(ds, o.ID), o, reason); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("confirm: %w", err)
		}
	}
	return fates, nil
}

func (w *Worker[D]) count(size, inserted int) {
	w.confirmed.Add(uint64(inserted))         //nolint:gosec // G115: a count of inserted rows, never negative
	w.duplicates.Add(uint64(size - inserted)) //nolint:gosec // G115: inserted is at most the batch size
	if w.opts.OnBatch != nil {
		w.opts.OnBatch(size, inserted)
	}
}

// permanent reports whether retrying the same order can never help.
func permanent(err error) bool {
	return errors.Is(err, sale.ErrNotFound) || errors.Is(err, sale.ErrStockExhausted) || errors.Is(err, sale.ErrInvalid)
}

func (w *Worker[D]) deadLetter(ctx context.Context, d D, o sale.Order, reason string) error {
	if err := w.feed.DeadLetter(ctx, d, reason); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	w.deadLettered.Add(1)
	w.log.Error("order dead-lettered", "order_id", o.ID, "item_id", o.ItemID, "reason", reason)
	return nil
}

// release gives a failed order's unit back in the ledger, or, for a phantom,
// drops its record and gives nothing back: a phantom's unit is one the
// database does not have, and given back it would be sold and refused again
// for as long as buyers come. The database has already recorded the
// failure, so this runs at most once per order however often it is called.
func (w *Worker[D]) release(ctx context.Context, o sale.Order, f sale.Fate) error {
	if f.Phantom() {
		dropped, err := w.ledger.Drop(ctx, o.ID)
		if err != nil {
			return fmt.Errorf("drop: %w", err)
		}
		if dropped {
			w.dropped.Add(1)
		}
		return nil
	}
	released, gen, err := w.ledger.Release(ctx, o.ID)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if released {
		w.released.Add(1)
		if w.notify != nil {
			w.notify.StockBack(o.ItemID, gen)
		}
	}
	return nil
}

func deliveryFor[D Delivery](ds []D, id sale.OrderID) D {
	for _, d := range ds {
		if o, err := d.DeliveredOrder(); err == nil && o.ID == id {
			return d
		}
	}
	var zero D
	return zero
}

// Stats counts what the worker did. Dropped counts phantom orders whose
// ledger record it dropped without giving a unit back.
type Stats struct{ Confirmed, Duplicates, DeadLettered, Released, Batches, Dropped uint64 }

// Stats returns the counters, for metrics.
func (w *Worker[D]) Stats() Stats {
	return Stats{Confirmed: w.confirmed.Load(), Duplicates: w.duplicates.Load(), DeadLettered: w.deadLettered.Load(),
		Released: w.released.Load(), Batches: w.batches.Load(), Dropped: w.dropped.Load()}
}
