// Package waitroom is the waiting-room use case: buyers of a queue item
// (sale.ProtectionQueue) join a line and are admitted in turn, at the
// item's rate, with a single-use admission ticket that the purchase checks
// (app/fairness) and the stock ledger uses up.
//
// What it guarantees, with the line kept in Redis (infra/redisline):
//   - Everyone who joined before the opening is admitted, in a secret
//     random order, before anyone who joined later; later joiners are
//     admitted in join order; joining twice keeps the first place.
//   - Admissions run at the item's admit_per_second across all instances,
//     and never outnumber the units left: an admission that expires unused,
//     or a unit that comes back (cancel, expiry, a failed order), goes to
//     the next in line, and to nobody else (the waitlist).
//   - A poll is answered from this instance's copy of the line, read from
//     Redis at most every RefreshEvery per item, so a crowd polling is not
//     a new hot key: an instance sends its line one script per period,
//     plus one read per buyer whose place it has not seen yet.
package waitroom

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"seckill/domain/sale"
)

// ErrUnavailable means the line (Redis) or the item data did not answer;
// nothing changed. Retry after a second.
var ErrUnavailable = errors.New("waiting room unavailable")

// ErrNotInLine means the buyer polled a line they never joined (or one a
// Redis wipe lost): join it.
var ErrNotInLine = errors.New("not in line")

// Defaults applied by New to zero Options fields.
const (
	DefaultRefreshEvery = 250 * time.Millisecond
	DefaultAdmissionTTL = 2 * time.Minute
)

// The states a buyer's line can be in.
const (
	StateWaiting  = "waiting"
	StateAdmitted = "admitted"
	StateSoldOut  = "sold_out"
	StateExpired  = "expired"
	StateEnded    = "ended"
)

// line is the Redis waiting rooms (infra/redisline).
type line interface {
	Join(ctx context.Context, id sale.ItemID, user sale.UserID, c sale.LineConfig) (int64, error)
	Tick(ctx context.Context, id sale.ItemID, c sale.LineConfig) (sale.LineState, error)
	Place(ctx context.Context, id sale.ItemID, user sale.UserID) (sale.LinePlace, error)
}

// gate is the fair-sale service: the blocklist, and the admission tickets
// the purchase accepts.
type gate interface {
	Blocked(user sale.UserID) bool
	Admission(user sale.UserID, item sale.ItemID, expires time.Time) string
}

// Deps are the service's collaborators.
type Deps struct {
	Items sale.ItemReader // cached item data
	Line  line
	Fair  gate
}

// Options tunes the service; the zero value gives the defaults.
type Options struct {
	// RefreshEvery is how old this instance's copy of a line may be before
	// a poll or a join reads it again (and so advances the admissions).
	RefreshEvery time.Duration
	// AdmissionTTL is how long an admission lasts.
	AdmissionTTL time.Duration
	// Now is the clock; tests pass a fake one.
	Now func() time.Time
}

// Status is what a buyer sees of their place.
type Status struct {
	// State is StateWaiting, StateAdmitted, StateSoldOut, StateExpired or
	// StateEnded.
	State string
	// Position is how many buyers are ahead, plus one (waiting only);
	// before the opening, the size of the pre-queue, an upper bound.
	Position int64
	// ETA is the expected wait at the admission rate (waiting only).
	ETA time.Duration
	// Ticket and ExpiresAt are the admission (admitted only).
	Ticket    string
	ExpiresAt time.Time
}

// Service runs the waiting rooms. It is safe for concurrent use.
type Service struct {
	d     Deps
	o     Options
	lines sync.Map // sale.ItemID -> *itemLine
	// sweepAt is when forgetEnded may next look at every line (Unix ns).
	sweepAt atomic.Int64
}

// itemLine is this instance's copy of one item's line.
type itemLine struct {
	refresh sync.Mutex // one reader of Redis at a time
	mu      sync.RWMutex
	state   sale.LineState
	readAt  time.Time // local clock; zero: never read
	places  *places   // the buyers this instance has seen
	// item is the queue item as last read (by a join or a poll); after its
	// EndsAt the line is forgotten (forgetEnded). itemAt (local clock) is
	// when a poll read it, so that polls within a refresh period skip the
	// item cache's decode too; a join leaves it alone.
	item   sale.Item
	itemAt time.Time
}

// New returns the service.
func New(d Deps, o Options) *Service {
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = DefaultRefreshEvery
	}
	if o.AdmissionTTL <= 0 {
		o.AdmissionTTL = DefaultAdmissionTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{d: d, o: o}
}

func (s *Service) line(id sale.ItemID) *itemLine {
	if l, ok := s.lines.Load(id); ok {
		return l.(*itemLine)
	}
	l, _ := s.lines.LoadOrStore(id, &itemLine{places: newPlaces()})
	return l.(*itemLine)
}

func (s *Service) config(it sale.Item) sale.LineConfig {
	return sale.LineConfig{OpensAt: it.StartsAt, AdmitPerSecond: it.AdmitPerSecond, MaxActive: it.MaxActive, AdmissionTTL: s.o.AdmissionTTL}
}

