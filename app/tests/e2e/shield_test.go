package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"seckill/app/config"
)

func buy(in *instance, item int64, token string) response {
	return in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), token, nil)
}

// TestSoldOutFlagIsShared: once one instance hears "sold out" from Redis,
// the other instance answers sold out without asking Redis, and a restock
// clears the flag on both so the next purchase succeeds.
func TestSoldOutFlagIsShared(t *testing.T) { onBothRedis(t, testSoldOutFlagIsShared) }

func testSoldOutFlagIsShared(t *testing.T, b *backends) {
	edit := func(c *config.Config) { c.SoldOutTTL = time.Minute } // only a broadcast may clear it
	a := b.start(t, "api-a", both, edit)
	c := b.start(t, "api-c", apiOnly, edit)
	item := a.createSale("one-unit", 1, 0)
	if r := buy(a, item, a.login("first")); r.Status != 202 {
		t.Fatalf("first purchase: %d %s", r.Status, r.Raw)
	}
	if r := buy(a, item, a.login("second")); r.Status != 409 || r.str("error") != "sold_out" {
		t.Fatalf("second purchase: %d %s, want 409 sold_out", r.Status, r.Raw)
	}
	// The flag reaches the other instance by broadcast.
	deadline := time.Now().Add(5 * time.Second)
	for c.Shield().Stats().SoldOutFlags == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sold-out flag never reached the second instance")
		}
		time.Sleep(10 * time.Millisecond)
	}
	calls := c.Purchase.Stats().LedgerCalls
	for i := 0; i < 20; i++ {
		if r := buy(c, item, c.login(fmt.Sprintf("late%d", i))); r.Status != 409 || r.str("error") != "sold_out" {
			t.Fatalf("purchase on the flagged instance: %d %s", r.Status, r.Raw)
		}
	}
	if got := c.Purchase.Stats().LedgerCalls; got != calls {
		t.Fatalf("the flagged instance asked Redis %d times; the flag should answer", got-calls)
	}

	// Restock clears the flag everywhere; the next purchase on either wins.
	r := a.do("POST", fmt.Sprintf("/api/v1/admin/items/%d/restock", item), adminToken, map[string]int{"add": 2})
	if r.Status != 200 || r.num("stock_left") != 2 || r.num("stock_total") != 3 {
		t.Fatalf("restock: %d %s", r.Status, r.Raw)
	}
	for _, in := range []*instance{a, c} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := buy(in, item, in.login("after-restock-"+in.InstanceName()))
			if r.Status == 202 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still refuses after the restock: %d %s", in.InstanceName(), r.Status, r.Raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a.waitSettled(item, 20*time.Second)
}

// TestRestockIsIdempotentByKey: the same Idempotency-Key adds units once.
func TestRestockIsIdempotentByKey(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, nil)
	item := in.createSale("restock", 5, 0)
	path := fmt.Sprintf("/api/v1/admin/items/%d/restock", item)
	for i := 0; i < 3; i++ {
		if r := in.do("POST", path, adminToken, map[string]int{"add": 7}); r.Status != 200 {
			t.Fatalf("unkeyed restock: %d %s", r.Status, r.Raw)
		}
	}
	st := in.stats(item)
	if st.num("stock_total") != 26 {
		t.Fatalf("three unkeyed restocks of 7: total %d, want 26", st.num("stock_total"))
	}
	for i := 0; i < 3; i++ {
		r := in.doWithHeader("POST", path, adminToken, map[string]int{"add": 10}, "Idempotency-Key", "restock-once")
		if r.Status != 200 {
			t.Fatalf("keyed restock: %d %s", r.Status, r.Raw)
		}
	}
	st = in.stats(item)
	if st.num("stock_total") != 36 || st.num("stock_left_redis") != 36 || st.num("stock_left_db") != 36 || st.Body["consistent"] != true {
		t.Fatalf("three restocks with one key: %s, want total 36 everywhere", st.Raw)
	}
}

