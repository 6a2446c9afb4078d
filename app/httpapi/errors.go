package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"seckill/app/auth"
	"seckill/app/breaker"
	"seckill/app/catalog"
	"seckill/app/fairness"
	"seckill/app/lifecycle"
	"seckill/app/purchase"
	"seckill/app/reqid"
	"seckill/app/shield"
	"seckill/app/waitroom"
	"seckill/domain/sale"
)

// Errors of the HTTP layer itself.
var (
	errBadJSON         = errors.New("bad json")
	errBodyTooLarge    = errors.New("body too large")
	errHeadersTooLarge = errors.New("headers too large")
	errRouteNotFound   = errors.New("route not found")
	errMethod          = errors.New("method not allowed")
	errMediaType       = errors.New("unsupported media type")
	errAdminAuth       = errors.New("admin token required")
)

// errorRow is one line of the error table.
type errorRow struct {
	err     error
	status  int
	code    string
	message string // empty: use the error's own text (validation messages)
	retry   bool   // send Retry-After
}

// errorTable is the one place where errors become HTTP statuses and JSON
// codes. Order matters only in that the first match wins. Anything not here
// is a 500 {"error":"internal"} whose detail goes only to the log.
var errorTable = []errorRow{
	{sale.ErrInvalid, http.StatusBadRequest, "invalid_request", "", false},
	{errBadJSON, http.StatusBadRequest, "invalid_json", "", false},
	{errMediaType, http.StatusUnsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json", false},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, "payload_too_large", "the request body is too large (at most " + strconv.Itoa(MaxBodyBytes>>10) + " KiB)", false},
	{errHeadersTooLarge, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "the request headers are too large (at most " + strconv.Itoa(MaxHeaderBytes>>10) + " KiB in all)", false},
	{auth.ErrUnauthorized, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required: log in at POST /api/v1/login", false},
	{errAdminAuth, http.StatusUnauthorized, "unauthorized", "the admin token is required: Authorization: Bearer <SECKILL_ADMIN_TOKEN>", false},
	{sale.ErrNotFound, http.StatusNotFound, "not_found", "no such item", false},
	{sale.ErrOrderNotFound, http.StatusNotFound, "not_found", "no such order", false},
	{errRouteNotFound, http.StatusNotFound, "not_found", "no such route", false},
	{errMethod, http.StatusMethodNotAllowed, "method_not_allowed", "this route does not take that method", false},
	{sale.ErrBlocked, http.StatusForbidden, "blocked", "this account may not buy: it is on the blocklist", false},
	{sale.ErrTicketRequired, http.StatusForbidden, "ticket_required", "this sale needs a purchase ticket: POST /api/v1/items/{id}/ticket, then send {\"ticket\": \"...\"} with the purchase", false},
	{sale.ErrInvalidTicket, http.StatusForbidden, "invalid_ticket", "the ticket is not valid for you and this item, has expired, or was already used: fetch a fresh one", false},
	{sale.ErrNotAdmitted, http.StatusForbidden, "not_admitted", "this sale has a waiting room: join the line at POST /api/v1/items/{id}/queue and buy with the admission ticket it gives you", false},
	{waitroom.ErrNotInLine, http.StatusNotFound, "not_in_line", "you are not in this item's line: join it at POST /api/v1/items/{id}/queue", false},
	{sale.ErrInvalidChallenge, http.StatusForbidden, "invalid_challenge", "the proof of work was refused: the challenge is not yours, has expired or was used, or the nonce does not reach its difficulty; fetch a fresh challenge", false},
	{sale.ErrNotStarted, http.StatusForbidden, "not_started", "the sale has not started yet", false},
	{sale.ErrEnded, http.StatusForbidden, "ended", "the sale has ended", false},
	{sale.ErrSoldOut, http.StatusConflict, "sold_out", "sold out", false},
	{sale.ErrAlreadyPurchased, http.StatusConflict, "already_purchased", "you already have an order for this item", false},
	{sale.ErrPaymentWindowClosed, http.StatusConflict, "payment_window_closed", "the order can no longer be paid: it expired or was cancelled, and its unit went back on sale", false},
	{sale.ErrOrderPending, http.StatusConflict, "order_pending", "the order is still being confirmed; retry in a moment", true},
	{sale.ErrOrderFailed, http.StatusConflict, "order_failed", "the order failed; there is nothing to pay for or cancel", false},
	{sale.ErrAlreadyPaid, http.StatusConflict, "already_paid", "the order is paid and can no longer be cancelled", false},
	// Before the 503 rows: a reservation sent and unanswered is not a
	// refusal, whatever else its error chain says.
	{sale.ErrOutcomeUnknown, http.StatusGatewayTimeout, "outcome_unknown", outcomeUnknownMessage, false},
	{shield.ErrRateLimited, http.StatusTooManyRequests, "rate_limited", "too many attempts; retry in a moment", true},
	{shield.ErrOverloaded, http.StatusServiceUnavailable, "unavailable", "the shop is very busy; retry in a moment", true},
	{errTooManyStreams, http.StatusServiceUnavailable, "unavailable", "too many dashboards are open on this instance; retry in a moment", true},
	{breaker.ErrOpen, http.StatusServiceUnavailable, "unavailable", "a backend is not answering, so its circuit breaker refused the request without trying it; retry in a moment", true},
	{purchase.ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "a backend is not answering; retry in a moment", true},
	{catalog.ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "a backend is not answering; retry in a moment", true},
	{lifecycle.ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "a backend is not answering; retry in a moment", true},
	{fairness.ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "a backend is not answering; retry in a moment", true},
	{waitroom.ErrUnavailable, http.StatusServiceUnavailable, "unavailable", "a backend is not answering; retry in a moment", true},
}

// outcomeUnknownMessage is the next step after a 504 outcome_unknown: the
// body's orders_url. A retry is safe too: the one-order rule answers it.
const outcomeUnknownMessage = "the reservation was sent but no answer came back, so it may or may not have been taken: look for the order at orders_url (a retry is safe: if you hold it, it answers 409 already_purchased with its id)"

// retryAfterOne is the Retry-After value of every retryable refusal.
var retryAfterOne = []string{"1"}

// fixedBodies holds the rendered JSON of every row with a fixed message, so
// the answers that dominate a spike (sold_out, rate_limited) cost no
// encoding per request.
var fixedBodies = func() map[*errorRow][]byte {
	out := make(map[*errorRow][]byte, len(errorTable))
	for i := range errorTable {
		row := &errorTable[i]
		if row.message == "" {
			continue
		}
		out[row] = encodeError(errorBody{Error: row.code, Message: row.message})
	}
	return out
}()

// internalBody is the answer to any error the table does not map; its
// detail goes only to the log.
var internalBody = errorBody{Error: "internal", Message: "something went wrong on our side"}

// ErrorCodes lists every code an error body can carry: the table's codes in
// table order, each once, then "internal" for whatever the table does not
// map. The docs test checks the README's table against it.
func ErrorCodes() []string {
	var out []string
	seen := map[string]bool{}
	for _, row := range errorTable {
		if !seen[row.code] {
			seen[row.code] = true
			out = append(out, row.code)
		}
	}
	return append(out, internalBody.Error)
}

const jsonContentType = "application/json; charset=utf-8"

// errorBody is the JSON shape of every error.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	OrderID string `json:"order_id,omitempty"`
	// OrdersURL is where to look next, with outcome_unknown.
	OrdersURL string `json:"orders_url,omitempty"`
}

// encodeError renders an error body without HTML escaping, so a message
// such as "Bearer <SECKILL_ADMIN_TOKEN>" reads as written instead of
// "\u003c...": the body is served as application/json, never as HTML.
func encodeError(body errorBody) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		// errorBody holds only strings, which always encode.
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// abortWithError sends an error body with the status and stops the chain.
func abortWithError(c *gin.Context, status int, body errorBody) {
	c.Data(status, jsonContentType, encodeError(body))
	c.Abort()
}

// lookupError finds err's row, or nil. A bare sentinel, what a spike's
// refusals (sold_out, rate_limited) are, is found by identity first,
// without unwrapping anything; every sentinel in the table is a pointer,
// so the comparison cannot panic.
func lookupError(err error) *errorRow {
	for i := range errorTable {
		if err == errorTable[i].err { //nolint:errorlint // identity on purpose: the unwrapping errors.Is follows
			return &errorTable[i]
		}
	}
	for i := range errorTable {
		if errors.Is(err, errorTable[i].err) {
			return &errorTable[i]
		}
	}
	return nil
}

// writeError answers with err's row from the table and returns the code it
// sent.
func (s *server) writeError(c *gin.Context, err error) string {
	row := lookupError(err)
	if row == nil {
		s.log.Error("internal error", "route", c.FullPath(), "method", c.Request.Method, "request_id", c.GetHeader(reqid.Header), "err", err)
		abortWithError(c, http.StatusInternalServerError, internalBody)
		return internalBody.Error
	}
	if row.retry {
		// Stored under its canonical key directly: Header.Set would
		// canonicalise it again on every 429 of an over-limit spike.
		c.Writer.Header()["Retry-After"] = retryAfterOne
	}
	if row.status >= 500 {
		s.log.Warn("request refused", "route", c.FullPath(), "code", row.code, "request_id", c.GetHeader(reqid.Header), "err", err)
	}
	// Only these two rows may carry an order id; the others skip the
	// reflection errors.As costs.
	var ap *sale.AlreadyPurchasedError
	var ou *sale.OutcomeUnknownError
	if row.code == "already_purchased" || row.code == "outcome_unknown" {
		_ = errors.As(err, &ap)
		_ = errors.As(err, &ou)
	}
	if fixed, ok := fixedBodies[row]; ok && ap == nil && ou == nil {
		c.Data(row.status, jsonContentType, fixed)
		c.Abort()
		return row.code
	}
	body := errorBody{Error: row.code, Message: row.message}
	if body.Message == "" {
		body.Message = ownText(err)
	}
	if ap != nil {
		body.OrderID = string(ap.OrderID)
	}
	if ou != nil {
		body.OrderID = string(ou.OrderID)
		body.OrdersURL = "/api/v1/items/" + strconv.FormatInt(int64(ou.ItemID), 10) + "/orders"
	}
	abortWithError(c, row.status, body)
	return row.code
}

// ownText is the message of an error whose row has none: the validation
// error's own "field: reason", or the HTTP layer's own JSON message, never
// the whole chain, whose wrapping names Go packages and internals
// ("mysqlstore: restock item 4: ...").
func ownText(err error) string {
	var ve *sale.ValidationError
	if errors.As(err, &ve) {
		return ve.Error()
	}
	var je jsonErr
	if errors.As(err, &je) {
		return je.msg
	}
	return "the request is not valid; see /openapi.yaml"
}
