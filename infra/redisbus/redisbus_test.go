package redisbus

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
	"seckill/infra/testenv"
)

// server is a Redis the tests can reach and, for the reconnect tests, cut.
type server struct {
	addr   string // a single node's address; empty on the cluster
	prefix string
	// client returns a client named name, closed when the test ends.
	client func(t *testing.T, name string) redis.UniversalClient
	// dropSubscribers closes the server side of the connections opened by
	// clients named name, the way a network fault or a server restart would.
	dropSubscribers func(t *testing.T, name string)
}

// onRedis runs f against miniredis, the real Redis and a real three-master
// Redis Cluster (which testenv skips locally, and fails under CI, when it is
// not configured or its binaries are missing).
func onRedis(t *testing.T, f func(t *testing.T, srv server)) {
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		m := miniredis.RunT(t)
		f(t, server{
			addr:   m.Addr(),
			prefix: "mini" + testenv.Nonce(),
			client: nodeClient(m.Addr()),
			// miniredis cannot kill one client; a restart on the same
			// address drops them all, which is what a failover looks like.
			dropSubscribers: func(t *testing.T, _ string) {
				m.Close()
				if err := m.Restart(); err != nil {
					t.Fatalf("restart miniredis: %v", err)
				}
			},
		})
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		admin, prefix := testenv.Redis(t)
		f(t, server{
			addr:   testenv.RedisAddr(t),
			prefix: prefix,
			client: nodeClient(testenv.RedisAddr(t)),
			// Kill by id rather than CLIENT KILL TYPE pubsub: other test
			// packages share this server and have subscribers of their own.
			dropSubscribers: func(t *testing.T, name string) {
				if killNamed(t, admin, name) == 0 {
					t.Fatalf("no connection named %s to kill", name)
				}
			},
		})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		_, prefix := testenv.RedisCluster(t)
		addrs := testenv.RedisClusterAddrs(t)
		f(t, server{
			prefix: prefix,
			client: func(t *testing.T, name string) redis.UniversalClient {
				rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ClientName: name})
				t.Cleanup(func() { _ = rdb.Close() })
				return rdb
			},
			// The subscription lives on one node, whichever go-redis
			// picked: look on every one.
			dropSubscribers: func(t *testing.T, name string) {
				killed := 0
				for _, a := range addrs {
					killed += killNamed(t, client(t, a, "admin"), name)
				}
				if killed == 0 {
					t.Fatalf("no connection named %s to kill on any node", name)
				}
			},
		})
	})
}

// nodeClient returns server.client for one node.
func nodeClient(addr string) func(t *testing.T, name string) redis.UniversalClient {
	return func(t *testing.T, name string) redis.UniversalClient { return client(t, addr, name) }
}

// killNamed closes the server side of admin's server's connections named
// name and returns how many it closed.
func killNamed(t *testing.T, admin redis.UniversalClient, name string) int {
	t.Helper()
	ctx := context.Background()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		var id string
		named := false
		for _, field := range strings.Fields(line) {
			k, v, _ := strings.Cut(field, "=")
			switch {
			case k == "id":
				id = v
			case k == "name" && v == name:
				named = true
			}
		}
		if named && id != "" {
			if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			killed++
		}
	}
	return killed
}

// client returns a go-redis client named name, closed when the test ends.
func client(t *testing.T, addr, name string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, ClientName: name})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// recorder collects what a bus hands its callbacks.
type recorder struct {
	events      chan Event
	resubscribe atomic.Int64
}

func newRecorder() *recorder { return &recorder{events: make(chan Event, 100)} }

func (r *recorder) handle(e Event) { r.events <- e }
func (r *recorder) onResubscribe() { r.resubscribe.Add(1) }

// next waits for the next event, failing the test after a deadline.
func (r *recorder) next(t *testing.T) Event {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return Event{}
	}
}

