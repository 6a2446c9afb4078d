// Package lifecycle is the use case of a confirmed order's end: the buyer
// pays or cancels, or the payment window passes and the order expires.
//
// The database decides, in one conditional UPDATE that changes an order's
// status only from confirmed (see mysqlstore Pay, Cancel and Expire), so of
// a payment, a cancel and an expiry racing for one order exactly one wins.
// A cancel or an expiry gives the unit back to the database in the same
// transaction; the ledger (Redis) follows with a return step keyed by the
// order id, which adds the unit at most once however often it runs. That
// step runs right after the decision, and again from a sweep every second
// over the orders returned in the last minutes, so a crash between the two
// is repaired within seconds (and, failing that, by the reconciler).
//
// Expiry has two triggers and no goroutine per order: a task in the durable
// delay queue at each order's deadline, scheduled by the worker that
// confirms it, and a scan of the database every second for confirmed orders
// past their deadline, which also covers tasks lost with Redis.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"seckill/domain/sale"
)

// ErrUnavailable means a backend did not answer; nothing is known to have
// changed. Retry in a moment.
var ErrUnavailable = errors.New("service unavailable")

// book is the database's side: the decisions and the scans that find work.
type book interface {
	Order(ctx context.Context, id sale.OrderID) (sale.Order, error)
	Pay(ctx context.Context, id sale.OrderID, user sale.UserID, ref string, at time.Time) (sale.Order, bool, error)
	Cancel(ctx context.Context, id sale.OrderID, user sale.UserID, at time.Time) (sale.Order, bool, error)
	Expire(ctx context.Context, ids []sale.OrderID, at time.Time) ([]sale.OrderID, error)
	DueForExpiry(ctx context.Context, at time.Time, limit int) ([]sale.OrderID, error)
	RecentlyReturned(ctx context.Context, since time.Time, limit int) ([]sale.OrderID, error)
}

// pending finds orders the ledger still holds as queued.
type pending interface {
	Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error)
}

// Return is what the ledger did for one item's returned units.
type Return struct {
	Item sale.ItemID
	// Units is how many units this call put back (0 on a repeat).
	Units int64
	// Gen is the item's stock generation after the call.
	Gen int64
}

// Ledger takes back the units of cancelled and expired orders, at most once
// per order id.
type Ledger interface {
	Return(ctx context.Context, ids ...sale.OrderID) ([]Return, error)
}

// Payments is the payment provider. Charge takes the payment for an order
// and returns the provider's reference (ref is the buyer's, if they sent
// one); Refund gives back a charge whose order could not be paid after all
// (it lost the race to an expiry or a cancel, or another payment won).
type Payments interface {
	Charge(ctx context.Context, o sale.Order, ref string) (string, error)
	Refund(ctx context.Context, o sale.Order, ref string) error
}

// Scheduler runs named tasks at their times, at least once, even if this
// process dies (the durable delay queue). ScheduleAll schedules a batch in
// one round trip.
type Scheduler interface {
	ScheduleAll(ctx context.Context, tasks map[string]time.Time) error
}

// TaskPrefix starts the delay-queue task that expires one order.
const TaskPrefix = "expire-order:"

// Options tunes the background passes. Zero fields take the defaults noted.
type Options struct {
	// Every is how often the expiry scan and the return sweep run; 1s.
	Every time.Duration
	// ScanLimit is the most orders one scan expires; 500.
	ScanLimit int
	// SweepWindow is how far back the sweep looks for returned orders; 3m.
	SweepWindow time.Duration
	// SweepLimit is the most orders one sweep re-applies; 5000.
	SweepLimit int
}

// stockNotifier is the part of sale.Notifier the lifecycle uses: units came back.
type stockNotifier interface {
	StockBack(item sale.ItemID, gen int64)
}

// Deps are the collaborators of the lifecycle use case.
type Deps struct {
	Book     book
	Pending  pending
	Ledger   Ledger
	Payments Payments
	Delay    Scheduler
	// Notify, if set, is told of each item that got units back, so the
	// sold-out flag clears on every instance.
	Notify  stockNotifier
	Log     *slog.Logger
	Now     func() time.Time
	Options Options
}

// Service runs the lifecycle use cases. It is safe for concurrent use.
type Service struct {
	d Deps

	paid, cancelled, expired, returned atomic.Uint64
}

// New returns the lifecycle service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Options.Every <= 0 {
		d.Options.Every = time.Second
	}
	if d.Options.ScanLimit <= 0 {
		d.Options.ScanLimit = 500
	}
	if d.Options.SweepWindow <= 0 {
		d.Options.SweepWindow = 3 * time.Minute
	}
	if d.Options.SweepLimit <= 0 {
		d.Options.SweepLimit = 5000
	}
	return &Service{d: d}
}

// find returns the user's order as it stands: decided in the database, or
// still queued in the ledger. Another user's order is ErrOrderNotFound.
func (s *Service) find(ctx context.Context, user sale.UserID, id sale.OrderID) (sale.Order, error) {
	o, err := s.d.Book.Order(ctx, id)
	if errors.Is(err, sale.ErrOrderNotFound) {
		o, err = s.d.Pending.Lookup(ctx, id)
		if errors.Is(err, sale.ErrOrderNotFound) {
			// Confirmed and settled between the two reads.
			o, err = s.d.Book.Order(ctx, id)
		}
	}
	if err != nil {
		if errors.Is(err, sale.ErrOrderNotFound) {
			return sale.Order{}, err
		}
		return sale.Order{}, unavailable("order lookup", err)
	}
	if o.UserID != user {
		return sale.Order{}, sale.ErrOrderNotFound
	}
	return o, nil
}

// Pay pays for the user's confirmed order before its deadline and returns
// it paid. Paying a paid order returns it unchanged. It returns
// ErrOrderNotFound for an unknown order or another user's,
// ErrPaymentWindowClosed once it expired or was cancelled (or the deadline
// passed), ErrOrderPending while it is queued and ErrOrderFailed for a
// failed order; in each of those cases nothing changes and nothing stays
// charged. A charge whose order ended paid by it is never refunded: when
// the update's answer is lost, Pay settles it first (settlePay).
func (s *Service) Pay(ctx context.Context, user sale.UserID, id sale.OrderID, ref string) (sale.Order, error) {
	o, err := s.find(ctx, user, id)
	if err != nil {
		return sale.Order{}, err
	}
	if o.Status != sale.OrderConfirmed {
		return o, sale.PayAnswer(o)
	}
	at := s.d.Now()
	if !at.Before(o.PayBy) {
		// Too late already: do not charge for what cannot be paid, and let
		// the expiry (which may not have run yet) give the unit back.
		s.expireSoon(ctx, o.ID)
		return o, sale.ErrPaymentWindowClosed
	}
	charged, err := s.d.Payments.Charge(ctx, o, ref)
	if err != nil {
		return sale.Order{}, unavailable("payment", err)
	}
	got, applied, err := s.d.Book.Pay(ctx, id, user, charged, at)
	if err != nil {
		// The update may have committed and only its answer been lost (a
		// request deadline, a dropped connection): settle it before
		// deciding whether this charge bought anything.
		if got, applied, err = s.settlePay(ctx, o, charged, at, err); err != nil {
			return sale.Order{}, err
		}
	}
	if !applied {
		// Another payment, a cancel or the expiry got there first: this
		// charge bought nothing.
		s.refund(ctx, o, charged)
		return got, sale.PayAnswer(got)
	}
	s.paid.Add(1)
	return got, nil
}

// payReadTimeout bounds settlePay, which runs on a context of its own.
const payReadTimeout = 5 * time.Second

