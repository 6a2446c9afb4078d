package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Load shape. Buyers are twice the stock, so the sale sells out and the
// rest are refused; the pace spreads the sale over seconds, so a fault can
// land in its middle on a 2-core machine that would otherwise sell 1,000
// units in well under a second.
const (
	saleStock     = 1000
	saleBuyers    = 2 * saleStock
	concurrency   = 64
	maxAttempts   = 60                     // per buyer, on 429/503/5xx/connection errors
	retryPause    = 150 * time.Millisecond // plus up to 100 ms of jitter
	loadMaxLength = 60 * time.Second       // the whole load, retries included
)

var httpc = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	},
}

// reply is a decoded HTTP answer.
type reply struct {
	status int
	body   map[string]any
	raw    []byte
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }
func (r reply) num(k string) int64  { f, _ := r.body[k].(float64); return int64(f) }

// call sends one JSON request; only transport failures are errors.
func call(ctx context.Context, method, url, token string, body any) (reply, error) {
	var rd io.Reader
	if body != nil {
		buf, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := httpc.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return reply{}, err
	}
	out := reply{status: res.StatusCode, raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out.body)
	}
	return out, nil
}

// buyer is one distinct user with a token.
type buyer struct{ user, token string }

// loginAll logs in n distinct users through the scenario's APIs.
func (s *stack) loginAll(n int) []buyer {
	s.t.Helper()
	out := make([]buyer, n)
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, 32)
	for i := range out {
		out[i].user = fmt.Sprintf("%s-buyer-%05d", s.name, i)
		wg.Add(1)
		sem <- struct{}{}
		go func(b *buyer) {
			defer wg.Done()
			defer func() { <-sem }()
			for range 5 {
				api, err := s.pickAPI()
				if err == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					var r reply
					r, err = call(ctx, "POST", api.url+"/api/v1/login", "", map[string]string{"user_id": b.user})
					cancel()
					if err == nil && r.status == 200 && r.str("token") != "" {
						b.token = r.str("token")
						return
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			failed.Add(1)
		}(&out[i])
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		s.t.Fatalf("%d of %d logins failed before any fault", f, n)
	}
	return out
}

// accepted is one order the system took responsibility for: a 202, or a 409
// already_purchased naming an order whose 202 the buyer never saw (the
// connection broke after the API accepted it).
type accepted struct {
	buyer
	orderID   string
	at        time.Time
	via       string // the API process that answered
	recovered bool   // learned from a 409 already_purchased
}

// load runs the buyers against the sale and records every outcome.
type load struct {
	s      *stack
	item   int64
	buyers []buyer
	pace   int // buyers started per second until the sale is first seen sold out; 0: unpaced

	mu      sync.Mutex
	orders  []accepted
	byUser  map[string]string
	twice   int            // buyers accepted under two different order ids
	answers map[string]int // final answer per buyer, for the report
	// tries counts every purchase attempt's answer ("202", "503
	// unavailable", "connection error"), so a fault can report what the
	// buyers were told while it lasted (see triesSince).
	tries   map[string]int
	gaveUp  int
	untried int
	// heard records every attempt's answer for the audit (answers_test.go).
	heard answerLog
	// tail, if set, keeps buyers coming at tailPace per second for tail
	// after the sale is first seen sold out, then stops starting new ones.
	tail     time.Duration
	tailPace int

	nAccepted atomic.Int64
	soldOut   atomic.Bool
	soldOutAt atomic.Int64 // unix nanos of the first sold_out
	done      chan struct{}
}

func newLoad(s *stack, item int64, buyers []buyer, pace int) *load {
	return &load{s: s, item: item, buyers: buyers, pace: pace, byUser: map[string]string{},
		answers: map[string]int{}, tries: map[string]int{}, done: make(chan struct{})}
}

// run starts the buyers, pace per second at most and concurrency at once,
// and returns when every buyer has an answer or loadMaxLength has passed.
// Once the sale is seen sold out the pace is lifted: the remaining crowd
// keeps clicking, which is how a flash sale ends.
func (l *load) run() {
	defer close(l.done)
	ctx, cancel := context.WithTimeout(context.Background(), loadMaxLength)
	defer cancel()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				l.buy(ctx, l.buyers[i])
			}
		}()
	}
	// A pace of 0 means as fast as the concurrency allows.
	var tickC <-chan time.Time
	if l.pace > 0 {
		tick := time.NewTicker(time.Second / time.Duration(l.pace))
		defer tick.Stop()
		tickC = tick.C
	}
	sent := 0
	var tailC <-chan time.Time
