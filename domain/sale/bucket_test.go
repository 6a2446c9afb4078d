package sale

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestKeySlotMatchesRedis(t *testing.T) {
	t.Parallel()
	// Figures from CLUSTER KEYSLOT on a real Redis 7.
	cases := map[string]int{
		"123456789":            12739,
		"foo":                  12182,
		"bar":                  5061,
		"hello":                866,
		"{user1000}.following": 3443,
		"foo{}{bar}":           8363, // an empty first tag hashes the whole key
		"x:{item:42}:sale":     KeySlot("item:42"),
	}
	for key, want := range cases {
		if got := KeySlot(key); got != want {
			t.Errorf("KeySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestSlotRangesMatchRedisCli(t *testing.T) {
	t.Parallel()
	// redis-cli --cluster create with 3 masters: 0-5460, 5461-10922, 10923-16383.
	want := [][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}
	for k, w := range want {
		if f, l := SlotRange(k, 3); f != w[0] || l != w[1] {
			t.Errorf("SlotRange(%d, 3) = %d-%d, want %d-%d", k, f, l, w[0], w[1])
		}
	}
	for n := 1; n <= MaxStockBuckets; n++ {
		next := 0
		for k := 0; k < n; k++ {
			f, l := SlotRange(k, n)
			if f != next || l < f {
				t.Fatalf("SlotRange(%d, %d) = %d-%d, want it to start at %d", k, n, f, l, next)
			}
			if RangeOfSlot(f, n) != k || RangeOfSlot(l, n) != k {
				t.Fatalf("RangeOfSlot disagrees with SlotRange(%d, %d)", k, n)
			}
			next = l + 1
		}
		if next != ClusterSlots {
			t.Fatalf("the %d ranges end at %d, want %d", n, next, ClusterSlots)
		}
	}
}

func TestBucketTagsLandInDistinctRanges(t *testing.T) {
	t.Parallel()
	for id := ItemID(1); id <= 300; id++ {
		if BucketTag(id, 0, 3) != "item:"+id.String() {
			t.Fatalf("bucket 0 of item %d is %q, want the unsplit tag", id, BucketTag(id, 0, 3))
		}
		for n := 1; n <= MaxStockBuckets; n++ {
			seen := map[int]int{}
			for b := 0; b < n; b++ {
				tag := BucketTag(id, b, n)
				if tag == "" {
					t.Fatalf("BucketTag(%d, %d, %d) is empty", id, b, n)
				}
				if BucketTag(id, b, n) != tag {
					t.Fatalf("BucketTag(%d, %d, %d) is not deterministic", id, b, n)
				}
				r := RangeOfSlot(KeySlot(tag), n)
				if other, dup := seen[r]; dup {
					t.Fatalf("item %d, %d buckets: buckets %d and %d share slot range %d", id, n, other, b, r)
				}
				seen[r] = b
			}
		}
	}
	if BucketTag(1, 3, 3) != "" || BucketTag(1, -1, 3) != "" {
		t.Fatal("a bucket outside [0, n) must have no tag")
	}
}

func TestHomeBucketIsStableAndSpread(t *testing.T) {
	t.Parallel()
	if HomeBucket("anyone", 1) != 0 || HomeBucket("anyone", 0) != 0 {
		t.Fatal("an unsplit item has only bucket 0")
	}
	counts := make([]int, 3)
	for i := range 3000 {
		u := UserID(fmt.Sprintf("user-%d", i))
		b := HomeBucket(u, 3)
		if b < 0 || b >= 3 || HomeBucket(u, 3) != b {
			t.Fatalf("HomeBucket(%q, 3) = %d, not stable or out of range", u, b)
		}
		counts[b]++
	}
	for b, c := range counts {
		if c < 800 || c > 1200 {
			t.Errorf("bucket %d is home to %d of 3000 users, want about 1000 (%v)", b, c, counts)
		}
	}
}

func TestBucketOrderIDs(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for b := 0; b < MaxStockBuckets; b++ {
		id := NewBucketOrderID(42, b, now)
		if _, err := ParseOrderID(string(id)); err != nil {
			t.Fatalf("ParseOrderID(%q): %v", id, err)
		}
		if id.Item() != 42 || id.Bucket() != b {
			t.Fatalf("%q: item %d bucket %d, want 42 and %d", id, id.Item(), id.Bucket(), b)
		}
	}
	if id := NewOrderID(42, now); id.Bucket() != 0 || len(id) != len("42-")+orderHexLen {
		t.Fatalf("NewOrderID = %q, want the bucket-0 form", id)
	}
	hex := "0123456789abcdef0123456789ab"
	for _, s := range []string{"42.0-" + hex, "42.01-" + hex, "42.16-" + hex, "42.-" + hex, "42.1.1-" + hex, "42.a-" + hex, "42.-1-" + hex} {
		if _, err := ParseOrderID(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseOrderID(%q) = %v, want ErrInvalid", s, err)
		}
	}
	it := Item{ID: 7, StockBuckets: 3, PriceCents: 1}
	o := NewOrder(it, "someone", now)
	if o.ID.Bucket() != HomeBucket("someone", 3) || o.Check() != nil {
		t.Fatalf("NewOrder put %q in bucket %d, want the home bucket %d", o.ID, o.ID.Bucket(), HomeBucket("someone", 3))
	}
}

func TestNewItemStockBuckets(t *testing.T) {
	t.Parallel()
	d := Draft{Name: "x", Stock: 10, StartsAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), EndsAt: time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)}
	it, err := NewItem(d)
	if err != nil || it.StockBuckets != 1 {
		t.Fatalf("default: %+v, %v; want 1 bucket", it.StockBuckets, err)
	}
	d.StockBuckets = MaxStockBuckets
	if it, err := NewItem(d); err != nil || it.StockBuckets != MaxStockBuckets {
		t.Fatalf("max: %d, %v", it.StockBuckets, err)
	}
	for _, n := range []int{-1, MaxStockBuckets + 1, 1000} {
		d.StockBuckets = n
		var ve *ValidationError
		if _, err := NewItem(d); !errors.As(err, &ve) || ve.Field != "stock_buckets" {
			t.Errorf("stock_buckets %d: %v, want a validation error on stock_buckets", n, err)
		}
	}
}
