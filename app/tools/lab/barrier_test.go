package lab

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestBarrierHoldsEveryoneUntilTheLastArrives: no caller passes before the
// last expected one has arrived, so each acts on what it read before.
func TestBarrierHoldsEveryoneUntilTheLastArrives(t *testing.T) {
	const n = 50
	b := newBarrier(n, time.Hour)
	var mu sync.Mutex
	arrived, passedEarly := 0, 0
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			arrived++
			mu.Unlock()
			b.Wait(context.Background())
			mu.Lock()
			if arrived < n {
				passedEarly++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if passedEarly != 0 {
		t.Fatalf("%d callers passed before all %d arrived", passedEarly, n)
	}
	if got, timedOut := b.Held(); got != n || timedOut {
		t.Fatalf("Held() = %d, %v; want %d, false", got, timedOut, n)
	}
}

// TestBarrierStopsWaitingForThoseWhoLeave: callers refused before the
// check are taken off the count, and the rest go on without the timeout.
func TestBarrierStopsWaitingForThoseWhoLeave(t *testing.T) {
	b := newBarrier(3, time.Hour)
	done := make(chan struct{})
	go func() { b.Wait(context.Background()); close(done) }()
	b.Leave()
	select {
	case <-done:
		t.Fatal("passed with one caller still expected")
	default:
	}
	b.Leave()
	<-done
	if _, timedOut := b.Held(); timedOut {
		t.Fatal("opened on the timeout")
	}
}

// TestBarrierOpensOnItsTimeout: fewer callers than expected cannot hang.
func TestBarrierOpensOnItsTimeout(t *testing.T) {
	b := newBarrier(2, time.Millisecond)
	b.Wait(context.Background())
	if n, timedOut := b.Held(); n != 1 || !timedOut {
		t.Fatalf("Held() = %d, %v; want 1, true", n, timedOut)
	}
	b.Wait(context.Background()) // open now: passes at once
}
