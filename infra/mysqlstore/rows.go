package mysqlstore

import (
	"time"

	"seckill/domain/sale"
)

// itemRow is one row of items. Column tags are spelled out so that a field
// rename in Go can never silently point at another column.
type itemRow struct {
	ID           int64     `gorm:"column:id;primaryKey;autoIncrement"`
	Name         string    `gorm:"column:name"`
	Description  string    `gorm:"column:description"`
	PriceCents   int64     `gorm:"column:price_cents"`
	StockTotal   int64     `gorm:"column:stock_total"`
	StockLeft    int64     `gorm:"column:stock_left"`
	StartsAt     time.Time `gorm:"column:starts_at"`
	EndsAt       time.Time `gorm:"column:ends_at"`
	PurchaseRate int64     `gorm:"column:purchase_rate"`
	StockBuckets int       `gorm:"column:stock_buckets"`
	Protection   string    `gorm:"column:protection"`
	Version      int64     `gorm:"column:version"`
	CreatedAt    time.Time `gorm:"column:created_at"`
	UpdatedAt    time.Time `gorm:"column:updated_at"`
	// CreateKey is the admin's Idempotency-Key of the create, nil for an
	// item made without one; Opened is false until the create finished.
	CreateKey *string `gorm:"column:create_key"`
	Opened    bool    `gorm:"column:opened"`
	// AdmitPerSecond and MaxActive are a queue item's waiting room.
	AdmitPerSecond int64 `gorm:"column:admit_per_second"`
	MaxActive      int64 `gorm:"column:max_active"`
}

func (itemRow) TableName() string { return "items" }

// orderRow is one row of orders. The surrogate id is never exposed; order_id
// is the business key.
type orderRow struct {
	ID      int64  `gorm:"column:id;primaryKey;autoIncrement"`
	OrderID string `gorm:"column:order_id"`
	ItemID  int64  `gorm:"column:item_id"`
	UserID  string `gorm:"column:user_id"`
	// Holder is the user id of every order that was confirmed (whatever
	// became of it since) and NULL on a failed one: the unique
	// (item_id, holder) key is the one-order-per-user rule, and NULLs never
	// clash. A cancelled or expired order keeps its holder on purpose, so
	// its buyer cannot hold a unit, let it lapse and hold it again.
	Holder      *string    `gorm:"column:holder"`
	PriceCents  int64      `gorm:"column:price_cents"`
	Status      string     `gorm:"column:status"`
	Reason      string     `gorm:"column:reason"`
	CreatedAt   time.Time  `gorm:"column:created_at"`
	ConfirmedAt *time.Time `gorm:"column:confirmed_at"`
	PayBy       *time.Time `gorm:"column:pay_by"`
	PaidAt      *time.Time `gorm:"column:paid_at"`
	PaymentRef  string     `gorm:"column:payment_ref"`
	UpdatedAt   time.Time  `gorm:"column:updated_at"`
}

func (orderRow) TableName() string { return "orders" }

// restockRow records one applied keyed restock; the key is unique per item.
type restockRow struct {
	ItemID         int64     `gorm:"column:item_id;primaryKey"`
	IdempotencyKey string    `gorm:"column:idempotency_key;primaryKey"`
	Added          int64     `gorm:"column:added"`
	CreatedAt      time.Time `gorm:"column:created_at"`
}

func (restockRow) TableName() string { return "restocks" }

// blockedRow is one user on the blocklist.
type blockedRow struct {
	UserID    string    `gorm:"column:user_id;primaryKey"`
	Reason    string    `gorm:"column:reason"`
	BlockedAt time.Time `gorm:"column:blocked_at"`
}

func (blockedRow) TableName() string { return "blocked_users" }

