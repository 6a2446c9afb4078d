// Package worker turns queued orders into confirmed orders. It consumes the
// order queue in batches and, for each batch: fences the orders in the
// ledger (Claim), confirms them in the database in one transaction that also
// lowers stock_left by the number inserted, drops their pending records
// (Settle), and only then commits the queue offsets. A crash anywhere in
// that sequence means redelivery, and every step is idempotent, so an order
// is confirmed exactly once. An order that can never be confirmed goes to
// the dead-letter topic and its unit is given back.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"seckill/domain/sale"
)

// Delivery is one message from the queue: a decoded order, or Err when the
// payload could not be decoded.
type Delivery interface {
	DeliveredOrder() (sale.Order, error)
}

type feed[D Delivery] interface {
	Fetch(ctx context.Context, max int, linger time.Duration) ([]D, error)
	Commit(ctx context.Context, ds []D) error
	DeadLetter(ctx context.Context, d D, reason string) error
}

type settlement interface {
	Claim(ctx context.Context, ids ...sale.OrderID) ([]sale.Claim, error)
	Settle(ctx context.Context, ids ...sale.OrderID) error
	Reject(ctx context.Context, id sale.OrderID, reason string) (released bool, gen int64, err error)
}

type confirmer interface {
	Confirm(ctx context.Context, orders []sale.Order) (inserted int, err error)
}

// Options sizes the worker.
type Options struct {
	Batch  int           // messages per batch; default 500
	Linger time.Duration // wait to fill a batch; default 20ms
	// BatchTimeout bounds one batch's processing; default 30s.
	BatchTimeout time.Duration
	// OnRejected, if set, is told of every unit given back (to clear
	// sold-out flags across instances).
	OnRejected func(item sale.ItemID, gen int64)
	// OnBatch, if set, observes each batch's size and how many orders it
	// inserted, for metrics.
	OnBatch func(size, inserted int)
}

// Worker is one consumer-group member. Run several, in one process or many;
// the queue's partitioning by item keeps one item's orders on one member.
type Worker[D Delivery] struct {
	feed   feed[D]
	ledger settlement
	book   confirmer
	log    *slog.Logger
	opts   Options

	confirmed, duplicates, deadLettered, batches atomic.Uint64
}

// New returns a worker; call Run to start it.
func New[D Delivery](f feed[D], ledger settlement, book confirmer, log *slog.Logger, o Options) *Worker[D] {
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Linger <= 0 {
		o.Linger = 20 * time.Millisecond
	}
	if o.BatchTimeout <= 0 {
		o.BatchTimeout = 30 * time.Second
	}
	return &Worker[D]{feed: f, ledger: ledger, book: book, log: log, opts: o}
}

