package redisline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
	"seckill/infra/redisstock"
	"seckill/infra/testenv"
)

const item = sale.ItemID(42)

// harness is one line on one backend. advance moves the line's clock
// (Redis TIME): miniredis's is set, the real one's passes.
type harness struct {
	s       *Store
	rdb     redis.UniversalClient
	prefix  string
	advance func(time.Duration)
	ctx     context.Context
}

// backends runs f on miniredis and on the real Redis (infra/testenv).
func backends(t *testing.T, f func(t *testing.T, h *harness)) {
	t.Run("miniredis", func(t *testing.T) {
		mr := miniredis.RunT(t)
		now := time.Now()
		mr.SetTime(now)
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		prefix := "t" + testenv.Nonce()
		f(t, &harness{s: New(rdb, prefix), rdb: rdb, prefix: prefix, ctx: context.Background(),
			advance: func(d time.Duration) { now = now.Add(d); mr.SetTime(now) }})
	})
	t.Run("redis", func(t *testing.T) {
		rdb, prefix := testenv.Redis(t)
		f(t, &harness{s: New(rdb, prefix), rdb: rdb, prefix: prefix, ctx: context.Background(), advance: time.Sleep})
	})
}

// before and after are configurations whose opening is ahead of and behind
// any clock the tests see, so a test chooses the phase by the config.
func before(rate int64) sale.LineConfig {
	return sale.LineConfig{OpensAt: time.Now().Add(time.Hour), AdmitPerSecond: rate, AdmissionTTL: time.Minute}
}

func after(rate int64) sale.LineConfig {
	c := before(rate)
	c.OpensAt = time.Now().Add(-time.Hour)
	return c
}

func (h *harness) setStock(t *testing.T, n int64) {
	t.Helper()
	sk, _ := redisstock.LineKeys(h.prefix, item)
	if err := h.rdb.HSet(h.ctx, sk, "stock", n).Err(); err != nil {
		t.Fatal(err)
	}
}

// buy records what a purchase leaves in the ledger: a unit taken and the
// buyer's record.
func (h *harness) buy(t *testing.T, u sale.UserID) {
	t.Helper()
	sk, bk := redisstock.LineKeys(h.prefix, item)
	h.rdb.HIncrBy(h.ctx, sk, "stock", -1)
	h.rdb.HSet(h.ctx, bk, string(u), "order-"+string(u))
}

func (h *harness) join(t *testing.T, u sale.UserID, c sale.LineConfig) int64 {
	t.Helper()
	p, err := h.s.Join(h.ctx, item, u, c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tickUntil ticks until the line has served want places, or fails after
// the given number of ticks; time passes by step between ticks.
func (h *harness) tickUntil(t *testing.T, c sale.LineConfig, want int64, step time.Duration) sale.LineState {
	t.Helper()
	var st sale.LineState
	for range 200 {
		var err error
		if st, err = h.s.Tick(h.ctx, item, c); err != nil {
			t.Fatal(err)
		}
		if st.Served >= want {
			return st
		}
		h.advance(step)
	}
	t.Fatalf("served %d after 200 ticks, want %d (%+v)", st.Served, want, st)
	return st
}

func user(i int) sale.UserID { return sale.UserID(fmt.Sprintf("u%03d", i)) }

// TestPreQueueThenFIFO: joining twice keeps the first place; everyone who
// joined before the opening gets a place before anyone who joined after,
// and the later ones are placed in join order.
func TestPreQueueThenFIFO(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		for i := range 10 {
			if p := h.join(t, user(i), before(100)); p != 0 {
				t.Fatalf("early joiner %d got place %d before the opening, want 0", i, p)
			}
		}
		h.join(t, user(3), before(100)) // a second join changes nothing
		var late []int64
		for i := 10; i < 15; i++ {
			late = append(late, h.join(t, user(i), after(100)))
		}
		if !slices.Equal(late, []int64{11, 12, 13, 14, 15}) {
			t.Fatalf("late places %v, want 11..15 in join order", late)
		}
		seen := map[int64]bool{}
		for i := range 10 {
			p, err := h.s.Place(h.ctx, item, user(i))
			if err != nil || p.Place < 1 || p.Place > 10 || seen[p.Place] {
				t.Fatalf("early joiner %d: place %+v err %v, want a distinct place in 1..10", i, p, err)
			}
			seen[p.Place] = true
		}
		if p := h.join(t, user(12), after(100)); p != 13 {
			t.Fatalf("a second join moved user 12 to %d, want 13", p)
		}
		if _, err := h.s.Place(h.ctx, item, "stranger"); !errors.Is(err, sale.ErrNotFound) {
			t.Fatalf("a user never in line: %v, want ErrNotFound", err)
		}
	})
}