// item reads a queue item: sale.ErrNotFound, ErrInvalid for an item
// without a waiting room, or ErrUnavailable.
func (s *Service) item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	it, err := s.d.Items.Item(ctx, id)
	if err != nil {
		if errors.Is(err, sale.ErrNotFound) {
			return sale.Item{}, err
		}
		return sale.Item{}, fmt.Errorf("%w: item lookup: %v", ErrUnavailable, err)
	}
	if !it.Protection.NeedsAdmission() {
		return sale.Item{}, &sale.ValidationError{Field: "protection", Reason: "item " + id.String() + " has no waiting room (protection " + string(it.Protection.OrNone()) + ")"}
	}
	return it, nil
}

// Join puts user in item's line and returns their status. Joining again
// keeps the first place. It returns sale.ErrBlocked, sale.ErrNotFound,
// ErrInvalid (an item without a waiting room), sale.ErrEnded, or
// ErrUnavailable.
func (s *Service) Join(ctx context.Context, user sale.UserID, id sale.ItemID) (Status, error) {
	if s.d.Fair.Blocked(user) {
		return Status{}, sale.ErrBlocked
	}
	it, err := s.item(ctx, id)
	if err != nil {
		return Status{}, err
	}
	if !s.o.Now().Before(it.EndsAt) {
		s.lines.Delete(id)
		return Status{}, sale.ErrEnded
	}
	// A join reads only the place: the line's state comes from this
	// instance's copy, read again at most every RefreshEvery, as for a
	// poll. A crowd of joins then costs Redis one short script each plus a
	// few reads of the line a second, not a read of the line per join. The
	// copy comes first: with none yet and Redis not answering, the buyer
	// hears 503 before a place is taken, not after.
	l := s.line(id)
	st, err := s.current(ctx, it, l)
	if err != nil {
		return Status{}, err
	}
	place, err := s.d.Line.Join(ctx, id, user, s.config(it))
	if err != nil {
		return Status{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	l.places.store(user, sale.LinePlace{Place: place})
	l.mu.Lock()
	l.item = it
	l.mu.Unlock()
	return s.status(it, user, sale.LinePlace{Place: place}, st), nil
}

// Poll returns user's status in item's line, from this instance's copy of
// the line (refreshed when older than RefreshEvery). Once the sale has
// ended it answers StateEnded to everyone, without the line. It returns
// ErrNotInLine if they never joined, sale.ErrNotFound, ErrInvalid,
// or ErrUnavailable.
func (s *Service) Poll(ctx context.Context, user sale.UserID, id sale.ItemID) (Status, error) {
	it, l, err := s.pollItem(ctx, id)
	if err != nil {
		return Status{}, err
	}
	if l == nil {
		return Status{State: StateEnded}, nil
	}
	st, err := s.current(ctx, it, l)
	if err != nil {
		return Status{}, err
	}
	p, err := s.place(ctx, id, user, l, st)
	if err != nil {
		return Status{}, err
	}
	return s.status(it, user, p, st), nil
}

// pollItem returns the queue item and this instance's copy of its line. The
// item is read again (from the item cache) at most every RefreshEvery per
// line, like the line itself: an admin's change reaches polls that much
// later. A line is made only for an item that is a queue item whose sale
// has not ended, so polls of unknown ids leave nothing behind; for an
// ended sale the line is nil.
func (s *Service) pollItem(ctx context.Context, id sale.ItemID) (sale.Item, *itemLine, error) {
	now := s.o.Now()
	if v, ok := s.lines.Load(id); ok {
		l := v.(*itemLine)
		l.mu.RLock()
		it, at := l.item, l.itemAt
		l.mu.RUnlock()
		if !at.IsZero() && now.Sub(at) < s.o.RefreshEvery && now.Before(it.EndsAt) {
			return it, l, nil
		}
	}
	s.forgetEnded(now)
	it, err := s.item(ctx, id)
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			s.lines.Delete(id) // deleted, or no longer a queue item
		}
		return sale.Item{}, nil, err
	}
	if !now.Before(it.EndsAt) {
		s.lines.Delete(id)
		return it, nil, nil
	}
	l := s.line(id)
	l.mu.Lock()
	l.item, l.itemAt = it, now
	l.mu.Unlock()
	return it, l, nil
}

// forgetEnded drops, at most once per RefreshEvery, every line whose sale
// has ended: its places (53 bytes a buyer) and its copy of the state. The
// end is the only final moment: until then a sold-out line still admits
// whoever is next when a unit comes back, and every waiting buyer's poll
// needs their place. Forgetting too early costs only a read from Redis per
// buyer, which keeps the truth. It runs from polls that read their item
// and from Lines (the metrics), so a line nobody polls after its end is
// forgotten too.
func (s *Service) forgetEnded(now time.Time) {
	due := s.sweepAt.Load()
	if now.UnixNano() < due || !s.sweepAt.CompareAndSwap(due, now.Add(s.o.RefreshEvery).UnixNano()) {
		return
	}
	s.lines.Range(func(k, v any) bool {
		l := v.(*itemLine)
		l.mu.RLock()
		ends := l.item.EndsAt
		l.mu.RUnlock()
		if !ends.IsZero() && !now.Before(ends) {
			s.lines.Delete(k)
		}
		return true
	})
}

