package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/infra/testenv"
)

// readyTimeout bounds every wait for a process to come up.
const readyTimeout = 60 * time.Second

// stack is one scenario's processes and servers. Everything it starts is
// stopped by pid when the test ends, seckill processes first, then the
// private servers, whatever the test's outcome.
type stack struct {
	t    *testing.T
	name string
	dir  string

	adminToken string
	base       []string // env every seckill process of the scenario shares

	redis      *proc
	redisAddr  string
	cluster    *redisCluster // instead of redis, in the cluster scenarios
	prefix     string        // SECKILL_REDIS_PREFIX
	buckets    int           // stock_buckets of the sale; 0: the API's default
	item       int64         // the sale createSale made
	load       *load         // the scenario's load, once it runs
	mysql      *proc
	mysqlDSN   string // what the seckill processes and the checker use
	broker     *proc
	brokerAddr string
	apis       []*proc
	workers    []*proc

	mu     sync.Mutex
	procs  []*proc      // in start order
	losses []lossWindow // where the fault let the ledger lose writes (answers_test.go)
	rr     atomic.Uint64
}

// newStack prepares a scenario. With sharedDB it takes a fresh database on
// the shared MariaDB (testenv.MySQLDSN drops it afterwards); otherwise the
// scenario starts a private mariadbd with startMariaDB.
func newStack(t *testing.T, name string, sharedDB bool) *stack {
	t.Helper()
	s := &stack{t: t, name: name}
	if sharedDB {
		if os.Getenv(testenv.MySQLDSNVar) == "" {
			t.Fatalf("%s=1 but %s is unset; make chaos sets it (default root@tcp(127.0.0.1:3306)/test)", chaosVar, testenv.MySQLDSNVar)
		}
		s.mysqlDSN = testenv.MySQLDSN(t)
	}
	dir, err := os.MkdirTemp("", "seckill-chaos-"+name+"-*")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	nonce := testenv.Nonce()
	s.adminToken = "chaos-admin-" + nonce
	// Registered after testenv.MySQLDSN, so it runs before the database is
	// dropped: no process is left writing into a vanishing schema.
	t.Cleanup(s.cleanup)
	s.prefix = "chaos" + nonce
	s.base = []string{
		"SECKILL_REDIS_PREFIX=" + s.prefix,
		"SECKILL_ADMIN_TOKEN=" + s.adminToken,
		"SECKILL_TOKEN_SECRET=chaos-secret-" + nonce,
		"SECKILL_SEED_DEMO=false",
		"SECKILL_LOG_LEVEL=info",
	}
	return s
}

func (s *stack) add(p *proc) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.procs = append(s.procs, p)
	return p
}

// cleanup stops every process (newest first), shows their logs when the
// test failed, and removes the data directories.
func (s *stack) cleanup() {
	s.mu.Lock()
	procs := append([]*proc(nil), s.procs...)
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].halt(syscall.SIGTERM, 5*time.Second); err != nil {
			s.t.Errorf("stop %s: %v", procs[i].name, err)
		}
	}
	if s.t.Failed() {
		for _, p := range procs {
			s.t.Logf("log of %s:\n%s", p.name, p.tail(25))
		}
		s.t.Logf("full logs kept in %s", s.dir)
		_ = os.RemoveAll(filepath.Join(s.dir, "redis"))
		_ = os.RemoveAll(filepath.Join(s.dir, "mysql"))
		return
	}
	_ = os.RemoveAll(s.dir)
}

// startRedis starts a private redis-server on a free port with its own
// directory: with aof, appendonly yes / appendfsync everysec (a SIGKILL may
// lose up to a second of writes); without, no persistence at all.
func (s *stack) startRedis(aof bool) {
	s.t.Helper()
	addr, err := freeAddr()
	if err != nil {
		s.t.Fatal(err)
	}
	dir := filepath.Join(s.dir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	_, port, _ := strings.Cut(addr, ":")
	args := []string{"--port", port, "--bind", "127.0.0.1", "--dir", dir, "--daemonize", "no", "--save", ""}
	if aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	} else {
		args = append(args, "--appendonly", "no")
	}
	s.redis = s.add(&proc{name: "redis", path: "redis-server", args: args, env: cleanEnv(), dir: s.dir})
	s.redisAddr = addr
	s.base = append(s.base, "SECKILL_REDIS_ADDR="+addr)
	s.restartRedis()
}

// restartRedis starts the private redis-server (again) on its port and dir.
func (s *stack) restartRedis() {
	s.t.Helper()
	if err := s.redis.start(); err != nil {
		s.t.Fatal(err)
	}
	if err := waitRedis(s.redis, s.redisAddr, readyTimeout); err != nil {
		s.t.Fatal(err)
	}
}

// saveRedis snapshots the private redis-server's data to its directory
// (SAVE: dump.rdb, which a restart loads) and returns when the snapshot is
// written.
func (s *stack) saveRedis() time.Time {
	s.t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.redisAddr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rdb.Save(ctx).Err(); err != nil {
		s.t.Fatalf("SAVE on the private redis-server: %v", err)
	}
	return time.Now()
}

