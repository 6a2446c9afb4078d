package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"seckill/app/auth"
	"seckill/app/catalog"
	"seckill/app/lifecycle"
	"seckill/app/metrics"
	"seckill/app/purchase"
	"seckill/app/shield"
	"seckill/domain/sale"
)

const testAdminToken = "test-admin-token-0123456789"

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// memStore is every port the catalog and purchase use cases need, in
// memory. writes counts every change, so a test can check that a refused
// request changed nothing.
type memStore struct {
	mu      sync.Mutex
	items   map[sale.ItemID]sale.Item
	stock   map[sale.ItemID]int64 // the ledger's live stock
	keys    map[string]bool       // restock keys the database has applied
	ledKeys map[string]bool       // restock keys the ledger has applied
	orders  map[sale.OrderID]sale.Order
	next    sale.ItemID
	writes  int
	reserve int // Reserve calls
}

func newMemStore() *memStore {
	return &memStore{
		items: map[sale.ItemID]sale.Item{}, stock: map[sale.ItemID]int64{},
		keys: map[string]bool{}, ledKeys: map[string]bool{}, orders: map[sale.OrderID]sale.Order{},
	}
}

// Writes is how many changes the fakes have recorded.
func (m *memStore) Writes() int { m.mu.Lock(); defer m.mu.Unlock(); return m.writes }

// Item and Items are sale.ItemReader.
func (m *memStore) Item(_ context.Context, id sale.ItemID) (sale.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[id]
	if !ok {
		return sale.Item{}, sale.ErrNotFound
	}
	return it, nil
}

func (m *memStore) Items(context.Context) ([]sale.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]sale.Item, 0, len(m.items))
	for _, it := range m.items {
		out = append(out, it)
	}
	return out, nil
}

// catalogStore is the sale.Catalog side of memStore; its Restock differs in
// signature from the ledger's.
type catalogStore struct{ *memStore }

func (c catalogStore) CreateItem(_ context.Context, it sale.Item) (sale.Item, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	it.ID = c.next
	c.items[it.ID] = it
	c.writes++
	return it, nil
}

func (c catalogStore) UpdateItem(_ context.Context, id sale.ItemID, fn func(*sale.Item) error) (sale.Item, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[id]
	if !ok {
		return sale.Item{}, sale.ErrNotFound
	}
	if err := fn(&it); err != nil {
		return sale.Item{}, err
	}
	c.items[id] = it
	c.writes++
	return it, nil
}

func (c catalogStore) DeleteItem(_ context.Context, id sale.ItemID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.items, id)
	c.writes++
	return nil
}

// Restock refuses keys the way MySQL's utf8mb4 VARCHAR(128) column does:
// invalid UTF-8 is a driver error (1366 "Incorrect string value"), not a
// sale error.
func (c catalogStore) Restock(_ context.Context, id sale.ItemID, add int64, key string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !utf8.ValidString(key) || len(key) > 128 {
		return false, errors.New("Error 1366 (22007): Incorrect string value for column 'idempotency_key'")
	}
	it, ok := c.items[id]
	if !ok {
		return false, sale.ErrNotFound
	}
	if key != "" && c.keys[key] {
		return false, nil
	}
	c.keys[key] = true
	it.StockTotal += add
	it.StockLeft += add
	c.items[id] = it
	c.writes++
	return true, nil
}

// ledgerStore is the stock ledger side of memStore.
type ledgerStore struct{ *memStore }

func (l ledgerStore) Open(_ context.Context, it sale.Item) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.stock[it.ID]; !ok {
		l.stock[it.ID] = it.StockTotal
	}
	l.writes++
	return nil
}

func (l ledgerStore) SetWindow(_ context.Context, id sale.ItemID, _, _ time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.stock[id]; !ok {
		return sale.ErrNotFound
	}
	l.writes++
	return nil
}

func (l ledgerStore) StockLeft(_ context.Context, ids ...sale.ItemID) (map[sale.ItemID]int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[sale.ItemID]int64{}
	for _, id := range ids {
		if n, ok := l.stock[id]; ok {
			out[id] = n
		}
	}
	return out, nil
}

func (l ledgerStore) Restock(_ context.Context, id sale.ItemID, add int64, key string) (bool, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.stock[id]; !ok {
		return false, 0, sale.ErrNotFound
	}
	if l.ledKeys[key] {
		return false, 1, nil
	}
	l.ledKeys[key] = true
	l.stock[id] += add
	l.writes++
	return true, 2, nil
}

func (l ledgerStore) Counts(_ context.Context, id sale.ItemID) (sale.Counts, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sale.Counts{StockTotal: l.items[id].StockTotal, StockLeft: l.stock[id]}, nil
}

func (l ledgerStore) Reserve(_ context.Context, o sale.Order) (sale.Reservation, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reserve++
	if l.stock[o.ItemID] <= 0 {
		return sale.Reservation{Outcome: sale.OutcomeSoldOut}, nil
	}
	l.stock[o.ItemID]--
	l.orders[o.ID] = o
	l.writes++
	return sale.Reservation{Outcome: sale.Accepted, StockLeft: l.stock[o.ItemID]}, nil
}

