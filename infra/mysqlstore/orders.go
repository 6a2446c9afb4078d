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

// Confirm inserts the orders as confirmed, lowers each item's stock_left by
// the number actually inserted, and records as failed every order whose user
// already holds another live order for the item, all in one transaction. It
// returns the total inserted and every order's fate.
//
// An order already decided (a redelivery, or an order someone else failed
// first) keeps its row and takes no stock: the unique key on order_id is the
// fence, and whichever insert came first stands. A repeated order id in the
// same call counts once. An order refused by the one-live-order-per-user key
// (item_id, holder) gets a failed row in the same transaction, with Refused
// set in its fate, so it can never be confirmed later either.
//
// It returns ErrInvalid if any order fails Order.Check, an error matching
// ErrNotFound (naming the item) if an item does not exist, and
// ErrStockExhausted if an item's stock_left is lower than its newly inserted
// orders; in every error case nothing is written.
//
// Items are processed in ascending id order, so concurrent calls take item
// row locks in one global order and cannot deadlock on them.
func (s *Store) Confirm(ctx context.Context, orders []sale.Order) (int, map[sale.OrderID]sale.Fate, error) {
	groups, err := groupOrders(orders)
	if err != nil || len(groups) == 0 {
		return 0, map[sale.OrderID]sale.Fate{}, err
	}
	var (
		inserted int
		fates    map[sale.OrderID]sale.Fate
	)
	err = s.retryDeadlocks(ctx, func() error {
		var err error
		inserted, fates, err = s.confirmOnce(ctx, groups)
		return err
	})
	if err != nil {
		return 0, nil, translate(ctx, "confirm", err)
	}
	return inserted, fates, nil
}

// retryDeadlocks runs tx again when MySQL picks it as a deadlock victim, up
// to confirmAttempts times. Only idempotent transactions may use it.
func (s *Store) retryDeadlocks(ctx context.Context, tx func() error) error {
	for attempt := 1; ; attempt++ {
		err := tx()
		if err == nil || attempt == confirmAttempts || mysqlErrorNumber(err) != errLockDeadlock {
			return err
		}
		pause := time.NewTimer(rand.N(time.Duration(attempt) * confirmRetryBackoff)) //nolint:gosec // G404: jitter only spreads retries; it needs no unpredictability
		select {
		case <-ctx.Done():
			pause.Stop()
			return err
		case <-pause.C:
		}
	}
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

// refusedReason is recorded on an order refused by the one-live-order-per-user
// key; it names the order the user already holds.
const refusedReason = "the user already holds another order for this item"

// confirmOnce is one attempt at a Confirm, in one transaction: lock the
// items, then for each item insert its orders chunk by chunk and lower its
// stock by the number actually inserted. Any error rolls back every insert.
func (s *Store) confirmOnce(ctx context.Context, groups []itemOrders) (int, map[sale.OrderID]sale.Fate, error) {
	total := 0
	var fates map[sale.OrderID]sale.Fate
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now()
		total = 0
		fates = make(map[sale.OrderID]sale.Fate)
		items := make([]sale.ItemID, len(groups))
		for i, g := range groups {
			items[i] = g.item
		}
		if err := s.lockItems(tx, items); err != nil {
			return err
		}
		for _, g := range groups {
			var n int64
			for chunk := range slices.Chunk(g.orders, confirmChunk) {
				inserted, err := s.insertChunk(tx, chunk, now, fates)
				if err != nil {
					return err
				}
				n += inserted
			}
			if err := s.lowerStock(tx, g.item, n, now); err != nil {
				return err
			}
			total += int(n)
		}
		return nil
	})
	return total, fates, err
}

