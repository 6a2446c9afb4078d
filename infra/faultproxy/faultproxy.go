// Package faultproxy is a TCP proxy for tests: it listens on a loopback
// port, forwards every connection to one upstream, and injects a fault that
// can be switched at any time, on the connections already open and on new
// ones. It exists so the fault tests can make a real Redis, MariaDB or
// broker slow, silent or refusing without touching the server itself.
// Production code never uses it.
//
// The faults:
//   - Latency: every forwarded chunk waits the given delay, both ways.
//   - BlackHole: connections are accepted and read, and nothing is
//     forwarded or answered. A connection that lost bytes this way is closed
//     (with a reset) when the fault ends, because its stream is broken.
//   - Reset: every open connection is closed with SO_LINGER 0 (the peer
//     sees a reset) and new ones are reset as soon as they are accepted.
//   - Bandwidth: each direction of each connection forwards at most the
//     given bytes per second.
//   - LoseReplies: what clients send is forwarded, and nothing the
//     upstream answers reaches them: a server that applies a command and
//     whose reply is lost. Connections that lost bytes are reset when the
//     fault ends, as with BlackHole.
//
// Switching to None restores normal forwarding at once.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Kind names a fault.
type Kind int

// The faults.
const (
	None Kind = iota
	Latency
	BlackHole
	Reset
	Bandwidth
	LoseReplies
)

// String names the kind for logs and reports.
func (k Kind) String() string {
	switch k {
	case Latency:
		return "latency"
	case BlackHole:
		return "black hole"
	case Reset:
		return "reset"
	case Bandwidth:
		return "bandwidth"
	case LoseReplies:
		return "lose replies"
	}
	return "none"
}

// Fault is what the proxy does to traffic. Delay is for Latency, BytesPerSec
// for Bandwidth.
type Fault struct {
	Kind        Kind
	Delay       time.Duration
	BytesPerSec int
}

// String describes the fault, e.g. "latency 300ms".
func (f Fault) String() string {
	switch f.Kind {
	case Latency:
		return fmt.Sprintf("latency %v", f.Delay)
	case Bandwidth:
		return fmt.Sprintf("bandwidth %d B/s", f.BytesPerSec)
	}
	return f.Kind.String()
}

// Proxy forwards connections from its listener to the upstream. It is safe
// for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	fault  Fault
	conns  map[*pair]struct{}
	closed bool
	wg     sync.WaitGroup
}

// pair is one proxied connection.
type pair struct {
	client, server net.Conn
	once           sync.Once
	mu             sync.Mutex
	tainted        bool // bytes were dropped by a black hole or a lost reply
}

// Start listens on listen (e.g. "127.0.0.1:0") and forwards to upstream.
func Start(listen, upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, upstream: upstream, conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Fault returns the fault in force.
func (p *Proxy) Fault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// Set switches the fault. It applies to every open connection at its next
// chunk, and to every new connection. Reset closes the open ones now;
// leaving BlackHole closes those that lost bytes.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	prev := p.fault
	p.fault = f
	var drop []*pair
	for c := range p.conns {
		if f.Kind == Reset {
			drop = append(drop, c)
			continue
		}
		if (prev.Kind == BlackHole || prev.Kind == LoseReplies) && f.Kind != prev.Kind {
			c.mu.Lock()
			if c.tainted {
				drop = append(drop, c)
			}
			c.mu.Unlock()
		}
	}
	p.mu.Unlock()
	for _, c := range drop {
		p.drop(c)
	}
}

// Clear is Set(Fault{}): normal forwarding.
func (p *Proxy) Clear() { p.Set(Fault{}) }

// Close stops listening and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	all := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range all {
		p.drop(c)
	}
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.Fault().Kind == Reset {
			resetClose(c)
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.upstream, 2*time.Second) //nolint:noctx // a connection has no context here; the timeout bounds the dial
	if err != nil {
		resetClose(client)
		return
	}
	c := &pair{client: client, server: server}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		resetClose(client)
		_ = server.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(c, server, client); done <- struct{}{} }()
	go func() { p.pipe(c, client, server); done <- struct{}{} }()
	<-done
	p.drop(c)
	<-done
}

// pipe copies src to dst chunk by chunk, applying the fault in force when
// each chunk arrives.
func (p *Proxy) pipe(c *pair, dst, src net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if werr := p.forward(c, dst, buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) forward(c *pair, dst net.Conn, b []byte) error {
	f := p.Fault()
	switch f.Kind {
	case BlackHole:
		c.mu.Lock()
		c.tainted = true
		c.mu.Unlock()
		return nil
	case LoseReplies:
		if dst == c.client {
			c.mu.Lock()
			c.tainted = true
			c.mu.Unlock()
			return nil
		}
	case Reset:
		return errors.New("reset")
	case Latency:
		time.Sleep(f.Delay)
	case Bandwidth:
		if f.BytesPerSec > 0 {
			// Send in slices of about 10ms' worth, so a limit applies
			// smoothly rather than as one long pause per chunk.
			step := max(1, f.BytesPerSec/100)
			for len(b) > 0 {
				k := min(step, len(b))
				if _, err := dst.Write(b[:k]); err != nil {
					return err
				}
				b = b[k:]
				time.Sleep(time.Duration(k) * time.Second / time.Duration(f.BytesPerSec))
			}
			return nil
		}
	}
	_, err := dst.Write(b)
	return err
}

// drop closes both sides of c with a reset, once.
func (p *Proxy) drop(c *pair) {
	c.once.Do(func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		resetClose(c.client)
		resetClose(c.server)
	})
}

// resetClose closes c with SO_LINGER 0, so the peer gets a reset rather
// than an orderly end of stream.
func resetClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
