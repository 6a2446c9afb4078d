package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/infra/embedded"
)

// system is the seckill instance under test and the backends it uses.
type system struct {
	// m is the API instance and w the worker instance, two bootstrap.Main
	// in this one process (as `seckill serve` and `seckill worker` beside
	// each other), so that (f) can stop the worker, fill the queue and
	// start a fresh worker against it. w is nil while the worker is stopped.
	m        *bootstrap.Main
	w        *bootstrap.Main
	log      *slog.Logger
	broker   *exec.Cmd      // the Kafka-protocol broker child process
	brokerIn io.WriteCloser // closing it stops the broker
	cfg      config.Config
	url      string
	admin    string
	client   *http.Client

	// Real backends only: what to clean up at the end.
	redisAddr, prefix string
	baseDSN           *mysql.Config
	dbName            string
	sqlDB             *sql.DB // the bench database, opened by db() when needed

	RedisVersion, DBVersion string

	closed bool
}

func nonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startSystem creates the fresh database (real backends), starts the
// in-process Kafka-protocol broker and then seckill itself, API and worker.
// It always returns a system, and the caller must close it even when err is
// set: whatever was started before the error is undone there.
func startSystem(ctx context.Context, o options, log *slog.Logger) (s *system, err error) {
	id := nonce()
	s = &system{admin: "benchsale-admin-" + id}

	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.InstanceID = "benchsale-" + id
	cfg.LogLevel = "warn"
	cfg.AdminToken = s.admin
	cfg.TokenSecret = "benchsale-secret-" + id
	cfg.SeedDemo = false
	// Every user appears once per scenario anyway; the high limit only
	// guarantees that a token pool that wraps in (c)-(e) is never refused
	// for the user's sake.
	cfg.UserRate, cfg.UserBurst = 1000, 1000
	// The default hot-key bucket (20000/s per item per instance) would turn
	// (b) into a measurement of that limit; (d) measures the limiter with
	// its own purchase_rate instead.
	cfg.ItemRate = 1e7

	if o.embedded {
		s.RedisVersion, s.DBVersion = "miniredis (embedded, in-process)", "SQLite (embedded, in-process)"
		// miniredis runs its Lua in this process, competing with wrk and
		// seckill (and with other test packages under -race): the
		// production call deadlines, set for a real Redis, would turn a
		// busy moment into 503s and 504s and fail the run. Embedded figures
		// are not comparable anyway; the deadlines then only bound a hang.
		cfg.RedisCallTimeout, cfg.MySQLCallTimeout = 2*time.Second, 2*time.Second
	} else {
		cfg.RedisAddr = o.redisAddr
		cfg.RedisPrefix = "bench" + id
		s.redisAddr, s.prefix = cfg.RedisAddr, cfg.RedisPrefix
		dsn, err := s.createDatabase(ctx, o.mysqlDSN, "seckill_bench_"+id)
		if err != nil {
			return s, err
		}
		cfg.MySQLDSN = dsn
		s.RedisVersion = redisVersion(ctx, cfg.RedisAddr)
	}

	brokers, err := s.startBroker(cfg)
	if err != nil {
		return s, err
	}
	cfg.KafkaBrokers = brokers

	s.log = log
	// Embedded backends live in the instance that starts them, so a second
	// instance would get a miniredis and a SQLite database of its own: on
	// them one instance is both API and worker, and (f) and (g), which
	// stop the worker, do not run.
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	m, err := bootstrap.Open(sctx, cfg, bootstrap.Roles{API: true, Worker: o.embedded}, log)
	if err != nil {
		return s, fmt.Errorf("start seckill: %w", err)
	}
	s.m = m
	s.cfg, s.url = s.m.Config, s.m.URL()
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	if o.embedded {
		return s, nil
	}
	if err := s.startWorker(sctx); err != nil {
		return s, err
	}
	return s, nil
}

// startWorker starts a worker instance (its own consumer-group member)
// with the API's configuration.
func (s *system) startWorker(ctx context.Context) error {
	cfg := s.cfg
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.InstanceID += "-worker"
	// A worker serves no item reads; the smallest item cache keeps its
	// 32 MB out of the memory figures.
	cfg.LocalCacheMB = 1
	w, err := bootstrap.Open(ctx, cfg, bootstrap.Roles{Worker: true}, s.log)
	if err != nil {
		return fmt.Errorf("start the worker: %w", err)
	}
	s.w = w
	return nil
}

// stopWorker shuts the worker down cleanly: its batch in flight is
// finished and committed, and it leaves the consumer group.
func (s *system) stopWorker(ctx context.Context) error {
	if s.w == nil {
		return nil
	}
	w := s.w
	s.w = nil
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return w.Shutdown(sctx)
}

