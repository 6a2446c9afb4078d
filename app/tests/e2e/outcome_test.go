package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"seckill/app/config"
	"seckill/domain/sale"
	"seckill/infra/faultproxy"
)

// The answer contract (docs/PURCHASE-PATH.md): a 503 took nothing, and a
// reservation sent to Redis whose answer never came is 504
// outcome_unknown, never 503, with the next step to find the truth.

// proxiedRedis starts an instance whose Redis is reached through a fault
// proxy, with the production call timeout.
func proxiedRedis(t *testing.T) (*instance, *faultproxy.Proxy) {
	t.Helper()
	b := newBackends(t)
	p, err := faultproxy.Start("127.0.0.1:0", b.cfg.RedisAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	in := b.start(t, "api-1", both, func(c *config.Config) {
		c.RedisCallTimeout = config.Default().RedisCallTimeout
		c.RedisAddr = p.Addr()
	})
	return in, p
}

// ordersOf polls the buyer's orders route until it answers 200 (the ledger
// may still be refusing after a fault), and returns its orders.
func ordersOf(t *testing.T, in *instance, item int64, token string) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := in.do("GET", fmt.Sprintf("/api/v1/items/%d/orders", item), token, nil)
		if r.Status == 200 {
			raw, _ := r.Body["orders"].([]any)
			out := make([]map[string]any, 0, len(raw))
			for _, o := range raw {
				m, _ := o.(map[string]any)
				out = append(out, m)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("orders route after the fault: %d %s", r.Status, r.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLostReplyAnswersOutcomeUnknown: Redis applies a purchase's
// reservation and its reply is lost. The purchase answers 504
// outcome_unknown naming the order and the orders route, not 503; the
// buyer finds that order there, and it ends confirmed. Before the
// contract this purchase answered 503 unavailable "retry in a moment"
// while the buyer held the unit.
func TestLostReplyAnswersOutcomeUnknown(t *testing.T) {
	in, p := proxiedRedis(t)
	item := in.createSale("lost reply", 10, 0)
	tok := in.login("lost-reply-buyer")
	path := fmt.Sprintf("/api/v1/items/%d/purchase", item)
	if r := in.do("POST", path, in.login("warm-up"), nil); r.Status != 202 {
		t.Fatalf("purchase before the fault: %d %s", r.Status, r.Raw)
	}

	p.Set(faultproxy.Fault{Kind: faultproxy.LoseReplies})
	r := in.do("POST", path, tok, nil)
	p.Clear()
	wantURL := fmt.Sprintf("/api/v1/items/%d/orders", item)
	if r.Status != 504 || r.str("error") != "outcome_unknown" || r.str("order_id") == "" || r.str("orders_url") != wantURL {
		t.Fatalf("purchase with its reply lost: %d %s; want 504 outcome_unknown with order_id and orders_url %s", r.Status, r.Raw, wantURL)
	}
	id := r.str("order_id")

	// The documented next step: the order is there (queued or decided).
	var found bool
	for deadline := time.Now().Add(15 * time.Second); !found && time.Now().Before(deadline); {
		for _, o := range ordersOf(t, in, item, tok) {
			found = found || o["order_id"] == id
		}
		if !found {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !found {
		t.Fatalf("the order %s named by the 504 is not in %s", id, wantURL)
	}
	in.waitOrder(id, tok, "confirmed", 30*time.Second)
	// A retry is safe: the one-order rule names the same order.
	if again := in.do("POST", path, tok, nil); again.Status != 409 || again.str("error") != "already_purchased" || again.str("order_id") != id {
		t.Fatalf("retry after the 504: %d %s; want 409 already_purchased %s", again.Status, again.Raw, id)
	}
	st := in.waitSettled(item, 30*time.Second)
	if st.num("orders_confirmed") != 2 || st.num("orders_failed") != 0 || st.num("stock_left_db") != 8 {
		t.Fatalf("after the lost reply: %s; want 2 confirmed, 8 left", st.Raw)
	}
}

// TestBreakerRefusalTakesNothing: with Redis black-holed, purchases time
// out (504 outcome_unknown: sent, no answer) until the ledger's breaker
// opens; from then on they answer 503 unavailable, and a buyer refused
// that way holds nothing, in the ledger or the database, once Redis is
// back and everything sent has settled.
func TestBreakerRefusalTakesNothing(t *testing.T) {
	in, p := proxiedRedis(t)
	item := in.createSale("breaker refusal", 100, 0)
	path := fmt.Sprintf("/api/v1/items/%d/purchase", item)
	tokens := make([]string, 40)
	for i := range tokens {
		tokens[i] = in.login(fmt.Sprintf("refused-%02d", i))
	}
	if r := in.do("POST", path, in.login("warm-up"), nil); r.Status != 202 {
		t.Fatalf("purchase before the fault: %d %s", r.Status, r.Raw)
	}

	p.Set(faultproxy.Fault{Kind: faultproxy.BlackHole})
	refused, unknown := -1, 0
	for i, tok := range tokens {
		r := in.do("POST", path, tok, nil)
		if r.Status == 504 && r.str("error") == "outcome_unknown" {
			unknown++
			continue
		}
		if r.Status == 503 && r.str("error") == "unavailable" && strings.Contains(r.str("message"), "circuit breaker") {
			refused = i
			break
		}
		t.Fatalf("purchase %d with Redis black-holed: %d %s; want 504 outcome_unknown or 503 from the breaker", i, r.Status, r.Raw)
	}
	p.Clear()
	if refused < 0 {
		t.Fatalf("the breaker never refused a purchase (%d outcome_unknown answers)", unknown)
	}
	user := sale.UserID(fmt.Sprintf("refused-%02d", refused))
	if orders := ordersOf(t, in, item, tokens[refused]); len(orders) != 0 {
		t.Fatalf("the buyer refused by the breaker holds %v", orders)
	}
	in.waitSettled(item, 30*time.Second)
	if _, err := in.Ledger().BuyerOrder(context.Background(), sale.ItemID(item), user); !errors.Is(err, sale.ErrOrderNotFound) {
		t.Fatalf("ledger's buyer record for the refused buyer: %v; want none", err)
	}
	if orders := ordersOf(t, in, item, tokens[refused]); len(orders) != 0 {
		t.Fatalf("after settling, the buyer refused by the breaker holds %v", orders)
	}
	t.Logf("%d purchases answered outcome_unknown before the breaker opened", unknown)
}