// TestShuffleIsSeeded: two lines with the same pre-queue are shuffled in
// different orders (a fixed order would repeat: the chance that two secure
// shuffles of 20 agree is 1/20!).
func TestShuffleIsSeeded(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		order := func(id sale.ItemID) []int64 {
			var out []int64
			for i := range 20 {
				if _, err := h.s.Join(h.ctx, id, user(i), before(1)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := h.s.Tick(h.ctx, id, after(1)); err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				p, err := h.s.Place(h.ctx, id, user(i))
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, p.Place)
			}
			return out
		}
		a, b := order(1), order(2)
		if slices.Equal(a, b) {
			t.Fatalf("two shuffles gave the same order %v", a)
		}
	})
}

// TestConcurrentJoinsGetDistinctPlaces: 50 joiners released at once after
// the opening get exactly the places 1..50.
func TestConcurrentJoinsGetDistinctPlaces(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		var (
			start = make(chan struct{})
			wg    sync.WaitGroup
			mu    sync.Mutex
			got   []int64
		)
		for i := range 50 {
			wg.Go(func() {
				<-start
				p, err := h.s.Join(h.ctx, item, user(i), after(10))
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				got = append(got, p)
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		slices.Sort(got)
		for i, p := range got {
			if p != int64(i+1) {
				t.Fatalf("places %v, want 1..50", got)
			}
		}
	})
}

// TestEveryJoinIsAnswered: joins from 64 goroutines at once, in waves, are
// all sent and answered while up to joinSenders pipelines are in flight,
// each gets a place of its own, and every sender gives its slot back: a
// join appended while the senders were busy, with none left to take it,
// would wait out its deadline here.
func TestEveryJoinIsAnswered(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx, cancel := context.WithTimeout(h.ctx, 20*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		places := make([][]int64, 64)
		for g := range places {
			wg.Go(func() {
				for i := range 40 {
					p, err := h.s.Join(ctx, item, user(g*1000+i), after(10))
					if err != nil {
						t.Error(err)
						return
					}
					places[g] = append(places[g], p)
				}
			})
		}
		wg.Wait()
		all := slices.Concat(places...)
		slices.Sort(all)
		if len(all) != 64*40 || all[0] != 1 || all[len(all)-1] != 64*40 || len(slices.Compact(all)) != 64*40 {
			t.Fatalf("%d places from %v to %v, want 1..%d once each", len(all), all[:1], all[len(all)-1:], 64*40)
		}
		h.s.joins.mu.Lock()
		sending, pending := h.s.joins.sending, len(h.s.joins.pending)
		h.s.joins.mu.Unlock()
		if sending != 0 || pending != 0 {
			t.Fatalf("after the last answer: %d senders hold a slot, %d joins pending; want 0 and 0", sending, pending)
		}
	})
}

