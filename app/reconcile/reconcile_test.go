package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"seckill/domain/sale"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var t0 = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

func testItem(total, left int64) sale.Item {
	return sale.Item{ID: 1, Name: "x", PriceCents: 100, StockTotal: total, StockLeft: left, StartsAt: t0, EndsAt: t0.Add(time.Hour)}
}

// fakeLedger is one item's ledger in memory, with the real Repair's rule:
// by difference, refused if gen moved.
type fakeLedger struct {
	mu        sync.Mutex
	snap      sale.LedgerSnapshot
	settled   []sale.OrderID
	released  []sale.OrderID
	dropped   []sale.OrderID
	buyers    map[sale.UserID]sale.OrderID
	keys      []string
	returned  []sale.OrderID
	events    []string // "mark" and "repair", in the order they happened
	repairs   int
	conflicts int // refuse this many repairs first
	locked    bool
	overdue   int64 // what Counts reports as overdue
	counts    int   // Counts calls
	snapshots int   // Snapshot calls
}

func (l *fakeLedger) Counts(context.Context, sale.ItemID) (sale.Counts, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts++
	if !l.snap.Exists {
		return sale.Counts{}, sale.ErrNotFound
	}
	return sale.Counts{StockTotal: l.snap.StockTotal, StockLeft: l.snap.StockLeft,
		Pending: int64(len(l.snap.Pending)), Overdue: l.overdue, Gen: l.snap.Gen}, nil
}

func (l *fakeLedger) Snapshot(context.Context, sale.ItemID) (sale.LedgerSnapshot, error) {
	l.snapshots++
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.snap
	s.Pending = append([]sale.Order(nil), l.snap.Pending...)
	return s, nil
}

func (l *fakeLedger) Repair(_ context.Context, it sale.Item, snap sale.LedgerSnapshot, want int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conflicts > 0 {
		l.conflicts--
		l.snap.Gen++ // someone restocked meanwhile
		return 0, errors.New("conflict")
	}
	if snap.Gen != l.snap.Gen || snap.Exists != l.snap.Exists {
		return 0, errors.New("conflict")
	}
	want = max(want, 0)
	if snap.Exists {
		l.snap.StockLeft += want - snap.StockLeft
	} else {
		l.snap.StockLeft = want
	}
	l.snap.Exists, l.snap.StockTotal = true, it.StockTotal
	l.snap.StartsAt, l.snap.EndsAt, l.snap.PriceCents = it.StartsAt, it.EndsAt, it.PriceCents
	l.snap.Gen = max(l.snap.Gen+1, 1000)
	l.repairs++
	l.events = append(l.events, "repair")
	return l.snap.Gen, nil
}

func (l *fakeLedger) drop(ids []sale.OrderID) {
	keep := l.snap.Pending[:0]
	for _, o := range l.snap.Pending {
		gone := false
		for _, id := range ids {
			gone = gone || o.ID == id
		}
		if !gone {
			keep = append(keep, o)
		}
	}
	l.snap.Pending = keep
}

func (l *fakeLedger) Settle(_ context.Context, ids ...sale.OrderID) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settled = append(l.settled, ids...)
	l.drop(ids)
	return nil
}

func (l *fakeLedger) Release(_ context.Context, id sale.OrderID) (bool, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = append(l.released, id)
	l.drop([]sale.OrderID{id})
	l.snap.StockLeft++
	l.snap.Gen++
	return true, l.snap.Gen, nil
}

func (l *fakeLedger) Drop(_ context.Context, id sale.OrderID) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropped = append(l.dropped, id)
	l.drop([]sale.OrderID{id})
	l.snap.Gen++
	return true, nil
}

// Trim takes like the real one: never below zero, never adding.
func (l *fakeLedger) Trim(_ context.Context, _ sale.ItemID, units int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	take := min(max(units, 0), l.snap.StockLeft)
	l.snap.StockLeft -= take
	return take, nil
}

func (l *fakeLedger) RestoreBuyers(_ context.Context, _ sale.ItemID, h map[sale.UserID]sale.OrderID) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for u, o := range h {
		l.buyers[u] = o
	}
	return nil
}

