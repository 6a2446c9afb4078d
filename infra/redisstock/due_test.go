package redisstock

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"seckill/domain/sale"
)

// TestDueAndPublish checks the outbox's timing on the ledger's own clock: an
// accepted order is first due after FirstLook, Due leases what it takes so a
// second relay gets nothing, MarkPublished puts an order off until
// RepublishAfter, and settled or released orders never come back. The
// margins are wide (tens of milliseconds against a 1 s lease), so the test
// does not depend on the machine's speed.
func TestDueAndPublish(t *testing.T) {
	const look, republish = 150 * time.Millisecond, 5 * time.Second
	eachBackend(t, Options{FirstLook: look, RepublishAfter: republish}, func(t *testing.T, h *harness) {
		it1, it2 := h.open(t, item(1, 5)), h.open(t, item(2, 5))
		a, b, c := order(it1, "a", inWindow), order(it2, "b", inWindow), order(it1, "c", inWindow)
		for _, o := range []sale.Order{a, b, c} {
			h.expect(t, o, sale.Accepted)
		}
		if got := h.due(t, 10); len(got) != 0 {
			t.Fatalf("Due right after acceptance = %v; nothing is due before FirstLook", dueIDs(got))
		}
		time.Sleep(look + 50*time.Millisecond)
		got := h.due(t, 10)
		if len(got) != 3 {
			t.Fatalf("Due after FirstLook = %v, want all three", dueIDs(got))
		}
		for _, d := range got {
			if d.Age < look || d.Age > look+republish {
				t.Fatalf("age of %s = %v, want about %v", d.Order.ID, d.Age, look)
			}
			if d.Order.UserID == "" || d.Order.ItemID != d.Order.ID.Item() {
				t.Fatalf("due order decoded as %+v", d.Order)
			}
		}
		// Leased: a second relay looking now finds nothing.
		if got := h.due(t, 10); len(got) != 0 {
			t.Fatalf("Due again at once = %v, want nothing (leased)", dueIDs(got))
		}
		// a is published (not due for RepublishAfter), b is settled, c is
		// released: after the lease only... nothing is due.
		if err := h.s.MarkPublished(h.ctx, a.ID, "garbage"); err != nil {
			t.Fatal(err)
		}
		if err := h.s.Settle(h.ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		h.release(t, c.ID, true, 1)
		time.Sleep(look + 50*time.Millisecond)
		if got := h.due(t, 10); len(got) != 0 {
			t.Fatalf("Due after publish, settle and release = %v, want nothing", dueIDs(got))
		}
		// MarkPublished never brings back an order that left the outbox.
		if err := h.s.MarkPublished(h.ctx, b.ID, c.ID); err != nil {
			t.Fatal(err)
		}
		for _, id := range []sale.ItemID{1, 2} {
			n, err := h.rdb.ZCard(h.ctx, h.s.item(id).outbox()).Result()
			want := int64(0)
			if id == 1 {
				want = 1 // a, waiting for its republish
			}
			if err != nil || n != want {
				t.Fatalf("outbox of item %d holds %d (%v), want %d", id, n, err, want)
			}
		}
		// The limit is per item, and Due of 0 asks nothing.
		if got := h.due(t, 0); len(got) != 0 {
			t.Fatalf("Due(0) = %v", dueIDs(got))
		}
	})
}

// TestCountsOverdue checks that Counts calls an order overdue by its age on
// the ledger's clock, whatever time its accepting instance believed it was.
func TestCountsOverdue(t *testing.T) {
	eachBackend(t, Options{RepublishAfter: 100 * time.Millisecond}, func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 5))
		// Created "in 2030" by the instance's clock: the window check uses
		// it, but the overdue age must not.
		h.expect(t, order(it, "a", inWindow), sale.Accepted)
		if c := h.counts(t, 1); c.Pending != 1 || c.Overdue != 0 {
			t.Fatalf("counts right after acceptance = %+v, want 1 pending, 0 overdue", c)
		}
		time.Sleep(200 * time.Millisecond)
		if c := h.counts(t, 1); c.Pending != 1 || c.Overdue != 1 {
			t.Fatalf("counts after the overdue age = %+v, want 1 pending, 1 overdue", c)
		}
	})
}

// TestCountsOverdueInChunks: above the bucket script's scan limit, Counts
// counts the overdue orders with HSCAN in chunks instead of in the script,
// and must find the same figure; a split item counts each bucket its own way.
func TestCountsOverdueInChunks(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		it := h.open(t, splitItem(1, 1200, 2))
		for i := range 1005 {
			h.expect(t, order(it, fmt.Sprintf("u%d", i), inWindow), sale.Accepted)
		}
		// Age 1,000 of the records, in both buckets, by rewriting their
		// acceptance time (the last field) to long ago.
		aged := 0
		for _, k := range h.s.bucketKeys(1, 2) {
			recs, err := h.rdb.HGetAll(h.ctx, k.pending()).Result()
			if err != nil {
				t.Fatal(err)
			}
			for id, rec := range recs {
				if aged == 1000 {
					break
				}
				old := rec[:strings.LastIndexByte(rec, '|')+1] + "1000"
				if err := h.rdb.HSet(h.ctx, k.pending(), id, old).Err(); err != nil {
					t.Fatal(err)
				}
				aged++
			}
		}
		want := sale.Counts{StockTotal: 1200, StockLeft: 195, Pending: 1005, Overdue: 1000}
		for _, limit := range []int{overdueScanLimit, 10, 0} {
			h.s.overdueScan = limit
			c := h.counts(t, 1)
			c.Gen = 0
			if c != want {
				t.Fatalf("scan limit %d: counts = %+v, want %+v", limit, c, want)
			}
		}
	})
}

