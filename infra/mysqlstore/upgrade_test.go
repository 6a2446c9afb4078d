package mysqlstore_test

import (
	"database/sql"
	"io/fs"
	"testing"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"

	"seckill/domain/sale"
	"seckill/infra/mysqlstore"
	"seckill/infra/testenv"
	"seckill/migrations"
)

// TestUpgradeMakesEarlierConfirmedOrdersPaid applies the migrations up to
// 00002, records a confirmed order as the earlier schema did (no payment
// step, no pay_by), then migrates to the latest: the order becomes paid, so
// it keeps its unit and is neither stuck confirmed nor expired.
func TestUpgradeMakesEarlierConfirmedOrdersPaid(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			// One fresh database, reached with a plain DSN: the old schema
			// is written by hand, the way the earlier binary left it.
			driver, gd, folder := sqlite.DriverName, goose.DialectSQLite3, "sqlite"
			var dsn string
			if b.dialect == mysqlstore.MySQL {
				driver, gd, folder, dsn = "mysql", goose.DialectMySQL, "mysql", testenv.MySQLDSN(t)
			} else {
				dsn = b.dsn(t)
			}
			rawDSN := dsn
			db, err := sql.Open(driver, rawDSN)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fsys, _ := fs.Sub(migrations.FS, folder)
			p, err := goose.NewProvider(gd, db, fsys, goose.WithDisableGlobalRegistry(true))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(t.Context(), 2); err != nil {
				t.Fatalf("migrate to 00002: %v", err)
			}
			id := "1-0123456789abcdef0123456789ab"
			for _, q := range []string{
				`INSERT INTO items (id, name, description, price_cents, stock_total, stock_left, starts_at, ends_at, created_at, updated_at)
				 VALUES (1, 'old', '', 100, 2, 1, '2030-01-01 00:00:00', '2030-01-02 00:00:00', '2030-01-01 00:00:00', '2030-01-01 00:00:00')`,
				`INSERT INTO orders (order_id, item_id, user_id, holder, price_cents, status, reason, created_at, confirmed_at, updated_at)
				 VALUES ('` + id + `', 1, 'early', 'early', 100, 'confirmed', '', '2030-01-01 00:00:01', '2030-01-01 00:00:02', '2030-01-01 00:00:02')`,
			} {
				if _, err := db.ExecContext(t.Context(), q); err != nil {
					t.Fatalf("seed the old schema: %v", err)
				}
			}
			s := b.openRaw(t, dsn)
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			o, err := s.Order(t.Context(), sale.OrderID(id))
			if err != nil {
				t.Fatal(err)
			}
			if o.Status != sale.OrderPaid || o.PaidAt.IsZero() {
				t.Fatalf("an order confirmed before the upgrade is %+v; want paid", o)
			}
			if n, err := s.CountHeld(t.Context(), 1); err != nil || n != 1 {
				t.Fatalf("CountHeld = %d, %v; want the old order still holding its unit", n, err)
			}
		})
	}
}
