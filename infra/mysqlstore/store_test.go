package mysqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/go-sql-driver/mysql"

	"seckill/domain/sale"
	"seckill/infra/mysqlstore"
	"seckill/infra/testenv"
	"seckill/migrations"
)

// backend is one database the contract suite runs against. dsn returns a
// fresh, empty database for each call.
type backend struct {
	name    string
	dialect mysqlstore.Dialect
	dsn     func(t testing.TB) string
}

var (
	sqliteBackend = backend{name: "sqlite", dialect: mysqlstore.SQLite, dsn: sqliteDSN}
	mysqlBackend  = backend{name: "mysql", dialect: mysqlstore.MySQL, dsn: hostileMySQLDSN}
	backends      = []backend{sqliteBackend, mysqlBackend}
)

// tokyo is a zone the driver can name in a DSN (time/tzdata embeds it) and
// that is never UTC.
var tokyo = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		panic(err)
	}
	return loc
}()

func sqliteDSN(t testing.TB) string {
	return filepath.Join(t.TempDir(), "seckill.db")
}

// hostileMySQLDSN is a fresh test database whose DSN undoes every parameter
// Open promises to force, so the whole suite also proves that Open forces
// them: without parseTime times fail to scan, without loc=UTC they shift,
// and with clientFoundRows a skipped duplicate would count as inserted.
func hostileMySQLDSN(t testing.TB) string {
	cfg, err := mysql.ParseDSN(testenv.MySQLDSN(t))
	if err != nil {
		t.Fatalf("parse test DSN: %v", err)
	}
	cfg.ParseTime = false
	cfg.Loc = tokyo
	cfg.ClientFoundRows = true
	cfg.InterpolateParams = false
	return cfg.FormatDSN()
}

// open returns a migrated store on a fresh database, closed when t ends.
func (b backend) open(t testing.TB) *mysqlstore.Store {
	t.Helper()
	s := b.openRaw(t, b.dsn(t))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// openRaw opens dsn without migrating.
func (b backend) openRaw(t testing.TB, dsn string) *mysqlstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := mysqlstore.Open(ctx, b.dialect, dsn, mysqlstore.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", b.dialect, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var base = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

func newItem(t testing.TB, s *mysqlstore.Store, stock int64) sale.Item {
	t.Helper()
	it, err := sale.NewItem(sale.Draft{
		Name: "Widget", Description: "A fine widget", PriceCents: 1999, Stock: stock,
		StartsAt: base, EndsAt: base.Add(time.Hour), PurchaseRate: 50,
	})
	if err != nil {
		t.Fatalf("NewItem: %v", err)
	}
	created, err := s.CreateItem(t.Context(), it)
	if err != nil {
		t.Fatalf("CreateItem: %v", err)
	}
	return created
}

func newOrder(it sale.Item, user string) sale.Order {
	return sale.NewOrder(it, sale.UserID(user), time.Now())
}

func ordersFor(it sale.Item, prefix string, n int) []sale.Order {
	out := make([]sale.Order, n)
	for i := range out {
		out[i] = newOrder(it, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func stats(t testing.TB, s *mysqlstore.Store, id sale.ItemID) mysqlstore.ItemStats {
	t.Helper()
	st, err := s.Stats(t.Context(), id)
	if err != nil {
		t.Fatalf("Stats(%d): %v", id, err)
	}
	return st
}

func wantStats(t testing.TB, s *mysqlstore.Store, id sale.ItemID, want mysqlstore.ItemStats) {
	t.Helper()
	if got := stats(t, s, id); got != want {
		t.Fatalf("Stats(%d) = %+v, want %+v", id, got, want)
	}
}

func confirm(t testing.TB, s *mysqlstore.Store, orders []sale.Order, want int) {
	t.Helper()
	n, _, err := s.Confirm(t.Context(), orders)
	if err != nil {
		t.Fatalf("Confirm(%d orders): %v", len(orders), err)
	}
	if n != want {
		t.Fatalf("Confirm(%d orders) inserted %d, want %d", len(orders), n, want)
	}
}

func wantNoOrder(t testing.TB, s *mysqlstore.Store, orders ...sale.Order) {
	t.Helper()
	for _, o := range orders {
		if _, err := s.Order(t.Context(), o.ID); !errors.Is(err, sale.ErrOrderNotFound) {
			t.Fatalf("Order(%s) error = %v, want ErrOrderNotFound", o.ID, err)
		}
	}
}

func equalItem(t testing.TB, got, want sale.Item) {
	t.Helper()
	if got != want {
		t.Fatalf("item mismatch:\n got %+v\nwant %+v", got, want)
	}
}

// TestContract runs every case against SQLite and, when configured, MariaDB.
func TestContract(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, b backend)
	}{
		{"CreateGetList", testCreateGetList},
		{"ItemsOrder", testItemsOrder},
		{"UpdateItem", testUpdateItem},
		{"UpdateItemSerialises", testUpdateItemSerialises},
		{"NotFound", testNotFound},
		{"DeleteItem", testDeleteItem},
		{"ConfirmInserts", testConfirmInserts},
		{"ConfirmEmpty", testConfirmEmpty},
		{"ConfirmRedelivery", testConfirmRedelivery},
		{"ConfirmDuplicatesInBatch", testConfirmDuplicatesInBatch},
		{"ConfirmSpansItems", testConfirmSpansItems},
		{"ConfirmGuard", testConfirmGuard},
		{"ConfirmGuardSecondItem", testConfirmGuardSecondItem},
		{"ConfirmMissingItem", testConfirmMissingItem},
		{"ConfirmInvalidOrder", testConfirmInvalidOrder},
		{"ConfirmOnePerUser", testConfirmOnePerUser},
		{"FailFences", testFailFences},
		{"FailRacesConfirm", testFailRacesConfirm},
		{"ConfirmChunks", testConfirmChunks},
		{"ConfirmRace", testConfirmRace},
		{"ConfirmConcurrentRedelivery", testConfirmConcurrentRedelivery},
		{"ConfirmConflictingUsers", testConfirmConflictingUsers},
		{"Lifecycle", testLifecycle},
		{"PayRacesExpiry", testPayRacesExpiry},
		{"Restock", testRestock},
		{"OrderAndCount", testOrderAndCount},
		{"OrdersOf", testOrdersOf},
		{"MigrateTwice", testMigrateTwice},
		{"MigrateConcurrently", testMigrateConcurrently},
		{"MigrateWaitsForLock", testMigrateWaitsForLock},
		{"ContextCanceled", testContextCanceled},
		{"Blocklist", testBlocklist},
		{"Protection", testProtection},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, b)
				})
			}
		})
	}
}