// current returns the copy of the line, read again (one reader at a time;
// the others answer from the copy meanwhile) when it is older than
// RefreshEvery.
func (s *Service) current(ctx context.Context, it sale.Item, l *itemLine) (sale.LineState, error) {
	l.mu.RLock()
	st, at := l.state, l.readAt
	l.mu.RUnlock()
	if !at.IsZero() && s.o.Now().Sub(at) < s.o.RefreshEvery {
		return st, nil
	}
	if !at.IsZero() {
		if !l.refresh.TryLock() {
			return st, nil
		}
	} else {
		l.refresh.Lock()
	}
	defer l.refresh.Unlock()
	// Another caller may have read it while this one waited for the lock.
	l.mu.RLock()
	st, at = l.state, l.readAt
	l.mu.RUnlock()
	if !at.IsZero() && s.o.Now().Sub(at) < s.o.RefreshEvery {
		return st, nil
	}
	fresh, err := s.d.Line.Tick(ctx, it.ID, s.config(it))
	if err != nil {
		if !at.IsZero() {
			return st, nil // a stale copy beats an error; the next poll retries
		}
		return sale.LineState{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	l.mu.Lock()
	if !at.IsZero() && fresh.Born != st.Born {
		// The line was lost (a Redis wipe) and begun again: the places
		// this instance remembers are gone, so each buyer's next poll
		// reads theirs again and hears not_in_line (join again) at once,
		// not a position in a line that no longer exists.
		l.places.clear()
	}
	l.state, l.readAt = fresh, s.o.Now()
	l.mu.Unlock()
	return fresh, nil
}

// place returns user's place, read from Redis only when this instance has
// not seen it, or when what it saw has changed since: a pre-queue place
// after the shuffle, or a place the line has since admitted.
func (s *Service) place(ctx context.Context, id sale.ItemID, user sale.UserID, l *itemLine, st sale.LineState) (sale.LinePlace, error) {
	p, ok := l.places.load(user)
	stale := !ok || (p.Place == 0 && st.Shuffled) || (p.Place > 0 && p.Place <= st.Served && p.AdmittedUntil.IsZero())
	if !stale {
		return p, nil
	}
	p, err := s.d.Line.Place(ctx, id, user)
	if errors.Is(err, sale.ErrNotFound) {
		return sale.LinePlace{}, ErrNotInLine
	}
	if err != nil {
		return sale.LinePlace{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	l.places.store(user, p)
	return p, nil
}

// status is what user at p sees of a line in state st.
func (s *Service) status(it sale.Item, user sale.UserID, p sale.LinePlace, st sale.LineState) Status {
	now := s.o.Now()
	if !now.Before(it.EndsAt) {
		return Status{State: StateEnded}
	}
	if p.Place > 0 && p.Place <= st.Served {
		if p.AdmittedUntil.IsZero() {
			// Admitted by the copy, but the record is not read yet: the
			// next poll reads it.
			return Status{State: StateWaiting, Position: 1}
		}
		if !now.Before(p.AdmittedUntil) {
			return Status{State: StateExpired}
		}
		return Status{State: StateAdmitted, Ticket: s.d.Fair.Admission(user, it.ID, p.AdmittedUntil), ExpiresAt: p.AdmittedUntil}
	}
	if st.Shuffled && st.Stock == 0 {
		return Status{State: StateSoldOut}
	}
	rate := float64(max(it.AdmitPerSecond, 1))
	if !st.Shuffled || p.Place == 0 {
		pos := max(st.Pre, 1)
		wait := max(it.StartsAt.Sub(now), 0)
		return Status{State: StateWaiting, Position: pos, ETA: wait + secs(float64(pos)/rate)}
	}
	pos := p.Place - st.Served
	return Status{State: StateWaiting, Position: pos, ETA: secs(float64(pos) / rate)}
}

// secs rounds a wait up to whole seconds.
func secs(f float64) time.Duration {
	n := int64(f)
	if float64(n) < f {
		n++
	}
	return time.Duration(n) * time.Second
}

// Lines returns this instance's copy of every line it has served whose
// sale has not ended, by item, for the dashboard.
func (s *Service) Lines() map[sale.ItemID]sale.LineState {
	s.forgetEnded(s.o.Now())
	out := map[sale.ItemID]sale.LineState{}
	s.lines.Range(func(k, v any) bool {
		l := v.(*itemLine)
		l.mu.RLock()
		if !l.readAt.IsZero() {
			out[k.(sale.ItemID)] = l.state
		}
		l.mu.RUnlock()
		return true
	})
	return out
}
