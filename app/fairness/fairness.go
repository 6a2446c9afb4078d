// Package fairness is the fair-sale use case: purchase tickets, the
// proof-of-work challenge whose cost rises with an item's purchase
// pressure, and the blocklist. docs/FAIRNESS.md explains the threats, what
// each measure costs honest users and what it does not stop.
//
// What it guarantees:
//   - A ticket binds user, item and expiry (at most MaxTicketTTL) under an
//     HMAC; any instance with the same secret checks it without state. Its
//     single use is enforced by the stock ledger, in the same atomic step
//     as the reservation (sale.Order.Ticket).
//   - A challenge binds user, item, expiry and difficulty under the same
//     key; it is single use (a Redis mark set when the ticket is issued).
//   - The blocklist is decided from this instance's memory: loaded at
//     start, changed by broadcasts from the instance that changed it, and
//     reloaded from the database every RefreshEvery and whenever the bus
//     reconnects, so a lost broadcast is bounded by that period.
package fairness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"seckill/domain/sale"
)

// ErrUnavailable means a backend fairness needs (Redis for single-use
// challenges, the database for the blocklist) did not answer; nothing was
// issued or changed. Retry after a second.
var ErrUnavailable = errors.New("fairness backend unavailable")

// MaxTicketTTL is the longest a ticket lives, whatever the options say.
const MaxTicketTTL = 60 * time.Second

// Defaults applied by New to zero Options fields.
const (
	DefaultTicketTTL     = 30 * time.Second
	DefaultChallengeTTL  = 60 * time.Second
	DefaultMinDifficulty = 16
	DefaultMaxDifficulty = 20
	DefaultWindow        = 5 * time.Second
	DefaultRefreshEvery  = 30 * time.Second
	// MaxDifficulty bounds the configurable difficulty: 2^32 hashes is
	// minutes of a laptop's CPU, already far past what any sale should ask.
	MaxDifficulty = 32
)

// Options tunes the service; the zero value gives the defaults.
type Options struct {
	// Secret keys the tickets' and challenges' HMAC; every instance of a
	// deployment must share it (the token secret is used).
	Secret string
	// TicketTTL is how long a ticket lives, at most MaxTicketTTL.
	TicketTTL time.Duration
	// TicketLead is how long before a sale opens tickets and challenges
	// are issued, so buyers can hold one when the button appears; 0 means
	// from the opening.
	TicketLead time.Duration
	// ChallengeTTL is how long a client has to solve a challenge.
	ChallengeTTL time.Duration
	// MinDifficulty and MaxDifficulty bound the proof of work, in leading
	// zero bits of SHA-256(challenge ‖ nonce).
	MinDifficulty, MaxDifficulty int
	// Window is the sliding window over which an item's pressure (attempts
	// per second on this instance) is measured.
	Window time.Duration
	// AdmittedRate is the pressure (attempts/s) an item takes at the base
	// difficulty when its own purchase_rate is 0: the instance's default
	// item rate.
	AdmittedRate float64
	// RefreshEvery is how often the blocklist is reloaded from the store.
	RefreshEvery time.Duration
	// Now is the clock; tests pass a fake one.
	Now func() time.Time
}

