package worker

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

type msg struct {
	o   sale.Order
	err error
}

func (m msg) DeliveredOrder() (sale.Order, error) { return m.o, m.err }

// fakeFeed hands out its queue once, then blocks until ctx is done.
type fakeFeed struct {
	mu        sync.Mutex
	queue     []msg
	committed []msg
	dead      map[sale.OrderID]string
	deadRaw   int
	log       []string
}

func (f *fakeFeed) Fetch(ctx context.Context, limit int, _ time.Duration) ([]msg, error) {
	f.mu.Lock()
	if len(f.queue) > 0 {
		n := min(limit, len(f.queue))
		out := append([]msg(nil), f.queue[:n]...)
		f.queue = f.queue[n:]
		f.mu.Unlock()
		return out, nil
	}
	f.mu.Unlock()
	<-ctx.Done()
	return nil, ctx.Err()
}

func (f *fakeFeed) Commit(_ context.Context, ds []msg) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.committed = append(f.committed, ds...)
	f.log = append(f.log, "commit")
	return nil
}

func (f *fakeFeed) DeadLetter(_ context.Context, d msg, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d.err != nil {
		f.deadRaw++
	} else {
		f.dead[d.o.ID] = reason
	}
	return nil
}

type fakeLedger struct {
	mu       sync.Mutex
	settled  map[sale.OrderID]bool
	released map[sale.OrderID]int
	dropped  map[sale.OrderID]int
	// failSettle makes that many Settle calls fail, as a Redis that does
	// not answer would.
	failSettle int
	log        *[]string
	// logMu guards *log, which the book appends to as well: the worker's
	// two stages run concurrently.
	logMu *sync.Mutex
}

func (l *fakeLedger) Settle(_ context.Context, ids ...sale.OrderID) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failSettle > 0 {
		l.failSettle--
		return errors.New("redis: i/o timeout")
	}
	for _, id := range ids {
		l.settled[id] = true
	}
	l.logMu.Lock()
	*l.log = append(*l.log, "settle")
	l.logMu.Unlock()
	return nil
}

// Release is idempotent like the real ledger's: only the first call for an
// order gives a unit back.
func (l *fakeLedger) Release(_ context.Context, id sale.OrderID) (bool, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released[id]++
	return l.released[id] == 1, 9, nil
}

// Drop is idempotent like the real ledger's: only the first call for an
// order drops anything.
func (l *fakeLedger) Drop(_ context.Context, id sale.OrderID) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropped[id]++
	return l.dropped[id] == 1, nil
}

// fakeBook decides orders like the real one: an order's first recorded fate
// stands, one live order per user and item, a stock guard, and it can fail
// transiently a number of times first.
type fakeBook struct {
	mu        sync.Mutex
	stock     map[sale.ItemID]int64
	fates     map[sale.OrderID]sale.Fate
	holders   map[string]sale.OrderID // item/user -> live order
	transient int
	log       *[]string
	logMu     *sync.Mutex
}

func holderKey(o sale.Order) string { return o.ItemID.String() + "/" + string(o.UserID) }

func (b *fakeBook) Confirm(_ context.Context, orders []sale.Order) (int, map[sale.OrderID]sale.Fate, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.transient > 0 {
		b.transient--
		return 0, nil, errors.New("connection reset")
	}
	need := map[sale.ItemID]int64{}
	for _, o := range orders {
		if _, dup := b.fates[o.ID]; !dup {
			need[o.ItemID]++
		}
	}
	for item, n := range need {
		left, ok := b.stock[item]
		if !ok {
			return 0, nil, sale.ErrNotFound
		}
		if left < n {
			return 0, nil, sale.ErrStockExhausted
		}
	}
	inserted := 0
	out := map[sale.OrderID]sale.Fate{}
	for _, o := range orders {
		if f, dup := b.fates[o.ID]; dup {
			out[o.ID] = f
			continue
		}
		if _, held := b.holders[holderKey(o)]; held {
			f := sale.Fate{Status: sale.OrderFailed, Reason: "user holds another", Refused: true}
			b.fates[o.ID] = sale.Fate{Status: sale.OrderFailed, Reason: f.Reason}
			out[o.ID] = f
			continue
		}
		b.fates[o.ID] = sale.Fate{Status: sale.OrderConfirmed, PayBy: time.Unix(1900000000, 0)}
		b.holders[holderKey(o)] = o.ID
		b.stock[o.ItemID]--
		inserted++
		out[o.ID] = b.fates[o.ID]
	}
	b.logMu.Lock()
	*b.log = append(*b.log, "confirm")
	b.logMu.Unlock()
	return inserted, out, nil
}

