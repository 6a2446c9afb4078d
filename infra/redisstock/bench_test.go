package redisstock

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"seckill/domain/sale"
	"seckill/infra/testenv"
)

// BenchmarkReserve measures accepted reservations per second from many
// concurrent callers, against real Redis when SECKILL_TEST_REDIS_ADDR is set
// and miniredis otherwise:
//
//	batched    the defaults: up to 32 orders per pipeline (one script call
//	           per bucket), 2 pipelines in flight
//	unbatched  MaxBatch=1: one order per round trip, 2 in flight
//	direct     no coalescer: every caller runs the script itself over the
//	           client's connection pool, the usual way to call a script
//
// Run: go test -run '^$' -bench Reserve ./infra/redisstock/
func BenchmarkReserve(b *testing.B) {
	be := backends[0]
	if os.Getenv(testenv.RedisAddrVar) != "" {
		be = backends[1]
	}
	for _, bc := range []struct {
		name   string
		opts   Options
		direct bool
	}{
		{name: "batched"},
		{name: "unbatched", opts: Options{MaxBatch: 1}},
		{name: "direct", direct: true},
	} {
		b.Run(be.name+"/"+bc.name, func(b *testing.B) {
			h := be.open(b, bc.opts)
			it := item(1, sale.MaxStock)
			it.EndsAt = t0.Add(24 * time.Hour)
			h.open(b, it)
			reserve := h.s.Reserve
			if bc.direct {
				reserve = func(ctx context.Context, o sale.Order) (sale.Reservation, error) {
					c := h.s.reserveCall([]*reserveReq{h.s.newReserveReq(ctx, o, nil)})
					vals, err := h.s.runScript(ctx, c.script, c.keys, c.args...).Slice()
					if err != nil {
						return sale.Reservation{}, err
					}
					return decodeReserve(vals)
				}
			}
			hook := &pipelineSizes{}
			h.rdb.AddHook(hook)
			var next atomic.Int64
			// Enough callers to keep every pipeline full on a small machine.
			b.SetParallelism(64)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					o := order(it, "u"+strconv.FormatInt(next.Add(1), 10), inWindow)
					r, err := reserve(h.ctx, o)
					if err != nil || r.Outcome != sale.Accepted {
						b.Errorf("Reserve = %+v, %v; want accepted", r, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			// Orders per pipeline; the direct mode sends none.
			if sizes := hook.get(); len(sizes) > 0 {
				total := 0
				for _, n := range sizes {
					total += n
				}
				b.ReportMetric(float64(total)/float64(len(sizes)), "orders/pipeline")
			}
		})
	}
}
