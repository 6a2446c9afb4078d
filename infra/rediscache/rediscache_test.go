package rediscache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
	"seckill/infra/testenv"
)

// onRedis runs f against miniredis, the real Redis and a real three-master
// Redis Cluster (which testenv skips locally, and fails under CI, when it is
// not configured or its binaries are missing).
func onRedis(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient, prefix string)) {
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		f(t, rdb, "mini"+testenv.Nonce())
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		rdb, prefix := testenv.Redis(t)
		f(t, rdb, prefix)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		rdb, prefix := testenv.RedisCluster(t)
		f(t, rdb, prefix)
	})
}

type fakeNext struct {
	mu      sync.Mutex
	items   map[sale.ItemID]sale.Item
	gate    chan struct{} // when set, loads wait for it to close
	entered chan struct{} // when set, receives one value per load begun

	itemLoads, listLoads atomic.Int64
}

func newFakeNext(items ...sale.Item) *fakeNext {
	f := &fakeNext{items: map[sale.ItemID]sale.Item{}}
	for _, it := range items {
		f.items[it.ID] = it
	}
	return f
}

func (f *fakeNext) set(it sale.Item) {
	f.mu.Lock()
	f.items[it.ID] = it
	f.mu.Unlock()
}

func (f *fakeNext) wait(ctx context.Context) error {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}

func (f *fakeNext) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	f.itemLoads.Add(1)
	f.mu.Lock()
	it, ok := f.items[id]
	f.mu.Unlock()
	// Read before waiting, as a database would: a slow load returns what
	// was current when it began.
	if err := f.wait(ctx); err != nil {
		return sale.Item{}, err
	}
	if !ok {
		return sale.Item{}, sale.ErrNotFound
	}
	return it, nil
}

func (f *fakeNext) Items(ctx context.Context) ([]sale.Item, error) {
	f.listLoads.Add(1)
	f.mu.Lock()
	var out []sale.Item
	for _, it := range f.items {
		out = append(out, it)
	}
	f.mu.Unlock()
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

func item(id sale.ItemID, version int64) sale.Item {
	start := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	return sale.Item{
		ID: id, Name: "Phone " + id.String(), Description: "described ✓",
		PriceCents: 199_00, StockTotal: 100, StockLeft: 90,
		StartsAt: start, EndsAt: start.Add(time.Hour), PurchaseRate: 500,
		Version:   version,
		CreatedAt: time.Date(2030, 5, 1, 0, 0, 0, 123_000_000, time.UTC),
		UpdatedAt: time.Date(2030, 5, 2, 0, 0, 0, 456_000_000, time.UTC),
	}
}

func sameItem(t *testing.T, got, want sale.Item) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.Description != want.Description ||
		got.PriceCents != want.PriceCents || got.StockTotal != want.StockTotal ||
		got.StockLeft != want.StockLeft || !got.StartsAt.Equal(want.StartsAt) ||
		!got.EndsAt.Equal(want.EndsAt) || got.PurchaseRate != want.PurchaseRate ||
		got.Version != want.Version || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("item mismatch:\n got  %+v\n want %+v", got, want)
	}
}

func TestItemIsStoredUnderItsKeyWithTTL(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		want := item(7, 3)
		next := newFakeNext(want)
		r := New(rdb, next, Options{Prefix: prefix})
		ctx := context.Background()

		for i := 0; i < 3; i++ {
			got, err := r.Item(ctx, 7)
			if err != nil {
				t.Fatal(err)
			}
			sameItem(t, got, want)
		}
		if n := next.itemLoads.Load(); n != 1 {
			t.Fatalf("loads = %d, want 1", n)
		}
		ttl, err := rdb.TTL(ctx, prefix+":item:7").Result()
		if err != nil || ttl < 9*time.Minute || ttl > 10*time.Minute {
			t.Fatalf("TTL of %s:item:7 = %v (%v), want about 10m", prefix, ttl, err)
		}

		list, err := r.Items(ctx)
		if err != nil || len(list) != 1 {
			t.Fatalf("Items = %v, %v", list, err)
		}
		sameItem(t, list[0], want)
		if _, err := r.Items(ctx); err != nil {
			t.Fatal(err)
		}
		if n := next.listLoads.Load(); n != 1 {
			t.Fatalf("list loads = %d, want 1", n)
		}
		if n, _ := rdb.Exists(ctx, prefix+":items:list").Result(); n != 1 {
			t.Fatalf("%s:items:list does not exist", prefix)
		}
		if st := r.Stats(); st.Hits != 3 || st.Misses != 2 || st.Loads != 2 {
			t.Fatalf("stats = %+v, want 3 hits, 2 misses, 2 loads", st)
		}
	})
}

