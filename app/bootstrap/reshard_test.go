package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/app/breaker"
	"seckill/domain/sale"
	"seckill/infra/redisstock"
	"seckill/infra/testenv"
)

// TestMain stops the private Redis Cluster testenv starts for this
// package's tests.
func TestMain(m *testing.M) { testenv.Main(m) }

// slotMove is one slot's migration between two masters of the test
// cluster, driven by hand as redis-cli --cluster reshard drives it.
type slotMove struct {
	slot     int
	src, dst *redis.Client
	srcID    string
	dstID    string
	dstAddr  string
	masters  []string // every master's address, for SETSLOT NODE
	finished bool
}

// startSlotMove opens the migration of key's slot from its master to
// another master (IMPORTING on the target, MIGRATING on the source) and
// registers a cleanup that finishes it, so the shared test cluster is
// left stable whatever the test does.
func startSlotMove(t *testing.T, ctx context.Context, addrs []string, key string) *slotMove {
	t.Helper()
	any0 := redis.NewClient(&redis.Options{Addr: addrs[0]})
	defer any0.Close()
	slot, err := any0.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := any0.ClusterNodes(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	m := &slotMove{slot: int(slot)}
	var srcAddr string
	for _, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		m.masters = append(m.masters, addr)
		owns := false
		for _, r := range f[8:] {
			lo, hi, found := strings.Cut(r, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			if found {
				b, _ = strconv.Atoi(hi)
			}
			owns = owns || (err1 == nil && int(slot) >= a && int(slot) <= b)
		}
		switch {
		case owns:
			m.srcID, srcAddr = f[0], addr
		case m.dstID == "" && len(f) > 8:
			m.dstID, m.dstAddr = f[0], addr
		}
	}
	if m.srcID == "" || m.dstID == "" {
		t.Fatalf("slot %d: no owner or no other master in\n%s", slot, raw)
	}
	m.src = redis.NewClient(&redis.Options{Addr: srcAddr, MaxRetries: -1})
	m.dst = redis.NewClient(&redis.Options{Addr: m.dstAddr, MaxRetries: -1})
	t.Cleanup(func() {
		if !m.finished {
			m.finish(t, context.Background())
		}
		m.src.Close()
		m.dst.Close()
	})
	if err := m.dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", m.srcID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := m.src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", m.dstID).Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// migrate moves one key of the slot from the source to the target.
func (m *slotMove) migrate(t *testing.T, ctx context.Context, key string) {
	t.Helper()
	host, port, _ := strings.Cut(m.dstAddr, ":")
	if err := m.src.Do(ctx, "MIGRATE", host, port, "", 0, 5000, "KEYS", key).Err(); err != nil {
		t.Fatalf("MIGRATE %s: %v", key, err)
	}
}

// finish moves the slot's remaining keys and gives the slot to the target
// on every master.
func (m *slotMove) finish(t *testing.T, ctx context.Context) {
	t.Helper()
	m.finished = true
	for range 1000 {
		keys, err := m.src.ClusterGetKeysInSlot(ctx, m.slot, 100).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		for _, k := range keys {
			m.migrate(t, ctx, k)
		}
	}
	for _, addr := range append([]string{m.dstAddr}, m.masters...) {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		err := c.Do(ctx, "CLUSTER", "SETSLOT", m.slot, "NODE", m.dstID).Err()
		c.Close()
		if err != nil {
			t.Fatalf("%s: SETSLOT %d NODE: %v", addr, m.slot, err)
		}
	}
}

// TestLedgerBreakerSurvivesASlotMigration moves the slot of a sale's keys
// to another master and stops half way, with the sale key moved and its
// buyers, pending and outbox keys not yet: the layout purchases meet
// during a live reshard. The source answers the reserve script TRYAGAIN
// (its keys are split; go-redis retries three times, then returns it), so
// every purchase of that bucket fails, and nothing is reserved. Then every
// key has moved and the source answers ASK, and once the slot is handed
// over it answers MOVED. Those answers must not open
// the ledger's breaker, which would refuse every purchase,
// those of buckets on other masters too (the redis-cluster-reshard chaos
// scenario: 481 of 538 attempts in a 2 s move were refused by the open
// breaker). Once the slot has moved, the same sale sells again, and only
// what sold after the move is gone from its stock.
func TestLedgerBreakerSurvivesASlotMigration(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	_, prefix := testenv.RedisCluster(t) // a fresh prefix, deleted afterwards
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := NewRedisClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: true})
	defer rdb.Close()
	store := redisstock.New(rdb, redisstock.Options{Prefix: prefix})
	defer store.Close()
	now := time.Now()
	it := sale.Item{ID: 7, Name: "reshard", PriceCents: 100, StockTotal: 10, StockLeft: 10,
		StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), StockBuckets: 1}
	if err := store.Open(ctx, it); err != nil {
		t.Fatal(err)
	}
	// One sale before the move, so every key of the reserve script exists
	// on the source (pending and outbox too) and the split below is real.
	if r, err := store.Reserve(ctx, sale.NewOrder(it, "before", time.Now())); err != nil || r.Outcome != sale.Accepted {
		t.Fatalf("reserve before the move: %+v, %v", r, err)
	}

	saleKey := prefix + ":{item:7}:sale"
	m := startSlotMove(t, ctx, addrs, saleKey)
	m.migrate(t, ctx, saleKey)

	b := breaker.NewBreaker("redis-ledger", breaker.Settings{CallTimeout: time.Second, OpenFor: time.Hour})
	ledger := breaker.NewLedger(store, b)
	for i := range 20 {
		r, err := ledger.Reserve(ctx, sale.NewOrder(it, sale.UserID(fmt.Sprintf("split-%d", i)), time.Now()))
		if !redis.IsTryAgainError(err) {
			t.Fatalf("reserve %d with the slot's keys split: %+v, %v; want TRYAGAIN", i, r, err)
		}
		if errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("reserve %d refused by the breaker: %v", i, err)
		}
	}
	if st := b.Stats(); b.State() != "closed" || st.Failures != 0 || st.Opened != 0 {
		t.Errorf("after 20 TRYAGAIN answers the ledger breaker is %s (%+v); want closed, no failure counted", b.State(), st)
	}

	// Every key moved, the slot not yet handed over: the source answers
	// ASK. go-redis follows it; a client out of redirects (here one
	// allowed none; in the chaos run, TRYAGAIN retries had used them up)
	// returns it, and that must not count either.
	for _, k := range []string{"buyers", "pending", "outbox"} {
		m.migrate(t, ctx, prefix+":{item:7}:"+k)
	}
	noRedirects := NewRedisClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: true, MaxRedirects: -1})
	defer noRedirects.Close()
	bare := redisstock.New(noRedirects, redisstock.Options{Prefix: prefix})
	defer bare.Close()
	asked := breaker.NewLedger(bare, b)
	for i := range 20 {
		r, err := asked.Reserve(ctx, sale.NewOrder(it, sale.UserID(fmt.Sprintf("asked-%d", i)), time.Now()))
		if _, ok := redis.IsAskError(err); !ok {
			t.Fatalf("reserve %d with every key moved, no redirects allowed: %+v, %v; want ASK", i, r, err)
		}
	}
	if st := b.Stats(); b.State() != "closed" || st.Failures != 0 || st.Opened != 0 {
		t.Errorf("after 20 ASK answers the ledger breaker is %s (%+v); want closed, no failure counted", b.State(), st)
	}
	if r, err := ledger.Reserve(ctx, sale.NewOrder(it, "followed", time.Now())); err != nil || r.Outcome != sale.Accepted {
		t.Fatalf("reserve with every key moved, ASK followed: %+v, %v", r, err)
	}

	m.finish(t, ctx)
	// The slot has moved; the client without redirects still routes by
	// the map it loaded a moment ago, so the source answers MOVED.
	if _, err := asked.Reserve(ctx, sale.NewOrder(it, "moved", time.Now())); err != nil {
		if _, ok := redis.IsMovedError(err); !ok {
			t.Fatalf("reserve after the move by the old map: %v; want MOVED", err)
		}
	} else {
		t.Fatal("reserve after the move by the old map went through; want MOVED")
	}
	if st := b.Stats(); st.Failures != 0 {
		t.Errorf("a MOVED answer counted as a ledger failure (%+v)", st)
	}
	r, err := ledger.Reserve(ctx, sale.NewOrder(it, "after", time.Now()))
	if err != nil || r.Outcome != sale.Accepted {
		t.Fatalf("reserve after the move: %+v, %v", r, err)
	}
	left, err := store.StockLeft(ctx, it.ID)
	if err != nil {
		t.Fatal(err)
	}
	if left[it.ID] != 7 {
		t.Errorf("stock left %d after the move, want 7: one sold before, none with the keys split, one on the target by ASK, one after", left[it.ID])
	}
}