func (l *fakeLedger) RestoreRestockKeys(_ context.Context, _ sale.ItemID, keys []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = append(l.keys, keys...)
	return nil
}

func (l *fakeLedger) RestoreReturned(_ context.Context, _ sale.ItemID, ids []sale.OrderID) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.returned = append(l.returned, ids...)
	l.events = append(l.events, "mark")
	return nil
}

func (l *fakeLedger) LockRepair(context.Context, sale.ItemID, time.Duration) (func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locked {
		return func() {}, false, nil
	}
	l.locked = true
	return func() { l.mu.Lock(); l.locked = false; l.mu.Unlock() }, true, nil
}

// fakeBook is the database's side.
type fakeBook struct {
	mu        sync.Mutex
	item      sale.Item
	live      int64
	holders   map[sale.UserID]sale.OrderID
	fates     map[sale.OrderID]sale.Fate
	moveAfter int // CountHeld calls after which one more order is confirmed, once
	counts    int
	returned  []sale.OrderID // cancelled and expired orders
	onCount   func(n int)    // called with the count of CountHeld calls so far
}

func (b *fakeBook) Items(context.Context) ([]sale.Item, error) {
	return []sale.Item{b.item}, nil
}

func (b *fakeBook) Item(context.Context, sale.ItemID) (sale.Item, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.item, nil
}

func (b *fakeBook) CountHeld(context.Context, sale.ItemID) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.counts++
	if b.onCount != nil {
		b.onCount(b.counts)
	}
	if b.moveAfter > 0 && b.counts == b.moveAfter {
		b.live++
		b.item.StockLeft--
	}
	return b.live, nil
}

func (b *fakeBook) Fates(_ context.Context, ids []sale.OrderID) (map[sale.OrderID]sale.Fate, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[sale.OrderID]sale.Fate{}
	for _, id := range ids {
		if f, ok := b.fates[id]; ok {
			out[id] = f
		}
	}
	return out, nil
}

func (b *fakeBook) Holders(context.Context, sale.ItemID) (map[sale.UserID]sale.OrderID, error) {
	return b.holders, nil
}

func (b *fakeBook) RestockKeys(context.Context, sale.ItemID) ([]string, error) {
	return []string{"k1"}, nil
}

func (b *fakeBook) ReturnedOrders(context.Context, sale.ItemID) ([]sale.OrderID, error) {
	return b.returned, nil
}

// fakeBacklog is behind by a number that drops by one on each look.
type fakeBacklog struct {
	mu     sync.Mutex
	behind int64
	looks  int
}

func (q *fakeBacklog) Marks(context.Context) (map[int]int64, error) { return map[int]int64{0: 10}, nil }

func (q *fakeBacklog) Behind(context.Context, map[int]int64) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.looks++
	n := q.behind
	if q.behind > 0 {
		q.behind--
	}
	return n, nil
}

func rig(total, left, live int64) (*fakeLedger, *fakeBook, *fakeBacklog) {
	it := testItem(total, left)
	l := &fakeLedger{buyers: map[sale.UserID]sale.OrderID{}, snap: sale.LedgerSnapshot{
		Exists: true, StockLeft: left, StockTotal: total, PriceCents: it.PriceCents, StartsAt: it.StartsAt, EndsAt: it.EndsAt}}
	b := &fakeBook{item: it, live: live, holders: map[sale.UserID]sale.OrderID{"alice": "1-a"}, fates: map[sale.OrderID]sale.Fate{}}
	return l, b, &fakeBacklog{}
}

// TestCheckRetriesWhileOrdersMove: a confirmation between the two counts
// of confirmed orders makes Check look again instead of counting the order
// twice or not at all.
func TestCheckRetriesWhileOrdersMove(t *testing.T) {
	t.Parallel()
	l, b, q := rig(10, 6, 4)
	b.moveAfter = 2 // the second count sees one more confirmed order
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{})
	rec, _, err := s.Check(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if b.counts != 4 {
		t.Fatalf("confirmed orders counted %d times; want a second look after they moved", b.counts)
	}
	// The ledger still shows 6 while the database now has 5 sold: the
	// stable look reports it.
	if rec.WantStock != 5 || rec.StockDrift != -1 {
		t.Fatalf("reconciliation = %s", rec)
	}
}

