package sale

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ItemID identifies an item. Valid ids are positive.
type ItemID int64

// ParseItemID accepts a decimal positive id of at most 18 digits and returns
// ErrInvalid otherwise, so a path segment like "abc", "-1" or "1e9" never
// reaches a store.
func ParseItemID(s string) (ItemID, error) {
	if s == "" || len(s) > 18 {
		return 0, invalid("id", "must be a positive integer")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, invalid("id", "must be a positive integer")
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, invalid("id", "must be a positive integer")
	}
	return ItemID(n), nil
}

// Buckets returns the item's stock buckets, 1 when StockBuckets is unset.
func (it Item) Buckets() int { return max(it.StockBuckets, 1) }

// String is the decimal form of the id.
func (id ItemID) String() string { return strconv.FormatInt(int64(id), 10) }

// Limits on item fields. They keep one bad admin request from creating a sale
// that the page, Redis or the database cannot represent.
const (
	MaxNameLen        = 200
	MaxDescriptionLen = 4000
	MaxPriceCents     = 100_000_000_00 // one hundred million in major units
	MaxStock          = 10_000_000
	MaxPurchaseRate   = 1_000_000
	// MaxAdmitPerSecond bounds a waiting room's admission rate; far above
	// it the line admits faster than any sale needs one.
	MaxAdmitPerSecond = 100_000
)

// Item is a product on sale. StockLeft is what the database has recorded as
// unsold; during a sale the live figure is the StockLedger's.
type Item struct {
	ID          ItemID
	Name        string
	Description string
	PriceCents  int64
	StockTotal  int64
	StockLeft   int64
	StartsAt    time.Time
	EndsAt      time.Time
	// PurchaseRate is this item's per-instance purchase attempts per second
	// admitted to the stock ledger; 0 means the configured default.
	PurchaseRate int64
	// StockBuckets is how many stock buckets the ledger splits the item's
	// stock over (see HomeBucket), from 1 to MaxStockBuckets; set at
	// creation and never changed, because every order id and every buyer's
	// record is placed by it. 0 in an Item read from an older store means 1.
	StockBuckets int
	// Protection is how the sale guards against bots; ProtectionNone for a
	// plain sale.
	Protection Protection
	// Version increases by one on every change to the item's data, so a
	// cached copy can be told apart from a newer one.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
	// AdmitPerSecond is how many buyers the waiting room of a queue item
	// admits per second, across all instances; 0 for other items.
	AdmitPerSecond int64
	// MaxActive bounds the admissions of a queue item that are unexpired
	// and unused at once; 0 means only the stock bounds them.
	MaxActive int64
}

// Draft is what an admin supplies to create an item.
type Draft struct {
	Name         string
	Description  string
	PriceCents   int64
	Stock        int64
	StartsAt     time.Time
	EndsAt       time.Time
	PurchaseRate int64
	// StockBuckets is the item's stock buckets; 0 means 1.
	StockBuckets int
	// Protection is "" (none), "none", "ticket", "pow" or "queue".
	Protection Protection
	// AdmitPerSecond and MaxActive configure a queue item's waiting room.
	AdmitPerSecond int64
	MaxActive      int64
}

// NewItem checks a draft and returns the item it describes, with StockLeft
// equal to Stock and Version 1. It returns a *ValidationError (ErrInvalid)
// naming the first field that breaks a rule.
func NewItem(d Draft) (Item, error) {
	it := Item{
		Name:         strings.TrimSpace(d.Name),
		Description:  strings.TrimSpace(d.Description),
		PriceCents:   d.PriceCents,
		StockTotal:   d.Stock,
		StockLeft:    d.Stock,
		StartsAt:     d.StartsAt.UTC().Truncate(time.Millisecond),
		EndsAt:       d.EndsAt.UTC().Truncate(time.Millisecond),
		PurchaseRate: d.PurchaseRate,
		StockBuckets: d.StockBuckets,
		Protection:   d.Protection,
		Version:      1,

		AdmitPerSecond: d.AdmitPerSecond,
		MaxActive:      d.MaxActive,
	}
	if it.StockBuckets == 0 {
		it.StockBuckets = 1
	}
	if it.Protection == "" {
		it.Protection = ProtectionNone
	}
	if err := it.Validate(); err != nil {
		return Item{}, err
	}
	if err := CheckStockBuckets(it.StockBuckets); err != nil {
		return Item{}, err
	}
	if d.Stock < 1 || d.Stock > MaxStock {
		return Item{}, invalid("stock", "must be between 1 and %d", MaxStock)
	}
	return it, nil
}