type onceMarker interface {
	// Once records key for ttl and reports whether it was not already there.
	Once(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

type blockStore interface {
	Block(ctx context.Context, user sale.UserID, reason string) (bool, error)
	Unblock(ctx context.Context, user sale.UserID) (bool, error)
	Blocklist(ctx context.Context) ([]sale.Blocked, error)
}

// blockNotifier is the part of sale.Notifier the blocklist uses.
type blockNotifier interface {
	Blocked(user sale.UserID, blocked bool)
}

// Deps are the service's collaborators.
type Deps struct {
	Items  sale.ItemReader // cached item data: protection and window
	Once   onceMarker      // single-use challenge marks
	Blocks blockStore      // the durable blocklist
	// Notify, if set, tells every other instance that user was blocked
	// (true) or unblocked (false).
	Notify blockNotifier
	Log    *slog.Logger
}

// Challenge is a proof-of-work puzzle for one user and item.
type Challenge struct {
	Challenge  string
	Difficulty int
	ExpiresAt  time.Time
}

// Ticket is a signed purchase ticket.
type Ticket struct {
	Ticket    string
	ExpiresAt time.Time
}

// Service issues and checks tickets and challenges and keeps the
// blocklist. It is safe for concurrent use.
type Service struct {
	d    Deps
	o    Options
	mint minter
	pres *pressure

	blocked atomic.Pointer[map[sale.UserID]struct{}]
	writeMu sync.Mutex // serialises copy-on-write updates of blocked, and guards what follows

	// A reload reads the durable list outside writeMu, so a broadcast
	// applied meanwhile may be missing from what it read. Changes applied
	// while any reload is in flight are kept, numbered, and replayed over
	// the list the reload read; a reload that started before the one whose
	// list is in place is dropped, so a slow read cannot undo a fresher one.
	changeSeq    uint64        // numbers every Apply
	inFlight     int           // reloads reading the durable list now
	during       []blockChange // changes applied while inFlight > 0
	reloadSeq    uint64        // numbers every Reload as it starts
	storedReload uint64        // the reload whose list is in place
}

// blockChange is one Apply, numbered, kept for reloads in flight.
type blockChange struct {
	seq     uint64
	user    sale.UserID
	blocked bool
}

// New returns the service with an empty blocklist; call Reload to load it.
func New(d Deps, o Options) *Service {
	if o.TicketTTL <= 0 {
		o.TicketTTL = DefaultTicketTTL
	}
	o.TicketTTL = min(o.TicketTTL, MaxTicketTTL)
	o.TicketLead = max(o.TicketLead, 0)
	if o.ChallengeTTL <= 0 {
		o.ChallengeTTL = DefaultChallengeTTL
	}
	if o.MinDifficulty <= 0 {
		o.MinDifficulty = DefaultMinDifficulty
	}
	if o.MaxDifficulty <= 0 {
		o.MaxDifficulty = DefaultMaxDifficulty
	}
	o.MinDifficulty = min(o.MinDifficulty, MaxDifficulty)
	o.MaxDifficulty = min(max(o.MaxDifficulty, o.MinDifficulty), MaxDifficulty)
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.RefreshEvery <= 0 {
		o.RefreshEvery = DefaultRefreshEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	s := &Service{d: d, o: o, mint: newMinter(o.Secret), pres: newPressure(o.Window)}
	s.blocked.Store(&map[sale.UserID]struct{}{})
	return s
}

// Options returns the options in force, defaults applied.
func (s *Service) Options() Options { return s.o }

// item reads the item and checks that tickets are issued now: from
// TicketLead before the window opens until it closes.
func (s *Service) item(ctx context.Context, id sale.ItemID, now time.Time) (sale.Item, error) {
	it, err := s.d.Items.Item(ctx, id)
	if err != nil {
		if errors.Is(err, sale.ErrNotFound) {
			return sale.Item{}, err
		}
		return sale.Item{}, fmt.Errorf("%w: item lookup: %v", ErrUnavailable, err)
	}
	if now.Before(it.StartsAt.Add(-s.o.TicketLead)) {
		return sale.Item{}, sale.ErrNotStarted
	}
	if !now.Before(it.EndsAt) {
		return sale.Item{}, sale.ErrEnded
	}
	return it, nil
}

// Difficulty is the proof of work asked of a challenge for item now: the
// base difficulty plus one bit per doubling of the item's pressure beyond
// its admitted rate, within the configured bounds.
//
// Pressure counts only what already cost a proof: tickets issued and
// purchases carrying a genuine ticket, per second on this instance. Requests
// that cost nothing (challenges, purchases without a ticket or with a
// forged one) do not count, or a cheap flood could raise the price for
// every honest buyer.
func (s *Service) Difficulty(it sale.Item, now time.Time) int {
	admitted := float64(it.PurchaseRate)
	if admitted <= 0 {
		admitted = s.o.AdmittedRate
	}
	return difficultyFor(s.pres.rate(it.ID, now), admitted, s.o.MinDifficulty, s.o.MaxDifficulty)
}

// Challenge issues a proof-of-work challenge for a pow item. It returns
// ErrBlocked, sale.ErrNotFound, sale.ErrNotStarted (earlier than the
// ticket lead), sale.ErrEnded, ErrInvalid for an item without proof of
// work, or ErrUnavailable. Every request counts towards the item's
// pressure, whatever its answer.
func (s *Service) Challenge(ctx context.Context, user sale.UserID, id sale.ItemID) (Challenge, error) {
	now := s.o.Now()
	if s.Blocked(user) {
		return Challenge{}, sale.ErrBlocked
	}
	it, err := s.item(ctx, id, now)
	if err != nil {
		return Challenge{}, err
	}
	if it.Protection != sale.ProtectionPoW {
		return Challenge{}, &sale.ValidationError{Field: "protection", Reason: "item " + id.String() + " is not protected by proof of work (protection " + string(it.Protection.OrNone()) + ")"}
	}
	d := s.Difficulty(it, now)
	exp := now.Add(s.o.ChallengeTTL).Truncate(time.Second)
	return Challenge{Challenge: s.mint.challenge(id, user, exp, d), Difficulty: d, ExpiresAt: exp}, nil
}

// IssueTicket issues a purchase ticket for a protected item. For a pow
// item, challenge and nonce must be a solved challenge issued to this user
// for this item, unexpired and never used before; the challenge is used up
// by this call whether or not a ticket results. It returns ErrBlocked,
// sale.ErrNotFound, sale.ErrNotStarted, sale.ErrEnded, ErrInvalid (an
// unprotected item, a malformed nonce), sale.ErrInvalidChallenge, or
// ErrUnavailable.
func (s *Service) IssueTicket(ctx context.Context, user sale.UserID, id sale.ItemID, challenge, nonce string) (Ticket, error) {
	now := s.o.Now()
	if s.Blocked(user) {
		return Ticket{}, sale.ErrBlocked
	}
	it, err := s.item(ctx, id, now)
	if err != nil {
		return Ticket{}, err
	}
	switch it.Protection {
	case sale.ProtectionTicket:
	case sale.ProtectionPoW:
		if err := s.checkProof(ctx, user, id, challenge, nonce, now); err != nil {
			return Ticket{}, err
		}
		s.pres.observe(id, now)
	default:
		return Ticket{}, &sale.ValidationError{Field: "protection", Reason: "item " + id.String() + " needs no ticket (protection none)"}
	}
	exp := now.Add(s.o.TicketTTL)
	token, _ := s.mint.ticket(id, user, exp)
	return Ticket{Ticket: token, ExpiresAt: exp.Truncate(time.Millisecond)}, nil
}

func (s *Service) checkProof(ctx context.Context, user sale.UserID, id sale.ItemID, challenge, nonce string, now time.Time) error {
	if challenge == "" {
		return &sale.ValidationError{Field: "challenge", Reason: "is required for a proof-of-work item: GET /api/v1/items/" + id.String() + "/challenge"}
	}
	if !validNonce(nonce) {
		return &sale.ValidationError{Field: "nonce", Reason: fmt.Sprintf("must be 1 to %d decimal digits", MaxNonceLen)}
	}
	c, ok := s.mint.checkChallenge(challenge, id, user, now)
	// The difficulty signed into the challenge is what must be met: the
	// one in force now may have risen or fallen since it was issued.
	if !ok || LeadingZeroBits(challenge, nonce) < c.difficulty {
		return sale.ErrInvalidChallenge
	}
	// Marked used only once proven, so a bad nonce costs no Redis write;
	// the mark outlives the challenge, after which its expiry refuses it.
	first, err := s.d.Once.Once(ctx, "challenge:"+c.id, c.expires.Sub(now)+time.Second)
	if err != nil {
		return fmt.Errorf("%w: mark challenge used: %v", ErrUnavailable, err)
	}
	if !first {
		return sale.ErrInvalidChallenge
	}
	return nil
}

// Admit is the purchase's ticket check for item it at now. An unprotected
// item needs nothing (a zero Ticket). A protected one needs token: none is
// sale.ErrTicketRequired; a forged or expired one, or one issued to another
// user or item, is sale.ErrInvalidTicket. Whether it was used before is for
// the ledger to decide, atomically with the reservation. A queue item needs
// the admission its waiting room gave (see Admission): without one it is
// sale.ErrNotAdmitted. A purchase of a
// pow item with a genuine ticket counts towards the item's pressure.
func (s *Service) Admit(user sale.UserID, it sale.Item, token string, now time.Time) (sale.Ticket, error) {
	if it.Protection.NeedsAdmission() {
		return s.admitQueued(user, it, token, now)
	}
	if !it.Protection.NeedsTicket() {
		return sale.Ticket{}, nil
	}
	if token == "" {
		return sale.Ticket{}, sale.ErrTicketRequired
	}
	t, ok := s.mint.checkTicket(token, it.ID, user, now)
	if !ok {
		return sale.Ticket{}, sale.ErrInvalidTicket
	}
	if it.Protection == sale.ProtectionPoW {
		s.pres.observe(it.ID, now)
	}
	return t, nil
}

// Blocked reports whether user is on this instance's copy of the blocklist.
// It takes no lock: the copy is replaced whole on every change.
func (s *Service) Blocked(user sale.UserID) bool {
	_, ok := (*s.blocked.Load())[user]
	return ok
}

// Block puts user on the blocklist: durably, here, and (by broadcast) on
// every other instance. added is false if they already were.
func (s *Service) Block(ctx context.Context, user sale.UserID, reason string) (bool, error) {
	added, err := s.d.Blocks.Block(ctx, user, reason)
	if err != nil {
		if errors.Is(err, sale.ErrInvalid) {
			return false, err
		}
		return false, fmt.Errorf("%w: block: %v", ErrUnavailable, err)
	}
	s.Apply(user, true)
	if s.d.Notify != nil {
		s.d.Notify.Blocked(user, true)
	}
	return added, nil
}

// Unblock takes user off the blocklist everywhere; removed is false if
// they were not on it.
func (s *Service) Unblock(ctx context.Context, user sale.UserID) (bool, error) {
	removed, err := s.d.Blocks.Unblock(ctx, user)
	if err != nil {
		return false, fmt.Errorf("%w: unblock: %v", ErrUnavailable, err)
	}
	s.Apply(user, false)
	if s.d.Notify != nil {
		s.d.Notify.Blocked(user, false)
	}
	return removed, nil
}

// Blocklist returns the durable blocklist, by user id.
func (s *Service) Blocklist(ctx context.Context) ([]sale.Blocked, error) {
	list, err := s.d.Blocks.Blocklist(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: blocklist: %v", ErrUnavailable, err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].User < list[j].User })
	return list, nil
}

// BlockedCount is the size of this instance's copy of the blocklist.
func (s *Service) BlockedCount() int { return len(*s.blocked.Load()) }

// Apply changes this instance's copy only: a broadcast from the instance
// that changed the durable list.
func (s *Service) Apply(user sale.UserID, blocked bool) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.changeSeq++
	if s.inFlight > 0 {
		s.during = append(s.during, blockChange{seq: s.changeSeq, user: user, blocked: blocked})
	}
	cur := *s.blocked.Load()
	if _, ok := cur[user]; ok == blocked {
		return
	}
	next := make(map[sale.UserID]struct{}, len(cur)+1)
	for u := range cur {
		next[u] = struct{}{}
	}
	if blocked {
		next[user] = struct{}{}
	} else {
		delete(next, user)
	}
	s.blocked.Store(&next)
}

// Reload replaces this instance's copy with the durable list, with every
// change applied while it read the list replayed on top, so a block
// broadcast during the read is not lost. On error the copy is left as it
// was.
func (s *Service) Reload(ctx context.Context) error {
	s.writeMu.Lock()
	s.inFlight++
	s.reloadSeq++
	mine, since := s.reloadSeq, s.changeSeq
	s.writeMu.Unlock()

	list, err := s.d.Blocks.Blocklist(ctx)

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var replay []blockChange
	for _, c := range s.during {
		if c.seq > since {
			replay = append(replay, c)
		}
	}
	if s.inFlight--; s.inFlight == 0 {
		s.during = nil
	}
	if err != nil {
		return fmt.Errorf("%w: load blocklist: %v", ErrUnavailable, err)
	}
	if mine < s.storedReload {
		return nil // a reload that started later already stored a fresher list
	}
	next := make(map[sale.UserID]struct{}, len(list))
	for _, b := range list {
		next[b.User] = struct{}{}
	}
	for _, c := range replay {
		if c.blocked {
			next[c.user] = struct{}{}
		} else {
			delete(next, c.user)
		}
	}
	s.storedReload = mine
	s.blocked.Store(&next)
	return nil
}

// Run reloads the blocklist every RefreshEvery and forgets idle items'
// pressure, until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.o.RefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Reload(ctx); err != nil && ctx.Err() == nil {
				s.d.Log.Warn("blocklist reload failed; keeping the copy in memory", "err", err)
			}
			s.pres.sweep(s.o.Now())
		}
	}
}