// insertChunk inserts one chunk of an item's orders as confirmed, records
// each order's fate in fates, and returns how many rows it inserted. An
// order whose id already has a row keeps that row's fate (an earlier
// delivery's, or a failure recorded first); an order with no row at all
// clashed on (item_id, holder), so its user already holds another live
// order, and it is recorded failed.
func (s *Store) insertChunk(tx *gorm.DB, chunk []sale.Order, now time.Time, fates map[sale.OrderID]sale.Fate) (int64, error) {
	payBy := now.Add(s.payWindow)
	rows := make([]orderRow, 0, len(chunk))
	for _, o := range chunk {
		rows = append(rows, confirmedOrderRow(o, now, payBy))
	}
	// DoNothing becomes ON DUPLICATE KEY UPDATE id=id on MySQL and ON
	// CONFLICT DO NOTHING on SQLite; either way a row that clashes with a
	// unique key counts 0 affected rows (Open turns clientFoundRows off), so
	// RowsAffected is the number inserted.
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rows)
	if res.Error != nil {
		return 0, res.Error
	}
	if res.RowsAffected == int64(len(chunk)) {
		// Every row is ours, just written (groupOrders dropped repeated
		// ids): the usual batch needs no locking read-back.
		for _, o := range chunk {
			fates[o.ID] = sale.Fate{Status: sale.OrderConfirmed, PayBy: payBy}
		}
		return res.RowsAffected, nil
	}
	got, err := s.fatesIn(tx, chunk)
	if err != nil {
		return 0, err
	}
	var refused []orderRow
	for _, o := range chunk {
		if f, ok := got[o.ID]; ok {
			fates[o.ID] = f
			continue
		}
		refused = append(refused, failedOrderRow(o, refusedReason, now))
		fates[o.ID] = sale.Fate{Status: sale.OrderFailed, Reason: refusedReason, Refused: true}
	}
	// No clash is possible: these ids have no row, and a NULL holder
	// clashes with nothing.
	if len(refused) > 0 {
		if err := tx.Create(&refused).Error; err != nil {
			return 0, err
		}
	}
	return res.RowsAffected, nil
}

// lowerStock takes n units off the item's database stock, refusing to go
// below zero. n == 0 leaves the row (and its lock) alone. A refusal is
// ErrStockExhausted and a missing item ErrNotFound, told apart so the worker
// can treat a deleted item differently from a stock mismatch.
func (s *Store) lowerStock(tx *gorm.DB, item sale.ItemID, n int64, now time.Time) error {
	if n == 0 {
		return nil
	}
	res := tx.Exec("UPDATE items SET stock_left = stock_left - ?, updated_at = ? WHERE id = ? AND stock_left >= ?",
		n, now, int64(item), n)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected > 0 {
		return nil
	}
	var exists bool
	if err := tx.Raw("SELECT EXISTS (SELECT 1 FROM items WHERE id = ?)", int64(item)).Scan(&exists).Error; err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("item %s: %w", item, sale.ErrNotFound)
	}
	return fmt.Errorf("item %s: %d new orders: %w", item, n, sale.ErrStockExhausted)
}

// lockItems takes the item rows' locks in ascending id order before any
// order row is written. Confirm and Fail on one item then run one after the
// other instead of interleaving their inserts, which on MySQL deadlocks
// (two inserts of the same order id each wait for the other's duplicate-key
// check); the item row is locked for the final stock update anyway. Missing
// items lock nothing. SQLite's single writer already serialises.
func (s *Store) lockItems(tx *gorm.DB, items []sale.ItemID) error {
	if s.dialect != MySQL || len(items) == 0 {
		return nil
	}
	ids := make([]int64, len(items))
	for i, id := range items {
		ids[i] = int64(id)
	}
	slices.Sort(ids)
	var locked []int64
	return s.forUpdate(tx.Model(&itemRow{})).Where("id IN ?", ids).Order("id").Pluck("id", &locked).Error
}

// fateRow is the part of an order row that says what became of it.
type fateRow struct {
	OrderID string     `gorm:"column:order_id"`
	Status  string     `gorm:"column:status"`
	Reason  string     `gorm:"column:reason"`
	PayBy   *time.Time `gorm:"column:pay_by"`
}

// fatesIn reads the fates of the orders' ids inside tx with a locking read:
// on MySQL a plain SELECT in a transaction reads the snapshot of its first
// read, which could miss a row another transaction committed since, and
// that row is exactly the one a fence must see.
func (s *Store) fatesIn(tx *gorm.DB, orders []sale.Order) (map[sale.OrderID]sale.Fate, error) {
	ids := make([]string, len(orders))
	for i, o := range orders {
		ids[i] = string(o.ID)
	}
	return fatesOf(s.forUpdate(tx), ids)
}

