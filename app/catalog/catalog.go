// Package catalog is the item use cases: what shoppers read (items with live
// stock) and what admins do (create a sale, edit it, restock it, check its
// accounts).
//
// Item data (name, price, window) is read through the cache chain and
// invalidated by delayed double delete. Stock is not item data: it is read
// from the stock ledger, which is never cached or reloaded from the
// database, and changed only by the ledger's own scripts.
package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"seckill/domain/sale"
)

// ErrUnavailable means a backend did not answer; retry later.
var ErrUnavailable = errors.New("service unavailable")

type ledger interface {
	Open(ctx context.Context, it sale.Item) error
	SetWindow(ctx context.Context, id sale.ItemID, startsAt, endsAt time.Time) error
	StockLeft(ctx context.Context, ids ...sale.ItemID) (map[sale.ItemID]int64, error)
	Restock(ctx context.Context, id sale.ItemID, add int64, key string) (applied bool, gen int64, err error)
	Counts(ctx context.Context, id sale.ItemID) (sale.Counts, error)
}

// orderCounter counts an item's orders in the database by status.
type orderCounter interface {
	CountStatuses(ctx context.Context, id sale.ItemID) (map[sale.OrderStatus]int64, error)
}

// Invalidator drops cached item data. Invalidate acts now on every layer of
// every instance; InvalidateLater schedules the second delete of a delayed
// double delete in a way that survives this process dying.
type Invalidator interface {
	Invalidate(ctx context.Context, id sale.ItemID) error
	InvalidateLater(ctx context.Context, id sale.ItemID) error
}

// creates is the database side of an idempotent create: an item made under
// a key stays invisible to every reader until it is marked opened.
type creates interface {
	CreateItemKeyed(ctx context.Context, it sale.Item, key string) (sale.Item, bool, error)
	ItemByCreateKey(ctx context.Context, key string) (sale.Item, bool, error)
	MarkItemOpened(ctx context.Context, id sale.ItemID) error
}

// stockNotifier is the part of sale.Notifier the catalog uses: units came back.
type stockNotifier interface {
	StockBack(item sale.ItemID, gen int64)
}

// Deps are the collaborators of the catalog use cases.
type Deps struct {
	Reader sale.ItemReader // the cache chain
	Store  sale.Catalog    // the database
	Ledger ledger
	Book   orderCounter
	Caches Invalidator
	Notify stockNotifier // told when units come back (sale.Notifier)
	// LedgerMissing, if set, is told when the ledger has no sale for an
	// item the database has, so the sale gets rebuilt.
	LedgerMissing func(item sale.ItemID)
	// LastReconciliation, if set, returns the latest comparison of the
	// item's ledger with the database, for the stats.
	LastReconciliation func(item sale.ItemID) (sale.Reconciliation, bool)
	// Log receives failures of steps that come after the commit point and
	// so do not fail the request (cache invalidation).
	Log *slog.Logger
	// StockDisplayTTL is how stale a displayed stock figure may be; 0 reads
	// the ledger on every request.
	StockDisplayTTL time.Duration
	// SecondDelete is the delay of the second delete, for the in-process
	// fallback used when the durable delay queue cannot be reached.
	SecondDelete time.Duration
	Now          func() time.Time
	// Creates makes CreateOnce idempotent; nil (fixtures without a
	// database) leaves only the unkeyed create, with its undo.
	Creates creates
}

// Service runs the catalog use cases. It is safe for concurrent use.
type Service struct {
	d Deps

	sf    singleflight.Group
	mu    sync.Mutex
	stock map[sale.ItemID]stockEntry
}

type stockEntry struct {
	left int64
	ok   bool
	at   time.Time
}

// New returns the catalog service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	return &Service{d: d, stock: make(map[sale.ItemID]stockEntry)}
}

