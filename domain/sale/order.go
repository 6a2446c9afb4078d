package sale

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// UserID identifies a shopper: 1 to 64 characters from [A-Za-z0-9_.-].
type UserID string

// MaxUserIDLen is the longest user id accepted.
const MaxUserIDLen = 64

// ParseUserID returns ErrInvalid unless s is 1 to 64 characters from
// [A-Za-z0-9_.-]. The alphabet keeps user ids safe inside Redis keys, log
// lines and token payloads without escaping.
func ParseUserID(s string) (UserID, error) {
	if len(s) == 0 || len(s) > MaxUserIDLen {
		return "", invalid("user_id", "must be 1 to %d characters from A-Z a-z 0-9 _ . -", MaxUserIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return "", invalid("user_id", "must be 1 to %d characters from A-Z a-z 0-9 _ . -", MaxUserIDLen)
		}
	}
	return UserID(s), nil
}

// OrderID identifies an order. Its form is "<item id>-<28 hex digits>": the
// item prefix routes a status lookup to the item's ledger shard without a
// global index, and the hex part is a millisecond timestamp followed by 64
// random bits, so ids sort by creation time within an item and never collide
// in practice.
type OrderID string

const orderHexLen = 28

// NewOrderID returns a fresh id for an order on item at now.
func NewOrderID(item ItemID, now time.Time) OrderID {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ panics
		// inside Read instead); keep the compiler honest.
		panic(err)
	}
	ms := uint64(now.UnixMilli()) & 0xffffffffffff
	return OrderID(fmt.Sprintf("%d-%012x%016x", item, ms, binary.BigEndian.Uint64(b[:])))
}

// ParseOrderID returns ErrInvalid unless s has the form NewOrderID makes:
// the item id in canonical decimal (no leading zero), '-', 28 lowercase hex
// digits.
func ParseOrderID(s string) (OrderID, error) {
	prefix, hex, ok := strings.Cut(s, "-")
	if !ok || len(hex) != orderHexLen {
		return "", invalid("order_id", "is malformed")
	}
	// "01-…" names the same item as "1-…" but is an id NewOrderID never
	// makes: refuse it, so one order has one spelling.
	if _, err := ParseItemID(prefix); err != nil || prefix[0] == '0' {
		return "", invalid("order_id", "is malformed")
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", invalid("order_id", "is malformed")
		}
	}
	return OrderID(s), nil
}

// Item returns the item the order id was made for. It assumes an id that
// ParseOrderID or NewOrderID produced and returns 0 otherwise.
func (id OrderID) Item() ItemID {
	prefix, _, _ := strings.Cut(string(id), "-")
	item, err := ParseItemID(prefix)
	if err != nil {
		return 0
	}
	return item
}

// OrderStatus is where an order is in its life: queued in the ledger,
// confirmed in the database, or failed with its unit given back.
type OrderStatus string

// The order statuses.
const (
	OrderQueued    OrderStatus = "queued"
	OrderConfirmed OrderStatus = "confirmed"
	OrderFailed    OrderStatus = "failed"
)

// Order is one unit of one item bought by one user.
type Order struct {
	ID         OrderID
	ItemID     ItemID
	UserID     UserID
	PriceCents int64
	Status     OrderStatus
	// Reason says why a failed order failed; empty otherwise.
	Reason    string
	CreatedAt time.Time
}

// NewOrder returns a queued order for user on item at the item's current
// price, with a fresh id.
func NewOrder(it Item, user UserID, now time.Time) Order {
	return Order{
		ID:         NewOrderID(it.ID, now),
		ItemID:     it.ID,
		UserID:     user,
		PriceCents: it.PriceCents,
		Status:     OrderQueued,
		CreatedAt:  now.UTC().Truncate(time.Millisecond),
	}
}

// Check returns ErrInvalid unless the order is well formed: a valid id whose
// prefix matches its item, a valid user and a non-negative price. The worker
// uses it to tell a message that can never succeed from one that can.
func (o Order) Check() error {
	if _, err := ParseOrderID(string(o.ID)); err != nil {
		return err
	}
	if o.ID.Item() != o.ItemID || o.ItemID <= 0 {
		return invalid("item_id", "does not match the order id")
	}
	if _, err := ParseUserID(string(o.UserID)); err != nil {
		return err
	}
	if o.PriceCents < 0 || o.PriceCents > MaxPriceCents {
		return invalid("price_cents", "out of range")
	}
	if o.CreatedAt.IsZero() {
		return invalid("created_at", "is required")
	}
	return nil
}
