package redisstock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
	"seckill/infra/testenv"
)

func splitItem(id sale.ItemID, stock int64, buckets int) sale.Item {
	it := item(id, stock)
	it.StockBuckets = buckets
	return it
}

// rawStock reads each bucket's stock field as Redis holds it.
func (h *harness) rawStock(t testing.TB, id sale.ItemID, n int) []int64 {
	t.Helper()
	out := make([]int64, n)
	for b, k := range h.s.bucketKeys(id, n) {
		v, err := h.rdb.HGet(h.ctx, k.sale(), "stock").Int64()
		if err != nil {
			t.Fatalf("stock of bucket %d: %v", b, err)
		}
		out[b] = v
	}
	return out
}

func (h *harness) openMoves(t testing.TB, id sale.ItemID, n int) int64 {
	t.Helper()
	var open int64
	for _, k := range h.s.bucketKeys(id, n) {
		m, err := h.rdb.HLen(h.ctx, k.moves()).Result()
		if err != nil {
			t.Fatal(err)
		}
		open += m
	}
	return open
}

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}

// userIn returns a user whose home bucket among n is b.
func userIn(t testing.TB, b, n int, tag string) string {
	for i := 0; i < 10000; i++ {
		u := fmt.Sprintf("%s-%d", tag, i)
		if sale.HomeBucket(sale.UserID(u), n) == b {
			return u
		}
	}
	t.Fatalf("no user found for bucket %d of %d", b, n)
	return ""
}

func TestSplitItemKeysAndOpen(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		it := h.open(t, splitItem(1, 10, 3))
		if got := h.rawStock(t, 1, 3); fmt.Sprint(got) != "[4 3 3]" {
			t.Fatalf("bucket stock after Open = %v, want [4 3 3]", got)
		}
		ks := h.s.bucketKeys(1, 3)
		if ks[0] != h.s.item(1) {
			t.Fatalf("bucket 0 keys %q, want the unsplit item's %q", ks[0].base, h.s.item(1).base)
		}
		seen := map[int]bool{}
		for _, k := range ks {
			r := sale.RangeOfSlot(sale.KeySlot(k.sale()), 3)
			if seen[r] {
				t.Fatalf("two buckets in slot range %d", r)
			}
			seen[r] = true
		}
		// A second Open refreshes, never resets.
		h.open(t, it)
		h.wantCounts(t, 1, sale.Counts{StockTotal: 10, StockLeft: 10})
		left, err := h.s.StockLeft(h.ctx, 1)
		if err != nil || left[1] != 10 {
			t.Fatalf("StockLeft = %v, %v; want 10", left, err)
		}
		// A store that never opened the item learns its buckets from Redis.
		fresh := newStore(h.rdb, Options{Prefix: h.prefix})
		if n, err := fresh.bucketsOf(h.ctx, 1); err != nil || n != 3 {
			t.Fatalf("bucketsOf from Redis = %d, %v; want 3", n, err)
		}
	})
}

