package e2e

import (
	"fmt"
	"testing"
	"time"

	"seckill/app/bootstrap"
)

// TestLostAcceptanceIsFound: a buyer whose 202 never arrived retries after
// the sale sold out and hears sold_out, because the sold-out flag answers
// before the one-order-per-user record is reached. GET
// /api/v1/items/{id}/orders tells them the order they hold: queued while no
// worker runs (from the ledger), then confirmed (from the database). It
// shows nobody else's orders, and bad input gets its 4xx.
func TestLostAcceptanceIsFound(t *testing.T) {
	b := newBackends(t)
	api := b.start(t, "api-1", apiOnly, nil)
	item := api.createSale("lost-202", 3, 0)
	path := fmt.Sprintf("/api/v1/items/%d/orders", item)
	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		tokens[u] = api.login("lost202-" + u)
	}

	bought := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		r := buy(api, item, tokens[u])
		if r.Status != 202 {
			t.Fatalf("purchase by %s: %d %s", u, r.Status, r.Raw)
		}
		bought[u] = r.str("order_id") // alice's answer is "lost": she never reads it
	}
	if r := buy(api, item, tokens["dave"]); r.Status != 409 || r.str("error") != "sold_out" {
		t.Fatalf("purchase after the last unit: %d %s, want 409 sold_out", r.Status, r.Raw)
	}
	// Alice retries: the flag answers sold_out, not already_purchased.
	if r := buy(api, item, tokens["alice"]); r.Status != 409 || r.str("error") != "sold_out" {
		t.Fatalf("alice's retry: %d %s, want 409 sold_out from the flag", r.Status, r.Raw)
	}

	ordersOf := func(in *instance, user string) []map[string]any {
		t.Helper()
		r := in.do("GET", path, tokens[user], nil)
		list, ok := r.Body["orders"].([]any)
		if r.Status != 200 || !ok {
			t.Fatalf("GET %s as %s: %d %s", path, user, r.Status, r.Raw)
		}
		out := make([]map[string]any, len(list))
		for i, o := range list {
			out[i], _ = o.(map[string]any)
		}
		return out
	}
	// No worker runs: the order is queued, and only the ledger knows it.
	got := ordersOf(api, "alice")
	if len(got) != 1 || got[0]["order_id"] != bought["alice"] || got[0]["status"] != "queued" || got[0]["user_id"] != "lost202-alice" {
		t.Fatalf("alice's orders while queued: %v; want her order %s, queued", got, bought["alice"])
	}
	if got := ordersOf(api, "bob"); len(got) != 1 || got[0]["order_id"] != bought["bob"] {
		t.Fatalf("bob's orders: %v; want only his own %s", got, bought["bob"])
	}
	if got := ordersOf(api, "erin"); len(got) != 0 {
		t.Fatalf("erin's orders: %v; want none", got)
	}

	for _, c := range []struct {
		path, token string
		status      int
		code        string
	}{
		{path, "", 401, "unauthorized"},
		{"/api/v1/items/abc/orders", tokens["alice"], 400, "invalid_request"},
		{"/api/v1/items/0/orders", tokens["alice"], 400, "invalid_request"},
		{"/api/v1/items/987654321/orders", tokens["alice"], 404, "not_found"},
	} {
		if r := api.do("GET", c.path, c.token, nil); r.Status != c.status || r.str("error") != c.code {
			t.Errorf("GET %s: %d %s, want %d %s", c.path, r.Status, r.Raw, c.status, c.code)
		}
	}

	// A worker confirms the queued orders; the list now comes from the
	// database, and alice can pay for the order she never saw accepted.
	b.start(t, "worker-1", bootstrap.Roles{Worker: true}, nil)
	api.waitOrder(bought["alice"], tokens["alice"], "confirmed", 30*time.Second)
	got = ordersOf(api, "alice")
	if len(got) != 1 || got[0]["order_id"] != bought["alice"] || got[0]["status"] != "confirmed" {
		t.Fatalf("alice's orders once confirmed: %v; want her order, confirmed", got)
	}
	if r := api.do("POST", "/api/v1/orders/"+bought["alice"]+"/pay", tokens["alice"], nil); r.Status != 200 || r.str("status") != "paid" {
		t.Fatalf("paying the found order: %d %s", r.Status, r.Raw)
	}
	st := api.stats(item)
	if st.Body["consistent"] != true || st.num("stock_left_redis") != 0 {
		t.Fatalf("stats at the end: %s", st.Raw)
	}
}