// TestStockBackFromFailedOrderClearsFlag: when an accepted order fails and
// its unit returns, the sold-out flag clears at once (not after its TTL) and
// the unit sells again.
func TestStockBackFromFailedOrderClearsFlag(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, func(c *config.Config) {
		c.SoldOutTTL = time.Hour
		c.RepublishAfter = 700 * time.Millisecond
		c.RelayGiveUp = time.Second
		// The outage opens the Kafka produce breaker; a short open period
		// keeps the order bought after it from reaching this short give-up
		// age unpublished.
		c.BreakerOpenFor = 200 * time.Millisecond
	})
	item := in.createSale("comeback", 1, 0)
	b.kafka.SetProduceFailure(true)
	r := buy(in, item, in.login("doomed"))
	if r.Status != 202 {
		t.Fatalf("purchase: %d %s", r.Status, r.Raw)
	}
	if r := buy(in, item, in.login("waiting")); r.str("error") != "sold_out" {
		t.Fatalf("want sold out while the unit is held: %d %s", r.Status, r.Raw)
	}
	if in.Shield().Stats().SoldOutFlags != 1 {
		t.Fatal("no sold-out flag was set")
	}
	// The relay gives the order up and returns the unit.
	deadline := time.Now().Add(15 * time.Second)
	for in.stats(item).num("orders_failed") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("order never given up: %s", in.stats(item).Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.kafka.SetProduceFailure(false)
	deadline = time.Now().Add(5 * time.Second)
	tok := in.login("waiting")
	for {
		r := buy(in, item, tok)
		if r.Status == 202 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the returned unit never sold: %d %s (flags %d)", r.Status, r.Raw, in.Shield().Stats().SoldOutFlags)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := in.waitSettled(item, 20*time.Second)
	if st.num("orders_confirmed") != 1 || st.num("orders_failed") != 1 {
		t.Fatalf("stats: %s", st.Raw)
	}
}

// TestEarlyAndLatePurchasesStayLocal: requests outside the window are
// answered from the cached item without a Redis round trip.
func TestEarlyAndLatePurchasesStayLocal(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, nil)
	future := in.createSale("future", 5, time.Hour)
	tok := in.login("early")
	calls := in.Purchase.Stats().LedgerCalls
	for i := 0; i < 3; i++ {
		if r := buy(in, future, tok); r.Status != 403 || r.str("error") != "not_started" {
			t.Fatalf("early purchase: %d %s", r.Status, r.Raw)
		}
	}
	if got := in.Purchase.Stats().LedgerCalls; got != calls {
		t.Fatalf("pre-start purchases reached Redis %d times", got-calls)
	}
}

// TestPerItemLimiterAnswers429: an item with a low purchase_rate refuses the
// excess with 429 and Retry-After, and the excess never reaches Redis.
func TestPerItemLimiterAnswers429(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, nil)
	now := time.Now().UTC()
	r := in.do("POST", "/api/v1/admin/items", adminToken, map[string]any{
		"name": "limited", "price_cents": 100, "stock": 1000, "purchase_rate": 5,
		"starts_at": now.Add(-time.Minute).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
	})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	item := r.num("id")
	users, tokens := loginAll(t, in, "lim", 40)
	calls := in.Purchase.Stats().LedgerCalls
	var accepted, limited int
	for _, u := range users {
		r := buy(in, item, tokens[u])
		switch {
		case r.Status == 202:
			accepted++
		case r.Status == 429 && r.str("error") == "rate_limited" && r.Header.Get("Retry-After") != "":
			limited++
		default:
			t.Fatalf("unexpected %d %s", r.Status, r.Raw)
		}
	}
	if limited == 0 || accepted == 0 {
		t.Fatalf("accepted %d, limited %d: the limiter did not shape the burst", accepted, limited)
	}
	if got := in.Purchase.Stats().LedgerCalls - calls; got != uint64(accepted) {
		t.Fatalf("%d requests reached Redis for %d accepted: refused ones must not", got, accepted)
	}
}

// TestBusReconnectFlushesLocalCache: when the pub/sub connection drops and
// comes back, messages sent in the gap are lost, so the instance flushes its
// local cache.
func TestBusReconnectFlushesLocalCache(t *testing.T) {
	b := newBackends(t)
	if !b.real {
		t.Skip("needs real Redis to kill one client connection; infra/redisbus covers miniredis restarts")
	}
	in := b.start(t, "api-bus", apiOnly, nil)
	item := in.createSale("flush", 5, 0)
	priceOf(t, in, item)
	flushes := in.LocalCache().Stats().Flushes
	rdb := newRedis(b.cfg.RedisAddr)
	defer rdb.Close()
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name=seckill-api-bus ") || strings.Contains(line, " sub=0 ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if err := rdb.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err(); err != nil {
					t.Fatal(err)
				}
				killed++
			}
		}
	}
	if killed == 0 {
		t.Fatal("found no subscriber connection of the instance to kill")
	}
	deadline := time.Now().Add(10 * time.Second)
	for in.LocalCache().Stats().Flushes == flushes {
		if time.Now().After(deadline) {
			t.Fatal("the local cache was not flushed after the bus reconnected")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