func fatesOf(tx *gorm.DB, ids []string) (map[sale.OrderID]sale.Fate, error) {
	out := make(map[sale.OrderID]sale.Fate, len(ids))
	// A shareable session, so each chunk's query starts from tx's clauses
	// (the lock) and not from the previous chunk's conditions.
	q := tx.Session(&gorm.Session{})
	for chunk := range slices.Chunk(ids, confirmChunk) {
		var rows []fateRow
		if err := q.Model(&orderRow{}).Select("order_id, status, reason, pay_by").Where("order_id IN ?", chunk).Find(&rows).Error; err != nil {
			return nil, err
		}
		for _, r := range rows {
			f := sale.Fate{Status: sale.OrderStatus(r.Status), Reason: r.Reason}
			if r.PayBy != nil {
				f.PayBy = r.PayBy.UTC()
			}
			out[sale.OrderID(r.OrderID)] = f
		}
	}
	return out, nil
}

// Fail records each order as failed with reason unless the database has
// decided it already, and returns every order's fate. Only an order whose
// fate comes back failed may have its unit given back: if a worker confirmed
// it first, its fate is confirmed and its unit stays sold. Fail never changes
// stock: a failed order never took any in the database. It returns
// ErrInvalid, writing nothing, if an order fails Order.Check.
func (s *Store) Fail(ctx context.Context, orders []sale.Order, reason string) (map[sale.OrderID]sale.Fate, error) {
	for _, o := range orders {
		if err := o.Check(); err != nil {
			return nil, fmt.Errorf("mysqlstore: fail order %q: %w", o.ID, err)
		}
	}
	if len(orders) == 0 {
		return map[sale.OrderID]sale.Fate{}, nil
	}
	var fates map[sale.OrderID]sale.Fate
	err := s.retryDeadlocks(ctx, func() error {
		return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			now := s.now()
			items := make([]sale.ItemID, 0, 1)
			for _, o := range orders {
				if !slices.Contains(items, o.ItemID) {
					items = append(items, o.ItemID)
				}
			}
			if err := s.lockItems(tx, items); err != nil {
				return err
			}
			for chunk := range slices.Chunk(orders, confirmChunk) {
				rows := make([]orderRow, len(chunk))
				for i, o := range chunk {
					rows[i] = failedOrderRow(o, reason, now)
				}
				// The order_id key is the fence: a row already there, of
				// either fate, wins.
				if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error; err != nil {
					return err
				}
			}
			var err error
			fates, err = s.fatesIn(tx, orders)
			return err
		})
	})
	if err != nil {
		return nil, translate(ctx, "fail orders", err)
	}
	return fates, nil
}

// Fates reports the recorded fate of each id; ids with no row are absent.
func (s *Store) Fates(ctx context.Context, ids []sale.OrderID) (map[sale.OrderID]sale.Fate, error) {
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = string(id)
	}
	out, err := fatesOf(s.db.WithContext(ctx), strs)
	if err != nil {
		return nil, translate(ctx, "fates", err)
	}
	return out, nil
}

// Holders returns every order of the item that was ever confirmed (held,
// paid, cancelled or expired) as user -> order: the database's side of the
// one-order-per-user records. A buyer whose order lapsed keeps their slot.
func (s *Store) Holders(ctx context.Context, id sale.ItemID) (map[sale.UserID]sale.OrderID, error) {
	var rows []struct {
		OrderID string `gorm:"column:order_id"`
		UserID  string `gorm:"column:user_id"`
	}
	err := s.db.WithContext(ctx).Model(&orderRow{}).Select("order_id, user_id").
		Where("item_id = ? AND holder IS NOT NULL", int64(id)).Find(&rows).Error
	if err != nil {
		return nil, translate(ctx, "holders of item "+id.String(), err)
	}
	out := make(map[sale.UserID]sale.OrderID, len(rows))
	for _, r := range rows {
		out[sale.UserID(r.UserID)] = sale.OrderID(r.OrderID)
	}
	return out, nil
}

// Order returns the order with id as the database decided it (confirmed or
// failed), or an error matching sale.ErrOrderNotFound.
func (s *Store) Order(ctx context.Context, id sale.OrderID) (sale.Order, error) {
	var row orderRow
	err := s.db.WithContext(ctx).Where("order_id = ?", string(id)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return sale.Order{}, fmt.Errorf("mysqlstore: order %q: %w", id, sale.ErrOrderNotFound)
	}
	if err != nil {
		return sale.Order{}, translate(ctx, "order", err)
	}
	return row.toDomain(), nil
}

// maxOrdersOf bounds how many orders OrdersOf returns: one user has at most
// one live order per item, so more than a handful means failed attempts.
const maxOrdersOf = 20