// TestSplitItemSellsEveryUnit is the hot-item spike on three buckets:
// demand far above supply, every user trying twice at once. Every unit is
// sold, each to a different user, and the item reads sold out only after.
func TestSplitItemSellsEveryUnit(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		const stock, users = 90, 400
		it := h.open(t, splitItem(1, stock, 3))
		var (
			mu       sync.Mutex
			accepted = map[string]sale.OrderID{}
			outcomes = map[sale.Outcome]int{}
			wg       sync.WaitGroup
		)
		start := make(chan struct{})
		for u := range users {
			for attempt := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					user := fmt.Sprintf("u%d", u)
					o := order(it, user, inWindow.Add(time.Duration(attempt)*time.Millisecond))
					var r sale.Reservation
					var err error
					for try := 0; try < 20; try++ {
						if r, err = h.s.Reserve(h.ctx, o); err != nil || r.Outcome != sale.OutcomeStockMoving {
							break
						}
					}
					if err != nil {
						t.Errorf("Reserve: %v", err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					outcomes[r.Outcome]++
					if r.Outcome == sale.Accepted {
						if prev, dup := accepted[user]; dup {
							t.Errorf("user %s accepted twice: %s and %s", user, prev, o.ID)
						}
						accepted[user] = o.ID
					}
				}()
			}
		}
		close(start)
		wg.Wait()
		if len(accepted) != stock {
			t.Fatalf("accepted %d orders, want every one of %d units (outcomes %v)", len(accepted), stock, outcomes)
		}
		for user, id := range accepted {
			if id.Bucket() != sale.HomeBucket(sale.UserID(user), 3) {
				t.Fatalf("order %s of %s is not in the user's home bucket", id, user)
			}
		}
		if got := h.rawStock(t, 1, 3); sum(got) != 0 || got[0] != 0 || got[1] != 0 || got[2] != 0 {
			t.Fatalf("bucket stock after the spike = %v, want all 0", got)
		}
		if open := h.openMoves(t, 1, 3); open != 0 {
			t.Fatalf("%d moves left open", open)
		}
		c := h.counts(t, 1)
		if c.StockLeft != 0 || c.Pending != stock || c.StockTotal != stock {
			t.Fatalf("counts after the spike = %+v, want 0 left, %d pending", c, stock)
		}
		buyers, err := h.s.Buyers(h.ctx, 1)
		if err != nil || len(buyers) != stock {
			t.Fatalf("buyers = %d, %v; want %d", len(buyers), err, stock)
		}
		t.Logf("outcomes: %v", outcomes)
		// Sold out now, with the item's generation; a release brings a unit
		// back at a higher one, and a buyer of another bucket can get it.
		late := h.expect(t, order(it, "late", inWindow), sale.OutcomeSoldOut)
		var victim sale.OrderID
		for _, id := range accepted {
			if id.Bucket() != sale.HomeBucket("late2", 3) {
				victim = id
				break
			}
		}
		released, gen, err := h.s.Release(h.ctx, victim)
		if err != nil || !released || gen <= late.Gen {
			t.Fatalf("Release = %v, gen %d, %v; want released at a generation above the sold-out one (%d)", released, gen, err, late.Gen)
		}
		h.expect(t, order(it, "late2", inWindow), sale.Accepted)
	})
}

func TestSplitItemRoutesEveryStepToTheOrdersBucket(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		it := h.open(t, splitItem(1, 6, 3))
		var os []sale.Order
		for b := range 3 {
			o := order(it, userIn(t, b, 3, "r"), inWindow)
			if o.ID.Bucket() != b {
				t.Fatalf("order %s in bucket %d, want %d", o.ID, o.ID.Bucket(), b)
			}
			h.expect(t, o, sale.Accepted)
			// One order per user holds in the home bucket.
			h.expect(t, order(it, string(o.UserID), inWindow), sale.OutcomeAlreadyPurchased)
			if got, err := h.s.Lookup(h.ctx, o.ID); err != nil || got.ID != o.ID {
				t.Fatalf("Lookup(%s) = %+v, %v", o.ID, got, err)
			}
			os = append(os, o)
		}
		// An id naming a bucket the item does not have is simply unknown.
		h.lookupErr(t, sale.NewBucketOrderID(1, 5, inWindow), sale.ErrOrderNotFound)
		h.lookupErr(t, sale.NewBucketOrderID(99, 2, inWindow), sale.ErrOrderNotFound)
		due, err := h.s.Due(h.ctx, 10)
		if err != nil || len(due) != 0 {
			t.Fatalf("Due before the first look = %d, %v", len(due), err)
		}
		if err := h.s.Settle(h.ctx, os[1].ID); err != nil {
			t.Fatal(err)
		}
		h.lookupErr(t, os[1].ID, sale.ErrOrderNotFound)
		released, _, err := h.s.Release(h.ctx, os[2].ID)
		if err != nil || !released {
			t.Fatalf("Release = %v, %v", released, err)
		}
		if got := h.rawStock(t, 1, 3); fmt.Sprint(got) != "[1 1 2]" {
			t.Fatalf("bucket stock = %v, want [1 1 2] (one sold in each, bucket 2's released)", got)
		}
		rs, err := h.s.Return(h.ctx, os[1].ID)
		if err != nil || len(rs) != 1 || rs[0].Units != 1 {
			t.Fatalf("Return = %+v, %v", rs, err)
		}
		if got := h.rawStock(t, 1, 3); fmt.Sprint(got) != "[1 2 2]" {
			t.Fatalf("bucket stock after the return = %v, want [1 2 2]", got)
		}
		applied, _, err := h.s.Restock(h.ctx, 1, 4, "k1")
		if err != nil || !applied {
			t.Fatalf("Restock = %v, %v", applied, err)
		}
		if again, _, _ := h.s.Restock(h.ctx, 1, 4, "k1"); again {
			t.Fatal("a repeated restock applied again")
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 10, StockLeft: 9, Pending: 1, Gen: h.counts(t, 1).Gen})
	})
}

