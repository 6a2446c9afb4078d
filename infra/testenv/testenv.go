// Package testenv gives tests the real services this project is tested
// against, chosen by environment variables:
//
//	SECKILL_TEST_REDIS_ADDR  e.g. 127.0.0.1:6379
//	SECKILL_TEST_MYSQL_DSN   e.g. root@tcp(127.0.0.1:3306)/test
//
// When a variable is unset the helper skips the test, except under CI=true,
// where an unset variable fails the test: CI must never go green by skipping
// the real-service suites. .ci/run exports both.
//
// Every caller gets an isolated namespace (a fresh key prefix or a fresh
// database), because go test runs packages in parallel against the same
// servers.
//
// RedisCluster needs no variable: it starts a private three-master Redis
// Cluster once per test process from redis-server and redis-cli on PATH
// (skipping without them, failing under CI=true), unless
// SECKILL_TEST_REDIS_CLUSTER_ADDRS names an existing one.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// Env var names read by this package.
const (
	RedisAddrVar = "SECKILL_TEST_REDIS_ADDR"
	MySQLDSNVar  = "SECKILL_TEST_MYSQL_DSN"
)

// RedisAddr returns the real Redis address, skipping (or failing under CI)
// when it is not configured.
func RedisAddr(t testing.TB) string {
	t.Helper()
	return required(t, RedisAddrVar)
}

// Redis returns a client for the real Redis and a key prefix unique to this
// test. It deletes the prefix's keys when the test ends.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	addr := RedisAddr(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: %s=%s is set but Redis does not answer: %v", RedisAddrVar, addr, err)
	}
	prefix := "t" + Nonce()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// MySQLDSN creates a fresh, empty database on the configured MariaDB/MySQL
// server, drops it when the test ends, and returns a DSN for it with
// parseTime and UTC set.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	base := required(t, MySQLDSNVar)
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("testenv: %s is not a valid DSN: %v", MySQLDSNVar, err)
	}
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatalf("testenv: open MySQL: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name := "seckill_t" + Nonce()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("testenv: %s is set but MySQL refused CREATE DATABASE: %v", MySQLDSNVar, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
	})
	cfg.DBName = name
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	return cfg.FormatDSN()
}

// Nonce returns 12 random hex characters, for names that must not collide
// between tests running at the same time.
func Nonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func required(t testing.TB, name string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v != "" {
		return v
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: CI=true but %s is unset; .ci/run must point the tests at the real service", name)
	}
	t.Skipf("testenv: %s is unset; set it to run this test against the real service", name)
	return ""
}
