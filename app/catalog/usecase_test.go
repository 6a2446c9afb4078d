package catalog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"seckill/domain/sale"
)

// memStore is an in-memory sale.Catalog with the real store's restock rule:
// once per (item, key).
type memStore struct {
	mu       sync.Mutex
	items    map[sale.ItemID]sale.Item
	restocks map[string]int64
	next     sale.ItemID
	failNext error // returned once by the next write
}

func newMemStore() *memStore {
	return &memStore{items: map[sale.ItemID]sale.Item{}, restocks: map[string]int64{}}
}

func (m *memStore) takeFail() error {
	err := m.failNext
	m.failNext = nil
	return err
}

func (m *memStore) Item(_ context.Context, id sale.ItemID) (sale.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[id]
	if !ok {
		return sale.Item{}, sale.ErrNotFound
	}
	return it, nil
}

func (m *memStore) Items(context.Context) ([]sale.Item, error) { return nil, nil }

func (m *memStore) CreateItem(_ context.Context, it sale.Item) (sale.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next++
	it.ID = m.next
	m.items[it.ID] = it
	return it, nil
}

func (m *memStore) UpdateItem(_ context.Context, id sale.ItemID, fn func(*sale.Item) error) (sale.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[id]
	if !ok {
		return sale.Item{}, sale.ErrNotFound
	}
	if err := fn(&it); err != nil {
		return sale.Item{}, err
	}
	m.items[id] = it
	return it, nil
}

func (m *memStore) DeleteItem(_ context.Context, id sale.ItemID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, id)
	return nil
}

func (m *memStore) Restock(_ context.Context, id sale.ItemID, add int64, key string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.takeFail(); err != nil {
		return false, err
	}
	it, ok := m.items[id]
	if !ok {
		return false, sale.ErrNotFound
	}
	k := id.String() + "/" + key
	if _, seen := m.restocks[k]; seen {
		return false, nil
	}
	m.restocks[k] = add
	it.StockTotal += add
	it.StockLeft += add
	m.items[id] = it
	return true, nil
}

func (m *memStore) CountStatuses(context.Context, sale.ItemID) (map[sale.OrderStatus]int64, error) {
	return map[sale.OrderStatus]int64{}, nil
}

// memLedger is the ledger's side: stock per item and keys per item.
type memLedger struct {
	mu       sync.Mutex
	stock    map[sale.ItemID][2]int64 // left, total
	keys     map[string]bool
	failNext error
	windows  int
	down     error // while set, StockLeft fails with it
}

func (l *memLedger) Open(_ context.Context, it sale.Item) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stock[it.ID] = [2]int64{it.StockTotal, it.StockTotal}
	return nil
}

func (l *memLedger) SetWindow(context.Context, sale.ItemID, time.Time, time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.failNext
	l.failNext = nil
	if err == nil {
		l.windows++
	}
	return err
}

func (l *memLedger) StockLeft(_ context.Context, ids ...sale.ItemID) (map[sale.ItemID]int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down != nil {
		return nil, l.down
	}
	out := map[sale.ItemID]int64{}
	for _, id := range ids {
		if s, ok := l.stock[id]; ok {
			out[id] = s[0]
		}
	}
	return out, nil
}

func (l *memLedger) Restock(_ context.Context, id sale.ItemID, add int64, key string) (bool, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.failNext; err != nil {
		l.failNext = nil
		return false, 0, err
	}
	s, ok := l.stock[id]
	if !ok {
		return false, 0, sale.ErrNotFound
	}
	k := id.String() + "/" + key
	if l.keys[k] {
		return false, 1, nil
	}
	l.keys[k] = true
	l.stock[id] = [2]int64{s[0] + add, s[1] + add}
	return true, 2, nil
}

func (l *memLedger) Counts(_ context.Context, id sale.ItemID) (sale.Counts, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.stock[id]
	if !ok {
		return sale.Counts{}, sale.ErrNotFound
	}
	return sale.Counts{StockLeft: s[0], StockTotal: s[1]}, nil
}

