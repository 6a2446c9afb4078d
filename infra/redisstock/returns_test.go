package redisstock

import (
	"fmt"
	"sync"
	"testing"

	"seckill/domain/sale"
)

// TestReturnOnce sells 1,000 units, then returns the units of every other
// order (the expired ones of a pay-versus-expiry race) from three
// contenders at once: the lifecycle call per order, a sweeper's batch, and
// a repeat of the lifecycle call. Each returned order's unit must come back
// exactly once, the others' never, and the buyers' slots must stay.
func TestReturnOnce(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		const n = 1000
		it := h.open(t, item(7, n))
		var orders []sale.Order
		for i := range n {
			o := order(it, fmt.Sprintf("u%d", i), inWindow)
			h.expect(t, o, sale.Accepted)
			orders = append(orders, o)
		}
		all := make([]sale.OrderID, n)
		for i, o := range orders {
			all[i] = o.ID
		}
		if err := h.s.Settle(h.ctx, all...); err != nil {
			t.Fatal(err)
		}
		genBefore := h.counts(t, it.ID).Gen
		var back []sale.OrderID
		for i := 0; i < n; i += 2 {
			back = append(back, all[i])
		}

		start := make(chan struct{})
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			units int64
		)
		add := func(rs []Returned, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			}
			for _, r := range rs {
				units += r.Units
			}
		}
		for range 2 {
			wg.Go(func() {
				<-start
				for _, id := range back {
					add(h.s.Return(h.ctx, id))
				}
			})
		}
		wg.Go(func() {
			<-start
			add(h.s.Return(h.ctx, back...))
		})
		close(start)
		wg.Wait()

		if units != int64(len(back)) {
			t.Fatalf("the contenders returned %d units in all; want %d, one per order", units, len(back))
		}
		c := h.counts(t, it.ID)
		if c.StockLeft != int64(len(back)) || c.StockTotal != n || c.Pending != 0 || c.Gen <= genBefore {
			t.Fatalf("counts after the returns = %+v; want stock %d and a newer gen than %d", c, len(back), genBefore)
		}
		// The buyer of a returned order keeps their slot.
		h.expect(t, order(it, "u0", inWindow), sale.OutcomeAlreadyPurchased)
		if rs, err := h.s.Return(h.ctx, back...); err != nil || rs[0].Units != 0 || rs[0].Gen != c.Gen {
			t.Fatalf("Return once more = %+v, %v; want a no-op that keeps gen %d", rs, err, c.Gen)
		}
	})
}

// TestReturnMissingSaleAndRestore: a return on a lost sale marks nothing
// (the rebuild counts it), and a restored mark makes a later return a no-op.
func TestReturnMissingSaleAndRestore(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		it := item(8, 5)
		lost := sale.NewOrderID(it.ID, inWindow)
		rs, err := h.s.Return(h.ctx, lost)
		if err != nil || len(rs) != 1 || !rs[0].Missing || rs[0].Units != 0 {
			t.Fatalf("Return on a missing sale = %+v, %v; want Missing", rs, err)
		}
		if n, _ := h.rdb.Exists(h.ctx, h.s.item(it.ID).sale(), h.s.item(it.ID).returned()).Result(); n != 0 {
			t.Fatalf("Return on a missing sale created %d keys", n)
		}
		h.open(t, it)
		if err := h.s.RestoreReturned(h.ctx, it.ID, []sale.OrderID{lost}); err != nil {
			t.Fatal(err)
		}
		rs, err = h.s.Return(h.ctx, lost)
		if err != nil || rs[0].Units != 0 {
			t.Fatalf("Return after RestoreReturned = %+v, %v; want a no-op", rs, err)
		}
		fresh := sale.NewOrderID(it.ID, inWindow)
		if rs, err = h.s.Return(h.ctx, fresh); err != nil || rs[0].Units != 1 {
			t.Fatalf("Return of an unmarked order = %+v, %v; want one unit", rs, err)
		}
		h.wantCounts(t, it.ID, sale.Counts{StockTotal: 5, StockLeft: 6, Gen: rs[0].Gen})
	})
}
