package redisstock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
	"seckill/infra/testenv"
)

// scriptCases exercise every script outcome. TestScripts runs each against a
// fresh miniredis and a fresh prefix on real Redis, so the two must agree.
var scriptCases = []struct {
	name string
	run  func(t *testing.T, h *harness)
}{
	{"reserve on an item never opened is not found", func(t *testing.T, h *harness) {
		r := h.expect(t, order(item(7, 1), "u1", inWindow), sale.OutcomeNotFound)
		if !errors.Is(r.Err(), sale.ErrNotFound) {
			t.Fatalf("Err() = %v, want ErrNotFound", r.Err())
		}
		if _, err := h.s.Counts(h.ctx, 7); !errors.Is(err, sale.ErrNotFound) {
			t.Fatalf("Counts of an unknown item: %v, want ErrNotFound", err)
		}
	}},
	{"reserve before the window is not started", func(t *testing.T, h *harness) {
		it := h.open(t, future(item(1, 5)))
		h.expect(t, order(it, "u1", time.Now()), sale.OutcomeNotStarted)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 5, StockLeft: 5})
	}},
	{"reserve after the window is ended", func(t *testing.T, h *harness) {
		it := h.open(t, past(item(1, 5)))
		h.expect(t, order(it, "u1", time.Now()), sale.OutcomeEnded)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 5, StockLeft: 5})
	}},
	{"the window is judged on the ledger's clock, not the order's", func(t *testing.T, h *harness) {
		// An API instance whose clock runs an hour ahead stamps its orders
		// inside a window that, on Redis's clock, opens in half an hour.
		it := future(item(1, 5))
		it.StartsAt = time.Now().Add(30 * time.Minute)
		h.open(t, it)
		h.expect(t, order(it, "a", it.StartsAt.Add(30*time.Minute)), sale.OutcomeNotStarted)
		// One whose clock runs behind stamps inside a window that ended.
		ended := h.open(t, past(item(2, 5)))
		h.expect(t, order(ended, "b", ended.StartsAt.Add(time.Minute)), sale.OutcomeEnded)
		// A clock behind the start does not keep a buyer out of a sale
		// that is open on the ledger's clock.
		open := h.open(t, item(3, 5))
		h.expect(t, order(open, "c", open.StartsAt.Add(-time.Hour)), sale.Accepted)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 5, StockLeft: 5})
	}},
	{"an accepted order sent again after its window closed is still accepted", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 5))
		o := order(it, "a", inWindow)
		h.expect(t, o, sale.Accepted)
		h.setWindow(t, 1, t0.Add(-2*time.Hour), t0.Add(-time.Hour))
		h.expect(t, o, sale.Accepted)
		h.expect(t, order(it, "b", inWindow), sale.OutcomeEnded)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 5, StockLeft: 4, Pending: 1})
	}},
	{"accepted deducts one unit and records a queued order", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 3))
		o := order(it, "u1", inWindow)
		r := h.expect(t, o, sale.Accepted)
		if r.StockLeft != 2 || r.Gen != 0 || r.Err() != nil {
			t.Fatalf("reservation = %+v, want stock 2 gen 0", r)
		}
		got, err := h.s.Lookup(h.ctx, o.ID)
		if err != nil {
			t.Fatalf("Lookup: %v", err)
		}
		wantOrders(t, []sale.Order{got}, o)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 3, StockLeft: 2, Pending: 1})
	}},
	{"already purchased returns the existing order and deducts nothing", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 5))
		first := order(it, "u1", inWindow)
		h.expect(t, first, sale.Accepted)
		r := h.expect(t, order(it, "u1", inWindow.Add(time.Second)), sale.OutcomeAlreadyPurchased)
		if r.Existing != first.ID || r.StockLeft != 4 {
			t.Fatalf("reservation = %+v, want existing %s and stock 4", r, first.ID)
		}
		var ap *sale.AlreadyPurchasedError
		if !errors.As(r.Err(), &ap) || ap.OrderID != first.ID {
			t.Fatalf("Err() = %v, want AlreadyPurchasedError for %s", r.Err(), first.ID)
		}
		// The same order again is a replay, not a second purchase.
		if r := h.expect(t, first, sale.Accepted); r.StockLeft != 4 {
			t.Fatalf("replay reservation = %+v, want stock still 4", r)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 5, StockLeft: 4, Pending: 1})
	}},
	{"sold out, and the rules are checked window then user then stock", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 1))
		a := order(it, "a", inWindow)
		h.expect(t, a, sale.Accepted)
		r := h.expect(t, order(it, "b", inWindow), sale.OutcomeSoldOut)
		if r.StockLeft != 0 || r.Gen != 0 || !errors.Is(r.Err(), sale.ErrSoldOut) {
			t.Fatalf("sold-out reservation = %+v", r)
		}
		// A repeat buyer on a sold-out item hears already_purchased...
		if r := h.expect(t, order(it, "a", inWindow), sale.OutcomeAlreadyPurchased); r.Existing != a.ID {
			t.Fatalf("existing = %s, want %s", r.Existing, a.ID)
		}
		// ...and anyone outside the window hears about the window first.
		h.setWindow(t, 1, t0.Add(-2*time.Hour), t0.Add(-time.Hour))
		h.expect(t, order(it, "a", inWindow), sale.OutcomeEnded)
		h.setWindow(t, 1, t0.Add(2*time.Hour), t0.Add(3*time.Hour))
		h.expect(t, order(it, "b", inWindow), sale.OutcomeNotStarted)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 1, StockLeft: 0, Pending: 1})
	}},
	{"open twice keeps stock and refreshes window and price", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 3))
		h.expect(t, order(it, "a", inWindow), sale.Accepted)
		moved := it
		moved.StockTotal, moved.StockLeft = 100, 100
		moved.PriceCents = 2500
		moved.StartsAt, moved.EndsAt = t0.Add(time.Hour), t0.Add(2*time.Hour)
		h.open(t, moved)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 3, StockLeft: 2, Pending: 1})
		h.expect(t, order(it, "b", inWindow), sale.OutcomeNotStarted)
		price, err := h.rdb.HGet(h.ctx, h.s.item(1).sale(), "price").Int64()
		if err != nil || price != 2500 {
			t.Fatalf("price = %d, %v; want 2500", price, err)
		}
		h.open(t, it)
		h.expect(t, order(it, "b", inWindow), sale.Accepted)
		bad := it
		bad.EndsAt = bad.StartsAt
		if err := h.s.Open(h.ctx, bad); !errors.Is(err, sale.ErrInvalid) {
			t.Fatalf("Open with an empty window: %v, want ErrInvalid", err)
		}
	}},
	{"set window moves a live sale and refuses an unknown one", func(t *testing.T, h *harness) {
		if err := h.s.SetWindow(h.ctx, 1, t0, t0.Add(time.Hour)); !errors.Is(err, sale.ErrNotFound) {
			t.Fatalf("SetWindow on an unknown item: %v, want ErrNotFound", err)
		}
		it := h.open(t, past(item(1, 2)))
		h.expect(t, order(it, "a", inWindow), sale.OutcomeEnded)
		if err := h.s.SetWindow(h.ctx, 1, t0, t0.Add(3*time.Hour)); err != nil {
			t.Fatalf("SetWindow: %v", err)
		}
		h.expect(t, order(it, "a", inWindow), sale.Accepted)
		h.setWindow(t, 1, t0.Add(2*time.Hour), t0.Add(3*time.Hour))
		h.expect(t, order(it, "b", inWindow), sale.OutcomeNotStarted)
		if err := h.s.SetWindow(h.ctx, 1, t0, t0); !errors.Is(err, sale.ErrInvalid) {
			t.Fatalf("SetWindow with an empty window: %v, want ErrInvalid", err)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 2, StockLeft: 1, Pending: 1})
	}},
	{"restock is idempotent by key and bumps the generation", func(t *testing.T, h *harness) {
		if _, _, err := h.s.Restock(h.ctx, 1, 1, "k"); !errors.Is(err, sale.ErrNotFound) {
			t.Fatalf("Restock on an unknown item: %v, want ErrNotFound", err)
		}
		it := h.open(t, item(1, 1))
		h.expect(t, order(it, "a", inWindow), sale.Accepted)
		if r := h.expect(t, order(it, "b", inWindow), sale.OutcomeSoldOut); r.Gen != 0 {
			t.Fatalf("gen before restock = %d, want 0", r.Gen)
		}
		restock := func(add int64, key string, wantApplied bool, wantGen int64) {
			t.Helper()
			applied, gen, err := h.s.Restock(h.ctx, 1, add, key)
			if err != nil || applied != wantApplied || gen != wantGen {
				t.Fatalf("Restock(%d, %q) = %v, %d, %v; want %v, %d", add, key, applied, gen, err, wantApplied, wantGen)
			}
		}
		restock(2, "k1", true, 1)
		restock(2, "k1", false, 1)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 3, StockLeft: 2, Pending: 1, Gen: 1})
		restock(1, "k3", true, 2)
		restock(1, "k4", true, 3)
		restock(5, "k2", true, 4)
		restock(5, "k2", false, 4)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 10, StockLeft: 9, Pending: 1, Gen: 4})
		if r := h.expect(t, order(it, "b", inWindow), sale.Accepted); r.Gen != 4 || r.StockLeft != 8 {
			t.Fatalf("reservation after restock = %+v, want gen 4 stock 8", r)
		}
		if _, _, err := h.s.Restock(h.ctx, 1, 0, "k5"); !errors.Is(err, sale.ErrInvalid) {
			t.Fatalf("Restock of 0 units: %v, want ErrInvalid", err)
		}
		if _, _, err := h.s.Restock(h.ctx, 1, 1, ""); !errors.Is(err, sale.ErrInvalid) {
			t.Fatalf("Restock without a key: %v, want ErrInvalid", err)
		}
		// Keys are kept with the sale, not for a while.
		if ttl, err := h.rdb.PTTL(h.ctx, h.s.item(1).restocks()).Result(); err != nil || ttl != -1 {
			t.Fatalf("restock keys TTL = %v, %v; want none", ttl, err)
		}
	}},
	{"a restock key belongs to one item", func(t *testing.T, h *harness) {
		h.open(t, item(1, 1))
		h.open(t, item(2, 1))
		for _, id := range []sale.ItemID{1, 2} {
			if applied, _, err := h.s.Restock(h.ctx, id, 3, "same-key"); err != nil || !applied {
				t.Fatalf("Restock(item %d, same-key) = %v, %v; want applied", id, applied, err)
			}
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 4, StockLeft: 4, Gen: 1})
		h.wantCounts(t, 2, sale.Counts{StockTotal: 4, StockLeft: 4, Gen: 1})
	}},
	{"release gives the unit back once and lets the same user buy again", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 1))
		o := order(it, "a", inWindow)
		h.expect(t, o, sale.Accepted)
		h.expect(t, order(it, "b", inWindow), sale.OutcomeSoldOut)
		h.release(t, o.ID, true, 1)
		h.release(t, o.ID, false, 1) // no longer pending: nothing changes
		h.wantCounts(t, 1, sale.Counts{StockTotal: 1, StockLeft: 1, Gen: 1})
		if n, err := h.rdb.ZCard(h.ctx, h.s.item(1).outbox()).Result(); err != nil || n != 0 {
			t.Fatalf("outbox holds %d entries after release (%v), want 0", n, err)
		}
		again := order(it, "a", inWindow.Add(time.Second))
		if r := h.expect(t, again, sale.Accepted); r.Gen != 1 || r.StockLeft != 0 {
			t.Fatalf("second purchase = %+v, want gen 1 stock 0", r)
		}
		// Releasing the first order again must not free the second's unit.
		h.release(t, o.ID, false, 1)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 1, StockLeft: 0, Pending: 1, Gen: 1})
	}},
	{"release frees the user's slot only if it still holds this order", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 2))
		o := order(it, "a", inWindow)
		h.expect(t, o, sale.Accepted)
		other := sale.NewOrderID(1, inWindow)
		if err := h.rdb.HSet(h.ctx, h.s.item(1).buyers(), "a", string(other)).Err(); err != nil {
			t.Fatal(err)
		}
		h.release(t, o.ID, true, 1)
		if r := h.expect(t, order(it, "a", inWindow), sale.OutcomeAlreadyPurchased); r.Existing != other {
			t.Fatalf("existing = %s, want the other order %s", r.Existing, other)
		}
	}},
	{"release of unknown or malformed ids releases nothing", func(t *testing.T, h *harness) {
		h.open(t, item(1, 2))
		h.release(t, sale.NewOrderID(1, inWindow), false, 0)
		h.release(t, sale.NewOrderID(9, inWindow), false, 0)
		h.release(t, "nope", false, 0)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 2, StockLeft: 2})
	}},
	{"settle drops the records and the user keeps their order", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 2))
		o := order(it, "a", inWindow)
		h.expect(t, o, sale.Accepted)
		if err := h.s.Settle(h.ctx, o.ID, sale.NewOrderID(1, inWindow), "garbage"); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		h.lookupErr(t, o.ID, sale.ErrOrderNotFound)
		h.release(t, o.ID, false, 0)
		if r := h.expect(t, order(it, "a", inWindow), sale.OutcomeAlreadyPurchased); r.Existing != o.ID {
			t.Fatalf("existing = %s, want %s", r.Existing, o.ID)
		}
		// The outbox itself must be clean, or dead entries would fill
		// every Due page.
		if n, err := h.rdb.ZCard(h.ctx, h.s.item(1).outbox()).Result(); err != nil || n != 0 {
			t.Fatalf("outbox holds %d entries after settle (%v), want 0", n, err)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 2, StockLeft: 1})
		if err := h.s.Settle(h.ctx); err != nil {
			t.Fatalf("Settle(): %v", err)
		}
	}},
	{"lookup finds queued orders only", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 5))
		queued := order(it, "a", inWindow)
		released := order(it, "b", inWindow.Add(time.Second))
		h.expect(t, queued, sale.Accepted)
		h.expect(t, released, sale.Accepted)
		h.release(t, released.ID, true, 1)
		got, err := h.s.Lookup(h.ctx, queued.ID)
		if err != nil {
			t.Fatalf("Lookup queued: %v", err)
		}
		wantOrders(t, []sale.Order{got}, queued)
		h.lookupErr(t, released.ID, sale.ErrOrderNotFound)
		h.lookupErr(t, sale.NewOrderID(1, inWindow), sale.ErrOrderNotFound)
		h.lookupErr(t, sale.NewOrderID(99, inWindow), sale.ErrOrderNotFound)
		h.lookupErr(t, "nope", sale.ErrOrderNotFound)
		h.lookupErr(t, "1-zz", sale.ErrOrderNotFound)
	}},
	{"counts and stock left reflect the ledger", func(t *testing.T, h *harness) {
		it1 := h.open(t, item(1, 4))
		h.open(t, item(2, 7))
		a := order(it1, "a", inWindow)
		b := order(it1, "b", inWindow)
		h.expect(t, a, sale.Accepted)
		h.expect(t, b, sale.Accepted)
		h.release(t, a.ID, true, 1)
		if _, _, err := h.s.Restock(h.ctx, 1, 3, "r"); err != nil {
			t.Fatal(err)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 7, StockLeft: 6, Pending: 1, Gen: 2})
		left, err := h.s.StockLeft(h.ctx, 1, 99, 2)
		if err != nil {
			t.Fatalf("StockLeft: %v", err)
		}
		if len(left) != 2 || left[1] != 6 || left[2] != 7 {
			t.Fatalf("StockLeft = %v, want map[1:6 2:7]", left)
		}
		if left, err := h.s.StockLeft(h.ctx); err != nil || len(left) != 0 {
			t.Fatalf("StockLeft() = %v, %v; want empty", left, err)
		}
	}},
	{"pipelined scripts fall back to EVAL when the server lacks them", func(t *testing.T, h *harness) {
		// A script no server has seen yet: its EVALSHA must come back
		// NOSCRIPT and be resent as EVAL, on any server, without touching
		// the server-wide script cache.
		fresh := redis.NewScript("-- " + testenv.Nonce() + "\nreturn tonumber(ARGV[1]) * 2")
		cmds := h.s.runScripts(h.ctx, []scriptCall{
			{script: fresh, keys: []string{h.prefix + ":x"}, args: []any{21}},
			{script: fresh, keys: []string{h.prefix + ":x"}, args: []any{4}},
		})
		for i, want := range []int64{42, 8} {
			if got, err := cmds[i].Int64(); err != nil || got != want {
				t.Fatalf("call %d = %d, %v; want %d", i, got, err, want)
			}
		}
		if !h.private {
			return
		}
		// On a private server the real scripts can be flushed too.
		it := h.open(t, item(1, 5))
		h.expect(t, order(it, "a", inWindow), sale.Accepted)
		if err := h.rdb.ScriptFlush(h.ctx).Err(); err != nil {
			t.Fatal(err)
		}
		b := order(it, "b", inWindow)
		h.expect(t, b, sale.Accepted) // batched EVALSHA path
		if err := h.rdb.ScriptFlush(h.ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := h.s.MarkPublished(h.ctx, b.ID); err != nil { // pipelined path
			t.Fatal(err)
		}
		if err := h.rdb.ScriptFlush(h.ctx).Err(); err != nil {
			t.Fatal(err)
		}
		h.release(t, b.ID, true, 1) // single-call path
	}},
	{"a caller whose context is done reserves nothing", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 5))
		ctx, cancel := context.WithCancel(h.ctx)
		cancel()
		if _, err := h.s.Reserve(ctx, order(it, "a", inWindow)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Reserve with a cancelled ctx: %v, want context.Canceled", err)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 5, StockLeft: 5})
	}},
	{"reserve refuses a malformed order without asking Redis", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 5))
		o := order(it, "a", inWindow)
		o.ItemID = 2 // id prefix no longer matches
		if _, err := h.s.Reserve(h.ctx, o); !errors.Is(err, sale.ErrInvalid) {
			t.Fatalf("Reserve of a mismatched order: %v, want ErrInvalid", err)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 5, StockLeft: 5})
	}},
	{"reserve after close returns ErrClosed", func(t *testing.T, h *harness) {
		it := h.open(t, item(1, 5))
		if err := h.s.Ping(h.ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		h.s.Close()
		h.s.Close()
		if _, err := h.s.Reserve(h.ctx, order(it, "a", inWindow)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Reserve after Close: %v, want ErrClosed", err)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 5, StockLeft: 5})
	}},
}

func TestScripts(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			b.skipAll(t)
			for _, tc := range scriptCases {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, b.open(t, Options{}))
				})
			}
		})
	}
}
