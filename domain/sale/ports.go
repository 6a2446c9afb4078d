package sale

import (
	"context"
	"time"
)

// Outcome is the stock ledger's verdict on one reservation.
type Outcome int

// The reservation outcomes. Each maps to exactly one sentinel error through
// Reservation.Err, and to one return code of the ledger's script.
const (
	Accepted Outcome = iota
	OutcomeNotFound
	OutcomeNotStarted
	OutcomeEnded
	OutcomeSoldOut
	OutcomeAlreadyPurchased
	// OutcomeStockMoving: a split item's units kept moving between its
	// buckets while the ledger looked; nothing was reserved (ErrStockMoving).
	OutcomeStockMoving
	// OutcomeTicketUsed means the order's ticket was already consumed by
	// an earlier reservation and its user holds no order; the stock was
	// not looked at. A user who holds one hears OutcomeAlreadyPurchased.
	OutcomeTicketUsed
)

// Reservation is the ledger's answer to Reserve.
type Reservation struct {
	Outcome Outcome
	// Existing is the order the user already holds, with OutcomeAlreadyPurchased.
	Existing OrderID
	// Gen is the item's stock generation as the ledger saw it. It increases
	// whenever units come back (restock, failed order), so a sold-out flag
	// stamped with an older generation is known to be stale.
	Gen int64
	// StockLeft is the live stock after the attempt.
	StockLeft int64
	// Placed, with Accepted, is the id the order was accepted under when
	// the ledger placed it in another stock bucket than its id named (that
	// bucket's Redis master was failing); "" when it kept its id.
	Placed OrderID
}

// Err returns nil for Accepted and the matching sentinel otherwise.
func (r Reservation) Err() error {
	switch r.Outcome {
	case Accepted:
		return nil
	case OutcomeNotFound:
		return ErrNotFound
	case OutcomeNotStarted:
		return ErrNotStarted
	case OutcomeEnded:
		return ErrEnded
	case OutcomeSoldOut:
		return ErrSoldOut
	case OutcomeAlreadyPurchased:
		return &AlreadyPurchasedError{OrderID: r.Existing}
	case OutcomeStockMoving:
		return ErrStockMoving
	case OutcomeTicketUsed:
		return ErrInvalidTicket
	}
	return ErrInvalid
}

// StockLedger holds the live stock of every item on sale. During a sale it is
// the system of record for stock: nothing reloads it from the database, and
// no cache machinery deletes it. Redis implements it.
type StockLedger interface {
	// Open makes an item's stock and window live. If the item is already
	// open, only its window and price are refreshed and its stock is left
	// alone, so calling Open twice never resets a running sale.
	Open(ctx context.Context, it Item) error
	// SetWindow moves a live item's sale window. It returns ErrNotFound if
	// the item was never opened.
	SetWindow(ctx context.Context, id ItemID, startsAt, endsAt time.Time) error
	// Reserve atomically checks the window at o.CreatedAt, the
	// one-order-per-user rule and the stock; on success it deducts one unit
	// and records o as a pending, unpublished order. An error means the
	// ledger could not be asked; a refusal is an Outcome, not an error.
	Reserve(ctx context.Context, o Order) (Reservation, error)
	// StockLeft returns the live stock of each id that is open; ids that are
	// not open are absent from the map.
	StockLeft(ctx context.Context, ids ...ItemID) (map[ItemID]int64, error)
	// Restock adds units to a live item. With the same non-empty key it is
	// applied at most once; applied is false on a repeat. gen is the new
	// stock generation.
	Restock(ctx context.Context, id ItemID, add int64, key string) (applied bool, gen int64, err error)
}

// Counts is the ledger's side of an item's stock accounting.
type Counts struct {
	StockTotal int64
	StockLeft  int64
	// Pending is how many accepted orders the ledger still holds a unit
	// for, waiting for the database to decide them.
	Pending int64
	// Overdue is how many of those have been pending longer than the
	// ledger's overdue age, by the ledger's own clock: the worker should
	// long since have decided them, so the accounts cannot be trusted yet.
	Overdue int64
	Gen     int64
}

// DueOrder is a pending order whose next look is due, with its age by the
// ledger's clock (not the clock of the instance that accepted it, so a skew
// between instances cannot make a fresh order look old).
type DueOrder struct {
	Order Order
	Age   time.Duration
}

// OrderLedger is the ledger's record of accepted orders between acceptance
// and the database's decision: the outbox the relay drains. It never decides
// an order's fate; the database does (OrderBook), and the ledger follows.
type OrderLedger interface {
	// Lookup returns a pending (queued) order, or ErrOrderNotFound.
	Lookup(ctx context.Context, id OrderID) (Order, error)
	// Due takes up to limit pending orders whose next look is due, oldest
	// due first, and postpones each by the ledger's lease, so that relays on
	// several instances do not all take the same order. It may return
	// orders and an error together: the orders it could read, and what it
	// could not (a part of the ledger that does not answer).
	Due(ctx context.Context, limit int) ([]DueOrder, error)
	// MarkPublished records that the orders reached the order queue: they
	// are next due for a look only after the ledger's republish age.
	MarkPublished(ctx context.Context, ids ...OrderID) error
	// Settle drops the pending records of orders the database holds as
	// confirmed. Settling an unknown id is a no-op.
	Settle(ctx context.Context, ids ...OrderID) error
	// Release gives back the unit and the user's slot of a pending order
	// that the database has recorded as failed. It is idempotent per order:
	// released is false, and nothing changes, once the order is no longer
	// pending. gen is the stock generation after the call.
	Release(ctx context.Context, id OrderID) (released bool, gen int64, err error)
	// Drop deletes the pending record of an order the database has failed
	// as a phantom (Fate.Phantom) and frees its user's slot, but gives no
	// unit back. It is idempotent per order like Release.
	Drop(ctx context.Context, id OrderID) (dropped bool, err error)
	// Counts returns the ledger's accounting for an item, or ErrNotFound.
	Counts(ctx context.Context, id ItemID) (Counts, error)
}