func (b *fakeBook) Fail(_ context.Context, orders []sale.Order, reason string) (map[sale.OrderID]sale.Fate, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[sale.OrderID]sale.Fate{}
	for _, o := range orders {
		if _, ok := b.fates[o.ID]; !ok {
			b.fates[o.ID] = sale.Fate{Status: sale.OrderFailed, Reason: reason}
		}
		out[o.ID] = b.fates[o.ID]
	}
	return out, nil
}

func (b *fakeBook) confirmed(id sale.OrderID) bool { return b.fates[id].Status == sale.OrderConfirmed }

// confirmedLocked is confirmed while the worker may still be running.
func (b *fakeBook) confirmedLocked(id sale.OrderID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.confirmed(id)
}

func (b *fakeBook) count(st sale.OrderStatus) int {
	n := 0
	for _, f := range b.fates {
		if f.Status == st {
			n++
		}
	}
	return n
}

func order(item sale.ItemID, user string) sale.Order {
	it := sale.Item{ID: item, PriceCents: 100}
	return sale.NewOrder(it, sale.UserID(user), time.Now())
}

type rig struct {
	feed   *fakeFeed
	ledger *fakeLedger
	book   *fakeBook
	w      *Worker[msg]
	back   []sale.ItemID
}

func newRig(stock map[sale.ItemID]int64, msgs ...msg) *rig {
	var log []string
	logMu := &sync.Mutex{}
	r := &rig{
		feed:   &fakeFeed{queue: msgs, dead: map[sale.OrderID]string{}},
		ledger: &fakeLedger{settled: map[sale.OrderID]bool{}, released: map[sale.OrderID]int{}, dropped: map[sale.OrderID]int{}, log: &log, logMu: logMu},
		book:   &fakeBook{stock: stock, fates: map[sale.OrderID]sale.Fate{}, holders: map[string]sale.OrderID{}, log: &log, logMu: logMu},
	}
	r.feed.log = log
	r.w = New[msg](Deps[msg]{Feed: r.feed, Ledger: r.ledger, Book: r.book, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Notify: stockBackFunc(func(item sale.ItemID, _ int64) { r.back = append(r.back, item) }),
	}, Options{Batch: 100})
	return r
}

// run lets the worker drain its queue, then stops it.
func (r *rig) run(t *testing.T, want int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.w.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.feed.mu.Lock()
		n := len(r.feed.committed)
		r.feed.mu.Unlock()
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("only %d of %d messages committed", n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConfirmsBatchThenSettlesThenCommits(t *testing.T) {
	t.Parallel()
	a, b := order(1, "a"), order(1, "b")
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: a}, msg{o: b}, msg{o: a}) // a is redelivered
	r.run(t, 3)
	if r.book.count(sale.OrderConfirmed) != 2 || r.book.stock[1] != 3 {
		t.Fatalf("confirmed=%d stock=%d, want 2 and 3", r.book.count(sale.OrderConfirmed), r.book.stock[1])
	}
	if !r.ledger.settled[a.ID] || !r.ledger.settled[b.ID] {
		t.Fatal("confirmed orders not settled")
	}
	log := *r.book.log
	if len(log) < 2 || log[0] != "confirm" || log[1] != "settle" {
		t.Fatalf("order of steps = %v, want confirm then settle", log)
	}
}

// TestLateRedeliveryOfADecidedOrderSettlesAndSchedulesNothing: a message
// redelivered after its order was paid, cancelled or expired is settled
// (not retried forever, not released: a cancelled unit comes back by the
// lifecycle's return), and only still-confirmed orders get an expiry.
func TestLateRedeliveryOfADecidedOrderSettlesAndSchedulesNothing(t *testing.T) {
	t.Parallel()
	paid, cancelled, fresh := order(1, "p"), order(1, "c"), order(1, "f")
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: paid}, msg{o: cancelled}, msg{o: fresh})
	r.book.fates[paid.ID] = sale.Fate{Status: sale.OrderPaid}
	r.book.fates[cancelled.ID] = sale.Fate{Status: sale.OrderCancelled}
	var scheduled map[sale.OrderID]time.Time
	r.w.opts.OnConfirmed = func(_ context.Context, d map[sale.OrderID]time.Time) { scheduled = d }
	r.run(t, 3)
	if !r.ledger.settled[paid.ID] || !r.ledger.settled[cancelled.ID] || r.ledger.released[cancelled.ID] != 0 {
		t.Fatalf("settled %v released %v; want both decided orders settled and none released", r.ledger.settled, r.ledger.released)
	}
	if len(scheduled) != 1 || scheduled[fresh.ID].IsZero() {
		t.Fatalf("expiries scheduled %v; want only the fresh order's, at its pay_by", scheduled)
	}
}

