package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/app/bootstrap"
	"seckill/app/config"
)

var both = bootstrap.Roles{API: true, Worker: true}

// attempt is one purchase's outcome.
type attempt struct {
	user, token string
	status      int
	code        string
	orderID     string
}

// spike logs in users and then fires one purchase per token in tokens all at
// once (released by close(start)), returning every outcome.
func spike(t *testing.T, in *instance, item int64, users []string, tokens map[string]string) []attempt {
	t.Helper()
	start := make(chan struct{})
	out := make([]attempt, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Add(1)
		go func(i int, u string) {
			defer wg.Done()
			<-start
			r := in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), tokens[u], nil)
			out[i] = attempt{user: u, token: tokens[u], status: r.Status, code: r.str("error"), orderID: r.str("order_id")}
			if r.Status == 202 && r.Header.Get("Location") != "/api/v1/orders/"+r.str("order_id") {
				t.Errorf("202 without the order's Location: %q", r.Header.Get("Location"))
			}
		}(i, u)
	}
	close(start)
	wg.Wait()
	return out
}

func loginAll(t *testing.T, in *instance, prefix string, n int) ([]string, map[string]string) {
	t.Helper()
	users := make([]string, n)
	tokens := make(map[string]string, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range users {
		users[i] = fmt.Sprintf("%s-%04d", prefix, i)
		wg.Add(1)
		sem <- struct{}{}
		go func(u string) {
			defer wg.Done()
			defer func() { <-sem }()
			tok := in.login(u)
			mu.Lock()
			tokens[u] = tok
			mu.Unlock()
		}(users[i])
	}
	wg.Wait()
	return users, tokens
}

// checkSettledSale asserts every invariant of a finished sale: confirmed
// orders never exceed stock, every 202 ended confirmed (or failed with its
// unit back), and so did every 504 outcome_unknown whose order exists, no
// user has two orders, and the units add up in Redis, the queue and the
// database.
func checkSettledSale(t *testing.T, in *instance, item int64, stock int, attempts []attempt) (confirmed, failed int) {
	t.Helper()
	st := in.waitSettled(item, 60*time.Second)
	accepted := map[string]attempt{}
	for _, a := range attempts {
		switch a.status {
		case 202:
			if prev, dup := accepted[a.user]; dup {
				t.Errorf("user %s got two 202s: %s and %s", a.user, prev.orderID, a.orderID)
			}
			accepted[a.user] = a
		case 504:
			// outcome_unknown: sent, unanswered. The order it names is this
			// buyer's if it exists now that the sale has settled, and is
			// then held to everything a 202's order is.
			if r := in.do("GET", "/api/v1/orders/"+a.orderID, a.token, nil); a.code == "outcome_unknown" && r.Status == 200 {
				if prev, dup := accepted[a.user]; dup {
					t.Errorf("user %s holds two orders: %s and %s", a.user, prev.orderID, a.orderID)
				}
				accepted[a.user] = a
			} else if r.Status != 404 {
				t.Errorf("the order %s named by a 504 (%q): %d %s", a.orderID, a.code, r.Status, r.Raw)
			}
		case 409, 429, 503:
		default:
			t.Errorf("unexpected purchase answer %d %q for %s", a.status, a.code, a.user)
		}
	}
	for _, a := range accepted {
		r := in.do("GET", "/api/v1/orders/"+a.orderID, a.token, nil)
		switch {
		case r.Status == 200 && r.str("status") == "confirmed":
			confirmed++
		case r.Status == 200 && r.str("status") == "failed":
			failed++
		default:
			t.Errorf("accepted order %s ended as %d %s", a.orderID, r.Status, r.Raw)
		}
	}
	if confirmed > stock {
		t.Errorf("OVERSOLD: %d confirmed orders for %d units", confirmed, stock)
	}
	if got := st.num("orders_confirmed"); got != int64(confirmed) {
		t.Errorf("database has %d confirmed orders, the 202s account for %d", got, confirmed)
	}
	if got := st.num("orders_failed"); got != int64(failed) {
		t.Errorf("ledger has %d failed orders, the 202s account for %d", got, failed)
	}
	if st.num("stock_left_redis") != int64(stock-confirmed) || st.num("stock_left_db") != int64(stock-confirmed) {
		t.Errorf("stock not conserved: redis %d, db %d, want %d", st.num("stock_left_redis"), st.num("stock_left_db"), stock-confirmed)
	}
	// No user holds two orders for the item, counted in the database itself.
	var dupUsers int64
	in.Store().DB().Raw("SELECT COUNT(*) FROM (SELECT user_id FROM orders WHERE item_id = ? AND status = 'confirmed' GROUP BY user_id HAVING COUNT(*) > 1) d", item).Scan(&dupUsers)
	if dupUsers != 0 {
		t.Errorf("%d users have two orders for item %d", dupUsers, item)
	}
	return confirmed, failed
}

// TestSaleInvariantsUnderSpike is the end-to-end invariant test: a 100-unit
// sale, 1,000 distinct users buying at once plus repeats from the same
// users; exactly 100 confirmed, nobody twice, stock 0 everywhere, every 202
// confirmed, and the stats consistent.
//
// It runs on the single Redis node and on a three-master Redis Cluster.
func TestSaleInvariantsUnderSpike(t *testing.T) { onBothRedis(t, saleInvariantsUnderSpike) }

func saleInvariantsUnderSpike(t *testing.T, b *backends) {
	in := b.start(t, "api-1", both, nil)
	if _, isCluster := in.Redis().(*redis.ClusterClient); isCluster != b.cfg.RedisClusterMode() {
		t.Fatalf("--redis-addr %q --redis-cluster=%v gave a %T", b.cfg.RedisAddr, b.cfg.RedisCluster, in.Redis())
	}
	const stock, buyers = 100, 1000
	item := in.createSale("spike", stock, 0)
	users, tokens := loginAll(t, in, "spiker", buyers)
	// Every user once, and the first 300 a second time in the same burst.
	all := append(append([]string{}, users...), users[:300]...)
	attempts := spike(t, in, item, all, tokens)

	confirmed, failed := checkSettledSale(t, in, item, stock, attempts)
	if confirmed != stock || failed != 0 {
		t.Fatalf("confirmed %d, failed %d; want exactly %d confirmed and none failed", confirmed, failed, stock)
	}
	st := in.stats(item)
	if st.num("stock_left_redis") != 0 || st.num("stock_left_db") != 0 || st.Body["consistent"] != true {
		t.Fatalf("final stats: %s", st.Raw)
	}
	// A repeat after the sale is refused with 409: sold_out when this
	// instance's sold-out flag answers first (no Redis round trip), or
	// already_purchased with the existing order when Redis is asked.
	var buyer attempt
	for _, a := range attempts {
		if a.status == 202 {
			buyer = a
			break
		}
	}
	r := in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), buyer.token, nil)
	if r.Status != 409 || (r.str("error") != "sold_out" && r.str("order_id") != buyer.orderID) {
		t.Fatalf("repeat buyer: %d %s, want 409 sold_out or already_purchased with order %s", r.Status, r.Raw, buyer.orderID)
	}
}

