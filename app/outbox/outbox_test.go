package outbox

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

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fakePub struct {
	mu    sync.Mutex
	fail  bool
	got   []sale.Order
	calls int
}

func (p *fakePub) Publish(_ context.Context, orders ...sale.Order) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fail {
		return errors.New("kafka down")
	}
	p.got = append(p.got, orders...)
	return nil
}

// fakeOutbox is the ledger's outbox: pending orders, each with an age, due
// until marked published.
type fakeOutbox struct {
	mu        sync.Mutex
	pending   map[sale.OrderID]sale.Order
	age       map[sale.OrderID]time.Duration
	published map[sale.OrderID]bool
	settled   map[sale.OrderID]bool
	released  map[sale.OrderID]int
	// dueErr is what Due reports beside the orders it returns: a part of
	// the ledger it could not read.
	dueErr error
}

func newOutbox() *fakeOutbox {
	return &fakeOutbox{pending: map[sale.OrderID]sale.Order{}, age: map[sale.OrderID]time.Duration{},
		published: map[sale.OrderID]bool{}, settled: map[sale.OrderID]bool{}, released: map[sale.OrderID]int{}}
}

func (f *fakeOutbox) add(o sale.Order, age time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending[o.ID], f.age[o.ID] = o, age
}

func (f *fakeOutbox) Due(_ context.Context, limit int) ([]sale.DueOrder, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sale.DueOrder
	for id, o := range f.pending {
		if !f.published[id] && len(out) < limit {
			out = append(out, sale.DueOrder{Order: o, Age: f.age[id]})
		}
	}
	return out, f.dueErr
}

func (f *fakeOutbox) MarkPublished(_ context.Context, ids ...sale.OrderID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if _, ok := f.pending[id]; ok {
			f.published[id] = true
		}
	}
	return nil
}

func (f *fakeOutbox) Settle(_ context.Context, ids ...sale.OrderID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		delete(f.pending, id)
		f.settled[id] = true
	}
	return nil
}

func (f *fakeOutbox) Release(_ context.Context, id sale.OrderID) (bool, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pending[id]; !ok {
		return false, 0, nil
	}
	delete(f.pending, id)
	f.released[id]++
	return true, 5, nil
}

func (f *fakeOutbox) Drop(_ context.Context, id sale.OrderID) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pending[id]; !ok {
		return false, nil
	}
	delete(f.pending, id)
	return true, nil
}

// fakeBook is the database's record of fates; a fate once written stands.
type fakeBook struct {
	mu    sync.Mutex
	fates map[sale.OrderID]sale.Fate
}