// ItemReader reads item data (name, price, window), never live stock.
// Caching layers decorate it.
type ItemReader interface {
	// Item returns the item or ErrNotFound.
	Item(ctx context.Context, id ItemID) (Item, error)
	// Items returns every item, ordered by StartsAt then ID.
	Items(ctx context.Context) ([]Item, error)
}

// Catalog is the durable store of item data. MySQL implements it.
type Catalog interface {
	ItemReader
	// CreateItem stores a new item and returns it with its ID and timestamps.
	CreateItem(ctx context.Context, it Item) (Item, error)
	// UpdateItem runs fn on the current item inside a transaction that holds
	// the row, and stores the result if fn returns nil. It returns
	// ErrNotFound for an unknown id and fn's error unchanged.
	UpdateItem(ctx context.Context, id ItemID, fn func(*Item) error) (Item, error)
	// DeleteItem removes an item that has no orders; it exists to undo a
	// creation whose ledger step failed.
	DeleteItem(ctx context.Context, id ItemID) error
	// Restock adds units to stock_total and stock_left. With the same
	// non-empty key it is applied at most once; applied is false on a repeat.
	Restock(ctx context.Context, id ItemID, add int64, key string) (applied bool, err error)
}

// Fate is what the database has recorded about one order.
type Fate struct {
	// Status is OrderFailed, OrderConfirmed or a status after it (paid,
	// cancelled, expired); "" means the database has no row for the order
	// (it is undecided).
	Status OrderStatus
	// PayBy is the payment deadline of an order that was confirmed.
	PayBy time.Time
	// Reason says why a failed order failed.
	Reason string
	// Refused is set by Confirm on an order it has just failed because its
	// user already holds another live order for the item.
	Refused bool
}

// Decided reports whether the database has settled the order's fate.
func (f Fate) Decided() bool { return f.Status != "" }

// Phantom reports whether the order failed because the ledger sold a unit
// the database does not have: the stock guard refused it
// (ReasonLedgerRolledBack), which happens only when the ledger lost writes.
// The unit the order took in the ledger is one the ledger should never have
// had, so it is dropped, never given back (OrderLedger.Drop): given back, it
// would be sold, and refused, again and again. An order refused because its
// user already holds another is not one: the ledger may have lost only the
// buyer's record, and then the unit is real; a surplus it leaves is taken
// away by the reconciler (reconcile.Service.Trim).
func (f Fate) Phantom() bool {
	return f.Status == OrderFailed && f.Reason == ReasonLedgerRolledBack
}

// ReasonLedgerRolledBack is recorded on an order the database refused for
// stock exhaustion: the ledger accepted it for a unit the database had
// already sold, because the ledger lost writes (a Redis restart from an
// older snapshot, a failover to a replica that lagged). Buyers read it as it
// is.
const ReasonLedgerRolledBack = "ledger_rolled_back"

// OrderBook is the durable store of every order's fate, and the fence that
// keeps an order from being both confirmed and given back: an order's row is
// written once, by whoever decides it first. MySQL implements it.
type OrderBook interface {
	// Confirm inserts the orders as confirmed and lowers each item's
	// stock_left by the number actually inserted, in one transaction, and
	// reports every order's fate. An order already decided keeps its fate
	// (redelivery is harmless, and an order failed by someone else is never
	// confirmed). An order whose user already holds another live order for
	// the item is recorded as failed, with Refused set. It returns
	// ErrStockExhausted if a guard would take stock_left below zero and
	// ErrNotFound if an item does not exist; either way nothing is written.
	Confirm(ctx context.Context, orders []Order) (inserted int, fates map[OrderID]Fate, err error)
	// Fail records the orders as failed with reason unless they are already
	// decided, and reports every order's fate: only those whose Status is
	// OrderFailed may have their unit given back.
	Fail(ctx context.Context, orders []Order, reason string) (map[OrderID]Fate, error)
	// Fates reports what the database has recorded about each id; an id
	// with no row is absent from the map.
	Fates(ctx context.Context, ids []OrderID) (map[OrderID]Fate, error)
	// Order returns an order the database has decided (any status but
	// queued), or ErrOrderNotFound.
	Order(ctx context.Context, id OrderID) (Order, error)
	// CountConfirmed returns how many orders of an item are confirmed and
	// not yet paid, cancelled or expired.
	CountConfirmed(ctx context.Context, id ItemID) (int64, error)
	// CountHeld returns how many orders of an item hold a unit: confirmed
	// or paid. It is the database's count of units sold.
	CountHeld(ctx context.Context, id ItemID) (int64, error)
}

// OrderPublisher hands accepted orders to the order queue. Kafka implements it.
type OrderPublisher interface {
	// Publish returns nil only when every order is durably in the queue.
	Publish(ctx context.Context, orders ...Order) error
}