// View is an item as a shopper sees it: its data plus live stock and status.
// StockKnown is false when the stock ledger could not be read (Redis down,
// or its breaker open): StockLeft is then 0 and means nothing, and Status
// is sale.StatusStockUnavailable for an open sale.
type View struct {
	Item       sale.Item
	StockLeft  int64
	StockKnown bool
	Status     sale.Status
}

// Items lists every item with live stock. If the stock ledger does not
// answer, the items are still listed, with StockKnown false: item data comes
// from the caches and the database, which need no Redis.
func (s *Service) Items(ctx context.Context) ([]View, error) {
	items, err := s.d.Reader.Items(ctx)
	if err != nil {
		return nil, unavailable("list items", err)
	}
	ids := make([]sale.ItemID, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	left, err := s.stockLeft(ctx, ids)
	if err != nil && !errors.Is(err, ErrUnavailable) {
		return nil, err
	}
	now := s.d.Now()
	out := make([]View, len(items))
	for i, it := range items {
		if err != nil {
			out[i] = unknownStock(it, now)
		} else {
			out[i] = s.view(it, left, now)
		}
	}
	return out, nil
}

// unknownStock is the view of an item whose live stock cannot be read.
func unknownStock(it sale.Item, now time.Time) View {
	return View{Item: it, Status: it.StatusWithoutStock(now)}
}

// Item returns one item with live stock, or sale.ErrNotFound. Like Items,
// it answers with StockKnown false when only the stock ledger is down.
func (s *Service) Item(ctx context.Context, id sale.ItemID) (View, error) {
	it, err := s.d.Reader.Item(ctx, id)
	if err != nil {
		if errors.Is(err, sale.ErrNotFound) {
			return View{}, err
		}
		return View{}, unavailable("get item", err)
	}
	left, err := s.stockLeft(ctx, []sale.ItemID{id})
	if errors.Is(err, ErrUnavailable) {
		return unknownStock(it, s.d.Now()), nil
	}
	if err != nil {
		return View{}, err
	}
	return s.view(it, left, s.d.Now()), nil
}

func (s *Service) view(it sale.Item, left map[sale.ItemID]int64, now time.Time) View {
	n, ok := left[it.ID]
	if !ok {
		// The ledger does not know the item (its creation failed halfway, or
		// Redis lost its data). For display only, show the database's
		// figure. Purchases answer 503 unavailable meanwhile and have the
		// reconciler rebuild the sale as a recovery step, never by reading
		// this figure back: see docs/RECOVERY.md.
		n = it.StockLeft
	}
	return View{Item: it, StockLeft: n, StockKnown: true, Status: it.StatusAt(now, n)}
}

// stockLeft reads live stock for display, allowing figures up to
// StockDisplayTTL old so that page views cost the ledger at most one read
// per item per TTL per instance.
func (s *Service) stockLeft(ctx context.Context, ids []sale.ItemID) (map[sale.ItemID]int64, error) {
	now := s.d.Now()
	out := make(map[sale.ItemID]int64, len(ids))
	var stale []sale.ItemID
	s.mu.Lock()
	for _, id := range ids {
		e, ok := s.stock[id]
		if ok && now.Sub(e.at) < s.d.StockDisplayTTL {
			if e.ok {
				out[id] = e.left
			}
			continue
		}
		stale = append(stale, id)
	}
	s.mu.Unlock()
	if len(stale) == 0 {
		return out, nil
	}
	key := fmt.Sprint(stale)
	v, err, _ := s.sf.Do(key, func() (any, error) {
		return s.d.Ledger.StockLeft(context.WithoutCancel(ctx), stale...)
	})
	if err != nil {
		return nil, unavailable("read stock", err)
	}
	fresh := v.(map[sale.ItemID]int64)
	s.mu.Lock()
	for _, id := range stale {
		n, ok := fresh[id]
		s.stock[id] = stockEntry{left: n, ok: ok, at: now}
		if ok {
			out[id] = n
		}
	}
	s.mu.Unlock()
	return out, nil
}

// forgetStock drops a displayed stock figure after an admin change, so the
// admin sees the effect at once.
func (s *Service) forgetStock(id sale.ItemID) {
	s.mu.Lock()
	delete(s.stock, id)
	s.mu.Unlock()
}

// Create is CreateOnce with a fresh key: for callers that do not retry
// (seeding, labs).
func (s *Service) Create(ctx context.Context, d sale.Draft) (View, error) {
	return s.CreateOnce(ctx, d, NewRestockKey())
}

// createUnkeyed stores a new sale and opens its stock in the ledger. If the
// ledger step fails, the item is removed again and ErrUnavailable returned.
// It is the create of a catalog without Deps.Creates.
func (s *Service) createUnkeyed(ctx context.Context, d sale.Draft) (View, error) {
	it, err := sale.NewItem(d)
	if err != nil {
		return View{}, err
	}
	it, err = s.d.Store.CreateItem(ctx, it)
	if err != nil {
		return View{}, unavailable("create item", err)
	}
	if err := s.d.Ledger.Open(ctx, it); err != nil {
		if derr := s.d.Store.DeleteItem(context.WithoutCancel(ctx), it.ID); derr != nil {
			err = errors.Join(err, fmt.Errorf("undo create: %w", derr))
		}
		return View{}, unavailable("open stock", err)
	}
	// The sale exists in both stores: that is the commit point, and a
	// failure after it must not make the client retry (a retry would
	// create a second sale). The list and any negative entry for this id
	// are wrong everywhere now; the second delete covers a list read that
	// raced the insert, and both run whatever happens (invalidate).
	s.invalidate(ctx, it.ID)
	return s.fresh(it), nil
}

// fresh is the view of an item just created: all its stock is left.
func (s *Service) fresh(it sale.Item) View {
	return View{Item: it, StockLeft: it.StockTotal, StockKnown: true, Status: it.StatusAt(s.d.Now(), it.StockTotal)}
}

// Update changes an item's data with a delayed double delete: drop cached
// copies everywhere, update the database, move the ledger's window if it
// changed, then schedule a second drop after the configured delay. The
// second drop removes any old copy that a reader loaded from the database
// before the update and wrote back after the first drop. Live stock is not
// touched.
func (s *Service) Update(ctx context.Context, id sale.ItemID, p sale.Patch) (View, error) {
	if p.Empty() {
		return View{}, &sale.ValidationError{Field: "body", Reason: "names no field to change"}
	}
	if err := s.d.Caches.Invalidate(ctx, id); err != nil {
		return View{}, unavailable("invalidate caches", err)
	}
	it, err := s.d.Store.UpdateItem(ctx, id, func(it *sale.Item) error { return it.Apply(p) })
	if err != nil {
		if errors.Is(err, sale.ErrNotFound) || errors.Is(err, sale.ErrInvalid) {
			return View{}, err
		}
		s.afterUnknownUpdate(ctx, id, p)
		return View{}, unavailable("update item", err)
	}
	// The database holds the change now: whatever fails below, the second
	// delete must still happen, or a copy loaded before the update lives
	// on for the whole cache TTL.
	defer s.invalidateLater(ctx, id)
	if p.WindowChanged() {
		if err := s.d.Ledger.SetWindow(ctx, id, it.StartsAt, it.EndsAt); err != nil {
			if !errors.Is(err, sale.ErrNotFound) {
				// The reconciler also moves a window that differs from the
				// database's; a retry of the same PATCH does it at once.
				return View{}, unavailable("move sale window", err)
			}
			s.ledgerMissing(id)
		}
	}
	s.forgetStock(id)
	return s.Item(ctx, id)
}

// afterUnknownUpdate runs the steps that follow an update whose commit
// answered an error: it may have committed with its answer lost, and then
// a skipped second delete leaves the old price cached for the whole TTL.
// The second delete is harmless if nothing changed, and the window is set
// to what the database reads back now, which is the ledger's own window if
// the update did not commit.
func (s *Service) afterUnknownUpdate(ctx context.Context, id sale.ItemID, p sale.Patch) {
	s.invalidateLater(ctx, id)
	if !p.WindowChanged() {
		return
	}
	ctx = context.WithoutCancel(ctx)
	it, err := s.d.Store.Item(ctx, id)
	if err == nil {
		err = s.d.Ledger.SetWindow(ctx, id, it.StartsAt, it.EndsAt)
	}
	if err != nil {
		// The reconciler moves a window that differs from the database's.
		s.d.Log.Warn("could not align the sale window after an update with an unknown outcome", "item_id", id, "err", err)
	}
}

// MaxRestock bounds one restock.
const MaxRestock = sale.MaxStock

// Restock adds units to a sale, at most once per (item, key): in the
// database first, which records the key, then in the ledger with the same
// key, whatever the database answered, so a retry after a half-done restock
// completes the missing half and a repeat changes neither. A restock without
// a key gets one (NewRestockKey); the caller returns it so a client can
// retry. The ledger keeps keys as long as the database does.
func (s *Service) Restock(ctx context.Context, id sale.ItemID, add int64, key string) (View, error) {
	if add < 1 || add > MaxRestock {
		return View{}, &sale.ValidationError{Field: "add", Reason: fmt.Sprintf("must be between 1 and %d", MaxRestock)}
	}
	if _, err := sale.ParseRestockKey(key); err != nil {
		return View{}, err
	}
	if _, err := s.d.Store.Restock(ctx, id, add, key); err != nil {
		if errors.Is(err, sale.ErrNotFound) || errors.Is(err, sale.ErrInvalid) {
			return View{}, err
		}
		return View{}, unavailable("restock database", err)
	}
	// Past this point the units exist; the caches must learn of them
	// whatever the ledger says.
	applied, gen, err := s.d.Ledger.Restock(ctx, id, add, key)
	s.invalidate(ctx, id)
	s.forgetStock(id)
	if err != nil {
		if errors.Is(err, sale.ErrNotFound) {
			// The ledger lost the sale; its rebuild takes the database's
			// total, this restock included, and this key.
			s.ledgerMissing(id)
			return View{}, fmt.Errorf("%w: the stock ledger is being rebuilt; the restock is recorded and will be live once it is", ErrUnavailable)
		}
		return View{}, unavailable("restock ledger", err)
	}
	if applied && s.d.Notify != nil {
		s.d.Notify.StockBack(id, gen)
	}
	return s.Item(ctx, id)
}

// NewRestockKey returns a fresh restock idempotency key, for a restock sent
// without one.
func NewRestockKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "srv-" + hex.EncodeToString(b[:])
}