// TestRepairWaitsForTheQueueThenRepairs: the stock is written only once the
// workers have decided the backlog, buyers and restock keys come back from
// the database first, and the stock is corrected by the difference.
func TestRepairWaitsForTheQueueThenRepairs(t *testing.T) {
	t.Parallel()
	l, b, q := rig(10, 9, 4) // the ledger lost 3 deductions
	q.behind = 3
	var back []int64
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet, Notify: stockBackFunc(func(_ sale.ItemID, gen int64) { back = append(back, gen) })}, Options{})
	rep, err := s.Repair(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if q.looks < 4 {
		t.Fatalf("the backlog was looked at %d times; the repair must wait until it is 0", q.looks)
	}
	if !rep.Repaired || l.snap.StockLeft != 6 || l.buyers["alice"] != "1-a" || len(l.keys) != 1 || len(back) != 1 {
		t.Fatalf("report %+v, ledger %+v, buyers %v, keys %v, stock-back %v", rep, l.snap, l.buyers, l.keys, back)
	}
	// Nothing left to do: a second repair changes nothing.
	if rep, err := s.Repair(context.Background(), 1); err != nil || rep.Repaired || l.repairs != 1 {
		t.Fatalf("second repair = %+v, %v (repairs %d)", rep, err, l.repairs)
	}
}

// TestRepairFollowsTheDatabaseFirst: pending orders the database decided
// are settled or released before the stock is judged, and a gen conflict
// (a restock landed) makes the repair look again rather than write.
func TestRepairFollowsTheDatabaseFirst(t *testing.T) {
	t.Parallel()
	l, b, q := rig(10, 2, 4) // one unit short even after the release
	it := b.item
	done, failed, open := sale.NewOrder(it, "d", t0), sale.NewOrder(it, "f", t0), sale.NewOrder(it, "o", t0)
	l.snap.Pending = []sale.Order{done, failed, open}
	b.fates[done.ID] = sale.Fate{Status: sale.OrderConfirmed}
	b.fates[failed.ID] = sale.Fate{Status: sale.OrderFailed}
	b.live, b.item.StockLeft = 5, 5 // done is among the sold
	l.conflicts = 1
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{})
	rep, err := s.Repair(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.settled) != 1 || l.settled[0] != done.ID || len(l.released) != 1 || l.released[0] != failed.ID {
		t.Fatalf("settled %v released %v", l.settled, l.released)
	}
	// 10 total - 5 sold - 1 still pending = 4.
	if !rep.Repaired || l.snap.StockLeft != 4 || l.repairs != 1 || l.conflicts != 0 {
		t.Fatalf("after repair: %+v, stock %d, repairs %d; want 4 after one refused attempt", rep, l.snap.StockLeft, l.repairs)
	}
}

// TestRepairRestoresReturnMarksBeforeTheStock: a cancelled order whose
// ledger return was lost (a crash between the database's decision and the
// return) shows as one unit of drift; the repair marks every cancelled and
// expired order as returned before it writes the stock, so the late return
// cannot add the unit a second time.
func TestRepairRestoresReturnMarksBeforeTheStock(t *testing.T) {
	t.Parallel()
	// 10 units, 3 confirmed and one of them cancelled since: 2 held, 8
	// left in the database; the ledger missed the return and shows 7.
	l, b, q := rig(10, 7, 2)
	b.item.StockLeft = 8
	b.returned = []sale.OrderID{"1-cancelled"}
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{})
	rep, err := s.Repair(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Repaired || l.snap.StockLeft != 8 {
		t.Fatalf("repair %+v left the ledger at %d; want 8", rep, l.snap.StockLeft)
	}
	if len(l.returned) == 0 || l.returned[0] != "1-cancelled" {
		t.Fatalf("return marks restored: %v; want the cancelled order", l.returned)
	}
	if len(l.events) < 2 || l.events[0] != "mark" || l.events[len(l.events)-1] != "repair" {
		t.Fatalf("events %v; want the marks before the stock write", l.events)
	}
}

