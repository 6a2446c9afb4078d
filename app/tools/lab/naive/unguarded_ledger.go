package naive

// WRONG ON PURPOSE: lacks the circuit breaker and the per-call deadline;
// the real ones are breaker.Ledger (app/breaker/ledger.go) with its breaker
// and RedisHealth (app/breaker/breaker.go, app/breaker/health.go), wired for the
// purchase path in app/bootstrap/bootstrap.go.

import (
	"context"

	"seckill/domain/sale"
)

type purchaseLedger interface {
	Reserve(ctx context.Context, o sale.Order) (sale.Reservation, error)
	Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error)
}

// UnguardedLedger calls the Redis ledger straight from the request and
// waits for it as long as it takes: the client's read timeout, the queue of
// calls stuck behind the slow ones, the request's own deadline. When Redis
// is sick every purchase hangs for seconds, holding a connection, a
// goroutine and an in-flight slot, and the next one joins the queue; no
// one is told "try again" quickly. It implements the purchase's ledger
// port.
type UnguardedLedger struct{ next purchaseLedger }

// NewUnguardedLedger calls next (the bare Redis ledger) directly.
func NewUnguardedLedger(next purchaseLedger) *UnguardedLedger { return &UnguardedLedger{next: next} }

// Reserve waits for Redis however long it takes.
func (l *UnguardedLedger) Reserve(ctx context.Context, o sale.Order) (sale.Reservation, error) {
	return l.next.Reserve(ctx, o)
}

// Lookup waits for Redis however long it takes.
func (l *UnguardedLedger) Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error) {
	return l.next.Lookup(ctx, id)
}
