package redisstock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// TestOversellRace releases 400 distinct buyers on 50 units at once: exactly
// 50 may win.
func TestOversellRace(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		const stock, buyers = 50, 400
		it := h.open(t, item(1, stock))
		var (
			start             = make(chan struct{})
			wg                sync.WaitGroup
			accepted, soldOut atomic.Int64
			errs              = make(chan error, buyers)
		)
		for i := range buyers {
			wg.Go(func() {
				o := order(it, fmt.Sprintf("u%d", i), inWindow)
				<-start
				r, err := h.s.Reserve(h.ctx, o)
				switch {
				case err != nil:
					errs <- err
				case r.Outcome == sale.Accepted:
					accepted.Add(1)
				case r.Outcome == sale.OutcomeSoldOut:
					soldOut.Add(1)
				default:
					errs <- fmt.Errorf("user u%d: unexpected %+v", i, r)
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if accepted.Load() != stock || soldOut.Load() != buyers-stock {
			t.Fatalf("accepted %d, sold out %d; want %d and %d", accepted.Load(), soldOut.Load(), stock, buyers-stock)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: stock, StockLeft: 0, Pending: stock})
		if n, err := h.rdb.HLen(h.ctx, h.s.item(1).buyers()).Result(); err != nil || n != stock {
			t.Fatalf("buyers = %d, %v; want %d", n, err, stock)
		}
	})
}

// TestSameUserRace releases 50 orders of one user at once: exactly one wins
// and every other attempt names the winner.
func TestSameUserRace(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		const attempts = 50
		it := h.open(t, item(1, 10))
		var (
			start    = make(chan struct{})
			wg       sync.WaitGroup
			mu       sync.Mutex
			won      []sale.OrderID
			existing = map[sale.OrderID]int{}
		)
		for range attempts {
			wg.Go(func() {
				o := order(it, "same-user", inWindow)
				<-start
				r, err := h.s.Reserve(h.ctx, o)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					t.Errorf("Reserve: %v", err)
				case r.Outcome == sale.Accepted:
					won = append(won, o.ID)
				case r.Outcome == sale.OutcomeAlreadyPurchased:
					existing[r.Existing]++
				default:
					t.Errorf("unexpected %+v", r)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("%d attempts accepted, want exactly 1: %v", len(won), won)
		}
		if existing[won[0]] != attempts-1 || len(existing) != 1 {
			t.Fatalf("already-purchased answers named %v, want %d times %s", existing, attempts-1, won[0])
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 10, StockLeft: 9, Pending: 1})
	})
}

// TestConservation runs reserves, settles, releases and restocks
// concurrently, then checks that no unit was created or lost:
// total == stock left + pending + settled.
func TestConservation(t *testing.T) {
	eachBackend(t, Options{MaxBatch: 8, Pipelines: 3}, func(t *testing.T, h *harness) {
		const initial, users, restockers = 30, 160, 8
		it := h.open(t, item(1, initial))
		var (
			start                      = make(chan struct{})
			wg                         sync.WaitGroup
			settled, released, restock atomic.Int64
		)
		for i := range users {
			wg.Go(func() {
				o := order(it, fmt.Sprintf("u%d", i), inWindow)
				<-start
				r, err := h.s.Reserve(h.ctx, o)
				if err != nil {
					t.Errorf("Reserve: %v", err)
					return
				}
				if r.Outcome != sale.Accepted {
					return
				}
				// Each winner's order goes one of the ways an order can go.
				switch i % 4 {
				case 0: // confirmed by a worker
					if err := h.s.Settle(h.ctx, o.ID); err != nil {
						t.Errorf("Settle: %v", err)
						return
					}
					settled.Add(1)
				case 1: // failed by the database: released, and a repeat
					// release (a redelivery) changes nothing
					ok, _, err := h.s.Release(h.ctx, o.ID)
					if err != nil || !ok {
						t.Errorf("Release(%s) = %v, %v", o.ID, ok, err)
					}
					released.Add(1)
					if ok, _, err := h.s.Release(h.ctx, o.ID); err != nil || ok {
						t.Errorf("second Release(%s) = %v, %v; want nothing released", o.ID, ok, err)
					}
				case 2: // published, then settled
					if err := h.s.MarkPublished(h.ctx, o.ID); err != nil {
						t.Errorf("MarkPublished: %v", err)
						return
					}
					if err := h.s.Settle(h.ctx, o.ID); err != nil {
						t.Errorf("Settle: %v", err)
						return
					}
					settled.Add(1)
				case 3: // still pending at the end
				}
			})
		}
		for i := range restockers {
			wg.Go(func() {
				<-start
				// Two restockers share each key, so half the calls repeat.
				applied, _, err := h.s.Restock(h.ctx, 1, 2, fmt.Sprintf("k%d", i/2))
				if err != nil {
					t.Errorf("Restock: %v", err)
					return
				}
				if applied {
					restock.Add(2)
				}
			})
		}
		close(start)
		wg.Wait()
		c := h.counts(t, 1)
		if c.StockTotal != initial+restock.Load() || restock.Load() != restockers {
			t.Fatalf("total %d after %d restocked units, want %d + %d (half the keys repeat)", c.StockTotal, restock.Load(), initial, restockers)
		}
		if c.StockLeft < 0 {
			t.Fatalf("stock went negative: %+v", c)
		}
		if c.StockTotal != c.StockLeft+c.Pending+settled.Load() {
			t.Fatalf("not conserved: total %d != stock %d + pending %d + settled %d", c.StockTotal, c.StockLeft, c.Pending, settled.Load())
		}
		if c.Gen != released.Load()+restockers/2 {
			t.Fatalf("counts %+v: want gen %d", c, released.Load()+restockers/2)
		}
		if settled.Load() == 0 || released.Load() == 0 || c.Pending == 0 {
			t.Fatalf("the mix did not exercise every path: settled %d released %d pending %d", settled.Load(), released.Load(), c.Pending)
		}
	})
}

// TestReserveTransportError checks that a Redis that cannot be reached gives
// an error, never an Outcome.
func TestReserveTransportError(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	h := newHarness(t, rdb, "t", Options{})
	it := h.open(t, item(1, 5))
	mr.Close()
	r, err := h.s.Reserve(context.Background(), order(it, "a", inWindow))
	if err == nil {
		t.Fatalf("Reserve against a stopped server = %+v, nil; want an error", r)
	}
	if errors.Is(err, ErrClosed) || r != (sale.Reservation{}) {
		t.Fatalf("Reserve = %+v, %v; want a zero reservation and a transport error", r, err)
	}
	if err := h.s.Settle(context.Background(), sale.NewOrderID(1, inWindow)); err == nil {
		t.Fatal("Settle against a stopped server returned no error")
	}
}