// TestRepairLooksAgainWhenAnOrderIsReturnedMeanwhile: an order cancelled
// between the check and the stock write is counted by a fresh look, not
// lost to its already-restored mark.
func TestRepairLooksAgainWhenAnOrderIsReturnedMeanwhile(t *testing.T) {
	t.Parallel()
	l, b, q := rig(10, 6, 4)
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{})
	l.snap.StockLeft = 5 // one unit of drift, so the repair runs
	// The first check counts twice (before and after the snapshot); the
	// third count, after the marks, sees one order fewer held.
	b.counts = 0
	b.moveAfter = 0
	cancelAt := 3
	b.onCount = func(n int) {
		if n == cancelAt {
			b.live--
			b.item.StockLeft++
		}
	}
	rep, err := s.Repair(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	// 10 total - 3 held = 7: the cancelled order's unit is in the stock.
	if !rep.Repaired || l.snap.StockLeft != 7 {
		t.Fatalf("repair %+v left the ledger at %d; want 7", rep, l.snap.StockLeft)
	}
}

// TestRepairRebuildsALostSale and refuses to run while another instance
// holds the lock.
func TestRepairRebuildsALostSale(t *testing.T) {
	t.Parallel()
	l, b, q := rig(10, 6, 4)
	l.snap = sale.LedgerSnapshot{}
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{})
	l.locked = true
	if _, err := s.Repair(context.Background(), 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("Repair while locked = %v, want ErrBusy", err)
	}
	l.locked = false
	rep, err := s.Repair(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Missing || !rep.Repaired || !l.snap.Exists || l.snap.StockLeft != 6 || l.snap.StockTotal != 10 {
		t.Fatalf("rebuild: %+v, ledger %+v", rep, l.snap)
	}
	if rec, _ := s.LastReconciliation(1); rec.Drifted() {
		t.Fatalf("after the rebuild the last reconciliation still reports drift: %s", rec)
	}
}

// fakeLines is the waiting rooms: Reseed records its call among the
// ledger's events and answers as told.
type fakeLines struct {
	l      *fakeLedger
	seeded bool
	err    error
	calls  []int64 // buyers told
}

func (f *fakeLines) Reseed(_ context.Context, _ sale.ItemID, buyers int64) (bool, error) {
	f.l.mu.Lock()
	defer f.l.mu.Unlock()
	f.calls = append(f.calls, buyers)
	f.l.events = append(f.l.events, "line")
	return f.seeded, f.err
}

// TestRepairReseedsTheLineOfALostQueueSale: rebuilding a queue item's lost
// sale tells its waiting room the database's buyers before the ledger's
// stock is written (so the line has admitted nobody since the loss), and
// the report says whether the line took them. A plain item, a sale that
// was only adrift, or no Lines at all leave the lines alone; a line that
// fails to answer does not stop the rebuild.
func TestRepairReseedsTheLineOfALostQueueSale(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		protection sale.Protection
		lost       bool
		seeded     bool
		err        error
		wantCalls  int
		wantReport int64
	}{
		{"lost queue sale, line begun again", sale.ProtectionQueue, true, true, nil, 1, 3},
		{"lost queue sale, line still counting", sale.ProtectionQueue, true, false, nil, 1, 0},
		{"lost queue sale, line unreachable", sale.ProtectionQueue, true, false, errors.New("redis down"), 1, 0},
		{"lost plain sale", sale.ProtectionNone, true, true, nil, 0, 0},
		{"queue sale adrift, not lost", sale.ProtectionQueue, false, true, nil, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l, b, q := rig(10, 6, 4)
			b.item.Protection = c.protection
			b.holders = map[sale.UserID]sale.OrderID{"alice": "1-a", "bob": "1-b", "carol": "1-c"}
			if c.lost {
				l.snap = sale.LedgerSnapshot{}
			} else {
				l.snap.StockLeft = 9
			}
			lines := &fakeLines{l: l, seeded: c.seeded, err: c.err}
			rep, err := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet, Lines: lines}, Options{}).Repair(context.Background(), 1)
			if err != nil || !rep.Repaired {
				t.Fatalf("repair: %+v %v", rep, err)
			}
			if len(lines.calls) != c.wantCalls || rep.LineReseeded != c.wantReport {
				t.Fatalf("line told %v, report %d; want %d call(s), report %d", lines.calls, rep.LineReseeded, c.wantCalls, c.wantReport)
			}
			if c.wantCalls > 0 && (lines.calls[0] != 3 || !slices.Equal(l.events, []string{"mark", "line", "repair"})) {
				t.Fatalf("line told %v, events %v; want 3 buyers, told after the marks and before the stock", lines.calls, l.events)
			}
		})
	}
	l, b, q := rig(10, 6, 4)
	b.item.Protection = sale.ProtectionQueue
	l.snap = sale.LedgerSnapshot{}
	if rep, err := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{}).Repair(context.Background(), 1); err != nil || !rep.Repaired || rep.LineReseeded != 0 {
		t.Fatalf("rebuild without Lines: %+v %v", rep, err)
	}
}