// Validate checks the editable fields of an item: name, description, price,
// window, purchase rate and protection.
func (it Item) Validate() error {
	n := utf8.RuneCountInString(it.Name)
	switch {
	case !utf8.ValidString(it.Name) || n == 0 || n > MaxNameLen:
		return invalid("name", "must be 1 to %d characters", MaxNameLen)
	case !utf8.ValidString(it.Description) || utf8.RuneCountInString(it.Description) > MaxDescriptionLen:
		return invalid("description", "must be at most %d characters", MaxDescriptionLen)
	case it.PriceCents < 0 || it.PriceCents > MaxPriceCents:
		return invalid("price_cents", "must be between 0 and %d", MaxPriceCents)
	case it.StartsAt.IsZero():
		return invalid("starts_at", "is required (RFC 3339)")
	case it.EndsAt.IsZero():
		return invalid("ends_at", "is required (RFC 3339)")
	case !it.EndsAt.After(it.StartsAt):
		return invalid("ends_at", "must be after starts_at")
	case it.StartsAt.Year() < 2000 || it.EndsAt.Year() > 9999:
		return invalid("starts_at", "must be between year 2000 and 9999")
	case it.PurchaseRate < 0 || it.PurchaseRate > MaxPurchaseRate:
		return invalid("purchase_rate", "must be between 0 and %d", MaxPurchaseRate)
	}
	// "" is accepted as none, so items built before protections existed
	// (and stores that never set it) stay valid.
	if _, err := ParseProtection(string(it.Protection)); err != nil {
		return err
	}
	return it.validateQueue()
}

// validateQueue checks the waiting-room fields. A queue item needs a rate,
// and one stock bucket: its line reads the live stock in the same Redis
// slot, atomically with each admission, to admit no more buyers than there
// are units.
func (it Item) validateQueue() error {
	switch {
	case it.AdmitPerSecond < 0 || it.AdmitPerSecond > MaxAdmitPerSecond:
		return invalid("admit_per_second", "must be between 0 and %d", MaxAdmitPerSecond)
	case it.MaxActive < 0 || it.MaxActive > MaxStock:
		return invalid("max_active", "must be between 0 and %d", MaxStock)
	case it.Protection != ProtectionQueue:
		return nil
	case it.AdmitPerSecond == 0:
		return invalid("admit_per_second", "is required for protection queue (1 to %d)", MaxAdmitPerSecond)
	case it.Buckets() > 1:
		return invalid("protection", "queue needs stock_buckets 1: the line counts the stock of one bucket")
	}
	return nil
}

// Patch is an admin's change to an item's data. Nil fields are left alone.
// Stock is not here: stock changes only through Restock, because during a
// sale the ledger, not the item data, owns it.
type Patch struct {
	Name         *string
	Description  *string
	PriceCents   *int64
	StartsAt     *time.Time
	EndsAt       *time.Time
	PurchaseRate *int64
	Protection   *Protection
	// AdmitPerSecond and MaxActive change a queue item's waiting room.
	AdmitPerSecond *int64
	MaxActive      *int64
}