feed:
	for ; sent < len(l.buyers); sent++ {
		if l.tail > 0 && l.soldOut.Load() {
			if tailC == nil {
				tick := time.NewTicker(time.Second / time.Duration(max(l.tailPace, 1)))
				defer tick.Stop()
				tailC = tick.C
			}
			if time.Since(time.Unix(0, l.soldOutAt.Load())) > l.tail {
				break feed
			}
			select {
			case <-tailC:
			case <-ctx.Done():
				break feed
			}
		} else if tickC != nil && !l.soldOut.Load() {
			select {
			case <-tickC:
			case <-ctx.Done():
				break feed
			}
		}
		select {
		case jobs <- sent:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	l.mu.Lock()
	l.untried = len(l.buyers) - sent
	l.mu.Unlock()
}

// buy tries one buyer's purchase until a final answer or maxAttempts.
func (l *load) buy(ctx context.Context, b buyer) {
	path := fmt.Sprintf("/api/v1/items/%d/purchase", l.item)
	answer := "gave up"
	defer func() {
		l.mu.Lock()
		l.answers[answer]++
		if answer == "gave up" {
			l.gaveUp++
		}
		l.mu.Unlock()
	}()
	for range maxAttempts {
		if ctx.Err() != nil {
			answer = "load time limit"
			return
		}
		api, err := l.s.pickAPI()
		if err == nil {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var r reply
			r, err = call(rctx, "POST", api.url+path, b.token, nil)
			cancel()
			l.tally(r, err)
			l.heard.record(b.user, r, err)
			if err == nil {
				code := r.str("error")
				switch {
				case r.status == 202 && r.str("order_id") != "":
					l.accept(accepted{buyer: b, orderID: r.str("order_id"), at: time.Now(), via: api.name})
					answer = "202 accepted"
					return
				case r.status == 409 && code == "already_purchased" && r.str("order_id") != "":
					l.accept(accepted{buyer: b, orderID: r.str("order_id"), at: time.Now(), via: api.name, recovered: true})
					answer = "409 already_purchased"
					return
				case r.status == 409 && code == "sold_out":
					if l.soldOut.CompareAndSwap(false, true) {
						l.soldOutAt.Store(time.Now().UnixNano())
					}
					answer = "409 sold_out"
					return
				case r.status == 429 || r.status >= 500:
					// Retry: rate limited, overloaded or a backend down.
				default:
					answer = fmt.Sprintf("%d %s", r.status, code)
					return
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(retryPause + rand.N(100*time.Millisecond)):
		}
	}
}

func (l *load) accept(a accepted) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.byUser[a.user]; ok {
		if prev != a.orderID {
			l.twice++
		}
		return
	}
	l.byUser[a.user] = a.orderID
	l.orders = append(l.orders, a)
	l.nAccepted.Add(1)
}

// tally counts one purchase attempt's answer in tries.
func (l *load) tally(r reply, err error) {
	answer := "connection error"
	if err == nil {
		answer = strings.TrimSpace(fmt.Sprintf("%d %s", r.status, r.str("error")))
	}
	l.mu.Lock()
	l.tries[answer]++
	l.mu.Unlock()
}

// triesNow returns a copy of the attempt counts so far.
func (l *load) triesNow() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int, len(l.tries))
	for k, v := range l.tries {
		out[k] = v
	}
	return out
}

// triesSince describes the attempts answered since before (a triesNow
// snapshot), largest first, e.g. "202: 310, 503 unavailable: 12".
func (l *load) triesSince(before map[string]int) string {
	now := l.triesNow()
	keys := make([]string, 0, len(now))
	for k := range now {
		if now[k] > before[k] {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := now[keys[i]]-before[keys[i]], now[keys[j]]-before[keys[j]]
		return a > b || (a == b && keys[i] < keys[j])
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, now[k]-before[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// waitAccepted waits until n orders are accepted, the load ends or timeout
// passes, and reports whether n was reached.
func (l *load) waitAccepted(n int64, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for l.nAccepted.Load() < n {
		select {
		case <-l.done:
			return l.nAccepted.Load() >= n
		case <-deadline:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

// summary is the answers histogram, for the log.
func (l *load) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.answers))
	for k := range l.answers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, l.answers[k]))
	}
	if l.untried > 0 {
		parts = append(parts, fmt.Sprintf("never tried (load time limit): %d", l.untried))
	}
	return strings.Join(parts, ", ")
}