// TestRepairGivesUpWhenTheQueueNeverDrains: with no worker running, the
// repair times out and writes nothing, rather than trusting a database
// that has not seen the queued orders.
func TestRepairGivesUpWhenTheQueueNeverDrains(t *testing.T) {
	t.Parallel()
	l, b, q := rig(10, 9, 4)
	q.behind = 1 << 40
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{DrainTimeout: 200 * time.Millisecond})
	if _, err := s.Repair(context.Background(), 1); err == nil {
		t.Fatal("Repair succeeded although the queue never drained")
	}
	if l.repairs != 0 || l.snap.StockLeft != 9 {
		t.Fatalf("the ledger changed: %+v", l.snap)
	}
}

// TestRunRecoversMovesAtStartAndEachPass checks that half-done moves
// between stock buckets are finished when Run starts and on every pass.
func TestRunRecoversMovesAtStartAndEachPass(t *testing.T) {
	t.Parallel()
	calls := make(chan struct{}, 16)
	s := New(Deps{Ledger: &fakeLedger{}, Book: &fakeBook{}, Log: quiet,
		RecoverMoves: func(context.Context) (int, error) {
			calls <- struct{}{}
			return 1, nil
		}}, Options{Every: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	for i := 0; i < 3; i++ {
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("RecoverMoves called %d times, want the start and two passes", i)
		}
	}
	cancel()
	<-done
	if got := s.Stats().MovesRecovered; got < 3 {
		t.Fatalf("MovesRecovered = %d, want at least 3", got)
	}
}

// TestPassLeavesAHugeBacklogForLater: a backlog above MaxCheckPending is
// left for later even with overdue orders in it (the workers are down; the
// relay owns the overdue orders), and checked again once it is back under.
func TestPassLeavesAHugeBacklogForLater(t *testing.T) {
	t.Parallel()
	l, b, q := rig(10, 6, 3)
	for i := range 3 {
		l.snap.Pending = append(l.snap.Pending, sale.Order{ID: sale.OrderID(fmt.Sprintf("1-p%d", i)), ItemID: 1, UserID: sale.UserID(fmt.Sprintf("u%d", i)), PriceCents: 100, CreatedAt: t0})
	}
	l.overdue = 3
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{MaxCheckPending: 2})
	ctx := context.Background()

	s.pass(ctx)
	if l.snapshots != 0 || s.Stats().Deferred != 1 || s.Stats().Checks != 0 {
		t.Fatalf("3 pending, bound 2: %d snapshots, stats %+v; want it left for later", l.snapshots, s.Stats())
	}
	l.snap.Pending = l.snap.Pending[:2]
	l.overdue = 2
	s.pass(ctx)
	if l.snapshots == 0 || s.Stats().Checks != 1 {
		t.Fatalf("2 pending, all overdue, bound 2: %d snapshots, stats %+v; want a check", l.snapshots, s.Stats())
	}
}