func (l ledgerStore) Lookup(_ context.Context, id sale.OrderID) (sale.Order, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, ok := l.orders[id]
	if !ok {
		return sale.Order{}, sale.ErrOrderNotFound
	}
	return o, nil
}

// BuyerOrder finds the user's reserved order for the item, as the ledger's
// one-order-per-user record does.
func (l ledgerStore) BuyerOrder(_ context.Context, item sale.ItemID, user sale.UserID) (sale.OrderID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.orders {
		if o.ItemID == item && o.UserID == user {
			return o.ID, nil
		}
	}
	return "", sale.ErrOrderNotFound
}

// bookStore is the order book: it never confirms anything here.
type bookStore struct{}

func (bookStore) OrdersOf(context.Context, sale.ItemID, sale.UserID) ([]sale.Order, error) {
	return []sale.Order{}, nil
}

func (bookStore) Order(context.Context, sale.OrderID) (sale.Order, error) {
	return sale.Order{}, sale.ErrOrderNotFound
}
func (bookStore) CountStatuses(context.Context, sale.ItemID) (map[sale.OrderStatus]int64, error) {
	return map[sale.OrderStatus]int64{}, nil
}

type nopQueue struct{}

func (nopQueue) Enqueue(sale.Order) {}

// capturedQueue keeps what the purchase use case handed to the publisher.
type capturedQueue struct {
	mu     sync.Mutex
	orders []sale.Order
}

func (q *capturedQueue) Enqueue(o sale.Order) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.orders = append(q.orders, o)
}

type nopCaches struct{}

func (nopCaches) Invalidate(context.Context, sale.ItemID) error      { return nil }
func (nopCaches) InvalidateLater(context.Context, sale.ItemID) error { return nil }

// fixture is the real router over memStore, with one open item (id 1,
// stock 10) and a signer.
type fixture struct {
	h      http.Handler
	store  *memStore
	signer *auth.Signer
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	return newFixtureWith(tb, nopQueue{}, nil)
}

// newFixtureWith is newFixture with the publisher queue given and a chance
// to adjust the HTTP layer's Deps.
func newFixtureWith(tb testing.TB, queue interface{ Enqueue(sale.Order) }, edit func(*Deps)) *fixture {
	tb.Helper()
	st := newMemStore()
	now := func() time.Time { return testNow }
	cat := catalog.New(catalog.Deps{
		Reader: st, Store: catalogStore{st}, Ledger: ledgerStore{st}, Book: bookStore{}, Caches: nopCaches{}, Now: now,
	})
	if _, err := cat.Create(context.Background(), sale.Draft{
		Name: "open", PriceCents: 500, Stock: 10, StartsAt: testNow.Add(-time.Hour), EndsAt: testNow.Add(time.Hour),
	}); err != nil {
		tb.Fatal(err)
	}
	buy := purchase.New(purchase.Deps{
		Items: st, Ledger: ledgerStore{st}, Queue: queue,
		// A generous user budget: tests buy as many times as they like.
		Shield:  shield.New(shield.Options{UserRate: 1e6, UserBurst: 1e6}),
		Pending: ledgerStore{st}, Book: bookStore{}, Buyers: ledgerStore{st}, Now: now,
	})
	signer := auth.NewSigner("test-token-secret-0123456789", time.Hour, now)
	life := lifecycle.New(lifecycle.Deps{Book: lifeBook{st}, Pending: ledgerStore{st}, Ledger: lifeBook{st}, Payments: lifeBook{st}, Now: now})
	d := Deps{
		Purchase: buy, Catalog: cat, Lifecycle: life, Signer: signer, AdminToken: testAdminToken,
		Metrics: metrics.New(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now,
	}
	if edit != nil {
		edit(&d)
	}
	h := New(d)
	return &fixture{h: h, store: st, signer: signer}
}

// serve sends one request to the router. A nil body is no body; headers
// are name, value pairs.
func (f *fixture) serve(method, target string, body io.Reader, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// userToken returns a bearer header value for user.
func (f *fixture) userToken(user sale.UserID) string {
	tok, _ := f.signer.Issue(user)
	return "Bearer " + tok
}

// errorCode checks the house error contract on a response: never 5xx, and
// a status of 400 or more carries a JSON object with a non-empty "error"
// string and a message. It returns the code ("" for a success).
func errorCode(tb testing.TB, rec *httptest.ResponseRecorder) string {
	tb.Helper()
	if rec.Code >= 500 {
		tb.Fatalf("status %d, want no 5xx: %s", rec.Code, rec.Body.String())
	}
	if rec.Code < 400 {
		return ""
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Fatalf("status %d with Content-Type %q, want JSON: %s", rec.Code, ct, rec.Body.String())
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		tb.Fatalf("status %d with a body that is not a JSON object: %q", rec.Code, rec.Body.String())
	}
	code, _ := body["error"].(string)
	msg, _ := body["message"].(string)
	if code == "" || msg == "" {
		tb.Fatalf("status %d without an error code and message: %s", rec.Code, rec.Body.String())
	}
	return code
}
