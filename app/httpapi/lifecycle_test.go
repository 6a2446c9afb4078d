package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"seckill/app/lifecycle"
	"seckill/domain/sale"
)

// lifeBook is the lifecycle's database, ledger and payment provider over
// memStore: it holds no confirmed orders, and every decision or charge it
// is asked for counts as a write, so a test can tell that bad input
// reached nothing.
type lifeBook struct{ m *memStore }

func (b lifeBook) write() {
	b.m.mu.Lock()
	b.m.writes++
	b.m.mu.Unlock()
}

func (b lifeBook) Order(context.Context, sale.OrderID) (sale.Order, error) {
	return sale.Order{}, sale.ErrOrderNotFound
}
func (b lifeBook) Pay(context.Context, sale.OrderID, sale.UserID, string, time.Time) (sale.Order, bool, error) {
	b.write()
	return sale.Order{}, false, sale.ErrOrderNotFound
}
func (b lifeBook) Cancel(context.Context, sale.OrderID, sale.UserID, time.Time) (sale.Order, bool, error) {
	b.write()
	return sale.Order{}, false, sale.ErrOrderNotFound
}
func (b lifeBook) Expire(context.Context, []sale.OrderID, time.Time) ([]sale.OrderID, error) {
	b.write()
	return nil, nil
}
func (b lifeBook) DueForExpiry(context.Context, time.Time, int) ([]sale.OrderID, error) {
	return nil, nil
}
func (b lifeBook) RecentlyReturned(context.Context, time.Time, int) ([]sale.OrderID, error) {
	return nil, nil
}
func (b lifeBook) Return(context.Context, ...sale.OrderID) ([]lifecycle.Return, error) {
	b.write()
	return nil, nil
}
func (b lifeBook) Charge(context.Context, sale.Order, string) (string, error) {
	b.write()
	return "x", nil
}
func (b lifeBook) Refund(context.Context, sale.Order, string) error { b.write(); return nil }

// TestLifecycleRoutesRefuseBadInput: malformed ids, bodies and references on
// the pay and cancel routes get a JSON 4xx with the right code, and nothing
// is decided, charged or returned.
func TestLifecycleRoutesRefuseBadInput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	user := f.userToken("alice")
	good := string(sale.NewOrderID(1, testNow))
	cases := []struct {
		name, method, path, auth, body, ctype string
		status                                int
		code                                  string
	}{
		{"pay without a token", "POST", "/api/v1/orders/" + good + "/pay", "", "", "", 401, "unauthorized"},
		{"cancel without a token", "POST", "/api/v1/orders/" + good + "/cancel", "", "", "", 401, "unauthorized"},
		{"pay a malformed id", "POST", "/api/v1/orders/1-xyz/pay", user, "", "", 400, "invalid_request"},
		{"cancel a malformed id", "POST", "/api/v1/orders/01-" + good[2:] + "/cancel", user, "", "", 400, "invalid_request"},
		{"pay with broken JSON", "POST", "/api/v1/orders/" + good + "/pay", user, `{"payment_ref":`, "application/json", 400, "invalid_json"},
		{"pay with an unknown field", "POST", "/api/v1/orders/" + good + "/pay", user, `{"amount":5}`, "application/json", 400, "invalid_request"},
		{"pay with trailing data", "POST", "/api/v1/orders/" + good + "/pay", user, `{} {}`, "application/json", 400, "invalid_json"},
		{"pay with a ref of the wrong type", "POST", "/api/v1/orders/" + good + "/pay", user, `{"payment_ref":5}`, "application/json", 400, "invalid_request"}, // valid JSON, wrong type: names the field
		{"pay with a ref too long", "POST", "/api/v1/orders/" + good + "/pay", user, `{"payment_ref":"` + strings.Repeat("a", 129) + `"}`, "application/json", 400, "invalid_request"},
		{"pay with a ref with a space", "POST", "/api/v1/orders/" + good + "/pay", user, `{"payment_ref":"a b"}`, "application/json", 400, "invalid_request"},
		{"pay with a non-ASCII ref", "POST", "/api/v1/orders/" + good + "/pay", user, `{"payment_ref":"caf\u00e9"}`, "application/json", 400, "invalid_request"},
		{"pay with a text body", "POST", "/api/v1/orders/" + good + "/pay", user, `ref`, "text/plain", 415, "unsupported_media_type"},
		{"GET on the pay route", "GET", "/api/v1/orders/" + good + "/pay", user, "", "", 405, "method_not_allowed"},
	}
	before := f.store.Writes()
	for _, c := range cases {
		var headers []string
		if c.auth != "" {
			headers = append(headers, "Authorization", c.auth)
		}
		if c.ctype != "" {
			headers = append(headers, "Content-Type", c.ctype)
		}
		var body *strings.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		var rec = f.serve(c.method, c.path, nilIfEmpty(body), headers...)
		if code := errorCode(t, rec); rec.Code != c.status || code != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, rec.Code, rec.Body.String(), c.status, c.code)
		}
	}
	if got := f.store.Writes(); got != before {
		t.Errorf("bad input reached the lifecycle: %d decisions, charges or returns", got-before)
	}
	// A well-formed request for an order that does not exist is a 404, and
	// nothing is charged.
	rec := f.serve("POST", "/api/v1/orders/"+good+"/pay", strings.NewReader(`{"payment_ref":"ok-1"}`), "Authorization", user, "Content-Type", "application/json")
	if code := errorCode(t, rec); rec.Code != http.StatusNotFound || code != "not_found" {
		t.Errorf("pay of an unknown order: %d %s", rec.Code, rec.Body.String())
	}
	if got := f.store.Writes(); got != before {
		t.Errorf("paying an unknown order charged or decided something: %d", got-before)
	}
}

func nilIfEmpty(r *strings.Reader) interface{ Read([]byte) (int, error) } {
	if r == nil {
		return nil
	}
	return r
}
