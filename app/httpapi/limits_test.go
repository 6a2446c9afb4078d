package httpapi

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"seckill/app/metrics"
)

// chunked hides a reader's length, so httptest.NewRequest sets
// ContentLength -1, as the server does for a chunked body.
type chunked struct{ io.Reader }

// TestBodyLimitOnEveryRoute fails if any route, including the purchase that
// never reads its body, accepts a body over MaxBodyBytes, with or without a
// Content-Length, or if such a request changes anything.
func TestBodyLimitOnEveryRoute(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	user := f.userToken("alice")
	admin := "Bearer " + testAdminToken
	huge := bytes.Repeat([]byte("a"), 1<<20)
	justOver := bytes.Repeat([]byte(" "), MaxBodyBytes+1)
	routes := []struct{ method, path, auth string }{
		{"POST", "/api/v1/items/1/purchase", user},
		{"POST", "/api/v1/orders/1-0123456789abcdef0123456789ab/pay", user},
		{"POST", "/api/v1/orders/1-0123456789abcdef0123456789ab/cancel", user},
		{"POST", "/api/v1/login", ""},
		{"POST", "/api/v1/admin/items", admin},
		{"PATCH", "/api/v1/admin/items/1", admin},
		{"POST", "/api/v1/admin/items/1/restock", admin},
		{"GET", "/api/v1/items", ""},
		{"GET", "/healthz", ""},
		{"GET", "/no/such/route", ""},
	}
	bodies := []struct {
		name string
		body func() io.Reader
	}{
		{"1 MiB with length", func() io.Reader { return bytes.NewReader(huge) }},
		{"1 MiB chunked", func() io.Reader { return chunked{bytes.NewReader(huge)} }},
		{"limit+1 chunked", func() io.Reader { return chunked{bytes.NewReader(justOver)} }},
		{"limit+1 with length", func() io.Reader { return bytes.NewReader(justOver) }},
	}
	before := f.store.Writes()
	for _, rt := range routes {
		for _, b := range bodies {
			rec := f.serve(rt.method, rt.path, b.body(), "Authorization", rt.auth, "Content-Type", "application/json")
			if code := errorCode(t, rec); rec.Code != http.StatusRequestEntityTooLarge || code != "payload_too_large" {
				t.Errorf("%s %s, %s: %d %s, want 413 payload_too_large", rt.method, rt.path, b.name, rec.Code, rec.Body.String())
			}
		}
	}
	if got := f.store.Writes(); got != before {
		t.Errorf("oversized bodies changed the stores: %d writes", got-before)
	}
	if f.store.reserve != 0 {
		t.Errorf("an oversized purchase reached the ledger %d times", f.store.reserve)
	}
}

// TestBodiesWithinTheLimitStillWork fails if the limit refuses a body that
// fits, or if a chunked body is lost on its way to the JSON decoder.
func TestBodiesWithinTheLimitStillWork(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	login := `{"user_id":"bob"}` + strings.Repeat(" ", MaxBodyBytes-len(`{"user_id":"bob"}`))
	// The purchase reads its optional {"ticket"} body (an unprotected item
	// ignores the ticket), so a body that fits must reach the decoder whole.
	ticket := `{"ticket":""}` + strings.Repeat(" ", MaxBodyBytes-len(`{"ticket":""}`))
	cases := []struct {
		name   string
		method string
		path   string
		body   io.Reader
		auth   string
		status int
	}{
		{"purchase, no body", "POST", "/api/v1/items/1/purchase", nil, f.userToken("u1"), 202},
		{"purchase, small chunked body", "POST", "/api/v1/items/1/purchase", chunked{strings.NewReader(`{"ticket":""}`)}, f.userToken("u2"), 202},
		{"purchase, body at the limit", "POST", "/api/v1/items/1/purchase", strings.NewReader(ticket), f.userToken("u3"), 202},
		{"purchase, body at the limit chunked", "POST", "/api/v1/items/1/purchase", chunked{strings.NewReader(ticket)}, f.userToken("u4"), 202},
		{"login, chunked", "POST", "/api/v1/login", chunked{strings.NewReader(`{"user_id":"bob"}`)}, "", 200},
		{"login, exactly the limit", "POST", "/api/v1/login", strings.NewReader(login), "", 200},
		{"login, exactly the limit chunked", "POST", "/api/v1/login", chunked{strings.NewReader(login)}, "", 200},
		{"restock, chunked", "POST", "/api/v1/admin/items/1/restock", chunked{strings.NewReader(`{"add":1}`)}, "Bearer " + testAdminToken, 200},
	}
	for _, c := range cases {
		rec := f.serve(c.method, c.path, c.body, "Authorization", c.auth)
		errorCode(t, rec)
		if rec.Code != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, rec.Code, rec.Body.String(), c.status)
		}
	}
}

// TestHeaderLimit fails unless headers over MaxHeaderBytes get the JSON 431
// on the API and on the worker-only ops handler, change nothing, and headers
// within the limit pass.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ops := Ops(metrics.New(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	user := f.userToken("carol")
	before := f.store.Writes()
	for _, c := range []struct {
		name   string
		h      http.Handler
		method string
		path   string
	}{
		{"purchase", f.h, "POST", "/api/v1/items/1/purchase"},
		{"item page", f.h, "GET", "/api/v1/items/1"},
		{"no route", f.h, "GET", "/nothing"},
		{"ops healthz", ops, "GET", "/healthz"},
		{"ops metrics", ops, "GET", "/metrics"},
	} {
		for _, size := range []int{MaxHeaderBytes + 1, 100 << 10} {
			req := httptest.NewRequest(c.method, c.path, nil)
			req.Header.Set("Authorization", user)
			req.Header.Set("X-Padding", strings.Repeat("p", size))
			rec := httptest.NewRecorder()
			c.h.ServeHTTP(rec, req)
			if code := errorCode(t, rec); rec.Code != http.StatusRequestHeaderFieldsTooLarge || code != "headers_too_large" {
				t.Errorf("%s with a %d-byte header: %d %s, want 431 headers_too_large", c.name, size, rec.Code, rec.Body.String())
			}
		}
		// Well within the limit once the request line and other headers
		// are counted.
		req := httptest.NewRequest(c.method, c.path, nil)
		req.Header.Set("Authorization", user)
		req.Header.Set("X-Padding", strings.Repeat("p", MaxHeaderBytes-1024))
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, req)
		if rec.Code == http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s with headers under the limit: 431", c.name)
		}
	}
	// The only write the loop above may have made is the one purchase under
	// the limit.
	if got := f.store.Writes(); got-before > 1 {
		t.Errorf("oversized headers changed the stores: %d writes", got-before-1)
	}
}

// TestEmptyBodyCostsNothing fails if the body check allocates for a request
// without a body, which is every purchase.
func TestEmptyBodyCostsNothing(t *testing.T) {
	s := &server{}
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest(http.MethodPost, "/api/v1/items/1/purchase", nil)
	c.Request.Header.Set("Authorization", "Bearer x.y")
	if n := testing.AllocsPerRun(100, func() { s.bounds(c) }); n != 0 {
		t.Fatalf("bounds allocates %.0f times per bodiless request, want 0", n)
	}
	if c.IsAborted() {
		t.Fatal("bounds refused a bodiless request")
	}
}
