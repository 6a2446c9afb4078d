package redisstock

import (
	"strconv"
	"testing"
	"time"

	"seckill/domain/sale"
)

// TestReserveBatchMatchesOneByOne sends one batch that mixes every case the
// reserve script tells apart (early, late, a second order of one user, a
// replay of an accepted order, a used ticket, a ticket's own replay, and the
// stock running out halfway) as one script call on one item, and the same
// orders one call each on a twin item. The answers, the counts and the
// ledger's records must be the same: a batch is the orders one after the
// other, never more and never less.
func TestReserveBatchMatchesOneByOne(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		tk := sale.Ticket{ID: "bbbbbbbbbbbbbbbbbbbbbbbb", ExpiresAt: time.Now().Add(time.Minute)}
		script := func(it sale.Item) []sale.Order {
			var os []sale.Order
			add := func(user string, at time.Time, ticket bool) sale.Order {
				o := order(it, user, at)
				if ticket {
					o.Ticket = tk
				}
				os = append(os, o)
				return o
			}
			a := add("alice", inWindow, false)
			add("alice", inWindow, false) // a second order: already purchased
			os = append(os, a)            // the same order again: accepted, not deducted
			add("tess", inWindow, true)
			add("tom", inWindow, true) // the same ticket, another order: used
			add("bob", inWindow, false)
			add("carol", inWindow, false) // the third unit
			add("dave", inWindow, false)  // sold out
			add("alice", inWindow, false) // already purchased beats sold out
			return os
		}
		batched := h.open(t, item(1, 4))
		single := h.open(t, item(2, 4))
		// The ticket's used mark is per item, so the twin items can share it.
		bo, so := script(batched), script(single)

		var reqs []*reserveReq
		for _, o := range bo {
			reqs = append(reqs, h.s.newReserveReq(h.ctx, o, nil))
		}
		c := h.s.reserveCall(reqs)
		vals, err := h.s.runScript(h.ctx, c.script, c.keys, c.args...).Slice()
		if err != nil || len(vals) != 4*len(bo) {
			t.Fatalf("batch of %d: %d values, %v", len(bo), len(vals), err)
		}
		for i, o := range so {
			got, err := decodeReserve(vals[4*i : 4*i+4])
			if err != nil {
				t.Fatalf("order %d: %v", i, err)
			}
			want := h.reserve(t, o)
			// The orders of the two items have different ids: compare
			// which order of the script an existing id names.
			if (got.Existing == "") != (want.Existing == "") {
				t.Fatalf("order %d (%s): batch %+v, one by one %+v", i, o.UserID, got, want)
			}
			got.Existing, want.Existing = "", ""
			if got != want {
				t.Fatalf("order %d (%s): batch %+v, one by one %+v", i, o.UserID, got, want)
			}
		}
		want := sale.Counts{StockTotal: 4, StockLeft: 0, Pending: 4}
		h.wantCounts(t, batched.ID, want)
		h.wantCounts(t, single.ID, want)
		for _, it := range []sale.Item{batched, single} {
			buyers, err := h.s.Buyers(h.ctx, it.ID)
			if err != nil || len(buyers) != 4 || buyers["alice"] == "" || buyers["tess"] == "" || buyers["bob"] == "" || buyers["carol"] == "" {
				t.Fatalf("item %d buyers %v (%v), want alice, tess, bob and carol", it.ID, buyers, err)
			}
		}
		// alice's replayed order is hers, once.
		if buyers, _ := h.s.Buyers(h.ctx, batched.ID); buyers["alice"] != bo[0].ID {
			t.Fatalf("alice holds %s, want her first order %s", buyers["alice"], bo[0].ID)
		}
	})
}

// TestSettleAndPostponeInChunks: MarkPublished and Settle hand their ids to
// one command per chunk of luaChunk, so a call with more ids than one chunk
// (a worker's large batch, a relay pass) must still reach every one of them.
func TestSettleAndPostponeInChunks(t *testing.T) {
	eachBackend(t, Options{MaxBatch: 500}, func(t *testing.T, h *harness) {
		n := 2*luaChunk + 7
		it := item(3, int64(n))
		it.EndsAt = t0.Add(24 * time.Hour)
		h.open(t, it)
		ids := make([]sale.OrderID, n)
		for i := range ids {
			o := order(it, "u"+strconv.Itoa(i), inWindow)
			h.expect(t, o, sale.Accepted)
			ids[i] = o.ID
		}
		if err := h.s.MarkPublished(h.ctx, ids...); err != nil {
			t.Fatal(err)
		}
		// Every order was postponed by the republish age, the last chunk
		// too: none is due for the relay's first look.
		outbox := h.s.item(it.ID).outbox()
		soon := float64(time.Now().Add(DefaultRepublishAfter / 2).UnixMilli())
		if early, err := h.rdb.ZCount(h.ctx, outbox, "-inf", strconv.FormatFloat(soon, 'f', 0, 64)).Result(); err != nil || early != 0 {
			t.Fatalf("%d of %d orders still due within %s after MarkPublished (%v)", early, n, DefaultRepublishAfter/2, err)
		}
		if err := h.s.Settle(h.ctx, ids...); err != nil {
			t.Fatal(err)
		}
		h.wantCounts(t, it.ID, sale.Counts{StockTotal: int64(n), StockLeft: 0})
		if left, err := h.rdb.ZCard(h.ctx, outbox).Result(); err != nil || left != 0 {
			t.Fatalf("outbox holds %d orders after Settle (%v), want 0", left, err)
		}
	})
}