// Run consumes until ctx is done. A batch already fetched is finished and
// committed even after ctx is done, so a graceful shutdown leaves nothing
// half-processed; then Run returns nil.
func (w *Worker[D]) Run(ctx context.Context) error {
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
		// Retry the batch until it is done: its offsets must not be
		// committed before its orders are confirmed, and skipping it would
		// lose them. Only a stop request ends the retries, leaving the
		// batch for redelivery.
		for attempt := 0; ; attempt++ {
			err := w.processBatch(ds)
			if err == nil {
				break
			}
			w.log.Warn("order batch failed; retrying", "size", len(ds), "attempt", attempt+1, "err", err)
			if !sleep(ctx, min(backoff<<min(attempt, 6), 5*time.Second)) {
				return nil
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

// processBatch runs with its own deadline, detached from Run's context, so
// that a shutdown does not abort a transaction halfway.
func (w *Worker[D]) processBatch(ds []D) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.BatchTimeout)
	defer cancel()

	seen := make(map[sale.OrderID]bool, len(ds))
	var orders []sale.Order
	for _, d := range ds {
		o, err := d.DeliveredOrder()
		if err == nil {
			err = o.Check()
		}
		if err != nil {
			if err := w.deadLetter(ctx, d, o, "undecodable order message: "+err.Error(), false); err != nil {
				return err
			}
			continue
		}
		if !seen[o.ID] {
			seen[o.ID] = true
			orders = append(orders, o)
		}
	}

	if len(orders) > 0 {
		claims, err := w.ledger.Claim(ctx, orderIDs(orders)...)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		live := orders[:0:0]
		for i, o := range orders {
			// A failed order's unit is already back in stock; confirming it
			// would sell that unit twice.
			if claims[i] != sale.ClaimFailed {
				live = append(live, o)
			}
		}
		confirmed, err := w.confirm(ctx, live, ds)
		if err != nil {
			return err
		}
		if len(confirmed) > 0 {
			if err := w.ledger.Settle(ctx, orderIDs(confirmed)...); err != nil {
				return fmt.Errorf("settle: %w", err)
			}
		}
	}

	if err := w.feed.Commit(ctx, ds); err != nil {
		return fmt.Errorf("commit offsets: %w", err)
	}
	w.batches.Add(1)
	return nil
}

// confirm writes the batch in one transaction. If the database refuses the
// batch for a reason that belongs to some order (its item is gone, or the
// stock guard tripped), it falls back to one order per transaction so that
// only the orders that can never succeed are dead-lettered.
func (w *Worker[D]) confirm(ctx context.Context, orders []sale.Order, ds []D) ([]sale.Order, error) {
	if len(orders) == 0 {
		return nil, nil
	}
	n, err := w.book.Confirm(ctx, orders)
	if err == nil {
		w.count(len(orders), n)
		return orders, nil
	}
	if !permanent(err) {
		return nil, fmt.Errorf("confirm: %w", err)
	}
	w.log.Warn("batch refused by the database; confirming one by one", "size", len(orders), "err", err)
	var ok []sale.Order
	for _, o := range orders {
		n, err := w.book.Confirm(ctx, []sale.Order{o})
		switch {
		case err == nil:
			w.count(1, n)
			ok = append(ok, o)
		case permanent(err):
			if err := w.deadLetter(ctx, deliveryFor(ds, o.ID), o, err.Error(), true); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("confirm: %w", err)
		}
	}
	return ok, nil
}

func (w *Worker[D]) count(size, inserted int) {
	w.confirmed.Add(uint64(inserted))
	w.duplicates.Add(uint64(size - inserted))
	if w.opts.OnBatch != nil {
		w.opts.OnBatch(size, inserted)
	}
}

// permanent reports whether retrying the same order can never help.
func permanent(err error) bool {
	return errors.Is(err, sale.ErrNotFound) || errors.Is(err, sale.ErrStockExhausted) || errors.Is(err, sale.ErrInvalid)
}

func (w *Worker[D]) deadLetter(ctx context.Context, d D, o sale.Order, reason string, release bool) error {
	if err := w.feed.DeadLetter(ctx, d, reason); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	w.deadLettered.Add(1)
	w.log.Error("order dead-lettered", "order_id", o.ID, "item_id", o.ItemID, "reason", reason)
	if !release {
		return nil
	}
	released, gen, err := w.ledger.Reject(ctx, o.ID, reason)
	if err != nil {
		return fmt.Errorf("reject: %w", err)
	}
	if released && w.opts.OnRejected != nil {
		w.opts.OnRejected(o.ItemID, gen)
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

func orderIDs(orders []sale.Order) []sale.OrderID {
	out := make([]sale.OrderID, len(orders))
	for i, o := range orders {
		out[i] = o.ID
	}
	return out
}

// Stats counts what the worker did.
type Stats struct{ Confirmed, Duplicates, DeadLettered, Batches uint64 }

// Stats returns the counters, for metrics.
func (w *Worker[D]) Stats() Stats {
	return Stats{Confirmed: w.confirmed.Load(), Duplicates: w.duplicates.Load(), DeadLettered: w.deadLettered.Load(), Batches: w.batches.Load()}
}