func testCreateGetList(t *testing.T, b backend) {
	s := b.open(t)
	ctx := t.Context()
	items, err := s.Items(ctx)
	if err != nil || items == nil || len(items) != 0 {
		t.Fatalf("Items on empty store = %v, %v; want empty non-nil", items, err)
	}

	before := time.Now().UTC().Truncate(time.Millisecond)
	draft, err := sale.NewItem(sale.Draft{
		Name: "Ünïcode 🚀 widget", Description: "desc", PriceCents: 12345, Stock: 7,
		StartsAt: base.Add(123456789 * time.Nanosecond), EndsAt: base.Add(2 * time.Hour), PurchaseRate: 9,
	})
	if err != nil {
		t.Fatal(err)
	}
	draft.ID = 42 // ignored
	it, err := s.CreateItem(ctx, draft)
	if err != nil {
		t.Fatalf("CreateItem: %v", err)
	}
	after := time.Now().UTC()
	if it.ID <= 0 || it.ID == draft.ID {
		t.Fatalf("CreateItem ID = %d, want a store-assigned positive id", it.ID)
	}
	if it.CreatedAt.Before(before) || it.CreatedAt.After(after) || !it.UpdatedAt.Equal(it.CreatedAt) {
		t.Fatalf("CreatedAt %v UpdatedAt %v not within [%v, %v]", it.CreatedAt, it.UpdatedAt, before, after)
	}
	if it.CreatedAt.Location() != time.UTC || it.CreatedAt.Nanosecond()%int(time.Millisecond) != 0 {
		t.Fatalf("CreatedAt %v is not UTC milliseconds", it.CreatedAt)
	}
	want := draft
	want.ID, want.CreatedAt, want.UpdatedAt = it.ID, it.CreatedAt, it.UpdatedAt
	equalItem(t, it, want)

	got, err := s.Item(ctx, it.ID)
	if err != nil {
		t.Fatalf("Item: %v", err)
	}
	equalItem(t, got, want)
	if got.StartsAt.Nanosecond() != 123000000 {
		t.Fatalf("StartsAt %v lost its milliseconds", got.StartsAt)
	}

	// The stored text itself is UTC with milliseconds, whatever zone the
	// DSN asked for.
	castStart := "CAST(starts_at AS TEXT)"
	if b.dialect == mysqlstore.MySQL {
		castStart = "CAST(starts_at AS CHAR)"
	}
	var stored string
	if err := s.DB().WithContext(ctx).Raw("SELECT "+castStart+" FROM items WHERE id = ?", int64(it.ID)).Row().Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored, "2030-06-01 12:00:00.123") {
		t.Fatalf("stored starts_at %q, want UTC 2030-06-01 12:00:00.123", stored)
	}

	items, err = s.Items(ctx)
	if err != nil || len(items) != 1 {
		t.Fatalf("Items = %v, %v; want one", items, err)
	}
	equalItem(t, items[0], want)

	bad := draft
	bad.Name = ""
	if _, err := s.CreateItem(ctx, bad); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("CreateItem(empty name) = %v, want ErrInvalid", err)
	}
	bad = draft
	bad.StockLeft = bad.StockTotal + 1
	if _, err := s.CreateItem(ctx, bad); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("CreateItem(stock_left > stock_total) = %v, want ErrInvalid", err)
	}
	if items, _ := s.Items(ctx); len(items) != 1 {
		t.Fatalf("refused creates stored items: %d items", len(items))
	}
}

