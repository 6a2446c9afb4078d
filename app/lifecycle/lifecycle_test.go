package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"seckill/domain/sale"
)

var (
	t0    = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
	item  = sale.Item{ID: 3, PriceCents: 100, StockTotal: 10, StockLeft: 10, StartsAt: t0, EndsAt: t0.Add(time.Hour)}
)

// memBook is the database in memory, with the real store's rule: every
// decision changes status only from confirmed, under one lock.
type memBook struct {
	mu        sync.Mutex
	orders    map[sale.OrderID]sale.Order
	updated   map[sale.OrderID]time.Time
	stockLeft int64
	fail      error
}

func newBook() *memBook {
	return &memBook{orders: map[sale.OrderID]sale.Order{}, updated: map[sale.OrderID]time.Time{}, stockLeft: item.StockTotal}
}

func (b *memBook) confirm(user string, payBy time.Time) sale.Order {
	b.mu.Lock()
	defer b.mu.Unlock()
	o := sale.NewOrder(item, sale.UserID(user), t0)
	o.Status, o.PayBy = sale.OrderConfirmed, payBy
	b.orders[o.ID] = o
	b.stockLeft--
	return o
}

func (b *memBook) Order(_ context.Context, id sale.OrderID) (sale.Order, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return sale.Order{}, b.fail
	}
	o, ok := b.orders[id]
	if !ok {
		return sale.Order{}, sale.ErrOrderNotFound
	}
	return o, nil
}

func (b *memBook) decide(id sale.OrderID, to sale.OrderStatus, at time.Time, guard func(sale.Order) bool) (sale.Order, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return sale.Order{}, false, b.fail
	}
	o, ok := b.orders[id]
	if !ok {
		return sale.Order{}, false, sale.ErrOrderNotFound
	}
	if o.Status != sale.OrderConfirmed || !guard(o) {
		return o, false, nil
	}
	o.Status = to
	if to != sale.OrderPaid {
		b.stockLeft++
	}
	b.orders[id] = o
	b.updated[id] = at
	return o, true, nil
}

func (b *memBook) Pay(_ context.Context, id sale.OrderID, user sale.UserID, ref string, at time.Time) (sale.Order, bool, error) {
	o, ok, err := b.decide(id, sale.OrderPaid, at, func(o sale.Order) bool { return o.UserID == user && o.PayBy.After(at) })
	if ok {
		b.mu.Lock()
		o.PaidAt, o.PaymentRef = at, ref
		b.orders[id] = o
		b.mu.Unlock()
	}
	return o, ok, err
}

func (b *memBook) Cancel(_ context.Context, id sale.OrderID, user sale.UserID, at time.Time) (sale.Order, bool, error) {
	return b.decide(id, sale.OrderCancelled, at, func(o sale.Order) bool { return o.UserID == user })
}

func (b *memBook) Expire(_ context.Context, ids []sale.OrderID, at time.Time) ([]sale.OrderID, error) {
	var out []sale.OrderID
	for _, id := range ids {
		_, ok, err := b.decide(id, sale.OrderExpired, at, func(o sale.Order) bool { return !o.PayBy.After(at) })
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, id)
		}
	}
	return out, nil
}

func (b *memBook) DueForExpiry(_ context.Context, at time.Time, limit int) ([]sale.OrderID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []sale.OrderID
	for id, o := range b.orders {
		if o.Status == sale.OrderConfirmed && !o.PayBy.After(at) && len(out) < limit {
			out = append(out, id)
		}
	}
	return out, nil
}

func (b *memBook) RecentlyReturned(_ context.Context, since time.Time, limit int) ([]sale.OrderID, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []sale.OrderID
	for id, o := range b.orders {
		if o.Status.Returned() && !b.updated[id].Before(since) && len(out) < limit {
			out = append(out, id)
		}
	}
	return out, nil
}

// memPending holds queued orders.
type memPending map[sale.OrderID]sale.Order

func (p memPending) Lookup(_ context.Context, id sale.OrderID) (sale.Order, error) {
	if o, ok := p[id]; ok {
		return o, nil
	}
	return sale.Order{}, sale.ErrOrderNotFound
}