// settlePay finds out what a payment update whose answer was lost (failed
// with err) did, on a context that is not the request's, which may be what
// ended. It reads the order back; an order still confirmed gets the same
// conditional update once more, because the first may still be in flight
// (a database runs a statement it has received even when the client has
// gone), and of the two only one can move it from confirmed, with the same
// charge. It returns the order and whether the payment applied as Book.Pay
// does, or, when the outcome stays unknown, an error and no refund: a
// refund is only ever made for an order known not to be paid by this
// charge.
func (s *Service) settlePay(ctx context.Context, o sale.Order, charged string, at time.Time, err error) (sale.Order, bool, error) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), payReadTimeout)
	defer cancel()
	got, rerr := s.d.Book.Order(dctx, o.ID)
	if rerr == nil && got.Status != sale.OrderConfirmed {
		// Paid with this charge's reference: the lost answer was a
		// success. Anything else was decided without this charge.
		return got, got.Status == sale.OrderPaid && got.PaymentRef == charged, nil
	}
	applied := false
	if rerr == nil {
		got, applied, rerr = s.d.Book.Pay(dctx, o.ID, o.UserID, charged, at)
	}
	if rerr != nil {
		s.d.Log.Error("a payment's outcome is unknown: its charge is kept, not refunded; reconcile it with the provider",
			"order_id", o.ID, "payment_ref", charged, "err", err, "read_err", rerr)
		return sale.Order{}, false, unavailable("record payment", err)
	}
	return got, applied, nil
}

// refund gives back a charge whose payment the database did not record.
// It runs detached from the request, which may be ending.
func (s *Service) refund(ctx context.Context, o sale.Order, ref string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.d.Payments.Refund(ctx, o, ref); err != nil {
		s.d.Log.Error("refund of a charge whose order was not paid failed", "order_id", o.ID, "payment_ref", ref, "err", err)
	}
}

// Cancel cancels the user's confirmed order and gives its unit back to both
// stores; cancelling a cancelled order returns it unchanged. It returns
// ErrOrderNotFound for an unknown order or another user's, ErrAlreadyPaid
// for a paid order, ErrPaymentWindowClosed for an expired one,
// ErrOrderPending while it is queued and ErrOrderFailed for a failed one.
func (s *Service) Cancel(ctx context.Context, user sale.UserID, id sale.OrderID) (sale.Order, error) {
	o, err := s.find(ctx, user, id)
	if err != nil {
		return sale.Order{}, err
	}
	if o.Status != sale.OrderConfirmed {
		if o.Status == sale.OrderCancelled {
			// A repeat; make sure the ledger has the unit (idempotent).
			s.giveBack(ctx, o.ID)
		}
		return o, sale.CancelAnswer(o)
	}
	got, applied, err := s.d.Book.Cancel(ctx, id, user, s.d.Now())
	if err != nil {
		return sale.Order{}, unavailable("cancel", err)
	}
	if applied {
		s.cancelled.Add(1)
		s.giveBack(ctx, id)
	}
	return got, sale.CancelAnswer(got)
}

// Expire expires one order if it is still confirmed and past its deadline,
// and gives its unit back; for any other order it does nothing. It is the
// delay queue's handler for TaskPrefix tasks, so it must be idempotent.
func (s *Service) Expire(ctx context.Context, id sale.OrderID) error {
	got, err := s.d.Book.Expire(ctx, []sale.OrderID{id}, s.d.Now())
	if err != nil {
		return unavailable("expire", err)
	}
	s.expired.Add(uint64(len(got)))
	if len(got) > 0 {
		s.giveBack(ctx, got...)
	}
	return nil
}

// ScanOnce expires up to Options.ScanLimit orders whose deadline has
// passed, found in the database, and returns how many it expired. It is the
// backstop for delay-queue tasks that were lost or are late.
func (s *Service) ScanOnce(ctx context.Context) (int, error) {
	at := s.d.Now()
	due, err := s.d.Book.DueForExpiry(ctx, at, s.d.Options.ScanLimit)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	got, err := s.d.Book.Expire(ctx, due, at)
	if err != nil {
		return 0, err
	}
	s.expired.Add(uint64(len(got)))
	if len(got) > 0 {
		s.giveBack(ctx, got...)
	}
	return len(got), nil
}