// testItemsOrder checks StartsAt-then-ID order, including sub-second starts
// whose text forms would sort wrongly if stored carelessly.
func testItemsOrder(t *testing.T, b backend) {
	s := b.open(t)
	ctx := t.Context()
	starts := []time.Duration{2 * time.Hour, 500 * time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond, 0, 1 * time.Millisecond}
	ids := make([]sale.ItemID, len(starts))
	for i, d := range starts {
		it, err := sale.NewItem(sale.Draft{Name: fmt.Sprint("item", i), PriceCents: 1, Stock: 1,
			StartsAt: base.Add(d), EndsAt: base.Add(3 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		created, err := s.CreateItem(ctx, it)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = created.ID
	}
	want := []sale.ItemID{ids[4], ids[5], ids[2], ids[3], ids[1], ids[0]}
	items, err := s.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []sale.ItemID
	for _, it := range items {
		got = append(got, it.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Items order = %v, want %v", got, want)
	}
}

func testUpdateItem(t *testing.T, b backend) {
	s := b.open(t)
	ctx := t.Context()
	it := newItem(t, s, 10)

	name, price := "Renamed", int64(2500)
	newStart := base.Add(-30 * time.Minute).Add(987654321 * time.Nanosecond)
	updated, err := s.UpdateItem(ctx, it.ID, func(cur *sale.Item) error {
		// fn may try to touch stock and identity; the store must ignore that.
		cur.StockLeft, cur.StockTotal, cur.ID = 1, 1, 999
		return cur.Apply(sale.Patch{Name: &name, PriceCents: &price, StartsAt: &newStart})
	})
	if err != nil {
		t.Fatalf("UpdateItem: %v", err)
	}
	want := it
	want.Name, want.PriceCents, want.StartsAt = name, price, newStart.UTC().Truncate(time.Millisecond)
	want.Version = 2
	want.UpdatedAt = updated.UpdatedAt
	equalItem(t, updated, want)
	if updated.UpdatedAt.Before(it.UpdatedAt) {
		t.Fatalf("UpdatedAt went backwards: %v < %v", updated.UpdatedAt, it.UpdatedAt)
	}
	got, err := s.Item(ctx, it.ID)
	if err != nil {
		t.Fatal(err)
	}
	equalItem(t, got, want)

	// fn's error comes back unchanged and nothing is stored.
	boom := errors.New("boom")
	_, err = s.UpdateItem(ctx, it.ID, func(cur *sale.Item) error {
		cur.Name = "should not stick"
		cur.Version = 77
		return boom
	})
	if err != boom { //nolint:errorlint // identity on purpose: fn's error must come back unwrapped
		t.Fatalf("UpdateItem(fn error) = %v, want the very error fn returned", err)
	}
	got, _ = s.Item(ctx, it.ID)
	equalItem(t, got, want)

	// A result that breaks the item rules is refused.
	_, err = s.UpdateItem(ctx, it.ID, func(cur *sale.Item) error {
		cur.Name = ""
		return nil
	})
	if !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("UpdateItem(invalid result) = %v, want ErrInvalid", err)
	}
	got, _ = s.Item(ctx, it.ID)
	equalItem(t, got, want)
}

// testUpdateItemSerialises runs 20 read-modify-write updates at once; only a
// transaction that holds the row keeps every increment.
func testUpdateItemSerialises(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 10)
	const n = 20
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			_, err := s.UpdateItem(t.Context(), it.ID, func(cur *sale.Item) error {
				rate := cur.PurchaseRate + 1
				return cur.Apply(sale.Patch{PurchaseRate: &rate})
			})
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("UpdateItem: %v", err)
		}
	}
	got, err := s.Item(t.Context(), it.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PurchaseRate != it.PurchaseRate+n || got.Version != it.Version+n {
		t.Fatalf("after %d concurrent increments: rate %d version %d, want %d and %d",
			n, got.PurchaseRate, got.Version, it.PurchaseRate+n, it.Version+n)
	}
}

func testNotFound(t *testing.T, b backend) {
	s := b.open(t)
	ctx := t.Context()
	const missing = sale.ItemID(987654)
	if _, err := s.Item(ctx, missing); !errors.Is(err, sale.ErrNotFound) {
		t.Errorf("Item: %v, want ErrNotFound", err)
	}
	called := false
	if _, err := s.UpdateItem(ctx, missing, func(*sale.Item) error { called = true; return nil }); !errors.Is(err, sale.ErrNotFound) || called {
		t.Errorf("UpdateItem: %v (fn called %v), want ErrNotFound without calling fn", err, called)
	}
	if err := s.DeleteItem(ctx, missing); !errors.Is(err, sale.ErrNotFound) {
		t.Errorf("DeleteItem: %v, want ErrNotFound", err)
	}
	if _, err := s.Restock(ctx, missing, 5, "k"); !errors.Is(err, sale.ErrNotFound) {
		t.Errorf("Restock: %v, want ErrNotFound", err)
	}
	if _, err := s.Stats(ctx, missing); !errors.Is(err, sale.ErrNotFound) {
		t.Errorf("Stats: %v, want ErrNotFound", err)
	}
	id := sale.NewOrderID(missing, time.Now())
	if _, err := s.Order(ctx, id); !errors.Is(err, sale.ErrOrderNotFound) {
		t.Errorf("Order: %v, want ErrOrderNotFound", err)
	}
	if n, err := s.CountConfirmed(ctx, missing); err != nil || n != 0 {
		t.Errorf("CountConfirmed = %d, %v; want 0, nil", n, err)
	}
}

func testDeleteItem(t *testing.T, b backend) {
	s := b.open(t)
	ctx := t.Context()
	keep := newItem(t, s, 5)
	gone := newItem(t, s, 5)
	if err := s.DeleteItem(ctx, gone.ID); err != nil {
		t.Fatalf("DeleteItem(no orders): %v", err)
	}
	if _, err := s.Item(ctx, gone.ID); !errors.Is(err, sale.ErrNotFound) {
		t.Fatalf("Item after delete: %v, want ErrNotFound", err)
	}
	confirm(t, s, []sale.Order{newOrder(keep, "u1")}, 1)
	if err := s.DeleteItem(ctx, keep.ID); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("DeleteItem(with orders) = %v, want ErrInvalid", err)
	}
	if _, err := s.Item(ctx, keep.ID); err != nil {
		t.Fatalf("item with orders was deleted: %v", err)
	}
	// A new item never reuses the deleted one's id: ledger keys are named by id.
	again := newItem(t, s, 5)
	if again.ID <= gone.ID {
		t.Fatalf("new item id %d reuses or precedes deleted id %d", again.ID, gone.ID)
	}
}

