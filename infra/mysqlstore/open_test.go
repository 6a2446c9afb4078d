package mysqlstore

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"seckill/domain/sale"
)

func TestMySQLConfigForcesParameters(t *testing.T) {
	cfg, err := mysqlConfig("app@tcp(db:3306)/seckill?parseTime=false&loc=Local&clientFoundRows=true&interpolateParams=false")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.ParseTime || cfg.Loc != time.UTC || !cfg.InterpolateParams || cfg.ClientFoundRows {
		t.Fatalf("parseTime %v loc %v interpolateParams %v clientFoundRows %v; want true UTC true false",
			cfg.ParseTime, cfg.Loc, cfg.InterpolateParams, cfg.ClientFoundRows)
	}
	if cfg.Timeout != 10*time.Second || cfg.DBName != "seckill" || cfg.User != "app" {
		t.Fatalf("timeout %v db %q user %q; want 10s, seckill, app kept", cfg.Timeout, cfg.DBName, cfg.User)
	}
	dsn := cfg.FormatDSN()
	for _, want := range []string{"parseTime=true", "interpolateParams=true"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("formatted DSN %q lacks %s", dsn, want)
		}
	}
	if strings.Contains(dsn, "clientFoundRows") || strings.Contains(dsn, "loc=Local") {
		t.Errorf("formatted DSN %q keeps a parameter Open must override", dsn)
	}

	cfg, err = mysqlConfig("root@tcp(127.0.0.1:3306)/test?timeout=2s")
	if err != nil || cfg.Timeout != 2*time.Second {
		t.Fatalf("explicit timeout not kept: %v %v", cfg.Timeout, err)
	}
	if _, err := mysqlConfig("not a dsn"); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("mysqlConfig(bad) = %v, want ErrInvalid", err)
	}
}

func TestOpenRejectsUnknownDialect(t *testing.T) {
	if _, err := Open(t.Context(), "postgres", "x", Options{}); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("Open(postgres) = %v, want ErrInvalid", err)
	}
}

func TestOptionsDefaults(t *testing.T) {
	got := Options{}.withDefaults()
	want := Options{MaxOpenConns: 20, MaxIdleConns: 20, ConnMaxLifetime: 30 * time.Minute, ConnMaxIdleTime: 5 * time.Minute}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	got = Options{MaxOpenConns: 4, ConnMaxLifetime: time.Minute}.withDefaults()
	if got.MaxOpenConns != 4 || got.MaxIdleConns != 4 || got.ConnMaxLifetime != time.Minute {
		t.Fatalf("explicit options not kept: %+v", got)
	}
}

// TestSQLiteSettings checks the pragmas and the single writer connection
// Open promises for SQLite, on a DSN that already carries a parameter.
func TestSQLiteSettings(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "s.db") + "?_pragma=cache_size(-2000)"
	s, err := Open(t.Context(), SQLite, dsn, Options{MaxOpenConns: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var (
		journal string
		fk, bt  int
	)
	db := s.DB().WithContext(t.Context())
	if err := db.Raw("PRAGMA journal_mode").Row().Scan(&journal); err != nil || journal != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", journal, err)
	}
	if err := db.Raw("PRAGMA foreign_keys").Row().Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
	if err := db.Raw("PRAGMA busy_timeout").Row().Scan(&bt); err != nil || bt != sqliteBusyTimeoutMS {
		t.Errorf("busy_timeout = %d, %v; want %d", bt, err, sqliteBusyTimeoutMS)
	}
	if got := s.sqlDB.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("MaxOpenConnections = %d, want 1 whatever Options says", got)
	}
}
