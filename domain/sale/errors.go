package sale

import (
	"errors"
	"fmt"
)

// Sentinel errors. Adapters translate driver errors into these with %w, and
// the HTTP layer maps each to one status and one JSON code in a single table.
var (
	// ErrInvalid means the input breaks a rule; nothing was changed.
	ErrInvalid = errors.New("invalid input")
	// ErrNotFound means the item does not exist.
	ErrNotFound = errors.New("item not found")
	// ErrOrderNotFound means the order does not exist or belongs to someone else.
	ErrOrderNotFound = errors.New("order not found")
	// ErrNotStarted means the sale window has not opened yet.
	ErrNotStarted = errors.New("sale has not started")
	// ErrEnded means the sale window has closed.
	ErrEnded = errors.New("sale has ended")
	// ErrSoldOut means no stock is left.
	ErrSoldOut = errors.New("sold out")
	// ErrStockMoving means units were moving between the stock buckets of
	// a split item while the ledger looked for one; nothing was reserved,
	// and a retry in a moment will find them. The purchase use case answers
	// it as unavailable (503), never as sold out.
	ErrStockMoving = errors.New("stock is moving between buckets")
	// ErrAlreadyPurchased means the user already holds an order for the item.
	// Errors that match it carry the existing order id as *AlreadyPurchasedError.
	ErrAlreadyPurchased = errors.New("already purchased")
	// ErrStockExhausted means a database stock guard refused a deduction
	// that would have taken stock_left below zero; the transaction was rolled back.
	ErrStockExhausted = errors.New("stock exhausted in database")
	// ErrPaymentWindowClosed means the order can no longer be paid (it
	// expired or was cancelled) or, for a cancel, that it already expired;
	// nothing was changed.
	ErrPaymentWindowClosed = errors.New("payment window closed")
	// ErrOrderPending means the order is still queued: it cannot be paid or
	// cancelled until the database has confirmed it. Retry in a moment.
	ErrOrderPending = errors.New("order still pending")
	// ErrOrderFailed means the order failed and holds nothing to pay for or
	// cancel.
	ErrOrderFailed = errors.New("order failed")
	// ErrAlreadyPaid means a paid order cannot be cancelled.
	ErrAlreadyPaid = errors.New("order already paid")
	// ErrTicketRequired means the item's sale is protected and the purchase
	// carried no ticket; nothing was reserved.
	ErrTicketRequired = errors.New("ticket required")
	// ErrInvalidTicket means the purchase's ticket is forged, expired,
	// issued to another user or item, or already used; nothing was reserved.
	ErrInvalidTicket = errors.New("invalid ticket")
	// ErrInvalidChallenge means a proof of work was refused: the challenge
	// is forged, expired, someone else's, already used, or the nonce does
	// not reach its difficulty. No ticket was issued.
	ErrInvalidChallenge = errors.New("invalid challenge")
	// ErrBlocked means the user is on the blocklist and may not buy.
	ErrBlocked = errors.New("user blocked")
	// ErrNotAdmitted means the item sells through a waiting room and the
	// purchase carries no valid admission: join the line and wait.
	ErrNotAdmitted = errors.New("not admitted")
)

// ValidationError names the field that broke a rule. It matches ErrInvalid.
type ValidationError struct {
	Field  string
	Reason string
}

// Error returns "field: reason".
func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// AlreadyPurchasedError carries the order the user already holds. It matches
// ErrAlreadyPurchased.
type AlreadyPurchasedError struct {
	OrderID OrderID
}

// Error names the existing order.
func (e *AlreadyPurchasedError) Error() string {
	return "already purchased: order " + string(e.OrderID)
}

// Is makes errors.Is(err, ErrAlreadyPurchased) true.
func (e *AlreadyPurchasedError) Is(target error) bool { return target == ErrAlreadyPurchased }

// ErrOutcomeUnknown means a reservation was sent to the stock ledger and no
// answer came back (a deadline, a read timeout, a connection reset after
// the call was written): it may have been applied or not, and may still be
// applied a moment later. It is never a refusal: a caller must not tell the
// buyer that nothing was taken. Errors that match it on the purchase path
// are *OutcomeUnknownError, which names the order that was tried.
var ErrOutcomeUnknown = errors.New("outcome unknown: the reservation was sent and no answer came back")

// OutcomeUnknownError carries the order a purchase tried when its outcome
// is unknown, so the buyer can look for it. It matches ErrOutcomeUnknown.
type OutcomeUnknownError struct {
	OrderID OrderID
	ItemID  ItemID
	// Err is the backend's error, for the log.
	Err error
}

// Error names the order and the backend's error.
func (e *OutcomeUnknownError) Error() string {
	msg := "outcome of order " + string(e.OrderID) + " unknown"
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrOutcomeUnknown) true.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }

// Unwrap returns the backend's error.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }
