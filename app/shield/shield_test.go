package shield

import (
	"errors"
	"math"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"seckill/domain/sale"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// admitted drives a limiter with a fake clock: calls attempts spread evenly
// over d and counts how many pass.
func admitted(d time.Duration, attempts int, allow func(time.Time) error) int {
	n := 0
	step := d / time.Duration(attempts)
	for i := 0; i < attempts; i++ {
		if allow(t0.Add(time.Duration(i)*step)) == nil {
			n++
		}
	}
	return n
}

func TestLimitersAdmitConfiguredRate(t *testing.T) {
	t.Parallel()
	// Tolerance: over 10 s the admitted count is rate*10 + burst, within 1%.
	cases := []struct {
		name  string
		rate  float64
		burst int
		allow func(s *Shield, at time.Time) error
	}{
		{"user 5/s burst 5", 5, 5, func(s *Shield, at time.Time) error { return s.AllowUser("alice", at) }},
		{"item default 1000/s burst 100", 1000, 100, func(s *Shield, at time.Time) error { return s.AllowItem(1, 0, at) }},
		{"item override 50/s", 50, 5, func(s *Shield, at time.Time) error { return s.AllowItem(2, 50, at) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New(Options{UserRate: 5, UserBurst: 5, ItemRate: 1000, ItemBurst: 100})
			got := admitted(10*time.Second, 100_000, func(at time.Time) error { return c.allow(s, at) })
			want := c.rate*10 + float64(c.burst)
			if math.Abs(float64(got)-want) > want*0.01+1 {
				t.Fatalf("admitted %d in 10s, want %.0f ±1%%", got, want)
			}
		})
	}
}

func TestLimiterRefusalIsRateLimited(t *testing.T) {
	t.Parallel()
	s := New(Options{UserRate: 1, UserBurst: 1})
	if err := s.AllowUser("bob", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.AllowUser("bob", t0); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("second attempt: %v, want ErrRateLimited", err)
	}
	if err := s.AllowUser("carol", t0); err != nil {
		t.Fatalf("another user is limited separately: %v", err)
	}
	if s.Stats().RejectedUser != 1 {
		t.Fatalf("stats = %+v", s.Stats())
	}
}

func TestInFlightBoundRefusesImmediately(t *testing.T) {
	t.Parallel()
	s := New(Options{MaxInFlight: 3})
	var releases []func()
	for i := 0; i < 3; i++ {
		r, err := s.Enter()
		if err != nil {
			t.Fatalf("slot %d: %v", i, err)
		}
		releases = append(releases, r)
	}
	done := make(chan error, 1)
	go func() { _, err := s.Enter(); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrOverloaded) {
			t.Fatalf("4th Enter = %v, want ErrOverloaded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Enter blocked instead of refusing")
	}
	releases[0]()
	if _, err := s.Enter(); err != nil {
		t.Fatalf("after a release: %v", err)
	}
}

func TestSoldOutFlag(t *testing.T) {
	t.Parallel()
	const item = sale.ItemID(7)
	s := New(Options{SoldOutTTL: 2 * time.Second})
	if s.SoldOut(item, t0) {
		t.Fatal("flag set before any report")
	}
	s.MarkSoldOut(item, 3, t0)
	if !s.SoldOut(item, t0.Add(time.Second)) {
		t.Fatal("flag not set after MarkSoldOut")
	}
	if s.SoldOut(item, t0.Add(3*time.Second)) {
		t.Fatal("flag trusted past its TTL")
	}

	// Units come back (gen 4): the flag clears at once.
	s.MarkSoldOut(item, 3, t0)
	s.StockBack(item, 4)
	if s.SoldOut(item, t0) {
		t.Fatal("flag survived stock coming back")
	}
	// A late sold-out report from before the stock came back is ignored, so
	// reordered broadcasts cannot block a sale that has stock.
	s.MarkSoldOut(item, 3, t0)
	if s.SoldOut(item, t0) {
		t.Fatal("stale sold-out report (gen 3 < 4) set the flag")
	}
	// A report at the new generation does set it.
	s.MarkSoldOut(item, 4, t0)
	if !s.SoldOut(item, t0) {
		t.Fatal("current sold-out report ignored")
	}
	s.Forget()
	if s.SoldOut(item, t0) {
		t.Fatal("Forget left a flag")
	}
}

func TestSweepUsers(t *testing.T) {
	t.Parallel()
	s := New(Options{UserIdle: time.Minute})
	_ = s.AllowUser("old", t0)
	_ = s.AllowUser("new", t0.Add(50*time.Second))
	if n := s.SweepUsers(t0.Add(90 * time.Second)); n != 1 {
		t.Fatalf("swept %d, want 1", n)
	}
	if s.Stats().TrackedUsers != 1 {
		t.Fatalf("tracked = %d", s.Stats().TrackedUsers)
	}
}

func TestItemExhaustedPeeksWithoutSpending(t *testing.T) {
	t.Parallel()
	s := New(Options{ItemRate: 1000, ItemBurst: 100})
	for i := 0; i < 10; i++ {
		if s.ItemExhausted(9, 2, t0) {
			t.Fatal("a full bucket reported exhausted")
		}
	}
	// The peeks spent nothing: the burst of 2/10 → 1 token is still there.
	if err := s.AllowItem(9, 2, t0); err != nil {
		t.Fatalf("first token after peeks: %v", err)
	}
	if !s.ItemExhausted(9, 2, t0) {
		t.Fatal("an empty bucket reported available")
	}
	if s.Stats().RejectedItem != 1 {
		t.Fatalf("stats = %+v", s.Stats())
	}
}

// TestItemExhaustedFastPathAgreesWithTheBucket: the lock-free "empty until"
// mark must answer exactly as the token bucket would, at every moment of a
// refill, and must not outlive a change of the item's rate.
func TestItemExhaustedFastPathAgreesWithTheBucket(t *testing.T) {
	t.Parallel()
	const perSec = 20.0 // one token every 50 ms, burst 2
	s := New(Options{ItemRate: 1000, ItemBurst: 100})
	ref := rate.NewLimiter(rate.Limit(perSec), 2)
	now := t0
	for step := 0; step < 400; step++ {
		want := ref.TokensAt(now) < 1
		if got := s.ItemExhausted(9, perSec, now); got != want {
			t.Fatalf("at +%v: ItemExhausted = %v, the bucket holds %.3f tokens", now.Sub(t0), got, ref.TokensAt(now))
		}
		// Every third moment a buyer passes the user check and spends.
		if step%3 == 0 {
			wantOK := ref.AllowN(now, 1)
			if err := s.AllowItem(9, perSec, now); (err == nil) != wantOK {
				t.Fatalf("at +%v: AllowItem = %v, the bucket says %v", now.Sub(t0), err, wantOK)
			}
		}
		now = now.Add(7 * time.Millisecond)
	}
	// Empty now at 20/s; the same moment at a rate raised to 1000/s is a
	// fresh, full bucket, whatever the mark says.
	for s.AllowItem(9, perSec, now) == nil {
	}
	if !s.ItemExhausted(9, perSec, now) {
		t.Fatal("an emptied bucket reported available")
	}
	if s.ItemExhausted(9, 1000, now) {
		t.Fatal("the mark of the old rate refused a purchase at the new rate")
	}
}
