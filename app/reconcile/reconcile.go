// Package reconcile keeps the stock ledger (Redis) and the database in
// agreement, and rebuilds the ledger when Redis loses it.
//
// The database records what was sold and how many units exist; the ledger
// records what was accepted and not yet decided. Reconcile compares the two
// per item (sale.Reconcile) and, when asked or when it finds a lost sale,
// repairs the ledger. A repair never reads stock from the database as if
// the ledger were a cache: it first waits until every order already in the
// order queue has been decided by the workers (the queue's backlog below the
// marks taken after the loss is zero), so that accepted but unconfirmed
// orders are counted, then restores the one-order-per-user records and the
// restock keys from the database, and only then writes the stock, with a
// check that the sale did not move meanwhile. While a sale is missing,
// purchases answer 503 (see purchase.ErrUnavailable), never 404 and never
// from a guess.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"seckill/domain/sale"
)

// ErrBusy means the item's accounts kept moving (or another instance holds
// its repair lock); try again later.
var ErrBusy = errors.New("reconcile: the item is busy; try again")

type ledger interface {
	Counts(ctx context.Context, id sale.ItemID) (sale.Counts, error)
	Snapshot(ctx context.Context, id sale.ItemID) (sale.LedgerSnapshot, error)
	Repair(ctx context.Context, it sale.Item, snap sale.LedgerSnapshot, want int64) (gen int64, err error)
	Settle(ctx context.Context, ids ...sale.OrderID) error
	Release(ctx context.Context, id sale.OrderID) (released bool, gen int64, err error)
	Drop(ctx context.Context, id sale.OrderID) (dropped bool, err error)
	Trim(ctx context.Context, id sale.ItemID, units int64) (taken int64, err error)
	RestoreBuyers(ctx context.Context, id sale.ItemID, holders map[sale.UserID]sale.OrderID) error
	RestoreRestockKeys(ctx context.Context, id sale.ItemID, keys []string) error
	RestoreReturned(ctx context.Context, id sale.ItemID, ids []sale.OrderID) error
	LockRepair(ctx context.Context, id sale.ItemID, ttl time.Duration) (unlock func(), ok bool, err error)
}

type book interface {
	Items(ctx context.Context) ([]sale.Item, error)
	Item(ctx context.Context, id sale.ItemID) (sale.Item, error)
	CountHeld(ctx context.Context, id sale.ItemID) (int64, error)
	Fates(ctx context.Context, ids []sale.OrderID) (map[sale.OrderID]sale.Fate, error)
	Holders(ctx context.Context, id sale.ItemID) (map[sale.UserID]sale.OrderID, error)
	RestockKeys(ctx context.Context, id sale.ItemID) ([]string, error)
	ReturnedOrders(ctx context.Context, id sale.ItemID) ([]sale.OrderID, error)
}

// Backlog is the order queue as a repair sees it.
type Backlog interface {
	// Marks is the queue's end now; Behind is how many messages below the
	// marks the workers have not decided yet.
	Marks(ctx context.Context) (map[int]int64, error)
	Behind(ctx context.Context, marks map[int]int64) (int64, error)
}

// stockNotifier is the part of sale.Notifier the reconciler uses: units came back.
type stockNotifier interface {
	StockBack(item sale.ItemID, gen int64)
}

// Lines is the waiting rooms of queue items (infra/redisline), as the
// rebuild of a lost sale sees them.
type Lines interface {
	// Reseed gives a line begun again after a loss (one that has admitted
	// nobody and counted no use) buyers, the database's buyers of the
	// item, as its count of used admissions, and reports whether it did;
	// any other line is left as it is.
	Reseed(ctx context.Context, id sale.ItemID, buyers int64) (bool, error)
}