// invalidate drops cached copies of the item now and schedules the second
// delete; a failure is logged, not returned, because it comes after the
// change is committed, and both TTLs bound the staleness it leaves.
func (s *Service) invalidate(ctx context.Context, id sale.ItemID) {
	if err := s.d.Caches.Invalidate(context.WithoutCancel(ctx), id); err != nil {
		s.d.Log.Warn("cache invalidation failed after a committed change; the second delete still runs", "item_id", id, "err", err)
	}
	s.invalidateLater(ctx, id)
}

// invalidateLater schedules the second delete in the durable queue, or, if
// that fails, runs it from this process after the same delay.
func (s *Service) invalidateLater(ctx context.Context, id sale.ItemID) {
	if err := s.d.Caches.InvalidateLater(context.WithoutCancel(ctx), id); err != nil {
		s.d.Log.Warn("could not schedule the second delete durably; running it from this instance", "item_id", id, "err", err)
		time.AfterFunc(s.d.SecondDelete, func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := s.d.Caches.Invalidate(ctx, id); err != nil {
				s.d.Log.Warn("second delete failed; cached copies live until their TTL", "item_id", id, "err", err)
			}
		})
	}
}

func (s *Service) ledgerMissing(id sale.ItemID) {
	if s.d.LedgerMissing != nil {
		s.d.LedgerMissing(id)
	}
}

