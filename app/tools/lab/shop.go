package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"seckill/domain/sale"
)

// shop is the HTTP client the labs buy and browse with: the same API a
// phone or k6 uses, so the dashboard counts what the lab does.
type shop struct {
	base   string
	client *http.Client
}

// newShop returns a client for the system at base that can hold conns
// connections open at once (a crowd released together needs one each).
func newShop(base string, conns int) *shop {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 30 * time.Second}
	return &shop{base: base, client: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

// close drops the client's idle connections, so a system shutting down
// does not wait for them.
func (s *shop) close() { s.client.CloseIdleConnections() }

// do sends one request and decodes a JSON answer into out (if not nil).
func (s *shop) do(ctx context.Context, method, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return 0, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return res.StatusCode, nil
}

// loginAll logs in n users named prefix0..prefix(n-1), a few at a time,
// and returns their tokens.
func (s *shop) loginAll(ctx context.Context, prefix string, n int) ([]string, error) {
	tokens := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var out struct {
				Token string `json:"token"`
			}
			code, err := s.do(ctx, http.MethodPost, "/api/v1/login", "", map[string]string{"user_id": fmt.Sprintf("%s%d", prefix, i)}, &out)
			if err == nil && (code != http.StatusOK || out.Token == "") {
				err = fmt.Errorf("login: status %d", code)
			}
			if err != nil {
				errs <- err
				return
			}
			tokens[i] = out.Token
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return tokens, nil
}

// buyAll sends one purchase of item per token, at most par at a time (all
// at once when par is 0 or more than the tokens), released together, and
// counts the answers by HTTP status (0 for a request that got none).
// answered, if not nil, is called with each answer's status as it comes.
func (s *shop) buyAll(ctx context.Context, item sale.ItemID, tokens []string, par int, answered func(int)) map[int]int {
	if par <= 0 || par > len(tokens) {
		par = len(tokens)
	}
	var (
		mu     sync.Mutex
		counts = map[int]int{}
		wg     sync.WaitGroup
		start  = make(chan struct{})
		next   = make(chan string, len(tokens))
	)
	for _, t := range tokens {
		next <- t
	}
	close(next)
	path := fmt.Sprintf("/api/v1/items/%d/purchase", item)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for t := range next {
				code, _ := s.do(ctx, http.MethodPost, path, t, nil, nil)
				if answered != nil {
					answered(code)
				}
				mu.Lock()
				counts[code]++
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return counts
}

// openSale creates a sale that is open now, for an hour, through the
// catalog use case (as the admin API does): the ledger opens its stock and
// the dashboard lists it.
func openSale(ctx context.Context, sys *System, name string, stock int, price int64) (sale.Item, error) {
	now := time.Now()
	v, err := sys.Catalog.Create(ctx, sale.Draft{
		Name: name, Description: "workshop lab", PriceCents: price, Stock: int64(stock),
		StartsAt: now.Add(-time.Second), EndsAt: now.Add(time.Hour),
	})
	if err != nil {
		return sale.Item{}, fmt.Errorf("create the lab's sale: %w", err)
	}
	return v.Item, nil
}

// waitFor polls cond every 10 ms until it holds or timeout passes; it
// reports whether it held.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// itoa formats an int for a Figure.
func itoa(n int64) string { return fmt.Sprint(n) }
