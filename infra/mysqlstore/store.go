// Package mysqlstore is the durable store of item data and confirmed orders:
// it implements sale.Catalog and sale.OrderBook with gorm on MySQL/MariaDB,
// and on an embedded SQLite file that stands in for MySQL in development and
// tests. The same code serves both; the few dialect differences (row locks,
// connection pool, DSN parameters, the migration lock) are handled inside.
//
// The schema is the goose migrations in seckill/migrations, applied by
// Migrate; the store never uses gorm's AutoMigrate. Rows are private to this
// package and every timestamp is stored UTC with millisecond precision.
// Driver errors come back as sale sentinel errors wrapped with %w; context
// errors come back as context.Canceled or context.DeadlineExceeded.
package mysqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/go-sql-driver/mysql"
	"github.com/pressly/goose/v3"
	"go.opentelemetry.io/otel/trace"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"seckill/domain/sale"
	"seckill/migrations"
)

// Dialect names the database behind a Store.
type Dialect string

// The supported dialects.
const (
	// MySQL is MySQL 8 or MariaDB 10.5+, reached with a go-sql-driver DSN.
	MySQL Dialect = "mysql"
	// SQLite is an embedded SQLite file, reached with a file path or
	// "file:" URI.
	SQLite Dialect = "sqlite"
)

// Options tunes the connection pool. A zero field takes the default named on
// it; the zero Options is a sound production setting.
type Options struct {
	// MaxOpenConns caps open connections to MySQL; default 20. SQLite always
	// uses exactly one, its single writer.
	MaxOpenConns int
	// MaxIdleConns caps idle MySQL connections; default MaxOpenConns, so a
	// burst does not close and redial connections.
	MaxIdleConns int
	// ConnMaxLifetime recycles MySQL connections after this long; default
	// 30 minutes, below typical proxy and server idle cut-offs.
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes MySQL connections idle this long; default 5
	// minutes.
	ConnMaxIdleTime time.Duration
	// PaymentWindow is how long a confirmed order holds its unit awaiting
	// payment: Confirm sets pay_by = confirmed_at + PaymentWindow. Default
	// 15 minutes.
	PaymentWindow time.Duration
	// Tracing, when set, gives every statement a span from this provider
	// (tracing.ChildrenOnly: only within a traced request or batch).
	Tracing trace.TracerProvider
}

// Pool defaults, applied where Options leaves a zero.
const (
	defaultMaxOpenConns    = 20
	defaultConnMaxLifetime = 30 * time.Minute
	defaultConnMaxIdleTime = 5 * time.Minute
	// DefaultPaymentWindow is the payment window when Options leaves it zero.
	DefaultPaymentWindow = 15 * time.Minute
	// sqliteBusyTimeoutMS is how long SQLite waits for another process's
	// write lock before failing with SQLITE_BUSY.
	sqliteBusyTimeoutMS = 5000
)

// Store is the gorm-backed Catalog and OrderBook. It is safe for concurrent
// use and must be closed with Close.
type Store struct {
	db    *gorm.DB
	sqlDB *sql.DB
	// connector dials MySQL with the forced DSN parameters; Migrate opens
	// a short-lived pool from it. Nil for SQLite.
	connector driver.Connector
	dialect   Dialect
	// now stamps created_at, updated_at and confirmed_at; always UTC,
	// truncated to the millisecond the columns hold.
	now func() time.Time
	// payWindow is added to confirmed_at to make pay_by.
	payWindow time.Duration
}

var (
	_ sale.Catalog   = (*Store)(nil)
	_ sale.OrderBook = (*Store)(nil)
)