// createDatabase creates name on the server of dsn and returns a DSN for it.
func (s *system) createDatabase(ctx context.Context, dsn, name string) (string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("--mysql-dsn %q: %w", dsn, err)
	}
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		return "", err
	}
	defer db.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.QueryRowContext(cctx, "SELECT VERSION()").Scan(&s.DBVersion); err != nil {
		return "", fmt.Errorf("MariaDB/MySQL at %s: %w", c.Addr, err)
	}
	if _, err := db.ExecContext(cctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	s.baseDSN, s.dbName = c.Clone(), name
	c.DBName, c.ParseTime, c.Loc = name, true, time.UTC
	return c.FormatDSN(), nil
}

// newRedis connects to addr as seckill does (bootstrap.NewRedisClient): a
// comma-separated list is a Redis Cluster.
func newRedis(addr string) redis.UniversalClient {
	return bootstrap.NewRedisClient(&redis.UniversalOptions{Addrs: strings.Split(addr, ",")})
}

func redisVersion(ctx context.Context, addr string) string {
	rdb := newRedis(addr)
	defer rdb.Close()
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			return "Redis " + v
		}
	}
	return "unknown"
}

// close shuts seckill down, then the broker, and removes the database and
// the Redis keys this run made. It reports what it could not do.
func (s *system) close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []string
	if err := s.stopWorker(ctx); err != nil {
		errs = append(errs, "worker shutdown: "+err.Error())
	}
	if s.m != nil {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := s.m.Shutdown(sctx); err != nil {
			errs = append(errs, "shutdown: "+err.Error())
		}
		cancel()
	}
	if s.broker != nil {
		// Its stdin closing is the broker's signal to stop.
		s.brokerIn.Close()
		done := make(chan error, 1)
		go func() { done <- s.broker.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				errs = append(errs, "broker: "+err.Error())
			}
		case <-time.After(10 * time.Second):
			_ = s.broker.Process.Kill()
			errs = append(errs, fmt.Sprintf("broker still running 10 s after its stdin closed; killed (%v)", <-done))
		}
	}
	if s.sqlDB != nil {
		s.sqlDB.Close()
	}
	if s.dbName != "" {
		if db, err := sql.Open("mysql", s.baseDSN.FormatDSN()); err == nil {
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if _, err := db.ExecContext(dctx, "DROP DATABASE IF EXISTS `"+s.dbName+"`"); err != nil {
				errs = append(errs, "drop database "+s.dbName+": "+err.Error())
			}
			cancel()
			db.Close()
		}
	}
	if s.prefix != "" {
		if err := s.cleanRedis(ctx); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// cleanRedis deletes every key of the run's prefix, on every master of a
// cluster.
func (s *system) cleanRedis(ctx context.Context) error {
	rdb := newRedis(s.redisAddr)
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	clean := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, s.prefix+":*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		// One UNLINK per key, pipelined: the keys of a prefix span
		// cluster slots, which one multi-key UNLINK may not. UNLINK
		// frees big sets (the buyers of a sale) off the main thread.
		for len(keys) > 0 {
			n := min(len(keys), 500)
			pipe := c.Pipeline()
			for _, k := range keys[:n] {
				pipe.Unlink(ctx, k)
			}
			_, _ = pipe.Exec(ctx)
			keys = keys[n:]
		}
		return iter.Err()
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(rctx, clean) // SCAN sees one node's keys
	} else {
		err = clean(rctx, rdb.(*redis.Client))
	}
	cancel()
	rdb.Close()
	if err != nil {
		return fmt.Errorf("clean redis prefix %s: %w", s.prefix, err)
	}
	return nil
}

// call makes one API request and decodes the JSON object it answers.
func (s *system) call(ctx context.Context, method, path, token string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, err
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return res.StatusCode, nil, fmt.Errorf("%s %s: %d, body is not JSON: %q", method, path, res.StatusCode, raw)
		}
	}
	return res.StatusCode, out, nil
}

// purchaseCounts are this instance's purchase outcomes from /metrics
// (seckill_purchases_total): accepted counts the orders accepted, including
// those whose 202 wrk never read because it stopped with requests in
// flight; unavailable counts 503s and 504 outcome_unknown: a reserve sent to
// Redis whose answer did not come in time (or whose client hung up) may
// have run, and its order, if reserved, is published by the relay and
// confirmed like any other.
type purchaseCounts struct{ accepted, unavailable int64 }

func (s *system) purchaseCounts(ctx context.Context) (purchaseCounts, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	if err != nil {
		return purchaseCounts{}, err
	}
	res, err := s.client.Do(req)
	if err != nil {
		return purchaseCounts{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return purchaseCounts{}, err
	}
	var out purchaseCounts
	for _, l := range strings.Split(string(raw), "\n") {
		for prefix, dst := range map[string]*int64{
			`seckill_purchases_total{outcome="accepted"} `:        &out.accepted,
			`seckill_purchases_total{outcome="unavailable"} `:     &out.unavailable,
			`seckill_purchases_total{outcome="outcome_unknown"} `: &out.unavailable,
		} {
			if v, ok := strings.CutPrefix(l, prefix); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return out, err
				}
				*dst += int64(f) // two outcomes may add to one count
			}
		}
	}
	return out, nil // absent: no purchase with that outcome yet
}