// run starts b.Run and stops it when the test ends, checking that it returns.
func run(t *testing.T, b *Bus, rec *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, rec.handle, rec.onResubscribe) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of cancel")
		}
	})
	waitFor(t, "the subscription to be confirmed", func() bool { return b.confirmations.Load() >= 1 })
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestInstancesSeeEachOthersEvents(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, srv server) {
		channel := srv.prefix + ":bus"
		a := New(srv.client(t, "a"), channel, "instance-a")
		b := New(srv.client(t, "b"), channel, "instance-b")
		recA, recB := newRecorder(), newRecorder()
		run(t, a, recA)
		run(t, b, recB)
		ctx := context.Background()

		if err := a.Publish(ctx, Event{Kind: KindInvalidate, Item: 7, Sender: "forged"}); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, Event{Kind: KindSoldOut, Item: 8, Gen: 3}); err != nil {
			t.Fatal(err)
		}
		wantFromA := Event{Kind: KindInvalidate, Item: 7, Sender: "instance-a"}
		wantFromB := Event{Kind: KindSoldOut, Item: 8, Gen: 3, Sender: "instance-b"}
		// Each bus sees both events, its own included, in publish order.
		for name, rec := range map[string]*recorder{"a": recA, "b": recB} {
			if got := rec.next(t); got != wantFromA {
				t.Fatalf("bus %s: first event %+v, want %+v", name, got, wantFromA)
			}
			if got := rec.next(t); got != wantFromB {
				t.Fatalf("bus %s: second event %+v, want %+v", name, got, wantFromB)
			}
		}
		if st := a.Stats(); st.Sent != 1 || st.Received != 2 || st.Resubscribes != 0 {
			t.Fatalf("bus a stats = %+v", st)
		}
		if n := recA.resubscribe.Load() + recB.resubscribe.Load(); n != 0 {
			t.Fatalf("onResubscribe called %d times without a reconnect", n)
		}
	})
}

// TestBlocklistEvents: a blocklist event carries its user, not an item.
func TestBlocklistEvents(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, srv server) {
		channel := srv.prefix + ":bus"
		a := New(client(t, srv.addr, "a"), channel, "instance-a")
		rec := newRecorder()
		run(t, a, rec)
		ctx := context.Background()
		for _, e := range []Event{{Kind: KindBlocked, User: "mallory"}, {Kind: KindUnblocked, User: "mallory"}} {
			if err := a.Publish(ctx, e); err != nil {
				t.Fatal(err)
			}
			want := e
			want.Sender = "instance-a"
			if got := rec.next(t); got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		}
	})
}

func TestMalformedMessagesAreDropped(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, srv server) {
		channel := srv.prefix + ":bus"
		raw := srv.client(t, "raw")
		b := New(srv.client(t, "b"), channel, "b")
		rec := newRecorder()
		run(t, b, rec)
		ctx := context.Background()

		for _, payload := range []string{
			"not json",
			`{"k":"explode","i":1,"s":"x"}`,
			`{"k":"invalidate","i":0,"s":"x"}`,
			`{"k":"invalidate","i":1}`,
			`{"k":"blocked","u":"bad user","s":"x"}`,
			`{"k":"blocked","i":3,"u":"eve","s":"x"}`,
		} {
			// Through the node Bus publishes to, as Bus does: messages
			// sent through different cluster nodes may arrive in any order.
			via := raw
			if cc, ok := raw.(*redis.ClusterClient); ok {
				node, err := cc.MasterForKey(ctx, channel)
				if err != nil {
					t.Fatal(err)
				}
				via = node
			}
			if err := via.Publish(ctx, channel, payload).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Publish(ctx, Event{Kind: KindRestocked, Item: 1, Gen: 2}); err != nil {
			t.Fatal(err)
		}
		// Messages arrive in order, so once the good one is here every bad
		// one has been judged.
		if got := rec.next(t); got.Kind != KindRestocked || got.Gen != 2 {
			t.Fatalf("got %+v, want the restocked event", got)
		}
		if st := b.Stats(); st.Malformed != 6 || st.Received != 1 {
			t.Fatalf("stats = %+v, want 6 malformed and 1 received", st)
		}
	})
}

func TestPublishRefusesInvalidEvents(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	b := New(client(t, m.Addr(), "p"), "ch", "p")
	for _, e := range []Event{{Kind: "explode", Item: 1}, {Kind: KindInvalidate}, {Kind: KindSoldOut, Item: -1},
		{Kind: KindBlocked}, {Kind: KindBlocked, User: "no spaces"}, {Kind: KindUnblocked, User: "eve", Item: 1}} {
		if err := b.Publish(context.Background(), e); !errors.Is(err, sale.ErrInvalid) {
			t.Errorf("Publish(%+v) = %v, want ErrInvalid", e, err)
		}
	}
	if st := b.Stats(); st.Sent != 0 {
		t.Fatalf("Sent = %d after refused publishes", st.Sent)
	}
}

