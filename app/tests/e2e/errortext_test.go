package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// goWords are what an error body must never show: Go's decoder and type
// names, its reference time layout, package names of this code and of its
// drivers. A client reads the API's fields and formats only.
var goWords = regexp.MustCompile(`Go struct|unmarshal|2006-01-02|mysqlstore|redisstock|rediscache|localcache|kafkaevents|httpapi|gorm|strconv|reflect|runtime|seckill/|dial tcp|context deadline|context canceled|\b(sale|time|json|http|gin|redis|mysql|catalog|purchase|lifecycle|fairness|guard|auth|errors|fmt)\.[A-Z]|\b(mysql|redis|sql|json|catalog|purchase|lifecycle|fairness|guard|auth):`)

// TestErrorBodiesSpeakTheAPI sweeps every route with bad inputs (wrong JSON
// types, broken JSON, bad times, bad and unknown ids, no or wrong tokens)
// and checks that no answer speaks of Go: before, a wrong type answered
// "cannot unmarshal string into Go struct field .price_cents of type
// int64", a bad time showed Go's layout, and a restock error named
// mysqlstore.
func TestErrorBodiesSpeakTheAPI(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, nil)
	item := in.createSale("sweep", 10, 0)
	tok := in.login("alice")
	bodies := []any{
		nil, "", "{", "[]", "[1,2]", `"text"`, "null", "5", `{"x":}`, "\xff\xfe",
		`{"user_id":5}`, `{"ticket":5}`, `{"payment_ref":5}`, `{"add":"ten"}`, `{"add":1e40}`, `{"add":-1}`,
		`{"name":5}`, `{"price_cents":"12"}`, `{"stock":"many"}`, `{"stock":1.5}`, `{"starts_at":5}`,
		`{"starts_at":"tomorrow"}`, `{"ends_at":"2026-13-45T99:00:00Z"}`, `{"purchase_rate":true}`,
		`{"stock_buckets":"2"}`, `{"protection":7}`, `{"description":{"a":1}}`, `{"reason":5}`,
		`{"name":"x","price_cents":1,"stock":5,"starts_at":"2026-01-01T00:00:00Z","ends_at":"2025-01-01T00:00:00Z"}`,
	}
	ids := []string{fmt.Sprint(item), "999999", "abc", "-1", "99999999999999999999"}
	orderIDs := []string{"nope", "1-" + strings.Repeat("0", 28)}
	type route struct{ method, path, token string }
	var routes []route
	add := func(method, path, token string) { routes = append(routes, route{method, path, token}) }
	add("POST", "/api/v1/login", "")
	add("GET", "/api/v1/items", "")
	add("GET", "/api/v2/none", "")
	add("DELETE", "/api/v1/items", "")
	add("POST", "/api/v1/admin/items", adminToken)
	add("POST", "/api/v1/admin/items", tok)
	add("GET", "/api/v1/admin/blocklist", adminToken)
	for _, u := range []string{"bob", "bad%20user", strings.Repeat("u", 200)} {
		add("POST", "/api/v1/admin/blocklist/"+u, adminToken)
		add("DELETE", "/api/v1/admin/blocklist/"+u, adminToken)
	}
	for _, id := range ids {
		add("GET", "/api/v1/items/"+id, "")
		add("POST", "/api/v1/items/"+id+"/purchase", tok)
		add("POST", "/api/v1/items/"+id+"/purchase", "")
		add("GET", "/api/v1/items/"+id+"/challenge", tok)
		add("POST", "/api/v1/items/"+id+"/ticket", tok)
		add("GET", "/api/v1/items/"+id+"/orders", tok)
		add("PATCH", "/api/v1/admin/items/"+id, adminToken)
		add("POST", "/api/v1/admin/items/"+id+"/restock", adminToken)
		add("GET", "/api/v1/admin/items/"+id+"/stats", adminToken)
	}
	for _, o := range orderIDs {
		add("GET", "/api/v1/orders/"+o, tok)
		add("POST", "/api/v1/orders/"+o+"/pay", tok)
		add("POST", "/api/v1/orders/"+o+"/cancel", tok)
	}
	n := 0
	for _, r := range routes {
		for _, body := range bodies {
			res := in.do(r.method, r.path, r.token, body)
			n++
			if m := goWords.FindString(string(res.Raw)); m != "" {
				t.Errorf("%s %s with body %q: %d %s speaks of Go (%q)", r.method, r.path, body, res.Status, truncate(res.Raw), m)
			}
		}
	}
	t.Logf("%d requests swept", n)

	// A key reused with another amount is refused by the database, whose
	// adapter wraps the reason in its own name.
	restock := fmt.Sprintf("/api/v1/admin/items/%d/restock", item)
	in.doWithHeader("POST", restock, adminToken, `{"add":1}`, "Idempotency-Key", "sweep-key-1")
	res := in.doWithHeader("POST", restock, adminToken, `{"add":2}`, "Idempotency-Key", "sweep-key-1")
	if res.Status != 400 || goWords.MatchString(string(res.Raw)) || !strings.Contains(res.str("message"), "Idempotency-Key") {
		t.Errorf("restock reusing a key = %d %s; want 400 naming Idempotency-Key, in the API's words", res.Status, truncate(res.Raw))
	}

	// A wrong type names the field and the type it takes.
	for body, want := range map[string][]string{
		`{"name":"x","price_cents":"12","stock":5,"starts_at":"2026-01-01T00:00:00Z","ends_at":"2027-01-01T00:00:00Z"}`: {"price_cents", "integer"},
		`{"name":"x","price_cents":1,"stock":5,"starts_at":"tomorrow","ends_at":"2027-01-01T00:00:00Z"}`:                {"starts_at", "RFC 3339"},
		`{"name":5}`: {"name", "string"},
	} {
		res := in.do("POST", "/api/v1/admin/items", adminToken, body)
		msg := res.str("message")
		if res.Status != 400 || res.str("error") != "invalid_request" || !strings.Contains(msg, want[0]) || !strings.Contains(msg, want[1]) {
			t.Errorf("create %s = %d %s; want 400 invalid_request naming %s and %s", body, res.Status, truncate(res.Raw), want[0], want[1])
		}
	}
}