// TestSnapshotAndRepair checks the repair primitives: a snapshot reads the
// sale and its pending orders, a repair corrects stock by difference (so a
// purchase between snapshot and repair still counts), a repair refuses to
// run on a sale that moved, and a lost sale is recreated with a generation
// above any seen before.
func TestSnapshotAndRepair(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 10))
		a := order(it, "a", inWindow)
		h.expect(t, a, sale.Accepted)
		snap, err := h.s.Snapshot(h.ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !snap.Exists || snap.StockLeft != 9 || snap.StockTotal != 10 || len(snap.Pending) != 1 || snap.Pending[0].ID != a.ID ||
			!snap.StartsAt.Equal(it.StartsAt) || !snap.EndsAt.Equal(it.EndsAt) || snap.PriceCents != it.PriceCents {
			t.Fatalf("snapshot = %+v", snap)
		}
		// A purchase lands between the snapshot and the repair.
		h.expect(t, order(it, "b", inWindow), sale.Accepted)
		// The database says 2 more units are sold than the ledger knows.
		gen, err := h.s.Repair(h.ctx, it, snap, 7)
		if err != nil {
			t.Fatal(err)
		}
		if gen < time.Now().Add(-time.Hour).UnixMilli() {
			t.Fatalf("repair gen = %d, want one above any generation seen (a clock in ms)", gen)
		}
		if c := h.counts(t, 1); c.StockLeft != 6 || c.Pending != 2 || c.StockTotal != 10 {
			t.Fatalf("counts after repair = %+v, want stock 6 (7 - b), pending 2", c)
		}
		// A stale snapshot (its gen has moved on) is refused.
		if _, err := h.s.Repair(h.ctx, it, snap, 3); err == nil {
			t.Fatal("Repair with a stale snapshot succeeded")
		}
		// Lost: the sale hash is gone; the repair recreates it once.
		if err := h.rdb.Del(h.ctx, h.s.item(1).sale()).Err(); err != nil {
			t.Fatal(err)
		}
		h.expect(t, order(it, "c", inWindow), sale.OutcomeNotFound)
		lost, err := h.s.Snapshot(h.ctx, 1)
		if err != nil || lost.Exists || len(lost.Pending) != 2 {
			t.Fatalf("snapshot of a lost sale = %+v, %v", lost, err)
		}
		if _, err := h.s.Repair(h.ctx, it, lost, 4); err != nil {
			t.Fatal(err)
		}
		if _, err := h.s.Repair(h.ctx, it, lost, 4); err == nil {
			t.Fatal("a second rebuild from the same snapshot succeeded")
		}
		h.expect(t, order(it, "c", inWindow), sale.Accepted)
		if c := h.counts(t, 1); c.StockLeft != 3 || c.StockTotal != 10 {
			t.Fatalf("counts after rebuild = %+v, want stock 3", c)
		}
		// Buyers and restock keys restore without touching stock.
		if err := h.s.RestoreBuyers(h.ctx, 1, map[sale.UserID]sale.OrderID{"z": "1-00000000000000000000000000aa"}); err != nil {
			t.Fatal(err)
		}
		h.expect(t, order(it, "z", inWindow), sale.OutcomeAlreadyPurchased)
		if err := h.s.RestoreRestockKeys(h.ctx, 1, []string{"old-key"}); err != nil {
			t.Fatal(err)
		}
		if applied, _, err := h.s.Restock(h.ctx, 1, 5, "old-key"); err != nil || applied {
			t.Fatalf("Restock with a restored key = %v, %v; want a repeat", applied, err)
		}
		buyers, err := h.s.Buyers(h.ctx, 1)
		if err != nil || len(buyers) != 4 {
			t.Fatalf("Buyers = %v, %v; want a, b, c and z", buyers, err)
		}
	})
}

func (h *harness) due(t testing.TB, limit int) []sale.DueOrder {
	t.Helper()
	got, err := h.s.Due(h.ctx, limit)
	if err != nil {
		t.Fatalf("Due: %v", err)
	}
	return got
}

func dueIDs(ds []sale.DueOrder) []sale.OrderID {
	out := make([]sale.OrderID, len(ds))
	for i, d := range ds {
		out[i] = d.Order.ID
	}
	return out
}
