package bootstrap

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/app/breaker"
	"seckill/domain/sale"
	"seckill/infra/localcache"
	"seckill/infra/rediscache"
	"seckill/infra/testenv"
)

// countingItems is the database under the item caches: one item, and a
// count of the reads that reached it.
type countingItems struct {
	it    sale.Item
	reads atomic.Int64
}

func (c *countingItems) Item(_ context.Context, id sale.ItemID) (sale.Item, error) {
	c.reads.Add(1)
	if id != c.it.ID {
		return sale.Item{}, sale.ErrNotFound
	}
	return c.it, nil
}

func (c *countingItems) Items(context.Context) ([]sale.Item, error) {
	c.reads.Add(1)
	return []sale.Item{c.it}, nil
}

// TestItemReadsDoNotWaitOnAStalledMaster builds the item read path as Start
// does (local cache over the shared Redis cache, whose client carries the
// cache breaker and honours its deadline) on a real Redis Cluster, and
// SIGSTOPs the master holding the item's cache key. That key is what every
// purchase's item read came back to once per --local-cache-ttl: before,
// the entry expired and the purchases meanwhile waited for the reload's
// GET on the hung master (its 150 ms call timeout), which is what the
// redis-cluster-node-stall chaos scenario measured as a p99 of 107-142 ms.
// Now a read in the entry's last RefreshBefore starts the reload in the
// background, so once the old copy has expired a reader with no time to
// wait at all still gets the item. No timing is asserted: the entry's
// lifetime only leaves the reload seconds to finish in.
func TestItemReadsDoNotWaitOnAStalledMaster(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	_, prefix := testenv.RedisCluster(t)
	cacheRdb := NewRedisClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: true,
		ContextTimeoutEnabled: true, ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer cacheRdb.Close()
	cacheRdb.AddHook(breaker.NewRedisHook(breaker.NewBreaker("redis-cache", breaker.Settings{CallTimeout: 150 * time.Millisecond})))
	db := &countingItems{it: sale.Item{ID: 7, Name: "stall", PriceCents: 100, StockTotal: 10, StockLeft: 10,
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour)}}
	const ttl = 6 * time.Second
	local := localcache.New(rediscache.New(cacheRdb, db, rediscache.Options{Prefix: prefix, TTL: time.Minute}),
		localcache.Options{TTL: ttl, RefreshBefore: ttl / 2})
	ctx := context.Background()

	filled := time.Now()
	if _, err := local.Item(ctx, db.it.ID); err != nil {
		t.Fatal(err)
	}
	key := rediscache.KeyPatterns(prefix, db.it.ID)[0]
	master, err := cacheRdb.(*redis.ClusterClient).MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	resume := testenv.StallRedisClusterNode(t, master.Options().Addr)
	defer resume()

	// A purchase in the entry's second half: served from memory, and the
	// reload begins (its GET waits out the call timeout, then the
	// database answers).
	time.Sleep(time.Until(filled.Add(ttl/2 + 100*time.Millisecond)))
	if got, err := local.Item(ctx, db.it.ID); err != nil || got.Name != "stall" {
		t.Fatalf("read in the refresh window: %+v, %v", got, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for db.reads.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := db.reads.Load(); n != 2 {
		t.Fatalf("database reads %d, want 2: no reload reached the database past the stalled master", n)
	}

	// Past the old copy's expiry, a reader whose ctx is already done.
	time.Sleep(time.Until(filled.Add(ttl + 200*time.Millisecond)))
	done, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := local.Item(done, db.it.ID); err != nil || got.Name != "stall" {
		t.Fatalf("read after the old expiry with the master stalled: %+v, %v; want the reloaded item from memory", got, err)
	}
	if st := local.Stats(); st.Refreshes != 1 {
		t.Errorf("local cache stats %+v, want 1 reload ahead of expiry", st)
	}
}
