package kafkaevents

import (
	"errors"
	"strings"
	"testing"
	"time"

	"seckill/domain/sale"
)

func sampleOrder() sale.Order {
	it := sale.Item{ID: 42, PriceCents: 1999}
	return sale.NewOrder(it, "user_1", time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.FixedZone("x", 3600)))
}

// TestWireKeysBySplitItemBucket checks that a split item's orders are keyed
// by bucket, so they spread over partitions, and round-trip with the bucket
// in their id.
func TestWireKeysBySplitItemBucket(t *testing.T) {
	t.Parallel()
	it := sale.Item{ID: 42, PriceCents: 1999, StockBuckets: 3}
	keys := map[string]bool{}
	for i := range 60 {
		user := sale.UserID("u" + strings.Repeat("x", i))
		o := sale.NewOrder(it, user, time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC))
		key, value, err := encodeOrder(o)
		if err != nil {
			t.Fatal(err)
		}
		want := "42"
		if b := o.ID.Bucket(); b > 0 {
			want = "42." + string(rune('0'+b))
		}
		if string(key) != want {
			t.Fatalf("order %s keyed %q, want %q", o.ID, key, want)
		}
		keys[string(key)] = true
		got, err := decodeOrder(value)
		if err != nil || got.ID != o.ID || got.ID.Bucket() != o.ID.Bucket() {
			t.Fatalf("decoded %+v, %v; want %s", got, err, o.ID)
		}
	}
	if len(keys) != 3 {
		t.Fatalf("keys %v, want one per bucket", keys)
	}
}

func TestWireRoundTrip(t *testing.T) {
	t.Parallel()
	o := sampleOrder()
	key, value, err := encodeOrder(o)
	if err != nil {
		t.Fatal(err)
	}
	if string(key) != "42" {
		t.Fatalf("key = %q, want the item id", key)
	}
	for _, field := range []string{`"v":1`, `"order_id":"42-`, `"item_id":42`, `"user_id":"user_1"`, `"price_cents":1999`, `"created_at":"2025-03-04T04:06:07.891Z"`} {
		if !strings.Contains(string(value), field) {
			t.Errorf("value %s lacks %s", value, field)
		}
	}
	got, err := decodeOrder(value)
	if err != nil {
		t.Fatal(err)
	}
	if got != o {
		t.Fatalf("decoded %+v\nwant    %+v", got, o)
	}
}

func TestEncodeRefusesInvalidOrder(t *testing.T) {
	t.Parallel()
	o := sampleOrder()
	o.UserID = "bad user"
	if _, _, err := encodeOrder(o); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	t.Parallel()
	_, good, err := encodeOrder(sampleOrder())
	if err != nil {
		t.Fatal(err)
	}
	swap := func(old, new string) string { return strings.Replace(string(good), old, new, 1) }
	cases := map[string]string{
		"empty":          "",
		"not json":       "hello",
		"null":           "null",
		"array":          `[1,2]`,
		"string":         `"x"`,
		"empty object":   `{}`,
		"truncated":      string(good[:len(good)-3]),
		"version 2":      swap(`"v":1`, `"v":2`),
		"no version":     swap(`"v":1,`, ``),
		"item as string": swap(`"item_id":42`, `"item_id":"42"`),
		"item mismatch":  swap(`"item_id":42`, `"item_id":43`),
		"item overflow":  swap(`"item_id":42`, `"item_id":99999999999999999999`),
		"bad user":       swap(`"user_id":"user_1"`, `"user_id":"a b"`),
		"bad order id":   swap(`"order_id":"42-`, `"order_id":"42-zz`),
		"negative price": swap(`"price_cents":1999`, `"price_cents":-1`),
		"bad time":       swap(`2025-03-04T04:06:07.891Z`, `yesterday`),
		"no time":        swap(`"created_at":"2025-03-04T04:06:07.891Z"`, `"created_at":""`),
		"binary":         "\x00\xff{\x01",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o, err := decodeOrder([]byte(value))
			if !errors.Is(err, sale.ErrInvalid) {
				t.Fatalf("decode(%q) err = %v, want ErrInvalid", value, err)
			}
			if o != (sale.Order{}) {
				t.Fatalf("decode(%q) returned a partial order %+v", value, o)
			}
		})
	}
}

// FuzzDecode holds decodeOrder to its contract: never panic, and either an
// order that passes Check or an error matching ErrInvalid.
func FuzzDecode(f *testing.F) {
	_, good, _ := encodeOrder(sampleOrder())
	f.Add(good)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, value []byte) {
		o, err := decodeOrder(value)
		if err != nil {
			if !errors.Is(err, sale.ErrInvalid) {
				t.Fatalf("err %v does not match ErrInvalid", err)
			}
			return
		}
		if err := o.Check(); err != nil {
			t.Fatalf("decoded an order that fails Check: %v", err)
		}
	})
}
