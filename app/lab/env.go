package lab

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"seckill/app/bootstrap"
	"seckill/app/config"
)

// Env is where labs run: the backends the operator configured, or embedded
// stand-ins for those left empty, exactly as `seckill all` chooses.
type Env struct {
	// Base is the configuration every lab system starts from. Empty
	// backends (MySQLDSN, RedisAddr, KafkaBrokers) start embedded ones.
	Base config.Config
	// Out receives the labs' progress lines.
	Out io.Writer
	// Log receives the systems' own logs; nil discards them, so the lab's
	// table is what the room reads.
	Log *slog.Logger
	// Scale multiplies every lab's workload: 1 for the workshop, less for a
	// quick check. Labs keep a floor so a small scale still shows the effect.
	Scale float64
}

// Scaled returns n scaled by the env's Scale, never below min.
func (e *Env) Scaled(n, min int) int {
	s := e.Scale
	if s <= 0 {
		s = 1
	}
	v := int(float64(n) * s)
	if v < min {
		v = min
	}
	return v
}

// Printf writes one progress line.
func (e *Env) Printf(format string, args ...any) {
	if e.Out != nil {
		fmt.Fprintf(e.Out, "   "+format+"\n", args...)
	}
}

// System is one running seckill instance (API and worker) for one run of
// a lab, in a namespace of its own on shared backends.
type System struct {
	*bootstrap.Main
	env     *Env
	dropDB  func()
	dropKey func()
}

// Start starts a whole system (API and worker in one process, as `seckill
// all`) for one run. tweak adjusts the configuration (shorter timings for a
// lab, say); ov swaps in the components the unprotected run uses. On real
// backends the run gets a fresh Redis prefix and a fresh database, removed
// again by Close.
func (e *Env) Start(ctx context.Context, tweak func(*config.Config), ov bootstrap.Overrides) (*System, error) {
	cfg := e.Base
	cfg.SeedDemo = false
	nonce := nonce()
	cfg.RedisPrefix = "lab-" + nonce
	cfg.InstanceID = "lab-" + nonce
	s := &System{env: e}
	if cfg.MySQLDSN != "" {
		dsn, drop, err := freshDatabase(ctx, cfg.MySQLDSN, "lab_"+nonce)
		if err != nil {
			return nil, err
		}
		cfg.MySQLDSN, s.dropDB = dsn, drop
	}
	if tweak != nil {
		tweak(&cfg)
	}
	log := e.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := bootstrap.New(cfg, bootstrap.Roles{API: true, Worker: true}, log)
	m.Overrides = ov
	if err := m.Start(ctx); err != nil {
		if s.dropDB != nil {
			s.dropDB()
		}
		return nil, err
	}
	s.Main = m
	if e.Base.RedisAddr != "" {
		// A client of its own, after the system has stopped writing (its
		// own client is closed by then), on the operator's address (a lab
		// may have put a proxy in front of it).
		base, prefix := e.Base, cfg.RedisPrefix
		s.dropKey = func() {
			rdb := redis.NewClient(&redis.Options{Addr: base.RedisAddr, Password: base.RedisPassword, DB: base.RedisDB})
			defer rdb.Close()
			deleteKeys(rdb, prefix)
		}
	}
	e.Printf("system up at %s (dashboard: %s/dashboard)", m.URL(), m.URL())
	return s, nil
}

// Close shuts the system down and removes its namespace from real backends.
func (s *System) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Main.Shutdown(ctx); err != nil {
		s.env.Printf("shutdown: %v", err)
	}
	if s.dropKey != nil {
		s.dropKey()
	}
	if s.dropDB != nil {
		s.dropDB()
	}
}

// deleteKeys removes every key under prefix (a lab's own namespace on a
// shared Redis).
func deleteKeys(rdb redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	del := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		return iter.Err()
	}
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, del)
	case *redis.Client:
		_ = del(ctx, c)
	}
}

// freshDatabase creates database name on the server of dsn and returns a
// DSN for it and a function that drops it.
func freshDatabase(ctx context.Context, dsn, name string) (string, func(), error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("lab: --mysql-dsn: %w", err)
	}
	admin := cfg.Clone()
	admin.DBName = ""
	db, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		return "", nil, err
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		_ = db.Close()
		return "", nil, fmt.Errorf("lab: create database %s: %w", name, err)
	}
	own := cfg.Clone()
	own.DBName = name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
		_ = db.Close()
	}
	return own.FormatDSN(), drop, nil
}

func nonce() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