// TestOrdersFailedElsewhereAreReleasedNotConfirmed: an order the relay (or
// another worker) recorded as failed first keeps that fate; the worker
// gives its unit back (the ledger may not have yet) and never settles it.
func TestOrdersFailedElsewhereAreReleasedNotConfirmed(t *testing.T) {
	t.Parallel()
	a, b := order(1, "a"), order(1, "b")
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: a}, msg{o: b})
	r.book.fates[a.ID] = sale.Fate{Status: sale.OrderFailed, Reason: "given up"}
	r.run(t, 2)
	if r.book.confirmed(a.ID) || r.ledger.settled[a.ID] {
		t.Fatal("a failed order was confirmed or settled: its unit would be sold twice")
	}
	if r.ledger.released[a.ID] != 1 {
		t.Fatalf("the failed order was released %d times, want once", r.ledger.released[a.ID])
	}
	if !r.book.confirmed(b.ID) || !r.ledger.settled[b.ID] {
		t.Fatal("the live order was not confirmed and settled")
	}
	if len(r.feed.dead) != 0 {
		t.Fatalf("dead-lettered %v; an order failed elsewhere was already handled", r.feed.dead)
	}
}

// TestRefusedOrderIsDeadLetteredAndReleased: an order whose user already
// holds another live order for the item (the ledger had forgotten the
// buyer) must not vanish as if confirmed: it is recorded failed, goes to
// the dead-letter topic with the reason, and its unit comes back (the
// ledger may have lost the buyer's record only, and then the unit is real;
// if it lost the stock too, the reconciler trims the surplus).
func TestRefusedOrderIsDeadLetteredAndReleased(t *testing.T) {
	t.Parallel()
	first, second := order(1, "alice"), order(1, "alice")
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: first}, msg{o: second})
	r.run(t, 2)
	if !r.book.confirmed(first.ID) || !r.ledger.settled[first.ID] {
		t.Fatal("the first order was not confirmed and settled")
	}
	if r.ledger.settled[second.ID] {
		t.Fatal("the refused order was settled: it would answer 404 and its unit would be lost")
	}
	if r.feed.dead[second.ID] == "" || r.ledger.released[second.ID] != 1 {
		t.Fatalf("refused order: dead=%q released=%d; want dead-lettered with a reason and released once",
			r.feed.dead[second.ID], r.ledger.released[second.ID])
	}
	if r.book.fates[second.ID].Status != sale.OrderFailed || r.book.stock[1] != 4 {
		t.Fatalf("refused order fate %+v, stock %d; want failed and one unit taken", r.book.fates[second.ID], r.book.stock[1])
	}
}

func TestPoisonOrdersAreDeadLetteredAndReleased(t *testing.T) {
	t.Parallel()
	good, ghost := order(1, "a"), order(99, "b") // item 99 does not exist
	garbage := msg{err: sale.ErrInvalid}
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: good}, msg{o: ghost}, garbage)
	r.run(t, 3)
	if !r.book.confirmed(good.ID) {
		t.Fatal("the good order in a poisoned batch was not confirmed")
	}
	if r.feed.dead[ghost.ID] == "" || r.ledger.released[ghost.ID] != 1 || r.book.fates[ghost.ID].Status != sale.OrderFailed {
		t.Fatalf("ghost order: dead=%q released=%d fate=%+v", r.feed.dead[ghost.ID], r.ledger.released[ghost.ID], r.book.fates[ghost.ID])
	}
	if r.feed.deadRaw != 1 {
		t.Fatalf("undecodable messages dead-lettered = %d, want 1", r.feed.deadRaw)
	}
	if len(r.back) != 1 || r.back[0] != 99 {
		t.Fatalf("stock-back notifications = %v", r.back)
	}
	if s := r.w.Stats(); s.DeadLettered != 2 || s.Confirmed != 1 || s.Released != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestStockGuardIsolatesTheOverflow(t *testing.T) {
	t.Parallel()
	a, b, c := order(1, "a"), order(1, "b"), order(1, "c")
	r := newRig(map[sale.ItemID]int64{1: 2}, msg{o: a}, msg{o: b}, msg{o: c})
	r.run(t, 3)
	if r.book.count(sale.OrderConfirmed) != 2 || r.book.stock[1] != 0 {
		t.Fatalf("confirmed=%d stock=%d: the guard must cap confirmed orders at stock", r.book.count(sale.OrderConfirmed), r.book.stock[1])
	}
	if len(r.feed.dead) != 1 || r.book.count(sale.OrderFailed) != 1 {
		t.Fatalf("dead-lettered %d, failed %d; want the 1 order over stock", len(r.feed.dead), r.book.count(sale.OrderFailed))
	}
}