func TestMoveIsJournaledAndReplaysOnce(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		h.open(t, splitItem(1, 9, 3))
		ks := h.s.bucketKeys(1, 3)
		units, err := h.s.moveOut(h.ctx, ks, "m1", 0, 2, maxMove)
		if err != nil || units != 2 {
			t.Fatalf("moveOut = %d, %v; want 2 (half of 3, rounded up)", units, err)
		}
		// In transit: out of bucket 0, not yet in bucket 2, and counted.
		if got := h.rawStock(t, 1, 3); fmt.Sprint(got) != "[1 3 3]" {
			t.Fatalf("stock in transit = %v", got)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 9, StockLeft: 9})
		// The same step sent again (a reply lost, the script re-sent)
		// takes nothing and answers what the first one took.
		if again, err := h.s.moveOut(h.ctx, ks, "m1", 0, 2, maxMove); err != nil || again != units {
			t.Fatalf("moveOut repeated = %d, %v; want %d again", again, err, units)
		}
		if got := h.rawStock(t, 1, 3); fmt.Sprint(got) != "[1 3 3]" {
			t.Fatalf("stock after a repeated moveOut = %v, want [1 3 3] (taken once)", got)
		}
		snap, err := h.s.Snapshot(h.ctx, 1)
		if err != nil || snap.StockLeft != 9 {
			t.Fatalf("snapshot with a move in transit = %+v, %v; want 9 left", snap, err)
		}
		e := journalEntry{id: "m1", dest: 2, units: units}
		for range 2 {
			if err := h.s.finishMove(h.ctx, ks, 0, e); err != nil {
				t.Fatal(err)
			}
		}
		if got := h.rawStock(t, 1, 3); fmt.Sprint(got) != "[1 3 5]" {
			t.Fatalf("stock after two replays = %v, want [1 3 5] (credited once)", got)
		}
		if n, err := h.s.RecoverMoves(h.ctx); err != nil || n != 0 {
			t.Fatalf("RecoverMoves with nothing open = %d, %v", n, err)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 9, StockLeft: 9})
	})
}