// memCaches records invalidations; either step can be made to fail.
type memCaches struct {
	mu                   sync.Mutex
	now, later           int
	failNow, failLater   bool
	invalidatedAfterFail chan struct{}
}

func (c *memCaches) Invalidate(context.Context, sale.ItemID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now++
	if c.failLater && c.invalidatedAfterFail != nil && c.later > 0 {
		select {
		case c.invalidatedAfterFail <- struct{}{}:
		default:
		}
	}
	if c.failNow {
		return errors.New("redis down")
	}
	return nil
}

func (c *memCaches) InvalidateLater(context.Context, sale.ItemID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.later++
	if c.failLater {
		return errors.New("redis down")
	}
	return nil
}

type rig struct {
	store  *memStore
	ledger *memLedger
	caches *memCaches
	svc    *Service
}

func newRig() *rig {
	r := &rig{store: newMemStore(), ledger: &memLedger{stock: map[sale.ItemID][2]int64{}, keys: map[string]bool{}},
		caches: &memCaches{invalidatedAfterFail: make(chan struct{}, 1)}}
	r.svc = New(Deps{Reader: r.store, Store: r.store, Ledger: r.ledger, Book: r.store, Caches: r.caches,
		SecondDelete: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return r
}

func (r *rig) create(t *testing.T) sale.ItemID {
	t.Helper()
	now := time.Now()
	v, err := r.svc.Create(context.Background(), sale.Draft{Name: "x", PriceCents: 1, Stock: 5, StartsAt: now, EndsAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return v.Item.ID
}

// TestCreateSucceedsOnceCommittedWhateverTheCachesSay: a create whose
// cache steps fail after the item exists in both stores is a success (a
// 503 would make the client retry and create a second sale), and the
// second delete still happens.
func TestCreateSucceedsOnceCommittedWhateverTheCachesSay(t *testing.T) {
	r := newRig()
	r.caches.failNow, r.caches.failLater = true, true
	r.create(t)
	if len(r.store.items) != 1 {
		t.Fatalf("%d items exist; want exactly the one created", len(r.store.items))
	}
	select {
	case <-r.caches.invalidatedAfterFail:
	case <-time.After(2 * time.Second):
		t.Fatal("the second delete never ran after scheduling it failed")
	}
}

// TestUpdateSchedulesTheSecondDeleteWhateverFailsAfterTheCommit: a PATCH
// whose ledger step fails answers 503, but its database change is in, so
// the second delete must be scheduled anyway.
func TestUpdateSchedulesTheSecondDeleteWhateverFailsAfterTheCommit(t *testing.T) {
	r := newRig()
	id := r.create(t)
	before := r.caches.later
	r.ledger.failNext = errors.New("redis timeout")
	end := time.Now().Add(2 * time.Hour)
	_, err := r.svc.Update(context.Background(), id, sale.Patch{EndsAt: &end})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Update with a failing ledger = %v, want ErrUnavailable", err)
	}
	if r.caches.later != before+1 {
		t.Fatalf("second deletes scheduled: %d, want %d", r.caches.later, before+1)
	}
	// Scheduling itself failing falls back to running it here.
	r.caches.failLater = true
	if _, err := r.svc.Update(context.Background(), id, sale.Patch{EndsAt: &end}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	select {
	case <-r.caches.invalidatedAfterFail:
	case <-time.After(2 * time.Second):
		t.Fatal("the second delete never ran after scheduling it failed")
	}
}

// TestRestockWritesTheDatabaseFirstAndHealsHalfDoneRetries: the database is
// written first; the ledger applies the same key whatever the database
// answered, so a retry after the ledger step failed completes it, and a
// repeat after both succeeded changes neither.
func TestRestockWritesTheDatabaseFirstAndHealsHalfDoneRetries(t *testing.T) {
	r := newRig()
	id := r.create(t)
	ctx := context.Background()
	r.ledger.failNext = errors.New("redis timeout")
	if _, err := r.svc.Restock(ctx, id, 3, "k1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Restock with a failing ledger = %v, want ErrUnavailable", err)
	}
	if got := r.store.items[id].StockTotal; got != 8 {
		t.Fatalf("database total after the half-done restock = %d, want 8 (database first)", got)
	}
	for range 2 {
		if _, err := r.svc.Restock(ctx, id, 3, "k1"); err != nil {
			t.Fatalf("retry: %v", err)
		}
	}
	if db, l := r.store.items[id].StockTotal, r.ledger.stock[id][1]; db != 8 || l != 8 {
		t.Fatalf("totals after retries: database %d, ledger %d; want 8 and 8", db, l)
	}
	// A database failure leaves the ledger alone.
	r.store.failNext = errors.New("mysql gone")
	if _, err := r.svc.Restock(ctx, id, 2, "k2"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Restock with a failing database = %v", err)
	}
	if l := r.ledger.stock[id][1]; l != 8 {
		t.Fatalf("ledger total %d after a failed database step, want 8", l)
	}
	for _, key := range []string{"", "bad key", "é"} {
		if _, err := r.svc.Restock(ctx, id, 1, key); !errors.Is(err, sale.ErrInvalid) {
			t.Fatalf("Restock(key %q) = %v, want ErrInvalid", key, err)
		}
	}
}

// TestItemsWithoutTheLedgerShowUnknownStock: with the stock ledger down,
// item reads still answer from item data, with the stock unknown and the
// status saying so, and answer the live figure again once it is back.
func TestItemsWithoutTheLedgerShowUnknownStock(t *testing.T) {
	r := newRig()
	id := r.create(t)
	r.ledger.mu.Lock()
	r.ledger.down = errors.New("guard: redis-ledger: circuit breaker open")
	r.ledger.mu.Unlock()
	v, err := r.svc.Item(context.Background(), id)
	if err != nil {
		t.Fatalf("Item with the ledger down = %v, want a view", err)
	}
	if v.StockKnown || v.Status != sale.StatusStockUnavailable {
		t.Fatalf("view %+v, want unknown stock and status %s", v, sale.StatusStockUnavailable)
	}
	r.ledger.mu.Lock()
	r.ledger.down = nil
	r.ledger.mu.Unlock()
	v, err = r.svc.Item(context.Background(), id)
	if err != nil || !v.StockKnown || v.StockLeft != 5 || v.Status != sale.StatusActive {
		t.Fatalf("after the ledger is back: %+v %v, want 5 known and active", v, err)
	}
}

// lostUpdate commits an UpdateItem and answers an error, as a commit whose
// reply was lost does.
type lostUpdate struct{ *memStore }

func (l lostUpdate) UpdateItem(ctx context.Context, id sale.ItemID, fn func(*sale.Item) error) (sale.Item, error) {
	if _, err := l.memStore.UpdateItem(ctx, id, fn); err != nil {
		return sale.Item{}, err
	}
	return sale.Item{}, errors.New("driver: bad connection")
}

// TestUpdateWithALostCommitAnswerStillRunsTheSecondDeleteAndTheWindow: the
// commit happened but answered an error. The second delete and the window
// move must run anyway; skipping them left the stale price cached for the
// TTL and the ledger's window behind the database's.
func TestUpdateWithALostCommitAnswerStillRunsTheSecondDeleteAndTheWindow(t *testing.T) {
	r := newRig()
	id := r.create(t)
	r.svc.d.Store = lostUpdate{r.store}
	later, windows := r.caches.later, r.ledger.windows
	end := time.Now().Add(3 * time.Hour)
	if _, err := r.svc.Update(context.Background(), id, sale.Patch{EndsAt: &end}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Update with a lost commit answer = %v, want ErrUnavailable", err)
	}
	if r.caches.later != later+1 {
		t.Errorf("second deletes scheduled: %d, want %d", r.caches.later, later+1)
	}
	if r.ledger.windows != windows+1 {
		t.Errorf("ledger windows set: %d, want %d", r.ledger.windows, windows+1)
	}
}
