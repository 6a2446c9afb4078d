package mysqlstore_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"seckill/domain/sale"
	"seckill/infra/mysqlstore"
)

// testLifecycle walks one order through each decision and checks the guards:
// pay only before the deadline and only by the owner, repeat decisions are
// no-ops, cancel and expire give exactly one unit back to stock_left.
func testLifecycle(t *testing.T, b backend) {
	s := b.open(t)
	ctx := t.Context()
	it := newItem(t, s, 10)
	orders := ordersFor(it, "l", 4)
	confirm(t, s, orders, 4)
	payer, canceller, lapser, late := orders[0], orders[1], orders[2], orders[3]

	o, err := s.Order(ctx, payer.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != sale.OrderConfirmed || o.PayBy.IsZero() || !o.PaidAt.IsZero() {
		t.Fatalf("confirmed order = %+v; want confirmed with pay_by and no paid_at", o)
	}
	if d := time.Until(o.PayBy); d < 14*time.Minute || d > 16*time.Minute {
		t.Fatalf("pay_by is %s away; want the default 15m window", d)
	}
	before := o.PayBy.Add(-time.Millisecond)

	// Another user's payment matches nothing.
	if got, applied, err := s.Pay(ctx, payer.ID, "mallory", "x", before); err != nil || applied || got.Status != sale.OrderConfirmed {
		t.Fatalf("Pay by another user = %+v, %v, %v; want not applied", got, applied, err)
	}
	got, applied, err := s.Pay(ctx, payer.ID, payer.UserID, "ref-1", before)
	if err != nil || !applied || got.Status != sale.OrderPaid || got.PaymentRef != "ref-1" || !got.PaidAt.Equal(before) {
		t.Fatalf("Pay = %+v, %v, %v; want paid with ref-1 at %v", got, applied, err, before)
	}
	if got, applied, err := s.Pay(ctx, payer.ID, payer.UserID, "ref-2", before); err != nil || applied || got.PaymentRef != "ref-1" {
		t.Fatalf("second Pay = %+v, %v, %v; want not applied, first ref kept", got, applied, err)
	}
	if got, applied, err := s.Cancel(ctx, payer.ID, payer.UserID, before); err != nil || applied || got.Status != sale.OrderPaid {
		t.Fatalf("Cancel of a paid order = %+v, %v, %v; want it still paid", got, applied, err)
	}

	if got, applied, err := s.Cancel(ctx, canceller.ID, "mallory", before); err != nil || applied || got.Status != sale.OrderConfirmed {
		t.Fatalf("Cancel by another user = %+v, %v, %v; want not applied", got, applied, err)
	}
	if got, applied, err := s.Cancel(ctx, canceller.ID, canceller.UserID, before); err != nil || !applied || got.Status != sale.OrderCancelled {
		t.Fatalf("Cancel = %+v, %v, %v; want cancelled", got, applied, err)
	}
	if _, applied, err := s.Cancel(ctx, canceller.ID, canceller.UserID, before); err != nil || applied {
		t.Fatalf("second Cancel applied=%v err=%v; want a no-op", applied, err)
	}

	lo, _ := s.Order(ctx, lapser.ID)
	// Not yet due: neither the scan nor Expire touches it.
	if due, err := s.DueForExpiry(ctx, lo.PayBy.Add(-time.Millisecond), 10); err != nil || len(due) != 0 {
		t.Fatalf("DueForExpiry before the deadline = %v, %v; want none", due, err)
	}
	if got, err := s.Expire(ctx, []sale.OrderID{lapser.ID}, lo.PayBy.Add(-time.Millisecond)); err != nil || len(got) != 0 {
		t.Fatalf("Expire before the deadline = %v, %v; want none", got, err)
	}
	due, err := s.DueForExpiry(ctx, lo.PayBy, 10)
	if err != nil || len(due) != 2 { // lapser and late share the deadline window
		t.Fatalf("DueForExpiry at the deadline = %v, %v; want the 2 unpaid orders", due, err)
	}
	if got, err := s.Expire(ctx, []sale.OrderID{lapser.ID, payer.ID, canceller.ID}, lo.PayBy); err != nil || len(got) != 1 || got[0] != lapser.ID {
		t.Fatalf("Expire = %v, %v; want only the unpaid confirmed order", got, err)
	}
	if got, err := s.Expire(ctx, []sale.OrderID{lapser.ID}, lo.PayBy); err != nil || len(got) != 0 {
		t.Fatalf("second Expire = %v, %v; want a no-op", got, err)
	}
	// A payment at the deadline is too late.
	lt, _ := s.Order(ctx, late.ID)
	if got, applied, err := s.Pay(ctx, late.ID, late.UserID, "", lt.PayBy); err != nil || applied || got.Status != sale.OrderConfirmed {
		t.Fatalf("Pay at the deadline = %+v, %v, %v; want refused", got, applied, err)
	}
	if _, _, err := s.Pay(ctx, sale.NewOrderID(it.ID, time.Now()), "nobody", "", before); !errors.Is(err, sale.ErrOrderNotFound) {
		t.Fatalf("Pay of an unknown order: %v; want ErrOrderNotFound", err)
	}

	wantStats(t, s, it.ID, statsOf(10, 10-2, 1, 1, 1, 1))
	if n, err := s.CountHeld(ctx, it.ID); err != nil || n != 2 {
		t.Fatalf("CountHeld = %d, %v; want 2 (one confirmed, one paid)", n, err)
	}
	if got, err := s.CountStatuses(ctx, it.ID); err != nil || len(got) != 4 || got[sale.OrderPaid] != 1 || got[sale.OrderExpired] != 1 {
		t.Fatalf("CountStatuses = %v, %v; want one each of confirmed, paid, cancelled, expired", got, err)
	}
	if n, err := s.CountConfirmed(ctx, it.ID); err != nil || n != 1 {
		t.Fatalf("CountConfirmed = %d, %v; want 1", n, err)
	}
	returned, err := s.ReturnedOrders(ctx, it.ID)
	if err != nil || len(returned) != 2 {
		t.Fatalf("ReturnedOrders = %v, %v; want the cancelled and the expired", returned, err)
	}
	recent, err := s.RecentlyReturned(ctx, time.Now().Add(-time.Minute), 10)
	if err != nil || len(recent) != 2 {
		t.Fatalf("RecentlyReturned = %v, %v; want 2", recent, err)
	}
	if recent, err := s.RecentlyReturned(ctx, time.Now().Add(time.Minute), 10); err != nil || len(recent) != 0 {
		t.Fatalf("RecentlyReturned from the future = %v, %v; want none", recent, err)
	}
	// The lapsed buyers keep their slot: a second order of theirs is refused.
	again := newOrder(it, string(canceller.UserID))
	_, fates, err := s.Confirm(ctx, []sale.Order{again})
	if err != nil || !fates[again.ID].Refused {
		t.Fatalf("Confirm of a cancelled buyer's second order = %+v, %v; want refused", fates[again.ID], err)
	}
}

func statsOf(total, left, confirmed, paid, cancelled, expired int64) mysqlstore.ItemStats {
	return mysqlstore.ItemStats{StockTotal: total, StockLeft: left, Confirmed: confirmed, Paid: paid, Cancelled: cancelled, Expired: expired}
}

// testPayRacesExpiry confirms 1,000 orders and, released together, pays each
// one a millisecond before its deadline while two expiry scanners expire
// them all at the deadline: both guards pass, so only the status fence
// decides. Every order must end exactly one of paid or expired, each expired
// order's unit must come back exactly once, and stock_left must equal
// stock_total minus the paid orders.
func testPayRacesExpiry(t *testing.T, b backend) {
	const n = 1000
	s := b.open(t)
	ctx := t.Context()
	it := newItem(t, s, n)
	orders := ordersFor(it, "race", n)
	confirm(t, s, orders, n)
	payBy := make(map[sale.OrderID]time.Time, n)
	var latest time.Time
	for _, o := range orders {
		got, err := s.Order(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		payBy[o.ID] = got.PayBy
		if got.PayBy.After(latest) {
			latest = got.PayBy
		}
	}
	ids := make([]sale.OrderID, n)
	for i, o := range orders {
		ids[i] = o.ID
	}

	start := make(chan struct{})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		paid     = map[sale.OrderID]int{}
		expired  = map[sale.OrderID]int{}
		payers   = make(chan sale.Order, n)
		failures int
	)
	for _, o := range orders {
		payers <- o
	}
	close(payers)
	for range 16 {
		wg.Go(func() {
			<-start
			for o := range payers {
				_, applied, err := s.Pay(ctx, o.ID, o.UserID, "", payBy[o.ID].Add(-time.Millisecond))
				mu.Lock()
				if err != nil {
					failures++
				} else if applied {
					paid[o.ID]++
				}
				mu.Unlock()
			}
		})
	}
	// Two scanners, as two API instances would run, each expiring every
	// order in batches of the scan's size.
	for range 2 {
		wg.Go(func() {
			<-start
			for i := 0; i < n; i += 100 {
				got, err := s.Expire(ctx, ids[i:i+100], latest)
				mu.Lock()
				if err != nil {
					failures++
				}
				for _, id := range got {
					expired[id]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if failures > 0 {
		t.Fatalf("%d decisions failed", failures)
	}
	for _, o := range orders {
		got, err := s.Order(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case paid[o.ID]+expired[o.ID] != 1:
			t.Fatalf("order %s: paid %d times, expired %d times; want exactly one decision", o.ID, paid[o.ID], expired[o.ID])
		case paid[o.ID] == 1 && got.Status != sale.OrderPaid, expired[o.ID] == 1 && got.Status != sale.OrderExpired:
			t.Fatalf("order %s is %s, but the winning call was paid=%d expired=%d", o.ID, got.Status, paid[o.ID], expired[o.ID])
		}
	}
	st := stats(t, s, it.ID)
	if st.Paid != int64(len(paid)) || st.Expired != int64(len(expired)) || st.Confirmed != 0 ||
		st.StockLeft != st.StockTotal-st.Paid || st.StockTotal != n {
		t.Fatalf("stats %+v after the race; %d paid and %d expired by the callers", st, len(paid), len(expired))
	}
	t.Logf("%d paid, %d expired", len(paid), len(expired))
}

// TestRecentlyReturnedReadsNewestFirst: with more returns in the window
// than the limit, the newest come back. Oldest first, a mass expiry would
// hide a newer return whose ledger step failed from every sweep.
func TestRecentlyReturnedReadsNewestFirst(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t)
			ctx := t.Context()
			it := newItem(t, s, 10)
			orders := ordersFor(it, "r", 3)
			confirm(t, s, orders, 3)
			now := time.Now().UTC().Truncate(time.Millisecond)
			for i, o := range orders {
				if _, _, err := s.Cancel(ctx, o.ID, o.UserID, now); err != nil {
					t.Fatal(err)
				}
				// Distinct decision times, oldest first in orders.
				at := now.Add(time.Duration(i-3) * time.Second)
				if err := s.DB().Exec("UPDATE orders SET updated_at = ? WHERE order_id = ?", at, string(o.ID)).Error; err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.RecentlyReturned(ctx, now.Add(-time.Minute), 2)
			if err != nil || len(got) != 2 || got[0] != orders[2].ID || got[1] != orders[1].ID {
				t.Fatalf("RecentlyReturned(limit 2) = %v, %v; want the two newest, %s then %s", got, err, orders[2].ID, orders[1].ID)
			}
		})
	}
}
