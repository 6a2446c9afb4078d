package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"seckill/app/config"
	"seckill/domain/sale"
)

// waitStatus polls the order until it has one of want, and returns its body.
func (in *instance) waitStatus(token, order string, timeout time.Duration, want ...string) response {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := in.do("GET", "/api/v1/orders/"+order, token, nil)
		for _, w := range want {
			if r.Status == 200 && r.str("status") == w {
				return r
			}
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("order %s not %v after %s: %d %s", order, want, timeout, r.Status, r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inParallel runs f for each element of xs, at most 32 at a time, released
// together.
func inParallel[T any](xs []T, f func(T)) {
	start := make(chan struct{})
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, x := range xs {
		wg.Go(func() {
			<-start
			sem <- struct{}{}
			defer func() { <-sem }()
			f(x)
		})
	}
	close(start)
	wg.Wait()
}

// TestOrderLifecycleResellsReturnedUnits: 200 units, 400 buyers and a short
// payment window. Of the 200 winners 120 pay, 40 cancel and 40 let the
// window pass; the 80 units that come back sell exactly once more to the
// 200 buyers who were told sold out, nothing is oversold, and the stats add
// up in both stores.
func TestOrderLifecycleResellsReturnedUnits(t *testing.T) {
	t.Parallel()
	const window = 4 * time.Second
	b := newBackends(t)
	in := b.start(t, "life", both, func(c *config.Config) { c.PaymentWindow = window })
	item := in.createSale("lifecycle", 200, 0)
	users, tokens := loginAll(t, in, "life", 400)

	first := spike(t, in, item, users, tokens)
	var won, waiting []attempt
	for _, a := range first {
		switch {
		case a.status == 202:
			won = append(won, a)
		case a.code == "sold_out":
			waiting = append(waiting, a)
		default:
			t.Fatalf("first wave: %s got %d %s", a.user, a.status, a.code)
		}
	}
	if len(won) != 200 {
		t.Fatalf("first wave: %d accepted, want 200", len(won))
	}
	payers, cancellers, lapsers := won[:120], won[120:160], won[160:]

	// Each buyer acts as soon as their order is confirmed, as a page would.
	var mu sync.Mutex
	payBy := map[string]time.Time{}
	inParallel(won, func(a attempt) {
		r := in.waitStatus(a.token, a.orderID, 20*time.Second, "confirmed")
		pb, err := time.Parse(time.RFC3339Nano, r.str("pay_by"))
		if err != nil {
			t.Errorf("confirmed order without pay_by: %s", r.Raw)
		}
		mu.Lock()
		payBy[a.orderID] = pb
		mu.Unlock()
	})
	inParallel(payers, func(a attempt) {
		r := in.do("POST", "/api/v1/orders/"+a.orderID+"/pay", a.token, map[string]string{"payment_ref": "ref-" + a.user})
		if r.Status != 200 || r.str("status") != "paid" || r.str("payment_ref") != "ref-"+a.user || r.str("paid_at") == "" {
			t.Errorf("pay %s: %d %s", a.orderID, r.Status, r.Raw)
		}
		// Paying twice answers the same order.
		if again := in.do("POST", "/api/v1/orders/"+a.orderID+"/pay", a.token, nil); again.Status != 200 || again.str("payment_ref") != "ref-"+a.user {
			t.Errorf("pay again %s: %d %s", a.orderID, again.Status, again.Raw)
		}
		if c := in.do("POST", "/api/v1/orders/"+a.orderID+"/cancel", a.token, nil); c.Status != 409 || c.str("error") != "already_paid" {
			t.Errorf("cancel a paid order: %d %s", c.Status, c.Raw)
		}
	})
	inParallel(cancellers, func(a attempt) {
		if r := in.do("POST", "/api/v1/orders/"+a.orderID+"/cancel", a.token, nil); r.Status != 200 || r.str("status") != "cancelled" {
			t.Errorf("cancel %s: %d %s", a.orderID, r.Status, r.Raw)
		}
		if r := in.do("POST", "/api/v1/orders/"+a.orderID+"/cancel", a.token, nil); r.Status != 200 {
			t.Errorf("cancel again %s: %d %s", a.orderID, r.Status, r.Raw)
		}
		if r := in.do("POST", "/api/v1/orders/"+a.orderID+"/pay", a.token, nil); r.Status != 409 || r.str("error") != "payment_window_closed" {
			t.Errorf("pay a cancelled order: %d %s", r.Status, r.Raw)
		}
		// Another user's order is not there at all.
		if r := in.do("POST", "/api/v1/orders/"+a.orderID+"/cancel", tokens[lapsers[0].user], nil); r.Status != 404 {
			t.Errorf("cancel someone else's order: %d %s", r.Status, r.Raw)
		}
	})

	// The lapsed orders expire within 2 s of their deadline.
	var latest time.Time
	for _, a := range lapsers {
		if payBy[a.orderID].After(latest) {
			latest = payBy[a.orderID]
		}
	}
	for _, a := range lapsers {
		in.waitStatus(a.token, a.orderID, time.Until(latest.Add(2*time.Second)), "expired")
	}
	late := lapsers[0]
	if r := in.do("POST", "/api/v1/orders/"+late.orderID+"/pay", late.token, nil); r.Status != 409 || r.str("error") != "payment_window_closed" {
		t.Errorf("a late payment: %d %s", r.Status, r.Raw)
	}
	if r := in.do("POST", "/api/v1/orders/"+late.orderID+"/cancel", late.token, nil); r.Status != 409 || r.str("error") != "payment_window_closed" {
		t.Errorf("cancel an expired order: %d %s", r.Status, r.Raw)
	}
	// A buyer whose order lapsed may not buy again.
	for _, a := range []attempt{cancellers[0], late} {
		if r := in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), a.token, nil); r.Status != 409 || r.str("error") != "already_purchased" {
			t.Errorf("%s buys again after their order lapsed: %d %s", a.user, r.Status, r.Raw)
		}
	}
	mid := in.waitSettled(item, 30*time.Second)
	if mid.num("stock_left_redis") != 80 || mid.num("stock_left_db") != 80 || mid.num("orders_paid") != 120 ||
		mid.num("orders_cancelled") != 40 || mid.num("orders_expired") != 40 || mid.num("orders_confirmed") != 0 {
		t.Fatalf("after the window: %s", mid.Raw)
	}

	// The waiting buyers try again: exactly 80 get a unit.
	var again []string
	for _, a := range waiting {
		again = append(again, a.user)
	}
	second := spike(t, in, item, again, tokens)
	var resold []attempt
	for _, a := range second {
		switch {
		case a.status == 202:
			resold = append(resold, a)
		case a.code != "sold_out":
			t.Fatalf("second wave: %s got %d %s", a.user, a.status, a.code)
		}
	}
	if len(resold) != 80 {
		t.Fatalf("second wave: %d accepted, want exactly the 80 returned units", len(resold))
	}
	inParallel(resold, func(a attempt) {
		in.waitStatus(a.token, a.orderID, 20*time.Second, "confirmed")
		if r := in.do("POST", "/api/v1/orders/"+a.orderID+"/pay", a.token, nil); r.Status != 200 {
			t.Errorf("pay %s: %d %s", a.orderID, r.Status, r.Raw)
		}
	})
	st := in.waitSettled(item, 30*time.Second)
	if st.num("stock_left_redis") != 0 || st.num("stock_left_db") != 0 || st.num("orders_paid") != 200 ||
		st.num("orders_cancelled") != 40 || st.num("orders_expired") != 40 || st.num("orders_confirmed") != 0 ||
		st.Body["consistent"] != true {
		t.Fatalf("final stats: %s", st.Raw)
	}
	if charges, refunds := in.Payments.Counts(); charges-refunds != 200 {
		t.Fatalf("%d charges and %d refunds for 200 paid orders", charges, refunds)
	}
}

// TestCrashBetweenDecisionAndReturnIsRepaired decides a cancel in the
// database only, as if the instance died before the ledger's return step;
// the return sweep puts the unit back within seconds, exactly once, and the
// stats add up again.
func TestCrashBetweenDecisionAndReturnIsRepaired(t *testing.T) {
	t.Parallel()
	onBothRedis(t, testCrashBetweenDecisionAndReturnIsRepaired)
}

func testCrashBetweenDecisionAndReturnIsRepaired(t *testing.T, b *backends) {
	in := b.start(t, "crash", both, nil)
	item := in.createSale("crash", 5, 0)
	users, tokens := loginAll(t, in, "crash", 5)
	attempts := spike(t, in, item, users, tokens)
	for _, a := range attempts {
		in.waitStatus(a.token, a.orderID, 20*time.Second, "confirmed")
	}
	in.waitSettled(item, 20*time.Second)
	victim := attempts[0]
	o, applied, err := in.Store().Cancel(t.Context(), sale.OrderID(victim.orderID), sale.UserID(victim.user), time.Now())
	if err != nil || !applied || o.Status != sale.OrderCancelled {
		t.Fatalf("cancel in the database only: %+v, %v, %v", o, applied, err)
	}
	if s := in.stats(item); s.num("stock_left_redis") != 0 || s.num("stock_left_db") != 1 || s.Body["consistent"] == true {
		t.Fatalf("right after the half-done cancel: %s; want the ledger one unit behind and inconsistent", s.Raw)
	}
	st := in.waitSettled(item, 10*time.Second)
	if st.num("stock_left_redis") != 1 || st.num("orders_cancelled") != 1 {
		t.Fatalf("after the sweep: %s", st.Raw)
	}
	// Sweeps keep running: the unit is not returned a second time.
	time.Sleep(2500 * time.Millisecond)
	if s := in.stats(item); s.num("stock_left_redis") != 1 || s.Body["consistent"] != true {
		t.Fatalf("later: %s", s.Raw)
	}
	// The returned unit sells again, once.
	more, moreTokens := loginAll(t, in, "crash-next", 3)
	var won int
	for _, a := range spike(t, in, item, more, moreTokens) {
		if a.status == 202 {
			won++
		}
	}
	if won != 1 {
		t.Fatalf("%d buyers got the returned unit; want 1", won)
	}
}
