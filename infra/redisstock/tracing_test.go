package redisstock

import (
	"testing"
	"time"

	"seckill/domain/sale"
)

// TestPendingRecordCarriesTraceparent: a traced order's traceparent
// survives the pending record (after the script appends the acceptance
// time), so the relay publishes it with the order; an untraced order's
// record keeps its four fields.
func TestPendingRecordCarriesTraceparent(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	o := sale.Order{ID: "1-abc", UserID: "u1", PriceCents: 100, CreatedAt: time.UnixMilli(1000), TraceParent: tp}
	for _, c := range []struct{ tp, fields string }{{tp, "5"}, {"", "4"}} {
		o.TraceParent = c.tp
		rec := encodePending(o) + "|2000" // as the reserve script appends it
		got, accepted, err := decodeRecord(o.ID, rec)
		if err != nil {
			t.Fatalf("%s-field record %q: %v", c.fields, rec, err)
		}
		if got.TraceParent != c.tp || accepted.UnixMilli() != 2000 || got.UserID != "u1" || got.CreatedAt.UnixMilli() != 1000 {
			t.Errorf("%s-field record %q decoded to %+v accepted %v", c.fields, rec, got, accepted)
		}
	}
}
