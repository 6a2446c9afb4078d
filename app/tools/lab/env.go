package lab

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
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
	// Linger keeps each run's system (and its dashboard) up this long after
	// the run's figures are printed, so a room can look; 0 stops it at once.
	Linger time.Duration
	// FreePort lets the labs listen on another port of Base.HTTPAddr's
	// host when that one is taken (`make run` holds 8080 during a
	// workshop); without it a taken address fails the run.
	FreePort bool

	mu        sync.Mutex
	front     *front    // Base.HTTPAddr (or the port taken instead), once listening
	lingering []*System // runs whose shutdown waits for the linger
}

// Scaled returns n scaled by the env's Scale, never below least.
func (e *Env) Scaled(n, least int) int {
	s := e.Scale
	if s <= 0 {
		s = 1
	}
	v := int(float64(n) * s)
	if v < least {
		v = least
	}
	return v
}

// Printf writes one progress line.
func (e *Env) Printf(format string, args ...any) { e.printf(format, args...) }

// printf is Printf for callers holding e.mu (Out is set before any run).
func (e *Env) printf(format string, args ...any) {
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
// lab, say); swap, between bootstrap.Build and bootstrap.Start, puts the
// naive components the unprotected run uses into the parts' ports. On real
// backends the run gets a fresh Redis prefix and a fresh database, removed
// again by Close.
func (e *Env) Start(ctx context.Context, tweak func(*config.Config), swap func(*bootstrap.Parts)) (*System, error) {
	cfg := e.Base
	cfg.SeedDemo = false
	// A page opened after a run must draw it (make lab's linger).
	cfg.DashboardHistory = true
	nonce := nonce()
	cfg.RedisPrefix = "lab-" + nonce
	cfg.InstanceID = "lab-" + nonce
	fr, err := e.listen()
	if err != nil {
		return nil, err
	}
	// A port of its own, behind the env's front (front.go), which keeps
	// the labs' address answering between two runs.
	cfg.HTTPAddr = "127.0.0.1:0"
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
	m, err := startSystem(ctx, cfg, log, swap)
	if err != nil {
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
	fr.use(m.URL())
	e.Printf("system up (dashboard: %s/dashboard)", fr.URL())
	return s, nil
}

// startSystem builds a whole system's parts, lets swap replace ports, and
// starts it.
func startSystem(ctx context.Context, cfg config.Config, log *slog.Logger, swap func(*bootstrap.Parts)) (*bootstrap.Main, error) {
	p, err := bootstrap.Build(ctx, cfg, bootstrap.Roles{API: true, Worker: true}, log)
	if err != nil {
		return nil, err
	}
	if swap != nil {
		swap(p)
	}
	return bootstrap.Start(ctx, p)
}

// Addr is the address the labs answer on, listening from this call on:
// Base.HTTPAddr, or, when that is taken and FreePort allows, a free port on
// the same host, chosen once so that every later run (and a dashboard left
// open) finds the same one. A port of 0 takes a free one. Before the first
// run and between runs it serves the dashboard page; during a run, that
// run's system. Close stops it.
func (e *Env) Addr() (string, error) {
	fr, err := e.listen()
	if err != nil {
		return "", err
	}
	return fr.ln.Addr().String(), nil
}

// listen starts the env's front on its address, once.
func (e *Env) listen() (*front, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.front != nil {
		return e.front, nil
	}
	want := e.Base.HTTPAddr
	host, _, err := net.SplitHostPort(want)
	if err != nil {
		return nil, fmt.Errorf("lab: --http-addr %q: %w", want, err)
	}
	ln, err := net.Listen("tcp", want)
	if err != nil && e.FreePort && errors.Is(err, syscall.EADDRINUSE) {
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("lab: %s is taken and no other port is free: %w", want, err)
		}
		e.printf("%s is taken (by make run?); the labs listen on %s instead", want, ln.Addr())
	} else if err != nil {
		return nil, fmt.Errorf("lab: cannot listen on %s: %w", want, err)
	}
	e.front = serveFront(ln)
	return e.front, nil
}

// Close stops the env's address (Addr). Runs still lingering are not
// waited for: call it after the last RunOne.
func (e *Env) Close() {
	e.mu.Lock()
	fr := e.front
	e.mu.Unlock()
	if fr != nil {
		fr.close()
	}
}

// Close shuts the system down and removes its namespace from real
// backends; with a Linger, it leaves that to the env's Settle.
func (s *System) Close() {
	e := s.env
	if e.Linger > 0 {
		e.mu.Lock()
		e.lingering = append(e.lingering, s)
		e.mu.Unlock()
		return
	}
	s.shutdown()
}

// Settle waits the Linger, if a closed run's system lingers, and then
// shuts the lingering systems down. RunOne calls it after each run.
func (e *Env) Settle(ctx context.Context) {
	e.mu.Lock()
	systems := e.lingering
	e.lingering = nil
	e.mu.Unlock()
	if len(systems) == 0 {
		return
	}
	e.Printf("the system stays up for %s: %s/dashboard", e.Linger, e.front.URL())
	t := time.NewTimer(e.Linger)
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	t.Stop()
	for _, s := range systems {
		s.shutdown()
	}
}

// shutdown stops the system and removes its namespace from real backends.
func (s *System) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// First, so an open page hears "between runs" and retries, rather
	// than reaching a system on its way down.
	s.env.front.leave(s.URL())
	if err := s.Shutdown(ctx); err != nil {
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