// TestStockGuardRefusalIsAPhantomNotReleased: the database refuses an order
// for stock exhaustion only when the ledger sold a unit the database does
// not have (the ledger lost writes). That unit must not go back on sale:
// released, it would be sold, refused and released again for as long as
// buyers come. The order ends failed with a reason its buyer can read, and
// its ledger record is dropped, once.
func TestStockGuardRefusalIsAPhantomNotReleased(t *testing.T) {
	t.Parallel()
	a, b, c := order(1, "a"), order(1, "b"), order(1, "c")
	r := newRig(map[sale.ItemID]int64{1: 2}, msg{o: a}, msg{o: b}, msg{o: c}, msg{o: c})
	r.run(t, 4)
	var phantom sale.OrderID
	for _, o := range []sale.Order{a, b, c} {
		if r.book.fates[o.ID].Status == sale.OrderFailed {
			phantom = o.ID
		}
	}
	if phantom == "" {
		t.Fatal("no order failed on the stock guard")
	}
	if f := r.book.fates[phantom]; f.Reason != sale.ReasonLedgerRolledBack {
		t.Fatalf("phantom's fate %+v, want reason %q", f, sale.ReasonLedgerRolledBack)
	}
	if r.ledger.released[phantom] != 0 || len(r.back) != 0 {
		t.Fatalf("the phantom's unit was given back (released %d times, stock-back %v): it would be sold again", r.ledger.released[phantom], r.back)
	}
	if r.ledger.dropped[phantom] == 0 {
		t.Fatal("the phantom's ledger record was not dropped")
	}
	if s := r.w.Stats(); s.Dropped != 1 || s.Released != 0 {
		t.Fatalf("stats = %+v, want 1 dropped and none released", s)
	}
}

func TestTransientFailureRetriesWithoutCommitting(t *testing.T) {
	t.Parallel()
	a := order(1, "a")
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: a})
	r.book.transient = 2
	r.run(t, 1)
	if !r.book.confirmed(a.ID) {
		t.Fatal("order lost after transient database errors")
	}
	if len(r.feed.dead) != 0 {
		t.Fatal("a transient error dead-lettered an order")
	}
}

// TestFollowFailureNeverCommitsALaterBatch: while the ledger cannot follow
// one batch (Settle fails), the database may decide the next, but no later
// batch is committed before it: offsets are committed in batch order, each
// after its own batch is settled.
func TestFollowFailureNeverCommitsALaterBatch(t *testing.T) {
	t.Parallel()
	a, b, c := order(1, "a"), order(1, "b"), order(1, "c")
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: a}, msg{o: b}, msg{o: c})
	r.w.opts.Batch = 1 // one message per batch
	r.ledger.failSettle = 2
	r.run(t, 3)
	r.feed.mu.Lock()
	defer r.feed.mu.Unlock()
	for i, want := range []sale.Order{a, b, c} {
		if got := r.feed.committed[i].o.ID; got != want.ID {
			t.Fatalf("commit %d is %s, want %s: offsets committed out of batch order", i, got, want.ID)
		}
	}
	for _, o := range []sale.Order{a, b, c} {
		if !r.ledger.settled[o.ID] {
			t.Fatalf("order %s committed but never settled", o.ID)
		}
	}
}

// TestStopWhileFollowFailsCommitsNothingLater: a stop request while the
// ledger cannot follow a batch leaves that batch, and any decided after
// it, uncommitted for redelivery, and Run returns.
func TestStopWhileFollowFailsCommitsNothingLater(t *testing.T) {
	t.Parallel()
	a, b := order(1, "a"), order(1, "b")
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: a}, msg{o: b})
	r.w.opts.Batch = 1
	r.ledger.failSettle = 1 << 30
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.w.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !r.book.confirmedLocked(b.ID) {
		if time.Now().After(deadline) {
			t.Fatal("the second batch was never decided while the first could not be settled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the stop request")
	}
	r.feed.mu.Lock()
	defer r.feed.mu.Unlock()
	if len(r.feed.committed) != 0 {
		t.Fatalf("committed %d messages while their batches were never settled", len(r.feed.committed))
	}
}

// stockBackFunc lets a func stand for the notifier.
type stockBackFunc func(item sale.ItemID, gen int64)

func (f stockBackFunc) StockBack(item sale.ItemID, gen int64) { f(item, gen) }
