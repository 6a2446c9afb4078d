package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/infra/embedded"
	"seckill/infra/redisbus"
	"seckill/infra/testenv"
)

// TestReconcileCommand runs `seckill reconcile` as an operator would,
// against a running instance on real Redis and MariaDB: the check finds
// planted drift and exits 1 without changing anything, --repair corrects
// it, exits 0 and announces the new stock generation on the instances' bus
// (so their sold-out flags clear at once), and a second check agrees.
func TestReconcileCommand(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	redisAddr := testenv.RedisAddr(t)
	dsn := testenv.MySQLDSN(t)
	topic := "orders-" + testenv.Nonce()
	k, err := embedded.StartKafka("127.0.0.1:0",
		embedded.KafkaTopic{Name: topic, Partitions: 1}, embedded.KafkaTopic{Name: topic + ".dlq", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)

	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.AdminToken = "reconcile-test-admin-token"
	cfg.TokenSecret = "reconcile-test-token-secret-0123"
	cfg.SeedDemo = false
	cfg.InstanceID = "reconcile-test"
	cfg.RedisAddr, cfg.RedisPrefix, cfg.MySQLDSN = redisAddr, prefix, dsn
	cfg.KafkaBrokers, cfg.KafkaTopic, cfg.KafkaDLQTopic, cfg.KafkaParts = strings.Join(k.Brokers(), ","), topic, topic+".dlq", 1
	// The instance must leave the drift to the command under test.
	cfg.ReconcileRepair = false
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := bootstrap.Open(ctx, cfg, bootstrap.Roles{API: true, Worker: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	base := m.URL() + "/api/v1"

	now := time.Now().UTC()
	r := call(t, "POST", base+"/admin/items", cfg.AdminToken, map[string]any{
		"name": "reconcile", "description": "reconcile test", "price_cents": 100, "stock": 5,
		"starts_at": now.Format(time.RFC3339Nano), "ends_at": now.Add(time.Hour).Format(time.RFC3339Nano),
	})
	if r.status != 201 {
		t.Fatalf("create sale: %d %s", r.status, r.raw)
	}
	item := int64(r.body["id"].(float64))
	buyOne := func(user string) reply {
		t.Helper()
		lr := call(t, "POST", base+"/login", "", map[string]string{"user_id": user})
		tok, _ := lr.body["token"].(string)
		if lr.status != 200 || tok == "" {
			t.Fatalf("login %s: %d %s", user, lr.status, lr.raw)
		}
		return call(t, "POST", fmt.Sprintf("%s/items/%d/purchase", base, item), tok, map[string]any{})
	}
	for _, u := range []string{"rc-alice", "rc-bob"} {
		if r := buyOne(u); r.status != 202 {
			t.Fatalf("purchase by %s: %d %s", u, r.status, r.raw)
		}
	}
	stats := func() reply {
		return call(t, "GET", fmt.Sprintf("%s/admin/items/%d/stats", base, item), cfg.AdminToken, nil)
	}
	deadline := time.Now().Add(20 * time.Second)
	for st := stats(); st.body["consistent"] != true || st.body["orders_confirmed"] != float64(2); st = stats() {
		if time.Now().After(deadline) {
			t.Fatalf("the two orders never settled: %s", st.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Plant drift: the ledger forgets the three units still for sale, as a
	// bad manual edit would. Buyers now hear sold out, and this instance
	// raises its sold-out flag.
	saleKey := fmt.Sprintf("%s:{item:%d}:sale", prefix, item)
	if err := rdb.HIncrBy(ctx, saleKey, "stock", -3).Err(); err != nil {
		t.Fatal(err)
	}
	if r := buyOne("rc-carol"); r.status != 409 || r.body["error"] != "sold_out" {
		t.Fatalf("purchase on the drifted ledger: %d %s, want 409 sold_out", r.status, r.raw)
	}

	events := make(chan redisbus.Event, 16)
	bus := redisbus.New(rdb, bootstrap.EventsChannel(prefix), "reconcile-test-listener")
	busCtx, stopBus := context.WithCancel(context.Background())
	defer stopBus()
	go func() { _ = bus.Run(busCtx, func(e redisbus.Event) { events <- e }, nil) }()
	subscribeBy := time.Now().Add(10 * time.Second)
	for !bus.Subscribed() {
		if time.Now().After(subscribeBy) {
			t.Fatal("the test's bus never subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}

	args := []string{"reconcile", "--item", fmt.Sprint(item), "--redis-addr", redisAddr, "--redis-prefix", prefix, "--mysql-dsn", dsn}
	out, code := runSeckill(t, args...)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("item %d: stock off by -3 (want 3)", item)) {
		t.Fatalf("check on planted drift: exit %d, output:\n%s\nwant exit 1 and the drift named", code, out)
	}
	if got, _ := rdb.HGet(ctx, saleKey, "stock").Int64(); got != 0 {
		t.Fatalf("the check without --repair changed the ledger: stock %d, want 0", got)
	}

	out, code = runSeckill(t, append(args, "--repair", "--kafka-brokers", cfg.KafkaBrokers, "--kafka-topic", topic, "--kafka-group", cfg.KafkaGroup)...)
	if code != 0 || !strings.Contains(out, "repaired") {
		t.Fatalf("repair: exit %d, output:\n%s\nwant exit 0 and the repair reported", code, out)
	}
	if got, _ := rdb.HGet(ctx, saleKey, "stock").Int64(); got != 3 {
		t.Fatalf("after the repair the ledger holds %d units, want 3", got)
	}
	wait := time.After(5 * time.Second)
	for announced := false; !announced; {
		select {
		case e := <-events:
			announced = e.Kind == redisbus.KindRestocked && int64(e.Item) == item && e.Gen > 0
		case <-wait:
			t.Fatal("the repair was not announced on the bus: running instances keep their sold-out flags")
		}
	}

	out, code = runSeckill(t, args...)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("item %d: ledger and database agree", item)) {
		t.Fatalf("check after the repair: exit %d, output:\n%s", code, out)
	}
}
