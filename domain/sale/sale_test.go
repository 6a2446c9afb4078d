package sale

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func draft() Draft {
	return Draft{Name: "Keyboard", PriceCents: 4999, Stock: 10, StartsAt: t0, EndsAt: t0.Add(time.Hour)}
}

func TestNewItemRules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		edit  func(*Draft)
		field string // "" means valid
	}{
		{"valid", func(*Draft) {}, ""},
		{"name trimmed empty", func(d *Draft) { d.Name = "   " }, "name"},
		{"name too long", func(d *Draft) { d.Name = strings.Repeat("x", MaxNameLen+1) }, "name"},
		{"name invalid utf8", func(d *Draft) { d.Name = "\xff" }, "name"},
		{"negative price", func(d *Draft) { d.PriceCents = -1 }, "price_cents"},
		{"zero stock", func(d *Draft) { d.Stock = 0 }, "stock"},
		{"huge stock", func(d *Draft) { d.Stock = MaxStock + 1 }, "stock"},
		{"no start", func(d *Draft) { d.StartsAt = time.Time{} }, "starts_at"},
		{"no end", func(d *Draft) { d.EndsAt = time.Time{} }, "ends_at"},
		{"end before start", func(d *Draft) { d.EndsAt = d.StartsAt }, "ends_at"},
		{"negative rate", func(d *Draft) { d.PurchaseRate = -5 }, "purchase_rate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := draft()
			c.edit(&d)
			it, err := NewItem(d)
			if c.field == "" {
				if err != nil {
					t.Fatalf("NewItem: %v", err)
				}
				if it.StockLeft != d.Stock || it.StockTotal != d.Stock || it.Version != 1 {
					t.Fatalf("item = %+v", it)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field || !errors.Is(err, ErrInvalid) {
				t.Fatalf("NewItem error = %v, want ValidationError on %q", err, c.field)
			}
		})
	}
}

func TestWindowAndStatus(t *testing.T) {
	t.Parallel()
	it, _ := NewItem(draft())
	cases := []struct {
		at     time.Time
		stock  int64
		err    error
		status Status
	}{
		{t0.Add(-time.Millisecond), 5, ErrNotStarted, StatusUpcoming},
		{t0, 5, nil, StatusActive}, // the window is half-open: open at StartsAt
		{t0, 0, nil, StatusSoldOut},
		{t0.Add(time.Hour - time.Millisecond), 1, nil, StatusActive},
		{t0.Add(time.Hour), 5, ErrEnded, StatusEnded}, // closed at EndsAt
		{t0.Add(time.Hour), 0, ErrEnded, StatusEnded},
	}
	for _, c := range cases {
		if err := it.CheckWindow(c.at); !errors.Is(err, c.err) {
			t.Errorf("CheckWindow(%v) = %v, want %v", c.at, err, c.err)
		}
		if s := it.StatusAt(c.at, c.stock); s != c.status {
			t.Errorf("StatusAt(%v, %d) = %s, want %s", c.at, c.stock, s, c.status)
		}
	}
}

func TestStatusWithoutStock(t *testing.T) {
	t.Parallel()
	it, _ := NewItem(draft())
	for at, want := range map[time.Time]Status{
		t0.Add(-time.Millisecond): StatusUpcoming,
		t0:                        StatusStockUnavailable,
		t0.Add(time.Hour):         StatusEnded,
	} {
		if s := it.StatusWithoutStock(at); s != want {
			t.Errorf("StatusWithoutStock(%v) = %s, want %s", at, s, want)
		}
	}
}

func TestApplyPatch(t *testing.T) {
	t.Parallel()
	it, _ := NewItem(draft())
	price := int64(100)
	if err := it.Apply(Patch{PriceCents: &price}); err != nil || it.PriceCents != 100 || it.Version != 2 {
		t.Fatalf("Apply price: %v, %+v", err, it)
	}
	before := it
	end := t0.Add(-time.Hour)
	if err := it.Apply(Patch{EndsAt: &end}); !errors.Is(err, ErrInvalid) || it != before {
		t.Fatalf("Apply bad window: err=%v, item changed=%v", err, it != before)
	}
	if err := it.Apply(Patch{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty patch: %v", err)
	}
	if !(Patch{StartsAt: &end}).WindowChanged() || (Patch{PriceCents: &price}).WindowChanged() {
		t.Fatal("WindowChanged misjudged")
	}
}

func TestParseIDs(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "0", "-1", "abc", "1e9", "01x", "9999999999999999999", " 1"} {
		if _, err := ParseItemID(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseItemID(%q) = %v, want ErrInvalid", s, err)
		}
	}
	if id, err := ParseItemID("42"); err != nil || id != 42 {
		t.Fatalf("ParseItemID(42) = %v, %v", id, err)
	}
	for _, s := range []string{"", strings.Repeat("a", 65), "al ice", "bob/1", "é"} {
		if _, err := ParseUserID(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseUserID(%q) = %v, want ErrInvalid", s, err)
		}
	}
	if _, err := ParseUserID("alice.B_1-x"); err != nil {
		t.Fatal(err)
	}
}

