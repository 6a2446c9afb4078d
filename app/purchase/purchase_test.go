package purchase

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"seckill/app/shield"
	"seckill/domain/sale"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

type items map[sale.ItemID]sale.Item

func (m items) Item(_ context.Context, id sale.ItemID) (sale.Item, error) {
	it, ok := m[id]
	if !ok {
		return sale.Item{}, sale.ErrNotFound
	}
	return it, nil
}
func (m items) Items(context.Context) ([]sale.Item, error) { return nil, nil }

// fakeLedger answers with a fixed outcome, optionally blocking until gate
// closes, and counts calls.
type fakeLedger struct {
	outcome sale.Outcome
	err     error
	gate    chan struct{}
	calls   atomic.Int64
}

func (l *fakeLedger) Reserve(ctx context.Context, o sale.Order) (sale.Reservation, error) {
	l.calls.Add(1)
	if l.gate != nil {
		<-l.gate
	}
	return sale.Reservation{Outcome: l.outcome, Gen: 2}, l.err
}

type queue struct {
	mu  sync.Mutex
	got []sale.Order
}

func (q *queue) Enqueue(o sale.Order) { q.mu.Lock(); q.got = append(q.got, o); q.mu.Unlock() }

func newService(l *fakeLedger, opts shield.Options) (*Service, *queue, *[]sale.ItemID) {
	open := sale.Item{ID: 1, Name: "open", PriceCents: 500, StartsAt: t0.Add(-time.Hour), EndsAt: t0.Add(time.Hour)}
	later := sale.Item{ID: 2, Name: "later", PriceCents: 500, StartsAt: t0.Add(time.Hour), EndsAt: t0.Add(2 * time.Hour)}
	past := sale.Item{ID: 3, Name: "past", PriceCents: 500, StartsAt: t0.Add(-2 * time.Hour), EndsAt: t0.Add(-time.Hour)}
	q := &queue{}
	var soldOut []sale.ItemID
	s := New(Deps{
		Items: items{1: open, 2: later, 3: past}, Ledger: l, Queue: q, Shield: shield.New(opts),
		Notify: soldOutFunc(func(id sale.ItemID, _ int64) { soldOut = append(soldOut, id) }),
		Now:    func() time.Time { return t0 },
	})
	return s, q, &soldOut
}

func TestDoomedRequestsNeverReachTheLedger(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{outcome: sale.Accepted}
	s, _, _ := newService(l, shield.Options{})
	cases := []struct {
		item sale.ItemID
		want error
	}{
		{2, sale.ErrNotStarted},
		{3, sale.ErrEnded},
		{404, sale.ErrNotFound},
	}
	for _, c := range cases {
		if _, err := s.Buy(context.Background(), "alice", c.item); !errors.Is(err, c.want) {
			t.Errorf("item %d: %v, want %v", c.item, err, c.want)
		}
	}
	if l.calls.Load() != 0 || s.Stats().LedgerCalls != 0 {
		t.Fatalf("ledger called %d times for requests the window or catalog answers", l.calls.Load())
	}
}

func TestAcceptedOrderIsQueued(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{outcome: sale.Accepted}
	s, q, _ := newService(l, shield.Options{})
	o, err := s.Buy(context.Background(), "alice", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.got) != 1 || q.got[0].ID != o.ID || o.PriceCents != 500 || o.UserID != "alice" || o.Status != sale.OrderQueued {
		t.Fatalf("order %+v, queued %+v", o, q.got)
	}
}

func TestSoldOutSetsTheFlagAndBroadcasts(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{outcome: sale.OutcomeSoldOut}
	s, _, soldOut := newService(l, shield.Options{})
	for i := 0; i < 5; i++ {
		if _, err := s.Buy(context.Background(), sale.UserID("u"+string(rune('a'+i))), 1); !errors.Is(err, sale.ErrSoldOut) {
			t.Fatalf("attempt %d: %v, want ErrSoldOut", i, err)
		}
	}
	if l.calls.Load() != 1 {
		t.Fatalf("ledger called %d times; after the first sold out the flag must answer", l.calls.Load())
	}
	if len(*soldOut) != 1 || (*soldOut)[0] != 1 {
		t.Fatalf("sold-out broadcasts = %v", *soldOut)
	}
}

func TestLedgerFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{err: errors.New("dial tcp: connection refused")}
	s, q, _ := newService(l, shield.Options{})
	if _, err := s.Buy(context.Background(), "alice", 1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if len(q.got) != 0 {
		t.Fatal("an order was queued although the ledger failed")
	}
}

func TestInFlightBoundAnswersAtOnce(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{outcome: sale.Accepted, gate: make(chan struct{})}
	s, _, _ := newService(l, shield.Options{MaxInFlight: 2, UserRate: 1000, UserBurst: 1000})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(u sale.UserID) { defer wg.Done(); _, _ = s.Buy(context.Background(), u, 1) }(sale.UserID("blocked" + string(rune('a'+i))))
	}
	for l.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { _, err := s.Buy(context.Background(), "third", 1); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, shield.ErrOverloaded) {
			t.Fatalf("third purchase: %v, want ErrOverloaded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the third purchase waited instead of being refused")
	}
	close(l.gate)
	wg.Wait()
}

func TestUserLimiterRefusesBeforeTheLedger(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{outcome: sale.OutcomeAlreadyPurchased}
	s, _, _ := newService(l, shield.Options{UserRate: 1, UserBurst: 2})
	var limited int
	for i := 0; i < 5; i++ {
		if _, err := s.Buy(context.Background(), "eager", 1); errors.Is(err, shield.ErrRateLimited) {
			limited++
		}
	}
	if limited != 3 || l.calls.Load() != 2 {
		t.Fatalf("limited %d (want 3), ledger calls %d (want 2)", limited, l.calls.Load())
	}
}

type fakeShared struct {
	allow bool
	err   error
	calls int
}

func (f *fakeShared) Allow(context.Context, sale.UserID) (bool, error) {
	f.calls++
	return f.allow, f.err
}

func TestSharedUserLimiterDecidesAndFallsBackLocally(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{outcome: sale.Accepted}
	s, _, _ := newService(l, shield.Options{UserRate: 1, UserBurst: 1})
	refuse := &fakeShared{allow: false}
	s.d.SharedUsers = refuse
	if _, err := s.Buy(context.Background(), "alice", 1); !errors.Is(err, shield.ErrRateLimited) || refuse.calls != 1 {
		t.Fatalf("shared refusal: %v (calls %d)", err, refuse.calls)
	}
	if l.calls.Load() != 0 {
		t.Fatal("a refused user reached the ledger")
	}
	// Redis unreachable: the local bucket (burst 1) decides.
	s.d.SharedUsers = &fakeShared{err: errors.New("redis down")}
	if _, err := s.Buy(context.Background(), "bob", 1); err != nil {
		t.Fatalf("fallback first attempt: %v", err)
	}
	if _, err := s.Buy(context.Background(), "bob", 1); !errors.Is(err, shield.ErrRateLimited) {
		t.Fatalf("fallback second attempt: %v, want the local bucket to refuse", err)
	}
}

func TestHotKeyRefusalCreatesNoUserState(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{outcome: sale.Accepted}
	s, _, _ := newService(l, shield.Options{ItemRate: 1, ItemBurst: 1, UserRate: 100, UserBurst: 100})
	if _, err := s.Buy(context.Background(), "first", 1); err != nil {
		t.Fatal(err)
	}
	before := s.d.Shield.(*shield.Shield).Stats().TrackedUsers
	for i := 0; i < 50; i++ {
		if _, err := s.Buy(context.Background(), sale.UserID("late"+string(rune('a'+i%26))+string(rune('a'+i/26))), 1); !errors.Is(err, shield.ErrRateLimited) {
			t.Fatalf("attempt %d beyond the item rate: %v", i, err)
		}
	}
	if got := s.d.Shield.(*shield.Shield).Stats().TrackedUsers; got != before {
		t.Fatalf("refusals beyond the item rate created %d user buckets", got-before)
	}
	if l.calls.Load() != 1 {
		t.Fatalf("ledger calls %d, want 1", l.calls.Load())
	}
}

