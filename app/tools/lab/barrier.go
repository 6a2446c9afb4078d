package lab

import (
	"context"
	"sync"
	"time"
)

// barrier is the lab's widened window. A naive component calls Wait
// between its check and its act; the barrier holds every caller there
// until all the buyers the lab expects have checked, so each of them acts
// on what it read before anyone else acted: the interleaving the lab
// teaches, on every run, however busy the machine. A race left to timing
// is lost on an idle machine and won on a loaded one; this one cannot be.
//
// Two things keep it from hanging. A buyer that will never reach the
// check (refused earlier, say by the HTTP shield) is taken off the count
// with Leave; and the first arrival starts a timeout after which the
// barrier opens for whoever is there.
type barrier struct {
	timeout time.Duration
	open    chan struct{}

	mu       sync.Mutex
	want     int // callers expected, arrived or not
	arrived  int
	timer    *time.Timer
	timedOut bool
}

// newBarrier expects want callers and opens at the latest timeout after
// the first of them arrives.
func newBarrier(want int, timeout time.Duration) *barrier {
	return &barrier{want: want, timeout: timeout, open: make(chan struct{})}
}

// Wait arrives and holds the caller until the barrier opens (or ctx ends).
// Once open, it lets everyone through at once.
func (b *barrier) Wait(ctx context.Context) {
	b.mu.Lock()
	if !b.isOpen() {
		b.arrived++
		if b.arrived >= b.want {
			b.openLocked()
		} else if b.timer == nil {
			b.timer = time.AfterFunc(b.timeout, func() {
				b.mu.Lock()
				defer b.mu.Unlock()
				if !b.isOpen() {
					b.timedOut = true
					b.openLocked()
				}
			})
		}
	}
	b.mu.Unlock()
	select {
	case <-b.open:
	case <-ctx.Done():
	}
}

// Leave takes one expected caller off the count: it will never arrive.
// After the barrier opened it does nothing.
func (b *barrier) Leave() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.isOpen() {
		return
	}
	b.want--
	if b.arrived >= b.want {
		b.openLocked()
	}
}

// Held reports how many callers the barrier held, and whether it opened on
// its timeout rather than on the last arrival.
func (b *barrier) Held() (arrived int, timedOut bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.arrived, b.timedOut
}

func (b *barrier) isOpen() bool {
	select {
	case <-b.open:
		return true
	default:
		return false
	}
}

func (b *barrier) openLocked() {
	if b.timer != nil {
		b.timer.Stop()
	}
	close(b.open)
}
