// Package shield answers doomed purchase requests locally, in microseconds,
// so that Redis only sees requests that can still win. It holds the
// per-item (hot key) and per-user token buckets, the bound on purchases in
// flight, and the per-item sold-out flags.
//
// Everything here is per instance. The sold-out flag is shared by broadcast
// (the caller publishes MarkSoldOut/StockBack events to other instances),
// and it is only ever a shortcut: a flag that is stale, lost or wrong costs
// at most SoldOutTTL of refusals, never a unit of stock, because Redis
// remains the judge of every request the flag lets through.
package shield

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"seckill/domain/sale"
)

// ErrRateLimited means a token bucket refused the request; retry after a second.
var ErrRateLimited = errors.New("rate limited")

// ErrOverloaded means the instance already has its maximum of purchases in
// flight; the request was refused at once instead of queueing.
var ErrOverloaded = errors.New("overloaded")

// Options sets the limits. Zero values are replaced by the defaults noted.
type Options struct {
	ItemRate    float64 // per item, per instance, per second; default 20000
	ItemBurst   int     // default 2000
	UserRate    float64 // per user, per second; default 5
	UserBurst   int     // default 5
	MaxInFlight int     // default 4096
	SoldOutTTL  time.Duration
	// UserIdle is how long an idle user's bucket is kept; default twice the
	// time an empty bucket takes to refill, at least 2s. A bucket idle that
	// long is full again, so forgetting it changes no decision, and during a
	// spike of distinct users the map stays small (less memory, less GC).
	UserIdle time.Duration
}

// Shield is safe for concurrent use.
type Shield struct {
	opts     Options
	inflight chan struct{}

	items sync.Map // sale.ItemID -> *itemState

	seed   maphash.Seed
	shards [64]userShard

	rejectedItem, rejectedUser, rejectedInflight, rejectedSoldOut atomic.Uint64
	flagsSet, flagsCleared                                        atomic.Uint64
}

type itemState struct {
	mu      sync.Mutex
	limiter *rate.Limiter
	perSec  float64
	// maxGen is the highest stock generation this instance has heard of.
	maxGen int64
	// flagSet/flagGen: the sold-out flag and the generation it was set at;
	// it is cleared when units come back at a later generation.
	flagSet bool
	flagGen int64
	// soldOut mirrors flagSet and flagNs holds when it was set (Unix ns),
	// for the lock-free fast path, which also applies SoldOutTTL.
	soldOut atomic.Bool
	flagNs  atomic.Int64
	// empty, if set, says the bucket holds less than one token until a
	// time, for the lock-free fast path of ItemExhausted.
	empty atomic.Pointer[emptyMark]
}

// emptyMark says an item's bucket holds less than one token until until
// (Unix ns), at the rate perSec it was computed for. Tokens only grow with
// time and only AllowItem spends them, so until then every ItemExhausted
// answer for that rate is "empty", and the hottest refusal of a sale (a
// request beyond the item's rate) takes no lock: with every buyer of one
// item on one mutex, the lock was the cost of a refusal.
type emptyMark struct {
	until  int64
	perSec float64
}

type userShard struct {
	mu    sync.Mutex
	users map[sale.UserID]*userBucket
}

type userBucket struct {
	limiter  *rate.Limiter
	lastSeen time.Time
}

// New returns a shield with the given limits.
func New(o Options) *Shield {
	if o.ItemRate <= 0 {
		o.ItemRate = 20000
	}
	if o.ItemBurst <= 0 {
		o.ItemBurst = 2000
	}
	if o.UserRate <= 0 {
		o.UserRate = 5
	}
	if o.UserBurst <= 0 {
		o.UserBurst = 5
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4096
	}
	if o.SoldOutTTL <= 0 {
		o.SoldOutTTL = 2 * time.Second
	}
	if o.UserIdle <= 0 {
		refill := time.Duration(float64(o.UserBurst) / o.UserRate * float64(time.Second))
		o.UserIdle = max(2*refill, 2*time.Second)
	}
	s := &Shield{opts: o, inflight: make(chan struct{}, o.MaxInFlight), seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].users = make(map[sale.UserID]*userBucket)
	}
	return s
}