// Empty reports whether the patch changes nothing.
func (p Patch) Empty() bool {
	return p.Name == nil && p.Description == nil && p.PriceCents == nil &&
		p.StartsAt == nil && p.EndsAt == nil && p.PurchaseRate == nil && p.Protection == nil &&
		p.AdmitPerSecond == nil && p.MaxActive == nil
}

// Apply changes the item by the patch, checks the result and bumps Version.
// On error the item is left as it was.
func (it *Item) Apply(p Patch) error {
	if p.Empty() {
		return invalid("body", "names no field to change")
	}
	next := *it
	if p.Name != nil {
		next.Name = strings.TrimSpace(*p.Name)
	}
	if p.Description != nil {
		next.Description = strings.TrimSpace(*p.Description)
	}
	if p.PriceCents != nil {
		next.PriceCents = *p.PriceCents
	}
	if p.StartsAt != nil {
		next.StartsAt = p.StartsAt.UTC().Truncate(time.Millisecond)
	}
	if p.EndsAt != nil {
		next.EndsAt = p.EndsAt.UTC().Truncate(time.Millisecond)
	}
	if p.PurchaseRate != nil {
		next.PurchaseRate = *p.PurchaseRate
	}
	if p.Protection != nil {
		next.Protection = *p.Protection
	}
	if p.AdmitPerSecond != nil {
		next.AdmitPerSecond = *p.AdmitPerSecond
	}
	if p.MaxActive != nil {
		next.MaxActive = *p.MaxActive
	}
	if err := next.Validate(); err != nil {
		return err
	}
	next.Version++
	*it = next
	return nil
}

// WindowChanged reports whether the patch moves the sale window, which the
// stock ledger must then learn too.
func (p Patch) WindowChanged() bool { return p.StartsAt != nil || p.EndsAt != nil }

// Phase is where now falls relative to the sale window.
type Phase int

// The phases of a sale window. The window is half-open: [StartsAt, EndsAt).
const (
	Upcoming Phase = iota
	Open
	Closed
)

// PhaseAt reports the window phase at now.
func (it Item) PhaseAt(now time.Time) Phase {
	switch {
	case now.Before(it.StartsAt):
		return Upcoming
	case now.Before(it.EndsAt):
		return Open
	default:
		return Closed
	}
}

// CheckWindow returns ErrNotStarted before the window, ErrEnded after it and
// nil inside it. The stock ledger applies the same rule atomically; this copy
// lets an instance refuse doomed requests without a round trip.
func (it Item) CheckWindow(now time.Time) error {
	switch it.PhaseAt(now) {
	case Upcoming:
		return ErrNotStarted
	case Closed:
		return ErrEnded
	}
	return nil
}

// Status is what a shopper sees of an item.
type Status string

// The item statuses shown to shoppers.
const (
	StatusUpcoming Status = "upcoming"
	StatusActive   Status = "active"
	StatusSoldOut  Status = "sold_out"
	StatusEnded    Status = "ended"
	// StatusStockUnavailable is an open sale whose live stock cannot be
	// read right now (the stock ledger is unreachable); purchases are
	// refused until it answers again.
	StatusStockUnavailable Status = "stock_unavailable"
)

// StatusAt combines the window with the live stock. Ended wins over sold out,
// and sold out wins over upcoming only once the sale has opened.
func (it Item) StatusAt(now time.Time, stockLeft int64) Status {
	switch it.PhaseAt(now) {
	case Upcoming:
		return StatusUpcoming
	case Closed:
		return StatusEnded
	}
	if stockLeft <= 0 {
		return StatusSoldOut
	}
	return StatusActive
}

// StatusWithoutStock is StatusAt when the live stock is unknown: the window
// still says upcoming or ended, and an open sale is stock_unavailable rather
// than a guess at active or sold out.
func (it Item) StatusWithoutStock(now time.Time) Status {
	switch it.PhaseAt(now) {
	case Upcoming:
		return StatusUpcoming
	case Closed:
		return StatusEnded
	}
	return StatusStockUnavailable
}