// SweepOnce re-applies the ledger return of every order cancelled or
// expired within Options.SweepWindow and returns how many units it put
// back: normally none, since the return ran right after the decision; after
// a crash between the two, the missing ones.
func (s *Service) SweepOnce(ctx context.Context) (int64, error) {
	ids, err := s.d.Book.RecentlyReturned(ctx, s.d.Now().Add(-s.d.Options.SweepWindow), s.d.Options.SweepLimit)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	units, err := s.returnUnits(ctx, ids)
	if units > 0 {
		s.d.Log.Warn("returned units the ledger had missed after their orders were cancelled or expired", "units", units)
	}
	return units, err
}

// giveBack runs the ledger return right after a decision. A failure is only
// logged: the decision stands, and the sweep retries the return.
func (s *Service) giveBack(ctx context.Context, ids ...sale.OrderID) {
	if _, err := s.returnUnits(context.WithoutCancel(ctx), ids); err != nil {
		s.d.Log.Warn("ledger return failed; the sweep will retry it", "orders", len(ids), "err", err)
	}
}

func (s *Service) returnUnits(ctx context.Context, ids []sale.OrderID) (int64, error) {
	rs, err := s.d.Ledger.Return(ctx, ids...)
	var units int64
	for _, r := range rs {
		units += r.Units
		if r.Units > 0 && s.d.Notify != nil {
			s.d.Notify.StockBack(r.Item, r.Gen)
		}
	}
	s.returned.Add(uint64(units))
	return units, err
}

// expireSoon runs the expiry of an order the caller found past its
// deadline, so that the unit comes back without waiting for the scan.
func (s *Service) expireSoon(ctx context.Context, id sale.OrderID) {
	if err := s.Expire(context.WithoutCancel(ctx), id); err != nil {
		s.d.Log.Warn("expiry of an order past its deadline failed; the scan will retry it", "order_id", id, "err", err)
	}
}

// ScheduleExpiry puts each confirmed order's expiry into the delay queue at
// its deadline. A failure is logged, not returned: the scan expires the
// order anyway.
func (s *Service) ScheduleExpiry(ctx context.Context, deadlines map[sale.OrderID]time.Time) {
	if s.d.Delay == nil {
		return
	}
	tasks := make(map[string]time.Time, len(deadlines))
	for id, at := range deadlines {
		tasks[TaskPrefix+string(id)] = at
	}
	if err := s.d.Delay.ScheduleAll(ctx, tasks); err != nil {
		s.d.Log.Warn("scheduling order expiries failed; the database scan will expire them", "orders", len(tasks), "err", err)
	}
}

// RunTask runs one TaskPrefix task. ok is false for a task that is not
// this package's. A malformed order id is dropped.
func (s *Service) RunTask(ctx context.Context, task string) (ok bool, err error) {
	raw, ok := strings.CutPrefix(task, TaskPrefix)
	if !ok {
		return false, nil
	}
	id, perr := sale.ParseOrderID(raw)
	if perr != nil {
		s.d.Log.Warn("malformed expiry task dropped", "task", task)
		return true, nil //nolint:nilerr // dropped, not retried: a malformed task fails the same way forever
	}
	return true, s.Expire(ctx, id)
}

// Run scans for due orders and sweeps returns every Options.Every until
// ctx is done.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.d.Options.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Drain a backlog of due orders in one tick rather than 500 a
		// second.
		for {
			n, err := s.ScanOnce(ctx)
			if err != nil && ctx.Err() == nil {
				s.d.Log.Warn("expiry scan failed", "err", err)
			}
			if err != nil || n < s.d.Options.ScanLimit {
				break
			}
		}
		if _, err := s.SweepOnce(ctx); err != nil && ctx.Err() == nil {
			s.d.Log.Warn("return sweep failed", "err", err)
		}
	}
}

// Stats counts what this instance's service did.
type Stats struct{ Paid, Cancelled, Expired, Returned uint64 }

// Stats returns the counters, for metrics.
func (s *Service) Stats() Stats {
	return Stats{Paid: s.paid.Load(), Cancelled: s.cancelled.Load(), Expired: s.expired.Load(), Returned: s.returned.Load()}
}

func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
}