// createSale creates a sale open from a second ago for two hours.
func (s *system) createSale(ctx context.Context, name string, stock, purchaseRate int64) (int64, error) {
	now := time.Now().UTC()
	st, body, err := s.call(ctx, "POST", "/api/v1/admin/items", s.admin, map[string]any{
		"name": name, "description": "benchsale", "price_cents": 100, "stock": stock,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339Nano), "ends_at": now.Add(2 * time.Hour).Format(time.RFC3339Nano),
		"purchase_rate": purchaseRate,
	})
	if err != nil {
		return 0, fmt.Errorf("create sale %q: %w", name, err)
	}
	if st != http.StatusCreated {
		return 0, fmt.Errorf("create sale %q: status %d: %v", name, st, body)
	}
	id, _ := body["id"].(float64)
	return int64(id), nil
}

// saleStats is GET /api/v1/admin/items/{id}/stats.
type saleStats struct {
	ItemID         int64 `json:"item_id"`
	StockTotal     int64 `json:"stock_total"`
	StockLeftRedis int64 `json:"stock_left_redis"`
	StockLeftDB    int64 `json:"stock_left_db"`
	Pending        int64 `json:"orders_pending"`
	Confirmed      int64 `json:"orders_confirmed"`
	Failed         int64 `json:"orders_failed"`
	Consistent     bool  `json:"consistent"`
}

func (st saleStats) String() string {
	return fmt.Sprintf("stock_total=%d stock_left_redis=%d stock_left_db=%d pending=%d confirmed=%d failed=%d consistent=%t",
		st.StockTotal, st.StockLeftRedis, st.StockLeftDB, st.Pending, st.Confirmed, st.Failed, st.Consistent)
}

func (s *system) stats(ctx context.Context, item int64) (saleStats, error) {
	st, body, err := s.call(ctx, "GET", fmt.Sprintf("/api/v1/admin/items/%d/stats", item), s.admin, nil)
	if err != nil {
		return saleStats{}, err
	}
	if st != http.StatusOK {
		return saleStats{}, fmt.Errorf("stats of item %d: status %d: %v", item, st, body)
	}
	b, _ := json.Marshal(body)
	var out saleStats
	return out, json.Unmarshal(b, &out)
}

// settle waits until item has no pending order and its accounts add up.
func (s *system) settle(ctx context.Context, item int64, timeout time.Duration) (saleStats, time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		st, err := s.stats(ctx, item)
		if err == nil && st.Pending == 0 && st.Consistent {
			return st, time.Since(start), nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return st, time.Since(start), err
			}
			return st, time.Since(start), fmt.Errorf("item %d not settled after %s: %s", item, timeout, st)
		}
		select {
		case <-ctx.Done():
			return st, time.Since(start), ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// brokerChildEnv, when set, makes benchsale run as the broker child: it
// holds the topic list, "name:partitions,name:partitions".
const brokerChildEnv = "BENCHSALE_BROKER_TOPICS"

// startBroker starts the embedded Kafka-protocol broker (franz-go kfake)
// as a child process, this same binary with brokerChildEnv set, and returns
// its address. A process of its own, as Kafka is in production, so that
// neither its memory (it keeps every message) nor its CPU is counted as
// seckill's, and the CPU table can show the queue's cost per order.
func (s *system) startBroker(cfg config.Config) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%d,%s:1", brokerChildEnv, cfg.KafkaTopic, cfg.KafkaParts, cfg.KafkaDLQTopic))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start the broker: %w", err)
	}
	s.broker, s.brokerIn = cmd, in
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("the broker did not say its address: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// brokerPID is the broker child's pid, 0 if none.
func (s *system) brokerPID() int {
	if s.broker == nil || s.broker.Process == nil {
		return 0
	}
	return s.broker.Process.Pid
}

// brokerChild is main for the broker child: start the broker with the
// topics in spec, print its address, serve until stdin closes (the parent
// closed it, or died).
func brokerChild(spec string) int {
	var topics []embedded.KafkaTopic
	for _, t := range strings.Split(spec, ",") {
		name, parts, _ := strings.Cut(t, ":")
		n, err := strconv.Atoi(parts)
		if err != nil || name == "" {
			fmt.Fprintf(os.Stderr, "benchsale broker: bad topic %q\n", t)
			return 2
		}
		topics = append(topics, embedded.KafkaTopic{Name: name, Partitions: n})
	}
	k, err := embedded.StartKafka("127.0.0.1:0", topics...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchsale broker:", err)
		return 1
	}
	defer k.Close()
	fmt.Println(strings.Join(k.Brokers(), ","))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}