// dbTime is how every time is stored: UTC, millisecond precision. UTC keeps
// MySQL DATETIME (which has no zone) unambiguous and keeps SQLite's text
// timestamps sorting in time order.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func itemFromDomain(it sale.Item) itemRow {
	return itemRow{
		ID:             int64(it.ID),
		Name:           it.Name,
		Description:    it.Description,
		PriceCents:     it.PriceCents,
		StockTotal:     it.StockTotal,
		StockLeft:      it.StockLeft,
		StartsAt:       dbTime(it.StartsAt),
		EndsAt:         dbTime(it.EndsAt),
		PurchaseRate:   it.PurchaseRate,
		StockBuckets:   it.Buckets(),
		Protection:     string(it.Protection.OrNone()),
		Version:        it.Version,
		CreatedAt:      dbTime(it.CreatedAt),
		UpdatedAt:      dbTime(it.UpdatedAt),
		Opened:         true,
		AdmitPerSecond: it.AdmitPerSecond,
		MaxActive:      it.MaxActive,
	}
}

func (r itemRow) toDomain() sale.Item {
	return sale.Item{
		ID:           sale.ItemID(r.ID),
		Name:         r.Name,
		Description:  r.Description,
		PriceCents:   r.PriceCents,
		StockTotal:   r.StockTotal,
		StockLeft:    r.StockLeft,
		StartsAt:     r.StartsAt.UTC(),
		EndsAt:       r.EndsAt.UTC(),
		PurchaseRate: r.PurchaseRate,
		StockBuckets: max(r.StockBuckets, 1),
		Protection:   sale.Protection(r.Protection).OrNone(),
		Version:      r.Version,
		CreatedAt:    r.CreatedAt.UTC(),
		UpdatedAt:    r.UpdatedAt.UTC(),

		AdmitPerSecond: r.AdmitPerSecond,
		MaxActive:      r.MaxActive,
	}
}

// confirmedOrderRow is the row Confirm inserts for o at now, due for
// payment by payBy.
func confirmedOrderRow(o sale.Order, now, payBy time.Time) orderRow {
	holder := string(o.UserID)
	return orderRow{
		OrderID:     string(o.ID),
		ItemID:      int64(o.ItemID),
		UserID:      string(o.UserID),
		Holder:      &holder,
		PriceCents:  o.PriceCents,
		Status:      string(sale.OrderConfirmed),
		CreatedAt:   dbTime(o.CreatedAt),
		ConfirmedAt: &now,
		PayBy:       &payBy,
		UpdatedAt:   now,
	}
}

// failedOrderRow is the row that records o as failed at now: it holds no
// unit, so its holder is NULL.
func failedOrderRow(o sale.Order, reason string, now time.Time) orderRow {
	return orderRow{
		OrderID:    string(o.ID),
		ItemID:     int64(o.ItemID),
		UserID:     string(o.UserID),
		PriceCents: o.PriceCents,
		Status:     string(sale.OrderFailed),
		Reason:     truncateReason(reason),
		CreatedAt:  dbTime(o.CreatedAt),
		UpdatedAt:  now,
	}
}

// maxReasonLen is the width of orders.reason, in characters.
const maxReasonLen = 255

// truncateReason cuts a reason to the column's width on a rune boundary,
// so a long driver error can never make the fence insert itself fail.
func truncateReason(s string) string {
	r := []rune(s)
	if len(r) > maxReasonLen {
		return string(r[:maxReasonLen])
	}
	return s
}

func (r orderRow) toDomain() sale.Order {
	o := sale.Order{
		ID:         sale.OrderID(r.OrderID),
		ItemID:     sale.ItemID(r.ItemID),
		UserID:     sale.UserID(r.UserID),
		PriceCents: r.PriceCents,
		Status:     sale.OrderStatus(r.Status),
		Reason:     r.Reason,
		CreatedAt:  r.CreatedAt.UTC(),
		PaymentRef: r.PaymentRef,
	}
	if r.PayBy != nil {
		o.PayBy = r.PayBy.UTC()
	}
	if r.PaidAt != nil {
		o.PaidAt = r.PaidAt.UTC()
	}
	return o
}
