// Package purchase is the buy use case: the path a purchase takes from an
// authenticated user to an accepted order, and the order status lookup.
//
// The order of checks is deliberate, and this list is its source (the table
// in docs/PURCHASE-PATH.md mirrors it): the in-flight bound, the blocklist,
// the sold-out flag, the cached item and its window, a protected item's
// ticket or admission, an empty item bucket, the user's bucket, the item's
// token; then the one Redis round trip. Everything answerable in this
// process comes first, cheapest and broadest first, because during a spike
// nearly every request is doomed and the ones that can still win must not
// queue behind them.
package purchase

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"seckill/app/reqid"
	"seckill/app/shield"
	"seckill/app/tracing"
	"seckill/domain/sale"
)

// ErrUnavailable means a backend the purchase needs did not answer; nothing
// was reserved. Retry after a second.
var ErrUnavailable = errors.New("service unavailable")

type reserver interface {
	Reserve(ctx context.Context, o sale.Order) (sale.Reservation, error)
}

type orderLookup interface {
	Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error)
}

type orderBook interface {
	Order(ctx context.Context, id sale.OrderID) (sale.Order, error)
	OrdersOf(ctx context.Context, item sale.ItemID, user sale.UserID) ([]sale.Order, error)
}

// buyerRecords reads the ledger's one-order-per-user record: the order a
// user holds for an item, queued or not.
type buyerRecords interface {
	BuyerOrder(ctx context.Context, item sale.ItemID, user sale.UserID) (sale.OrderID, error)
}

type enqueuer interface {
	Enqueue(o sale.Order)
}

// Shield is what a purchase asks before it spends its Redis round trip: the
// in-flight bound, the local sold-out flag, the hot item's token bucket and
// the user's bucket. *shield.Shield implements it; the hot-key lab
// (app/tools/lab) plugs in one without the item bucket and the flag.
type Shield interface {
	Enter() (release func(), err error)
	SoldOut(id sale.ItemID, now time.Time) bool
	MarkSoldOut(id sale.ItemID, gen int64, now time.Time)
	ItemExhausted(id sale.ItemID, perSec float64, now time.Time) bool
	AllowItem(id sale.ItemID, perSec float64, now time.Time) error
	AllowUser(user sale.UserID, now time.Time) error
}

var _ Shield = (*shield.Shield)(nil)

// sharedUserLimiter keeps the per-user budget across instances.
type sharedUserLimiter interface {
	Allow(ctx context.Context, user sale.UserID) (bool, error)
}

// gate is the fair-sale check (app/fairness): the blocklist, decided from
// memory, and the ticket of a protected item, checked without state.
type gate interface {
	Blocked(user sale.UserID) bool
	Admit(user sale.UserID, it sale.Item, ticket string, now time.Time) (sale.Ticket, error)
}

// soldOutNotifier is the part of sale.Notifier a purchase uses.
type soldOutNotifier interface {
	SoldOut(item sale.ItemID, gen int64)
}

// Deps are the collaborators of the purchase use case.
type Deps struct {
	Items  sale.ItemReader // cached item data (window, price, rate)
	Ledger reserver        // the stock ledger
	Queue  enqueuer        // hands accepted orders to the publisher
	Shield Shield
	// SharedUsers, if set, replaces the shield's per-instance user buckets
	// with a budget shared by every instance. If it cannot be reached the
	// local bucket decides, so a limiter outage never blocks a sale.
	SharedUsers sharedUserLimiter
	// Pending finds queued and failed orders; Book finds confirmed ones.
	Pending orderLookup
	Book    orderBook
	// Buyers, if set, lets OrdersFor find an order still queued in the
	// ledger; without it OrdersFor reports only what the database decided.
	Buyers buyerRecords
	// Notify, if set, is told when the ledger reports an item sold out,
	// so the flag reaches the other instances.
	Notify soldOutNotifier
	// OnLedgerMissing, if set, is told when the ledger has no sale for an
	// item the catalog knows: the ledger lost it, and it must be rebuilt.
	OnLedgerMissing func(item sale.ItemID)
	// Fair, if set, refuses blocked users and checks the tickets of
	// protected items; without it every item sells as protection none.
	Fair gate
	Now  func() time.Time
}

// Service runs purchases. It is safe for concurrent use.
type Service struct {
	d Deps

	ledgerCalls atomic.Uint64
}

// Stats counts what the service did.
type Stats struct {
	// LedgerCalls is how many purchases reached the stock ledger; every
	// other purchase was answered locally.
	LedgerCalls uint64
}

// Stats returns the counters, for metrics and tests.
func (s *Service) Stats() Stats { return Stats{LedgerCalls: s.ledgerCalls.Load()} }

// New returns the purchase service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{d: d}
}

