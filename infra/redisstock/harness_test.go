package redisstock

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
	"seckill/infra/testenv"
)

// t0 is the fake "now" every test's sale window starts at. Tests move time by
// choosing orders' CreatedAt; nothing sleeps.
//
// The reserve script judges the window on Redis TIME, so the default window
// holds the real clock: it opened half an hour before the tests started
// and closes half an hour after. Window outcomes are tested by moving the
// window, not the order's time.
var t0 = time.Now().UTC().Truncate(time.Millisecond).Add(-30 * time.Minute)

// inWindow is a moment inside the default window [t0, t0+1h).
var inWindow = t0.Add(time.Minute)

// harness is one Store on one backend, with a key prefix of its own.
type harness struct {
	s      *Store
	rdb    redis.UniversalClient
	prefix string
	ctx    context.Context
	// private is true when the server belongs to this test alone, so
	// server-wide commands such as SCRIPT FLUSH cannot disturb other
	// packages testing against the same Redis.
	private bool
}

// backend opens a fresh harness; skipAll is called once per backend so an
// unconfigured real Redis skips the backend's whole subtree (and fails it
// under CI=true).
type backend struct {
	name    string
	skipAll func(t testing.TB)
	open    func(t testing.TB, opts Options) *harness
}

var backends = []backend{
	{
		name:    "miniredis",
		skipAll: func(testing.TB) {},
		open: func(t testing.TB, opts Options) *harness {
			mr := miniredis.RunT(t)
			rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			t.Cleanup(func() { _ = rdb.Close() })
			h := newHarness(t, rdb, "t"+testenv.Nonce(), opts)
			h.private = true
			return h
		},
	},
	{
		name:    "redis",
		skipAll: func(t testing.TB) { testenv.RedisAddr(t) },
		open: func(t testing.TB, opts Options) *harness {
			rdb, prefix := testenv.Redis(t)
			return newHarness(t, rdb, prefix, opts)
		},
	},
	{
		// A real three-master Redis Cluster, private to this test process:
		// every script and pipeline must stay within one slot (or be split
		// per node by go-redis) for these tests to pass.
		name:    "cluster",
		skipAll: func(t testing.TB) { testenv.RedisClusterAddrs(t) },
		open: func(t testing.TB, opts Options) *harness {
			rdb, prefix := testenv.RedisCluster(t)
			h := newHarness(t, rdb, prefix, opts)
			// The cluster is this process's own unless the environment
			// names a shared one.
			h.private = os.Getenv(testenv.RedisClusterAddrsVar) == ""
			return h
		},
	},
}

func newHarness(t testing.TB, rdb redis.UniversalClient, prefix string, opts Options) *harness {
	opts.Prefix = prefix
	s := New(rdb, opts)
	// Registered after the client's cleanup, so it runs first: the flushers
	// stop before the client closes.
	t.Cleanup(s.Close)
	return &harness{s: s, rdb: rdb, prefix: prefix, ctx: context.Background()}
}

// eachBackend runs fn against miniredis, real Redis and a real Redis Cluster.
func eachBackend(t *testing.T, opts Options, fn func(t *testing.T, h *harness)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			b.skipAll(t)
			fn(t, b.open(t, opts))
		})
	}
}

func item(id sale.ItemID, stock int64) sale.Item {
	return sale.Item{
		ID: id, Name: "item", PriceCents: 1999,
		StockTotal: stock, StockLeft: stock,
		StartsAt: t0, EndsAt: t0.Add(time.Hour),
	}
}

func order(it sale.Item, user string, at time.Time) sale.Order {
	return sale.NewOrder(it, sale.UserID(user), at)
}

func (h *harness) open(t testing.TB, it sale.Item) sale.Item {
	t.Helper()
	if err := h.s.Open(h.ctx, it); err != nil {
		t.Fatalf("Open(%d): %v", it.ID, err)
	}
	return it
}

func (h *harness) reserve(t testing.TB, o sale.Order) sale.Reservation {
	t.Helper()
	r, err := h.s.Reserve(h.ctx, o)
	if err != nil {
		t.Fatalf("Reserve(%s by %s): %v", o.ID, o.UserID, err)
	}
	return r
}

// expect reserves o and checks the outcome.
func (h *harness) expect(t testing.TB, o sale.Order, want sale.Outcome) sale.Reservation {
	t.Helper()
	r := h.reserve(t, o)
	if r.Outcome != want {
		t.Fatalf("Reserve(%s by %s at %s) = %+v, want outcome %d", o.ID, o.UserID, o.CreatedAt.Format(time.RFC3339Nano), r, want)
	}
	return r
}

func (h *harness) counts(t testing.TB, id sale.ItemID) sale.Counts {
	t.Helper()
	c, err := h.s.Counts(h.ctx, id)
	if err != nil {
		t.Fatalf("Counts(%d): %v", id, err)
	}
	return c
}

func (h *harness) wantCounts(t testing.TB, id sale.ItemID, want sale.Counts) {
	t.Helper()
	if got := h.counts(t, id); got != want {
		t.Fatalf("Counts(%d) = %+v, want %+v", id, got, want)
	}
}

func (h *harness) release(t testing.TB, id sale.OrderID, wantReleased bool, wantGen int64) {
	t.Helper()
	released, gen, err := h.s.Release(h.ctx, id)
	if err != nil || released != wantReleased || gen != wantGen {
		t.Fatalf("Release(%s) = %v, %d, %v; want %v, %d, nil", id, released, gen, err, wantReleased, wantGen)
	}
}

func (h *harness) lookupErr(t testing.TB, id sale.OrderID, want error) {
	t.Helper()
	if _, err := h.s.Lookup(h.ctx, id); !errors.Is(err, want) {
		t.Fatalf("Lookup(%q) error = %v, want %v", id, err, want)
	}
}

func wantOrders(t testing.TB, got []sale.Order, want ...sale.Order) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d orders %v, want %d %v", len(got), ids(got), len(want), ids(want))
	}
	for i := range want {
		g := got[i]
		// time.Time is compared as an instant, not by representation.
		if g.CreatedAt.Equal(want[i].CreatedAt) {
			g.CreatedAt = want[i].CreatedAt
		}
		if g != want[i] {
			t.Fatalf("order %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func ids(os []sale.Order) []sale.OrderID {
	out := make([]sale.OrderID, len(os))
	for i, o := range os {
		out[i] = o.ID
	}
	return out
}

// future is it with its window an hour from now: not started on any clock
// the tests run on.
func future(it sale.Item) sale.Item {
	it.StartsAt, it.EndsAt = t0.Add(90*time.Minute), t0.Add(150*time.Minute)
	return it
}

// past is it with a window that ended an hour ago.
func past(it sale.Item) sale.Item {
	it.StartsAt, it.EndsAt = t0.Add(-90*time.Minute), t0.Add(-30*time.Minute)
	return it
}

// setWindow moves a live sale's window.
func (h *harness) setWindow(t testing.TB, id sale.ItemID, starts, ends time.Time) {
	t.Helper()
	if err := h.s.SetWindow(h.ctx, id, starts, ends); err != nil {
		t.Fatalf("SetWindow(%d): %v", id, err)
	}
}