// slowSeen polls health every few milliseconds until stop is closed and
// reports whether it ever said a round trip had waited longer than d.
func slowSeen(health *breaker.RedisHealth, d time.Duration, stop <-chan struct{}) <-chan bool {
	out := make(chan bool, 1)
	go func() {
		seen := false
		for {
			seen = seen || health.Slow(d)
			select {
			case <-stop:
				out <- seen
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return out
}

// TestRedisHealthTimesRoundTripsNotRetryPauses builds a cluster client as
// bootstrap builds the ledger's, with the health watcher the ledger's
// guard consults, and sends it a script whose keys a slot migration has
// split. go-redis retries the TRYAGAIN three times, pausing between tries
// (long pauses here, 100-200 ms each), and the watcher must not take
// those pauses for a server slow to answer: watching the whole command
// (hooked on the cluster client), it did, and the guard then gave up
// purchases at its 150 ms deadline and counted them as Redis failures
// during a live reshard. A round trip that really waits on a node (a
// script spinning 300 ms) must still show as slow.
func TestRedisHealthTimesRoundTripsNotRetryPauses(t *testing.T) {
	addrs := testenv.RedisClusterAddrs(t)
	plain, prefix := testenv.RedisCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	health := breaker.NewRedisHealth()
	rdb := NewRedisClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: true,
		MinRetryBackoff: 100 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond}, health)
	defer rdb.Close()
	a, b := prefix+":{split}:a", prefix+":{split}:b"
	for _, k := range []string{a, b} {
		if err := plain.Set(ctx, k, 1, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	m := startSlotMove(t, ctx, addrs, a)
	m.migrate(t, ctx, a)

	// Well above a loopback round trip even on a loaded machine, well below
	// the three pauses together and the spinning script.
	const slow = 100 * time.Millisecond
	for _, via := range []string{"command", "pipeline"} {
		stop := make(chan struct{})
		seen := slowSeen(health, slow, stop)
		start := time.Now()
		var err error
		if via == "command" {
			err = rdb.Eval(ctx, "return 1", []string{a, b}).Err()
		} else {
			pipe := rdb.Pipeline()
			cmd := pipe.Eval(ctx, "return 1", []string{a, b})
			_, _ = pipe.Exec(ctx)
			err = cmd.Err()
		}
		took := time.Since(start)
		close(stop)
		if !redis.IsTryAgainError(err) || took < 3*100*time.Millisecond {
			t.Fatalf("%s on split keys: %v after %s; want TRYAGAIN after three retry pauses", via, err, took)
		}
		if <-seen {
			t.Errorf("%s: the health watcher called Redis slow (a round trip over %s) while go-redis paused between retries for %s", via, slow, took)
		}
	}

	// A node that really takes 300 ms to answer.
	spin := `local t0 = redis.call('TIME')
repeat local t = redis.call('TIME') until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 300000
return 1`
	stop := make(chan struct{})
	seen := slowSeen(health, slow, stop)
	err := rdb.Eval(ctx, spin, []string{prefix + ":{spin}"}).Err()
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if !<-seen {
		t.Errorf("the health watcher never saw the 300 ms round trip as slower than %s", slow)
	}
}
