package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestSplitHotItemSellsEveryUnit runs the spike on an item whose stock is
// split over three buckets: every unit is sold and confirmed, nobody buys
// twice, stock is 0 in Redis (over all buckets) and in the database, and
// the stats add up. Bad stock_buckets values are refused with 400 and
// create nothing. It runs on the single Redis node and on a three-master
// Redis Cluster, where the three buckets sit on three masters.
func TestSplitHotItemSellsEveryUnit(t *testing.T) {
	t.Run("redis", func(t *testing.T) { splitHotItemSellsEveryUnit(t, newBackends(t)) })
	t.Run("cluster", func(t *testing.T) { splitHotItemSellsEveryUnit(t, newClusterBackends(t)) })
}

func splitHotItemSellsEveryUnit(t *testing.T, b *backends) {
	in := b.start(t, "api-1", both, nil)
	now := time.Now().UTC()
	body := func(buckets any) map[string]any {
		m := map[string]any{
			"name": "hot", "description": "e2e", "price_cents": 1999, "stock": 90,
			"starts_at": now.Format(time.RFC3339Nano), "ends_at": now.Add(time.Hour).Format(time.RFC3339Nano),
		}
		if buckets != nil {
			m["stock_buckets"] = buckets
		}
		return m
	}
	countItems := func() (n int64) {
		in.Store().DB().Raw("SELECT COUNT(*) FROM items").Scan(&n)
		return n
	}
	before := countItems()
	// Out of range is invalid_request; not an integer at all, invalid_json.
	for bad, code := range map[any]string{0: "invalid_request", -1: "invalid_request", 17: "invalid_request", "three": "invalid_json", 1.5: "invalid_json"} {
		r := in.do("POST", "/api/v1/admin/items", adminToken, body(bad))
		if r.Status != 400 || r.str("error") != code {
			t.Fatalf("stock_buckets %v: %d %s, want 400 %s", bad, r.Status, r.Raw, code)
		}
	}
	if after := countItems(); after != before {
		t.Fatalf("bad creates left %d items, had %d", after, before)
	}
	if r := in.do("POST", "/api/v1/admin/items", adminToken, body(nil)); r.Status != 201 || r.num("stock_buckets") != 1 {
		t.Fatalf("default stock_buckets: %d %s, want 201 with 1", r.Status, r.Raw)
	}
	r := in.do("POST", "/api/v1/admin/items", adminToken, body(3))
	if r.Status != 201 || r.num("stock_buckets") != 3 {
		t.Fatalf("create with 3 buckets: %d %s", r.Status, r.Raw)
	}
	item := r.num("id")
	if g := in.do("GET", fmt.Sprintf("/api/v1/items/%d", item), "", nil); g.num("stock_buckets") != 3 || g.num("stock_left") != 90 {
		t.Fatalf("item JSON: %s", g.Raw)
	}

	const stock = 90
	users, tokens := loginAll(t, in, "hot", 600)
	all := append(append([]string{}, users...), users[:200]...)
	attempts := spike(t, in, item, all, tokens)
	busy := 0
	for _, a := range attempts {
		if a.status == 503 {
			busy++
		}
	}
	confirmed, failed := checkSettledSale(t, in, item, stock, attempts)
	if confirmed != stock || failed != 0 {
		t.Fatalf("confirmed %d, failed %d (%d answered 503); want every one of %d units confirmed", confirmed, failed, busy, stock)
	}
	st := in.stats(item)
	if st.num("stock_left_redis") != 0 || st.num("stock_left_db") != 0 || st.Body["consistent"] != true {
		t.Fatalf("final stats: %s", st.Raw)
	}
	t.Logf("3 buckets: %d confirmed of %d, %d attempts answered 503 while units moved", confirmed, stock, busy)
}
