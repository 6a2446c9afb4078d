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

func (f *fakeFeed) Fetch(ctx context.Context, max int, _ time.Duration) ([]msg, error) {
	f.mu.Lock()
	if len(f.queue) > 0 {
		n := min(max, len(f.queue))
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
	failed   map[sale.OrderID]bool
	settled  map[sale.OrderID]bool
	rejected map[sale.OrderID]string
	log      *[]string
}

func (l *fakeLedger) Claim(_ context.Context, ids ...sale.OrderID) ([]sale.Claim, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]sale.Claim, len(ids))
	for i, id := range ids {
		if l.failed[id] {
			out[i] = sale.ClaimFailed
		}
	}
	return out, nil
}

func (l *fakeLedger) Settle(_ context.Context, ids ...sale.OrderID) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		l.settled[id] = true
	}
	*l.log = append(*l.log, "settle")
	return nil
}

func (l *fakeLedger) Reject(_ context.Context, id sale.OrderID, reason string) (bool, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rejected[id] = reason
	return true, 9, nil
}

// fakeBook confirms orders whose item exists, with a stock guard, and can
// fail transiently a number of times first.
type fakeBook struct {
	mu        sync.Mutex
	stock     map[sale.ItemID]int64
	orders    map[sale.OrderID]sale.Order
	transient int
	log       *[]string
}

func (b *fakeBook) Confirm(_ context.Context, orders []sale.Order) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.transient > 0 {
		b.transient--
		return 0, errors.New("connection reset")
	}
	need := map[sale.ItemID]int64{}
	for _, o := range orders {
		if _, dup := b.orders[o.ID]; !dup {
			need[o.ItemID]++
		}
	}
	for item, n := range need {
		left, ok := b.stock[item]
		if !ok {
			return 0, sale.ErrNotFound
		}
		if left < n {
			return 0, sale.ErrStockExhausted
		}
	}
	inserted := 0
	for _, o := range orders {
		if _, dup := b.orders[o.ID]; !dup {
			b.orders[o.ID] = o
			b.stock[o.ItemID]--
			inserted++
		}
	}
	*b.log = append(*b.log, "confirm")
	return inserted, nil
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
	r := &rig{
		feed:   &fakeFeed{queue: msgs, dead: map[sale.OrderID]string{}},
		ledger: &fakeLedger{failed: map[sale.OrderID]bool{}, settled: map[sale.OrderID]bool{}, rejected: map[sale.OrderID]string{}, log: &log},
		book:   &fakeBook{stock: stock, orders: map[sale.OrderID]sale.Order{}, log: &log},
	}
	r.feed.log = log
	r.w = New[msg](r.feed, r.ledger, r.book, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{
		Batch: 100, OnRejected: func(item sale.ItemID, _ int64) { r.back = append(r.back, item) },
	})
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
	if len(r.book.orders) != 2 || r.book.stock[1] != 3 {
		t.Fatalf("orders=%d stock=%d, want 2 and 3", len(r.book.orders), r.book.stock[1])
	}
	if !r.ledger.settled[a.ID] || !r.ledger.settled[b.ID] {
		t.Fatal("confirmed orders not settled")
	}
	log := *r.book.log
	if len(log) < 2 || log[0] != "confirm" || log[1] != "settle" {
		t.Fatalf("order of steps = %v, want confirm then settle", log)
	}
}

func TestFailedOrdersAreNotConfirmed(t *testing.T) {
	t.Parallel()
	a, b := order(1, "a"), order(1, "b")
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: a}, msg{o: b})
	r.ledger.failed[a.ID] = true // its unit was given back already
	r.run(t, 2)
	if _, ok := r.book.orders[a.ID]; ok {
		t.Fatal("a failed order was confirmed: its unit would be sold twice")
	}
	if _, ok := r.book.orders[b.ID]; !ok {
		t.Fatal("the live order was not confirmed")
	}
}

func TestPoisonOrdersAreDeadLetteredAndReleased(t *testing.T) {
	t.Parallel()
	good, ghost := order(1, "a"), order(99, "b") // item 99 does not exist
	garbage := msg{err: sale.ErrInvalid}
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: good}, msg{o: ghost}, garbage)
	r.run(t, 3)
	if _, ok := r.book.orders[good.ID]; !ok {
		t.Fatal("the good order in a poisoned batch was not confirmed")
	}
	if r.feed.dead[ghost.ID] == "" || r.ledger.rejected[ghost.ID] == "" {
		t.Fatalf("ghost order: dead=%q rejected=%q", r.feed.dead[ghost.ID], r.ledger.rejected[ghost.ID])
	}
	if r.feed.deadRaw != 1 {
		t.Fatalf("undecodable messages dead-lettered = %d, want 1", r.feed.deadRaw)
	}
	if len(r.back) != 1 || r.back[0] != 99 {
		t.Fatalf("stock-back notifications = %v", r.back)
	}
	if s := r.w.Stats(); s.DeadLettered != 2 || s.Confirmed != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestStockGuardIsolatesTheOverflow(t *testing.T) {
	t.Parallel()
	a, b, c := order(1, "a"), order(1, "b"), order(1, "c")
	r := newRig(map[sale.ItemID]int64{1: 2}, msg{o: a}, msg{o: b}, msg{o: c})
	r.run(t, 3)
	if len(r.book.orders) != 2 || r.book.stock[1] != 0 {
		t.Fatalf("orders=%d stock=%d: the guard must cap confirmed orders at stock", len(r.book.orders), r.book.stock[1])
	}
	if len(r.feed.dead) != 1 {
		t.Fatalf("dead-lettered %d, want the 1 order over stock", len(r.feed.dead))
	}
}

func TestTransientFailureRetriesWithoutCommitting(t *testing.T) {
	t.Parallel()
	a := order(1, "a")
	r := newRig(map[sale.ItemID]int64{1: 5}, msg{o: a})
	r.book.transient = 2
	r.run(t, 1)
	if _, ok := r.book.orders[a.ID]; !ok {
		t.Fatal("order lost after transient database errors")
	}
	if len(r.feed.dead) != 0 {
		t.Fatal("a transient error dead-lettered an order")
	}
}
