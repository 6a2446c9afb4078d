package localcache

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"seckill/domain/sale"
)

// fakeNext is the layer below: a map of items that counts its calls and can
// hold loads at a gate.
type fakeNext struct {
	mu    sync.Mutex
	items map[sale.ItemID]sale.Item
	err   error         // returned by every call when set
	gate  chan struct{} // when set, loads wait for it to close
	// entered receives one value per load that has begun, when set.
	entered chan struct{}

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
			return ctx.Err()
		}
	}
	// A cancelled load context would fail every caller sharing the load.
	return ctx.Err()
}

func (f *fakeNext) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	f.itemLoads.Add(1)
	f.mu.Lock()
	it, ok := f.items[id]
	err := f.err
	f.mu.Unlock()
	// The value is read before waiting, as a database read would be: a
	// slow load returns what was current when it began.
	if werr := f.wait(ctx); werr != nil {
		return sale.Item{}, werr
	}
	if err != nil {
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
	err := f.err
	f.mu.Unlock()
	if werr := f.wait(ctx); werr != nil {
		return nil, werr
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newReader(next sale.ItemReader, opts Options) (*Reader, *fakeClock) {
	r := New(next, opts)
	clk := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	r.now = clk.Now
	return r, clk
}

func item(id sale.ItemID, version int64) sale.Item {
	start := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	return sale.Item{
		ID:           id,
		Name:         "Phone " + id.String(),
		Description:  "a phone, described ✓",
		PriceCents:   199_00,
		StockTotal:   100,
		StockLeft:    100,
		StartsAt:     start,
		EndsAt:       start.Add(time.Hour),
		PurchaseRate: 500,
		Version:      version,
		CreatedAt:    time.Date(2030, 5, 1, 0, 0, 0, 123_000_000, time.UTC),
		UpdatedAt:    time.Date(2030, 5, 2, 0, 0, 0, 456_000_000, time.UTC),
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

func TestItemIsLoadedOnceThenServedFromMemory(t *testing.T) {
	t.Parallel()
	want := item(7, 3)
	next := newFakeNext(want)
	r, _ := newReader(next, Options{})
	ctx := context.Background()

	for i := 0; i < 3; i++ {
		got, err := r.Item(ctx, 7)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		sameItem(t, got, want)
	}
	if n := next.itemLoads.Load(); n != 1 {
		t.Fatalf("next.Item called %d times, want 1", n)
	}
	st := r.Stats()
	if st.Loads != 1 || st.Misses != 1 || st.Hits != 2 {
		t.Fatalf("stats = %+v, want 1 load, 1 miss, 2 hits", st)
	}
}

func TestConcurrentColdReadsLoadOnce(t *testing.T) {
	t.Parallel()
	const readers = 200
	want := item(11, 1)

	t.Run("item", func(t *testing.T) {
		t.Parallel()
		next := newFakeNext(want)
		next.gate = make(chan struct{})
		r, _ := newReader(next, Options{})
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
				got, err := r.Item(context.Background(), 11)
				if err == nil && got.Version != want.Version {
					err = errors.New("wrong version")
				}
				errs <- err
			}()
		}
		close(start)
		arrived.Wait()
		// Hold the load until every reader is at least on its way in, so
		// they overlap it instead of arriving after the fill.
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

	t.Run("list", func(t *testing.T) {
		t.Parallel()
		next := newFakeNext(want, item(12, 1))
		next.gate = make(chan struct{})
		r, _ := newReader(next, Options{})
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
				got, err := r.Items(context.Background())
				if err == nil && len(got) != 2 {
					err = errors.New("wrong list length")
				}
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
		if n := next.listLoads.Load(); n != 1 {
			t.Fatalf("%d concurrent cold list reads made %d loads, want 1", readers, n)
		}
	})
}

func TestNotFoundIsRememberedForNegativeTTL(t *testing.T) {
	t.Parallel()
	next := newFakeNext()
	r, clk := newReader(next, Options{NegativeTTL: time.Second})
	ctx := context.Background()

	for i := 0; i < 5; i++ {
		if _, err := r.Item(ctx, 404); !errors.Is(err, sale.ErrNotFound) {
			t.Fatalf("read %d: err = %v, want ErrNotFound", i, err)
		}
	}
	if n := next.itemLoads.Load(); n != 1 {
		t.Fatalf("5 reads of a missing id made %d loads, want 1", n)
	}
	if st := r.Stats(); st.NegativeHits != 4 {
		t.Fatalf("NegativeHits = %d, want 4", st.NegativeHits)
	}

	// The item appears; until NegativeTTL passes the remembered answer
	// stands, then the next read finds it.
	next.set(item(404, 1))
	clk.Advance(999 * time.Millisecond)
	if _, err := r.Item(ctx, 404); !errors.Is(err, sale.ErrNotFound) {
		t.Fatalf("within NegativeTTL: err = %v, want ErrNotFound", err)
	}
	clk.Advance(time.Millisecond)
	got, err := r.Item(ctx, 404)
	if err != nil || got.ID != 404 {
		t.Fatalf("after NegativeTTL: got %v, %v; want item 404", got.ID, err)
	}
	if n := next.itemLoads.Load(); n != 2 {
		t.Fatalf("loads = %d, want 2", n)
	}
}

func TestTTLIsTheBackstop(t *testing.T) {
	t.Parallel()
	next := newFakeNext(item(5, 1))
	r, clk := newReader(next, Options{TTL: 5 * time.Second})
	ctx := context.Background()

	if _, err := r.Item(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Items(ctx); err != nil {
		t.Fatal(err)
	}
	// The item changes and the invalidation is lost: the old copy is
	// served until TTL, and not a moment after.
	next.set(item(5, 2))
	clk.Advance(5*time.Second - time.Nanosecond)
	if got, _ := r.Item(ctx, 5); got.Version != 1 {
		t.Fatalf("before TTL: version %d, want the cached 1", got.Version)
	}
	if list, _ := r.Items(ctx); list[0].Version != 1 {
		t.Fatalf("before TTL: list version %d, want the cached 1", list[0].Version)
	}
	clk.Advance(time.Nanosecond)
	if got, _ := r.Item(ctx, 5); got.Version != 2 {
		t.Fatalf("after TTL: version %d, want 2", got.Version)
	}
	if list, _ := r.Items(ctx); list[0].Version != 2 {
		t.Fatalf("after TTL: list version %d, want 2", list[0].Version)
	}
	if st := r.Stats(); st.Loads != 4 {
		t.Fatalf("Loads = %d, want 4", st.Loads)
	}
}

// TestHotEntryIsReloadedBeforeItExpires is the cause of the
// redis-cluster-node-stall chaos scenario's missed p99: every TTL, each
// instance's entry for the item on sale expired, and the purchases that
// arrived during its reload waited for it: a GET to the Redis Cluster master
// holding the item's cache key, which when that master hung lasted the
// cache's call timeout (150 ms). A hit in the entry's last RefreshBefore
// must be served from memory and start the reload, so that a reader after
// the old expiry, with no time at all to wait, still gets the item.
func TestHotEntryIsReloadedBeforeItExpires(t *testing.T) {
	t.Parallel()
	next := newFakeNext(item(5, 1))
	r, clk := newReader(next, Options{TTL: 5 * time.Second, RefreshBefore: time.Second})
	ctx := context.Background()
	if _, err := r.Item(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Items(ctx); err != nil {
		t.Fatal(err)
	}

	// The next layer hangs, as a stopped master does.
	next.set(item(5, 2))
	next.gate = make(chan struct{})
	next.entered = make(chan struct{}, 2)
	clk.Advance(4500 * time.Millisecond)
	if got, err := r.Item(ctx, 5); err != nil || got.Version != 1 {
		t.Fatalf("hit in the refresh window: version %d, %v; want the cached 1 at once", got.Version, err)
	}
	if list, err := r.Items(ctx); err != nil || list[0].Version != 1 {
		t.Fatalf("list hit in the refresh window: %v, %v; want the cached version 1 at once", list, err)
	}
	for range 2 {
		select {
		case <-next.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("no reload began ahead of the expiry (item loads %d, list loads %d)", next.itemLoads.Load(), next.listLoads.Load())
		}
	}
	// More hits meanwhile do not start more loads.
	for range 3 {
		_, _ = r.Item(ctx, 5)
		_, _ = r.Items(ctx)
	}
	close(next.gate)
	waitRefreshed(t, r)

	// Past the old expiry, a caller whose ctx is already done gets the
	// reloaded copy: nothing had to be waited for.
	clk.Advance(time.Second)
	done, cancel := context.WithCancel(ctx)
	cancel()
	got, err := r.Item(done, 5)
	if err != nil || got.Version != 2 {
		t.Fatalf("after the old expiry: version %d, %v; want the reloaded 2 from memory", got.Version, err)
	}
	list, err := r.Items(done)
	if err != nil || list[0].Version != 2 {
		t.Fatalf("list after the old expiry: %v, %v; want the reloaded version 2 from memory", list, err)
	}
	if st := r.Stats(); st.Loads != 4 || st.Refreshes != 2 || next.itemLoads.Load() != 2 || next.listLoads.Load() != 2 {
		t.Fatalf("stats %+v, next loads %d/%d; want 4 loads, 2 of them refreshes", st, next.itemLoads.Load(), next.listLoads.Load())
	}
}

// waitRefreshed waits until the reloads ahead of expiry have stored their
// results, checked through a lookup that never loads.
func waitRefreshed(t *testing.T, r *Reader) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		it, _, ok, due, _ := r.lookup(itemKey(5), r.now().UnixNano())
		e := r.list.Load()
		if ok && !due && it.Version == 2 && e != nil && e.items[0].Version == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the reloads never stored their results")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNotFoundIsNotReloadedAhead keeps made-up ids free: a remembered
// not-found is never reloaded before it expires, however often it is read.
func TestNotFoundIsNotReloadedAhead(t *testing.T) {
	t.Parallel()
	next := newFakeNext()
	r, clk := newReader(next, Options{NegativeTTL: time.Second})
	for range 2 {
		if _, err := r.Item(context.Background(), 404); !errors.Is(err, sale.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		clk.Advance(900 * time.Millisecond)
	}
	if n := next.itemLoads.Load(); n != 1 {
		t.Fatalf("loads = %d, want 1", n)
	}
}

func TestInvalidateDropsItemAndList(t *testing.T) {
	t.Parallel()
	next := newFakeNext(item(1, 1), item(2, 1))
	r, _ := newReader(next, Options{})
	ctx := context.Background()
	for _, id := range []sale.ItemID{1, 2} {
		if _, err := r.Item(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Items(ctx); err != nil {
		t.Fatal(err)
	}

	next.set(item(1, 2))
	r.Invalidate(1)
	if got, _ := r.Item(ctx, 1); got.Version != 2 {
		t.Fatalf("after Invalidate: version %d, want 2", got.Version)
	}
	if got, _ := r.Item(ctx, 2); got.Version != 1 || next.itemLoads.Load() != 3 {
		t.Fatalf("Invalidate(1) disturbed item 2: loads = %d", next.itemLoads.Load())
	}
	if _, err := r.Items(ctx); err != nil || next.listLoads.Load() != 2 {
		t.Fatalf("Invalidate did not drop the list: list loads = %d, err %v", next.listLoads.Load(), err)
	}

	r.Flush()
	_, _ = r.Item(ctx, 2)
	_, _ = r.Items(ctx)
	if next.itemLoads.Load() != 4 || next.listLoads.Load() != 3 {
		t.Fatalf("Flush kept entries: item loads %d, list loads %d", next.itemLoads.Load(), next.listLoads.Load())
	}
	if st := r.Stats(); st.Invalidations != 1 || st.Flushes != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// A load that read the old row before an invalidation must not store it
// after the invalidation: that is the whole point of deleting.
func TestLoadRacingInvalidateDoesNotStoreOldValue(t *testing.T) {
	t.Parallel()

	t.Run("item", func(t *testing.T) {
		t.Parallel()
		next := newFakeNext(item(9, 1))
		next.gate = make(chan struct{})
		next.entered = make(chan struct{}, 4)
		r, _ := newReader(next, Options{})
		ctx := context.Background()

		old := make(chan sale.Item, 1)
		go func() {
			it, _ := r.Item(ctx, 9)
			old <- it
		}()
		<-next.entered // the slow load has read version 1

		next.set(item(9, 2))
		r.Invalidate(9)

		// A reader arriving after Invalidate must not join the old load.
		fresh := make(chan sale.Item, 1)
		go func() {
			it, _ := r.Item(ctx, 9)
			fresh <- it
		}()
		<-next.entered
		close(next.gate)
		if it := <-old; it.Version != 1 {
			t.Fatalf("the racing caller got version %d; the fake should hand it 1", it.Version)
		}
		if it := <-fresh; it.Version != 2 {
			t.Fatalf("a reader after Invalidate got version %d, want 2", it.Version)
		}
		got, err := r.Item(ctx, 9)
		if err != nil || got.Version != 2 {
			t.Fatalf("after the race: version %d, err %v; want 2 (the old load must not have been stored)", got.Version, err)
		}
		if n := next.itemLoads.Load(); n != 2 {
			t.Fatalf("loads = %d, want 2", n)
		}
	})

	t.Run("list", func(t *testing.T) {
		t.Parallel()
		next := newFakeNext(item(9, 1))
		next.gate = make(chan struct{})
		next.entered = make(chan struct{}, 4)
		r, _ := newReader(next, Options{})
		ctx := context.Background()

		done := make(chan struct{})
		go func() {
			_, _ = r.Items(ctx)
			close(done)
		}()
		<-next.entered
		next.set(item(9, 2))
		r.Invalidate(9)
		close(next.gate)
		<-done

		next.entered = nil
		list, err := r.Items(ctx)
		if err != nil || len(list) != 1 || list[0].Version != 2 {
			t.Fatalf("after the race: %+v, %v; want version 2", list, err)
		}
	})

	t.Run("flush", func(t *testing.T) {
		t.Parallel()
		next := newFakeNext(item(9, 1))
		next.gate = make(chan struct{})
		next.entered = make(chan struct{}, 4)
		r, _ := newReader(next, Options{})
		ctx := context.Background()

		done := make(chan struct{})
		go func() {
			_, _ = r.Item(ctx, 9)
			close(done)
		}()
		<-next.entered
		next.set(item(9, 2))
		r.Flush()
		close(next.gate)
		<-done
		next.entered = nil
		if got, _ := r.Item(ctx, 9); got.Version != 2 {
			t.Fatalf("after Flush raced a load: version %d, want 2", got.Version)
		}
	})
}

func TestCallerHangingUpDoesNotFailSharedLoad(t *testing.T) {
	t.Parallel()
	next := newFakeNext(item(3, 1))
	next.gate = make(chan struct{})
	next.entered = make(chan struct{}, 1)
	r, _ := newReader(next, Options{})

	first, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := r.Item(first, 3)
		firstErr <- err
	}()
	<-next.entered // the first caller started the shared load

	second := make(chan error, 1)
	go func() {
		_, err := r.Item(context.Background(), 3)
		second <- err
	}()

	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: err = %v, want context.Canceled", err)
	}
	close(next.gate)
	if err := <-second; err != nil {
		t.Fatalf("the other caller failed with the first one's cancellation: %v", err)
	}
	if n := next.itemLoads.Load(); n != 1 {
		t.Fatalf("loads = %d, want 1 shared load", n)
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	t.Parallel()
	next := newFakeNext(item(4, 1))
	next.err = errors.New("mysql is down")
	r, _ := newReader(next, Options{})
	ctx := context.Background()

	if _, err := r.Item(ctx, 4); err == nil || errors.Is(err, sale.ErrNotFound) {
		t.Fatalf("err = %v, want the next layer's error", err)
	}
	if _, err := r.Items(ctx); err == nil {
		t.Fatal("Items: want the next layer's error")
	}
	next.mu.Lock()
	next.err = nil
	next.mu.Unlock()
	if _, err := r.Item(ctx, 4); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if _, err := r.Items(ctx); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if next.itemLoads.Load() != 2 || next.listLoads.Load() != 2 {
		t.Fatalf("loads = %d/%d, want 2/2: a failure was cached", next.itemLoads.Load(), next.listLoads.Load())
	}
}

func TestItemsCallerOwnsTheSlice(t *testing.T) {
	t.Parallel()
	next := newFakeNext(item(1, 1))
	r, _ := newReader(next, Options{})
	ctx := context.Background()
	a, err := r.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a[0].Name = "scribbled"
	b, _ := r.Items(ctx)
	if b[0].Name == "scribbled" {
		t.Fatal("a caller's change to its slice reached the cache")
	}
}

func TestItemTooLargeIsServedButNotCached(t *testing.T) {
	t.Parallel()
	big := item(8, 1)
	big.Description = strings.Repeat("x", 4000) // over 1/1024 of the 512 KiB minimum
	next := newFakeNext(big)
	r, _ := newReader(next, Options{SizeBytes: 512 << 10})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		got, err := r.Item(ctx, 8)
		if err != nil {
			t.Fatal(err)
		}
		sameItem(t, got, big)
	}
	if st := r.Stats(); st.Uncacheable != 2 || st.Loads != 2 {
		t.Fatalf("stats = %+v, want 2 uncacheable loads", st)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	cases := []sale.Item{
		item(1, 1),
		{ID: 1<<62 + 5, Name: "ünïcødé 名前", Version: 1 << 40, PriceCents: sale.MaxPriceCents,
			StartsAt: time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
			EndsAt:   time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{}, // zero times stay zero
	}
	for _, want := range cases {
		b := encodeEntry(kindItem, 42, want)
		kind, exp, body, err := decodeHeader(b)
		if err != nil || kind != kindItem || exp != 42 {
			t.Fatalf("header: kind %d exp %d err %v", kind, exp, err)
		}
		got, err := decodeItem(body)
		if err != nil {
			t.Fatal(err)
		}
		sameItem(t, got, want)
		if got.CreatedAt.IsZero() != want.CreatedAt.IsZero() {
			t.Fatal("zero time did not round-trip")
		}
		// Every truncation must be rejected, never misread.
		for n := 0; n < len(body); n++ {
			if _, err := decodeItem(body[:n]); err == nil {
				t.Fatalf("truncated body of %d/%d bytes decoded without error", n, len(body))
			}
		}
	}
}

// BenchmarkLocalHit measures a hit: one freecache lookup and a decode.
// "hot" is every request on one item, as in a flash sale; "spread" spreads
// them over many items and so over freecache's segment locks.
func BenchmarkLocalHit(b *testing.B) {
	for _, bc := range []struct {
		name string
		ids  int
	}{{"hot", 1}, {"spread", 1024}} {
		b.Run(bc.name, func(b *testing.B) {
			next := newFakeNext()
			for i := 1; i <= bc.ids; i++ {
				next.set(item(sale.ItemID(i), 1))
			}
			r := New(next, Options{TTL: time.Hour})
			ctx := context.Background()
			for i := 1; i <= bc.ids; i++ {
				if _, err := r.Item(ctx, sale.ItemID(i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, err := r.Item(ctx, sale.ItemID(i%bc.ids+1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if st := r.Stats(); st.Loads != uint64(bc.ids) {
				b.Fatalf("benchmark missed: %d loads for %d items", st.Loads, bc.ids)
			}
		})
	}
}

// TestIdsAboveTheKnownRangeCostNoLoad: once a list is loaded, made-up ids
// above every known id are not found without a load, however many; an id
// named by Invalidate (a create heard over the bus) widens the range; a
// Flush stops trusting it until the next list.
func TestIdsAboveTheKnownRangeCostNoLoad(t *testing.T) {
	t.Parallel()
	next := newFakeNext(item(1, 1), item(7, 1))
	r, _ := newReader(next, Options{})
	ctx := context.Background()
	if _, err := r.Items(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if _, err := r.Item(ctx, sale.ItemID(1000+i)); !errors.Is(err, sale.ErrNotFound) {
			t.Fatalf("made-up id %d: %v, want ErrNotFound", 1000+i, err)
		}
	}
	if n := next.itemLoads.Load(); n != 0 {
		t.Fatalf("1000 made-up ids made %d loads, want 0", n)
	}
	// An item created a moment ago on another instance, not yet heard of,
	// is still found: it is within IDSlack of the known range.
	next.set(item(8, 1))
	if got, err := r.Item(ctx, 8); err != nil || got.ID != 8 {
		t.Fatalf("a new item not yet announced: %v, %v", got.ID, err)
	}
	far := sale.ItemID(7 + IDSlack + 50)
	next.set(item(far, 1))
	if _, err := r.Item(ctx, far); !errors.Is(err, sale.ErrNotFound) {
		t.Fatalf("an id far past the range before its announcement: %v, want ErrNotFound", err)
	}
	r.Invalidate(far)
	if got, err := r.Item(ctx, far); err != nil || got.ID != far {
		t.Fatalf("an item announced by Invalidate: %v, %v", got.ID, err)
	}
	next.set(item(far+IDSlack+1, 1))
	r.Flush()
	if got, err := r.Item(ctx, far+IDSlack+1); err != nil || got.ID != far+IDSlack+1 {
		t.Fatalf("after Flush an unannounced item must be loaded: %v, %v", got.ID, err)
	}
}
