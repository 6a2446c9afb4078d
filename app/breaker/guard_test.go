package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"seckill/domain/sale"
)

var errTransport = errors.New("dial tcp: connection refused")

func fail(context.Context) (int, error) { return 0, errTransport }
func soldOut(context.Context) (int, error) {
	return 0, fmt.Errorf("reserve: %w", sale.ErrSoldOut)
}
func ok(context.Context) (int, error) { return 1, nil }

func TestBreakerOpensOnTransportFailuresOnly(t *testing.T) {
	t.Parallel()
	b := NewBreaker("test", Settings{OpenFor: time.Hour})
	// A spike of refusals is the normal case: it must never open.
	for range 1000 {
		if _, err := do(b, context.Background(), soldOut); !errors.Is(err, sale.ErrSoldOut) {
			t.Fatalf("got %v, want sold out passed through", err)
		}
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after 1000 sold-out answers, want closed", b.State())
	}
	for range 5 {
		_, _ = do(b, context.Background(), fail)
	}
	if b.State() != "open" {
		t.Fatalf("state %s after 5 transport failures, want open", b.State())
	}
	called := false
	start := time.Now()
	_, err := do(b, context.Background(), func(context.Context) (int, error) { called = true; return 1, nil })
	if !errors.Is(err, ErrOpen) || called {
		t.Fatalf("open breaker: err %v, called %v; want ErrOpen without a call", err, called)
	}
	// Not a speed test: called proves the call was not made; this bound
	// only catches a refusal that waits (for a timeout, a lock), and stays
	// far above what a loaded machine under -race adds to a map lookup.
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("a refused call took %v", d)
	}
	if st := b.Stats(); st.Rejected != 1 || st.Opened != 1 || st.Failures != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestBreakerCanceledCallerCountsAsNothing(t *testing.T) {
	t.Parallel()
	b := NewBreaker("test", Settings{OpenFor: time.Hour})
	for range 50 {
		_, _ = do(b, context.Background(), func(context.Context) (int, error) { return 0, context.Canceled })
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after callers that went away, want closed", b.State())
	}
}

func TestBreakerHalfOpenProbesClose(t *testing.T) {
	t.Parallel()
	b := NewBreaker("test", Settings{OpenFor: 50 * time.Millisecond, Probes: 2})
	for range 5 {
		_, _ = do(b, context.Background(), fail)
	}
	if b.State() != "open" {
		t.Fatal("did not open")
	}
	time.Sleep(80 * time.Millisecond)
	if b.State() != "half-open" {
		t.Fatalf("state %s after OpenFor, want half-open", b.State())
	}
	// A failing probe opens it again.
	_, _ = do(b, context.Background(), fail)
	if b.State() != "open" {
		t.Fatalf("state %s after a failed probe, want open", b.State())
	}
	time.Sleep(80 * time.Millisecond)
	for range 2 {
		if _, err := do(b, context.Background(), ok); err != nil {
			t.Fatal(err)
		}
	}
	if b.State() != "closed" {
		t.Fatalf("state %s after 2 good probes, want closed", b.State())
	}
}

func TestBreakerOpensOnFailureRatio(t *testing.T) {
	t.Parallel()
	b := NewBreaker("test", Settings{OpenFor: time.Hour})
	// Alternating never makes 5 in a row, but half of 20 failed.
	for i := range 20 {
		if i%2 == 0 {
			_, _ = do(b, context.Background(), ok)
		} else {
			_, _ = do(b, context.Background(), fail)
		}
	}
	if b.State() != "open" {
		t.Fatalf("state %s after 10 of 20 failed, want open", b.State())
	}
}

func TestDeadlineBoundsACallThatIgnoresItsContext(t *testing.T) {
	t.Parallel()
	b := NewBreaker("test", Settings{CallTimeout: 20 * time.Millisecond, OpenFor: time.Hour})
	release := make(chan struct{})
	defer close(release)
	start := time.Now()
	_, err := detach(b, context.Background(), func(context.Context) (int, error) { <-release; return 1, nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("detach waited %v for a 20ms deadline", d)
	}
	if b.Stats().Failures != 1 {
		t.Errorf("an overrun must count as a failure: %+v", b.Stats())
	}
	// do passes the deadline in ctx, for adapters that honour it.
	_, err = do(b, context.Background(), func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("do: err %v, want deadline exceeded", err)
	}
}

type fakeHealth struct{ slow bool }

func (h *fakeHealth) Slow(time.Duration) bool { return h.slow }

// TestDetachWaitsOnAHealthyBackend: past the deadline, a call whose backend
// is answering (the wait is our own queue) is waited for and not counted;
// one whose backend is slow is given up and counted.
func TestDetachWaitsOnAHealthyBackend(t *testing.T) {
	t.Parallel()
	b := NewBreaker("test", Settings{CallTimeout: 20 * time.Millisecond, OpenFor: time.Hour, Health: &fakeHealth{slow: false}})
	v, err := detach(b, context.Background(), func(context.Context) (int, error) { time.Sleep(100 * time.Millisecond); return 7, nil })
	if err != nil || v != 7 {
		t.Fatalf("healthy backend: %d %v, want the result after the deadline", v, err)
	}
	if b.Stats().Failures != 0 {
		t.Fatalf("a queue wait counted as a failure: %+v", b.Stats())
	}
	slow := NewBreaker("test", Settings{CallTimeout: 20 * time.Millisecond, OpenFor: time.Hour, Health: &fakeHealth{slow: true}})
	start := time.Now()
	_, err = detach(slow, context.Background(), func(context.Context) (int, error) { time.Sleep(time.Second); return 7, nil })
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("slow backend: %v after %v, want a deadline error at about 20ms", err, time.Since(start))
	}
}

func TestRedisHealthSeesARoundTripWaitingTooLong(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Unix(100, 0)
	h := NewRedisHealth()
	h.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	_ = h.observe("", func() error { advance(time.Second); return nil }) // slow, but answered
	if h.Slow(100 * time.Millisecond) {
		t.Fatal("nothing in flight, yet slow")
	}
	answered, release := make(chan struct{}), make(chan struct{})
	go func() { _ = h.observe("b:1", func() error { close(answered); <-release; return nil }) }()
	<-answered
	advance(50 * time.Millisecond)
	if h.Slow(100 * time.Millisecond) {
		t.Fatal("a round trip 50ms old made Redis slow at 100ms")
	}
	advance(100 * time.Millisecond)
	if !h.Slow(100 * time.Millisecond) {
		t.Fatal("a round trip 150ms old: not slow at 100ms")
	}
	// On a cluster only the node that keeps the round trip waiting is slow.
	if !h.Node("b:1").Slow(100*time.Millisecond) || h.Node("a:1").Slow(100*time.Millisecond) {
		t.Fatal("a round trip to b:1 150ms old: want b:1 slow and a:1 not")
	}
	close(release)
}