func TestNotFoundIsRemembered(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		next := newFakeNext()
		r := New(rdb, next, Options{Prefix: prefix})
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			if _, err := r.Item(ctx, 404); !errors.Is(err, sale.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		}
		if n := next.itemLoads.Load(); n != 1 {
			t.Fatalf("loads = %d, want 1", n)
		}
		ttl, err := rdb.PTTL(ctx, prefix+":item:404").Result()
		if err != nil || ttl <= 0 || ttl > 2*time.Second {
			t.Fatalf("negative entry TTL = %v (%v), want at most 2s", ttl, err)
		}
		if st := r.Stats(); st.NegativeHits != 2 {
			t.Fatalf("NegativeHits = %d, want 2", st.NegativeHits)
		}
	})
}

func TestConcurrentColdReadsLoadOnce(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		const readers = 200
		next := newFakeNext(item(11, 1))
		next.gate = make(chan struct{})
		r := New(rdb, next, Options{Prefix: prefix})
		start := make(chan struct{})
		var arrived, done sync.WaitGroup
		errs := make(chan error, readers)
		for i := 0; i < readers; i++ {
			arrived.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				<-start
				arrived.Done()
				_, err := r.Item(context.Background(), 11)
				errs <- err
			}()
		}
		close(start)
		arrived.Wait()
		close(next.gate)
		done.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := next.itemLoads.Load(); n != 1 {
			t.Fatalf("%d concurrent cold reads made %d loads, want 1", readers, n)
		}
	})
}

func TestInvalidateDeletesItemAndListOnly(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		next := newFakeNext(item(1, 1), item(2, 1))
		r := New(rdb, next, Options{Prefix: prefix})
		ctx := context.Background()
		// Live stock lives in keys of its own; invalidation must not touch them.
		stockKey := prefix + ":stock:1"
		if err := rdb.Set(ctx, stockKey, 42, 0).Err(); err != nil {
			t.Fatal(err)
		}
		for _, id := range []sale.ItemID{1, 2} {
			if _, err := r.Item(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.Items(ctx); err != nil {
			t.Fatal(err)
		}

		next.set(item(1, 2))
		if err := r.Invalidate(ctx, 1); err != nil {
			t.Fatal(err)
		}
		// One EXISTS per key: the two are in different cluster slots.
		for _, key := range []string{prefix + ":item:1", prefix + ":items:list"} {
			if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 0 {
				t.Fatalf("EXISTS %s after Invalidate = %d, %v; want 0", key, n, err)
			}
		}
		if n, _ := rdb.Exists(ctx, prefix+":item:2").Result(); n != 1 {
			t.Fatal("Invalidate(1) deleted item 2")
		}
		if v, _ := rdb.Get(ctx, stockKey).Result(); v != "42" {
			t.Fatalf("stock key = %q after Invalidate, want 42", v)
		}
		if got, _ := r.Item(ctx, 1); got.Version != 2 {
			t.Fatalf("after Invalidate: version %d, want 2", got.Version)
		}
		list, _ := r.Items(ctx)
		for _, it := range list {
			if it.ID == 1 && it.Version != 2 {
				t.Fatalf("list after Invalidate has version %d", it.Version)
			}
		}
	})
}