// Open connects to the database, applies the pool settings and pings it with
// ctx; it does not migrate (call Migrate). On success the caller owns the
// Store and must Close it.
//
// For MySQL, Open forces the DSN parameters the store relies on, whatever
// the DSN says: parseTime=true and loc=UTC (times in and out are UTC),
// interpolateParams=true (one round trip per statement instead of three;
// the driver refuses it, and Open fails, for the few collations where
// client-side escaping is unsafe) and clientFoundRows=false (so an INSERT ... ON DUPLICATE KEY UPDATE
// id=id reports 0 affected rows for a skipped duplicate, which Confirm
// counts on). A DSN without a dial timeout gets 10 seconds.
//
// For SQLite, Open appends pragmas for WAL journaling, a busy timeout,
// foreign keys and synchronous=NORMAL (durable across a process crash; the
// last commits can be lost on power failure, acceptable for the stand-in),
// makes transactions BEGIN IMMEDIATE, and keeps one connection that is never
// recycled: that single writer serialises every transaction, which is what
// makes UpdateItem and Confirm safe without row locks, and a never-recycled
// connection also keeps a ":memory:" database alive.
func Open(ctx context.Context, dialect Dialect, dsn string, opts Options) (*Store, error) {
	var (
		sqlDB     *sql.DB
		connector driver.Connector
		dialector gorm.Dialector
		err       error
	)
	switch dialect {
	case MySQL:
		sqlDB, connector, dialector, err = openMySQL(dsn, opts.withDefaults())
	case SQLite:
		sqlDB, dialector, err = openSQLite(dsn)
	default:
		return nil, &sale.ValidationError{Field: "dialect", Reason: fmt.Sprintf("must be %q or %q, not %q", MySQL, SQLite, dialect)}
	}
	if err != nil {
		return nil, err
	}
	now := func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, translate(ctx, "ping", err)
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		// Every write path opens its own transaction where it needs one;
		// gorm's implicit per-statement transaction would only add round
		// trips.
		SkipDefaultTransaction: true,
		// Open has pinged with ctx already.
		DisableAutomaticPing: true,
		NowFunc:              now,
		// Errors are returned, translated, to the caller, who decides what
		// to log; gorm's own logger would print "record not found" on
		// every miss.
		Logger: logger.Discard,
	})
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("mysqlstore: gorm open: %w", err)
	}
	if opts.Tracing != nil {
		if err := db.Use(tracingPlugin{tracer: opts.Tracing.Tracer("seckill/infra/mysqlstore"), dialect: dialect}); err != nil {
			_ = sqlDB.Close()
			return nil, fmt.Errorf("mysqlstore: tracing: %w", err)
		}
	}
	window := opts.PaymentWindow
	if window <= 0 {
		window = DefaultPaymentWindow
	}
	return &Store{db: db, sqlDB: sqlDB, connector: connector, dialect: dialect, now: now, payWindow: window}, nil
}

// openMySQL opens a pool on dsn with the store's required settings and the
// pool limits of opts.
func openMySQL(dsn string, opts Options) (*sql.DB, driver.Connector, gorm.Dialector, error) {
	cfg, err := mysqlConfig(dsn)
	if err != nil {
		return nil, nil, nil, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mysqlstore: mysql connector: %w", err)
	}
	sqlDB := sql.OpenDB(connector)
	sqlDB.SetMaxOpenConns(opts.MaxOpenConns)
	sqlDB.SetMaxIdleConns(opts.MaxIdleConns)
	sqlDB.SetConnMaxLifetime(opts.ConnMaxLifetime)
	sqlDB.SetConnMaxIdleTime(opts.ConnMaxIdleTime)
	dialector := gormmysql.New(gormmysql.Config{
		Conn: sqlDB,
		// gorm would otherwise query the version with a background
		// context, outside ctx; nothing here needs the version.
		SkipInitializeWithVersion: true,
		// MariaDB's INSERT ... RETURNING reports rows skipped by ON
		// DUPLICATE KEY UPDATE as returned rows, which would corrupt
		// Confirm's count of inserted orders.
		DisableWithReturning: true,
	})
	return sqlDB, connector, dialector, nil
}

// openSQLite opens the file at dsn with one connection: SQLite has a single
// writer, and one connection keeps its transactions in order.
func openSQLite(dsn string) (*sql.DB, gorm.Dialector, error) {
	sqlDB, err := sql.Open(sqlite.DriverName, sqliteDSN(dsn))
	if err != nil {
		return nil, nil, fmt.Errorf("mysqlstore: open sqlite: %w", err)
	}
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetMaxIdleConns(1)
	sqlDB.SetConnMaxLifetime(0)
	sqlDB.SetConnMaxIdleTime(0)
	return sqlDB, &sqlite.Dialector{Conn: sqlDB}, nil
}

func (o Options) withDefaults() Options {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = defaultMaxOpenConns
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = o.MaxOpenConns
	}
	if o.ConnMaxLifetime <= 0 {
		o.ConnMaxLifetime = defaultConnMaxLifetime
	}
	if o.ConnMaxIdleTime <= 0 {
		o.ConnMaxIdleTime = defaultConnMaxIdleTime
	}
	return o
}

// mysqlConfig parses dsn and forces the parameters documented on Open.
func mysqlConfig(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, &sale.ValidationError{Field: "dsn", Reason: err.Error()}
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true
	cfg.ClientFoundRows = false
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return cfg, nil
}

// sqliteDSN appends the connection parameters documented on Open.
func sqliteDSN(dsn string) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + fmt.Sprintf("_pragma=busy_timeout(%d)", sqliteBusyTimeoutMS) +
		"&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

