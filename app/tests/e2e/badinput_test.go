package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"seckill/app/auth"
)

// TestBadInputChangesNothing sends malformed, unauthorised and oversized
// requests and checks that each gets its 4xx JSON error and that the sale's
// accounts are exactly as before.
func TestBadInputChangesNothing(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, nil)
	item := in.createSale("guarded", 10, 0)
	future := in.createSale("later", 10, time.Hour)
	tok := in.login("alice")
	expired, _ := auth.NewSigner(b.cfg.TokenSecret, time.Minute, func() time.Time { return time.Now().Add(-2 * time.Hour) }).Issue("alice")
	forged, _ := auth.NewSigner("some-other-secret-xyz", time.Hour, nil).Issue("alice")
	huge := bytes.Repeat([]byte("a"), 1<<20)
	hugeJSON := `{"user_id":"` + string(huge) + `"}`
	purchase := fmt.Sprintf("/api/v1/items/%d/purchase", item)
	before := in.stats(item)

	cases := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}{
		{"unknown item", "POST", "/api/v1/items/999999/purchase", tok, nil, 404, "not_found"},
		{"unknown item page", "GET", "/api/v1/items/999999", "", nil, 404, "not_found"},
		{"malformed id", "POST", "/api/v1/items/abc/purchase", tok, nil, 400, "invalid_request"},
		{"negative id", "GET", "/api/v1/items/-1", "", nil, 400, "invalid_request"},
		{"overflowing id", "GET", "/api/v1/items/99999999999999999999", "", nil, 400, "invalid_request"},
		{"missing token", "POST", purchase, "", nil, 401, "unauthorized"},
		{"forged token", "POST", purchase, forged, nil, 401, "unauthorized"},
		{"expired token", "POST", purchase, expired, nil, 401, "unauthorized"},
		{"garbage token", "POST", purchase, "not.a-token", nil, 401, "unauthorized"},
		{"admin route with user token", "POST", "/api/v1/admin/items", tok, `{}`, 401, "unauthorized"},
		{"not started", "POST", fmt.Sprintf("/api/v1/items/%d/purchase", future), tok, nil, 403, "not_started"},
		{"login bad json", "POST", "/api/v1/login", "", `{"user_id":`, 400, "invalid_json"},
		{"login empty body", "POST", "/api/v1/login", "", "", 400, "invalid_json"},
		{"login unknown field", "POST", "/api/v1/login", "", `{"user_id":"bob","admin":true}`, 400, "invalid_request"},
		{"login bad user id", "POST", "/api/v1/login", "", `{"user_id":"bob smith"}`, 400, "invalid_request"},
		{"login 1 MB body", "POST", "/api/v1/login", "", hugeJSON, 413, "payload_too_large"},
		{"create 1 MB body", "POST", "/api/v1/admin/items", adminToken, hugeJSON, 413, "payload_too_large"},
		// The purchase reads no body, yet the limit is the same on every route.
		{"purchase 1 MB body", "POST", purchase, tok, huge, 413, "payload_too_large"},
		{"item page 1 MB body", "GET", fmt.Sprintf("/api/v1/items/%d", item), "", huge, 413, "payload_too_large"},
		// Valid JSON of the wrong shape is a bad request, not broken JSON.
		{"create array body", "POST", "/api/v1/admin/items", adminToken, `[1,2]`, 400, "invalid_request"},
		{"create bad json", "POST", "/api/v1/admin/items", adminToken, `{"name":`, 400, "invalid_json"},
		{"create zero stock", "POST", "/api/v1/admin/items", adminToken,
			`{"name":"x","price_cents":1,"stock":0,"starts_at":"2026-01-01T00:00:00Z","ends_at":"2027-01-01T00:00:00Z"}`, 400, "invalid_request"},
		{"create window backwards", "POST", "/api/v1/admin/items", adminToken,
			`{"name":"x","price_cents":1,"stock":5,"starts_at":"2027-01-01T00:00:00Z","ends_at":"2026-01-01T00:00:00Z"}`, 400, "invalid_request"},
		{"create bad time", "POST", "/api/v1/admin/items", adminToken,
			`{"name":"x","price_cents":1,"stock":5,"starts_at":"tomorrow","ends_at":"2026-01-01T00:00:00Z"}`, 400, "invalid_request"},
		{"restock zero", "POST", fmt.Sprintf("/api/v1/admin/items/%d/restock", item), adminToken, `{"add":0}`, 400, "invalid_request"},
		{"restock unknown item", "POST", "/api/v1/admin/items/999999/restock", adminToken, `{"add":5}`, 404, "not_found"},
		{"patch nothing", "PATCH", fmt.Sprintf("/api/v1/admin/items/%d", item), adminToken, `{}`, 400, "invalid_request"},
		{"patch bad price", "PATCH", fmt.Sprintf("/api/v1/admin/items/%d", item), adminToken, `{"price_cents":-5}`, 400, "invalid_request"},
		{"stats unknown", "GET", "/api/v1/admin/items/999999/stats", adminToken, nil, 404, "not_found"},
		{"order malformed id", "GET", "/api/v1/orders/nope", tok, nil, 400, "invalid_request"},
		{"order unknown", "GET", "/api/v1/orders/1-" + strings.Repeat("0", 28), tok, nil, 404, "not_found"},
		{"wrong method", "DELETE", "/api/v1/items", "", nil, 405, "method_not_allowed"},
		{"no such route", "GET", "/api/v2/nothing", "", nil, 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := in.do(c.method, c.path, c.token, c.body)
			if r.Status != c.status || r.str("error") != c.code || r.str("message") == "" {
				t.Fatalf("%s %s = %d %s, want %d with error %q and a message", c.method, c.path, r.Status, truncate(r.Raw), c.status, c.code)
			}
		})
	}
	t.Run("purchase 1 MB chunked body", func(t *testing.T) {
		// An io.Reader of unknown length goes out chunked, without a
		// Content-Length to refuse up front.
		req, err := http.NewRequest(http.MethodPost, in.url+purchase, io.MultiReader(bytes.NewReader(huge)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var body map[string]any
		if res.StatusCode != http.StatusRequestEntityTooLarge || json.Unmarshal(raw, &body) != nil || body["error"] != "payload_too_large" {
			t.Fatalf("chunked 1 MB purchase = %d %s, want 413 payload_too_large", res.StatusCode, truncate(raw))
		}
	})
	t.Run("100 KiB header", func(t *testing.T) {
		r := in.doWithHeader("POST", purchase, tok, nil, "X-Padding", strings.Repeat("p", 100<<10))
		if r.Status != 431 || r.str("error") != "headers_too_large" || r.str("message") == "" {
			t.Fatalf("purchase with a 100 KiB header = %d %s, want 431 headers_too_large as JSON", r.Status, truncate(r.Raw))
		}
	})
	for name, key := range map[string]string{"not UTF-8": "\xdb", "a space": "a b", "non-ASCII": "clé", "101 characters": strings.Repeat("k", 101)} {
		t.Run("restock key "+name, func(t *testing.T) {
			// A key the stores cannot hold byte for byte must be refused
			// before the ledger adds a unit the database then refuses.
			r := in.doWithHeader("POST", fmt.Sprintf("/api/v1/admin/items/%d/restock", item), adminToken, `{"add":5}`, "Idempotency-Key", key)
			if r.Status != 400 || r.str("error") != "invalid_request" {
				t.Fatalf("restock with key %q = %d %s, want 400 invalid_request", key, r.Status, truncate(r.Raw))
			}
		})
	}
	items := in.do("GET", "/api/v1/items", "", nil)
	if n := len(items.Body["items"].([]any)); n != 2 {
		t.Fatalf("bad input created items: %d items, want 2", n)
	}
	after := in.stats(item)
	if string(before.Raw) != string(after.Raw) {
		t.Fatalf("bad input changed the sale:\nbefore %s\nafter  %s", before.Raw, after.Raw)
	}
	// Someone else's order is indistinguishable from a missing one.
	r := in.do("POST", purchase, tok, nil)
	if r.Status != 202 {
		t.Fatalf("valid purchase after the bad ones: %d %s", r.Status, r.Raw)
	}
	again := in.do("POST", purchase, tok, nil)
	if again.Status != 409 || again.str("error") != "already_purchased" || again.str("order_id") != r.str("order_id") {
		t.Fatalf("second purchase by the same user: %d %s, want 409 already_purchased with %s", again.Status, again.Raw, r.str("order_id"))
	}
	other := in.login("mallory")
	if o := in.do("GET", "/api/v1/orders/"+r.str("order_id"), other, nil); o.Status != 404 {
		t.Fatalf("another user's order: %d %s, want 404", o.Status, o.Raw)
	}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