// startMariaDB initialises a private datadir and starts mariadbd on a free
// port and its own socket; the scenario's database is `seckill`.
func (s *stack) startMariaDB() {
	s.t.Helper()
	data := filepath.Join(s.dir, "mysql")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// --no-defaults: the machine's my.cnf describes the shared server
	// (its socket, port, datadir), which this one must never touch.
	install := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		s.t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	addr, err := freeAddr()
	if err != nil {
		s.t.Fatal(err)
	}
	_, port, _ := strings.Cut(addr, ":")
	s.mysql = s.add(&proc{name: "mariadbd", path: "mariadbd", env: cleanEnv(), dir: s.dir, args: []string{
		"--no-defaults", "--datadir=" + data, "--user=root", "--port=" + port,
		"--socket=" + filepath.Join(s.dir, "mysql.sock"), "--pid-file=" + filepath.Join(s.dir, "mysql.pid"),
		"--skip-networking=0", "--bind-address=127.0.0.1", "--skip-log-bin",
		// Small enough for a 2-core test box; durable commits, so a
		// SIGKILL loses nothing the worker was told is committed.
		"--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=1",
	}})
	root := "root@tcp(" + addr + ")/"
	s.restartMariaDB(root)
	db, err := sql.Open("mysql", root)
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS seckill CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		s.t.Fatalf("create database on the private mariadbd: %v", err)
	}
	s.mysqlDSN = "root@tcp(" + addr + ")/seckill?parseTime=true&loc=UTC"
}

// restartMariaDB starts the private mariadbd (again) on its datadir and port.
func (s *stack) restartMariaDB(dsn string) {
	s.t.Helper()
	if err := s.mysql.start(); err != nil {
		s.t.Fatal(err)
	}
	if err := waitMySQL(s.mysql, dsn, readyTimeout); err != nil {
		s.t.Fatal(err)
	}
}

// startBroker starts `seckill broker` on a free port, which restarts keep.
func (s *stack) startBroker() {
	s.t.Helper()
	addr, err := freeAddr()
	if err != nil {
		s.t.Fatal(err)
	}
	s.broker = s.add(&proc{name: "broker", path: binPath, args: []string{"broker"}, dir: s.dir,
		env: append(cleanEnv(), "SECKILL_ADDR="+addr)})
	s.brokerAddr = addr
	s.base = append(s.base, "SECKILL_KAFKA_BROKERS="+addr)
	s.restartBroker()
}

// restartBroker starts the broker (again, empty) on its port.
func (s *stack) restartBroker() {
	s.t.Helper()
	if err := s.broker.start(); err != nil {
		s.t.Fatal(err)
	}
	if err := waitTCP(s.broker, s.brokerAddr, readyTimeout); err != nil {
		s.t.Fatal(err)
	}
}

// seckill starts `seckill <role>` as instance name on a free HTTP port and
// waits for /readyz. API processes receive load; every process is checked
// for unexpected exits.
func (s *stack) seckill(role, name string) *proc {
	s.t.Helper()
	addr, err := freeAddr()
	if err != nil {
		s.t.Fatal(err)
	}
	env := append(cleanEnv(), chaosEnv...)
	env = append(env, s.base...)
	env = append(env, "SECKILL_HTTP_ADDR="+addr, "SECKILL_INSTANCE_ID="+name)
	if s.mysqlDSN != "" {
		env = append(env, "SECKILL_MYSQL_DSN="+s.mysqlDSN)
	}
	p := s.add(&proc{name: name, path: binPath, args: []string{role}, env: env, dir: s.dir, url: "http://" + addr})
	if role != "worker" {
		s.mu.Lock()
		s.apis = append(s.apis, p)
		s.mu.Unlock()
	} else {
		s.workers = append(s.workers, p)
	}
	s.restartSeckill(p)
	return p
}

// restartSeckill starts p (again) and waits for its /readyz.
func (s *stack) restartSeckill(p *proc) {
	s.t.Helper()
	if err := p.start(); err != nil {
		s.t.Fatal(err)
	}
	if err := waitHTTP(p, "/readyz", readyTimeout); err != nil {
		s.t.Fatalf("%v\n%s", err, p.tail(30))
	}
}

// pickAPI returns the next running API process, round robin, so the load
// spreads over every API of the scenario and avoids dead ones.
func (s *stack) pickAPI() (*proc, error) {
	s.mu.Lock()
	apis := append([]*proc(nil), s.apis...)
	s.mu.Unlock()
	n := uint64(len(apis))
	start := s.rr.Add(1)
	for i := uint64(0); i < n; i++ {
		if p := apis[(start+i)%n]; p.running() {
			return p, nil
		}
	}
	return nil, errNoAPI
}

// createSale creates an item with stock units (in s.buckets stock buckets
// when set) on sale from now for an hour, through the admin API.
func (s *stack) createSale(stock int) int64 {
	s.t.Helper()
	api, err := s.pickAPI()
	if err != nil {
		s.t.Fatal(err)
	}
	now := time.Now().UTC()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := map[string]any{
		"name": "chaos " + s.name, "description": "crash test", "price_cents": 1999, "stock": stock,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
	}
	if s.buckets > 0 {
		body["stock_buckets"] = s.buckets
	}
	r, err := call(ctx, "POST", api.url+"/api/v1/admin/items", s.adminToken, body)
	if err != nil || r.status != 201 || r.num("id") == 0 {
		s.t.Fatalf("create sale: %v %d %s", err, r.status, r.raw)
	}
	if s.buckets > 0 && r.num("stock_buckets") != int64(s.buckets) {
		s.t.Fatalf("create sale: asked for %d stock buckets, got %s", s.buckets, r.raw)
	}
	s.item = r.num("id")
	return s.item
}

// stats reads the admin stats of item from any running API.
func (s *stack) stats(item int64) (reply, error) {
	api, err := s.pickAPI()
	if err != nil {
		return reply{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := call(ctx, "GET", fmt.Sprintf("%s/api/v1/admin/items/%d/stats", api.url, item), s.adminToken, nil)
	if err == nil && r.status != 200 {
		err = fmt.Errorf("stats from %s: %d %s", api.name, r.status, r.raw)
	}
	return r, err
}