// Migrate applies every pending migration from migrations.FS for the
// store's dialect; with nothing pending it changes nothing, so it is safe to
// call on every start.
//
// On MySQL several processes may call it at once: each first takes a
// server-side named lock (GET_LOCK) scoped to the database and holds it for
// the whole goose run, including goose's creation of its version table
// (goose_db_version), so one process applies the migrations and the others
// then find nothing pending. The lock belongs to a connection, so a process
// that dies mid-migration releases it. Waiting for the lock ends with ctx.
// On SQLite, Migrate is meant for the one process that owns the file.
func (s *Store) Migrate(ctx context.Context) error {
	gd, folder := goose.DialectSQLite3, "sqlite"
	db := s.sqlDB
	if s.dialect == MySQL {
		gd, folder = goose.DialectMySQL, "mysql"
		// A pool of its own: the lock pins one connection and goose needs
		// another, which a small MaxOpenConns on the main pool could starve.
		db = sql.OpenDB(s.connector)
		defer db.Close()
		unlock, err := lockMigrations(ctx, db)
		if err != nil {
			return translate(ctx, "migrate", err)
		}
		defer unlock()
	}
	fsys, err := fs.Sub(migrations.FS, folder)
	if err != nil {
		return fmt.Errorf("mysqlstore: migrations folder %s: %w", folder, err)
	}
	p, err := goose.NewProvider(gd, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("mysqlstore: goose provider: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return translate(ctx, "migrate", err)
	}
	return nil
}

// migrationLockName is the MySQL lock Migrate holds. It is a protocol
// between processes, and between versions of this binary, so it must not
// change. It is derived from the current database, so tests migrating
// separate databases on one server do not wait for each other, and hashed to
// fit MySQL's 64-character limit on lock names.
const migrationLockName = "CONCAT('seckill.migrate.', MD5(COALESCE(DATABASE(), '')))"

// lockMigrations waits, until ctx ends, for the migration lock on a
// connection of its own and returns the function that releases it.
func lockMigrations(ctx context.Context, db *sql.DB) (unlock func(), err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	// GET_LOCK waits in the server; ctx ending makes the driver drop the
	// connection, which abandons the wait. The timeout only bounds a
	// context without a deadline.
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+migrationLockName+", 3600)").Scan(&got); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		_ = conn.Close()
		return nil, errors.New("migration lock: not acquired")
	}
	return func() {
		// Closing the connection would release the lock too; releasing it
		// explicitly first returns the connection to a clean state.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK("+migrationLockName+")")
		_ = conn.Close()
	}, nil
}

// Ping returns nil when the database answers within ctx.
func (s *Store) Ping(ctx context.Context) error {
	return translate(ctx, "ping", s.sqlDB.PingContext(ctx))
}

// Close closes the connection pool; the Store must not be used afterwards.
func (s *Store) Close() error {
	return s.sqlDB.Close()
}

// DB exposes the gorm handle for tests and read-only diagnostics such as
// pool statistics. Writing through it bypasses the store's invariants.
func (s *Store) DB() *gorm.DB {
	return s.db
}

// forUpdate adds SELECT ... FOR UPDATE on MySQL. SQLite has no row locks and
// needs none: its single connection serialises transactions.
func (s *Store) forUpdate(tx *gorm.DB) *gorm.DB {
	if s.dialect == MySQL {
		return tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	return tx
}

// errLockDeadlock is MySQL's "deadlock found; try restarting transaction".
const errLockDeadlock = 1213

// translate turns a driver or gorm error into the error the store returns,
// prefixed with the operation: sale errors keep matching their sentinel,
// record-not-found becomes sale.ErrNotFound, and a failure caused by ctx
// ending matches ctx's error so callers can tell a timeout from a database
// fault.
func translate(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		err = sale.ErrNotFound
	case isSaleError(err), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case ctx.Err() != nil:
		// The driver reports a cancelled query in its own words ("invalid
		// connection", "interrupted"); the cause the caller can act on is
		// the context.
		return fmt.Errorf("mysqlstore: %s: %w (driver: %v)", op, ctx.Err(), err)
	}
	return fmt.Errorf("mysqlstore: %s: %w", op, err)
}

func isSaleError(err error) bool {
	for _, target := range []error{
		sale.ErrInvalid, sale.ErrNotFound, sale.ErrOrderNotFound,
		sale.ErrStockExhausted, sale.ErrAlreadyPurchased,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// mysqlErrorNumber returns the MySQL error number inside err, or 0.
func mysqlErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}
