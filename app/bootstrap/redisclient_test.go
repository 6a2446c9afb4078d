package bootstrap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// fakeNode is a loopback server speaking just enough RESP2 to be a Redis
// Cluster node to go-redis: CLUSTER SLOTS names whichever node owner holds
// as the master of every slot, and GET answers the node's own name, so a
// test sees which node a key was routed to. kill makes it refuse
// connections and drops the open ones, as a SIGKILLed redis-server does.
type fakeNode struct {
	name  string
	ln    net.Listener
	owner *atomic.Pointer[fakeNode]

	mu    sync.Mutex
	conns []net.Conn
}

// startFakeNode listens on a free loopback port and serves until kill or the
// test's end.
func startFakeNode(t *testing.T, name string, owner *atomic.Pointer[fakeNode]) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{name: name, ln: ln, owner: owner}
	t.Cleanup(n.kill)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.mu.Lock()
			n.conns = append(n.conns, c)
			n.mu.Unlock()
			go n.serve(c)
		}
	}()
	return n
}

// addr is the node's host:port.
func (n *fakeNode) addr() string { return n.ln.Addr().String() }

// kill closes the listener (new connections are refused) and every open
// connection.
func (n *fakeNode) kill() {
	_ = n.ln.Close()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.conns {
		_ = c.Close()
	}
	n.conns = nil
}

// serve answers one connection's commands until it closes.
func (n *fakeNode) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		var reply string
		switch strings.ToUpper(args[0]) {
		case "HELLO": // go-redis falls back to RESP2 on any error reply
			reply = "-ERR unknown command 'HELLO'\r\n"
		case "CLIENT":
			reply = "+OK\r\n"
		case "PING":
			reply = "+PONG\r\n"
		case "COMMAND":
			reply = "*0\r\n"
		case "CLUSTER":
			if len(args) < 2 || strings.ToUpper(args[1]) != "SLOTS" {
				reply = "-ERR unsupported\r\n"
				break
			}
			host, port, _ := net.SplitHostPort(n.owner.Load().addr())
			reply = fmt.Sprintf("*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$%d\r\n%s\r\n:%s\r\n", len(host), host, port)
		case "GET":
			reply = fmt.Sprintf("$%d\r\n%s\r\n", len(n.name), n.name)
		default:
			reply = "-ERR unsupported\r\n"
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("want an array, got %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad array header %q", line)
	}
	args := make([]string, n)
	for i := range args {
		hdr, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(hdr, "$")))
		if err != nil {
			return nil, fmt.Errorf("bad bulk header %q", hdr)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

// TestClusterClientFollowsAFailover kills the master of every slot and
// promotes the other node, as a Redis Cluster failover does, and checks
// that the client routes to the new master within 3 s. Nothing answers
// MOVED in a failover, so go-redis on its own keeps dialling the dead node
// until its periodic reload (60 s by default); this fails without the
// reload-on-error hook of NewRedisClient, and with the 5 s periodic reload
// alone too.
func TestClusterClientFollowsAFailover(t *testing.T) {
	var owner atomic.Pointer[fakeNode]
	a := startFakeNode(t, "a", &owner)
	b := startFakeNode(t, "b", &owner)
	owner.Store(a)
	rdb := NewRedisClient(&redis.UniversalOptions{Addrs: []string{a.addr(), b.addr()}, IsClusterMode: true,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "a" {
		t.Fatalf("before the failover: GET k = %q, %v; want \"a\" from the master", got, err)
	}

	a.kill()
	owner.Store(b)
	// Well under clusterStateMaxAge (5 s), so the periodic reload cannot
	// pass the test alone; a reload on the first refused dial takes a few
	// milliseconds.
	const bound = 3 * time.Second
	deadline := time.Now().Add(bound)
	var got string
	var err error
	for time.Now().Before(deadline) {
		if got, err = rdb.Get(ctx, "k").Result(); err == nil && got == "b" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s after the failover GET k still answers %q, %v; want \"b\" from the promoted node", bound, got, err)
}

// TestStaleTopology pins which errors make the client reload its slot map.
func TestStaleTopology(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redis.Nil, false},
		{context.Canceled, false},
		{fmt.Errorf("ledger: %w", context.DeadlineExceeded), true},
		{errors.New("redis-ledger: circuit breaker open"), false},
		{fmt.Errorf("reserve: %w", refused), true},
		{io.EOF, true},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
	} {
		if got := staleTopology(c.err); got != c.want {
			t.Errorf("staleTopology(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