// TestMoveOutResentAfterCloseTakesNothing is the review's sequence: a
// mover's moveOut reply is lost, another instance (here RecoverMoves, as a
// fill's replay would) finishes and closes the move, and then the client
// sends the same moveOut again. The repeat must take nothing and answer
// what the first one took; before the closed record it took half of what
// was left ([1 3 3] became [0 3 5]) and the unit vanished.
func TestMoveOutResentAfterCloseTakesNothing(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		h.open(t, splitItem(1, 9, 3))
		ks := h.s.bucketKeys(1, 3)
		units, err := h.s.moveOut(h.ctx, ks, "lost", 0, 2, maxMove)
		if err != nil || units != 2 {
			t.Fatalf("moveOut = %d, %v; want 2", units, err)
		}
		// The reply is lost; another instance finishes the move.
		other := New(h.rdb, Options{Prefix: h.prefix})
		defer other.Close()
		if n, err := other.RecoverMoves(h.ctx); err != nil || n != 1 {
			t.Fatalf("RecoverMoves = %d, %v; want the one open move finished", n, err)
		}
		if got := h.rawStock(t, 1, 3); fmt.Sprint(got) != "[1 3 5]" {
			t.Fatalf("stock after the recovery = %v, want [1 3 5]", got)
		}
		// go-redis sends the script again.
		again, err := h.s.moveOut(h.ctx, ks, "lost", 0, 2, maxMove)
		if err != nil || again != units {
			t.Fatalf("moveOut resent after the close = %d, %v; want %d, what the first took", again, err, units)
		}
		// The mover carries on with steps 2 and 3, as moveAll would.
		if err := h.s.finishMove(h.ctx, ks, 0, journalEntry{id: "lost", dest: 2, units: again}); err != nil {
			t.Fatal(err)
		}
		if got := h.rawStock(t, 1, 3); fmt.Sprint(got) != "[1 3 5]" {
			t.Fatalf("stock after the resent moveOut = %v, want [1 3 5] (nothing taken twice)", got)
		}
		if open := h.openMoves(t, 1, 3); open != 0 {
			t.Fatalf("%d moves left open", open)
		}
		h.wantCounts(t, 1, sale.Counts{StockTotal: 9, StockLeft: 9})
	})
}

// The child half of TestMoveKilledMidway: it runs the first steps of a move
// in its own process, says so, and waits to be killed.
func TestMoveChild(t *testing.T) {
	addr, prefix, stage := os.Getenv("SECKILL_MOVE_CHILD_ADDR"), os.Getenv("SECKILL_MOVE_CHILD_PREFIX"), os.Getenv("SECKILL_MOVE_CHILD_STAGE")
	if addr == "" {
		t.Skip("runs only as the child of TestMoveKilledMidway")
	}
	// One address is a single node, several a cluster (go-redis's rule).
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: strings.Split(addr, ",")})
	s := newStore(rdb, Options{Prefix: prefix})
	ctx := context.Background()
	ks, err := s.keysOf(ctx, 1)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	id := newMoveID()
	units, err := s.moveOut(ctx, ks, id, 0, 2, maxMove)
	if err == nil && stage == "in" {
		_, err = s.moveIn(ctx, ks, journalEntry{id: id, dest: 2, units: units})
	}
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Printf("READY %s %d\n", id, units)
	// Block until killed; the parent never writes.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(3)
}

// TestMoveKilledMidway kills a real process (SIGKILL) in the middle of a
// move between two buckets, after step 1 and after step 2, and shows that
// the units are counted while in transit, that recovery completes the move
// exactly once, and that the sale then sells every unit.
func TestMoveKilledMidway(t *testing.T) {
	servers := []struct {
		name string
		open func(t *testing.T) (addr string, rdb redis.UniversalClient, prefix string)
	}{
		{"redis", func(t *testing.T) (string, redis.UniversalClient, string) {
			addr := testenv.RedisAddr(t)
			rdb, prefix := testenv.Redis(t)
			return addr, rdb, prefix
		}},
		{"cluster", func(t *testing.T) (string, redis.UniversalClient, string) {
			addrs := testenv.RedisClusterAddrs(t)
			rdb, prefix := testenv.RedisCluster(t)
			return strings.Join(addrs, ","), rdb, prefix
		}},
	}
	for _, srv := range servers {
		for _, stage := range []string{"out", "in"} {
			t.Run(srv.name+"/after-"+stage, func(t *testing.T) {
				addr, rdb, prefix := srv.open(t)
				killMidMove(t, addr, rdb, prefix, stage)
			})
		}
	}
}

