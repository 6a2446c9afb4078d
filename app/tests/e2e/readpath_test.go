package e2e

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/domain/sale"
)

var apiOnly = bootstrap.Roles{API: true}

func priceOf(t *testing.T, in *instance, item int64) int64 {
	t.Helper()
	r := in.do("GET", fmt.Sprintf("/api/v1/items/%d", item), "", nil)
	if r.Status != 200 {
		t.Fatalf("get item on %s: %d %s", in.url, r.Status, r.Raw)
	}
	return r.num("price_cents")
}

// TestItemUpdateReachesEveryInstance: after a PATCH returns, both instances
// serve the new price within the double-delete delay plus 200 ms, although
// both had the old price in their local caches.
func TestItemUpdateReachesEveryInstance(t *testing.T) {
	onBothRedis(t, testItemUpdateReachesEveryInstance)
}

func testItemUpdateReachesEveryInstance(t *testing.T, b *backends) {
	const delay = 500 * time.Millisecond
	edit := func(c *config.Config) { c.DoubleDeleteDelay = delay; c.LocalCacheTTL = time.Minute }
	a := b.start(t, "api-a", both, edit)
	bb := b.start(t, "api-b", apiOnly, edit)
	item := a.createSale("patched", 10, 0)
	for _, in := range []*instance{a, bb} {
		if p := priceOf(t, in, item); p != 1999 {
			t.Fatalf("price before = %d", p)
		}
	}
	start := time.Now()
	r := a.do("PATCH", fmt.Sprintf("/api/v1/admin/items/%d", item), adminToken, map[string]any{"price_cents": 2500})
	if r.Status != 200 || r.num("price_cents") != 2500 || r.num("version") != 2 {
		t.Fatalf("patch: %d %s", r.Status, r.Raw)
	}
	for _, in := range []*instance{a, bb} {
		for priceOf(t, in, item) != 2500 {
			if time.Since(start) > delay+200*time.Millisecond {
				t.Fatalf("%s still serves the old price %s after the PATCH", in.InstanceName(), time.Since(start))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestSlowReaderCannotLeaveStaleValue opens the race the double delete
// exists for: a reader loads the old row after the first delete and writes it
// back after the database update. The stale value must be gone from every
// layer once the second delete has run.
func TestSlowReaderCannotLeaveStaleValue(t *testing.T) {
	b := newBackends(t)
	const delay = 500 * time.Millisecond
	var armed atomic.Bool
	loaded := make(chan int64, 1)
	release := make(chan struct{})
	a := b.start(t, "api-a", both, func(c *config.Config) { c.DoubleDeleteDelay = delay })
	slow := b.startWith(t, "api-slow", apiOnly, func(c *config.Config) { c.DoubleDeleteDelay = delay; c.LocalCacheTTL = time.Minute },
		func(p *bootstrap.Parts) {
			afterItemRead(t, p, func(price int64) {
				if armed.CompareAndSwap(true, false) {
					loaded <- price
					<-release
				}
			})
		})
	item := a.createSale("racy", 10, 0)
	armed.Store(true)
	got := make(chan int64, 1)
	go func() { got <- priceOf(t, slow, item) }()
	old := <-loaded // the slow reader holds the old row
	if old != 1999 {
		t.Fatalf("slow reader loaded %d", old)
	}
	if r := a.do("PATCH", fmt.Sprintf("/api/v1/admin/items/%d", item), adminToken, map[string]any{"price_cents": 3100}); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Raw)
	}
	close(release)
	if p := <-got; p != 1999 {
		t.Fatalf("the slow read returned %d; it should have returned the row it loaded", p)
	}
	// The race happened: the old row went back into the shared cache after
	// the update, so another instance reading through Redis now is served
	// the old price. (Instance a's own copy came from its PATCH response,
	// so drop it to make a read through.)
	a.LocalCache().Invalidate(sale.ItemID(item))
	if p := priceOf(t, a, item); p != 1999 {
		t.Fatalf("right after the slow write-back another instance reads %d; the race window was not exercised", p)
	}
	deadline := time.Now().Add(delay + 2*time.Second)
	for {
		pa, ps := priceOf(t, a, item), priceOf(t, slow, item)
		if pa == 3100 && ps == 3100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale price survived the second delete: a=%d slow=%d", pa, ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestColdStampedeLoadsOncePerInstance: 200 concurrent cold reads of one item
// cost exactly one database read on each instance.
func TestColdStampedeLoadsOncePerInstance(t *testing.T) {
	b := newBackends(t)
	var loads [2]atomic.Int64
	count := func(i int) func(*bootstrap.Parts) {
		return func(p *bootstrap.Parts) { afterItemRead(t, p, func(int64) { loads[i].Add(1) }) }
	}
	a := b.startWith(t, "api-a", both, nil, count(0))
	c := b.startWith(t, "api-c", apiOnly, nil, count(1))
	item := a.createSale("stampede", 10, 0)
	// The create scheduled a second delete; let it run first, or on a slow
	// machine it lands in the middle of a stampede and forces a second,
	// legitimate load that this test would count against the singleflight.
	deadline := time.Now().Add(10 * time.Second)
	for a.DelayQueue().Stats().Ran+c.DelayQueue().Stats().Ran < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the create's second delete never ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rdb := newRedis(b.cfg.RedisAddr)
	defer rdb.Close()
	for i, in := range []*instance{a, c} {
		// Start cold on every layer this instance would use.
		rdb.Del(context.Background(), fmt.Sprintf("%s:item:%d", b.cfg.RedisPrefix, item))
		in.LocalCache().Invalidate(sale.ItemID(item))
		before := loads[i].Load()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for j := 0; j < 200; j++ {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; priceOf(t, in, item) }()
		}
		close(start)
		wg.Wait()
		if n := loads[i].Load() - before; n != 1 {
			t.Fatalf("instance %d: 200 cold reads caused %d database reads, want 1", i, n)
		}
	}
}

// TestSecondDeleteSurvivesItsScheduler: the instance that scheduled the
// second delete stops before it is due; the other instance carries it out.
func TestSecondDeleteSurvivesItsScheduler(t *testing.T) {
	b := newBackends(t)
	const delay = time.Second
	edit := func(c *config.Config) { c.DoubleDeleteDelay = delay }
	a := b.start(t, "api-a", both, edit)
	survivor := b.start(t, "api-s", apiOnly, edit)
	item := survivor.createSale("orphan", 10, 0)
	if r := a.do("PATCH", fmt.Sprintf("/api/v1/admin/items/%d", item), adminToken, map[string]any{"name": "renamed"}); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Fill the shared cache again through the survivor; only a second
	// delete can remove that entry now.
	priceOf(t, survivor, item)
	key := fmt.Sprintf("%s:item:%d", b.cfg.RedisPrefix, item)
	rdb := newRedis(b.cfg.RedisAddr)
	defer rdb.Close()
	if n, _ := rdb.Exists(context.Background(), key).Result(); n != 1 {
		t.Fatal("the survivor's read did not fill the shared cache; the test cannot observe the second delete")
	}
	ran := survivor.DelayQueue().Stats().Ran
	deadline := time.Now().Add(delay + 8*time.Second)
	for {
		n, _ := rdb.Exists(context.Background(), key).Result()
		if n == 0 && survivor.DelayQueue().Stats().Ran > ran {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second delete never ran on the survivor (ran %d→%d, key exists=%d)", ran, survivor.DelayQueue().Stats().Ran, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestItemUpdateLeavesLiveStockAlone: editing an item's data and window in
// the middle of a sale never deletes or reloads the live stock.
func TestItemUpdateLeavesLiveStockAlone(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, nil)
	item := in.createSale("midsale", 50, 0)
	users, tokens := loginAll(t, in, "mid", 30)
	first := spike(t, in, item, users[:10], tokens)
	in.waitSettled(item, 20*time.Second)
	before := in.stats(item)
	ends := time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339Nano)
	if r := in.do("PATCH", fmt.Sprintf("/api/v1/admin/items/%d", item), adminToken, map[string]any{"price_cents": 1, "name": "cheaper", "ends_at": ends}); r.Status != 200 {
		t.Fatalf("patch: %d %s", r.Status, r.Raw)
	}
	time.Sleep(b.cfg.DoubleDeleteDelay + 300*time.Millisecond) // let the second delete run too
	after := in.stats(item)
	if after.num("stock_left_redis") != before.num("stock_left_redis") || after.num("stock_left_redis") != 40 {
		t.Fatalf("live stock changed by an item update: before %s after %s", before.Raw, after.Raw)
	}
	rest := spike(t, in, item, users[10:], tokens)
	confirmed, _ := checkSettledSale(t, in, item, 50, append(first, rest...))
	if confirmed != 30 {
		t.Fatalf("confirmed %d, want 30", confirmed)
	}
}

// afterItemRead calls f with the price of every single item row this
// instance's database store reads, after the query and before the value
// travels up the cache chain: a gorm callback on the store's own
// connection, so a test can count loads or hold one to open a race window.
func afterItemRead(t *testing.T, p *bootstrap.Parts, f func(priceCents int64)) {
	t.Helper()
	err := p.Store().DB().Callback().Query().After("gorm:query").Register("e2e:after-item-read", func(tx *gorm.DB) {
		v := tx.Statement.ReflectValue
		if tx.Error != nil || tx.Statement.Table != "items" || v.Kind() != reflect.Struct {
			return // a failed read, another table, or a list
		}
		f(v.FieldByName("PriceCents").Int())
	})
	if err != nil {
		t.Fatal(err)
	}
}