// TestPassLeavesADrainingItemForLater: while the ledger holds pending
// orders and none is overdue (the worker is deciding them), the periodic
// pass takes no snapshot of the item; once one is overdue, or the queue is
// empty, it checks it again, and a lost sale is always checked.
func TestPassLeavesADrainingItemForLater(t *testing.T) {
	t.Parallel()
	l, b, q := rig(10, 6, 3)
	b.item.StockLeft = 7 // 10 - 3 live: the ledger's 6 + 1 pending, no surplus to look for
	l.snap.Pending = []sale.Order{{ID: "1-p", ItemID: 1, UserID: "bob", PriceCents: 100, CreatedAt: t0}}
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{})
	ctx := context.Background()

	s.pass(ctx)
	if l.snapshots != 0 || s.Stats().Deferred != 1 || s.Stats().Checks != 0 {
		t.Fatalf("draining item: %d snapshots, stats %+v; want it left for later", l.snapshots, s.Stats())
	}

	l.overdue = 1 // the order stopped moving: now the accounts are worth a look
	s.pass(ctx)
	if l.snapshots == 0 || s.Stats().Checks != 1 {
		t.Fatalf("overdue order: %d snapshots, stats %+v; want a check", l.snapshots, s.Stats())
	}

	l.overdue, l.snap.Pending, l.snapshots = 0, nil, 0
	s.pass(ctx)
	if l.snapshots == 0 || s.Stats().Checks != 2 {
		t.Fatalf("quiet item: %d snapshots, stats %+v; want a check", l.snapshots, s.Stats())
	}

	l.snap.Exists, l.snapshots = false, 0 // the ledger lost the sale: Counts cannot say
	s.pass(ctx)
	if l.snapshots == 0 {
		t.Fatal("lost sale: no snapshot; the pass must see it to rebuild")
	}
}

// busyPhantomRig is a live sale after the ledger rolled back: 10 units, 7
// confirmed in the database (3 of them orders the ledger lost), 1 pending
// order not yet decided and 1 pending order the database already
// confirmed (its settle is on its way). The ledger shows 5 units left where
// the database allows 10 - 7 - 1 = 2: 3 phantom units. No order is
// overdue, so the periodic pass finds the item busy.
func busyPhantomRig() (*fakeLedger, *fakeBook, *fakeBacklog) {
	l, b, q := rig(10, 5, 7)
	b.item.StockLeft = 3
	l.snap.Pending = []sale.Order{
		{ID: "1-undecided", ItemID: 1, UserID: "bob", PriceCents: 100, CreatedAt: t0},
		{ID: "1-confirmed", ItemID: 1, UserID: "carol", PriceCents: 100, CreatedAt: t0},
	}
	b.fates["1-confirmed"] = sale.Fate{Status: sale.OrderConfirmed}
	return l, b, q
}

// TestPassTrimsPhantomStockOfABusySale: the surplus is taken away in the
// first pass, while the sale is busy (pending orders, none overdue), with
// no repair and no quiet moment; it takes exactly the surplus, and a second
// pass takes nothing more. Without Trim the pass defers the item and the
// ledger keeps selling the 3 units the database will refuse.
func TestPassTrimsPhantomStockOfABusySale(t *testing.T) {
	t.Parallel()
	l, b, q := busyPhantomRig()
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{Repair: true})
	ctx := context.Background()
	s.pass(ctx)
	if l.snap.StockLeft != 2 {
		t.Fatalf("ledger stock after one pass = %d, want 2 (5 minus the 3 phantom units)", l.snap.StockLeft)
	}
	if st := s.Stats(); st.Trimmed != 3 || st.Deferred != 1 || st.Repairs != 0 {
		t.Fatalf("stats %+v; want 3 trimmed while the item was busy, no repair", st)
	}
	s.pass(ctx)
	if l.snap.StockLeft != 2 || s.Stats().Trimmed != 3 {
		t.Fatalf("second pass: stock %d, stats %+v; want nothing more taken", l.snap.StockLeft, s.Stats())
	}
}

