package mysqlstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"seckill/domain/sale"
)

// confirmChunk is the most order rows one INSERT carries: 500 rows of 9
// columns stay far below MySQL's 65,535 placeholders and SQLite's 32,766
// variables, and each statement stays small enough to parse quickly.
const confirmChunk = 500

// confirmAttempts is how many times Confirm runs its transaction when MySQL
// picks it as a deadlock victim. Batches of one item take the item row lock
// in one order, but their inserts can still deadlock on the unique keys when
// two concurrent batches hold different order ids for the same users (the
// (user_id, item_id) key) met in different orders. The whole transaction is
// safe to rerun because Confirm is idempotent; a short random pause first
// keeps the survivors of one deadlock from meeting again in step.
const (
	confirmAttempts     = 6
	confirmRetryBackoff = 5 * time.Millisecond
)

// Confirm inserts the orders as confirmed and lowers each item's stock_left
// by the number actually inserted, all in one transaction, and returns the
// total inserted.
//
// An order is skipped, not inserted, when its order id is already stored
// (redelivery), when it repeats an earlier order id in the same call, or
// when its user already holds an order for the item under another order id
// (the one-order-per-user rule enforced by the (user_id, item_id) key).
// Skipped orders take no stock. Stored orders have status "confirmed".
//
// It returns ErrInvalid if any order fails Order.Check, an error matching
// ErrNotFound (naming the item) if an item does not exist, and
// ErrStockExhausted if an item's stock_left is lower than its newly inserted
// orders; in every error case nothing is written.
//
// Items are processed in ascending id order, so concurrent calls take item
// row locks in one global order and cannot deadlock on them.
func (s *Store) Confirm(ctx context.Context, orders []sale.Order) (int, error) {
	groups, err := groupOrders(orders)
	if err != nil || len(groups) == 0 {
		return 0, err
	}
	var inserted int
	for attempt := 1; ; attempt++ {
		inserted, err = s.confirmOnce(ctx, groups)
		if err == nil || attempt == confirmAttempts || mysqlErrorNumber(err) != errLockDeadlock {
			break
		}
		pause := time.NewTimer(rand.N(time.Duration(attempt) * confirmRetryBackoff))
		select {
		case <-ctx.Done():
			pause.Stop()
			return 0, translate(ctx, "confirm", err)
		case <-pause.C:
		}
	}
	if err != nil {
		return 0, translate(ctx, "confirm", err)
	}
	return inserted, nil
}

// itemOrders is one item's share of a Confirm call.
type itemOrders struct {
	item   sale.ItemID
	orders []sale.Order
}

// groupOrders checks the orders, drops repeated order ids (first wins) and
// groups them by item in ascending item order. Within an item the orders are
// sorted by id so that concurrent inserts of overlapping batches take index
// locks in the same order.
func groupOrders(orders []sale.Order) ([]itemOrders, error) {
	seen := make(map[sale.OrderID]struct{}, len(orders))
	byItem := make(map[sale.ItemID][]sale.Order)
	for _, o := range orders {
		if err := o.Check(); err != nil {
			return nil, fmt.Errorf("mysqlstore: confirm order %q: %w", o.ID, err)
		}
		if _, dup := seen[o.ID]; dup {
			continue
		}
		seen[o.ID] = struct{}{}
		byItem[o.ItemID] = append(byItem[o.ItemID], o)
	}
	groups := make([]itemOrders, 0, len(byItem))
	for item, os := range byItem {
		slices.SortFunc(os, func(a, b sale.Order) int { return cmp.Compare(a.ID, b.ID) })
		groups = append(groups, itemOrders{item: item, orders: os})
	}
	slices.SortFunc(groups, func(a, b itemOrders) int { return cmp.Compare(a.item, b.item) })
	return groups, nil
}

