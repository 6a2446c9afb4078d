package mysqlstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"seckill/domain/sale"
)

// decideSQL is the one statement that moves a confirmed order on. Every
// decision changes status only from 'confirmed', so of a payment, a cancel
// and an expiry racing for the same order exactly one matches the row; the
// others match nothing (RowsAffected 0) and read back the winner's status.
// The extra guard per decision is appended by decide.
const decideSQL = "UPDATE orders SET status = ?, paid_at = ?, payment_ref = ?, updated_at = ? WHERE order_id = ? AND status = ?"

// Pay records a confirmed order of user as paid at at with ref, but only
// while its deadline is ahead (pay_by > at). applied is true only if this
// call moved the order; either way the order comes back as it stands now,
// so a repeat, or a payment that lost to an expiry, reads the winner's
// status. It returns an error matching sale.ErrOrderNotFound if the
// database has no such order.
func (s *Store) Pay(ctx context.Context, id sale.OrderID, user sale.UserID, ref string, at time.Time) (sale.Order, bool, error) {
	at = dbTime(at)
	var applied bool
	err := s.retryDeadlocks(ctx, func() error {
		// No item lock: a payment moves no stock, and one UPDATE is atomic.
		res := s.db.WithContext(ctx).Exec(decideSQL+" AND user_id = ? AND pay_by > ?",
			string(sale.OrderPaid), at, ref, s.now(), string(id), string(sale.OrderConfirmed), string(user), at)
		applied = res.RowsAffected == 1
		return res.Error
	})
	if err != nil {
		return sale.Order{}, false, translate(ctx, "pay order "+string(id), err)
	}
	o, err := s.Order(ctx, id)
	return o, applied, err
}

// Cancel records a confirmed order of user as cancelled and gives its unit
// back to stock_left, in one transaction. applied is true only if this call
// moved the order; the order comes back as it stands now. It returns an
// error matching sale.ErrOrderNotFound if the database has no such order.
func (s *Store) Cancel(ctx context.Context, id sale.OrderID, user sale.UserID, at time.Time) (sale.Order, bool, error) {
	var applied bool
	err := s.retryDeadlocks(ctx, func() error {
		return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			// Lock the item before the order, in the order Confirm takes
			// them, so a cancel and a confirming batch cannot deadlock.
			if err := s.lockItems(tx, []sale.ItemID{id.Item()}); err != nil {
				return err
			}
			res := tx.Exec(decideSQL+" AND user_id = ?",
				string(sale.OrderCancelled), nil, "", s.now(), string(id), string(sale.OrderConfirmed), string(user))
			if res.Error != nil {
				return res.Error
			}
			applied = res.RowsAffected == 1
			if !applied {
				return nil
			}
			return giveBack(tx, id.Item(), 1, s.now())
		})
	})
	if err != nil {
		return sale.Order{}, false, translate(ctx, "cancel order "+string(id), err)
	}
	o, err := s.Order(ctx, id)
	return o, applied, err
}

// Expire records as expired every order of ids that is still confirmed and
// whose deadline has passed (pay_by <= at), and gives each one's unit back
// to stock_left, all in one transaction. It returns the ids this call
// expired; an order paid, cancelled or expired by someone else first is
// left alone and not returned.
func (s *Store) Expire(ctx context.Context, ids []sale.OrderID, at time.Time) ([]sale.OrderID, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	at = dbTime(at)
	byItem := map[sale.ItemID][]sale.OrderID{}
	var items []sale.ItemID
	for _, id := range ids {
		item := id.Item()
		if item <= 0 {
			continue
		}
		if _, ok := byItem[item]; !ok {
			items = append(items, item)
		}
		byItem[item] = append(byItem[item], id)
	}
	slices.Sort(items)
	var expired []sale.OrderID
	err := s.retryDeadlocks(ctx, func() error {
		return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			expired = expired[:0]
			if err := s.lockItems(tx, items); err != nil {
				return err
			}
			now := s.now()
			for _, item := range items {
				var n int64
				for _, id := range byItem[item] {
					res := tx.Exec(decideSQL+" AND pay_by <= ?",
						string(sale.OrderExpired), nil, "", now, string(id), string(sale.OrderConfirmed), at)
					if res.Error != nil {
						return res.Error
					}
					if res.RowsAffected == 1 {
						n++
						expired = append(expired, id)
					}
				}
				if n > 0 {
					if err := giveBack(tx, item, n, now); err != nil {
						return err
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, translate(ctx, "expire orders", err)
	}
	return expired, nil
}

// giveBack returns n units to an item's stock_left. The CHECK
// stock_left <= stock_total refuses a return that was never taken.
func giveBack(tx *gorm.DB, item sale.ItemID, n int64, now time.Time) error {
	res := tx.Exec("UPDATE items SET stock_left = stock_left + ?, updated_at = ? WHERE id = ?", n, now, int64(item))
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("item %s: %w", item, sale.ErrNotFound)
	}
	return nil
}

// DueForExpiry returns up to limit confirmed orders whose deadline has
// passed at at, oldest deadline first, read through the (status, pay_by)
// index.
func (s *Store) DueForExpiry(ctx context.Context, at time.Time, limit int) ([]sale.OrderID, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&orderRow{}).
		Where("status = ? AND pay_by <= ?", string(sale.OrderConfirmed), dbTime(at)).
		Order("pay_by").Limit(limit).Pluck("order_id", &ids).Error
	if err != nil {
		return nil, translate(ctx, "orders due for expiry", err)
	}
	return toOrderIDs(ids), nil
}

// RecentlyReturned returns up to limit orders cancelled or expired at or
// after since, newest first, read through the (status, updated_at) index:
// the orders whose unit the ledger may still have to take back. Newest
// first because the sweep runs every second: an older return was among the
// newest in an earlier sweep, while in a mass expiry an oldest-first read
// would show the same old returns every time and never reach a newer one
// whose ledger step failed.
func (s *Store) RecentlyReturned(ctx context.Context, since time.Time, limit int) ([]sale.OrderID, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&orderRow{}).
		Where("status IN ? AND updated_at >= ?", []string{string(sale.OrderCancelled), string(sale.OrderExpired)}, dbTime(since)).
		Order("updated_at DESC, order_id DESC").Limit(limit).Pluck("order_id", &ids).Error
	if err != nil {
		return nil, translate(ctx, "recently returned orders", err)
	}
	return toOrderIDs(ids), nil
}

// ReturnedOrders returns every cancelled or expired order of an item: the
// orders whose unit went back, which a ledger repair marks as returned
// before it writes the stock.
func (s *Store) ReturnedOrders(ctx context.Context, id sale.ItemID) ([]sale.OrderID, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&orderRow{}).
		Where("item_id = ? AND status IN ?", int64(id), []string{string(sale.OrderCancelled), string(sale.OrderExpired)}).
		Pluck("order_id", &ids).Error
	if err != nil {
		return nil, translate(ctx, "returned orders of item "+id.String(), err)
	}
	return toOrderIDs(ids), nil
}

func toOrderIDs(ids []string) []sale.OrderID {
	out := make([]sale.OrderID, len(ids))
	for i, id := range ids {
		out[i] = sale.OrderID(id)
	}
	return out
}
