package redisstock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// pipelineSizes is a go-redis hook that records how many orders the reserve
// script calls of each pipeline carried, and how many script calls
// (calls). Other pipelines (the client's own connection handshake) are not
// counted.
type pipelineSizes struct {
	mu    sync.Mutex
	sizes []int
	calls []int
}

// reserveOrders is how many orders one reserve script call carries, from
// its arguments: evalsha, sha, numkeys, keys, first-look, six per order.
func reserveOrders(c redis.Cmder) int {
	args := c.Args()
	if len(args) < 3 {
		return 0
	}
	nk, ok := args[2].(int)
	if !ok {
		return 0
	}
	return (len(args) - 3 - nk - 1) / 6
}

func (p *pipelineSizes) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (p *pipelineSizes) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (p *pipelineSizes) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n, calls := 0, 0
		for _, c := range cmds {
			if name := c.Name(); name == "evalsha" || name == "eval" {
				n += reserveOrders(c)
				calls++
			}
		}
		if calls > 0 {
			p.mu.Lock()
			p.sizes = append(p.sizes, n)
			p.calls = append(p.calls, calls)
			p.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

func (p *pipelineSizes) get() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sizes)
}

func (p *pipelineSizes) scriptCalls() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// TestReserveCoalesces queues 40 requests before a single flusher starts, so
// the batches it forms are known exactly: MaxBatch requests per pipeline, all
// in one script call since they are for one bucket, and requests whose
// caller already gave up are answered with ctx.Err() and never sent.
func TestReserveCoalesces(t *testing.T) {
	for _, tc := range []struct {
		maxBatch  int
		wantSizes []int
	}{
		// 40 queued, every tenth cancelled: the first batch takes 0..31 and
		// sends 29, the second takes 32..39 and sends 7.
		{maxBatch: 32, wantSizes: []int{29, 7}},
		{maxBatch: 1, wantSizes: slices.Repeat([]int{1}, 36)},
	} {
		t.Run(fmt.Sprintf("MaxBatch=%d", tc.maxBatch), func(t *testing.T) {
			eachBackend(t, Options{}, func(t *testing.T, h *harness) {
				const queued = 40
				it := h.open(t, item(1, 100))
				// Loaded first, so no NOSCRIPT fallback pipeline shows up in
				// the sizes.
				if err := reserveScript.Load(h.ctx, h.rdb).Err(); err != nil {
					t.Fatal(err)
				}
				hook := &pipelineSizes{}
				h.rdb.AddHook(hook)

				s := newStore(h.rdb, Options{Prefix: h.prefix, MaxBatch: tc.maxBatch, Pipelines: 1})
				s.reqs = make(chan *reserveReq, queued)
				cancelled, cancel := context.WithCancel(h.ctx)
				cancel()
				reqs := make([]*reserveReq, queued)
				for i := range reqs {
					ctx := h.ctx
					if i%10 == 9 {
						ctx = cancelled
					}
					reqs[i] = s.newReserveReq(ctx, order(it, fmt.Sprintf("u%d", i), inWindow), nil)
					s.reqs <- reqs[i]
				}
				s.start(1)
				defer s.Close()

				for i, r := range reqs {
					res := <-r.done
					if i%10 == 9 {
						if !errors.Is(res.err, context.Canceled) {
							t.Errorf("request %d with a cancelled ctx = %+v, %v; want context.Canceled", i, res.r, res.err)
						}
						continue
					}
					if res.err != nil || res.r.Outcome != sale.Accepted {
						t.Errorf("request %d = %+v, %v; want accepted", i, res.r, res.err)
					}
				}
				if got := hook.get(); !slices.Equal(got, tc.wantSizes) {
					t.Fatalf("orders per pipeline = %v, want %v", got, tc.wantSizes)
				}
				if got, want := hook.scriptCalls(), slices.Repeat([]int{1}, len(tc.wantSizes)); !slices.Equal(got, want) {
					t.Fatalf("script calls per pipeline = %v, want %v (one per bucket)", got, want)
				}
				h.wantCounts(t, 1, sale.Counts{StockTotal: 100, StockLeft: 64, Pending: 36})
			})
		})
	}
}
