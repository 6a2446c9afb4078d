package sale

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// refused fails unless err is a *ValidationError that matches ErrInvalid:
// the HTTP layer maps exactly that to a 400 naming the field.
func refused(t *testing.T, in string, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &ve) || ve.Field == "" || ve.Reason == "" {
		t.Fatalf("%q refused with %#v, want a *ValidationError matching ErrInvalid", in, err)
	}
}

// allDigits reports whether s is non-empty and only ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FuzzParseItemID checks that ParseItemID accepts exactly the positive
// decimal ids of at most 18 digits, that an accepted id round-trips through
// String, and that a refusal is a validation error.
func FuzzParseItemID(f *testing.F) {
	for _, s := range []string{"1", "42", "007", "0", "-1", "+1", "1e9", " 1", "999999999999999999", "9999999999999999999", "١", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseItemID(s)
		n, perr := strconv.ParseInt(s, 10, 64)
		want := allDigits(s) && len(s) <= 18 && perr == nil && n > 0
		if err != nil {
			refused(t, s, err)
			if want {
				t.Fatalf("ParseItemID(%q) refused a valid id: %v", s, err)
			}
			return
		}
		if !want || int64(id) != n {
			t.Fatalf("ParseItemID(%q) = %d, want a refusal or %d", s, id, n)
		}
		if again, err := ParseItemID(id.String()); err != nil || again != id {
			t.Fatalf("ParseItemID(%q) = %d, %v; want %d", id.String(), again, err, id)
		}
	})
}

// userIDByte reports whether c is in [A-Za-z0-9_.-].
func userIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

// FuzzParseUserID checks that ParseUserID accepts exactly 1 to MaxUserIDLen
// bytes of [A-Za-z0-9_.-], unchanged, and refuses everything else with a
// validation error.
func FuzzParseUserID(f *testing.F) {
	for _, s := range []string{"alice", "john.smith", "a.b.c", "x.", ".", "_-", "bob smith", "é", "a\x00", "", strings.Repeat("a", MaxUserIDLen), strings.Repeat("a", MaxUserIDLen+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUserID(s)
		want := len(s) >= 1 && len(s) <= MaxUserIDLen
		for i := 0; want && i < len(s); i++ {
			want = userIDByte(s[i])
		}
		if err != nil {
			refused(t, s, err)
			if want {
				t.Fatalf("ParseUserID(%q) refused a valid id: %v", s, err)
			}
			return
		}
		if !want || string(u) != s {
			t.Fatalf("ParseUserID(%q) = %q, want a refusal or the input unchanged", s, u)
		}
	})
}

// FuzzParseOrderID checks that ParseOrderID accepts only the form
// NewBucketOrderID makes ("<item id>[.<bucket>]-<28 lowercase hex>", the
// item id and bucket without leading zeros), that Item and Bucket return
// them, and that every id NewBucketOrderID makes for a valid item and
// bucket parses back.
func FuzzParseOrderID(f *testing.F) {
	f.Add("1-0123456789abcdef0123456789ab", int64(1), int64(0))
	f.Add("42-019a4b2c3d4e5f60718293a4b5c6", int64(42), int64(1_764_000_000_000))
	f.Add("10-0123456789abcdef0123456789ab", int64(999_999_999_999_999_999), int64(-1))
	f.Add("1-0123456789ABCDEF0123456789AB", int64(0), int64(0))
	f.Add("1-0123456789abcdef0123456789a", int64(-5), int64(1))
	f.Add("-0123456789abcdef0123456789ab", int64(7), int64(1<<62))
	f.Add("42.3-019a4b2c3d4e5f60718293a4b5c6", int64(42), int64(5))
	f.Fuzz(func(t *testing.T, s string, item int64, ms int64) {
		id, err := ParseOrderID(s)
		if err != nil {
			refused(t, s, err)
		} else {
			prefix, hex, _ := strings.Cut(s, "-")
			canon := id.Item().String()
			if id.Bucket() > 0 {
				canon += "." + strconv.Itoa(id.Bucket())
			}
			if string(id) != s || id.Item() <= 0 || canon != prefix || len(hex) != orderHexLen || strings.Trim(hex, "0123456789abcdef") != "" {
				t.Fatalf("ParseOrderID(%q) = %q with item %d: not the form NewOrderID makes", s, id, id.Item())
			}
		}
		it, err := ParseItemID(strconv.FormatInt(item, 10))
		if err != nil {
			return
		}
		b := int(uint64(ms) % MaxStockBuckets)
		made := NewBucketOrderID(it, b, time.UnixMilli(ms))
		if got, err := ParseOrderID(string(made)); err != nil || got != made || got.Item() != it || got.Bucket() != b {
			t.Fatalf("ParseOrderID(NewOrderID(%d)) = %q, %v with item %d; want %q", it, got, err, got.Item(), made)
		}
	})
}

// FuzzParseRestockKey checks that ParseRestockKey accepts exactly 1 to
// MaxRestockKeyLen bytes of visible ASCII, unchanged, and refuses
// everything else with a validation error.
func FuzzParseRestockKey(f *testing.F) {
	for _, s := range []string{"k1", "restock-2026-11-22#1", "~!", "a b", "tab\t", "é", "\x7f", "", strings.Repeat("k", MaxRestockKeyLen), strings.Repeat("k", MaxRestockKeyLen+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseRestockKey(s)
		want := len(s) >= 1 && len(s) <= MaxRestockKeyLen
		for i := 0; want && i < len(s); i++ {
			want = s[i] >= 0x21 && s[i] <= 0x7e
		}
		if err != nil {
			refused(t, s, err)
			if want {
				t.Fatalf("ParseRestockKey(%q) refused a valid key: %v", s, err)
			}
			return
		}
		if !want || k != s {
			t.Fatalf("ParseRestockKey(%q) = %q, want a refusal or the input unchanged", s, k)
		}
	})
}