func TestOrderIDs(t *testing.T) {
	t.Parallel()
	it, _ := NewItem(draft())
	it.ID = 42
	o := NewOrder(it, "alice", t0)
	if _, err := ParseOrderID(string(o.ID)); err != nil {
		t.Fatalf("ParseOrderID(%q): %v", o.ID, err)
	}
	if o.ID.Item() != 42 || o.Status != OrderQueued || o.PriceCents != 4999 {
		t.Fatalf("order = %+v", o)
	}
	if err := o.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if o2 := NewOrder(it, "alice", t0); o2.ID == o.ID {
		t.Fatal("two orders share an id")
	}
	bad := o
	bad.ItemID = 7
	if err := bad.Check(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mismatched item: %v", err)
	}
	for _, s := range []string{"", "42", "42-xyz", "0-" + strings.Repeat("a", 28), "42-" + strings.Repeat("A", 28), "x-" + strings.Repeat("a", 28), "042-" + strings.Repeat("a", 28)} {
		if _, err := ParseOrderID(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseOrderID(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestReservationErr(t *testing.T) {
	t.Parallel()
	cases := map[Outcome]error{
		Accepted: nil, OutcomeNotFound: ErrNotFound, OutcomeNotStarted: ErrNotStarted,
		OutcomeEnded: ErrEnded, OutcomeSoldOut: ErrSoldOut, OutcomeAlreadyPurchased: ErrAlreadyPurchased,
	}
	for out, want := range cases {
		err := Reservation{Outcome: out, Existing: "1-abc"}.Err()
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("outcome %d: %v, want %v", out, err, want)
		}
	}
	var ap *AlreadyPurchasedError
	if err := (Reservation{Outcome: OutcomeAlreadyPurchased, Existing: "1-x"}).Err(); !errors.As(err, &ap) || ap.OrderID != "1-x" {
		t.Fatalf("already purchased carries id: %v", err)
	}
}

// TestQueueProtection: a queue item needs a rate and one stock bucket;
// other items may leave the rate at 0.
func TestQueueProtection(t *testing.T) {
	d := Draft{Name: "Q", Stock: 10, StartsAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), EndsAt: time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)}
	cases := []struct {
		name         string
		edit         func(*Draft)
		invalidField string
	}{
		{"none without rate", func(*Draft) {}, ""},
		{"queue with rate", func(d *Draft) { d.Protection, d.AdmitPerSecond = ProtectionQueue, 200 }, ""},
		{"queue without rate", func(d *Draft) { d.Protection = ProtectionQueue }, "admit_per_second"},
		{"queue split", func(d *Draft) { d.Protection, d.AdmitPerSecond, d.StockBuckets = ProtectionQueue, 5, 2 }, "protection"},
		{"negative max_active", func(d *Draft) { d.MaxActive = -1 }, "max_active"},
		{"rate too high", func(d *Draft) { d.AdmitPerSecond = MaxAdmitPerSecond + 1 }, "admit_per_second"},
	}
	for _, c := range cases {
		dd := d
		c.edit(&dd)
		_, err := NewItem(dd)
		var ve *ValidationError
		switch {
		case c.invalidField == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.invalidField != "" && (!errors.As(err, &ve) || ve.Field != c.invalidField):
			t.Errorf("%s: %v, want invalid %s", c.name, err, c.invalidField)
		}
	}
	if p, err := ParseProtection("queue"); err != nil || !p.NeedsAdmission() || p.NeedsTicket() {
		t.Errorf("ParseProtection(queue) = %v %v", p, err)
	}
}