// Deps are the reconciler's collaborators.
type Deps struct {
	Ledger ledger
	Book   book
	// Backlog may be nil only where no order queue exists (tests); a
	// repair then trusts the database as it is.
	Backlog Backlog
	// Notify, if set, is told of a repaired sale's new generation, so
	// sold-out flags clear on every instance.
	Notify stockNotifier
	// RecoverMoves, if set, finishes the moves between a split item's stock
	// buckets that a dead process left half done; Run calls it once at the
	// start and at the start of every pass (see docs/RECOVERY.md).
	RecoverMoves func(ctx context.Context) (int, error)
	// Lines, if set, is told the database's buyers of each queue item
	// whose lost sale is rebuilt (see reseedLine); nil leaves the lines to
	// begin again on their own.
	Lines Lines
	Log   *slog.Logger
}

// Options tunes the reconciler. Zero fields take the defaults noted.
type Options struct {
	// Every is how often the periodic pass checks every item; default 10s.
	Every time.Duration
	// Repair lets the periodic pass repair drift it has seen twice in a row
	// (lost sales are always rebuilt). Default false in the zero value;
	// the binary turns it on (--reconcile-repair).
	Repair bool
	// Grace is how long a rebuild waits after it learns of a loss before it
	// marks the queue, so orders accepted just before the loss and still in
	// an API instance's dispatcher reach the queue first. 0 waits not at
	// all (the reconcile command, run by an operator after the fact); the
	// binary's default is 2s (--recovery-grace).
	Grace time.Duration
	// DrainTimeout bounds the wait for the workers to decide the backlog;
	// default 60s. A repair that times out changes nothing and is retried.
	DrainTimeout time.Duration
	// MaxCheckPending is the largest backlog of pending orders the
	// periodic pass checks; an item with more is left for later, overdue
	// orders or not (see busy). Default 10,000.
	MaxCheckPending int64
}

// Report is one item's reconciliation with what was done about it.
type Report struct {
	sale.Reconciliation
	// Repaired is true when this call changed the ledger.
	Repaired bool
	// Waited is how long the repair waited for the queue to drain.
	Waited time.Duration
	// LineReseeded is, when this repair rebuilt a queue item's lost sale
	// and found its waiting room begun again with nothing counted, the
	// database's buyers, now the line's count of used admissions; else 0.
	LineReseeded int64
	At           time.Time
}

// Service runs reconciliations and repairs. It is safe for concurrent use.
type Service struct {
	d    Deps
	opts Options

	notify chan sale.ItemID

	mu   sync.Mutex
	last map[sale.ItemID]Report
	seen map[sale.ItemID]int // consecutive passes that found drift

	checks, drifts, repairs, rebuilds, conflicts, movesRecovered, deferred, trimmed atomic.Uint64
}