// Stats is an item's stock accounting across the ledger and the database.
type Stats struct {
	ItemID          sale.ItemID
	StockTotal      int64
	StockLeftLedger int64
	StockLeftDB     int64
	Pending         int64
	// Overdue counts pending orders older than the ledger's republish age.
	Overdue int64
	// Confirmed counts orders that hold a unit and are not paid yet; Paid
	// those paid. Cancelled and Expired gave their unit back, as Failed did.
	Confirmed int64
	Paid      int64
	Cancelled int64
	Expired   int64
	Failed    int64
	// LedgerLive is false while the ledger has no sale for the item (lost,
	// and being rebuilt).
	LedgerLive bool
	// Drift is what the latest reconciliation found differing, in words;
	// empty when it found nothing or none has run.
	Drift string
	// Consistent is true when the units add up (see Consistent) and no
	// order is overdue.
	Consistent bool
}

// Consistent reports whether the accounts add up. held is the orders that
// hold a unit: confirmed (awaiting payment) plus paid. The rule, for a
// settled sale (no order between the database commit and the ledger's
// settle step, none between its database decision and its ledger return):
//
//	ledger total == database total
//	ledger total == ledger stock left + pending + held
//	database stock left == database total - held
//
// Failed, cancelled and expired orders appear in none of the terms because
// their unit is back in both stores' stock left. While a worker is between
// committing a batch and settling it, or a cancel between the database and
// the ledger's return, a sale in full flow may briefly read inconsistent.
func Consistent(ledgerTotal, dbTotal, ledgerLeft, pending, held, dbLeft int64) bool {
	return ledgerTotal == dbTotal &&
		ledgerTotal == ledgerLeft+pending+held &&
		dbLeft == dbTotal-held
}