func testConfirmInserts(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 10)
	orders := ordersFor(it, "u", 3)
	confirm(t, s, orders, 3)
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 10, StockLeft: 7, Confirmed: 3})
	got, err := s.Item(t.Context(), it.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.StockLeft != 7 || got.Version != it.Version {
		t.Fatalf("item after confirm: stock_left %d version %d, want 7 and %d (stock is not item data)", got.StockLeft, got.Version, it.Version)
	}
}

func testConfirmEmpty(t *testing.T, b backend) {
	s := b.open(t)
	confirm(t, s, nil, 0)
}

func testConfirmRedelivery(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 10)
	orders := ordersFor(it, "u", 4)
	confirm(t, s, orders, 4)
	confirm(t, s, orders, 0)
	// A redelivered batch that carries one new order takes one unit only.
	more := append(orders, newOrder(it, "late"))
	confirm(t, s, more, 1)
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 10, StockLeft: 5, Confirmed: 5})
}

func testConfirmDuplicatesInBatch(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 10)
	a, c := newOrder(it, "a"), newOrder(it, "c")
	aAgain := a
	aAgain.UserID = "someone-else" // same order id; the first occurrence wins
	confirm(t, s, []sale.Order{a, a, c, aAgain}, 2)
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 10, StockLeft: 8, Confirmed: 2})
	got, err := s.Order(t.Context(), a.ID)
	if err != nil || got.UserID != "a" {
		t.Fatalf("Order(a) = %+v, %v; want the first occurrence", got, err)
	}
}

func testConfirmSpansItems(t *testing.T, b backend) {
	s := b.open(t)
	one, two := newItem(t, s, 5), newItem(t, s, 5)
	earlier := newOrder(one, "x")
	confirm(t, s, []sale.Order{earlier}, 1)
	batch := []sale.Order{newOrder(two, "p"), newOrder(one, "q"), newOrder(two, "r"), earlier}
	confirm(t, s, batch, 3)
	wantStats(t, s, one.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 3, Confirmed: 2})
	wantStats(t, s, two.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 3, Confirmed: 2})
}

func testConfirmGuard(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 3)
	orders := ordersFor(it, "u", 5)
	n, _, err := s.Confirm(t.Context(), orders)
	if !errors.Is(err, sale.ErrStockExhausted) || n != 0 {
		t.Fatalf("Confirm(5 orders, stock 3) = %d, %v; want 0, ErrStockExhausted", n, err)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 3, StockLeft: 3, Confirmed: 0})
	wantNoOrder(t, s, orders...)
	// The guard counts only new orders: three of them still fit exactly.
	confirm(t, s, orders[:3], 3)
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 3, StockLeft: 0, Confirmed: 3})
	confirm(t, s, orders[:3], 0)
}

// testConfirmGuardSecondItem fails on the second item of a batch and checks
// that the first item's inserts and deduction were rolled back too.
func testConfirmGuardSecondItem(t *testing.T, b backend) {
	s := b.open(t)
	first, second := newItem(t, s, 5), newItem(t, s, 1)
	batch := append(ordersFor(first, "f", 2), ordersFor(second, "s", 2)...)
	if _, _, err := s.Confirm(t.Context(), batch); !errors.Is(err, sale.ErrStockExhausted) {
		t.Fatalf("Confirm = %v, want ErrStockExhausted", err)
	}
	wantStats(t, s, first.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 5})
	wantStats(t, s, second.ID, mysqlstore.ItemStats{StockTotal: 1, StockLeft: 1})
	wantNoOrder(t, s, batch...)
}

func testConfirmMissingItem(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 5)
	ghost := sale.Item{ID: 987654, PriceCents: 100}
	batch := []sale.Order{newOrder(it, "a"), newOrder(ghost, "b")}
	n, _, err := s.Confirm(t.Context(), batch)
	if !errors.Is(err, sale.ErrNotFound) || n != 0 {
		t.Fatalf("Confirm(missing item) = %d, %v; want 0, ErrNotFound", n, err)
	}
	if !strings.Contains(err.Error(), "987654") {
		t.Fatalf("error %q does not name the missing item", err)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 5})
	wantNoOrder(t, s, batch...)
}

