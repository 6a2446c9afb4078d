package sale

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
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

// OrderID identifies an order. Its form is "<item id>-<28 hex digits>", or
// "<item id>.<bucket>-<28 hex digits>" for an order bought from stock bucket
// 1 or above (see HomeBucket): the prefix routes every ledger step (status
// lookup, settle, release, return) to the item's ledger shard and bucket
// without a global index, and the hex part is a millisecond timestamp
// followed by 64 random bits, so ids sort by creation time within an item
// and never collide in practice. Bucket 0 is left out, so the ids of an item
// with one bucket keep the form they always had.
type OrderID string

const orderHexLen = 28

// NewOrderID returns a fresh id for an order on item, bucket 0, at now.
func NewOrderID(item ItemID, now time.Time) OrderID {
	return NewBucketOrderID(item, 0, now)
}

// NewBucketOrderID returns a fresh id for an order on item bought from
// bucket b (0 <= b < MaxStockBuckets) at now.
func NewBucketOrderID(item ItemID, b int, now time.Time) OrderID {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ panics
		// inside Read instead); keep the compiler honest.
		panic(err)
	}
	ms := uint64(now.UnixMilli()) & 0xffffffffffff
	if b > 0 {
		return OrderID(fmt.Sprintf("%d.%d-%012x%016x", item, b, ms, binary.BigEndian.Uint64(r[:])))
	}
	return OrderID(fmt.Sprintf("%d-%012x%016x", item, ms, binary.BigEndian.Uint64(r[:])))
}

// ParseOrderID returns ErrInvalid unless s has the form NewBucketOrderID
// makes: the item id in canonical decimal (no leading zero), optionally '.'
// and a bucket from 1 to MaxStockBuckets-1 (no leading zero), '-', 28
// lowercase hex digits.
func ParseOrderID(s string) (OrderID, error) {
	prefix, hex, ok := strings.Cut(s, "-")
	if !ok || len(hex) != orderHexLen {
		return "", invalid("order_id", "is malformed")
	}
	item, bucket, split := strings.Cut(prefix, ".")
	// "01-…" names the same item as "1-…" but is an id NewOrderID never
	// makes: refuse it, so one order has one spelling. The same goes for a
	// bucket "02" or an explicit ".0".
	if _, err := ParseItemID(item); err != nil || item[0] == '0' {
		return "", invalid("order_id", "is malformed")
	}
	if split {
		if len(bucket) == 0 || len(bucket) > 2 || bucket[0] == '0' {
			return "", invalid("order_id", "is malformed")
		}
		n, err := strconv.Atoi(bucket)
		if err != nil || n < 1 || n >= MaxStockBuckets || strconv.Itoa(n) != bucket {
			return "", invalid("order_id", "is malformed")
		}
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", invalid("order_id", "is malformed")
		}
	}
	return OrderID(s), nil
}

// Item returns the item the order id was made for. It assumes an id that
// ParseOrderID or NewOrderID produced and returns 0 otherwise.
func (id OrderID) Item() ItemID {
	prefix, _, _ := strings.Cut(string(id), "-")
	prefix, _, _ = strings.Cut(prefix, ".")
	item, err := ParseItemID(prefix)
	if err != nil {
		return 0
	}
	return item
}

// Bucket returns the stock bucket the order was bought from: 0 unless the
// id names another. It assumes an id that ParseOrderID accepts and returns 0
// otherwise.
func (id OrderID) Bucket() int {
	prefix, _, _ := strings.Cut(string(id), "-")
	_, b, ok := strings.Cut(prefix, ".")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(b)
	if err != nil || n < 1 || n >= MaxStockBuckets {
		return 0
	}
	return n
}

// OrderStatus is where an order is in its life: queued in the ledger,
// confirmed in the database (holding a unit until its payment deadline),
// then paid, cancelled by its buyer or expired unpaid; or failed with its
// unit given back before it was ever confirmed.
type OrderStatus string

// The order statuses.
const (
	OrderQueued    OrderStatus = "queued"
	OrderConfirmed OrderStatus = "confirmed"
	OrderPaid      OrderStatus = "paid"
	OrderCancelled OrderStatus = "cancelled"
	OrderExpired   OrderStatus = "expired"
	OrderFailed    OrderStatus = "failed"
)

// Holds reports whether an order in this status holds a unit in the
// database's accounts: confirmed (awaiting payment) or paid. Cancelled and
// expired orders have given theirs back.
func (s OrderStatus) Holds() bool { return s == OrderConfirmed || s == OrderPaid }

