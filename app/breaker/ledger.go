package breaker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"seckill/domain/sale"
)

// LedgerBackend is what Ledger decorates: the stock ledger calls made on a
// request's path (purchases, order status, item pages, admin writes).
type LedgerBackend interface {
	Reserve(ctx context.Context, o sale.Order) (sale.Reservation, error)
	Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error)
	BuyerOrder(ctx context.Context, item sale.ItemID, user sale.UserID) (sale.OrderID, error)
	Open(ctx context.Context, it sale.Item) error
	SetWindow(ctx context.Context, id sale.ItemID, startsAt, endsAt time.Time) error
	StockLeft(ctx context.Context, ids ...sale.ItemID) (map[sale.ItemID]int64, error)
	Restock(ctx context.Context, id sale.ItemID, add int64, key string) (applied bool, gen int64, err error)
	Counts(ctx context.Context, id sale.ItemID) (sale.Counts, error)
}

// Ledger is the Redis stock ledger behind a breaker. Background loops
// (worker, relay, reconciler, lifecycle) keep the bare ledger: they retry
// on their own schedule and must not be refused by a breaker that
// purchases opened.
//
// On a Redis Cluster (NewClusterLedger) purchases and order lookups pass
// the breaker of the master that holds their stock bucket instead, and b
// guards the calls that span buckets (stock reads, counts, admin writes).
type Ledger struct {
	next   LedgerBackend
	b      *Breaker
	nodes  *NodeBreakers
	router Router
}

// NewLedger returns next guarded by b.
func NewLedger(next LedgerBackend, b *Breaker) *Ledger { return &Ledger{next: next, b: b} }

// NewClusterLedger returns next guarded by b, with purchases and order
// lookups guarded per master by nodes, routed by router (usually next
// itself).
func NewClusterLedger(next LedgerBackend, b *Breaker, nodes *NodeBreakers, router Router) *Ledger {
	return &Ledger{next: next, b: b, nodes: nodes, router: router}
}

// Reserve is next.Reserve, answered within the call timeout. A Reserve the
// guard stopped waiting for (the call timeout with Redis slow, or the
// caller's ctx ending) may still complete in Redis: the redisstock store
// sends a queued call and keeps its result even when ctx ends. So that
// error matches sale.ErrOutcomeUnknown, never a plain refusal: the buyer
// is told to look for the order (504 outcome_unknown), not that nothing
// was taken. A reservation that completes records its order as pending in
// the item's outbox in the same script, so the relay publishes it after
// --relay-after and the worker confirms it, exactly as for an order whose
// instance died before publishing; a retry answers already_purchased with
// the order's id. Errors the backend itself returned pass unchanged (the
// store marks its own unanswered calls), and a breaker refusal (ErrOpen)
// was never sent.
//
// On a Redis Cluster it goes through the breaker of the order's master,
// and an order refused there may be placed in another bucket (see
// reserveByNode).
func (l *Ledger) Reserve(ctx context.Context, o sale.Order) (sale.Reservation, error) {
	if l.nodes != nil {
		return l.reserveByNode(ctx, o)
	}
	return reserveGuarded(l.b, ctx, func(ctx context.Context) (sale.Reservation, error) { return l.next.Reserve(ctx, o) })
}

// reserveGuarded runs one reserve call under b within the call timeout.
// An error detach made up when it stopped waiting (the call may still
// complete in Redis) matches sale.ErrOutcomeUnknown; a refusal by an open
// breaker (nothing sent) and the backend's own errors pass unchanged.
func reserveGuarded(b *Breaker, ctx context.Context, call func(context.Context) (sale.Reservation, error)) (sale.Reservation, error) {
	r, err := detach(b, ctx, func(ctx context.Context) (sale.Reservation, error) {
		r, err := call(ctx)
		if err != nil {
			err = backendError{err}
		}
		return r, err
	})
	var be backendError
	switch {
	case err == nil, errors.Is(err, ErrOpen):
		return r, err
	case errors.As(err, &be):
		return r, be.err
	}
	return r, fmt.Errorf("%w: %w", sale.ErrOutcomeUnknown, err) //nolint:errorlint // both wrapped: the answer and the failure that caused it
}

// backendError marks an error Reserve's backend returned, as opposed to one
// detach made up when it stopped waiting. It is unwrapped before Reserve
// returns; the breaker sees it wrapped, which Failure and the exclusion of
// context.Canceled look through.
type backendError struct{ err error }

func (e backendError) Error() string { return e.err.Error() }
func (e backendError) Unwrap() error { return e.err }

// Lookup is next.Lookup within the call timeout.
func (l *Ledger) Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error) {
	b := l.b
	if l.nodes != nil {
		b = l.nodes.For(l.router.OrderNode(ctx, id))
	}
	return detach(b, ctx, func(ctx context.Context) (sale.Order, error) { return l.next.Lookup(ctx, id) })
}

// BuyerOrder is next.BuyerOrder within the call timeout.
//
// On a Redis Cluster it passes the breaker of the master that holds the
// user's home bucket, where the record lives.
func (l *Ledger) BuyerOrder(ctx context.Context, item sale.ItemID, user sale.UserID) (sale.OrderID, error) {
	b := l.b
	if l.nodes != nil {
		if nodes, err := l.router.BucketNodes(ctx, item); err == nil && len(nodes) > 0 {
			b = l.nodes.For(nodes[sale.HomeBucket(user, len(nodes))])
		}
	}
	return detach(b, ctx, func(ctx context.Context) (sale.OrderID, error) { return l.next.BuyerOrder(ctx, item, user) })
}

// StockLeft is next.StockLeft within the call timeout.
func (l *Ledger) StockLeft(ctx context.Context, ids ...sale.ItemID) (map[sale.ItemID]int64, error) {
	return detach(l.b, ctx, func(ctx context.Context) (map[sale.ItemID]int64, error) { return l.next.StockLeft(ctx, ids...) })
}

// Counts is next.Counts within the call timeout.
func (l *Ledger) Counts(ctx context.Context, id sale.ItemID) (sale.Counts, error) {
	return detach(l.b, ctx, func(ctx context.Context) (sale.Counts, error) { return l.next.Counts(ctx, id) })
}

// The admin writes below pass the breaker (so they fail fast while it is
// open) but are waited for to the end: the catalog undoes or retries a
// write by what the ledger answered, and an answer the guard stopped
// waiting for would be a guess.

// Open is next.Open behind the breaker.
func (l *Ledger) Open(ctx context.Context, it sale.Item) error {
	_, err := pass(l.b, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, l.next.Open(ctx, it) })
	return err
}

// SetWindow is next.SetWindow behind the breaker.
func (l *Ledger) SetWindow(ctx context.Context, id sale.ItemID, startsAt, endsAt time.Time) error {
	_, err := pass(l.b, ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, l.next.SetWindow(ctx, id, startsAt, endsAt)
	})
	return err
}

// Restock is next.Restock behind the breaker.
func (l *Ledger) Restock(ctx context.Context, id sale.ItemID, add int64, key string) (bool, int64, error) {
	type res struct {
		applied bool
		gen     int64
	}
	r, err := pass(l.b, ctx, func(ctx context.Context) (res, error) {
		a, g, err := l.next.Restock(ctx, id, add, key)
		return res{a, g}, err
	})
	return r.applied, r.gen, err
}