// TestAdmissionsFollowStock: admissions never outnumber the units; a used
// admission and a returned unit let the next in line in, in order; an
// expired one passes its chance on; and sold out admits nobody.
func TestAdmissionsFollowStock(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		c := after(100_000)
		c.AdmissionTTL = 300 * time.Millisecond
		h.setStock(t, 3)
		for i := 1; i <= 8; i++ {
			h.join(t, user(i), c)
		}
		st := h.tickUntil(t, c, 3, 5*time.Millisecond)
		if st.Served != 3 || st.Active != 3 {
			t.Fatalf("after admitting: %+v, want served 3, active 3", st)
		}
		h.advance(5 * time.Millisecond)
		if st, _ = h.s.Tick(h.ctx, item, c); st.Served != 3 {
			t.Fatalf("with every unit's chance taken the line admitted more: %+v", st)
		}
		p, err := h.s.Place(h.ctx, item, user(1))
		if err != nil || p.AdmittedUntil.IsZero() {
			t.Fatalf("place 1: %+v %v, want an admission", p, err)
		}
		if p, _ := h.s.Place(h.ctx, item, user(4)); !p.AdmittedUntil.IsZero() {
			t.Fatalf("place 4 admitted early: %+v", p)
		}
		// Users 1 and 2 buy: their admissions are used, and no chance frees.
		h.buy(t, user(1))
		h.buy(t, user(2))
		st, _ = h.s.Tick(h.ctx, item, c)
		if st.Used != 2 || st.Active != 1 || st.Served != 3 || st.Stock != 1 {
			t.Fatalf("after two purchases: %+v, want used 2, active 1, served 3, stock 1", st)
		}
		// A unit comes back (a cancellation): the next in line, place 4.
		h.setStock(t, 2)
		st = h.tickUntil(t, c, 4, 5*time.Millisecond)
		if st.Served != 4 {
			t.Fatalf("a returned unit admitted %d places, want exactly place 4: %+v", st.Served-3, st)
		}
		// Places 3 and 4 let their admissions lapse: places 5 and 6 follow.
		h.advance(350 * time.Millisecond)
		st = h.tickUntil(t, c, 6, 5*time.Millisecond)
		if st.Expired != 2 || st.Served != 6 {
			t.Fatalf("after two expiries: %+v, want expired 2, served 6", st)
		}
		// Sold out: nobody else is admitted, whatever the time.
		h.buy(t, user(5))
		h.buy(t, user(6))
		h.advance(5 * time.Millisecond)
		st, _ = h.s.Tick(h.ctx, item, c)
		if st.Stock != 0 || st.Served != 6 {
			t.Fatalf("sold out: %+v, want stock 0, served 6", st)
		}
	})
}

// TestAdmissionRateIsShared: two stores (two instances) ticking the same
// line in turn admit at the rate, not twice it, and idle time banks at
// most a second. miniredis only: the clock must be exact.
func TestAdmissionRateIsShared(t *testing.T) {
	mr := miniredis.RunT(t)
	now := time.Now()
	mr.SetTime(now)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	a, b := New(rdb, "r"), New(rdb, "r")
	h := &harness{s: a, rdb: rdb, prefix: "r", ctx: context.Background()}
	c := after(10)
	h.setStock(t, 1000)
	for i := range 200 {
		h.join(t, user(i), c)
	}
	var st sale.LineState
	for i := range 20 { // 2 s in steps of 100 ms, alternating instances
		now = now.Add(100 * time.Millisecond)
		mr.SetTime(now)
		s := a
		if i%2 == 1 {
			s = b
		}
		var err error
		if st, err = s.Tick(h.ctx, item, c); err != nil {
			t.Fatal(err)
		}
	}
	if st.Served != 20 {
		t.Fatalf("two instances over 2 s at 10/s admitted %d, want 20", st.Served)
	}
	now = now.Add(10 * time.Second)
	mr.SetTime(now)
	if st, _ = b.Tick(h.ctx, item, c); st.Served != 30 {
		t.Fatalf("after 10 s idle the line admitted %d at once, want at most a second's worth (10)", st.Served-20)
	}
}

// TestLostLineIsBornAgain: a line keeps its Born mark across calls; once
// its keys are lost (a Redis wipe) the next call begins a line with a new
// mark, and the old places are gone (not found).
func TestLostLineIsBornAgain(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		c := after(10)
		h.join(t, user(1), c)
		a, err := h.s.Tick(h.ctx, item, c)
		if err != nil {
			t.Fatal(err)
		}
		b, err := h.s.Tick(h.ctx, item, c)
		if err != nil {
			t.Fatal(err)
		}
		if a.Born == 0 || a.Born != b.Born {
			t.Fatalf("Born %d then %d, want one non-zero mark while the line lives", a.Born, b.Born)
		}
		if err := h.rdb.Del(h.ctx, KeyPatterns(h.prefix, item)...).Err(); err != nil {
			t.Fatal(err)
		}
		h.advance(time.Millisecond)
		fresh, err := h.s.Tick(h.ctx, item, c)
		if err != nil {
			t.Fatal(err)
		}
		if fresh.Born == a.Born {
			t.Fatalf("the line lost its keys but kept its Born mark %d", a.Born)
		}
		if _, err := h.s.Place(h.ctx, item, user(1)); !errors.Is(err, sale.ErrNotFound) {
			t.Fatalf("a place in the lost line: %v, want sale.ErrNotFound", err)
		}
	})
}