// TestAcceptedOrdersSurviveKafkaOutage makes every produce fail for a while
// in the middle of a sale. Every 202 must still end confirmed (the relay
// re-publishes from the ledger's outbox) and no unit may leak.
func TestAcceptedOrdersSurviveKafkaOutage(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, nil)
	const stock = 150
	item := in.createSale("outage", stock, 0)
	users, tokens := loginAll(t, in, "outage", 300)

	first := spike(t, in, item, users[:100], tokens)
	b.kafka.SetProduceFailure(true)
	during := spike(t, in, item, users[100:200], tokens)
	accDuring := 0
	for _, a := range during {
		if a.status == 202 {
			accDuring++
		}
	}
	if accDuring == 0 {
		t.Fatal("no purchase was accepted while Kafka was down; the outage did not test the outbox")
	}
	// Hold the outage past the relay's first attempts.
	time.Sleep(1500 * time.Millisecond)
	if b.kafka.ProduceFailures() == 0 {
		t.Fatal("no produce request failed; the fault was not injected")
	}
	b.kafka.SetProduceFailure(false)
	after := spike(t, in, item, users[200:], tokens)

	attempts := append(append(first, during...), after...)
	confirmed, failed := checkSettledSale(t, in, item, stock, attempts)
	if failed != 0 || confirmed != stock {
		t.Fatalf("confirmed %d failed %d, want %d confirmed after the outage", confirmed, failed, stock)
	}
}

// TestUndeliverableOrdersGiveStockBack keeps Kafka down past the relay's
// give-up age: those accepted orders must end failed with their units
// returned (never both confirmed and returned), after which the units sell
// again.
func TestUndeliverableOrdersGiveStockBack(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, func(c *config.Config) {
		c.RelayGiveUp = 1500 * time.Millisecond
		// The outage opens the Kafka produce breaker; a short open period
		// lets the next publishes through well before this test's short
		// give-up age, so only the orders of the outage are given up.
		c.BreakerOpenFor = 200 * time.Millisecond
	})
	const stock = 20
	item := in.createSale("giveup", stock, 0)
	users, tokens := loginAll(t, in, "giveup", 60)

	b.kafka.SetProduceFailure(true)
	lost := spike(t, in, item, users[:10], tokens)
	// Wait until the relay has given every one of them up: recorded failed
	// in the database (the fence) and, a moment later, their units back in
	// Redis, so that every unit is on sale again before the next spike.
	deadline := time.Now().Add(20 * time.Second)
	for st := in.stats(item); st.num("orders_failed") < 10 || st.num("stock_left_redis") != stock; st = in.stats(item) {
		if time.Now().After(deadline) {
			t.Fatalf("orders not given up: %s", st.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.kafka.SetProduceFailure(false)
	for _, a := range lost {
		r := in.do("GET", "/api/v1/orders/"+a.orderID, a.token, nil)
		if r.str("status") != "failed" || r.str("reason") == "" {
			t.Fatalf("given-up order %s: %s", a.orderID, r.Raw)
		}
	}
	// The returned units sell again: 50 more users compete for all 20.
	rest := spike(t, in, item, users[10:], tokens)
	confirmed, failed := checkSettledSale(t, in, item, stock, append(lost, rest...))
	if confirmed != stock || failed != 10 {
		t.Fatalf("confirmed %d failed %d, want %d and 10", confirmed, failed, stock)
	}
}

// TestCrashBetweenLedgerAndQueue simulates an instance dying after the Lua
// script accepted an order and before it reached Kafka: the order is in the
// ledger's outbox only. The relay must deliver it.
func TestCrashBetweenLedgerAndQueue(t *testing.T) { onBothRedis(t, testCrashBetweenLedgerAndQueue) }

func testCrashBetweenLedgerAndQueue(t *testing.T, b *backends) {
	in := b.start(t, "api-1", both, nil)
	item := in.createSale("crash", 5, 0)
	o := in.reserveOnly(item, "crashy")
	// Nothing enqueued it: as if the process died right here.
	in.waitOrder(string(o.ID), in.login("crashy"), "confirmed", 20*time.Second)
	st := in.waitSettled(item, 10*time.Second)
	if st.num("orders_confirmed") != 1 || st.num("stock_left_redis") != 4 {
		t.Fatalf("stats after relay: %s", st.Raw)
	}
}