// OrdersOf returns the user's orders for the item that the database has
// decided (confirmed, paid, cancelled, expired or failed), newest first, at
// most maxOrdersOf; none is an empty slice, not an error. It reads by the
// orders_user index, so a buyer asking costs the hot item's rows nothing.
func (s *Store) OrdersOf(ctx context.Context, item sale.ItemID, user sale.UserID) ([]sale.Order, error) {
	var rows []orderRow
	err := s.db.WithContext(ctx).Where("user_id = ? AND item_id = ?", string(user), int64(item)).
		Order("created_at DESC, id DESC").Limit(maxOrdersOf).Find(&rows).Error
	if err != nil {
		return nil, translate(ctx, "orders of "+string(user)+" for item "+item.String(), err)
	}
	out := make([]sale.Order, len(rows))
	for i, r := range rows {
		out[i] = r.toDomain()
	}
	return out, nil
}

// CountConfirmed returns how many orders of the item are confirmed and not
// yet paid, cancelled or expired; 0 for an unknown item.
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

// CountHeld returns how many orders of the item hold a unit (confirmed or
// paid): the units the database has sold. 0 for an unknown item.
func (s *Store) CountHeld(ctx context.Context, id sale.ItemID) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&orderRow{}).
		Where("item_id = ? AND status IN ?", int64(id), []string{string(sale.OrderConfirmed), string(sale.OrderPaid)}).
		Count(&n).Error
	if err != nil {
		return 0, translate(ctx, "count held", err)
	}
	return n, nil
}

// ItemStats is the database's view of one item's stock, for the admin stats
// page. The figures come from one statement, so they are mutually
// consistent: StockTotal - StockLeft == Confirmed + Paid unless stock was
// changed outside the store.
type ItemStats struct {
	StockTotal int64
	StockLeft  int64
	Confirmed  int64
	Failed     int64
	Paid       int64
	Cancelled  int64
	Expired    int64
}

// Stats returns the item's stock figures and order counts by status, or an
// error matching sale.ErrNotFound.
func (s *Store) Stats(ctx context.Context, id sale.ItemID) (ItemStats, error) {
	var st ItemStats
	res := s.db.WithContext(ctx).Raw(`SELECT i.stock_total, i.stock_left,
		(SELECT COUNT(*) FROM orders o WHERE o.item_id = i.id AND o.status = ?) AS confirmed,
		(SELECT COUNT(*) FROM orders o WHERE o.item_id = i.id AND o.status = ?) AS failed,
		(SELECT COUNT(*) FROM orders o WHERE o.item_id = i.id AND o.status = ?) AS paid,
		(SELECT COUNT(*) FROM orders o WHERE o.item_id = i.id AND o.status = ?) AS cancelled,
		(SELECT COUNT(*) FROM orders o WHERE o.item_id = i.id AND o.status = ?) AS expired
		FROM items i WHERE i.id = ?`, string(sale.OrderConfirmed), string(sale.OrderFailed),
		string(sale.OrderPaid), string(sale.OrderCancelled), string(sale.OrderExpired), int64(id)).Scan(&st)
	if res.Error != nil {
		return ItemStats{}, translate(ctx, "stats item "+id.String(), res.Error)
	}
	if res.RowsAffected == 0 {
		return ItemStats{}, fmt.Errorf("mysqlstore: stats item %s: %w", id, sale.ErrNotFound)
	}
	return st, nil
}

// CountStatuses returns how many orders the item has in each status; a
// status with none is absent.
func (s *Store) CountStatuses(ctx context.Context, id sale.ItemID) (map[sale.OrderStatus]int64, error) {
	var rows []struct {
		Status string `gorm:"column:status"`
		N      int64  `gorm:"column:n"`
	}
	err := s.db.WithContext(ctx).Model(&orderRow{}).Select("status, COUNT(*) AS n").
		Where("item_id = ?", int64(id)).Group("status").Scan(&rows).Error
	if err != nil {
		return nil, translate(ctx, "count orders by status", err)
	}
	out := make(map[sale.OrderStatus]int64, len(rows))
	for _, r := range rows {
		out[sale.OrderStatus(r.Status)] = r.N
	}
	return out, nil
}

// CountFailed returns how many failed orders the item has.
func (s *Store) CountFailed(ctx context.Context, id sale.ItemID) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&orderRow{}).
		Where("item_id = ? AND status = ?", int64(id), string(sale.OrderFailed)).
		Count(&n).Error
	if err != nil {
		return 0, translate(ctx, "count failed", err)
	}
	return n, nil
}
