package kafkaevents

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"seckill/domain/sale"
)

// Order messages come in two layouts. Producers write v2; consumers read
// both, so a queue that still holds v1 messages from before an upgrade
// drains normally.
//
//   - v2, compact text: "2|<order_id>|<user_id>|<price_cents>|<created_ms>".
//     The item is the order id's prefix (sale.OrderID.Item), as Check
//     requires anyway. Neither an order id nor a user id can contain '|'
//     (their alphabets exclude it), so the fields need no escaping. It is
//     about half the bytes of v1 and is written and read without
//     reflection: per order, encoding/json was 3-4 % of the process's CPU
//     during a purchase spike (docs/BENCHMARKS.md).
//   - v1, JSON: {"v":1,"order_id":…,"item_id":…,"user_id":…,"price_cents":…,
//     "created_at":RFC 3339}.
//
// Any other layout is refused rather than guessed at. A new field means a
// new version number, read alongside the old ones for as long as a queue
// can hold messages written before it.
const (
	wireV1 = 1
	wireV2 = '2'
)

// orderMsg is the JSON layout of a v1 order message. It stays private: the
// rest of the system sees sale.Order only.
type orderMsg struct {
	V          int    `json:"v"`
	OrderID    string `json:"order_id"`
	ItemID     int64  `json:"item_id"`
	UserID     string `json:"user_id"`
	PriceCents int64  `json:"price_cents"`
	CreatedAt  string `json:"created_at"`
}

// encodeOrder returns the message key (orderKey: item and stock bucket)
// and v2 value for o. It refuses an order that fails Check, so the queue
// never carries a message that every consumer would have to dead-letter.
// Creation times travel to the millisecond, the precision every order has
// (sale.NewOrder).
func encodeOrder(o sale.Order) (key, value []byte, err error) {
	if err := o.Check(); err != nil {
		return nil, nil, fmt.Errorf("kafkaevents: encode order %q: %w", o.ID, err)
	}
	value = make([]byte, 0, 2+len(o.ID)+1+len(o.UserID)+1+20+1+20)
	value = append(value, wireV2, '|')
	value = append(value, o.ID...)
	value = append(value, '|')
	value = append(value, o.UserID...)
	value = append(value, '|')
	value = strconv.AppendInt(value, o.PriceCents, 10)
	value = append(value, '|')
	value = strconv.AppendInt(value, o.CreatedAt.UnixMilli(), 10)
	return orderKey(o.ID), value, nil
}

// orderKey is an order's message key: the item, and the stock bucket when
// it is not 0, so a hot item split over buckets spreads over as many
// partitions (and workers) while each bucket's orders stay in order on one.
// An unsplit item keeps the key it always had.
func orderKey(id sale.OrderID) []byte {
	key := id.Item().String()
	if b := id.Bucket(); b > 0 {
		key += "." + strconv.Itoa(b)
	}
	return []byte(key)
}

// decodeOrder parses one message value, v2 or v1. Every error it returns
// matches sale.ErrInvalid, because a message that fails here will fail the
// same way on every redelivery and belongs on the dead-letter topic.
func decodeOrder(value []byte) (sale.Order, error) {
	if len(value) > 1 && value[0] == wireV2 && value[1] == '|' {
		return decodeV2(value[2:])
	}
	return decodeV1(value)
}

// decodeV2 parses the fields after "2|".
func decodeV2(rest []byte) (sale.Order, error) {
	var f [4][]byte
	for i := range f {
		if i == len(f)-1 {
			f[i] = rest
			break
		}
		j := bytes.IndexByte(rest, '|')
		if j < 0 {
			return sale.Order{}, malformed("is not a v2 order: %d fields, want 4", i+1)
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	price, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return sale.Order{}, &sale.ValidationError{Field: "price_cents", Reason: "is not an integer"}
	}
	ms, err := strconv.ParseInt(string(f[3]), 10, 64)
	if err != nil || ms <= 0 {
		return sale.Order{}, &sale.ValidationError{Field: "created_at", Reason: "is not a positive Unix time in ms"}
	}
	id := sale.OrderID(f[0])
	o := sale.Order{
		ID:         id,
		ItemID:     id.Item(),
		UserID:     sale.UserID(f[1]),
		PriceCents: price,
		// Only accepted orders travel on the queue.
		Status:    sale.OrderQueued,
		CreatedAt: time.UnixMilli(ms).UTC(),
	}
	if err := o.Check(); err != nil {
		return sale.Order{}, err
	}
	return o, nil
}

// decodeV1 parses a v1 JSON message.
func decodeV1(value []byte) (sale.Order, error) {
	// A JSON null or an array decodes without error into a struct, so the
	// value must open an object before we trust Unmarshal's silence.
	trimmed := bytes.TrimSpace(value)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return sale.Order{}, malformed("is neither a v2 order nor a JSON object")
	}
	var m orderMsg
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return sale.Order{}, malformed("is not a v1 order: %v", err)
	}
	if m.V != wireV1 {
		return sale.Order{}, malformed("has version %d, want %d", m.V, wireV1)
	}
	created, err := time.Parse(time.RFC3339Nano, m.CreatedAt)
	if err != nil {
		return sale.Order{}, &sale.ValidationError{Field: "created_at", Reason: "is not RFC 3339"}
	}
	o := sale.Order{
		ID:         sale.OrderID(m.OrderID),
		ItemID:     sale.ItemID(m.ItemID),
		UserID:     sale.UserID(m.UserID),
		PriceCents: m.PriceCents,
		Status:     sale.OrderQueued,
		CreatedAt:  created.UTC(),
	}
	if err := o.Check(); err != nil {
		return sale.Order{}, err
	}
	return o, nil
}

// Headers of every order message: the order id, and the id of the request
// that accepted it when known, so a consumer's log line for the order can
// be traced to the API's line for the request without decoding the value.
const (
	HeaderOrderID   = "order-id"
	HeaderRequestID = "request-id"
)

func traceHeaders(o sale.Order) []kafka.Header {
	hs := []kafka.Header{{Key: HeaderOrderID, Value: []byte(o.ID)}}
	if o.RequestID != "" {
		hs = append(hs, kafka.Header{Key: HeaderRequestID, Value: []byte(o.RequestID)})
	}
	if o.TraceParent != "" {
		hs = append(hs, kafka.Header{Key: HeaderTraceparent, Value: []byte(o.TraceParent)})
	}
	return hs
}

// requestID returns the request-id header of m, or "".
func requestID(m kafka.Message) string {
	for _, h := range m.Headers {
		if h.Key == HeaderRequestID {
			return string(h.Value)
		}
	}
	return ""
}

func malformed(format string, args ...any) error {
	return &sale.ValidationError{Field: "message", Reason: fmt.Sprintf(format, args...)}
}
