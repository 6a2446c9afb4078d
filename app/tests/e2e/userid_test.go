package e2e

import (
	"fmt"
	"testing"
)

// TestDottedUserIDBuys fails if a user id that login accepts is refused
// later: "john.smith" must log in, buy (202) and read its own order.
func TestDottedUserIDBuys(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, nil)
	item := in.createSale("dotted", 5, 0)
	tok := in.login("john.smith")
	r := in.do("POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), tok, nil)
	if r.Status != 202 || r.str("order_id") == "" {
		t.Fatalf("purchase by john.smith: %d %s, want 202 with an order id", r.Status, r.Raw)
	}
	o := in.do("GET", "/api/v1/orders/"+r.str("order_id"), tok, nil)
	if o.Status != 200 || o.str("user_id") != "john.smith" {
		t.Fatalf("order of john.smith: %d %s, want 200 for user john.smith", o.Status, o.Raw)
	}
}
