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
	mu   sync.Mutex
	fail bool
	got  []sale.Order
}

func (p *fakePub) Publish(_ context.Context, orders ...sale.Order) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return errors.New("kafka down")
	}
	p.got = append(p.got, orders...)
	return nil
}

// fakeOutbox is the ledger's outbox: accepted orders until marked published.
type fakeOutbox struct {
	mu      sync.Mutex
	pending map[sale.OrderID]sale.Order
	expired map[sale.OrderID]bool
}

func (f *fakeOutbox) Unpublished(_ context.Context, before time.Time, limit int) ([]sale.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sale.Order
	for _, o := range f.pending {
		if o.CreatedAt.Before(before) && len(out) < limit {
			out = append(out, o)
		}
	}
	return out, nil
}

func (f *fakeOutbox) MarkPublished(_ context.Context, ids ...sale.OrderID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		delete(f.pending, id)
	}
	return nil
}

func (f *fakeOutbox) Expire(_ context.Context, id sale.OrderID, _ string) (bool, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pending[id]; !ok {
		return false, 0, nil
	}
	delete(f.pending, id)
	f.expired[id] = true
	return true, 5, nil
}

func orderAt(user string, at time.Time) sale.Order {
	return sale.NewOrder(sale.Item{ID: 1, PriceCents: 10}, sale.UserID(user), at)
}

func TestRelayRepublishesStaleAndExpiresAbandoned(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	fresh, stale, ancient := orderAt("a", now.Add(-time.Second)), orderAt("b", now.Add(-10*time.Second)), orderAt("c", now.Add(-time.Hour))
	box := &fakeOutbox{pending: map[sale.OrderID]sale.Order{fresh.ID: fresh, stale.ID: stale, ancient.ID: ancient}, expired: map[sale.OrderID]bool{}}
	pub := &fakePub{}
	var back []sale.ItemID
	r := NewRelay(box, pub, quiet, RelayOptions{After: 3 * time.Second, GiveUp: 10 * time.Minute, Now: func() time.Time { return now }},
		func(item sale.ItemID, _ int64) { back = append(back, item) })

	pub.fail = true
	if err := r.Once(context.Background()); err == nil {
		t.Fatal("a failed publish was reported as success")
	}
	if _, ok := box.pending[stale.ID]; !ok {
		t.Fatal("an order was dropped from the outbox although its publish failed")
	}
	if !box.expired[ancient.ID] || len(back) != 1 {
		t.Fatalf("the abandoned order was not expired with its unit returned (back=%v)", back)
	}

	pub.fail = false
	if err := r.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(pub.got) != 1 || pub.got[0].ID != stale.ID {
		t.Fatalf("published %v, want only the stale order", pub.got)
	}
	if _, ok := box.pending[fresh.ID]; !ok {
		t.Fatal("the fresh order should be left to the dispatcher")
	}
	if _, ok := box.pending[stale.ID]; ok {
		t.Fatal("the relayed order is still unpublished")
	}
}

func TestDispatcherPublishesAndFlushesOnShutdown(t *testing.T) {
	t.Parallel()
	box := &fakeOutbox{pending: map[sale.OrderID]sale.Order{}, expired: map[sale.OrderID]bool{}}
	pub := &fakePub{}
	d := NewDispatcher(pub, box, quiet, DispatcherOptions{Batch: 10, Linger: time.Hour})
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
	if len(box.pending) != 0 {
		t.Fatalf("%d orders left unmarked in the outbox", len(box.pending))
	}
	if d.Stats().Published != 25 {
		t.Fatalf("stats = %+v", d.Stats())
	}
}