// New returns a reconciler.
func New(d Deps, o Options) *Service {
	if o.Every <= 0 {
		o.Every = 10 * time.Second
	}
	if o.MaxCheckPending <= 0 {
		o.MaxCheckPending = DefaultMaxCheckPending
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = time.Minute
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	return &Service{d: d, opts: o,
		notify: make(chan sale.ItemID, 64), last: map[sale.ItemID]Report{}, seen: map[sale.ItemID]int{}}
}

// Check compares one item's ledger with the database without changing
// anything. The database is read on both sides of the ledger snapshot, and
// the comparison is retried while a worker confirms orders (or a buyer
// cancels, or an order expires) in between, so an order moving from pending
// to confirmed is never counted twice or not at all. Live counts the orders
// that hold a unit: confirmed or paid.
func (s *Service) Check(ctx context.Context, id sale.ItemID) (sale.Reconciliation, sale.LedgerSnapshot, error) {
	for attempt := 0; attempt < 8; attempt++ {
		before, err := s.d.Book.CountHeld(ctx, id)
		if err != nil {
			return sale.Reconciliation{}, sale.LedgerSnapshot{}, err
		}
		snap, err := s.d.Ledger.Snapshot(ctx, id)
		if err != nil {
			return sale.Reconciliation{}, sale.LedgerSnapshot{}, err
		}
		ids := make([]sale.OrderID, len(snap.Pending))
		for i, o := range snap.Pending {
			ids[i] = o.ID
		}
		fates, err := s.d.Book.Fates(ctx, ids)
		if err != nil {
			return sale.Reconciliation{}, sale.LedgerSnapshot{}, err
		}
		it, err := s.d.Book.Item(ctx, id)
		if err != nil {
			return sale.Reconciliation{}, sale.LedgerSnapshot{}, err
		}
		after, err := s.d.Book.CountHeld(ctx, id)
		if err != nil {
			return sale.Reconciliation{}, sale.LedgerSnapshot{}, err
		}
		if after != before {
			continue
		}
		s.checks.Add(1)
		return sale.Reconcile(snap, sale.BookState{Item: it, Live: after, Fates: fates}), snap, nil
	}
	return sale.Reconciliation{}, sale.LedgerSnapshot{}, ErrBusy
}

// Repair makes one item's ledger agree with the database: it waits for the
// order queue to drain below marks taken now, settles or releases pending
// orders the database has decided, restores buyers and restock keys, and
// corrects (or, for a lost sale, recreates) the stock. It changes nothing
// when nothing differs, and returns ErrBusy if another instance is
// repairing the item or the sale kept moving.
func (s *Service) Repair(ctx context.Context, id sale.ItemID) (Report, error) {
	start := time.Now()
	if err := s.drain(ctx); err != nil {
		return Report{}, err
	}
	waited := time.Since(start)
	unlock, ok, err := s.d.Ledger.LockRepair(ctx, id, 30*time.Second)
	if err != nil {
		return Report{}, err
	}
	if !ok {
		return Report{}, ErrBusy
	}
	defer unlock()
	var reseeded int64
	for attempt := 0; attempt < 5; attempt++ {
		rec, snap, err := s.Check(ctx, id)
		if err != nil {
			return Report{}, err
		}
		rep := Report{Reconciliation: rec, Waited: waited, At: time.Now()}
		if !rec.Drifted() {
			s.remember(rep)
			return rep, nil
		}
		if len(rec.Settle) > 0 || len(rec.Release) > 0 || len(rec.Drop) > 0 {
			// The database decided these; the ledger only follows. Then
			// look again, since the figures below depend on them.
			if err := s.follow(ctx, rec); err != nil {
				return Report{}, err
			}
			continue
		}
		it, buyers, moved, err := s.restore(ctx, id, rec)
		if err != nil {
			return Report{}, err
		}
		if moved {
			continue
		}
		if rec.Missing {
			reseeded = max(reseeded, s.reseedLine(ctx, it, buyers))
		}
		rep.LineReseeded = reseeded
		gen, err := s.d.Ledger.Repair(ctx, it, snap, rec.WantStock)
		if err != nil {
			s.conflicts.Add(1)
			continue
		}
		if rec.Missing {
			s.rebuilds.Add(1)
		}
		s.repairs.Add(1)
		rep.Repaired = true
		s.d.Log.Warn("stock ledger repaired from the database", "item_id", id, "drift", rec.String(), "waited_for_queue", waited)
		if s.d.Notify != nil {
			s.d.Notify.StockBack(id, gen)
		}
		s.remember(rep)
		return rep, nil
	}
	return Report{}, ErrBusy
}

// restore writes what the database knows into the ledger before its
// stock: the buyers' records, the restock keys and the return marks. It
// returns the item as read after them and its count of buyers, or moved
// when a restock, cancel or expiry committed since rec was taken, which
// the caller must look at again.
func (s *Service) restore(ctx context.Context, id sale.ItemID, rec sale.Reconciliation) (it sale.Item, buyers int64, moved bool, err error) {
	holders, err := s.d.Book.Holders(ctx, id)
	if err != nil {
		return it, 0, false, err
	}
	if err := s.d.Ledger.RestoreBuyers(ctx, id, holders); err != nil {
		return it, 0, false, err
	}
	if err := s.restoreAll(ctx, id); err != nil {
		return it, 0, false, err
	}
	// A restock that committed in the database after the check would be
	// counted by neither side; look at the total once more.
	if it, err = s.d.Book.Item(ctx, id); err != nil || it.StockTotal != rec.Total {
		return it, 0, err == nil, err
	}
	// Likewise an order cancelled or expired after the check: its return
	// mark went in above, so its own ledger return is now a no-op, and only
	// a fresh look counts its unit.
	held, err := s.d.Book.CountHeld(ctx, id)
	if err != nil {
		return it, 0, false, err
	}
	return it, int64(len(holders)), held != rec.Live, nil
}

// reseedLine tells a queue item's waiting room, while its lost sale is
// rebuilt, how many buyers the database holds (Lines.Reseed). It runs
// before the ledger's stock is written: until then the line cannot admit
// (redisline admits nobody while the ledger has no sale), so a line begun
// again since the loss has counted nothing, and takes the database's
// count. It returns that count when the line took it, else 0. A failure
// costs the line only its figures, so it is logged and the rebuild goes on.
func (s *Service) reseedLine(ctx context.Context, it sale.Item, buyers int64) int64 {
	if s.d.Lines == nil || !it.Protection.NeedsAdmission() {
		return 0
	}
	seeded, err := s.d.Lines.Reseed(ctx, it.ID, buyers)
	if err != nil {
		s.d.Log.Warn("rebuild: the waiting room was not told the database's buyers; its count of used admissions restarts from 0",
			"item_id", it.ID, "err", err)
		return 0
	}
	if !seeded {
		return 0
	}
	s.d.Log.Warn("the waiting room was lost with the sale: its places are gone (buyers join again); its count of used admissions restarts from the database's buyers",
		"item_id", it.ID, "buyers", buyers)
	return buyers
}

// Trim takes away, at once and while the sale runs, the units the ledger
// shows beyond what the database allows: units the ledger lost the sales of
// (a Redis restart from an older snapshot, a failover to a replica that
// lagged) and would otherwise sell to buyers the database must then refuse.
// It returns how many it took. Unlike Repair it never adds a unit, never
// waits for the order queue to drain or for a quiet moment, and never
// checks the generation; it can afford all three because every figure it
// uses errs on the side of taking too little:
//
//   - the database's live orders are counted before the ledger snapshot,
//     so an order confirmed in between is counted by neither side (its
//     unit is still in the snapshot's stock, or the order is still pending
//     there and counted below);
//   - a pending order is counted as holding a unit only if the database
//     has not decided it when its fate is read, after the snapshot;
//   - orders the ledger lost (still in the queue, not in the snapshot) are
//     not counted at all;
//   - stock_total is read after the snapshot, and restocks only add.
//
// So the stock it computes is at least the true one when the snapshot was
// taken, and it takes (snapshot stock - that) as a delta from the stock as
// it is now: purchases, settles, releases and drops since the snapshot
// moved units between the stock and orders it counted consistently. A
// return committed between the two reads would make it take one unit too
// many, so the count of returned orders is read on both sides and the trim
// is skipped if it moved. Too little taken is taken at the next pass, or
// by the worker, which drops each phantom it meets; too much would strand
// units until the next quiet Repair, never oversell.
func (s *Service) Trim(ctx context.Context, id sale.ItemID) (int64, error) {
	c, err := s.d.Ledger.Counts(ctx, id)
	if err != nil || c.StockLeft <= 0 || c.Pending > s.opts.MaxCheckPending {
		// A lost sale is Repair's; nothing to take from an empty one; a
		// huge backlog is the relay's (see busy).
		return 0, nil
	}
	// The cheap look first: the database's stock_left less every pending
	// order is at most the stock computed below, so a ledger within it has
	// no surplus, and the snapshot (every pending record) is not taken.
	if it, err := s.d.Book.Item(ctx, id); err != nil || c.StockLeft+c.Pending <= it.StockLeft {
		return 0, err
	}
	unlock, ok, err := s.d.Ledger.LockRepair(ctx, id, 30*time.Second)
	if err != nil || !ok {
		return 0, err
	}
	defer unlock()
	returned, err := s.d.Book.ReturnedOrders(ctx, id)
	if err != nil {
		return 0, err
	}
	live, err := s.d.Book.CountHeld(ctx, id)
	if err != nil {
		return 0, err
	}
	snap, err := s.d.Ledger.Snapshot(ctx, id)
	if err != nil || !snap.Exists {
		return 0, err
	}
	ids := make([]sale.OrderID, len(snap.Pending))
	for i, o := range snap.Pending {
		ids[i] = o.ID
	}
	fates, err := s.d.Book.Fates(ctx, ids)
	if err != nil {
		return 0, err
	}
	it, err := s.d.Book.Item(ctx, id)
	if err != nil {
		return 0, err
	}
	if again, err := s.d.Book.ReturnedOrders(ctx, id); err != nil || len(again) != len(returned) {
		return 0, err
	}
	var undecided int64
	for _, f := range fates {
		if !f.Decided() {
			undecided++
		}
	}
	undecided += int64(len(ids) - len(fates)) // no row at all: undecided
	excess := snap.StockLeft - max(it.StockTotal-live-undecided, 0)
	if excess <= 0 {
		return 0, nil
	}
	taken, err := s.d.Ledger.Trim(ctx, id, excess)
	if taken > 0 {
		s.trimmed.Add(uint64(taken))
		s.d.Log.Warn("stock ledger showed more stock than the database allows; took the surplus away",
			"item_id", id, "units", taken, "ledger_stock", snap.StockLeft, "db_total", it.StockTotal, "db_live", live, "undecided_pending", undecided)
	}
	return taken, err
}

// restoreAll restores the restock keys the database has applied and the
// return marks of every cancelled or expired order. Both go in before the
// stock is written: the stock the repair writes already counts those
// restocks and returns, so a late retry of either must find its mark and do
// nothing; one that ran before its mark bumped gen, and the repair's gen
// check refuses and looks again.
func (s *Service) restoreAll(ctx context.Context, id sale.ItemID) error {
	keys, err := s.d.Book.RestockKeys(ctx, id)
	if err != nil {
		return err
	}
	if err := s.d.Ledger.RestoreRestockKeys(ctx, id, keys); err != nil {
		return err
	}
	returned, err := s.d.Book.ReturnedOrders(ctx, id)
	if err != nil {
		return err
	}
	return s.d.Ledger.RestoreReturned(ctx, id, returned)
}

// follow settles, releases and drops the pending orders the database has
// decided; a phantom's unit never comes back (sale.Fate.Phantom).
func (s *Service) follow(ctx context.Context, rec sale.Reconciliation) error {
	if len(rec.Settle) > 0 {
		if err := s.d.Ledger.Settle(ctx, rec.Settle...); err != nil {
			return err
		}
	}
	for _, id := range rec.Drop {
		if _, err := s.d.Ledger.Drop(ctx, id); err != nil {
			return err
		}
	}
	for _, id := range rec.Release {
		released, gen, err := s.d.Ledger.Release(ctx, id)
		if err != nil {
			return err
		}
		if released && s.d.Notify != nil {
			s.d.Notify.StockBack(id.Item(), gen)
		}
	}
	return nil
}

// drain waits until the workers have decided every order in the queue up
// to now.
func (s *Service) drain(ctx context.Context) error {
	if s.d.Backlog == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.DrainTimeout)
	defer cancel()
	marks, err := s.d.Backlog.Marks(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: mark the order queue: %w", err)
	}
	logged := time.Now()
	for {
		behind, err := s.d.Backlog.Behind(ctx, marks)
		if err == nil && behind == 0 {
			return nil
		}
		if time.Since(logged) > 5*time.Second {
			s.d.Log.Warn("repair waits for the workers to drain the order queue", "behind", behind, "err", err)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reconcile: the workers did not drain the order queue (%d behind): %w", behind, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Service) remember(r Report) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last[r.Item] = r
}

// Last returns the latest report for an item, if any pass has made one.
func (s *Service) Last(id sale.ItemID) (Report, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.last[id]
	return r, ok
}

// LastReconciliation returns what the latest pass or repair found for the
// item; after a repair that is what it fixed, so it reports no drift.
func (s *Service) LastReconciliation(id sale.ItemID) (sale.Reconciliation, bool) {
	r, ok := s.Last(id)
	if r.Repaired {
		return sale.Reconciliation{Item: id}, ok
	}
	return r.Reconciliation, ok
}

// Notify asks for a prompt look at an item whose sale the ledger could not
// find (a purchase or a restock met it). It never blocks.
func (s *Service) Notify(id sale.ItemID) {
	select {
	case s.notify <- id:
	default:
	}
}

// Run checks every item each Every, rebuilds lost sales (after Grace),
// repairs drift seen twice in a row when Options.Repair is set, and answers
// Notify, until ctx is done.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Every)
	defer t.Stop()
	s.recoverMoves(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-s.notify:
			s.rebuildSoon(ctx, id)
		case <-t.C:
			s.pass(ctx)
		}
	}
}