func testConfirmInvalidOrder(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 5)
	good, bad := newOrder(it, "good"), newOrder(it, "bad")
	bad.UserID = "not a user id!"
	if _, _, err := s.Confirm(t.Context(), []sale.Order{good, bad}); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("Confirm(invalid order) = %v, want ErrInvalid", err)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 5})
	wantNoOrder(t, s, good)
}

// testConfirmOnePerUser: an order whose user already holds another live
// order for the item is refused, recorded as failed (so it can never be
// confirmed later) and reported with Refused set; it takes no stock.
func testConfirmOnePerUser(t *testing.T, b backend) {
	s := b.open(t)
	it, other := newItem(t, s, 5), newItem(t, s, 5)
	first := newOrder(it, "alice")
	confirm(t, s, []sale.Order{first}, 1)
	second := newOrder(it, "alice") // same user, same item, new order id
	n, fates, err := s.Confirm(t.Context(), []sale.Order{second})
	if err != nil || n != 0 {
		t.Fatalf("Confirm(second order of alice) = %d, %v; want 0, nil", n, err)
	}
	if f := fates[second.ID]; f.Status != sale.OrderFailed || !f.Refused || f.Reason == "" {
		t.Fatalf("fate of the refused order = %+v, want failed, refused, with a reason", f)
	}
	if got, err := s.Order(t.Context(), second.ID); err != nil || got.Status != sale.OrderFailed {
		t.Fatalf("Order(refused) = %+v, %v; want failed", got, err)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 4, Confirmed: 1, Failed: 1})
	// Redelivered, the refused order stays failed and is not refused again.
	n, fates, err = s.Confirm(t.Context(), []sale.Order{second, first})
	if err != nil || n != 0 || fates[second.ID].Status != sale.OrderFailed || fates[second.ID].Refused || fates[first.ID].Status != sale.OrderConfirmed {
		t.Fatalf("redelivery = %d, %+v, %v", n, fates, err)
	}
	// Two orders of one user in one batch: the first by id wins.
	x, y := newOrder(it, "bob"), newOrder(it, "bob")
	if y.ID < x.ID {
		x, y = y, x
	}
	n, fates, err = s.Confirm(t.Context(), []sale.Order{y, x})
	if err != nil || n != 1 || fates[x.ID].Status != sale.OrderConfirmed || !fates[y.ID].Refused {
		t.Fatalf("two orders of bob = %d, %+v, %v", n, fates, err)
	}
	// User ids are case-sensitive, and the rule is per item.
	confirm(t, s, []sale.Order{newOrder(it, "Alice"), newOrder(other, "alice")}, 2)
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 2, Confirmed: 3, Failed: 2})
	wantStats(t, s, other.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 4, Confirmed: 1})
}

// testFailFences: whoever writes an order's row first decides its fate.
// Failing an undecided order makes a later Confirm of it a no-op that
// reports it failed; failing a confirmed order changes nothing.
func testFailFences(t *testing.T, b backend) {
	s := b.open(t)
	ctx := t.Context()
	it := newItem(t, s, 5)
	early, late := newOrder(it, "early"), newOrder(it, "late")
	confirm(t, s, []sale.Order{early}, 1)
	fates, err := s.Fail(ctx, []sale.Order{early, late}, "gave up")
	if err != nil {
		t.Fatal(err)
	}
	if fates[early.ID].Status != sale.OrderConfirmed || fates[late.ID].Status != sale.OrderFailed || fates[late.ID].Reason != "gave up" {
		t.Fatalf("Fail fates = %+v; want early confirmed, late failed", fates)
	}
	n, cf, err := s.Confirm(ctx, []sale.Order{late})
	if err != nil || n != 0 || cf[late.ID].Status != sale.OrderFailed || cf[late.ID].Refused {
		t.Fatalf("Confirm(failed order) = %d, %+v, %v; want 0 and failed", n, cf, err)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 4, Confirmed: 1, Failed: 1})
	// A failed order holds no slot: its user may buy again.
	confirm(t, s, []sale.Order{newOrder(it, "late")}, 1)
	got, err := s.Fates(ctx, []sale.OrderID{early.ID, late.ID, "1-0000000000000000000000000000"})
	if err != nil || len(got) != 2 || got[early.ID].Status != sale.OrderConfirmed || got[late.ID].Status != sale.OrderFailed {
		t.Fatalf("Fates = %+v, %v", got, err)
	}
	// A very long reason is cut to the column, not refused.
	long := newOrder(it, "long")
	if f, err := s.Fail(ctx, []sale.Order{long}, strings.Repeat("é", 400)); err != nil || f[long.ID].Status != sale.OrderFailed {
		t.Fatalf("Fail(long reason) = %+v, %v", f, err)
	}
	holders, err := s.Holders(ctx, it.ID)
	if err != nil || len(holders) != 2 {
		t.Fatalf("Holders = %+v, %v; want early and late's second order", holders, err)
	}
}