// WasConfirmed reports whether the database confirmed the order at some
// point: every status after confirmed. The ledger treats all of them as
// confirmed (Settle): the unit left its stock when the order was accepted,
// and a cancelled or expired order's unit comes back by its own return step,
// never by Release.
func (s OrderStatus) WasConfirmed() bool {
	return s == OrderConfirmed || s == OrderPaid || s == OrderCancelled || s == OrderExpired
}

// Returned reports whether the order gave its unit back after it was
// confirmed (cancelled or expired): those are the orders whose unit the
// ledger's return step adds back, once.
func (s OrderStatus) Returned() bool { return s == OrderCancelled || s == OrderExpired }

// MaxPaymentRefLen is the longest payment reference accepted.
const MaxPaymentRefLen = 128

// ParsePaymentRef returns ErrInvalid unless s is at most 128 visible ASCII
// characters (0x21 to 0x7e); the empty reference is allowed and means the
// payment provider picks one. Visible ASCII keeps a reference safe in logs
// and in the database without escaping.
func ParsePaymentRef(s string) (string, error) {
	if len(s) > MaxPaymentRefLen {
		return "", invalid("payment_ref", "must be at most %d visible ASCII characters", MaxPaymentRefLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return "", invalid("payment_ref", "must be at most %d visible ASCII characters", MaxPaymentRefLen)
		}
	}
	return s, nil
}

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
	// PayBy is the payment deadline, set once the order is confirmed
	// (confirmation time + payment window); zero before.
	PayBy time.Time
	// PaidAt is when the order was paid; zero unless it is paid.
	PaidAt time.Time
	// PaymentRef is the payment provider's reference of a paid order.
	PaymentRef string
	// RequestID names the HTTP request that accepted the order, so its log
	// lines can be found in every process it passes; empty when unknown
	// (an order published again from the ledger). No rule reads it.
	RequestID string
	// Ticket is the single-use purchase ticket the order was bought with,
	// empty for an unprotected item. The ledger consumes it in the same
	// atomic step as the reservation; it is never stored with the order.
	Ticket Ticket
	// TraceParent is the W3C traceparent of the request that accepted the
	// order when that request was traced (sampled), else empty. It rides
	// in the ledger's pending record and the Kafka headers, so the worker
	// (and a relay that publishes the order again) continue that trace. No
	// rule reads it.
	TraceParent string
}

// Ticket is the part of a verified purchase ticket the stock ledger needs
// to consume it exactly once.
type Ticket struct {
	// ID is the ticket's unique random id; empty means no ticket.
	ID string
	// ExpiresAt is when the ticket stops being valid; the ledger keeps its
	// "used" mark at least until then.
	ExpiresAt time.Time
}

// Decision is one of the three ways a confirmed order can end.
type Decision string

// The decisions the database makes, each only from confirmed.
const (
	DecidePay    Decision = "pay"
	DecideCancel Decision = "cancel"
	DecideExpire Decision = "expire"
)

// Status is the status a decision moves a confirmed order to.
func (d Decision) Status() OrderStatus {
	switch d {
	case DecidePay:
		return OrderPaid
	case DecideCancel:
		return OrderCancelled
	case DecideExpire:
		return OrderExpired
	}
	return ""
}

// PayAnswer says what a payment request answers for an order in its
// current state, read after the database's decision: nil (200 with the
// order) when it is paid, whoever paid it, and otherwise the sentinel the
// caller shows. A confirmed order that the payment did not move is past its
// deadline (the only guard that can refuse a payment of one's own confirmed
// order), so its window is closed.
func PayAnswer(o Order) error {
	switch o.Status {
	case OrderPaid:
		return nil
	case OrderQueued:
		return ErrOrderPending
	case OrderFailed:
		return ErrOrderFailed
	}
	return ErrPaymentWindowClosed
}

// CancelAnswer says what a cancel request answers for an order in its
// current state, read after the database's decision: nil when it is
// cancelled (a repeat is harmless), ErrAlreadyPaid once paid,
// ErrPaymentWindowClosed once expired.
func CancelAnswer(o Order) error {
	switch o.Status {
	case OrderCancelled:
		return nil
	case OrderPaid:
		return ErrAlreadyPaid
	case OrderQueued:
		return ErrOrderPending
	case OrderFailed:
		return ErrOrderFailed
	}
	return ErrPaymentWindowClosed
}

// NewOrder returns a queued order for user on item at the item's current
// price, with a fresh id in the user's home bucket.
func NewOrder(it Item, user UserID, now time.Time) Order {
	return Order{
		ID:         NewBucketOrderID(it.ID, HomeBucket(user, it.Buckets()), now),
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
