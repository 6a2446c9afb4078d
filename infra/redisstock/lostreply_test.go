package redisstock

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
	"seckill/infra/faultproxy"
	"seckill/infra/testenv"
)

// dialCount counts the client's dials: with a pool of one connection, each
// attempt after a lost reply dials afresh, so dials count the sends.
type dialCount struct{ n atomic.Int64 }

func (d *dialCount) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.n.Add(1)
		return next(ctx, network, addr)
	}
}
func (d *dialCount) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (d *dialCount) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestReserveWhoseReplyIsLost: Redis applies the reserve script and its
// reply never arrives. go-redis re-sends the pipeline after each read
// timeout (MaxRetries), and Redis applies each copy; the script's
// one-order rule makes every copy after the first a no-op, so exactly one
// unit is taken. Reserve answers an error matching sale.ErrOutcomeUnknown
// (never a plain failure, which the purchase would answer 503 "nothing
// taken"), and the order is then found in the ledger. Without unanswered()
// the error does not match ErrOutcomeUnknown; without the one-order rule
// the stock would fall by one per send.
func TestReserveWhoseReplyIsLost(t *testing.T) {
	// Each gives an address and a key prefix (the real Redis's keys are
	// deleted when the test ends).
	upstreams := map[string]func(t *testing.T) (string, string){
		"miniredis": func(t *testing.T) (string, string) { return miniredis.RunT(t).Addr(), "t" + testenv.Nonce() },
		"redis": func(t *testing.T) (string, string) {
			rdb, prefix := testenv.Redis(t)
			return rdb.Options().Addr, prefix
		},
	}
	for name, upstream := range upstreams {
		t.Run(name, func(t *testing.T) {
			addr, prefix := upstream(t)
			proxy, err := faultproxy.Start("127.0.0.1:0", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(proxy.Close)
			const retries = 2
			rdb := redis.NewClient(&redis.Options{Addr: proxy.Addr(), PoolSize: 1,
				ReadTimeout: 300 * time.Millisecond, MaxRetries: retries})
			dials := &dialCount{}
			rdb.AddHook(dials)
			t.Cleanup(func() { _ = rdb.Close() })
			h := newHarness(t, rdb, prefix, Options{})
			it := h.open(t, item(7, 5))
			h.expect(t, order(it, "first", inWindow), sale.Accepted)

			lost := order(it, "lost", inWindow)
			before := dials.n.Load()
			proxy.Set(faultproxy.Fault{Kind: faultproxy.LoseReplies})
			_, err = h.s.Reserve(h.ctx, lost)
			proxy.Clear()
			if !errors.Is(err, sale.ErrOutcomeUnknown) {
				t.Fatalf("Reserve with its reply lost: %v, want an error matching sale.ErrOutcomeUnknown", err)
			}
			if sends := dials.n.Load() - before + 1; sends < 2 {
				t.Fatalf("the reserve went out %d times; the test needs go-redis to re-send it", sends)
			}
			left, err := h.s.StockLeft(h.ctx, it.ID)
			if err != nil || left[it.ID] != 3 {
				t.Fatalf("stock left %v, %v after one accepted and one lost-reply reserve sent %d times; want 3",
					left, err, dials.n.Load()-before+1)
			}
			if id, err := h.s.BuyerOrder(h.ctx, it.ID, lost.UserID); err != nil || id != lost.ID {
				t.Fatalf("BuyerOrder after the lost reply = %s, %v; want %s", id, err, lost.ID)
			}
			// The buyer's retry of the same order is answered as accepted and
			// takes nothing more.
			h.expect(t, lost, sale.Accepted)
			if left, _ := h.s.StockLeft(h.ctx, it.ID); left[it.ID] != 3 {
				t.Fatalf("stock left %v after the retry, want 3", left)
			}
		})
	}
}