// TestStockMovingIsUnavailableNotSoldOut checks that a split item whose
// units were moving between buckets answers unavailable (retry), queues
// nothing, and never sets the sold-out flag.
func TestStockMovingIsUnavailableNotSoldOut(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{outcome: sale.OutcomeStockMoving}
	s, q, soldOut := newService(l, shield.Options{})
	for i := 0; i < 3; i++ {
		_, err := s.Buy(context.Background(), sale.UserID("u"+string(rune('a'+i))), 1)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, sale.ErrStockMoving) || errors.Is(err, sale.ErrSoldOut) {
			t.Fatalf("attempt %d: %v, want ErrUnavailable for stock moving", i, err)
		}
	}
	if l.calls.Load() != 3 || len(q.got) != 0 || len(*soldOut) != 0 {
		t.Fatalf("ledger calls %d, queued %d, sold-out broadcasts %v; want 3, 0, none", l.calls.Load(), len(q.got), *soldOut)
	}
}

// fakeGate blocks "mallory" and wants ticket "good" for protected items.
type fakeGate struct{}

func (fakeGate) Blocked(u sale.UserID) bool { return u == "mallory" }
func (fakeGate) Admit(_ sale.UserID, it sale.Item, ticket string, _ time.Time) (sale.Ticket, error) {
	switch {
	case !it.Protection.NeedsTicket():
		return sale.Ticket{}, nil
	case ticket == "":
		return sale.Ticket{}, sale.ErrTicketRequired
	case ticket != "good":
		return sale.Ticket{}, sale.ErrInvalidTicket
	}
	return sale.Ticket{ID: "t1", ExpiresAt: t0.Add(time.Minute)}, nil
}

// TestFairRefusalsAreLocal: a blocked user and a protected purchase without
// a good ticket are refused before the ledger and before any rate budget is
// spent; a good ticket reaches the ledger on the order.
func TestFairRefusalsAreLocal(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{outcome: sale.Accepted}
	prot := sale.Item{ID: 4, Name: "fair", PriceCents: 500, StartsAt: t0.Add(-time.Hour), EndsAt: t0.Add(time.Hour), Protection: sale.ProtectionTicket}
	q := &queue{}
	// A user budget of one attempt: if a refusal spent it, the good
	// purchase at the end would be rate limited.
	s := New(Deps{
		Items:  items{1: {ID: 1, Name: "open", StartsAt: t0.Add(-time.Hour), EndsAt: t0.Add(time.Hour)}, 4: prot},
		Ledger: l, Queue: q, Shield: shield.New(shield.Options{UserRate: 0.001, UserBurst: 1}),
		Fair: fakeGate{}, Now: func() time.Time { return t0 },
	})
	ctx := context.Background()
	for _, c := range []struct {
		user   sale.UserID
		item   sale.ItemID
		ticket string
		want   error
	}{
		{"mallory", 1, "", sale.ErrBlocked},
		{"mallory", 404, "", sale.ErrBlocked}, // blocked wins over everything
		{"alice", 4, "", sale.ErrTicketRequired},
		{"alice", 4, "forged", sale.ErrInvalidTicket},
		{"alice", 4, "forged", sale.ErrInvalidTicket},
	} {
		if _, err := s.BuyWithTicket(ctx, c.user, c.item, c.ticket); !errors.Is(err, c.want) {
			t.Errorf("%s item %d ticket %q: %v, want %v", c.user, c.item, c.ticket, err, c.want)
		}
	}
	if l.calls.Load() != 0 {
		t.Fatalf("fair refusals reached the ledger %d times", l.calls.Load())
	}
	if _, err := s.BuyWithTicket(ctx, "alice", 4, "good"); err != nil {
		t.Fatalf("good ticket after refusals: %v (a refusal spent the user's budget?)", err)
	}
	if len(q.got) != 1 || q.got[0].Ticket.ID != "t1" {
		t.Fatalf("queued %+v, want the order with ticket t1", q.got)
	}
}

// soldOutFunc lets a func stand for the notifier.
type soldOutFunc func(item sale.ItemID, gen int64)

func (f soldOutFunc) SoldOut(item sale.ItemID, gen int64) { f(item, gen) }