func (s *Store) confirmOnce(ctx context.Context, groups []itemOrders) (int, error) {
	total := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now()
		total = 0
		rows := make([]orderRow, 0, min(confirmChunk, len(groups[0].orders)))
		for _, g := range groups {
			var n int64
			for chunk := range slices.Chunk(g.orders, confirmChunk) {
				rows = rows[:0]
				for _, o := range chunk {
					rows = append(rows, confirmedOrderRow(o, now))
				}
				// DoNothing becomes ON DUPLICATE KEY UPDATE id=id on MySQL
				// and ON CONFLICT DO NOTHING on SQLite; either way a row
				// that clashes with a unique key counts 0 affected rows
				// (Open turns clientFoundRows off), so RowsAffected is the
				// number inserted.
				res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rows)
				if res.Error != nil {
					return res.Error
				}
				n += res.RowsAffected
			}
			if n == 0 {
				// Pure redelivery: nothing new for this item, so leave its
				// row (and its lock) alone.
				continue
			}
			res := tx.Exec("UPDATE items SET stock_left = stock_left - ?, updated_at = ? WHERE id = ? AND stock_left >= ?",
				n, now, int64(g.item), n)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				// The guard refused or the item is missing; tell them apart
				// so the worker can treat a deleted item differently from a
				// stock mismatch. Returning rolls back every insert.
				var exists bool
				if err := tx.Raw("SELECT EXISTS (SELECT 1 FROM items WHERE id = ?)", int64(g.item)).Scan(&exists).Error; err != nil {
					return err
				}
				if !exists {
					return fmt.Errorf("item %s: %w", g.item, sale.ErrNotFound)
				}
				return fmt.Errorf("item %s: %d new orders: %w", g.item, n, sale.ErrStockExhausted)
			}
			total += int(n)
		}
		return nil
	})
	return total, err
}

// Order returns the confirmed order with id, or an error matching
// sale.ErrOrderNotFound.
func (s *Store) Order(ctx context.Context, id sale.OrderID) (sale.Order, error) {
	var row orderRow
	err := s.db.WithContext(ctx).
		Where("order_id = ? AND status = ?", string(id), string(sale.OrderConfirmed)).
		Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return sale.Order{}, fmt.Errorf("mysqlstore: order %q: %w", id, sale.ErrOrderNotFound)
	}
	if err != nil {
		return sale.Order{}, translate(ctx, "order", err)
	}
	return row.toDomain(), nil
}

// CountConfirmed returns how many confirmed orders the item has; 0 for an
// unknown item.
func (s *Store) CountConfirmed(ctx context.Context, id sale.ItemID) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&orderRow{}).
		Where("item_id = ? AND status = ?", int64(id), string(sale.OrderConfirmed)).
		Count(&n).Error
	if err != nil {
		return 0, translate(ctx, "count confirmed", err)
	}
	return n, nil
}

// ItemStats is the database's view of one item's stock, for the admin stats
// page. The three figures come from one statement, so they are mutually
// consistent: StockTotal - StockLeft == Confirmed unless stock was changed
// outside the store.
type ItemStats struct {
	StockTotal int64
	StockLeft  int64
	Confirmed  int64
}

// Stats returns the item's stock figures and confirmed-order count, or an
// error matching sale.ErrNotFound.
func (s *Store) Stats(ctx context.Context, id sale.ItemID) (ItemStats, error) {
	var st ItemStats
	res := s.db.WithContext(ctx).Raw(`SELECT i.stock_total, i.stock_left,
		(SELECT COUNT(*) FROM orders o WHERE o.item_id = i.id AND o.status = ?) AS confirmed
		FROM items i WHERE i.id = ?`, string(sale.OrderConfirmed), int64(id)).Scan(&st)
	if res.Error != nil {
		return ItemStats{}, translate(ctx, "stats item "+id.String(), res.Error)
	}
	if res.RowsAffected == 0 {
		return ItemStats{}, fmt.Errorf("mysqlstore: stats item %s: %w", id, sale.ErrNotFound)
	}
	return st, nil
}