// Enter takes an in-flight slot. It never waits: when all MaxInFlight slots
// are taken it returns ErrOverloaded, so overload turns into fast refusals
// instead of a queue that grows until requests time out. Call the returned
// func exactly once when the purchase is done.
func (s *Shield) Enter() (release func(), err error) {
	select {
	case s.inflight <- struct{}{}:
		return func() { <-s.inflight }, nil
	default:
		s.rejectedInflight.Add(1)
		return nil, ErrOverloaded
	}
}

// AllowUser spends one token from the user's bucket at now, or returns
// ErrRateLimited.
func (s *Shield) AllowUser(user sale.UserID, now time.Time) error {
	sh := &s.shards[maphash.String(s.seed, string(user))%uint64(len(s.shards))]
	sh.mu.Lock()
	b := sh.users[user]
	if b == nil {
		b = &userBucket{limiter: rate.NewLimiter(rate.Limit(s.opts.UserRate), s.opts.UserBurst)}
		sh.users[user] = b
	}
	b.lastSeen = now
	ok := b.limiter.AllowN(now, 1)
	sh.mu.Unlock()
	if !ok {
		s.rejectedUser.Add(1)
		return ErrRateLimited
	}
	return nil
}

// SweepUsers forgets buckets idle longer than UserIdle, so a spike of a
// million distinct users does not stay in memory. An idle bucket is full
// again anyway, so forgetting it changes no decision. Call it every
// UserIdle or so.
func (s *Shield) SweepUsers(now time.Time) (removed int) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for u, b := range sh.users {
			if now.Sub(b.lastSeen) > s.opts.UserIdle {
				delete(sh.users, u)
				removed++
			}
		}
		sh.mu.Unlock()
	}
	return removed
}

func (s *Shield) item(id sale.ItemID) *itemState {
	if v, ok := s.items.Load(id); ok {
		return v.(*itemState)
	}
	v, _ := s.items.LoadOrStore(id, &itemState{})
	return v.(*itemState)
}

// AllowItem spends one token from the item's bucket at now, or returns
// ErrRateLimited. perSec > 0 overrides the default rate for this item (an
// item's purchase_rate); the burst scales with it (a tenth of a second's
// worth, at least 1) unless the default rate applies.
func (s *Shield) AllowItem(id sale.ItemID, perSec float64, now time.Time) error {
	st := s.item(id)
	st.mu.Lock()
	ok := s.itemLimiter(st, perSec).AllowN(now, 1)
	st.mu.Unlock()
	if !ok {
		s.rejectedItem.Add(1)
		return ErrRateLimited
	}
	return nil
}

// ItemExhausted reports whether the item's bucket is empty at now, without
// spending a token, and counts the refusal. The purchase path asks it before
// the per-user bucket, so a request beyond the hot key's rate is refused
// without creating per-user state, while only requests that pass the user
// check spend the item's tokens (AllowItem).
func (s *Shield) ItemExhausted(id sale.ItemID, perSec float64, now time.Time) bool {
	st := s.item(id)
	if m := st.empty.Load(); m != nil && m.perSec == perSec && now.UnixNano() < m.until {
		s.rejectedItem.Add(1)
		return true
	}
	st.mu.Lock()
	lim := s.itemLimiter(st, perSec)
	empty := lim.TokensAt(now) < 1
	if empty {
		markEmpty(st, lim, perSec, now)
	}
	st.mu.Unlock()
	if empty {
		s.rejectedItem.Add(1)
	}
	return empty
}

// markEmpty records until when lim, found with less than one token at now,
// stays below one token. The caller holds st.mu. Only ItemExhausted sets
// the mark: it is the call that finds the bucket empty first, and
// AllowItem, on every accepted purchase, stays as cheap as it was.
func markEmpty(st *itemState, lim *rate.Limiter, perSec float64, now time.Time) {
	r := float64(lim.Limit())
	tokens := lim.TokensAt(now)
	if tokens >= 1 || r <= 0 || lim.Limit() == rate.Inf {
		return
	}
	wait := time.Duration((1 - tokens) / r * float64(time.Second))
	st.empty.Store(&emptyMark{until: now.Add(wait).UnixNano(), perSec: perSec})
}