// killMidMove is one run of TestMoveKilledMidway on one server.
func killMidMove(t *testing.T, addr string, rdb redis.UniversalClient, prefix, stage string) {
	h := newHarness(t, rdb, prefix, Options{})
	const total = 30
	it := h.open(t, splitItem(1, total, 3))

	cmd := exec.Command(os.Args[0], "-test.run=^TestMoveChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SECKILL_MOVE_CHILD_ADDR="+addr, "SECKILL_MOVE_CHILD_PREFIX="+prefix, "SECKILL_MOVE_CHILD_STAGE="+stage)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "READY ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child said %q, %v", line, err)
	}
	f := strings.Fields(line)
	moveID := f[1]
	units, _ := strconv.ParseInt(f[2], 10, 64)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL", err)
	}
	t.Logf("child killed after step %s of move %s (%d units)", stage, moveID, units)

	raw := h.rawStock(t, 1, 3)
	wantRaw := int64(total) - units
	if stage == "in" {
		wantRaw = total
	}
	if sum(raw) != wantRaw || h.openMoves(t, 1, 3) != 1 {
		t.Fatalf("after the kill: bucket stock %v (sum %d, want %d), %d open moves, want 1", raw, sum(raw), wantRaw, h.openMoves(t, 1, 3))
	}
	// Nothing lost while the journal is open: the readers count it.
	h.wantCounts(t, 1, sale.Counts{StockTotal: total, StockLeft: total})

	// Recovery, as at startup; a second run finds nothing.
	if n, err := h.s.RecoverMoves(h.ctx); err != nil || n != 1 {
		t.Fatalf("RecoverMoves = %d, %v; want 1", n, err)
	}
	if n, err := h.s.RecoverMoves(h.ctx); err != nil || n != 0 {
		t.Fatalf("second RecoverMoves = %d, %v; want 0", n, err)
	}
	// The dead mover's steps arriving late change nothing either.
	ks := h.s.bucketKeys(1, 3)
	if _, err := h.s.moveIn(h.ctx, ks, journalEntry{id: moveID, dest: 2, units: units}); err != nil {
		t.Fatal(err)
	}
	raw = h.rawStock(t, 1, 3)
	if sum(raw) != total || h.openMoves(t, 1, 3) != 0 {
		t.Fatalf("after recovery: bucket stock %v (sum %d, want %d), %d open moves", raw, sum(raw), total, h.openMoves(t, 1, 3))
	}
	h.wantCounts(t, 1, sale.Counts{StockTotal: total, StockLeft: total})

	// And the sale sells exactly every unit.
	sold := 0
	for u := 0; u < 3*total; u++ {
		r, err := h.s.Reserve(h.ctx, order(it, fmt.Sprintf("k%d", u), inWindow))
		if err != nil {
			t.Fatal(err)
		}
		if r.Outcome == sale.Accepted {
			sold++
		}
	}
	if sold != total {
		t.Fatalf("sold %d units after recovery, want %d", sold, total)
	}
	if c := h.counts(t, 1); c.StockLeft != 0 || c.Pending != total {
		t.Fatalf("counts = %+v, want 0 left and %d pending", c, total)
	}
}

