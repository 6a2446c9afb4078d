package kafkaevents

import (
	"encoding/json"
	"errors"
	"strconv"
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
	want := "2|" + string(o.ID) + "|user_1|1999|" + strconv.FormatInt(o.CreatedAt.UnixMilli(), 10)
	if string(value) != want {
		t.Fatalf("value = %q, want %q", value, want)
	}
	got, err := decodeOrder(value)
	if err != nil {
		t.Fatal(err)
	}
	if got != o {
		t.Fatalf("decoded %+v\nwant    %+v", got, o)
	}
}

// v1Value is the JSON layout producers wrote before v2.
func v1Value(t testing.TB, o sale.Order) []byte {
	b, err := json.Marshal(orderMsg{V: 1, OrderID: string(o.ID), ItemID: int64(o.ItemID), UserID: string(o.UserID),
		PriceCents: o.PriceCents, CreatedAt: o.CreatedAt.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A queue written before the upgrade still drains: v1 messages decode to
// the same order as its v2 message.
func TestDecodeReadsV1(t *testing.T) {
	t.Parallel()
	o := sampleOrder()
	v1 := v1Value(t, o)
	for _, field := range []string{`"v":1`, `"item_id":42`, `"created_at":"2025-03-04T04:06:07.891Z"`} {
		if !strings.Contains(string(v1), field) {
			t.Fatalf("v1 value %s lacks %s", v1, field)
		}
	}
	got, err := decodeOrder(v1)
	if err != nil {
		t.Fatal(err)
	}
	if got != o {
		t.Fatalf("decoded v1 %+v\nwant       %+v", got, o)
	}
}

func TestDecodeV2RejectsGarbage(t *testing.T) {
	t.Parallel()
	_, good, err := encodeOrder(sampleOrder())
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(string(good), "|")
	join := func(fields ...string) string { return strings.Join(fields, "|") }
	cases := map[string]string{
		"version only":   "2|",
		"too few":        join(f[0], f[1], f[2], f[3]),
		"too many":       join(append(append([]string{}, f...), "x")...),
		"bad order id":   join(f[0], f[1]+"zz", f[2], f[3], f[4]),
		"no order id":    join(f[0], "", f[2], f[3], f[4]),
		"bad user":       join(f[0], f[1], "a b", f[3], f[4]),
		"no user":        join(f[0], f[1], "", f[3], f[4]),
		"negative price": join(f[0], f[1], f[2], "-1", f[4]),
		"price text":     join(f[0], f[1], f[2], "1e3", f[4]),
		"price overflow": join(f[0], f[1], f[2], "99999999999999999999", f[4]),
		"zero time":      join(f[0], f[1], f[2], f[3], "0"),
		"time text":      join(f[0], f[1], f[2], f[3], "yesterday"),
		"version 3":      "3" + string(good[1:]),
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

func TestEncodeRefusesInvalidOrder(t *testing.T) {
	t.Parallel()
	o := sampleOrder()
	o.UserID = "bad user"
	if _, _, err := encodeOrder(o); !errors.Is(err, sale.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func TestDecodeV1RejectsGarbage(t *testing.T) {
	t.Parallel()
	good := v1Value(t, sampleOrder())
	swap := func(old, repl string) string { return strings.Replace(string(good), old, repl, 1) }
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
	f.Add(v1Value(f, sampleOrder()))
	f.Add([]byte("2|1-1|u|1|1"))
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