// itemLimiter returns the item's bucket for perSec (0: the default rate),
// rebuilding it when the rate changed. The caller holds st.mu.
func (s *Shield) itemLimiter(st *itemState, perSec float64) *rate.Limiter {
	if perSec <= 0 {
		perSec = s.opts.ItemRate
	}
	if st.limiter == nil || st.perSec != perSec {
		burst := s.opts.ItemBurst
		if perSec != s.opts.ItemRate {
			burst = max(1, int(perSec/10))
		}
		st.limiter = rate.NewLimiter(rate.Limit(perSec), burst)
		st.perSec = perSec
	}
	return st.limiter
}

// SoldOut reports whether the item's sold-out flag is set and fresh at now.
// It takes no lock on the fast path.
func (s *Shield) SoldOut(id sale.ItemID, now time.Time) bool {
	v, ok := s.items.Load(id)
	if !ok {
		return false
	}
	st := v.(*itemState)
	if !st.soldOut.Load() {
		return false
	}
	if now.UnixNano()-st.flagNs.Load() > int64(s.opts.SoldOutTTL) {
		// Expired: let the next request ask Redis, which refreshes the flag.
		return false
	}
	s.rejectedSoldOut.Add(1)
	return true
}

// MarkSoldOut sets the flag for the item as of stock generation gen, unless
// this instance already knows of a later generation (units came back after
// the sold-out that this report describes).
func (s *Shield) MarkSoldOut(id sale.ItemID, gen int64, now time.Time) {
	st := s.item(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	if gen < st.maxGen {
		return
	}
	st.maxGen = gen
	st.flagSet, st.flagGen = true, gen
	st.flagNs.Store(now.UnixNano())
	if !st.soldOut.Swap(true) {
		s.flagsSet.Add(1)
	}
}

// StockBack records that units came back at generation gen (a restock or a
// failed order) and clears any flag set at an earlier generation. A
// sold-out report that arrives later but carries an older generation is
// then ignored by MarkSoldOut, so message reordering cannot block a sale
// that has stock.
func (s *Shield) StockBack(id sale.ItemID, gen int64) {
	st := s.item(id)
	st.mu.Lock()
	defer st.mu.Unlock()
	if gen > st.maxGen {
		st.maxGen = gen
	}
	if st.flagSet && st.flagGen < gen {
		st.flagSet = false
		if st.soldOut.Swap(false) {
			s.flagsCleared.Add(1)
		}
	}
}

// Forget clears every sold-out flag. Call it when broadcasts may have been
// missed (the subscription reconnected).
func (s *Shield) Forget() {
	s.items.Range(func(_, v any) bool {
		st := v.(*itemState)
		st.mu.Lock()
		st.flagSet = false
		st.soldOut.Store(false)
		st.mu.Unlock()
		return true
	})
}

// UserIdle is the idle time after which SweepUsers forgets a user.
func (s *Shield) UserIdle() time.Duration { return s.opts.UserIdle }

// Stats is a snapshot of the shield's counters and state.
type Stats struct {
	RejectedItem, RejectedUser, RejectedInFlight, RejectedSoldOut uint64
	FlagsSet, FlagsCleared                                        uint64
	InFlight, SoldOutFlags, TrackedUsers                          int
}

// Stats returns the counters and current state, for metrics.
func (s *Shield) Stats() Stats {
	st := Stats{
		RejectedItem:     s.rejectedItem.Load(),
		RejectedUser:     s.rejectedUser.Load(),
		RejectedInFlight: s.rejectedInflight.Load(),
		RejectedSoldOut:  s.rejectedSoldOut.Load(),
		FlagsSet:         s.flagsSet.Load(),
		FlagsCleared:     s.flagsCleared.Load(),
		InFlight:         len(s.inflight),
	}
	s.items.Range(func(_, v any) bool {
		if v.(*itemState).soldOut.Load() {
			st.SoldOutFlags++
		}
		return true
	})
	for i := range s.shards {
		s.shards[i].mu.Lock()
		st.TrackedUsers += len(s.shards[i].users)
		s.shards[i].mu.Unlock()
	}
	return st
}
