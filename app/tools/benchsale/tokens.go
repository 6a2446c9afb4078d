package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"seckill/app/auth"
	"seckill/app/config"
	"seckill/domain/sale"
)

// mintTokens writes n user tokens, one per line and all the same width, to
// dir/tokens.txt. Logging in is HMAC-only, so signing them here with the
// instance's secret gives exactly what POST /api/v1/login would, without
// spending the benchmark's CPU on n HTTP round trips.
func mintTokens(dir, secret string, ttl time.Duration, n int, userPrefix string) (tokenFile, error) {
	signer := auth.NewSigner(secret, ttl, nil)
	user := func(i int) sale.UserID { return sale.UserID(fmt.Sprintf("%s-u%08d", userPrefix, i)) }
	if _, err := sale.ParseUserID(string(user(n))); err != nil {
		return tokenFile{}, fmt.Errorf("user id: %w", err)
	}
	first, _ := signer.Issue(user(0))
	rec := len(first) + 1
	buf := make([]byte, n*rec)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad error
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				tok, _ := signer.Issue(user(i))
				if len(tok) != rec-1 {
					mu.Lock()
					bad = fmt.Errorf("token %d is %d bytes, want %d", i, len(tok), rec-1)
					mu.Unlock()
					return
				}
				copy(buf[i*rec:], tok)
				buf[(i+1)*rec-1] = '\n'
			}
		}()
	}
	wg.Wait()
	if bad != nil {
		return tokenFile{}, bad
	}
	path := filepath.Join(dir, "tokens.txt")
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		return tokenFile{}, err
	}
	return tokenFile{Path: path, RecLen: rec, Count: n, User: user}, nil
}

// newSigner returns a function that issues a token for a user id, signed
// like the instance's own login endpoint would.
func newSigner(cfg config.Config) func(user string) string {
	s := auth.NewSigner(cfg.TokenSecret, cfg.TokenTTL, nil)
	return func(user string) string {
		tok, _ := s.Issue(sale.UserID(user))
		return tok
	}
}
