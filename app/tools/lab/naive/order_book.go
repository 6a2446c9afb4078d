package naive

// WRONG ON PURPOSE: lacks the unique key on order_id that fences a
// redelivered order; the real one is mysqlstore.Store.Confirm
// (infra/mysqlstore/orders.go), where an order id already in the orders
// table keeps its row and takes no stock, so a second delivery changes
// nothing.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"

	"seckill/domain/sale"
)

// OrdersTable is the naive order book's table: an auto-increment key
// and nothing unique, the way a first schema often looks.
const OrdersTable = "lab_naive_orders"

type naiveOrderRow struct {
	ID         int64  `gorm:"column:id;primaryKey;autoIncrement"`
	OrderID    string `gorm:"column:order_id;size:64"`
	ItemID     int64  `gorm:"column:item_id"`
	UserID     string `gorm:"column:user_id;size:64"`
	PriceCents int64  `gorm:"column:price_cents"`
	Status     string `gorm:"column:status;size:16"`
	Reason     string `gorm:"column:reason;size:255"`
	CreatedAt  time.Time
}

func (naiveOrderRow) TableName() string { return OrdersTable }

// OrderBook records every order message it is handed: one INSERT and one
// "stock_left = stock_left - 1" per message, in one transaction. It trusts
// the queue to deliver each order once, which no queue promises (a producer
// retry, a rebalance, a worker that dies before committing its offset all
// deliver again), so every redelivery is another order row and another unit
// gone from the database's stock. It implements the worker's order-book
// port (Confirm, Fail).
type OrderBook struct {
	db   *gorm.DB
	once sync.Once
	err  error
}

// NewOrderBook writes through db (the system's own database).
func NewOrderBook(db *gorm.DB) *OrderBook { return &OrderBook{db: db} }

func (b *OrderBook) migrate(ctx context.Context) error {
	b.once.Do(func() { b.err = b.db.WithContext(ctx).AutoMigrate(&naiveOrderRow{}) })
	return b.err
}

// Confirm inserts one confirmed row per message and lowers the item's
// stock by one for each.
func (b *OrderBook) Confirm(ctx context.Context, orders []sale.Order) (int, map[sale.OrderID]sale.Fate, error) {
	if err := b.migrate(ctx); err != nil {
		return 0, nil, fmt.Errorf("naive order book: %w", err)
	}
	fates := make(map[sale.OrderID]sale.Fate, len(orders))
	err := b.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, o := range orders {
			row := naiveOrderRow{OrderID: string(o.ID), ItemID: int64(o.ItemID), UserID: string(o.UserID),
				PriceCents: o.PriceCents, Status: string(sale.OrderConfirmed), CreatedAt: time.Now()}
			if err := tx.Create(&row).Error; err != nil {
				return err
			}
			if err := tx.Exec("UPDATE items SET stock_left = stock_left - 1 WHERE id = ?", int64(o.ItemID)).Error; err != nil {
				return err
			}
			fates[o.ID] = sale.Fate{Status: sale.OrderConfirmed}
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("naive order book: confirm: %w", err)
	}
	return len(orders), fates, nil
}

// Fail inserts one failed row per message.
func (b *OrderBook) Fail(ctx context.Context, orders []sale.Order, reason string) (map[sale.OrderID]sale.Fate, error) {
	if err := b.migrate(ctx); err != nil {
		return nil, fmt.Errorf("naive order book: %w", err)
	}
	fates := make(map[sale.OrderID]sale.Fate, len(orders))
	for _, o := range orders {
		row := naiveOrderRow{OrderID: string(o.ID), ItemID: int64(o.ItemID), UserID: string(o.UserID),
			PriceCents: o.PriceCents, Status: string(sale.OrderFailed), Reason: reason, CreatedAt: time.Now()}
		if err := b.db.WithContext(ctx).Create(&row).Error; err != nil {
			return nil, fmt.Errorf("naive order book: fail: %w", err)
		}
		fates[o.ID] = sale.Fate{Status: sale.OrderFailed, Reason: reason}
	}
	return fates, nil
}