// Buy tries to buy one unit of item for user. It returns the queued order, or
// one of: shield.ErrOverloaded, shield.ErrRateLimited, sale.ErrNotFound,
// sale.ErrNotStarted, sale.ErrEnded, sale.ErrSoldOut, a
// *sale.AlreadyPurchasedError, ErrUnavailable (nothing was reserved), or a
// *sale.OutcomeUnknownError (the reservation was sent and no answer came:
// the order it names may exist; OrdersFor finds it). A returned order is
// already recorded in the ledger's outbox, so it is never lost.
func (s *Service) Buy(ctx context.Context, user sale.UserID, item sale.ItemID) (sale.Order, error) {
	return s.BuyWithTicket(ctx, user, item, "")
}

// BuyWithTicket is Buy with the purchase ticket the client sent ("" for
// none). It also returns sale.ErrBlocked for a blocked user, and for a
// protected item sale.ErrTicketRequired (no ticket) or sale.ErrInvalidTicket
// (forged, expired, someone else's, another item's, or already used). A
// ticket is used up only when the ledger is reached and the window admits
// the order, so a user refused before that (429, 503) keeps it.
func (s *Service) BuyWithTicket(ctx context.Context, user sale.UserID, item sale.ItemID, ticket string) (sale.Order, error) {
	release, err := s.d.Shield.Enter()
	if err != nil {
		return sale.Order{}, err
	}
	defer release()

	now := s.d.Now()
	it, tk, err := s.admit(ctx, user, item, ticket, now)
	if err != nil {
		return sale.Order{}, err
	}
	o := sale.NewOrder(it, user, now)
	o.RequestID = reqid.From(ctx)
	o.Ticket = tk
	o.TraceParent = tracing.Carry(ctx)
	return s.reserve(ctx, o, now)
}

// admit runs the checks before the ledger, in the order the package
// comment gives, and returns the item and the checked ticket.
func (s *Service) admit(ctx context.Context, user sale.UserID, item sale.ItemID, ticket string, now time.Time) (sale.Item, sale.Ticket, error) {
	// A blocked user hears "blocked" whatever state the sale is in, and
	// costs nothing but a map lookup.
	if s.d.Fair != nil && s.d.Fair.Blocked(user) {
		return sale.Item{}, sale.Ticket{}, sale.ErrBlocked
	}
	// The sold-out flag needs nothing but the item id, so it answers the
	// largest class of doomed requests before any other work, and a repeat
	// attempt on a sold-out item hears "sold out", not "slow down".
	if s.d.Shield.SoldOut(item, now) {
		return sale.Item{}, sale.Ticket{}, sale.ErrSoldOut
	}
	it, err := s.d.Items.Item(ctx, item)
	if err != nil {
		if errors.Is(err, sale.ErrNotFound) {
			return sale.Item{}, sale.Ticket{}, err
		}
		return sale.Item{}, sale.Ticket{}, fmt.Errorf("%w: item lookup: %v", ErrUnavailable, err)
	}
	// The cached window answers early and late requests locally; the
	// ledger script checks the window again atomically, so a window that
	// changed a moment ago cannot sell outside its bounds.
	if err := it.CheckWindow(now); err != nil {
		return sale.Item{}, sale.Ticket{}, err
	}
	// The ticket is checked before any budget is spent, so a bot that
	// skips it uses up neither the item's tokens nor its own.
	var tk sale.Ticket
	if s.d.Fair != nil {
		if tk, err = s.d.Fair.Admit(user, it, ticket, now); err != nil {
			return sale.Item{}, sale.Ticket{}, err
		}
	}
	// Beyond the hot key's rate the request is doomed whoever sends it:
	// refuse it before the user's bucket is even looked up.
	if s.d.Shield.ItemExhausted(item, float64(it.PurchaseRate), now) {
		return sale.Item{}, sale.Ticket{}, shield.ErrRateLimited
	}
	// The user's bucket comes before the item's tokens are spent, so one
	// user's retry loop cannot use up the item's budget.
	if err := s.allowUser(ctx, user, now); err != nil {
		return sale.Item{}, sale.Ticket{}, err
	}
	if err := s.d.Shield.AllowItem(item, float64(it.PurchaseRate), now); err != nil {
		return sale.Item{}, sale.Ticket{}, err
	}
	return it, tk, nil
}

