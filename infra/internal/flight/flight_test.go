package flight

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"seckill/domain/sale"
)

// TestAnInvalidationStartsANewFlight: callers at one epoch share a load;
// a caller at the next epoch never joins it, and one whose ctx ends stops
// waiting while the load goes on for the others.
func TestAnInvalidationStartsANewFlight(t *testing.T) {
	var l Loads
	var calls atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{})
	old := func() (sale.Item, error) {
		calls.Add(1)
		close(started)
		<-release
		return sale.Item{ID: 1, Name: "old"}, nil
	}
	got := make(chan sale.Item, 1)
	go func() {
		it, _ := l.Item(context.Background(), 1, 7, old)
		got <- it
	}()
	<-started

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Item(gone, 1, 7, old); !errors.Is(err, context.Canceled) {
		t.Fatalf("a caller whose ctx ended: err = %v, want context.Canceled", err)
	}
	fresh, err := l.Item(context.Background(), 1, 8, func() (sale.Item, error) { return sale.Item{ID: 1, Name: "new"}, nil })
	if err != nil || fresh.Name != "new" {
		t.Fatalf("after an invalidation: %+v, %v; want a load of its own", fresh, err)
	}
	close(release)
	if it := <-got; it.Name != "old" || calls.Load() != 1 {
		t.Fatalf("the shared load: %+v after %d calls", it, calls.Load())
	}
}

// TestRememberKeepsItemsAndNotFoundsOnly: an error other than not-found is
// never cached, or a blip of the database would stick for a TTL.
func TestRememberKeepsItemsAndNotFoundsOnly(t *testing.T) {
	for _, c := range []struct {
		err           error
		keep, missing bool
	}{{nil, true, false}, {sale.ErrNotFound, false, true}, {errors.New("timeout"), false, false}} {
		var keep, missing bool
		Remember(sale.Item{}, c.err, func(sale.Item) { keep = true }, func() { missing = true })
		if keep != c.keep || missing != c.missing {
			t.Errorf("err %v: keep=%v missing=%v, want %v %v", c.err, keep, missing, c.keep, c.missing)
		}
	}
}

// TestListCallersGetTheirOwnCopy: callers sharing a flight must not share a
// backing array.
func TestListCallersGetTheirOwnCopy(t *testing.T) {
	var l Loads
	items := []sale.Item{{ID: 1}}
	a, _ := l.List(context.Background(), 0, func() ([]sale.Item, error) { return items, nil })
	a[0].ID = 99
	if items[0].ID != 1 {
		t.Fatal("List returned the load's own slice")
	}
}
