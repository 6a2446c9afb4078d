// Package labhttp drives a lab system through its public HTTP API, the way
// a room of buyers would: log in, buy, look an order up, pay. The labs use
// it so that what they measure is what a client sees, and so that the
// dashboard shows the same traffic.
package labhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Client talks to one system. It is safe for concurrent use.
type Client struct {
	base  string
	admin string
	hc    *http.Client
}

// New returns a client for the API at base (http://host:port) using the
// admin bearer token admin for admin calls. timeout bounds each request.
func New(base, admin string, timeout time.Duration) *Client {
	return &Client{base: base, admin: admin, hc: &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second,
		},
	}}
}

// Close drops the client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Reply is one decoded answer.
type Reply struct {
	Status int
	Body   map[string]any
	// Took is the round trip as the client saw it.
	Took time.Duration
	// Err is a transport error (no answer at all); Status is 0 then.
	Err error
}

// Str returns a string field of the body ("" if absent).
func (r Reply) Str(k string) string { s, _ := r.Body[k].(string); return s }

// Num returns a numeric field of the body (0 if absent).
func (r Reply) Num(k string) int64 { f, _ := r.Body[k].(float64); return int64(f) }

// Code is the error code of a refusal ("" on success).
func (r Reply) Code() string { return r.Str("error") }

// Do sends one request; body, if not nil, is sent as JSON.
func (c *Client) Do(ctx context.Context, method, path, token string, body any) Reply {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return Reply{Err: err}
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return Reply{Err: err}
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	res, err := c.hc.Do(req)
	if err != nil {
		return Reply{Err: err, Took: time.Since(start)}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	out := Reply{Status: res.StatusCode, Took: time.Since(start), Err: err}
	if len(raw) > 0 && err == nil {
		if jerr := json.Unmarshal(raw, &out.Body); jerr != nil {
			out.Err = fmt.Errorf("%s %s: answer is not a JSON object: %.80q", method, path, raw)
		}
	}
	return out
}

// Login returns a bearer token for user.
func (c *Client) Login(ctx context.Context, user string) (string, error) {
	r := c.Do(ctx, "POST", "/api/v1/login", "", map[string]string{"user_id": user})
	if r.Err != nil || r.Status != http.StatusOK || r.Str("token") == "" {
		return "", fmt.Errorf("login %s: %d %v %v", user, r.Status, r.Body, r.Err) //nolint:errorlint // the error is nil when only the status is wrong
	}
	return r.Str("token"), nil
}

// LoginAll logs in n users named prefix-0000 ... and returns their tokens
// in order.
func (c *Client) LoginAll(ctx context.Context, prefix string, n int) ([]string, error) {
	tokens := make([]string, n)
	errs := make([]error, n)
	Parallel(n, 32, func(i int) {
		tokens[i], errs[i] = c.Login(ctx, fmt.Sprintf("%s-%04d", prefix, i))
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return tokens, nil
}

// CreateSale creates an item on sale from now for an hour and returns its
// id. rate, if above 0, is the item's purchase_rate (its hot-key budget).
func (c *Client) CreateSale(ctx context.Context, name string, stock int, rate int64) (int64, error) {
	now := time.Now().UTC()
	body := map[string]any{
		"name": name, "description": "workshop lab", "price_cents": 1999, "stock": stock,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339Nano), "ends_at": now.Add(time.Hour).Format(time.RFC3339Nano),
	}
	if rate > 0 {
		body["purchase_rate"] = rate
	}
	r := c.Do(ctx, "POST", "/api/v1/admin/items", c.admin, body)
	if r.Err != nil || r.Status != http.StatusCreated {
		return 0, fmt.Errorf("create sale: %d %v %v", r.Status, r.Body, r.Err) //nolint:errorlint // the error is nil when only the status is wrong
	}
	return r.Num("id"), nil
}

// Buy tries to buy one unit of item.
func (c *Client) Buy(ctx context.Context, token string, item int64) Reply {
	return c.Do(ctx, "POST", fmt.Sprintf("/api/v1/items/%d/purchase", item), token, nil)
}

// Order looks an order up.
func (c *Client) Order(ctx context.Context, token, id string) Reply {
	return c.Do(ctx, "GET", "/api/v1/orders/"+id, token, nil)
}

// Pay pays a confirmed order.
func (c *Client) Pay(ctx context.Context, token, id string) Reply {
	return c.Do(ctx, "POST", "/api/v1/orders/"+id+"/pay", token, nil)
}

// Stats returns the item's admin stats (stock in Redis and the database,
// orders by status, consistency).
func (c *Client) Stats(ctx context.Context, item int64) (Reply, error) {
	r := c.Do(ctx, "GET", fmt.Sprintf("/api/v1/admin/items/%d/stats", item), c.admin, nil)
	if r.Err != nil || r.Status != http.StatusOK {
		return r, fmt.Errorf("stats of item %d: %d %v %v", item, r.Status, r.Body, r.Err) //nolint:errorlint // the error is nil when only the status is wrong
	}
	return r, nil
}

// Attempt is one purchase as a buyer saw it.
type Attempt struct {
	Buyer   int // index into the tokens given to Spike
	Status  int
	Code    string
	OrderID string
	Took    time.Duration
	Err     error
}

// Spike has every token buy item once, at most concurrency at a time, and
// returns the attempts in token order.
func (c *Client) Spike(ctx context.Context, item int64, tokens []string, concurrency int) []Attempt {
	out := make([]Attempt, len(tokens))
	Parallel(len(tokens), concurrency, func(i int) {
		r := c.Buy(ctx, tokens[i], item)
		out[i] = Attempt{Buyer: i, Status: r.Status, Code: r.Code(), OrderID: r.Str("order_id"), Took: r.Took, Err: r.Err}
	})
	return out
}

// Parallel runs f(0) ... f(n-1), at most width at a time, and waits.
func Parallel(n, width int, f func(i int)) {
	if width < 1 {
		width = 1
	}
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			f(i)
		}(i)
	}
	wg.Wait()
}

// Tally counts attempts by HTTP status (0: no answer).
func Tally(as []Attempt) map[int]int {
	out := map[int]int{}
	for _, a := range as {
		out[a.Status]++
	}
	return out
}

// Percentile returns the p-th percentile (0..100) of the attempts' round
// trips, nearest rank; 0 for none.
func Percentile(as []Attempt, p float64) time.Duration {
	if len(as) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(as))
	for i, a := range as {
		ds[i] = a.Took
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	k := int(math.Ceil(p/100*float64(len(ds)))) - 1
	k = max(0, min(k, len(ds)-1))
	return ds[k]
}

// Ms prints a duration in whole milliseconds, for the labs' tables.
func Ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

// AdminToken is the admin bearer token the client sends on admin calls,
// for labs that create items the helpers do not cover.
func (c *Client) AdminToken() string { return c.admin }
