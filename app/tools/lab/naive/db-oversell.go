// WRONG ON PURPOSE: lacks the guarded UPDATE; the real one is Confirm's
// "UPDATE items SET stock_left = stock_left - ? WHERE id = ? AND stock_left
// >= ?" inside one transaction that holds the item row
// (infra/mysqlstore/orders.go).

package naive

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"seckill/domain/sale"
)

// ReadThenUpdateBook is the order book a newcomer writes when the database
// keeps the stock: read stock_left, check it in Go, write back the figure
// it read minus one, insert the order. Each statement commits on its own,
// so two buyers who read the same figure both sell the same unit, and the
// second write overwrites the first (a lost update): more orders than
// stock, and a stock_left that no longer adds up. Every other method is
// the production book's.
type ReadThenUpdateBook struct {
	sale.OrderBook
	db        *gorm.DB
	payWindow time.Duration
	hold      func(context.Context)
}

// NewReadThenUpdateBook returns the naive book over the production one and
// its database handle. hold, if not nil, runs between the check and the
// write: the lab widens the window there until every buyer has read the
// stock, so the lost update happens on every run.
func NewReadThenUpdateBook(real sale.OrderBook, db *gorm.DB, payWindow time.Duration, hold func(context.Context)) *ReadThenUpdateBook {
	return &ReadThenUpdateBook{OrderBook: real, db: db, payWindow: payWindow, hold: hold}
}

// Confirm sells each order if the stock it just read is above zero. It
// returns sale.ErrStockExhausted when it reads zero, like the real book.
func (b *ReadThenUpdateBook) Confirm(ctx context.Context, orders []sale.Order) (int, map[sale.OrderID]sale.Fate, error) {
	db := b.db.WithContext(ctx)
	fates := make(map[sale.OrderID]sale.Fate, len(orders))
	for _, o := range orders {
		var left int64
		// 1. read
		if err := db.Raw("SELECT stock_left FROM items WHERE id = ?", int64(o.ItemID)).Scan(&left).Error; err != nil {
			return 0, nil, fmt.Errorf("naive book: read stock: %w", err)
		}
		// 2. check, in Go, while other buyers read the same figure
		if left < 1 {
			return 0, nil, fmt.Errorf("naive book: item %d: %w", o.ItemID, sale.ErrStockExhausted)
		}
		if b.hold != nil {
			b.hold(ctx) // the window between the check and the write, widened
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		payBy := now.Add(b.payWindow)
		// 3. write back what was read, minus one: no guard, no lock
		if err := db.Exec("UPDATE items SET stock_left = ?, updated_at = ? WHERE id = ?", left-1, now, int64(o.ItemID)).Error; err != nil {
			return 0, nil, fmt.Errorf("naive book: write stock: %w", err)
		}
		err := db.Exec("INSERT INTO orders (order_id, item_id, user_id, holder, price_cents, status, reason, created_at, confirmed_at, pay_by, payment_ref, updated_at)"+
			" VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, ?, '', ?)",
			string(o.ID), int64(o.ItemID), string(o.UserID), string(o.UserID), o.PriceCents, string(sale.OrderConfirmed),
			o.CreatedAt.UTC().Truncate(time.Millisecond), now, payBy, now).Error
		if err != nil {
			return 0, nil, fmt.Errorf("naive book: insert order: %w", err)
		}
		fates[o.ID] = sale.Fate{Status: sale.OrderConfirmed, PayBy: payBy}
	}
	return len(orders), fates, nil
}