// rebuildSoon handles a reported loss: after the grace period, repair.
func (s *Service) rebuildSoon(ctx context.Context, id sale.ItemID) {
	// Collapse a burst of reports about the same loss into one rebuild.
	if r, ok := s.Last(id); ok && r.Repaired && time.Since(r.At) < s.opts.Grace {
		return
	}
	rec, _, err := s.Check(ctx, id)
	if err != nil || !rec.Missing {
		return
	}
	s.d.Log.Warn("the stock ledger has lost a sale; rebuilding it from the database after the grace period",
		"item_id", id, "grace", s.opts.Grace)
	select {
	case <-ctx.Done():
		return
	case <-time.After(s.opts.Grace):
	}
	if _, err := s.Repair(ctx, id); err != nil && ctx.Err() == nil {
		s.d.Log.Warn("rebuild of a lost sale failed; will retry", "item_id", id, "err", err)
	}
}

// pass checks every item once. Lost sales are rebuilt together after one
// grace period; other drift is repaired once it has held still for two
// passes, and only if repairs are allowed.
func (s *Service) pass(ctx context.Context) {
	s.recoverMoves(ctx)
	items, err := s.d.Book.Items(ctx)
	if err != nil {
		s.d.Log.Warn("reconcile pass: list items", "err", err)
		return
	}
	var lost, drifted []sale.ItemID
	for _, it := range items {
		if ctx.Err() != nil {
			return
		}
		// Surplus stock is taken away at once, busy or not: every unit of
		// it is a buyer told yes whom the database will refuse.
		if _, err := s.Trim(ctx, it.ID); err != nil && ctx.Err() == nil {
			s.d.Log.Warn("reconcile pass: trim", "item_id", it.ID, "err", err)
		}
		if s.busy(ctx, it.ID) {
			s.deferred.Add(1)
			continue
		}
		rec, _, err := s.Check(ctx, it.ID)
		if err != nil {
			if !errors.Is(err, ErrBusy) {
				s.d.Log.Warn("reconcile pass: check", "item_id", it.ID, "err", err)
			}
			continue
		}
		s.mu.Lock()
		if rec.Drifted() {
			s.seen[it.ID]++
		} else {
			delete(s.seen, it.ID)
		}
		seen := s.seen[it.ID]
		s.mu.Unlock()
		s.remember(Report{Reconciliation: rec, At: time.Now()})
		if !rec.Drifted() {
			continue
		}
		s.drifts.Add(1)
		s.d.Log.Warn("stock ledger and database disagree", "item_id", it.ID, "drift", rec.String(), "passes", seen)
		switch {
		case rec.Missing:
			lost = append(lost, it.ID)
		case s.opts.Repair && seen >= 2:
			drifted = append(drifted, it.ID)
		}
	}
	if len(lost) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.Grace):
		}
	}
	for _, id := range append(lost, drifted...) {
		if _, err := s.Repair(ctx, id); err != nil && ctx.Err() == nil {
			s.d.Log.Warn("repair failed; will retry", "item_id", id, "err", err)
		}
	}
}