func TestLostConnectionCallsOnResubscribe(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, srv server) {
		channel := srv.prefix + ":bus"
		subName := "sub-" + testenv.Nonce()
		sub := New(srv.client(t, subName), channel, "sub")
		rec := newRecorder()
		run(t, sub, rec)

		srv.dropSubscribers(t, subName)
		waitFor(t, "onResubscribe", func() bool { return rec.resubscribe.Load() >= 1 })
		if n := rec.resubscribe.Load(); n != 1 {
			t.Fatalf("onResubscribe called %d times for one reconnect", n)
		}
		if st := sub.Stats(); st.Resubscribes != 1 {
			t.Fatalf("Resubscribes = %d, want 1", st.Resubscribes)
		}

		// And the new subscription delivers.
		pub := New(srv.client(t, "pub"), channel, "pub")
		if err := pub.Publish(context.Background(), Event{Kind: KindInvalidate, Item: 1}); err != nil {
			t.Fatal(err)
		}
		if got := rec.next(t); got.Sender != "pub" {
			t.Fatalf("after reconnect got %+v", got)
		}
	})
}

// A connection that stays open but delivers nothing (a dead peer, a
// firewall dropping state) is found by the health ping and replaced.
func TestSilentDeadConnectionIsReplaced(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, srv server) {
		if srv.addr == "" {
			t.Skip("a cluster client follows CLUSTER SLOTS to the nodes' own addresses, around a proxy; the cluster's dead-connection case is the kill in TestLostConnectionCallsOnResubscribe")
		}
		channel := srv.prefix + ":bus"
		px := newProxy(t, srv.addr)
		sub := New(client(t, px.addr(), "sub"), channel, "sub")
		sub.health = 100 * time.Millisecond
		rec := newRecorder()
		run(t, sub, rec)

		// A quiet channel with a live connection is not a reconnect.
		waitFor(t, "three answered pings", func() bool { return sub.pongs.Load() >= 3 })
		if n := rec.resubscribe.Load(); n != 0 {
			t.Fatalf("onResubscribe called %d times on a healthy quiet connection", n)
		}

		px.freeze()
		waitFor(t, "onResubscribe after the connection went silent", func() bool { return rec.resubscribe.Load() >= 1 })

		pub := New(srv.client(t, "pub"), channel, "pub")
		if err := pub.Publish(context.Background(), Event{Kind: KindInvalidate, Item: 1}); err != nil {
			t.Fatal(err)
		}
		if got := rec.next(t); got.Sender != "pub" {
			t.Fatalf("after replacement got %+v", got)
		}
	})
}

// proxy forwards TCP to a Redis; freeze makes the connections open so far
// swallow everything in both directions without closing.
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	frozen   []*atomic.Bool
	conns    []net.Conn
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = down.Close()
			continue
		}
		frozen := new(atomic.Bool)
		p.mu.Lock()
		p.frozen = append(p.frozen, frozen)
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		go pipe(up, down, frozen)
		go pipe(down, up, frozen)
	}
}

func pipe(dst, src net.Conn, frozen *atomic.Bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.frozen {
		f.Store(true)
	}
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// On Redis Cluster a classic PUBLISH reaches the subscribers of every node,
// whichever node it was sent to: a bus subscribed through the cluster client
// hears an event published on each master.
func TestClusterDeliversEventsPublishedOnAnyNode(t *testing.T) {
	t.Parallel()
	cl, prefix := testenv.RedisCluster(t)
	channel := prefix + ":bus"
	sub := New(cl, channel, "sub")
	rec := newRecorder()
	run(t, sub, rec)
	addrs := testenv.RedisClusterAddrs(t)
	for i, a := range addrs {
		pub := New(client(t, a, "pub"), channel, "node-"+a)
		if err := pub.Publish(context.Background(), Event{Kind: KindInvalidate, Item: sale.ItemID(i + 1)}); err != nil {
			t.Fatalf("publish on %s: %v", a, err)
		}
		if got := rec.next(t); got.Sender != "node-"+a || got.Item != sale.ItemID(i+1) {
			t.Fatalf("published on %s, got %+v", a, got)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopRedisCluster()
	os.Exit(code)
}