// A load that read the old row before Invalidate must not write it after:
// that is the whole point of deleting.
func TestLoadRacingInvalidateDoesNotStoreOldValue(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		next := newFakeNext(item(9, 1))
		next.gate = make(chan struct{})
		next.entered = make(chan struct{}, 4)
		r := New(rdb, next, Options{Prefix: prefix})
		ctx := context.Background()

		old := make(chan sale.Item, 1)
		go func() {
			it, _ := r.Item(ctx, 9)
			old <- it
		}()
		<-next.entered // the slow load has read version 1

		next.set(item(9, 2))
		if err := r.Invalidate(ctx, 9); err != nil {
			t.Fatal(err)
		}
		close(next.gate)
		if it := <-old; it.Version != 1 {
			t.Fatalf("racing caller got version %d; the fake hands it 1", it.Version)
		}
		if n, _ := rdb.Exists(ctx, prefix+":item:9").Result(); n != 0 {
			v, _ := rdb.Get(ctx, prefix+":item:9").Result()
			t.Fatalf("the old load wrote after Invalidate: %s", v)
		}
		if got, _ := r.Item(ctx, 9); got.Version != 2 {
			t.Fatalf("version %d, want 2", got.Version)
		}
	})
}

func TestCorruptValueIsReloaded(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		next := newFakeNext(item(5, 1))
		r := New(rdb, next, Options{Prefix: prefix})
		ctx := context.Background()
		if err := rdb.Set(ctx, prefix+":item:5", "{not json", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		got, err := r.Item(ctx, 5)
		if err != nil || got.Version != 1 {
			t.Fatalf("got %+v, %v", got, err)
		}
		if st := r.Stats(); st.DecodeErrors == 0 || st.Loads != 1 {
			t.Fatalf("stats = %+v, want a decode error and a load", st)
		}
		if _, err := r.Item(ctx, 5); err != nil || next.itemLoads.Load() != 1 {
			t.Fatalf("the reload did not overwrite the bad value: loads %d", next.itemLoads.Load())
		}
	})
}

func TestCallerHangingUpDoesNotFailSharedLoad(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		next := newFakeNext(item(3, 1))
		next.gate = make(chan struct{})
		next.entered = make(chan struct{}, 1)
		r := New(rdb, next, Options{Prefix: prefix})

		first, cancel := context.WithCancel(context.Background())
		firstErr := make(chan error, 1)
		go func() {
			_, err := r.Item(first, 3)
			firstErr <- err
		}()
		<-next.entered
		second := make(chan error, 1)
		go func() {
			_, err := r.Item(context.Background(), 3)
			second <- err
		}()
		cancel()
		if err := <-firstErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller: %v", err)
		}
		close(next.gate)
		if err := <-second; err != nil {
			t.Fatalf("the other caller failed with the first one's cancellation: %v", err)
		}
		if n := next.itemLoads.Load(); n != 1 {
			t.Fatalf("loads = %d, want 1", n)
		}
	})
}

// A Redis outage must cost a slower page, not a failed one.
func TestRedisDownFallsThrough(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	next := newFakeNext(item(1, 1))
	r := New(rdb, next, Options{})
	ctx := context.Background()

	m.SetError("LOADING Redis is loading the dataset in memory")
	got, err := r.Item(ctx, 1)
	if err != nil || got.ID != 1 {
		t.Fatalf("Item with Redis failing: %+v, %v", got, err)
	}
	if _, err := r.Items(ctx); err != nil {
		t.Fatalf("Items with Redis failing: %v", err)
	}
	if _, err := r.Item(ctx, 2); !errors.Is(err, sale.ErrNotFound) {
		t.Fatalf("missing item with Redis failing: err = %v, want ErrNotFound", err)
	}
	st := r.Stats()
	if st.RedisErrors != 3 || st.Loads != 3 {
		t.Fatalf("stats = %+v, want 3 Redis errors and 3 loads (no writes tried)", st)
	}

	m.SetError("")
	m.Close() // now the connection itself fails
	if _, err := r.Item(ctx, 1); err != nil {
		t.Fatalf("Item with Redis gone: %v", err)
	}
	if err := r.Invalidate(ctx, 1); err == nil {
		t.Fatal("Invalidate with Redis gone returned nil")
	}
}
