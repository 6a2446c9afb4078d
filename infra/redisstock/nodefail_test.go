package redisstock

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
	"seckill/infra/testenv"
)

// TestDueSkipsACorruptRecord: one pending record that does not decode is
// reported, and every other due order, of its item and of the others, is
// still returned. Before, Due failed as a whole and the relay published
// nothing anywhere.
func TestDueSkipsACorruptRecord(t *testing.T) {
	const look = 100 * time.Millisecond
	eachBackend(t, Options{FirstLook: look}, func(t *testing.T, h *harness) {
		it1, it2 := h.open(t, item(1, 5)), h.open(t, item(2, 5))
		a, b := order(it1, "a", inWindow), order(it2, "b", inWindow)
		h.expect(t, a, sale.Accepted)
		h.expect(t, b, sale.Accepted)
		k := h.s.item(1)
		bad := "1-ffffffffffffffffffffffffffff"
		if err := h.rdb.HSet(h.ctx, k.pending(), bad, "garbage").Err(); err != nil {
			t.Fatal(err)
		}
		if err := h.rdb.ZAdd(h.ctx, k.outbox(), redis.Z{Score: 0, Member: bad}).Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(look + 50*time.Millisecond)
		got, err := h.s.Due(h.ctx, 10)
		if err == nil {
			t.Fatalf("Due with a corrupt record = %v, nil; want the record reported", dueIDs(got))
		}
		ids := dueIDs(got)
		slices.Sort(ids)
		if want := []sale.OrderID{a.ID, b.ID}; !slices.Equal(ids, sortedIDs(want)) {
			t.Fatalf("Due with a corrupt record = %v (%v), want %v", ids, err, want)
		}
	})
}

func sortedIDs(ids []sale.OrderID) []sale.OrderID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// bucketMasters returns the address of the master serving each bucket of
// a split item.
func bucketMasters(t testing.TB, rdb *redis.ClusterClient, ks []itemKeys) []string {
	t.Helper()
	out := make([]string, len(ks))
	for b, k := range ks {
		c, err := rdb.MasterForKey(context.Background(), k.sale())
		if err != nil {
			t.Fatal(err)
		}
		out[b] = c.Options().Addr
	}
	return out
}

// stallClient is a cluster client that gives up on a silent node soon and
// does not retry, so a test with a stalled master waits milliseconds, not
// the client's default seconds.
func stallClient(t testing.TB) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testenv.RedisClusterAddrs(t),
		ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestDueSkipsAStalledMaster: with one master of three stopped, Due returns
// the due orders of the buckets on the two others, with an error naming
// the one it could not read; before, it returned nothing at all.
func TestDueSkipsAStalledMaster(t *testing.T) {
	const look = 100 * time.Millisecond
	_, prefix := testenv.RedisCluster(t)
	rdb := stallClient(t)
	s := New(rdb, Options{Prefix: prefix, FirstLook: look})
	defer s.Close()
	ctx := context.Background()
	it := splitItem(1, 30, 3)
	if err := s.Open(ctx, it); err != nil {
		t.Fatal(err)
	}
	ks := s.bucketKeys(1, 3)
	masters := bucketMasters(t, rdb, ks)
	if masters[0] == masters[1] || masters[1] == masters[2] || masters[0] == masters[2] {
		t.Fatalf("buckets on masters %v, want one each", masters)
	}
	var orders []sale.Order
	for b := range 3 {
		o := order(it, userIn(t, b, 3, "due"), inWindow)
		if r, err := s.Reserve(ctx, o); err != nil || r.Outcome != sale.Accepted {
			t.Fatalf("Reserve in bucket %d = %+v, %v", b, r, err)
		}
		orders = append(orders, o)
	}
	// A first look reads the items index while every master answers.
	if _, err := s.Due(ctx, 10); err != nil {
		t.Fatal(err)
	}
	for stalled := range 3 {
		t.Run(fmt.Sprintf("bucket %d stalled", stalled), func(t *testing.T) {
			// Every order due now, whatever the last round leased.
			for _, o := range orders {
				k := ks[o.ID.Bucket()]
				if err := rdb.ZAdd(ctx, k.outbox(), redis.Z{Score: 0, Member: string(o.ID)}).Err(); err != nil {
					t.Fatal(err)
				}
			}
			resume := testenv.StallRedisClusterNode(t, masters[stalled])
			dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			got, err := s.Due(dctx, 10)
			cancel()
			resume()
			if err == nil {
				t.Errorf("Due with the master of bucket %d stopped answered no error", stalled)
			}
			var want []sale.OrderID
			for b, o := range orders {
				if b != stalled {
					want = append(want, o.ID)
				}
			}
			if ids := sortedIDs(dueIDs(got)); !slices.Equal(ids, sortedIDs(want)) {
				t.Fatalf("Due with bucket %d's master stopped = %v (err %v), want the other buckets' %v", stalled, ids, err, want)
			}
		})
	}
}
