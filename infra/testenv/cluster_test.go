package testenv_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/infra/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The helper's cluster has three masters that each own slots, routes keys
// by slot, and counts each node's commands.
func TestRedisClusterHasThreeMastersAndRoutesBySlot(t *testing.T) {
	rdb, prefix := testenv.RedisCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs := testenv.RedisClusterAddrs(t)
	if len(addrs) != 3 {
		t.Fatalf("addrs = %v, want 3 masters", addrs)
	}
	before := make([]int64, len(addrs))
	for i, a := range addrs {
		n, err := testenv.NodeCommandCalls(ctx, a)
		if err != nil {
			t.Fatalf("NodeCommandCalls(%s): %v", a, err)
		}
		before[i] = n
	}
	// 300 keys spread over the slots: every master must get some.
	for i := 0; i < 300; i++ {
		if err := rdb.Set(ctx, prefix+":k"+strconv.Itoa(i), i, time.Minute).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
	}
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("RedisCluster returned %T, want *redis.ClusterClient", rdb)
	}
	var masters atomic.Int32 // ForEachMaster calls fn concurrently
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		masters.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := masters.Load(); n != 3 {
		t.Fatalf("ForEachMaster saw %d masters, want 3", n)
	}
	for i, a := range addrs {
		n, err := testenv.NodeCommandCalls(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		// Each master owns about a third of the slots; 50 is far below
		// the ~100 SETs each should have served.
		if got := n - before[i]; got < 50 {
			t.Errorf("node %s served %d commands for 300 SETs over the cluster, want about 100", a, got)
		}
	}
	// A cross-slot multi-key command is refused, as in production.
	if err := rdb.Do(ctx, "DEL", prefix+":a", prefix+":b{x}").Err(); err == nil {
		t.Error("DEL across slots succeeded; the cluster should refuse it (CROSSSLOT)")
	}
}