// memLedger is the ledger's stock and return marks.
type memLedger struct {
	mu       sync.Mutex
	stock    int64
	gen      int64
	returned map[sale.OrderID]bool
	down     bool // Return fails, as after a crash before it
}

func (l *memLedger) Return(_ context.Context, ids ...sale.OrderID) ([]Return, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil, errors.New("redis down")
	}
	var n int64
	for _, id := range ids {
		if !l.returned[id] {
			l.returned[id] = true
			n++
		}
	}
	if n > 0 {
		l.stock += n
		l.gen++
	}
	return []Return{{Item: item.ID, Units: n, Gen: l.gen}}, nil
}

type memPayments struct {
	mu               sync.Mutex
	charges, refunds int
}

func (p *memPayments) Charge(_ context.Context, _ sale.Order, ref string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.charges++
	if ref == "" {
		ref = "auto"
	}
	return ref, nil
}

func (p *memPayments) Refund(context.Context, sale.Order, string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refunds++
	return nil
}

type rigged struct {
	svc     *Service
	book    *memBook
	ledger  *memLedger
	pay     *memPayments
	pending memPending
	now     time.Time
	back    []int64
}

func newRig() *rigged {
	r := &rigged{book: newBook(), ledger: &memLedger{returned: map[sale.OrderID]bool{}}, pay: &memPayments{}, pending: memPending{}, now: t0}
	r.svc = New(Deps{Book: r.book, Pending: r.pending, Ledger: r.ledger, Payments: r.pay, Log: quiet,
		Now:    func() time.Time { return r.now },
		Notify: stockBackFunc(func(_ sale.ItemID, gen int64) { r.back = append(r.back, gen) })})
	return r
}

