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

// Claim is what the ledger knows of an order a worker is about to confirm.
type Claim int

// The claim verdicts.
const (
	// Claimed: the order is pending and now fenced against Expire.
	Claimed Claim = iota
	// ClaimFailed: the order was already failed and its unit given back; it
	// must not be confirmed.
	ClaimFailed
	// ClaimUnknown: the ledger has no pending record, as after an order was
	// confirmed and settled. Confirming it again is a no-op in the database.
	ClaimUnknown
)

// Counts is the ledger's side of an item's stock accounting.
type Counts struct {
	StockTotal int64
	StockLeft  int64
	Pending    int64
	Failed     int64
	Gen        int64
}

// OrderLedger is the ledger's record of accepted orders between acceptance
// and confirmation: the outbox the relay drains and the fence that keeps an
// order from being both confirmed and given back.
type OrderLedger interface {
	// Lookup returns a pending (queued) or failed order, or ErrOrderNotFound.
	Lookup(ctx context.Context, id OrderID) (Order, error)
	// Unpublished returns up to limit accepted orders, oldest first, that
	// were accepted before the given time and are not yet marked published.
	Unpublished(ctx context.Context, before time.Time, limit int) ([]Order, error)
	// MarkPublished records that the orders reached the order queue.
	MarkPublished(ctx context.Context, ids ...OrderID) error
	// Claim fences each order against Expire and reports, in input order,
	// what the ledger knows of it.
	Claim(ctx context.Context, ids ...OrderID) ([]Claim, error)
	// Settle drops the pending records of orders now confirmed in the
	// database. Settling an unknown id is a no-op.
	Settle(ctx context.Context, ids ...OrderID) error
	// Expire fails a pending order that was never claimed, giving its unit
	// and its user's slot back. It returns released=false, and changes
	// nothing, if the order is claimed, already failed or unknown.
	Expire(ctx context.Context, id OrderID, reason string) (released bool, gen int64, err error)
	// Reject fails a pending order even if it is claimed; only the worker
	// holding the claim calls it, for an order that can never be confirmed.
	Reject(ctx context.Context, id OrderID, reason string) (released bool, gen int64, err error)
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

// OrderBook is the durable store of confirmed orders. MySQL implements it.
type OrderBook interface {
	// Confirm inserts the orders as confirmed and lowers each item's
	// stock_left by the number actually inserted, in one transaction. An
	// order already present is skipped, so redelivery is harmless. It
	// returns ErrStockExhausted if a guard would take stock_left below zero
	// and ErrNotFound if an item does not exist; either way nothing is written.
	Confirm(ctx context.Context, orders []Order) (inserted int, err error)
	// Order returns a confirmed order or ErrOrderNotFound.
	Order(ctx context.Context, id OrderID) (Order, error)
	// CountConfirmed returns how many confirmed orders an item has.
	CountConfirmed(ctx context.Context, id ItemID) (int64, error)
}

// OrderPublisher hands accepted orders to the order queue. Kafka implements it.
type OrderPublisher interface {
	// Publish returns nil only when every order is durably in the queue.
	Publish(ctx context.Context, orders ...Order) error
}