// testFailRacesConfirm releases 20 goroutines at once, half confirming and
// half failing the same orders: every order ends with exactly one fate, the
// stock taken equals the orders confirmed, and each caller is told the fate
// that stands.
func testFailRacesConfirm(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 100)
	orders := ordersFor(it, "r", 50)
	start := make(chan struct{})
	var (
		mu   sync.Mutex
		seen = map[sale.OrderID]map[sale.OrderStatus]bool{}
		wg   sync.WaitGroup
	)
	record := func(fates map[sale.OrderID]sale.Fate) {
		mu.Lock()
		defer mu.Unlock()
		for id, f := range fates {
			if seen[id] == nil {
				seen[id] = map[sale.OrderStatus]bool{}
			}
			seen[id][f.Status] = true
		}
	}
	for w := range 20 {
		wg.Go(func() {
			<-start
			if w%2 == 0 {
				_, fates, err := s.Confirm(t.Context(), orders)
				if err != nil {
					t.Errorf("Confirm: %v", err)
				}
				record(fates)
				return
			}
			fates, err := s.Fail(t.Context(), orders, "race")
			if err != nil {
				t.Errorf("Fail: %v", err)
			}
			record(fates)
		})
	}
	close(start)
	wg.Wait()
	confirmed := 0
	for _, o := range orders {
		if len(seen[o.ID]) != 1 {
			t.Fatalf("order %s was reported with fates %v; want exactly one", o.ID, seen[o.ID])
		}
		if seen[o.ID][sale.OrderConfirmed] {
			confirmed++
		}
	}
	st := stats(t, s, it.ID)
	if st.Confirmed != int64(confirmed) || st.StockLeft != 100-int64(confirmed) || st.Failed != int64(len(orders)-confirmed) {
		t.Fatalf("stats %+v after the race; callers saw %d confirmed", st, confirmed)
	}
}

// testConfirmChunks confirms more orders than one INSERT carries.
func testConfirmChunks(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 750)
	orders := ordersFor(it, "u", 750)
	confirm(t, s, orders, 750)
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 750, StockLeft: 0, Confirmed: 750})
	confirm(t, s, orders, 0)
}

// testConfirmRace releases 20 batches of 10 at once on a stock of 100:
// exactly ten batches fit, the rest must be refused whole.
func testConfirmRace(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 100)
	const workers, per = 20, 10
	start := make(chan struct{})
	type result struct {
		n   int
		err error
	}
	results := make(chan result, workers)
	var wg sync.WaitGroup
	for w := range workers {
		batch := ordersFor(it, fmt.Sprintf("w%d-", w), per)
		wg.Go(func() {
			<-start
			n, _, err := s.Confirm(t.Context(), batch)
			results <- result{n, err}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	var won, refused int
	for r := range results {
		switch {
		case r.err == nil && r.n == per:
			won++
		case errors.Is(r.err, sale.ErrStockExhausted) && r.n == 0:
			refused++
		default:
			t.Fatalf("Confirm = %d, %v; want %d or ErrStockExhausted", r.n, r.err, per)
		}
	}
	if won != 10 || refused != 10 {
		t.Fatalf("won %d, refused %d; want 10 and 10", won, refused)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 100, StockLeft: 0, Confirmed: 100})
}

// testConfirmConcurrentRedelivery delivers the same batch to 10 workers at
// once: it must be inserted, and its stock taken, exactly once.
func testConfirmConcurrentRedelivery(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 100)
	batch := ordersFor(it, "u", 50)
	const workers = 10
	start := make(chan struct{})
	var (
		mu    sync.Mutex
		total int
		errs  []error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			<-start
			n, _, err := s.Confirm(t.Context(), batch)
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("Confirm errors: %v", errs)
	}
	if total != len(batch) {
		t.Fatalf("inserted %d in total, want %d", total, len(batch))
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 100, StockLeft: 50, Confirmed: 50})
}

// testConfirmConflictingUsers races batches that hold different order ids
// for the same users, each batch meeting the users in a different order.
// On MySQL that is the textbook deadlock on the (user_id, item_id) key;
// Confirm must retry its victim, and every user must still end up with
// exactly one order.
func testConfirmConflictingUsers(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 1000)
	const workers, users = 6, 40
	batches := make([][]sale.Order, workers)
	for w := range batches {
		for u := range users {
			// Order ids sort by creation, so each worker's batch meets the
			// users in its own rotation of the same ring.
			batches[w] = append(batches[w], newOrder(it, fmt.Sprintf("u%02d", (u+w*users/workers)%users)))
		}
	}
	start := make(chan struct{})
	var (
		mu    sync.Mutex
		total int
		errs  []error
		wg    sync.WaitGroup
	)
	for _, batch := range batches {
		wg.Go(func() {
			<-start
			n, _, err := s.Confirm(t.Context(), batch)
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("Confirm errors: %v", errs)
	}
	if total != users {
		t.Fatalf("inserted %d in total, want %d (one per user)", total, users)
	}
	// Every other order was refused by the one-per-user key and recorded
	// as failed.
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 1000, StockLeft: 1000 - users, Confirmed: users, Failed: workers*users - users})
}

