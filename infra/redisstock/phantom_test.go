package redisstock

import (
	"fmt"
	"testing"
	"time"

	"seckill/domain/sale"
)

// TestDropGivesNoUnitBack: a phantom's record goes and its user's slot is
// freed, but the stock stays where it is (Release would have put the unit
// back on sale, to be sold and refused again), once.
func TestDropGivesNoUnitBack(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 2))
		o := order(it, "a", inWindow)
		h.expect(t, o, sale.Accepted)
		dropped, err := h.s.Drop(h.ctx, o.ID)
		if err != nil || !dropped {
			t.Fatalf("Drop = %v, %v; want dropped", dropped, err)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 2, StockLeft: 1, Gen: 1})
		if dropped, err := h.s.Drop(h.ctx, o.ID); err != nil || dropped {
			t.Fatalf("second Drop = %v, %v; want nothing dropped", dropped, err)
		}
		h.release(t, o.ID, false, 1) // no longer pending: no unit either
		h.wantCounts(t, 1, sale.Counts{StockTotal: 2, StockLeft: 1, Gen: 1})
		if n, err := h.rdb.ZCard(h.ctx, h.s.item(1).outbox()).Result(); err != nil || n != 0 {
			t.Fatalf("outbox holds %d entries after drop (%v), want 0", n, err)
		}
		// The slot is free: the user may try again.
		h.expect(t, order(it, "a", inWindow.Add(time.Second)), sale.Accepted)
	})
}

// TestTrimTakesNeverAdds: Trim takes up to what it is asked, bucket by
// bucket, never below zero, and never adds.
func TestTrimTakesNeverAdds(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		h.open(t, splitItem(1, 10, 3)) // [4 3 3]
		if n, err := h.s.Trim(h.ctx, 1, 6); err != nil || n != 6 {
			t.Fatalf("Trim(6) = %d, %v; want 6", n, err)
		}
		if got := h.rawStock(t, 1, 3); fmt.Sprint(got) != "[0 1 3]" {
			t.Fatalf("stock after Trim(6) = %v, want [0 1 3]", got)
		}
		if n, err := h.s.Trim(h.ctx, 1, 100); err != nil || n != 4 {
			t.Fatalf("Trim(100) = %d, %v; want the 4 left", n, err)
		}
		if n, err := h.s.Trim(h.ctx, 1, -5); err != nil || n != 0 {
			t.Fatalf("Trim(-5) = %d, %v; want 0", n, err)
		}
		if got := h.rawStock(t, 1, 3); fmt.Sprint(got) != "[0 0 0]" {
			t.Fatalf("stock = %v, want [0 0 0]", got)
		}
		if c := h.counts(t, 1); c.StockTotal != 10 || c.StockLeft != 0 {
			t.Fatalf("counts = %+v, want total 10 left 0", c)
		}
	})
}
