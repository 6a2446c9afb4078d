package naive

// WRONG ON PURPOSE: lacks the payment window; the real one is the
// lifecycle's expiry (app/lifecycle/lifecycle.go: ScheduleExpiry puts each
// confirmed order's deadline in the durable delay queue, RunTask and the
// scan in Run expire what is past it, and Expire in
// infra/mysqlstore/lifecycle.go gives the unit back).

import (
	"context"
	"time"

	"seckill/domain/sale"
)

// NoPaymentWindow is the order module of a first version: a confirmed order
// waits for its buyer's payment for as long as it takes. Buyers who never
// come back hold their units forever, and the sale ends "sold out" with
// unsold units. (The store still writes each order's pay_by; nothing acts on
// it.) It implements bootstrap's PaymentWindow port; pay and cancel stay the
// lifecycle's.
type NoPaymentWindow struct{}

// ScheduleExpiry schedules nothing: there is no deadline to keep.
func (NoPaymentWindow) ScheduleExpiry(context.Context, map[sale.OrderID]time.Time) {}

// RunTask owns no task.
func (NoPaymentWindow) RunTask(context.Context, string) (bool, error) { return false, nil }

// Run has nothing to scan for; it waits for the end.
func (NoPaymentWindow) Run(ctx context.Context) { <-ctx.Done() }