// Stats reads an item's accounts from the ledger and the database. They are
// not consistent while the ledger has lost the sale or an order is overdue:
// either means the figures cannot be trusted yet.
func (s *Service) Stats(ctx context.Context, id sale.ItemID) (Stats, error) {
	it, err := s.d.Store.Item(ctx, id)
	if err != nil {
		if errors.Is(err, sale.ErrNotFound) {
			return Stats{}, err
		}
		return Stats{}, unavailable("get item", err)
	}
	c, err := s.d.Ledger.Counts(ctx, id)
	live := err == nil
	if err != nil && !errors.Is(err, sale.ErrNotFound) {
		return Stats{}, unavailable("ledger counts", err)
	}
	if !live {
		s.ledgerMissing(id)
	}
	counts, err := s.d.Book.CountStatuses(ctx, id)
	if err != nil {
		return Stats{}, unavailable("count orders", err)
	}
	confirmed, paid := counts[sale.OrderConfirmed], counts[sale.OrderPaid]
	var drift string
	if s.d.LastReconciliation != nil {
		if rec, ok := s.d.LastReconciliation(id); ok && (rec.Drifted() || rec.Unrepairable != "") {
			drift = rec.String()
		}
	}
	return Stats{
		ItemID:          id,
		Drift:           drift,
		StockTotal:      it.StockTotal,
		StockLeftLedger: c.StockLeft,
		StockLeftDB:     it.StockLeft,
		Pending:         c.Pending,
		Overdue:         c.Overdue,
		Confirmed:       confirmed,
		Paid:            paid,
		Cancelled:       counts[sale.OrderCancelled],
		Expired:         counts[sale.OrderExpired],
		Failed:          counts[sale.OrderFailed],
		LedgerLive:      live,
		Consistent: live && c.Overdue == 0 &&
			Consistent(c.StockTotal, it.StockTotal, c.StockLeft, c.Pending, confirmed+paid, it.StockLeft),
	}, nil
}

func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	// err stays in the chain (a second %w) so that the HTTP layer can say
	// why, for example that a circuit breaker refused the call.
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err) //nolint:errorlint // both wrapped on purpose: see above
}