func (b *fakeBook) Fates(_ context.Context, ids []sale.OrderID) (map[sale.OrderID]sale.Fate, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[sale.OrderID]sale.Fate{}
	for _, id := range ids {
		if f, ok := b.fates[id]; ok {
			out[id] = f
		}
	}
	return out, nil
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

func orderAt(user string, at time.Time) sale.Order {
	return sale.NewOrder(sale.Item{ID: 1, PriceCents: 10}, sale.UserID(user), at)
}

// TestRelayPublishesDueAndLetsTheDatabaseDecideOld: due orders younger than
// GiveUp are published again (and survive a failed publish); older ones are
// decided by the database: settled if a worker confirmed them, otherwise
// recorded failed and released exactly once.
func TestRelayPublishesDueAndLetsTheDatabaseDecideOld(t *testing.T) {
	t.Parallel()
	now := time.Now()
	due, lostConfirmed, abandoned := orderAt("a", now), orderAt("b", now), orderAt("c", now)
	box := newOutbox()
	box.add(due, 10*time.Second)
	box.add(lostConfirmed, time.Hour)
	box.add(abandoned, time.Hour)
	// A worker confirmed b, but its settle never reached the ledger.
	book := &fakeBook{fates: map[sale.OrderID]sale.Fate{lostConfirmed.ID: {Status: sale.OrderConfirmed}}}
	pub := &fakePub{}
	var back []sale.ItemID
	r := NewRelay(RelayDeps{Ledger: box, Book: book, Publisher: pub, Log: quiet,
		Notify: stockBackFunc(func(item sale.ItemID, _ int64) { back = append(back, item) })}, RelayOptions{GiveUp: 10 * time.Minute})

	pub.fail = true
	if err := r.Once(context.Background()); err == nil {
		t.Fatal("a failed publish was reported as success")
	}
	if _, ok := box.pending[due.ID]; !ok || box.published[due.ID] {
		t.Fatal("an order left the outbox although its publish failed")
	}
	if !box.settled[lostConfirmed.ID] || box.released[lostConfirmed.ID] != 0 {
		t.Fatal("an order the database confirmed was not settled, or was released")
	}
	if book.fates[abandoned.ID].Status != sale.OrderFailed || box.released[abandoned.ID] != 1 || len(back) != 1 {
		t.Fatalf("the abandoned order: fate %+v, released %d, stock-back %v; want failed in the database first, released once",
			book.fates[abandoned.ID], box.released[abandoned.ID], back)
	}

	pub.fail = false
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(pub.got) != 1 || pub.got[0].ID != due.ID || !box.published[due.ID] {
		t.Fatalf("published %v, want only the due order, marked published", pub.got)
	}
	if s := r.Stats(); s.Relayed != 1 || s.Expired != 1 || s.Settled != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

// TestRelayPublishesWhatDueCouldRead: when Due returns orders and an error
// (one bucket's master is down), the relay publishes the orders it got and
// reports the error; before, it returned the error and published nothing,
// so one dead master held back every other master's orders.
func TestRelayPublishesWhatDueCouldRead(t *testing.T) {
	t.Parallel()
	o := orderAt("a", time.Now())
	box := newOutbox()
	box.add(o, 10*time.Second)
	dead := errors.New("due orders of item 1: i/o timeout")
	box.dueErr = dead
	pub := &fakePub{}
	r := NewRelay(RelayDeps{Ledger: box, Book: &fakeBook{fates: map[sale.OrderID]sale.Fate{}}, Publisher: pub, Log: quiet}, RelayOptions{GiveUp: 10 * time.Minute})
	if err := r.Once(context.Background()); !errors.Is(err, dead) {
		t.Fatalf("Once = %v, want Due's error reported", err)
	}
	if len(pub.got) != 1 || pub.got[0].ID != o.ID || !box.published[o.ID] {
		t.Fatalf("published %v, want the order Due could read, marked published", pub.got)
	}
}

// TestRelayNeverFailsAnOrderAWorkerConfirmedFirst races the relay's
// decision against a confirmation: when the database already holds the
// order as confirmed at the moment the relay tries to fail it, the fence
// keeps it confirmed and its unit is not released.
func TestRelayNeverFailsAnOrderAWorkerConfirmedFirst(t *testing.T) {
	t.Parallel()
	o := orderAt("a", time.Now())
	box := newOutbox()
	box.add(o, time.Hour)
	book := &racingBook{fakeBook: fakeBook{fates: map[sale.OrderID]sale.Fate{}}, confirmFirst: o.ID}
	r := NewRelay(RelayDeps{Ledger: box, Book: book, Publisher: &fakePub{}, Log: quiet}, RelayOptions{GiveUp: time.Minute})
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if box.released[o.ID] != 0 || !box.settled[o.ID] {
		t.Fatalf("released %d, settled %v; the worker's confirmation must stand", box.released[o.ID], box.settled[o.ID])
	}
}

// racingBook confirms one order between the relay's Fates and its Fail, as
// a worker would.
type racingBook struct {
	fakeBook
	confirmFirst sale.OrderID
}

func (b *racingBook) Fail(ctx context.Context, orders []sale.Order, reason string) (map[sale.OrderID]sale.Fate, error) {
	b.mu.Lock()
	b.fates[b.confirmFirst] = sale.Fate{Status: sale.OrderConfirmed}
	b.mu.Unlock()
	return b.fakeBook.Fail(ctx, orders, reason)
}

func TestDispatcherPublishesAndFlushesOnShutdown(t *testing.T) {
	t.Parallel()
	box := newOutbox()
	pub := &fakePub{}
	d := NewDispatcher(DispatcherDeps{Publisher: pub, Ledger: box, Log: quiet}, DispatcherOptions{Batch: 10, Linger: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	var want []sale.Order
	for i := 0; i < 25; i++ {
		o := orderAt("u", time.Now())
		box.mu.Lock()
		box.pending[o.ID] = o
		box.mu.Unlock()
		want = append(want, o)
		d.Enqueue(o)
	}
	// With an hour of linger only full batches go out before shutdown; the
	// rest must be flushed by the shutdown itself.
	cancel()
	<-done
	if len(pub.got) != 25 {
		t.Fatalf("published %d of 25 accepted orders", len(pub.got))
	}
	if len(box.published) != 25 {
		t.Fatalf("%d of 25 orders marked published in the outbox", len(box.published))
	}
	if d.Stats().Published != 25 {
		t.Fatalf("stats = %+v", d.Stats())
	}
	got := map[sale.OrderID]bool{}
	for _, o := range pub.got {
		got[o.ID] = true
	}
	for _, o := range want {
		if !got[o.ID] || !box.published[o.ID] {
			t.Fatalf("order %s: published %v, marked published %v", o.ID, got[o.ID], box.published[o.ID])
		}
	}
}

// A trickle of orders must fill one batch, not one per sender. The old
// dispatcher's four senders each took the next order into a batch of its
// own, so a trickle went one order per produce call (and per MarkPublished
// and consumer fetch); here, with an hour's linger, none of its four
// batches filled before the shutdown.
func TestDispatcherBatchesATrickleAcrossSenders(t *testing.T) {
	t.Parallel()
	box := newOutbox()
	pub := &fakePub{}
	d := NewDispatcher(DispatcherDeps{Publisher: pub, Ledger: box, Log: quiet}, DispatcherOptions{Batch: 5, Linger: time.Hour, Senders: 4})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	// One order a millisecond, a trickle: the old senders were all waiting
	// by then, and each took the next order. The pauses only give a wrong
	// dispatcher its chance; with an hour's linger no timing can split a
	// batch of the right one.
	for i := 0; i < 7; i++ {
		time.Sleep(time.Millisecond)
		d.Enqueue(orderAt("u", time.Now()))
	}
	// With an hour of linger, only a full batch of five goes out before
	// the shutdown, and in one call; the other two wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for d.Stats().Published < 5 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	pub.mu.Lock()
	calls, got := pub.calls, len(pub.got)
	pub.mu.Unlock()
	if calls != 1 || got != 5 {
		t.Fatalf("before shutdown: %d publish calls carried %d orders, want 1 call of the first 5 (a full batch)", calls, got)
	}
	cancel()
	<-done
	if pub.calls != 2 || len(pub.got) != 7 {
		t.Fatalf("after shutdown: %d publish calls carried %d orders, want 2 calls and all 7", pub.calls, len(pub.got))
	}
}

// stockBackFunc lets a func stand for the notifier.
type stockBackFunc func(item sale.ItemID, gen int64)

func (f stockBackFunc) StockBack(item sale.ItemID, gen int64) { f(item, gen) }
