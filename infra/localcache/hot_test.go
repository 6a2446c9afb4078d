package localcache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"seckill/domain/sale"
)

// readTwice reads id twice, so the second read is served from the decoded
// copy if there is one, and checks both saw version want.
func readTwice(t *testing.T, r *Reader, id sale.ItemID, want int64) {
	t.Helper()
	for range 2 {
		got, err := r.Item(context.Background(), id)
		if err != nil || got.Version != want {
			t.Fatalf("Item(%d) = version %d, %v; want version %d", id, got.Version, err, want)
		}
	}
}

// TestDecodedCopyNeverOutlivesAWrite: the decoded copy of an entry (Reader.hot)
// is given up at every write to the cache, an Invalidate, the refill of a
// refresh ahead of expiry, and a Flush, and at the entry's expiry.
func TestDecodedCopyNeverOutlivesAWrite(t *testing.T) {
	t.Parallel()
	next := newFakeNext(item(1, 1))
	r, clk := newReader(next, Options{TTL: 5 * time.Second, RefreshBefore: time.Second})
	readTwice(t, r, 1, 1)

	next.set(item(1, 2))
	r.Invalidate(1)
	readTwice(t, r, 1, 2)

	// In the last second: served at once, reloaded in the background; the
	// refill must replace the copy, though the clock stays put.
	next.set(item(1, 3))
	clk.Advance(4500 * time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := r.Item(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the refresh: still version %d, want 3", got.Version)
		}
		time.Sleep(time.Millisecond)
	}
	readTwice(t, r, 1, 3)

	next.set(item(1, 4))
	r.Flush()
	readTwice(t, r, 1, 4)

	// Past the entry's expiry the copy is not served either: a load is.
	loads := next.itemLoads.Load()
	next.set(item(1, 5))
	clk.Advance(6 * time.Second)
	readTwice(t, r, 1, 5)
	if next.itemLoads.Load() == loads {
		t.Fatal("an expired entry's copy was served without a load")
	}
}

// TestDecodedCopyRacingInvalidate: with readers hammering an item, once
// Invalidate returns, the next read sees at least the version set before it.
func TestDecodedCopyRacingInvalidate(t *testing.T) {
	t.Parallel()
	next := newFakeNext(item(7, 0))
	r := New(next, Options{TTL: time.Hour})
	ctx := context.Background()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := r.Item(ctx, 7); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for v := int64(1); v <= 300; v++ {
		next.set(item(7, v))
		r.Invalidate(7)
		got, err := r.Item(ctx, 7)
		if err != nil || got.Version < v {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("after Invalidate of version %d: read version %d, %v", v, got.Version, err)
		}
	}
	stop.Store(true)
	wg.Wait()
}
