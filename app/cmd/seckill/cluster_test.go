package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"seckill/infra/testenv"
)

// TestTwoInstancesOnRedisCluster is the Redis Cluster acceptance test, run
// from outside: two `seckill all` processes (this package's main, the test
// binary re-executed as the CLI test does, so CI builds nothing extra) and
// one `seckill broker`, on a real three-master Redis Cluster named by a
// comma-separated --redis-addr, with a fresh MariaDB database. 2,000 users
// try twice each, once through each instance, to buy 200 units: the
// database must end with exactly 200 live orders, none twice for a user, and
// the ledger consistent. Then a PATCH through one instance must reach both
// instances' item pages within 1.5 s, with the local cache's TTL set far
// above that, so only the cluster's pub/sub can have carried it to the other.
func TestTwoInstancesOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes and sells 200 units to 2,000 users; skipped with -short")
	}
	t.Parallel()
	addrs := testenv.RedisClusterAddrs(t)
	dsn := testenv.MySQLDSN(t)
	nonce := testenv.Nonce()
	const admin = "cluster-admin-token-0123456789"

	brokerAddr := freeLoopback(t)
	startProc(t, "broker", nil, "broker", "--addr", brokerAddr)
	waitDial(t, brokerAddr)

	env := []string{
		"SECKILL_REDIS_ADDR=" + strings.Join(addrs, ","),
		"SECKILL_REDIS_PREFIX=acc" + nonce,
		"SECKILL_MYSQL_DSN=" + dsn,
		"SECKILL_KAFKA_BROKERS=" + brokerAddr,
		"SECKILL_ADMIN_TOKEN=" + admin,
		"SECKILL_TOKEN_SECRET=cluster-secret-" + nonce,
		"SECKILL_SEED_DEMO=false",
		"SECKILL_LOG_LEVEL=warn",
		// Long enough that only an invalidation over the bus can make the
		// PATCH visible on the other instance within 1.5 s.
		"SECKILL_LOCAL_CACHE_TTL=1m",
		// The processes carry the race detector (this is a -race test
		// binary) on two shared cores; the same headroom app/tests/e2e gives.
		"SECKILL_REDIS_CALL_TIMEOUT=1s",
	}
	var urls []string
	for i := 1; i <= 2; i++ {
		addr := freeLoopback(t)
		name := fmt.Sprintf("all-%d", i)
		startProc(t, name, append(env, "SECKILL_HTTP_ADDR="+addr, "SECKILL_INSTANCE_ID="+name), "all")
		urls = append(urls, "http://"+addr)
	}
	for _, u := range urls {
		waitReady(t, u)
	}

	now := time.Now().UTC()
	r := call(t, "POST", urls[0]+"/api/v1/admin/items", admin, map[string]any{
		"name": "cluster sale", "description": "acceptance", "price_cents": 1999, "stock": 200,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
	})
	if r.status != 201 {
		t.Fatalf("create sale: %d %s", r.status, r.raw)
	}
	item := int64(r.body["id"].(float64))

	// 2,000 users, each trying twice: first through one instance, then
	// through the other, all at once.
	const users, stock = 2000, 200
	var accepted, soldOut, other atomic.Int64
	var mu sync.Mutex
	others := map[string]int{}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				user := fmt.Sprintf("cu%s-%d", nonce, u)
				lr := call(t, "POST", urls[u%2]+"/api/v1/login", "", map[string]string{"user_id": user})
				token, _ := lr.body["token"].(string)
				if lr.status != 200 || token == "" {
					t.Errorf("login %s: %d %s", user, lr.status, lr.raw)
					continue
				}
				for attempt := range 2 {
					pr := call(t, "POST", fmt.Sprintf("%s/api/v1/items/%d/purchase", urls[(u+attempt)%2], item), token, nil)
					switch pr.status {
					case 202:
						accepted.Add(1)
					case 409:
						soldOut.Add(1) // sold_out or already_purchased
					default:
						other.Add(1)
						mu.Lock()
						others[fmt.Sprintf("%d %s", pr.status, pr.body["error"])]++
						mu.Unlock()
					}
				}
			}
		}()
	}
	start := time.Now()
	for u := range users {
		work <- u
	}
	close(work)
	wg.Wait()
	t.Logf("%d attempts in %s: %d accepted, %d refused with 409, %d other %v",
		2*users, time.Since(start).Round(time.Millisecond), accepted.Load(), soldOut.Load(), other.Load(), others)
	if accepted.Load() > stock {
		t.Fatalf("%d purchases accepted for %d units", accepted.Load(), stock)
	}

	// The database decides: wait until the workers have written every
	// order and the ledger agrees, then count in SQL.
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	var live, failed, dupUsers int
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := db.QueryRowContext(ctx, `SELECT
			COALESCE(SUM(status IN ('confirmed','paid')), 0), COALESCE(SUM(status = 'failed'), 0)
			FROM orders WHERE item_id = ?`, item).Scan(&live, &failed)
		if err == nil {
			err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT user_id FROM orders
				WHERE item_id = ? GROUP BY user_id HAVING COUNT(*) > 1) d`, item).Scan(&dupUsers)
		}
		cancel()
		if err != nil {
			t.Fatalf("count orders: %v", err)
		}
		st := call(t, "GET", fmt.Sprintf("%s/api/v1/admin/items/%d/stats", urls[1], item), admin, nil)
		settled := st.status == 200 && st.body["consistent"] == true && st.body["orders_pending"] == float64(0)
		if live == stock && settled {
			if st.body["stock_left_redis"] != float64(0) || st.body["stock_left_db"] != float64(0) {
				t.Fatalf("sold %d but stats say stock is left: %s", live, st.raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d live orders (want exactly %d), %d failed; stats %d %s", live, stock, failed, st.status, st.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dupUsers != 0 {
		t.Fatalf("%d users hold more than one order", dupUsers)
	}
	// A PATCH through instance 1 reaches both instances' item pages: warm
	// both local caches first, so each has a stale copy to drop.
	itemURL := func(u string) string { return fmt.Sprintf("%s/api/v1/items/%d", u, item) }
	for _, u := range urls {
		for range 2 {
			if g := call(t, "GET", itemURL(u), "", nil); g.status != 200 || g.body["name"] != "cluster sale" {
				t.Fatalf("item through %s: %d %s", u, g.status, g.raw)
			}
		}
	}
	newName := "renamed " + nonce
	patched := time.Now()
	if p := call(t, "PATCH", fmt.Sprintf("%s/api/v1/admin/items/%d", urls[0], item), admin, map[string]any{"name": newName}); p.status != 200 {
		t.Fatalf("PATCH through instance 1: %d %s", p.status, p.raw)
	}
	for i, u := range urls {
		for {
			g := call(t, "GET", itemURL(u), "", nil)
			if g.status == 200 && g.body["name"] == newName {
				took := time.Since(patched)
				t.Logf("PATCH through instance 1 visible through instance %d after %s", i+1, took.Round(time.Millisecond))
				if took > 1500*time.Millisecond {
					t.Fatalf("PATCH took %s to reach instance %d, want at most 1.5 s", took, i+1)
				}
				break
			}
			if time.Since(patched) > 1500*time.Millisecond {
				t.Fatalf("instance %d still serves %d %s 1.5 s after the PATCH", i+1, g.status, g.raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// startProc runs the test binary as seckill with args and the given SECKILL_*
// settings (and none of the caller's), and stops it when the test ends:
// SIGTERM, then SIGKILL after 10 s. On failure its output is logged.
func startProc(t *testing.T, name string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECKILL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, env...), asMainEnv+"=1")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("--- %s output (last 40 lines):\n%s", name, lastLines(out.String(), 40))
		}
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitDial(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections after 30 s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(url + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not ready after 60 s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type reply struct {
	status int
	body   map[string]any
	raw    string
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// call sends a JSON request; a transport error is reported as status 0.
func call(t *testing.T, method, url, token string, body any) reply {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return reply{}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return reply{raw: err.Error()}
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := reply{status: res.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}
