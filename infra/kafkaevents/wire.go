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

// wireVersion is the "v" every order message carries. A consumer refuses any
// other value rather than guess at a layout it was not written for.
const wireVersion = 1

// orderMsg is the JSON layout of one order on the queue. It stays private:
// the rest of the system sees sale.Order only.
type orderMsg struct {
	V          int    `json:"v"`
	OrderID    string `json:"order_id"`
	ItemID     int64  `json:"item_id"`
	UserID     string `json:"user_id"`
	PriceCents int64  `json:"price_cents"`
	CreatedAt  string `json:"created_at"`
}

// encodeOrder returns the message key (orderKey: item and stock bucket)
// and JSON value for o. It refuses an order that fails Check, so the queue never carries a message
// that every consumer would have to dead-letter.
func encodeOrder(o sale.Order) (key, value []byte, err error) {
	if err := o.Check(); err != nil {
		return nil, nil, fmt.Errorf("kafkaevents: encode order %q: %w", o.ID, err)
	}
	value, err = json.Marshal(orderMsg{
		V:          wireVersion,
		OrderID:    string(o.ID),
		ItemID:     int64(o.ItemID),
		UserID:     string(o.UserID),
		PriceCents: o.PriceCents,
		CreatedAt:  o.CreatedAt.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("kafkaevents: encode order %q: %w", o.ID, err)
	}
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

// decodeOrder parses one message value. Every error it returns matches
// sale.ErrInvalid, because a message that fails here will fail the same way
// on every redelivery and belongs on the dead-letter topic.
func decodeOrder(value []byte) (sale.Order, error) {
	// A JSON null or an array decodes without error into a struct, so the
	// value must open an object before we trust Unmarshal's silence.
	trimmed := bytes.TrimSpace(value)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return sale.Order{}, malformed("is not a JSON object")
	}
	var m orderMsg
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return sale.Order{}, malformed("is not a v1 order: %v", err)
	}
	if m.V != wireVersion {
		return sale.Order{}, malformed("has version %d, want %d", m.V, wireVersion)
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
		// Only accepted orders travel on the queue.
		Status:    sale.OrderQueued,
		CreatedAt: created.UTC(),
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
