package redisstock

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"seckill/domain/sale"
	"seckill/infra/testenv"
)

// gapBook is the database's side of one split item in the repair-gap
// tests: the item row, the restock keys it has applied, and the status of
// every order it has decided. It answers what reconcile.Service reads from
// MySQL.
type gapBook struct {
	it       sale.Item
	fates    map[sale.OrderID]sale.OrderStatus
	restocks []string
}

// live counts the orders that hold a unit (confirmed or paid), as CountHeld.
func (b *gapBook) live() int64 {
	var n int64
	for _, st := range b.fates {
		if st.Holds() {
			n++
		}
	}
	return n
}

// item is the item row as the database has it now.
func (b *gapBook) item() sale.Item {
	it := b.it
	it.StockLeft = it.StockTotal - b.live()
	return it
}

// state is the database's side of a comparison with snap, as Check reads it.
func (b *gapBook) state(snap sale.LedgerSnapshot, live int64) sale.BookState {
	fates := map[sale.OrderID]sale.Fate{}
	for _, o := range snap.Pending {
		if st, ok := b.fates[o.ID]; ok {
			fates[o.ID] = sale.Fate{Status: st}
		}
	}
	return sale.BookState{Item: b.item(), Live: live, Fates: fates}
}

// returned lists the cancelled and expired orders, as ReturnedOrders.
func (b *gapBook) returned() []sale.OrderID {
	var out []sale.OrderID
	for id, st := range b.fates {
		if st.Returned() {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// gapRig is one split item with drift to repair: three buckets, orders
// live, pending and returned in each, and a database that disagrees with
// the ledger in stock and total.
type gapRig struct {
	h  *harness
	it sale.Item
	ks []itemKeys
	db *gapBook
	// sold are confirmed and settled, one per bucket; queued and doomed
	// are pending and undecided at the check, one of each per bucket;
	// unreturned is a cancelled order of bucket 2 whose ledger return was
	// lost.
	sold, queued, doomed []sale.Order
	unreturned           sale.Order
	// entry is a move a case left in transit before the check.
	entry journalEntry
	// lost is set once bucket 0's slot is lost: the repair rebuilds it.
	lost  bool
	users int
}

// newGapRig opens item 1 with 30 units over 3 buckets and sets the drift
// up: the ledger shows 20 units left and a total of 30, the database wants
// 22 and 33.
func newGapRig(t *testing.T, h *harness) *gapRig {
	t.Helper()
	const n = 3
	g := &gapRig{h: h, it: h.open(t, splitItem(1, 30, n)), ks: h.s.bucketKeys(1, n)}
	g.db = &gapBook{it: g.it, fates: map[sale.OrderID]sale.OrderStatus{}}
	for b := range n {
		o := g.reserve(t, b)
		g.db.fates[o.ID] = sale.OrderConfirmed
		if err := h.s.Settle(h.ctx, o.ID); err != nil {
			t.Fatal(err)
		}
		g.sold = append(g.sold, o)
		g.queued = append(g.queued, g.reserve(t, b))
		g.doomed = append(g.doomed, g.reserve(t, b))
	}
	// A cancelled order whose Return never reached the ledger: the database
	// counts its unit back, the ledger does not (1 too few).
	g.unreturned = g.reserve(t, 2)
	if err := h.s.Settle(h.ctx, g.unreturned.ID); err != nil {
		t.Fatal(err)
	}
	g.db.fates[g.unreturned.ID] = sale.OrderCancelled
	// Two orders the ledger lost (AOF everysec) that the workers confirmed
	// anyway: the ledger shows 2 units too many.
	for b := range 2 {
		g.db.fates[sale.NewBucketOrderID(1, b, inWindow)] = sale.OrderConfirmed
	}
	// A restock whose ledger step was lost: 3 units too few, total too.
	g.db.it.StockTotal += 3
	g.db.restocks = append(g.db.restocks, "lost")
	return g
}

// loseBucket0 loses every key of bucket 0's slot (a master that restarted
// empty) and has the database decide its two pending orders, as the drain
// before a rebuild does: one confirmed, one failed.
func (g *gapRig) loseBucket0(t *testing.T) {
	t.Helper()
	k := g.ks[0]
	for _, key := range []string{k.sale(), k.buyers(), k.pending(), k.outbox(), k.restocks(), k.returned(), k.moves(), k.moved()} {
		if err := g.h.rdb.Del(g.h.ctx, key).Err(); err != nil {
			t.Fatal(err)
		}
	}
	g.db.fates[g.queued[0].ID] = sale.OrderConfirmed
	g.db.fates[g.doomed[0].ID] = sale.OrderFailed
	g.lost = true
}

// reserve accepts one order of a fresh user whose home is bucket b.
func (g *gapRig) reserve(t *testing.T, b int) sale.Order {
	t.Helper()
	g.users++
	o := order(g.it, userIn(t, b, len(g.ks), fmt.Sprintf("g%d", g.users)), inWindow)
	g.h.expect(t, o, sale.Accepted)
	return o
}

// cancel records in the database that a confirmed order was cancelled and
// gives its unit back in the ledger, as lifecycle does; units is what
// Return must report.
func (g *gapRig) cancel(t *testing.T, o sale.Order, units int64) {
	t.Helper()
	g.db.fates[o.ID] = sale.OrderCancelled
	g.returnUnits(t, o, units)
}

// returnUnits runs the ledger's Return of o and checks the units it gave.
func (g *gapRig) returnUnits(t *testing.T, o sale.Order, units int64) {
	t.Helper()
	rs, err := g.h.s.Return(g.h.ctx, o.ID)
	if err != nil || len(rs) != 1 || rs[0].Units != units {
		t.Fatalf("Return(%s) = %+v, %v; want %d units", o.ID, rs, err, units)
	}
}

// returnLate runs a late Return of the order the database cancelled before
// the check, whose ledger return was lost. Its restored mark should make it
// a no-op; what it did is left to the unit count to judge.
func (g *gapRig) returnLate(t *testing.T) {
	t.Helper()
	if _, err := g.h.s.Return(g.h.ctx, g.unreturned.ID); err != nil {
		t.Fatal(err)
	}
}

// fail records in the database that a pending order failed and releases
// its unit, as a worker or the relay does.
func (g *gapRig) fail(t *testing.T, o sale.Order) {
	t.Helper()
	g.db.fates[o.ID] = sale.OrderFailed
	if released, _, err := g.h.s.Release(g.h.ctx, o.ID); err != nil || !released {
		t.Fatalf("Release(%s) = %v, %v; want released", o.ID, released, err)
	}
}

// moveOut runs step 1 of a move from src to dst and returns its entry.
func (g *gapRig) moveOut(t *testing.T, src, dst int) journalEntry {
	t.Helper()
	e := journalEntry{id: newMoveID(), dest: dst}
	units, err := g.h.s.moveOut(g.h.ctx, g.ks, e.id, src, dst, maxMove)
	if err != nil || units == 0 {
		t.Fatalf("moveOut(%d -> %d) = %d, %v", src, dst, units, err)
	}
	e.units = units
	return e
}

// repair runs a repair the way reconcile.Service.Repair does (check, restore
// the restock keys and return marks, look at the database again, Repair,
// and again from the check on a conflict), with gap run once, exactly
// between Repair's check of the other buckets and its script on bucket 0.
// It returns the attempt that applied the repair.
func (g *gapRig) repair(t *testing.T, gap func(t *testing.T)) int {
	t.Helper()
	h, ctx := g.h, g.h.ctx
	ran := false
	h.s.afterPeek = func() {
		if !ran {
			ran = true
			gap(t)
		}
	}
	defer func() { h.s.afterPeek = nil }()
	for attempt := 1; attempt <= 5; attempt++ {
		live := g.db.live()
		snap, err := h.s.Snapshot(ctx, g.it.ID)
		if err != nil {
			t.Fatal(err)
		}
		rec := sale.Reconcile(snap, g.db.state(snap, live))
		if len(rec.Settle) > 0 || len(rec.Release) > 0 {
			// reconcile.Service follows these and looks again before any
			// repair; the cases below never leave any.
			t.Fatalf("check before the repair found decided pending orders: %s", rec)
		}
		switch {
		case attempt > 1:
		case g.lost && !rec.Missing:
			t.Fatalf("check before the rebuild: %s; want the sale missing", rec)
		case !g.lost && (rec.StockDrift != 2 || rec.TotalDrift != 3):
			t.Fatalf("drift before the repair: %s; want stock +2 and total +3", rec)
		}
		if err := h.s.RestoreRestockKeys(ctx, g.it.ID, g.db.restocks); err != nil {
			t.Fatal(err)
		}
		if err := h.s.RestoreReturned(ctx, g.it.ID, g.db.returned()); err != nil {
			t.Fatal(err)
		}
		it := g.db.item()
		if it.StockTotal != rec.Total || g.db.live() != rec.Live {
			continue
		}
		_, err = h.s.Repair(ctx, it, snap, rec.WantStock)
		if err == nil {
			if !ran {
				t.Fatal("the repair applied without running the gap: the seam is gone")
			}
			return attempt
		}
		if !errors.Is(err, ErrRepairConflict) {
			t.Fatal(err)
		}
	}
	t.Fatal("the repair conflicted 5 times")
	return 0
}

// settleAndCheck finishes open moves, has the database decide every order
// still pending (alternately confirmed and failed) and the ledger follow,
// and then checks that the ledger and the database agree unit for unit:
// no bucket below zero, the buckets' totals adding up to stock_total, and
// stock left plus live orders equal to stock_total; and that the ledger
// then sells exactly the units it shows.
func (g *gapRig) settleAndCheck(t *testing.T) {
	t.Helper()
	h, ctx := g.h, g.h.ctx
	if _, err := h.s.RecoverItemMoves(ctx, g.it.ID); err != nil {
		t.Fatal(err)
	}
	snap, err := h.s.Snapshot(ctx, g.it.ID)
	if err != nil {
		t.Fatal(err)
	}
	var failed []sale.OrderID
	for i, o := range snap.Pending {
		st := g.db.fates[o.ID]
		if st == "" {
			st = sale.OrderConfirmed
			if i%2 == 1 {
				st = sale.OrderFailed
			}
			g.db.fates[o.ID] = st
		}
		if st != sale.OrderFailed {
			if err := h.s.Settle(ctx, o.ID); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if released, _, err := h.s.Release(ctx, o.ID); err != nil || !released {
			t.Fatalf("Release(%s) after the repair = %v, %v; want released", o.ID, released, err)
		}
		failed = append(failed, o.ID)
	}
	for _, id := range failed {
		// A redelivery of the failure gives nothing back twice.
		if released, _, err := h.s.Release(ctx, id); err != nil || released {
			t.Fatalf("second Release(%s) = %v, %v; want a no-op", id, released, err)
		}
	}

	var left, total int64
	for b, k := range g.ks {
		v, err := h.rdb.HMGet(ctx, k.sale(), "stock", "total").Result()
		if err != nil {
			t.Fatal(err)
		}
		var stock, tot int64
		if _, err := fmt.Sscan(fmt.Sprint(v[0], " ", v[1]), &stock, &tot); err != nil {
			t.Fatalf("bucket %d = %v: %v", b, v, err)
		}
		if stock < 0 {
			t.Fatalf("bucket %d has stock %d after the repair", b, stock)
		}
		left += stock
		total += tot
	}
	if open := h.openMoves(t, g.it.ID, len(g.ks)); open != 0 {
		t.Fatalf("%d moves left open after recovery", open)
	}
	live := g.db.live()
	if total != g.db.it.StockTotal || left+live != g.db.it.StockTotal {
		t.Fatalf("after the repair and the settling: buckets hold %d units of a total %d, %d orders live; database stock_total %d (want left + live = total = stock_total)",
			left, total, live, g.db.it.StockTotal)
	}
	after, err := h.s.Snapshot(ctx, g.it.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec := sale.Reconcile(after, g.db.state(after, live)); rec.Drifted() || len(after.Pending) != 0 {
		t.Fatalf("check after the settling: %s, %d pending", rec, len(after.Pending))
	}
	// Every unit shown is a unit that sells, and no more.
	sold := int64(0)
	for u := 0; u < 3*int(left)+30; u++ {
		o := order(g.it, fmt.Sprintf("end-%d", u), inWindow)
		var r sale.Reservation
		for try := 0; try < 20; try++ {
			if r, err = h.s.Reserve(ctx, o); err != nil || r.Outcome != sale.OutcomeStockMoving {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Outcome == sale.Accepted {
			sold++
		}
	}
	if sold != left {
		t.Fatalf("sold %d units after the repair, want the %d the ledger showed", sold, left)
	}
}

// TestRepairGapOfASplitItem puts each kind of concurrent operation exactly
// between Repair's check of a split item's other buckets and its script on
// bucket 0 (the afterPeek seam), inside a repair run as reconcile.Service
// runs it, and checks that no unit is lost or made: every operation there
// is either one the stock delta counts right or one the repair refuses and
// looks at again. attempts is the attempt that applies the repair: 2 where
// the operation bumps bucket 0's generation, which the script checks.
func TestRepairGapOfASplitItem(t *testing.T) {
	cases := []struct {
		name string
		// before runs before the check, gap in the gap, after once the
		// repair applied and before the orders settle.
		before, gap, after func(t *testing.T, g *gapRig)
		attempts           int
	}{
		{name: "reservation in bucket 0", attempts: 1,
			gap: func(t *testing.T, g *gapRig) { g.reserve(t, 0) }},
		{name: "reservation in bucket 1", attempts: 1,
			gap: func(t *testing.T, g *gapRig) { g.reserve(t, 1) }},
		{name: "release in bucket 1", attempts: 1,
			gap: func(t *testing.T, g *gapRig) { g.fail(t, g.doomed[1]) }},
		{name: "release in bucket 0", attempts: 2,
			gap: func(t *testing.T, g *gapRig) { g.fail(t, g.doomed[0]) }},
		{name: "move started, left open", attempts: 1,
			gap: func(t *testing.T, g *gapRig) { g.moveOut(t, 1, 0) }},
		{name: "move credited, not closed", attempts: 1,
			gap: func(t *testing.T, g *gapRig) {
				e := g.moveOut(t, 2, 0)
				if missing, err := g.h.s.moveIn(g.h.ctx, g.ks, e); err != nil || missing {
					t.Fatalf("moveIn = %v, %v", missing, err)
				}
			}},
		{name: "move in transit at the check finishes", attempts: 1,
			before: func(t *testing.T, g *gapRig) {
				g.entry = g.moveOut(t, 2, 0)
			},
			gap: func(t *testing.T, g *gapRig) {
				if err := g.h.s.finishMove(g.h.ctx, g.ks, 2, g.entry); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "move out of bucket 0 in transit at the check is credited", attempts: 1,
			before: func(t *testing.T, g *gapRig) {
				g.entry = g.moveOut(t, 0, 1)
			},
			gap: func(t *testing.T, g *gapRig) {
				if missing, err := g.h.s.moveIn(g.h.ctx, g.ks, g.entry); err != nil || missing {
					t.Fatalf("moveIn = %v, %v", missing, err)
				}
			}},
		{name: "whole move out of bucket 0", attempts: 1,
			gap: func(t *testing.T, g *gapRig) {
				if n, err := g.h.s.moveAll(g.h.ctx, g.ks, []int{0}, 2); err != nil || n == 0 {
					t.Fatalf("moveAll = %d, %v", n, err)
				}
			}},
		{name: "return in bucket 1 of an order cancelled after the check", attempts: 1,
			gap: func(t *testing.T, g *gapRig) { g.cancel(t, g.sold[1], 1) }},
		{name: "late return whose mark was restored", attempts: 1,
			gap: func(t *testing.T, g *gapRig) { g.returnLate(t) }},
		{name: "return in bucket 0", attempts: 2,
			gap: func(t *testing.T, g *gapRig) { g.cancel(t, g.sold[0], 1) }},
		{name: "restock split by the gap", attempts: 1,
			// Its database step commits after the repair read the item, and
			// its pipeline reaches buckets 1 and 2 before bucket 0 (on a
			// cluster they are other nodes).
			gap: func(t *testing.T, g *gapRig) {
				g.db.it.StockTotal += 4
				g.db.restocks = append(g.db.restocks, "late")
				share := shares(4, len(g.ks))
				for b := 1; b < len(g.ks); b++ {
					k := g.ks[b]
					if err := g.h.s.runScript(g.h.ctx, restockScript, []string{k.sale(), k.restocks()}, share[b], "late").Err(); err != nil {
						t.Fatal(err)
					}
				}
			},
			after: func(t *testing.T, g *gapRig) {
				if applied, _, err := g.h.s.Restock(g.h.ctx, g.it.ID, 4, "late"); err != nil || !applied {
					t.Fatalf("Restock of bucket 0's share = %v, %v", applied, err)
				}
			}},
		{name: "rebuild of a lost bucket 0", attempts: 1,
			// Bucket 0 is created by the script with want minus the other
			// buckets' stock at the check, which is a delta too; a move
			// into it waits, open, until it exists.
			before: func(t *testing.T, g *gapRig) { g.loseBucket0(t) },
			gap: func(t *testing.T, g *gapRig) {
				g.reserve(t, 1)
				g.fail(t, g.doomed[2])
				e := g.moveOut(t, 1, 0)
				if missing, err := g.h.s.moveIn(g.h.ctx, g.ks, e); err != nil || !missing {
					t.Fatalf("moveIn to the lost bucket = %v, %v; want refused", missing, err)
				}
				g.cancel(t, g.sold[1], 1)
				g.returnLate(t)
			}},
		{name: "all at once", attempts: 1,
			gap: func(t *testing.T, g *gapRig) {
				g.reserve(t, 0)
				g.reserve(t, 2)
				g.fail(t, g.doomed[1])
				g.moveOut(t, 2, 0)
				g.cancel(t, g.sold[1], 1)
				g.returnLate(t)
			}},
	}
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				// Each case gets its own prefix on the same server.
				hc := newHarness(t, h.rdb, h.prefix+":c"+testenv.Nonce(), Options{})
				g := newGapRig(t, hc)
				if c.before != nil {
					c.before(t, g)
				}
				if got := g.repair(t, func(t *testing.T) { c.gap(t, g) }); got != c.attempts {
					t.Fatalf("the repair applied at attempt %d, want %d", got, c.attempts)
				}
				if c.after != nil {
					c.after(t, g)
				}
				g.settleAndCheck(t)
			})
		}
	})
}
