package waitroom

import (
	"hash/maphash"
	"sync"
	"time"

	"seckill/domain/sale"
)

// placeShards spreads a line's places over this many locks.
const placeShards = 64

// places is this instance's memory of the buyers' places in one line, so a
// poll is answered without Redis. A line holds 100,000s of buyers, so the
// maps hold no pointers: a user id is kept as two independent 64-bit hashes
// (two ids share both only with odds of about n²/2¹²⁹) and a place as two
// integers. The GC then never scans them, where a sync.Map of LinePlace
// cost about 170 bytes a buyer, every one of them scanned on each cycle.
type places struct {
	seeds  [2]maphash.Seed
	shards [placeShards]placeShard
}

type placeShard struct {
	mu sync.RWMutex
	m  map[placeKey]placeRec
}

type placeKey [2]uint64

// placeRec is a LinePlace without pointers; until is Unix nanoseconds, 0
// for never admitted.
type placeRec struct{ place, until int64 }

func newPlaces() *places {
	p := &places{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	for i := range p.shards {
		p.shards[i].m = map[placeKey]placeRec{}
	}
	return p
}

func (p *places) key(user sale.UserID) (placeKey, *placeShard) {
	k := placeKey{maphash.String(p.seeds[0], string(user)), maphash.String(p.seeds[1], string(user))}
	return k, &p.shards[k[0]%placeShards]
}

// load returns user's remembered place.
func (p *places) load(user sale.UserID) (sale.LinePlace, bool) {
	k, sh := p.key(user)
	sh.mu.RLock()
	r, ok := sh.m[k]
	sh.mu.RUnlock()
	if !ok {
		return sale.LinePlace{}, false
	}
	lp := sale.LinePlace{Place: r.place}
	if r.until != 0 {
		lp.AdmittedUntil = time.Unix(0, r.until)
	}
	return lp, true
}

// store remembers user's place.
func (p *places) store(user sale.UserID, lp sale.LinePlace) {
	r := placeRec{place: lp.Place}
	if !lp.AdmittedUntil.IsZero() {
		r.until = lp.AdmittedUntil.UnixNano()
	}
	k, sh := p.key(user)
	sh.mu.Lock()
	sh.m[k] = r
	sh.mu.Unlock()
}

// clear forgets every place (the line was begun again).
func (p *places) clear() {
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		sh.m = map[placeKey]placeRec{}
		sh.mu.Unlock()
	}
}