// reserve takes o's unit in the ledger and hands an accepted order to the
// queue; every other outcome is an error that says what the buyer holds.
func (s *Service) reserve(ctx context.Context, o sale.Order, now time.Time) (sale.Order, error) {
	item := o.ItemID
	s.ledgerCalls.Add(1)
	rctx, span := tracing.Start(ctx, "reserve")
	res, err := s.d.Ledger.Reserve(rctx, o)
	span.End()
	if errors.Is(err, sale.ErrOutcomeUnknown) {
		// Sent and unanswered: the unit may be this buyer's. Name the
		// order so they can look for it; never call it a refusal.
		return sale.Order{}, &sale.OutcomeUnknownError{OrderID: o.ID, ItemID: item, Err: err}
	}
	if err != nil {
		// err stays in the chain so the HTTP layer can tell a refusal by a
		// circuit breaker from a backend that failed.
		return sale.Order{}, fmt.Errorf("%w: reserve: %w", ErrUnavailable, err) //nolint:errorlint // both wrapped on purpose: see above
	}
	switch res.Outcome {
	case sale.Accepted:
		if res.Placed != "" {
			// Placed in another stock bucket: its home bucket's master
			// is failing (see breaker.Ledger).
			o.ID = res.Placed
		}
		s.d.Queue.Enqueue(o)
		return o, nil
	case sale.OutcomeSoldOut:
		s.d.Shield.MarkSoldOut(item, res.Gen, now)
		if s.d.Notify != nil {
			s.d.Notify.SoldOut(item, res.Gen)
		}
	case sale.OutcomeStockMoving:
		// A split item's last units are moving between its buckets: not
		// sold out, and not a failing backend. Retry in a moment.
		return sale.Order{}, fmt.Errorf("%w: %w", ErrUnavailable, res.Err()) //nolint:errorlint // both wrapped: res.Err() says the stock is moving
	case sale.OutcomeNotFound:
		// The item exists (the catalog just returned it), so the ledger has
		// lost its sale. Guessing the stock would oversell and "not found"
		// would be a lie: refuse for now and have the sale rebuilt.
		if s.d.OnLedgerMissing != nil {
			s.d.OnLedgerMissing(item)
		}
		return sale.Order{}, fmt.Errorf("%w: the stock ledger has no sale for item %d; it is being rebuilt", ErrUnavailable, item)
	}
	return sale.Order{}, res.Err()
}

// OrdersFor returns the user's orders for item, newest first: the one
// still queued in the ledger, if any, then those the database decided. It
// is how a buyer whose 202 never arrived (a dropped connection, a killed
// instance) finds the order they hold, even after the sale sold out, when
// a purchase attempt answers sold_out before it reaches the ledger's
// one-order record. It returns sale.ErrNotFound for an unknown item and
// ErrUnavailable when the database or the ledger does not answer: a list
// that might miss a queued order is not given as the whole truth.
func (s *Service) OrdersFor(ctx context.Context, user sale.UserID, item sale.ItemID) ([]sale.Order, error) {
	if _, err := s.d.Items.Item(ctx, item); err != nil {
		if errors.Is(err, sale.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: item lookup: %v", ErrUnavailable, err)
	}
	decided, err := s.d.Book.OrdersOf(ctx, item, user)
	if err != nil {
		return nil, fmt.Errorf("%w: orders lookup: %v", ErrUnavailable, err)
	}
	if s.d.Buyers == nil {
		return decided, nil
	}
	id, err := s.d.Buyers.BuyerOrder(ctx, item, user)
	if errors.Is(err, sale.ErrOrderNotFound) {
		return decided, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: buyer record: %v", ErrUnavailable, err)
	}
	for _, o := range decided {
		if o.ID == id {
			return decided, nil
		}
	}
	queued, err := s.d.Pending.Lookup(ctx, id)
	switch {
	case err == nil && queued.UserID == user:
		return append([]sale.Order{queued}, decided...), nil
	case err == nil || errors.Is(err, sale.ErrOrderNotFound):
		// Decided and settled between the two reads (or a record that is
		// not this user's, which the ledger never writes): the database
		// has the answer now.
		decided, err = s.d.Book.OrdersOf(ctx, item, user)
		if err != nil {
			return nil, fmt.Errorf("%w: orders lookup: %v", ErrUnavailable, err)
		}
		return decided, nil
	}
	return nil, fmt.Errorf("%w: order lookup: %v", ErrUnavailable, err)
}

func (s *Service) allowUser(ctx context.Context, user sale.UserID, now time.Time) error {
	if s.d.SharedUsers != nil {
		ok, err := s.d.SharedUsers.Allow(ctx, user)
		if err == nil {
			if !ok {
				return shield.ErrRateLimited
			}
			return nil
		}
	}
	return s.d.Shield.AllowUser(user, now)
}

// Order returns the user's order: decided (confirmed or failed) from the
// database, or queued from the ledger. Someone else's order is sale.ErrOrderNotFound, the
// same answer as a missing one, so ids cannot be probed.
func (s *Service) Order(ctx context.Context, user sale.UserID, id sale.OrderID) (sale.Order, error) {
	o, err := s.d.Book.Order(ctx, id)
	if errors.Is(err, sale.ErrOrderNotFound) {
		o, err = s.d.Pending.Lookup(ctx, id)
		if errors.Is(err, sale.ErrOrderNotFound) {
			// It may have been confirmed and settled between the two reads.
			o, err = s.d.Book.Order(ctx, id)
		}
	}
	if err != nil {
		if errors.Is(err, sale.ErrOrderNotFound) {
			return sale.Order{}, err
		}
		return sale.Order{}, fmt.Errorf("%w: order lookup: %v", ErrUnavailable, err)
	}
	if o.UserID != user {
		return sale.Order{}, sale.ErrOrderNotFound
	}
	return o, nil
}