// DefaultMaxCheckPending is Options.MaxCheckPending's default.
const DefaultMaxCheckPending = 10_000

// busy reports whether the periodic pass should leave the item for a later
// pass. It does in two cases.
//
// The ledger holds pending orders and none is overdue, so the worker is
// deciding them right now. Check would then read the two sides while they
// move, retry up to eight times, each time snapshotting every pending order
// (a draining backlog: up to the whole queue) and reading their fates, and
// most likely give up busy anyway. Nothing is lost by waiting: drift found
// now would have to hold still for two passes before a repair, orders that
// stop moving become overdue (and are checked then), and the relay owns
// overdue orders in any case.
//
// Or the ledger holds more than MaxCheckPending, overdue or not. A backlog
// that large means the workers are down or far behind. Check's snapshot
// would read every pending record in one Redis script (100k records held
// Redis for tens of ms, long enough to time out the purchases queued behind
// it) and their fates in the database, every pass, while the relay already
// owns the overdue orders and decides them after --relay-give-up. The item
// is checked once the backlog is back under the bound.
//
// A ledger that cannot say (a lost sale, Redis down) is not busy: Check
// must see it.
func (s *Service) busy(ctx context.Context, id sale.ItemID) bool {
	c, err := s.d.Ledger.Counts(ctx, id)
	if err != nil || c.Pending == 0 {
		return false
	}
	if c.Pending > s.opts.MaxCheckPending {
		s.d.Log.Warn("reconcile pass: backlog too large to check; left to the relay and the workers",
			"item_id", id, "pending", c.Pending, "overdue", c.Overdue, "max_check_pending", s.opts.MaxCheckPending)
		return true
	}
	return c.Overdue == 0
}

