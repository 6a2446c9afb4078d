package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// echoServer answers every byte it reads with the same byte.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T) *Proxy {
	t.Helper()
	p, err := Start("127.0.0.1:0", echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends msg and reads it back within timeout.
func roundTrip(c net.Conn, msg []byte, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs")
	}
	return nil
}

func TestForwardsWithoutFault(t *testing.T) {
	t.Parallel()
	p := start(t)
	c := dial(t, p)
	if err := roundTrip(c, []byte("hello"), time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestLatencyDelaysEachChunkBothWays(t *testing.T) {
	t.Parallel()
	p := start(t)
	c := dial(t, p)
	p.Set(Fault{Kind: Latency, Delay: 100 * time.Millisecond})
	t0 := time.Now()
	if err := roundTrip(c, []byte("x"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Fatalf("round trip through 100ms latency each way took %v, want at least 200ms", d)
	}
	p.Clear()
	t0 = time.Now()
	if err := roundTrip(c, []byte("y"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 150*time.Millisecond {
		t.Errorf("after Clear a round trip took %v", d)
	}
}

func TestBlackHoleSwallowsAndRecovers(t *testing.T) {
	t.Parallel()
	p := start(t)
	old := dial(t, p)
	if err := roundTrip(old, []byte("a"), time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(Fault{Kind: BlackHole})
	var ne net.Error
	if err := roundTrip(old, []byte("b"), 200*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("open connection in a black hole: %v, want a read timeout", err)
	}
	fresh := dial(t, p) // accepted, but never answered
	if err := roundTrip(fresh, []byte("c"), 200*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("new connection in a black hole: %v, want a read timeout", err)
	}
	p.Clear()
	// The connection that lost bytes is closed: its stream is broken.
	_ = old.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := old.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection that lost bytes in the black hole still carries data")
	}
	if err := roundTrip(dial(t, p), []byte("d"), time.Second); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
}

func TestResetClosesOpenAndRefusesNew(t *testing.T) {
	t.Parallel()
	p := start(t)
	old := dial(t, p)
	if err := roundTrip(old, []byte("a"), time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(Fault{Kind: Reset})
	_ = old.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := old.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("open connection after Reset: %v, want connection reset", err)
	}
	// The reset may arrive during the handshake or at the first read.
	fresh, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err == nil {
		_ = fresh.SetReadDeadline(time.Now().Add(time.Second))
		_, err = fresh.Read(make([]byte, 1))
		_ = fresh.Close()
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("new connection during Reset: %v, want connection reset", err)
	}
	p.Clear()
	if err := roundTrip(dial(t, p), []byte("b"), time.Second); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
}

func TestBandwidthLimitsThroughput(t *testing.T) {
	t.Parallel()
	p := start(t)
	c := dial(t, p)
	p.Set(Fault{Kind: Bandwidth, BytesPerSec: 20 << 10})
	msg := bytes.Repeat([]byte("z"), 8<<10)
	t0 := time.Now()
	if err := roundTrip(c, msg, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// 8 KiB at 20 KiB/s is at least 0.4s; the two directions overlap.
	if d := time.Since(t0); d < 350*time.Millisecond {
		t.Fatalf("8 KiB echoed at 20 KiB/s in %v, want at least 400ms", d)
	}
	p.Clear()
	t0 = time.Now()
	if err := roundTrip(c, msg, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 200*time.Millisecond {
		t.Errorf("after Clear 8 KiB took %v", d)
	}
}

// TestLoseRepliesForwardsButAnswersNothing: the upstream receives what the
// client sends (a server that applies the command), the client hears
// nothing back, and the connection is reset when the fault ends.
func TestLoseRepliesForwardsButAnswersNothing(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	got := make(chan byte, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				for {
					if _, err := c.Read(b); err != nil {
						return
					}
					got <- b[0]
					_, _ = c.Write(b)
				}
			}()
		}
	}()
	p, err := Start("127.0.0.1:0", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	c := dial(t, p)
	p.Set(Fault{Kind: LoseReplies})
	var ne net.Error
	if err := roundTrip(c, []byte("q"), 300*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("with replies lost: %v, want a read timeout", err)
	}
	if b := <-got; b != 'q' {
		t.Fatalf("upstream received %q, want q", b)
	}
	p.Clear()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection that lost a reply still carries data")
	}
	if err := roundTrip(dial(t, p), []byte("r"), time.Second); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
}
