package redisstock

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"seckill/domain/sale"
)

// TestTicketReplayRace releases 100 reservations carrying the same ticket at
// once, each a different order of a different user (so the one-per-user
// rule cannot be what stops them): the ticket's single use is atomic with
// the reservation, so exactly one wins and only one unit leaves the stock.
func TestTicketReplayRace(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		const replays = 100
		it := h.open(t, item(1, 50))
		tk := sale.Ticket{ID: "0123456789abcdef01234567", ExpiresAt: time.Now().Add(30 * time.Second)}
		orders := make([]sale.Order, replays)
		for i := range orders {
			orders[i] = order(it, fmt.Sprintf("u%d", i), inWindow)
			orders[i].Ticket = tk
		}
		if accepted, reused := raceTicket(t, h, orders); accepted != 1 || reused != replays-1 {
			t.Fatalf("accepted %d, refused as used %d; want 1 and %d", accepted, reused, replays-1)
		}
		left, err := h.s.StockLeft(h.ctx, it.ID)
		if err != nil || left[it.ID] != 49 {
			t.Fatalf("stock left %v (%v), want 49: a replay reached the stock", left, err)
		}
	})
}

// TestTicketMark: the used mark lives beside the buyers key (same hash tag),
// expires a little after the ticket, names the order that used it, and the
// same order again (a retried pipeline) is answered as accepted, not as a
// replay. A reservation refused by the window leaves the ticket unused.
func TestTicketMark(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		it := h.open(t, item(2, 5))
		tk := sale.Ticket{ID: "aaaaaaaaaaaaaaaaaaaaaaaa", ExpiresAt: time.Now().Add(20 * time.Second)}

		h.setWindow(t, it.ID, time.Now().Add(time.Hour), time.Now().Add(2*time.Hour))
		early := order(it, "alice", inWindow)
		early.Ticket = tk
		if r := h.reserve(t, early); r.Outcome != sale.OutcomeNotStarted {
			t.Fatalf("early reserve: %+v", r)
		}
		h.setWindow(t, it.ID, it.StartsAt, it.EndsAt)
		o := order(it, "alice", inWindow)
		o.Ticket = tk
		if r := h.reserve(t, o); r.Outcome != sale.Accepted {
			t.Fatalf("first reserve after a not-started refusal: %+v, want accepted (the refusal must not use the ticket)", r)
		}
		if r := h.reserve(t, o); r.Outcome != sale.Accepted {
			t.Fatalf("same order again: %+v, want accepted (idempotent retry)", r)
		}
		other := order(it, "alice", inWindow)
		other.Ticket = tk
		if r := h.reserve(t, other); r.Outcome != sale.OutcomeAlreadyPurchased || r.Existing != o.ID {
			t.Fatalf("another order of alice's with her used ticket: %+v, want already purchased naming %s (her first answer may have been lost)", r, o.ID)
		}
		if released, _, err := h.s.Release(h.ctx, o.ID); err != nil || !released {
			t.Fatalf("Release(%s) = %v, %v", o.ID, released, err)
		}
		if r := h.reserve(t, other); r.Outcome != sale.OutcomeTicketUsed {
			t.Fatalf("the used ticket once alice holds no order: %+v, want ticket used", r)
		}
		keys := h.s.item(it.ID).reserve()
		mark := usedTicketKey(keys, tk.ID)
		if tag := "{item:2}"; !strings.Contains(mark, tag) || !strings.Contains(keys[1], tag) {
			t.Fatalf("mark %q and buyers %q do not share the hash tag %s", mark, keys[1], tag)
		}
		got, err := h.rdb.Get(h.ctx, mark).Result()
		if err != nil || got != string(o.ID) {
			t.Fatalf("mark = %q (%v), want the order id %s", got, err, o.ID)
		}
		ttl, err := h.rdb.PTTL(h.ctx, mark).Result()
		if err != nil || ttl <= 20*time.Second || ttl > 20*time.Second+UsedTicketSlack {
			t.Fatalf("mark ttl %s (%v), want between the ticket's 20s and 20s+%s", ttl, err, UsedTicketSlack)
		}
	})
}

// TestTicketSingleUseOnASplitItem: on an item split over stock buckets the
// used mark lives in the buyer's home bucket, and a buyer always buys from
// it, so one ticket still buys once, also when the home bucket is empty and
// the reservation has to wait for units moved home (the retried call is the
// same order, which the mark lets through, and the replays are not).
func TestTicketSingleUseOnASplitItem(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		const buckets, replays = 3, 20
		it := h.open(t, splitItem(7, 3, buckets)) // one unit per bucket
		home := sale.HomeBucket("alice", buckets)
		var other string
		for i := 0; other == ""; i++ {
			if u := fmt.Sprintf("v%d", i); sale.HomeBucket(sale.UserID(u), buckets) == home {
				other = u
			}
		}
		if r := h.reserve(t, order(it, other, inWindow)); r.Outcome != sale.Accepted {
			t.Fatalf("emptying alice's home bucket: %+v", r)
		}
		tk := sale.Ticket{ID: "bbbbbbbbbbbbbbbbbbbbbbbb", ExpiresAt: time.Now().Add(30 * time.Second)}
		orders := make([]sale.Order, replays)
		for i := range orders {
			orders[i] = order(it, "alice", inWindow.Add(time.Duration(i)*time.Millisecond))
			orders[i].Ticket = tk
		}
		if accepted, reused := raceTicket(t, h, orders); accepted != 1 || reused != replays-1 {
			t.Fatalf("accepted %d, refused as used %d; want 1 and %d", accepted, reused, replays-1)
		}
		left, err := h.s.StockLeft(h.ctx, it.ID)
		if err != nil || left[it.ID] != 1 {
			t.Fatalf("stock left %v (%v), want 1: a replay reached the stock", left, err)
		}
	})
}

// raceTicket reserves every order at once and counts how many were
// accepted and how many refused because their ticket was already used (as
// ticket used, or as already purchased when the user holds an order); any
// other outcome or an error fails the test.
func raceTicket(t *testing.T, h *harness, orders []sale.Order) (accepted, reused int64) {
	t.Helper()
	var (
		start  = make(chan struct{})
		wg     sync.WaitGroup
		acc, u atomic.Int64
		errs   = make(chan error, len(orders))
	)
	for i, o := range orders {
		wg.Go(func() {
			<-start
			r, err := h.s.Reserve(h.ctx, o)
			switch {
			case err != nil:
				errs <- err
			case r.Outcome == sale.Accepted:
				acc.Add(1)
			case r.Outcome == sale.OutcomeTicketUsed && errors.Is(r.Err(), sale.ErrInvalidTicket),
				r.Outcome == sale.OutcomeAlreadyPurchased && r.Existing != "" && r.Existing != o.ID:
				// A replay by a user who already holds the ticket's order
				// hears that, naming the order.
				u.Add(1)
			default:
				errs <- fmt.Errorf("order %d (%s): unexpected %+v", i, o.UserID, r)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return acc.Load(), u.Load()
}