// recoverMoves runs the RecoverMoves hook and logs what it did.
func (s *Service) recoverMoves(ctx context.Context) {
	if s.d.RecoverMoves == nil {
		return
	}
	n, err := s.d.RecoverMoves(ctx)
	if n > 0 {
		s.movesRecovered.Add(uint64(n))
		s.d.Log.Warn("finished moves between stock buckets that a process left half done", "moves", n)
	}
	if err != nil && ctx.Err() == nil {
		s.d.Log.Warn("recover moves between stock buckets; will retry", "err", err)
	}
}

// Stats counts what the reconciler did, for metrics.
// MovesRecovered counts half-done moves between stock buckets it finished.
type Stats struct {
	Checks, Drifts, Repairs, Rebuilds, Conflicts, MovesRecovered uint64
	// Deferred counts the passes that left an item for later because the
	// worker was deciding its orders (see busy).
	Deferred uint64
	// Trimmed counts the units Trim took away from ledgers that showed
	// more stock than the database allows.
	Trimmed uint64
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{Checks: s.checks.Load(), Drifts: s.drifts.Load(), Repairs: s.repairs.Load(),
		Rebuilds: s.rebuilds.Load(), Conflicts: s.conflicts.Load(), MovesRecovered: s.movesRecovered.Load(),
		Deferred: s.deferred.Load(), Trimmed: s.trimmed.Load()}
}

// DriftUnits returns the sum over items of the stock drift the latest
// passes found, for a gauge.
func (s *Service) DriftUnits() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, r := range s.last {
		if !r.Repaired {
			n += abs(r.StockDrift) + abs(r.TotalDrift)
		}
	}
	return n
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