// TestReseedAfterALoss: a line begun again after a loss (the ledger has
// no sale yet, so it admits nobody) takes the database's buyers as its
// count of used admissions, once, and is not opened by it; a line that has
// admitted someone keeps its own count.
func TestReseedAfterALoss(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		c := after(100)
		h.join(t, user(1), c)
		h.advance(50 * time.Millisecond)
		if st, err := h.s.Tick(h.ctx, item, c); err != nil || st.Admitted != 0 || st.Stock != -1 {
			t.Fatalf("a line whose ledger has no sale: %+v %v, want nobody admitted, stock -1", st, err)
		}
		for i, want := range []bool{true, false} {
			seeded, err := h.s.Reseed(h.ctx, item, 7)
			if err != nil || seeded != want {
				t.Fatalf("reseed %d: %v %v, want %v", i+1, seeded, err, want)
			}
		}
		if st, err := h.s.Tick(h.ctx, item, c); err != nil || st.Used != 7 {
			t.Fatalf("after the reseed: %+v %v, want 7 used", st, err)
		}

		const fresh = sale.ItemID(43) // never a line: reseed makes one, closed
		if seeded, err := h.s.Reseed(h.ctx, fresh, 3); err != nil || !seeded {
			t.Fatalf("reseed of a line that did not exist: %v %v, want true", seeded, err)
		}
		if n, err := h.rdb.HGet(h.ctx, KeyPatterns(h.prefix, fresh)[0], "shuffled").Result(); !errors.Is(err, redis.Nil) {
			t.Fatalf("reseed opened the line (shuffled=%q, %v)", n, err)
		}

		const live = sale.ItemID(44) // a line that has admitted someone
		sk, _ := redisstock.LineKeys(h.prefix, live)
		h.rdb.HSet(h.ctx, sk, "stock", 5)
		if _, err := h.s.Join(h.ctx, live, user(2), c); err != nil {
			t.Fatal(err)
		}
		var st sale.LineState
		for range 200 {
			h.advance(20 * time.Millisecond)
			var err error
			if st, err = h.s.Tick(h.ctx, live, c); err != nil || st.Admitted > 0 {
				break
			}
		}
		if st.Admitted != 1 {
			t.Fatalf("the live line admitted %d, want 1", st.Admitted)
		}
		if seeded, err := h.s.Reseed(h.ctx, live, 9); err != nil || seeded {
			t.Fatalf("reseed of a line that has admitted: %v %v, want false", seeded, err)
		}
		if st, _ = h.s.Tick(h.ctx, live, c); st.Used != 0 {
			t.Fatalf("reseed changed a live line's count: %d used, want 0", st.Used)
		}
	})
}

// BenchmarkJoin joins a new user per call, from many goroutines, on the
// real Redis after the opening: what the API's join path costs, and (the
// redis-µs/join metric, from INFO commandstats) what the script costs
// Redis, the serial stage every instance's joins share.
func BenchmarkJoin(b *testing.B) {
	rdb, prefix := testenv.Redis(b)
	s := New(rdb, prefix)
	ctx := context.Background()
	c := after(1)
	sk, _ := redisstock.LineKeys(prefix, item)
	if err := rdb.HSet(ctx, sk, "stock", 1_000_000).Err(); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Join(ctx, item, "warm", c); err != nil {
		b.Fatal(err)
	}
	addr := testenv.RedisAddr(b)
	before := evalsha(b, addr)
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u := sale.UserID(fmt.Sprintf("b%09d", n.Add(1)))
			if _, err := s.Join(ctx, item, u, c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if after := evalsha(b, addr); after.Calls > before.Calls {
		b.ReportMetric(float64(after.Usec-before.Usec)/float64(after.Calls-before.Calls), "redis-µs/join")
	}
}

// evalsha is the server's EVALSHA line of INFO commandstats.
func evalsha(b *testing.B, addr string) testenv.CommandUsage {
	b.Helper()
	stats, err := testenv.CommandStats(context.Background(), addr)
	if err != nil {
		b.Fatal(err)
	}
	return stats["evalsha"]
}