// TestAnswers checks every row of the table for pay and cancel.
func TestAnswers(t *testing.T) {
	t.Parallel()
	r := newRig()
	ctx := context.Background()
	deadline := t0.Add(time.Minute)
	paid := r.book.confirm("p", deadline)
	cancelled := r.book.confirm("c", deadline)
	lapsed := r.book.confirm("l", deadline)
	queued := sale.NewOrder(item, "q", t0)
	r.pending[queued.ID] = queued
	failed := sale.NewOrder(item, "f", t0)
	failed.Status = sale.OrderFailed
	r.book.orders[failed.ID] = failed

	if o, err := r.svc.Pay(ctx, "p", paid.ID, "r1"); err != nil || o.Status != sale.OrderPaid || o.PaymentRef != "r1" {
		t.Fatalf("Pay = %+v, %v", o, err)
	}
	if _, err := r.svc.Cancel(ctx, "c", cancelled.ID); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	r.now = deadline
	if _, err := r.svc.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if o, _ := r.book.Order(ctx, lapsed.ID); o.Status != sale.OrderExpired {
		t.Fatalf("after the scan the unpaid order is %s", o.Status)
	}
	charges := r.pay.charges

	cases := []struct {
		name string
		user sale.UserID
		id   sale.OrderID
		pay  bool
		want error
	}{
		{"pay again", "p", paid.ID, true, nil},
		{"pay cancelled", "c", cancelled.ID, true, sale.ErrPaymentWindowClosed},
		{"pay expired", "l", lapsed.ID, true, sale.ErrPaymentWindowClosed},
		{"pay queued", "q", queued.ID, true, sale.ErrOrderPending},
		{"pay failed", "f", failed.ID, true, sale.ErrOrderFailed},
		{"pay someone else's", "mallory", paid.ID, true, sale.ErrOrderNotFound},
		{"pay unknown", "p", sale.NewOrderID(item.ID, t0), true, sale.ErrOrderNotFound},
		{"cancel again", "c", cancelled.ID, false, nil},
		{"cancel paid", "p", paid.ID, false, sale.ErrAlreadyPaid},
		{"cancel expired", "l", lapsed.ID, false, sale.ErrPaymentWindowClosed},
		{"cancel queued", "q", queued.ID, false, sale.ErrOrderPending},
		{"cancel failed", "f", failed.ID, false, sale.ErrOrderFailed},
		{"cancel someone else's", "mallory", cancelled.ID, false, sale.ErrOrderNotFound},
	}
	for _, c := range cases {
		var err error
		if c.pay {
			_, err = r.svc.Pay(ctx, c.user, c.id, "")
		} else {
			_, err = r.svc.Cancel(ctx, c.user, c.id)
		}
		if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if r.pay.charges != charges {
		t.Errorf("the refused requests charged %d times", r.pay.charges-charges)
	}
	// Two units back (cancelled, expired) in both stores, each once.
	if r.book.stockLeft != 10-3+2 || r.ledger.stock != 2 || len(r.back) != 2 {
		t.Fatalf("db stock %d, ledger returned %d, stock-back %v; want 9, 2 and two broadcasts", r.book.stockLeft, r.ledger.stock, r.back)
	}
}

// TestPayAfterTheDeadlineChargesNothingAndExpires: a payment that arrives
// once the deadline has passed is refused before the provider is asked,
// and the order expires on the spot.
func TestPayAfterTheDeadlineChargesNothingAndExpires(t *testing.T) {
	t.Parallel()
	r := newRig()
	o := r.book.confirm("late", t0.Add(time.Second))
	r.now = t0.Add(time.Second)
	if _, err := r.svc.Pay(context.Background(), "late", o.ID, ""); !errors.Is(err, sale.ErrPaymentWindowClosed) {
		t.Fatalf("late Pay: %v", err)
	}
	if r.pay.charges != 0 {
		t.Fatalf("a late payment was charged")
	}
	if got, _ := r.book.Order(context.Background(), o.ID); got.Status != sale.OrderExpired || r.ledger.stock != 1 {
		t.Fatalf("order %s, ledger stock %d; want expired and its unit back", got.Status, r.ledger.stock)
	}
}

// TestPayRacesExpiryOnFakes: 1,000 payments a moment before the deadline
// race the expiry task and the scan. Each order ends paid or expired, only
// the losing charges are refunded, and each expired unit comes back to
// the ledger exactly once.
func TestPayRacesExpiryOnFakes(t *testing.T) {
	t.Parallel()
	const n = 1000
	r := newRig()
	r.book.stockLeft = n
	r.now = t0.Add(time.Minute)
	var orders []sale.Order
	for i := range n {
		orders = append(orders, r.book.confirm(string(rune('a'+i%26))+time.Duration(i).String(), r.now.Add(time.Millisecond)))
	}
	ctx := context.Background()
	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	paid := 0
	for _, o := range orders {
		wg.Go(func() {
			<-start
			if _, err := r.svc.Pay(ctx, o.UserID, o.ID, ""); err == nil {
				mu.Lock()
				paid++
				mu.Unlock()
			}
		})
	}
	// The deadline passes while the payments run: the expiry triggers use
	// a clock past it.
	late := New(Deps{Book: r.book, Pending: r.pending, Ledger: r.ledger, Payments: r.pay, Log: quiet,
		Now: func() time.Time { return t0.Add(time.Minute + time.Millisecond) }})
	for _, o := range orders {
		wg.Go(func() { <-start; _ = late.Expire(ctx, o.ID) })
	}
	wg.Go(func() { <-start; _, _ = late.ScanOnce(ctx) })
	close(start)
	wg.Wait()
	_, _ = late.ScanOnce(ctx)
	expired := 0
	for _, o := range orders {
		got, _ := r.book.Order(ctx, o.ID)
		switch got.Status {
		case sale.OrderPaid:
		case sale.OrderExpired:
			expired++
		default:
			t.Fatalf("order %s ended %s", o.ID, got.Status)
		}
	}
	if paid+expired != n || r.ledger.stock != int64(expired) || r.book.stockLeft != int64(expired) {
		t.Fatalf("paid %d, expired %d, ledger got %d back, db stock %d", paid, expired, r.ledger.stock, r.book.stockLeft)
	}
	if r.pay.charges-r.pay.refunds != paid {
		t.Fatalf("%d charges, %d refunds for %d paid orders", r.pay.charges, r.pay.refunds, paid)
	}
	t.Logf("%d paid, %d expired", paid, expired)
}

// TestSweepRepairsALostReturn: the ledger is down when a cancel is decided
// (as if the process died between the two steps); the next sweep returns
// the unit, and a second sweep does not return it again.
func TestSweepRepairsALostReturn(t *testing.T) {
	t.Parallel()
	r := newRig()
	ctx := context.Background()
	o := r.book.confirm("u", t0.Add(time.Minute))
	r.ledger.down = true
	if _, err := r.svc.Cancel(ctx, "u", o.ID); err != nil {
		t.Fatalf("Cancel with the ledger down: %v (the decision stands; only the return waits)", err)
	}
	if r.ledger.stock != 0 {
		t.Fatal("the ledger got the unit while down")
	}
	r.ledger.down = false
	for range 2 {
		if _, err := r.svc.SweepOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r.ledger.stock != 1 || len(r.back) != 1 {
		t.Fatalf("ledger stock %d, stock-back %v after two sweeps; want the unit back once", r.ledger.stock, r.back)
	}
	// Past the sweep window the order is left to the reconciler.
	r.now = t0.Add(time.Hour)
	if ids, _ := r.book.RecentlyReturned(ctx, r.now.Add(-r.svc.d.Options.SweepWindow), 10); len(ids) != 0 {
		t.Fatalf("the sweep window still covers %v an hour later", ids)
	}
}

// TestRunTaskRoutesOnlyItsOwnTasks: the delay queue's handler takes
// expire-order tasks, drops malformed ones, and leaves others alone.
func TestRunTaskRoutesOnlyItsOwnTasks(t *testing.T) {
	t.Parallel()
	r := newRig()
	o := r.book.confirm("u", t0)
	if ok, err := r.svc.RunTask(context.Background(), TaskPrefix+string(o.ID)); !ok || err != nil {
		t.Fatalf("RunTask = %v, %v", ok, err)
	}
	if got, _ := r.book.Order(context.Background(), o.ID); got.Status != sale.OrderExpired {
		t.Fatalf("the task left the order %s", got.Status)
	}
	if ok, err := r.svc.RunTask(context.Background(), TaskPrefix+"garbage"); !ok || err != nil {
		t.Fatalf("malformed task = %v, %v; want dropped", ok, err)
	}
	if ok, _ := r.svc.RunTask(context.Background(), "invalidate-item:1"); ok {
		t.Fatal("RunTask claimed another package's task")
	}
	r.book.fail = errors.New("db down")
	if _, err := r.svc.RunTask(context.Background(), TaskPrefix+string(o.ID)); err == nil {
		t.Fatal("a failed expiry must be retried by the delay queue")
	}
}

type memScheduler struct{ tasks map[string]time.Time }

func (s *memScheduler) ScheduleAll(_ context.Context, tasks map[string]time.Time) error {
	for k, v := range tasks {
		s.tasks[k] = v
	}
	return nil
}

// TestScheduleExpiryNamesEachOrderAtItsDeadline: the worker's confirmed
// batch becomes one expire-order task per order at its pay_by, which
// RunTask then accepts.
func TestScheduleExpiryNamesEachOrderAtItsDeadline(t *testing.T) {
	t.Parallel()
	r := newRig()
	sched := &memScheduler{tasks: map[string]time.Time{}}
	r.svc.d.Delay = sched
	a, b := r.book.confirm("a", t0.Add(time.Minute)), r.book.confirm("b", t0.Add(2*time.Minute))
	r.svc.ScheduleExpiry(context.Background(), map[sale.OrderID]time.Time{a.ID: a.PayBy, b.ID: b.PayBy})
	if len(sched.tasks) != 2 || !sched.tasks[TaskPrefix+string(a.ID)].Equal(a.PayBy) || !sched.tasks[TaskPrefix+string(b.ID)].Equal(b.PayBy) {
		t.Fatalf("scheduled %v", sched.tasks)
	}
	for task := range sched.tasks {
		if ok, err := r.svc.RunTask(context.Background(), task); !ok || err != nil {
			t.Fatalf("RunTask(%s) = %v, %v", task, ok, err)
		}
	}
}

// stockBackFunc lets a func stand for the notifier.
type stockBackFunc func(item sale.ItemID, gen int64)

func (f stockBackFunc) StockBack(item sale.ItemID, gen int64) { f(item, gen) }
