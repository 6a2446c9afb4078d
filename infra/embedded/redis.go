package embedded

import (
	"fmt"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// redisTick is how often Redis advances miniredis's clock. Keys expire
// within about this long after their TTL runs out.
const redisTick = 100 * time.Millisecond

// Redis is a miniredis server whose TTLs run on the wall clock.
type Redis struct {
	mr   *miniredis.Miniredis
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// StartRedis listens on addr ("127.0.0.1:0" picks a free port) and starts
// the clock that expires keys in real time. miniredis on its own expires
// keys only when FastForward is called, so without the clock a session or
// lock with a TTL would live forever.
func StartRedis(addr string) (*Redis, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedded: start redis on %s: %w", addr, err)
	}
	r := &Redis{mr: mr, stop: make(chan struct{}), done: make(chan struct{})}
	go r.clock()
	return r, nil
}

// clock feeds miniredis the wall time that has passed since the last tick,
// measured rather than assumed, so a slow tick does not slow TTLs down.
func (r *Redis) clock() {
	defer close(r.done)
	t := time.NewTicker(redisTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			if d := now.Sub(last); d > 0 {
				r.mr.FastForward(d)
				last = now
			}
		}
	}
}

// Addr returns the host:port the server listens on.
func (r *Redis) Addr() string { return r.mr.Addr() }

// Close stops the clock and the server; calling it again does nothing.
func (r *Redis) Close() {
	r.once.Do(func() {
		close(r.stop)
		<-r.done
		r.mr.Close()
	})
}
