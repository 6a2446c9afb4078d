package redisstock

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"seckill/domain/sale"
)

// A pending record is "<user>|<price_cents>|<created_ms>|<accepted_ms>":
// the client sends the first three fields and the reserve script appends
// the ledger's own acceptance time. The user alphabet excludes '|', so the
// user is always the first field. Lua reads only the text before the first
// '|' (to give a user's slot back) and the digits after the last one (to
// tell an overdue order). An order accepted by a traced request puts its
// W3C traceparent (no '|' in its alphabet) after the creation time, so the
// record is "<user>|<price_cents>|<created_ms>|<traceparent>|<accepted_ms>"
// and a relay that publishes it again continues the trace; untraced orders
// (all of them with tracing off) keep the four-field record.

// encodePending returns the pending record of o.
func encodePending(o sale.Order) string {
	var b strings.Builder
	b.Grow(len(o.UserID) + 40)
	b.WriteString(string(o.UserID))
	b.WriteByte('|')
	b.WriteString(strconv.FormatInt(o.PriceCents, 10))
	b.WriteByte('|')
	b.WriteString(strconv.FormatInt(o.CreatedAt.UnixMilli(), 10))
	if o.TraceParent != "" {
		b.WriteByte('|')
		b.WriteString(o.TraceParent)
	}
	return b.String()
}

// acceptedMS reads the digits after a pending record's last '|', as the
// Lua scripts do: the ledger's acceptance time (the creation time, for a
// record that predates that field).
func acceptedMS(rec string) (int64, bool) {
	i := strings.LastIndexByte(rec, '|')
	if i < 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(rec[i+1:], 10, 64)
	return v, err == nil
}

// decodeRecord rebuilds an order from its pending record and returns the
// ledger's acceptance time with it (zero if the record predates that field).
func decodeRecord(id sale.OrderID, rec string) (sale.Order, time.Time, error) {
	f := strings.Split(rec, "|")
	var tp string
	if len(f) == 5 {
		// Two steps: in one assignment Go may read f[3] after the append
		// has overwritten it.
		tp = f[3]
		f = append(f[:3], f[4])
	}
	if len(f) != 3 && len(f) != 4 {
		return sale.Order{}, time.Time{}, fmt.Errorf("redisstock: malformed record for order %s: %q", id, rec)
	}
	price, err1 := strconv.ParseInt(f[1], 10, 64)
	ms, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || f[0] == "" {
		return sale.Order{}, time.Time{}, fmt.Errorf("redisstock: malformed record for order %s: %q", id, rec)
	}
	var accepted time.Time
	if len(f) == 4 {
		acc, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			return sale.Order{}, time.Time{}, fmt.Errorf("redisstock: malformed record for order %s: %q", id, rec)
		}
		accepted = time.UnixMilli(acc).UTC()
	}
	return sale.Order{
		ID:          id,
		ItemID:      id.Item(),
		UserID:      sale.UserID(f[0]),
		PriceCents:  price,
		Status:      sale.OrderQueued,
		CreatedAt:   time.UnixMilli(ms).UTC(),
		TraceParent: tp,
	}, accepted, nil
}
