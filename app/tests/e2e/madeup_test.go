package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
)

// madeUp is the decimal prefix of every made-up id below; no real id,
// order id or key of the test comes near it.
const madeUp = "913579"

// countHook counts Redis commands with an argument naming a made-up id.
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.count(c)
		}
		return next(ctx, cmds)
	}
}

func (h countHook) count(cmd redis.Cmder) {
	if strings.Contains(fmt.Sprint(cmd.Args()...), madeUp) {
		h.n.Add(1)
	}
}

// TestMadeUpItemIdsReachNoBackend: 1,000 purchases on item ids that do not
// exist are refused (404) before any backend call: no Redis command and no
// database query names one of them. Before, each new id cost a Redis cache
// read and a database query, ahead of the per-user limiter.
func TestMadeUpItemIdsReachNoBackend(t *testing.T) {
	b := newBackends(t)
	in := b.start(t, "api-1", both, nil)
	in.createSale("real", 10, 0)
	var redisCalls, dbCalls atomic.Int64
	in.Redis().AddHook(countHook{&redisCalls})
	in.CacheRedis().AddHook(countHook{&redisCalls})
	db := in.Store().DB()
	countSQL := func(tx *gorm.DB) {
		if strings.Contains(fmt.Sprint(tx.Statement.Vars...), madeUp) || strings.Contains(tx.Statement.SQL.String(), madeUp) {
			dbCalls.Add(1)
		}
	}
	if err := db.Callback().Query().After("gorm:query").Register("e2e:count_madeup", countSQL); err != nil {
		t.Fatal(err)
	}
	if err := db.Callback().Row().After("gorm:row").Register("e2e:count_madeup", countSQL); err != nil {
		t.Fatal(err)
	}
	if err := db.Callback().Raw().After("gorm:raw").Register("e2e:count_madeup", countSQL); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		// A user per attempt, as a scan spread over accounts would be,
		// so the per-user limit is not what refuses them.
		tok := in.login(fmt.Sprintf("scanner-%d", i))
		r := in.do("POST", fmt.Sprintf("/api/v1/items/%s%03d/purchase", madeUp, i), tok, nil)
		if r.Status != 404 || r.str("error") != "not_found" {
			t.Fatalf("purchase of made-up item %s%03d = %d %s, want 404 not_found", madeUp, i, r.Status, truncate(r.Raw))
		}
	}
	t.Logf("Redis commands naming a made-up id: %d; database queries: %d", redisCalls.Load(), dbCalls.Load())
	if n, m := redisCalls.Load(), dbCalls.Load(); n != 0 || m != 0 {
		t.Fatalf("1,000 purchases on made-up ids made %d Redis commands and %d database queries naming them; want none", n, m)
	}
}