func testRestock(t *testing.T, b backend) {
	s := b.open(t)
	ctx := t.Context()
	it := newItem(t, s, 10)
	confirm(t, s, ordersFor(it, "u", 4), 4)

	applied, err := s.Restock(ctx, it.ID, 5, "restock-1")
	if err != nil || !applied {
		t.Fatalf("Restock = %v, %v; want applied", applied, err)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 15, StockLeft: 11, Confirmed: 4})
	applied, err = s.Restock(ctx, it.ID, 5, "restock-1")
	if err != nil || applied {
		t.Fatalf("repeat Restock = %v, %v; want not applied", applied, err)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 15, StockLeft: 11, Confirmed: 4})

	// Keys are case-sensitive and belong to one item.
	other := newItem(t, s, 1)
	for _, c := range []struct {
		item sale.ItemID
		key  string
	}{{it.ID, "Restock-1"}, {it.ID, "restock-x"}, {other.ID, "restock-1"}, {it.ID, "restock-y"}} {
		if applied, err := s.Restock(ctx, c.item, 1, c.key); err != nil || !applied {
			t.Fatalf("Restock(item %d, key %q) = %v, %v; want applied", c.item, c.key, applied, err)
		}
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 18, StockLeft: 14, Confirmed: 4})
	wantStats(t, s, other.ID, mysqlstore.ItemStats{StockTotal: 2, StockLeft: 2})
	// The same key with another amount is a client bug, not a repeat.
	if _, err := s.Restock(ctx, it.ID, 7, "restock-1"); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("Restock(reused key, other amount) = %v, want ErrInvalid", err)
	}
	// A key is required, and must be visible ASCII.
	for _, key := range []string{"", "with space", "naïve", "\xff", strings.Repeat("k", 101)} {
		if _, err := s.Restock(ctx, it.ID, 1, key); !errors.Is(err, sale.ErrInvalid) {
			t.Fatalf("Restock(key %q) = %v, want ErrInvalid", key, err)
		}
	}
	if keys, err := s.RestockKeys(ctx, it.ID); err != nil || len(keys) != 4 {
		t.Fatalf("RestockKeys = %q, %v; want the item's 4 keys", keys, err)
	}

	for _, add := range []int64{0, -1, sale.MaxStock + 1} {
		if _, err := s.Restock(ctx, it.ID, add, "bad"); !errors.Is(err, sale.ErrInvalid) {
			t.Fatalf("Restock(add %d) = %v, want ErrInvalid", add, err)
		}
	}
	// A key spent on a failed restock stays unused.
	if _, err := s.Restock(ctx, 987654, 2, "restock-2"); !errors.Is(err, sale.ErrNotFound) {
		t.Fatalf("Restock(missing item) = %v, want ErrNotFound", err)
	}
	if applied, err := s.Restock(ctx, it.ID, 2, "restock-2"); err != nil || !applied {
		t.Fatalf("Restock after failed use of key = %v, %v; want applied", applied, err)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 20, StockLeft: 16, Confirmed: 4})
	got, _ := s.Item(ctx, it.ID)
	if got.StockTotal != 20 || got.StockLeft != 16 {
		t.Fatalf("Item stock = %d/%d, want 20/16", got.StockLeft, got.StockTotal)
	}
}

func testOrderAndCount(t *testing.T, b backend) {
	s := b.open(t)
	ctx := t.Context()
	it, other := newItem(t, s, 10), newItem(t, s, 10)
	o := newOrder(it, "buyer.1")
	confirm(t, s, []sale.Order{o, newOrder(it, "buyer.2"), newOrder(other, "buyer.1")}, 3)
	got, err := s.Order(ctx, o.ID)
	if err != nil {
		t.Fatalf("Order: %v", err)
	}
	want := o
	want.Status = sale.OrderConfirmed
	// pay_by is the store's confirmation time plus the window, so it can
	// only be checked for range here (testLifecycle checks it).
	if got.PayBy.IsZero() {
		t.Fatalf("confirmed order has no pay_by: %+v", got)
	}
	want.PayBy = got.PayBy
	if got != want {
		t.Fatalf("Order = %+v, want %+v", got, want)
	}
	for id, wantN := range map[sale.ItemID]int64{it.ID: 2, other.ID: 1} {
		if n, err := s.CountConfirmed(ctx, id); err != nil || n != wantN {
			t.Fatalf("CountConfirmed(%d) = %d, %v; want %d", id, n, err, wantN)
		}
	}
}

// testOrdersOf: a user's decided orders for one item, newest first; other
// users' orders and the user's orders for other items stay out.
func testOrdersOf(t *testing.T, b backend) {
	s := b.open(t)
	ctx := t.Context()
	it, other := newItem(t, s, 10), newItem(t, s, 10)
	if got, err := s.OrdersOf(ctx, it.ID, "alice"); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("OrdersOf before any order = %#v, %v; want an empty slice", got, err)
	}
	first := newOrder(it, "alice")
	confirm(t, s, []sale.Order{first, newOrder(it, "bob"), newOrder(other, "alice")}, 3)
	second := newOrder(it, "alice") // refused by the one-order rule: failed
	if _, _, err := s.Confirm(ctx, []sale.Order{second}); err != nil {
		t.Fatal(err)
	}
	got, err := s.OrdersOf(ctx, it.ID, "alice")
	if err != nil || len(got) != 2 {
		t.Fatalf("OrdersOf(alice) = %+v, %v; want her two orders", got, err)
	}
	if got[0].ID != second.ID || got[0].Status != sale.OrderFailed || got[1].ID != first.ID || got[1].Status != sale.OrderConfirmed {
		t.Fatalf("OrdersOf(alice) = %+v; want the failed %s, then the confirmed %s", got, second.ID, first.ID)
	}
	for _, o := range got {
		if o.UserID != "alice" || o.ItemID != it.ID {
			t.Fatalf("OrdersOf(alice, %d) returned %+v", it.ID, o)
		}
	}
	// User ids are case-sensitive.
	if got, err := s.OrdersOf(ctx, it.ID, "Alice"); err != nil || len(got) != 0 {
		t.Fatalf("OrdersOf(Alice) = %+v, %v; want none", got, err)
	}
}