func TestSplitItemSnapshotAndRebuild(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		it := h.open(t, splitItem(1, 12, 3))
		for b := range 3 {
			h.expect(t, order(it, userIn(t, b, 3, "s"), inWindow), sale.Accepted)
		}
		snap, err := h.s.Snapshot(h.ctx, 1)
		if err != nil || !snap.Exists || snap.StockLeft != 9 || snap.StockTotal != 12 || len(snap.Pending) != 3 || len(snap.Buckets) != 3 {
			t.Fatalf("snapshot = %+v, %v", snap, err)
		}
		// Drift: the ledger shows 9, the database says 8 should be left.
		if _, err := h.s.Repair(h.ctx, it, snap, 8); err != nil {
			t.Fatal(err)
		}
		if c := h.counts(t, 1); c.StockLeft != 8 || c.StockTotal != 12 || c.Pending != 3 {
			t.Fatalf("counts after repair = %+v", c)
		}
		// Lost: every bucket's sale hash is gone (a Redis restart). A store
		// that never saw the item rebuilds it after learning its buckets.
		for _, k := range h.s.bucketKeys(1, 3) {
			if err := h.rdb.Del(h.ctx, k.sale()).Err(); err != nil {
				t.Fatal(err)
			}
		}
		fresh := New(h.rdb, Options{Prefix: h.prefix})
		t.Cleanup(fresh.Close)
		lost, err := fresh.Snapshot(h.ctx, 1)
		if err != nil || lost.Exists {
			t.Fatalf("snapshot of a lost sale = %+v, %v", lost, err)
		}
		if _, err := fresh.Repair(h.ctx, it, lost, 7); !errors.Is(err, ErrRepairConflict) {
			t.Fatalf("repair from a one-bucket snapshot = %v, want a conflict (take a new one)", err)
		}
		lost, err = fresh.Snapshot(h.ctx, 1)
		if err != nil || lost.Exists || len(lost.Buckets) != 3 || len(lost.Pending) != 3 {
			t.Fatalf("second snapshot of a lost sale = %+v, %v", lost, err)
		}
		if _, err := fresh.Repair(h.ctx, it, lost, 7); err != nil {
			t.Fatal(err)
		}
		if c, err := fresh.Counts(h.ctx, 1); err != nil || c.StockLeft != 7 || c.StockTotal != 12 || c.Pending != 3 {
			t.Fatalf("counts after the rebuild = %+v, %v", c, err)
		}
		sold := 0
		for u := range 40 {
			r, err := fresh.Reserve(h.ctx, order(it, fmt.Sprintf("z%d", u), inWindow))
			if err != nil {
				t.Fatal(err)
			}
			if r.Outcome == sale.Accepted {
				sold++
			}
		}
		if sold != 7 {
			t.Fatalf("sold %d after the rebuild, want 7", sold)
		}
	})
}

// TestBuyerOrder: the one-order-per-user record names the buyer's order, in
// their home bucket of a split item too, and stays after the order leaves
// the outbox; a user without one is sale.ErrOrderNotFound.
func TestBuyerOrder(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, h *harness) {
		for _, it := range []sale.Item{item(1, 10), splitItem(2, 30, 3)} {
			h.open(t, it)
			var bought []sale.Order
			for u := range 6 {
				o := order(it, fmt.Sprintf("buyer-%d", u), inWindow)
				h.expect(t, o, sale.Accepted)
				bought = append(bought, o)
			}
			for _, o := range bought {
				got, err := h.s.BuyerOrder(h.ctx, it.ID, o.UserID)
				if err != nil || got != o.ID {
					t.Fatalf("item %d: BuyerOrder(%s) = %q, %v; want %s", it.ID, o.UserID, got, err, o.ID)
				}
			}
			if _, err := h.s.BuyerOrder(h.ctx, it.ID, "nobody"); !errors.Is(err, sale.ErrOrderNotFound) {
				t.Fatalf("item %d: BuyerOrder(nobody) = %v; want ErrOrderNotFound", it.ID, err)
			}
			// Settled, the order leaves the outbox; the record stays.
			if err := h.s.Settle(h.ctx, bought[0].ID); err != nil {
				t.Fatal(err)
			}
			h.lookupErr(t, bought[0].ID, sale.ErrOrderNotFound)
			if got, err := h.s.BuyerOrder(h.ctx, it.ID, bought[0].UserID); err != nil || got != bought[0].ID {
				t.Fatalf("item %d: BuyerOrder after settle = %q, %v; want %s", it.ID, got, err, bought[0].ID)
			}
		}
		if _, err := h.s.BuyerOrder(h.ctx, 99, "buyer-0"); !errors.Is(err, sale.ErrOrderNotFound) {
			t.Fatalf("BuyerOrder on an item the ledger has no sale for = %v; want ErrOrderNotFound", err)
		}
	})
}
