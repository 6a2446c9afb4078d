package redisstock

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"seckill/domain/sale"
)

// A pending record is "<user>|<price_cents>|<created_ms>"; a failed record
// appends "|<reason>". The user alphabet excludes '|', so the user is always
// the first field, and the reason, which may hold anything, is always last.
// Lua never decodes these: it stores the string it is given and, to give a
// user's slot back, reads the text before the first '|'.

// encodePending returns the pending record of o.
func encodePending(o sale.Order) string {
	var b strings.Builder
	b.Grow(len(o.UserID) + 40)
	b.WriteString(string(o.UserID))
	b.WriteByte('|')
	b.WriteString(strconv.FormatInt(o.PriceCents, 10))
	b.WriteByte('|')
	b.WriteString(strconv.FormatInt(o.CreatedAt.UnixMilli(), 10))
	return b.String()
}

// decodeRecord rebuilds an order from its pending record (failed=false) or
// its failed record (failed=true).
func decodeRecord(id sale.OrderID, rec string, failed bool) (sale.Order, error) {
	n := 3
	if failed {
		n = 4
	}
	f := strings.SplitN(rec, "|", n)
	if len(f) != n {
		return sale.Order{}, fmt.Errorf("redisstock: malformed record for order %s: %q", id, rec)
	}
	price, err1 := strconv.ParseInt(f[1], 10, 64)
	ms, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || f[0] == "" {
		return sale.Order{}, fmt.Errorf("redisstock: malformed record for order %s: %q", id, rec)
	}
	o := sale.Order{
		ID:         id,
		ItemID:     id.Item(),
		UserID:     sale.UserID(f[0]),
		PriceCents: price,
		Status:     sale.OrderQueued,
		CreatedAt:  time.UnixMilli(ms).UTC(),
	}
	if failed {
		o.Status = sale.OrderFailed
		o.Reason = f[3]
	}
	return o, nil
}
