package httpapi

import (
	"strings"
	"testing"

	"seckill/domain/sale"
)

// The JSON fuzz targets send any body through the real router and use
// cases (over memStore) and check the house error contract: never a 5xx,
// every status of 400 or more is a JSON object with an "error" code and a
// message, and a refused request changes nothing.

// fuzzBody sends body to method path with the given headers and checks the
// contract; it returns the error code ("" on success).
func fuzzBody(t *testing.T, f *fixture, method, path, body string, headers ...string) string {
	t.Helper()
	before := f.store.Writes()
	rec := f.serve(method, path, strings.NewReader(body), append([]string{"Content-Type", "application/json"}, headers...)...)
	code := errorCode(t, rec)
	if code != "" {
		if n := f.store.Writes() - before; n != 0 {
			t.Fatalf("%s %s refused with %d %s but made %d writes", method, path, rec.Code, rec.Body.String(), n)
		}
	}
	return code
}

// jsonSeeds are bodies every decoder should see: valid, truncated, wrong
// types, unknown fields, trailing data, deep nesting.
var jsonSeeds = []string{
	``, `{}`, `[]`, `null`, `{"`, `{"a":1}`, `{} {}`, `{}x`, `"str"`, `1e999`,
	strings.Repeat("[", 10000), `{"\u0000":1}`, "{\"x\":\"\xff\"}",
}

// FuzzLoginBody fuzzes POST /api/v1/login.
func FuzzLoginBody(f *testing.F) {
	for _, s := range append(jsonSeeds, `{"user_id":"alice"}`, `{"user_id":"john.smith"}`, `{"user_id":""}`,
		`{"user_id":"bob smith"}`, `{"user_id":1}`, `{"user_id":"a","admin":true}`, `{"user_id":"\u00e9"}`) {
		f.Add(s)
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, body string) {
		fuzzBody(t, fx, "POST", "/api/v1/login", body)
	})
}

// FuzzCreateItemBody fuzzes POST /api/v1/admin/items.
func FuzzCreateItemBody(f *testing.F) {
	for _, s := range append(jsonSeeds,
		`{"name":"x","price_cents":1,"stock":5,"starts_at":"2026-01-01T00:00:00Z","ends_at":"2027-01-01T00:00:00Z"}`,
		`{"name":"x","price_cents":1,"stock":5,"starts_at":"2026-01-01T00:00:00Z","ends_at":"2027-01-01T00:00:00Z","purchase_rate":100,"description":"d"}`,
		`{"name":"x","price_cents":-1,"stock":0,"starts_at":"tomorrow","ends_at":"2026-01-01T00:00:00Z"}`,
		`{"name":"x","price_cents":1,"stock":5,"starts_at":"0001-01-01T00:00:00Z","ends_at":"9999-12-31T23:59:59Z"}`,
		`{"name":"x","price_cents":1,"stock":5,"starts_at":"2026-01-01T00:00:00+23:59","ends_at":"2026-01-01T00:00:00-23:59"}`,
		`{"name":"x","price_cents":9223372036854775807,"stock":9223372036854775807,"starts_at":"2026-01-01T00:00:00Z","ends_at":"2027-01-01T00:00:00Z"}`,
	) {
		f.Add(s)
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, body string) {
		fuzzBody(t, fx, "POST", "/api/v1/admin/items", body, "Authorization", "Bearer "+testAdminToken)
	})
}

// FuzzPatchItemBody fuzzes PATCH /api/v1/admin/items/1.
func FuzzPatchItemBody(f *testing.F) {
	for _, s := range append(jsonSeeds,
		`{"name":"renamed"}`, `{"price_cents":-5}`, `{"name":null}`, `{"description":"`+strings.Repeat("d", 4001)+`"}`,
		`{"starts_at":"2026-11-22T13:00:00Z"}`, `{"ends_at":"2000-01-01T00:00:00Z"}`, `{"purchase_rate":1000001}`,
		`{"starts_at":"2026-11-22T11:00:00Z","ends_at":"2026-11-22T14:00:00Z"}`, `{"stock":5}`,
	) {
		f.Add(s)
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, body string) {
		fuzzBody(t, fx, "PATCH", "/api/v1/admin/items/1", body, "Authorization", "Bearer "+testAdminToken)
	})
}

// FuzzRestockBody fuzzes POST /api/v1/admin/items/1/restock: the body and
// the Idempotency-Key header. A restock is applied only without a key or
// with one that sale.ParseRestockKey accepts.
func FuzzRestockBody(f *testing.F) {
	for _, s := range append(jsonSeeds, `{"add":1}`, `{"add":0}`, `{"add":-1}`, `{"add":10000001}`, `{"add":1.5}`, `{"add":"1"}`) {
		f.Add(s, "")
		f.Add(s, "key-1")
	}
	f.Add(`{"add":3}`, strings.Repeat("k", 101))
	f.Add(`{"add":3}`, "a b")
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, body, key string) {
		// Only what a real server hands a handler: no control bytes, and
		// no surrounding blanks (the server trims them).
		key = strings.Trim(key, " \t")
		if strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			return
		}
		code := fuzzBody(t, fx, "POST", "/api/v1/admin/items/1/restock", body, "Authorization", "Bearer "+testAdminToken, "Idempotency-Key", key)
		if _, err := sale.ParseRestockKey(key); code == "" && key != "" && err != nil {
			t.Fatalf("restock applied with key %q, which ParseRestockKey refuses: %v", key, err)
		}
	})
}