// TestTrimCountsSalesSinceTheSnapshot: purchases that run between the
// snapshot and the trim move units from stock to new pending orders; the
// trim takes the surplus as a delta, so they stay counted and the ledger
// ends at the database's figure less those orders.
func TestTrimCountsSalesSinceTheSnapshot(t *testing.T) {
	t.Parallel()
	l, b, q := busyPhantomRig()
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{})
	// Two purchases land after the snapshot was read.
	snapThenSell := &sellingLedger{fakeLedger: l, sell: 2}
	s.d.Ledger = snapThenSell
	taken, err := s.Trim(context.Background(), 1)
	if err != nil || taken != 3 {
		t.Fatalf("Trim = %d, %v; want the 3 phantom units", taken, err)
	}
	if l.snap.StockLeft != 0 {
		t.Fatalf("ledger stock = %d, want 0 (2 allowed, both sold since the snapshot)", l.snap.StockLeft)
	}
}

// sellingLedger sells units right after each snapshot, as live purchases
// would.
type sellingLedger struct {
	*fakeLedger
	sell int64
}

func (l *sellingLedger) Snapshot(ctx context.Context, id sale.ItemID) (sale.LedgerSnapshot, error) {
	snap, err := l.fakeLedger.Snapshot(ctx, id)
	l.mu.Lock()
	l.snap.StockLeft -= l.sell
	l.mu.Unlock()
	return snap, err
}

// TestTrimSkipsWhenAnOrderIsReturnedMeanwhile: a cancelled or expired order
// between the count of live orders and the snapshot would make the trim
// take its returned unit too; it looks again at the next pass instead.
func TestTrimSkipsWhenAnOrderIsReturnedMeanwhile(t *testing.T) {
	t.Parallel()
	l, b, q := busyPhantomRig()
	b.onCount = func(int) { b.returned = append(b.returned, "1-cancelled") }
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{})
	if taken, err := s.Trim(context.Background(), 1); err != nil || taken != 0 || l.snap.StockLeft != 5 {
		t.Fatalf("Trim = %d, %v, ledger stock %d; want nothing taken", taken, err, l.snap.StockLeft)
	}
}

// TestTrimNeverAddsNorTakesWithinTheDatabasesFigure: a ledger at or below
// what the database allows is left alone (adding is Repair's, after the
// queue drained).
func TestTrimNeverAddsNorTakesWithinTheDatabasesFigure(t *testing.T) {
	t.Parallel()
	for _, left := range []int64{0, 1, 2} {
		l, b, q := busyPhantomRig()
		l.snap.StockLeft = left
		s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{})
		if taken, err := s.Trim(context.Background(), 1); err != nil || taken != 0 || l.snap.StockLeft != left {
			t.Fatalf("ledger at %d: Trim = %d, %v, stock now %d; want untouched", left, taken, err, l.snap.StockLeft)
		}
	}
}

// TestRepairDropsPhantomsAndReleasesTheRest: pending orders the database
// failed as phantoms lose their records but give no unit back; other failed
// orders give theirs back.
func TestRepairDropsPhantomsAndReleasesTheRest(t *testing.T) {
	t.Parallel()
	l, b, q := rig(10, 2, 8)
	b.item.StockLeft = 2
	l.snap.Pending = []sale.Order{
		{ID: "1-phantom", ItemID: 1, UserID: "bob", PriceCents: 100, CreatedAt: t0},
		{ID: "1-givenup", ItemID: 1, UserID: "carol", PriceCents: 100, CreatedAt: t0},
	}
	b.fates["1-phantom"] = sale.Fate{Status: sale.OrderFailed, Reason: sale.ReasonLedgerRolledBack}
	b.fates["1-givenup"] = sale.Fate{Status: sale.OrderFailed, Reason: "relay gave up"}
	s := New(Deps{Ledger: l, Book: b, Backlog: q, Log: quiet}, Options{})
	if _, err := s.Repair(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(l.dropped) != "[1-phantom]" || fmt.Sprint(l.released) != "[1-givenup]" {
		t.Fatalf("dropped %v, released %v; want the phantom dropped and the other released", l.dropped, l.released)
	}
}

// stockBackFunc lets a func stand for the notifier.
type stockBackFunc func(item sale.ItemID, gen int64)

func (f stockBackFunc) StockBack(item sale.ItemID, gen int64) { f(item, gen) }
