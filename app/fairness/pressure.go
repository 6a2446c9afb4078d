package fairness

import (
	"math"
	"sync"
	"time"

	"seckill/domain/sale"
)

// pressure counts one instance's proven attempts on each item (tickets
// issued, purchases with a genuine ticket; see Service.Difficulty) in
// one-second buckets over a sliding window. It is local on
// purpose: it costs no round trip on the hot path, and with a load balancer
// spreading requests evenly each instance sees the same share of the rush.
type pressure struct {
	window int // seconds

	mu    sync.Mutex
	items map[sale.ItemID]*ring
}

// ring holds the counts of the last window seconds; slot i counts second
// secs[i].
type ring struct {
	counts []int64
	secs   []int64
}

func newPressure(window time.Duration) *pressure {
	w := max(int(window/time.Second), 1)
	return &pressure{window: w, items: map[sale.ItemID]*ring{}}
}

func (p *pressure) observe(id sale.ItemID, now time.Time) {
	sec := now.Unix()
	p.mu.Lock()
	r := p.items[id]
	if r == nil {
		r = &ring{counts: make([]int64, p.window), secs: make([]int64, p.window)}
		p.items[id] = r
	}
	i := int(sec % int64(p.window))
	if r.secs[i] != sec {
		r.secs[i], r.counts[i] = sec, 0
	}
	r.counts[i]++
	p.mu.Unlock()
}

// rate is the item's attempts per second over the window ending at now.
func (p *pressure) rate(id sale.ItemID, now time.Time) float64 {
	sec := now.Unix()
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.items[id]
	if r == nil {
		return 0
	}
	var n int64
	for i := range r.secs {
		if sec-r.secs[i] < int64(p.window) && r.secs[i] <= sec {
			n += r.counts[i]
		}
	}
	return float64(n) / float64(p.window)
}

// sweep forgets items with no attempt in the window, so the map does not
// grow with every item ever sold.
func (p *pressure) sweep(now time.Time) {
	sec := now.Unix()
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, r := range p.items {
		live := false
		for _, s := range r.secs {
			if sec-s < int64(p.window) {
				live = true
				break
			}
		}
		if !live {
			delete(p.items, id)
		}
	}
}

// difficultyFor is the cost model: the base difficulty while the item's
// pressure is at most its admitted purchase rate, plus one bit (twice the
// expected work) for every doubling beyond it, within [lo, hi].
func difficultyFor(rate, admitted float64, lo, hi int) int {
	d := lo
	if admitted > 0 && rate > admitted {
		d += int(math.Ceil(math.Log2(rate / admitted)))
	}
	return min(max(d, lo), hi)
}