func gooseVersions(t testing.TB, s *mysqlstore.Store) (rows int64, latest int64) {
	t.Helper()
	err := s.DB().WithContext(t.Context()).
		Raw("SELECT COUNT(*), COALESCE(MAX(version_id), 0) FROM goose_db_version").
		Row().Scan(&rows, &latest)
	if err != nil {
		t.Fatalf("read goose_db_version: %v", err)
	}
	return rows, latest
}

func testMigrateTwice(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 5)
	confirm(t, s, []sale.Order{newOrder(it, "u")}, 1)
	rows, latest := gooseVersions(t, s)
	if latest < 1 {
		t.Fatalf("latest applied version %d, want >= 1", latest)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if r, l := gooseVersions(t, s); r != rows || l != latest {
		t.Fatalf("second Migrate changed goose_db_version: %d rows v%d, was %d rows v%d", r, l, rows, latest)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 4, Confirmed: 1})
}

// testMigrateConcurrently starts several stores on one empty database and
// migrates them at once, as several app instances do on first deploy.
func testMigrateConcurrently(t *testing.T, b backend) {
	if b.dialect != mysqlstore.MySQL {
		t.Skip("Migrate is documented as single-process on SQLite")
	}
	dsn := b.dsn(t)
	const n = 8
	stores := make([]*mysqlstore.Store, n)
	for i := range stores {
		stores[i] = b.openRaw(t, dsn)
	}
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			<-start
			errs <- s.Migrate(t.Context())
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate: %v", err)
		}
	}
	// goose records version 0 when it creates its table, then one row per
	// applied migration: any double application shows up as extra rows.
	names, err := fs.Glob(migrations.FS, "mysql/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("list migrations: %v %v", names, err)
	}
	// The latest version is the highest file number, not the file count:
	// numbers are taken by parallel branches and may arrive with a gap.
	files := int64(len(names))
	var highest int64
	for _, name := range names {
		var v int64
		if _, err := fmt.Sscanf(path.Base(name), "%05d_", &v); err == nil && v > highest {
			highest = v
		}
	}
	if rows, latest := gooseVersions(t, stores[0]); rows != files+1 || latest != highest {
		t.Fatalf("goose_db_version has %d rows, latest v%d; want %d rows, v%d", rows, latest, files+1, highest)
	}
	newItem(t, stores[n-1], 1)
}

// testMigrateWaitsForLock holds the migration lock from another session,
// as a process mid-migration would, and checks that Migrate waits for it
// rather than migrating alongside. The lock's name is a protocol between
// processes (and versions of this binary), so the test spells it out.
func testMigrateWaitsForLock(t *testing.T, b backend) {
	if b.dialect != mysqlstore.MySQL {
		t.Skip("the migration lock is MySQL's GET_LOCK")
	}
	dsn := b.dsn(t)
	holder, s := b.openRaw(t, dsn), b.openRaw(t, dsn)
	sqlDB, err := holder.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlDB.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const name = "CONCAT('seckill.migrate.', MD5(COALESCE(DATABASE(), '')))"
	var got int
	if err := conn.QueryRowContext(t.Context(), "SELECT GET_LOCK("+name+", 0)").Scan(&got); err != nil || got != 1 {
		t.Fatalf("take migration lock: %d, %v", got, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if err := s.Migrate(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Migrate while the lock is held = %v, want it to wait until the deadline", err)
	}
	var tables int
	if err := conn.QueryRowContext(t.Context(),
		"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("Migrate created %d tables (%v) while another process held the lock", tables, err)
	}
	if _, err := conn.ExecContext(t.Context(), "DO RELEASE_LOCK("+name+")"); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate after release: %v", err)
	}
	newItem(t, s, 1)
}

func testContextCanceled(t *testing.T, b backend) {
	s := b.open(t)
	it := newItem(t, s, 5)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Item(ctx, it.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Item(canceled) = %v, want context.Canceled", err)
	}
	if _, _, err := s.Confirm(ctx, []sale.Order{newOrder(it, "u")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Confirm(canceled) = %v, want context.Canceled", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping(canceled) = %v, want context.Canceled", err)
	}
	if _, err := mysqlstore.Open(ctx, b.dialect, b.dsn(t), mysqlstore.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Open(canceled) = %v, want context.Canceled", err)
	}
	wantStats(t, s, it.ID, mysqlstore.ItemStats{StockTotal: 5, StockLeft: 5})
}
