package mysqlstore

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"seckill/domain/sale"
)

// Item returns the item with id, or an error matching sale.ErrNotFound. An
// item whose keyed create has not finished (CreateItemKeyed, not yet
// MarkItemOpened) is not found, here and in Items.
func (s *Store) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	var row itemRow
	if err := s.db.WithContext(ctx).Where("id = ? AND opened = ?", int64(id), true).Take(&row).Error; err != nil {
		return sale.Item{}, translate(ctx, "item "+id.String(), err)
	}
	return row.toDomain(), nil
}

// Items returns every item ordered by StartsAt then ID; an empty store gives
// an empty, non-nil slice.
func (s *Store) Items(ctx context.Context) ([]sale.Item, error) {
	var rows []itemRow
	if err := s.db.WithContext(ctx).Where("opened = ?", true).Order("starts_at, id").Find(&rows).Error; err != nil {
		return nil, translate(ctx, "items", err)
	}
	items := make([]sale.Item, 0, len(rows))
	for _, r := range rows {
		items = append(items, r.toDomain())
	}
	return items, nil
}

// CreateItem stores it as a new item and returns it with its assigned ID,
// CreatedAt and UpdatedAt (now, UTC, milliseconds), times truncated to the
// millisecond and Version at least 1. The ID it.ID carries is ignored. It
// returns ErrInvalid, storing nothing, if it breaks Item.Validate or its
// stock figures are out of range.
func (s *Store) CreateItem(ctx context.Context, it sale.Item) (sale.Item, error) {
	if err := it.Validate(); err != nil {
		return sale.Item{}, err
	}
	if it.StockTotal < 0 || it.StockTotal > sale.MaxStock || it.StockLeft < 0 || it.StockLeft > it.StockTotal {
		return sale.Item{}, &sale.ValidationError{Field: "stock", Reason: fmt.Sprintf("must satisfy 0 <= stock_left <= stock_total <= %d", sale.MaxStock)}
	}
	now := s.now()
	it.ID = 0
	it.CreatedAt, it.UpdatedAt = now, now
	it.Version = max(it.Version, 1)
	row := itemFromDomain(it)
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return sale.Item{}, translate(ctx, "create item", err)
	}
	return row.toDomain(), nil
}

// UpdateItem runs fn on the current item inside a transaction that holds the
// row (SELECT ... FOR UPDATE on MySQL; SQLite's single writer on SQLite) and
// stores the result if fn returns nil. It returns ErrNotFound for an unknown
// id without calling fn, and fn's error unchanged, storing nothing.
//
// Only item data is stored: name, description, price, window, purchase
// rate, protection, waiting room and Version, as fn left them. ID, stock and CreatedAt stay the store's
// whatever fn does to them (stock changes only through Restock and
// Confirm), and UpdatedAt becomes now. A result that breaks Item.Validate is
// refused with ErrInvalid.
func (s *Store) UpdateItem(ctx context.Context, id sale.ItemID, fn func(*sale.Item) error) (sale.Item, error) {
	var (
		out   sale.Item
		fnErr error
	)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row itemRow
		if err := s.forUpdate(tx).Where("id = ?", int64(id)).Take(&row).Error; err != nil {
			return err
		}
		cur := row.toDomain()
		next := cur
		if err := fn(&next); err != nil {
			fnErr = err
			return err
		}
		// Stock belongs to Restock and Confirm, identity and creation time
		// to the store; put them back so the item returned is the item
		// stored.
		next.ID, next.StockTotal, next.StockLeft, next.CreatedAt = cur.ID, cur.StockTotal, cur.StockLeft, cur.CreatedAt
		next.UpdatedAt = s.now()
		if err := next.Validate(); err != nil {
			return err
		}
		nr := itemFromDomain(next)
		if err := tx.Model(&itemRow{}).Where("id = ?", nr.ID).Updates(map[string]any{
			"name":          nr.Name,
			"description":   nr.Description,
			"price_cents":   nr.PriceCents,
			"starts_at":     nr.StartsAt,
			"ends_at":       nr.EndsAt,
			"purchase_rate": nr.PurchaseRate,
			"protection":    nr.Protection,
			"version":       nr.Version,
			"updated_at":    nr.UpdatedAt,

			"admit_per_second": nr.AdmitPerSecond,
			"max_active":       nr.MaxActive,
		}).Error; err != nil {
			return err
		}
		out = nr.toDomain()
		return nil
	})
	if fnErr != nil {
		return sale.Item{}, fnErr
	}
	if err != nil {
		return sale.Item{}, translate(ctx, "update item "+id.String(), err)
	}
	return out, nil
}

// DeleteItem removes an item that has no orders. It returns ErrNotFound for
// an unknown id and ErrInvalid, deleting nothing, if any order references
// the item.
//
// A Confirm racing the delete cannot leave orphan orders: its stock update
// waits for the item row this transaction holds, then finds the row gone,
// reports ErrNotFound and rolls its orders back.
func (s *Store) DeleteItem(ctx context.Context, id sale.ItemID) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var row itemRow
		if err := s.forUpdate(tx).Select("id").Where("id = ?", int64(id)).Take(&row).Error; err != nil {
			return err
		}
		var hasOrders bool
		if err := tx.Raw("SELECT EXISTS (SELECT 1 FROM orders WHERE item_id = ?)", int64(id)).Scan(&hasOrders).Error; err != nil {
			return err
		}
		if hasOrders {
			return &sale.ValidationError{Field: "id", Reason: "item " + id.String() + " has orders and cannot be deleted"}
		}
		return tx.Where("id = ?", int64(id)).Delete(&itemRow{}).Error
	})
	return translate(ctx, "delete item "+id.String(), err)
}

// Restock adds add units to the item's stock_total and stock_left in one
// transaction, at most once per (item, key): a repeat with the same amount
// returns applied=false and changes nothing. The key is required (the
// catalog makes one when a client sends none) and must pass
// sale.ParseRestockKey. It returns ErrInvalid unless 1 <= add <=
// sale.MaxStock, for a bad key, and for a key this item already used with a
// different amount (a client bug that a silent "repeat" would hide); and
// ErrNotFound for an unknown item. On any error nothing is written.
func (s *Store) Restock(ctx context.Context, id sale.ItemID, add int64, key string) (bool, error) {
	if add < 1 || add > sale.MaxStock {
		return false, &sale.ValidationError{Field: "add", Reason: fmt.Sprintf("must be between 1 and %d", sale.MaxStock)}
	}
	if _, err := sale.ParseRestockKey(key); err != nil {
		return false, err
	}
	applied := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := s.now()
		// Insert-or-skip instead of read-then-insert: the primary key
		// decides between two concurrent requests with the same key.
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&restockRow{
			IdempotencyKey: key, ItemID: int64(id), Added: add, CreatedAt: now,
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			var prev restockRow
			if err := tx.Where("item_id = ? AND idempotency_key = ?", int64(id), key).Take(&prev).Error; err != nil {
				return err
			}
			if prev.Added != add {
				return &sale.ValidationError{Field: "Idempotency-Key", Reason: fmt.Sprintf("was already used to add %d units to this item, not %d", prev.Added, add)}
			}
			return nil
		}
		res = tx.Exec("UPDATE items SET stock_total = stock_total + ?, stock_left = stock_left + ?, updated_at = ? WHERE id = ?",
			add, add, now, int64(id))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			// add >= 1 always changes a row that exists, so 0 means no row;
			// returning the error rolls the key back with it.
			return sale.ErrNotFound
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, translate(ctx, "restock item "+id.String(), err)
	}
	return applied, nil
}

// RestockKeys returns every key applied to the item, so a rebuilt ledger
// can refuse them again.
func (s *Store) RestockKeys(ctx context.Context, id sale.ItemID) ([]string, error) {
	var keys []string
	err := s.db.WithContext(ctx).Model(&restockRow{}).Where("item_id = ?", int64(id)).
		Order("created_at, idempotency_key").Pluck("idempotency_key", &keys).Error
	if err != nil {
		return nil, translate(ctx, "restock keys of item "+id.String(), err)
	}
	return keys, nil
}

// CreateItemKeyed stores it as a new item under the admin's create key, not
// yet opened: Item and Items do not see it until MarkItemOpened. A key
// already used returns the item it made, unchanged, and whether that item
// is opened; the unique key decides between two concurrent creates with
// one key. The key must pass sale.ParseRestockKey. Like CreateItem it
// returns ErrInvalid, storing nothing, for an item that breaks the rules.
func (s *Store) CreateItemKeyed(ctx context.Context, it sale.Item, key string) (sale.Item, bool, error) {
	if _, err := sale.ParseRestockKey(key); err != nil {
		return sale.Item{}, false, err
	}
	if err := it.Validate(); err != nil {
		return sale.Item{}, false, err
	}
	if it.StockTotal < 0 || it.StockTotal > sale.MaxStock || it.StockLeft < 0 || it.StockLeft > it.StockTotal {
		return sale.Item{}, false, &sale.ValidationError{Field: "stock", Reason: fmt.Sprintf("must satisfy 0 <= stock_left <= stock_total <= %d", sale.MaxStock)}
	}
	now := s.now()
	it.ID = 0
	it.CreatedAt, it.UpdatedAt = now, now
	it.Version = max(it.Version, 1)
	row := itemFromDomain(it)
	row.CreateKey, row.Opened = &key, false
	var out itemRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Insert-or-skip, then read by key: one statement decides, and the
		// answer is what the key made, whichever request made it.
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row).Error; err != nil {
			return err
		}
		return tx.Where("create_key = ?", key).Take(&out).Error
	})
	if err != nil {
		return sale.Item{}, false, translate(ctx, "create item", err)
	}
	return out.toDomain(), out.Opened, nil
}

// ItemByCreateKey returns the item a keyed create made, opened or not, and
// whether it is opened; ErrNotFound if the key made none. It is how an
// ambiguous create (a commit whose answer was lost) is read back.
func (s *Store) ItemByCreateKey(ctx context.Context, key string) (sale.Item, bool, error) {
	var row itemRow
	if err := s.db.WithContext(ctx).Where("create_key = ?", key).Take(&row).Error; err != nil {
		return sale.Item{}, false, translate(ctx, "item by create key", err)
	}
	return row.toDomain(), row.Opened, nil
}

// MarkItemOpened makes a keyed create's item visible to Item and Items,
// once its stock is live; it returns ErrNotFound for an unknown id and does
// nothing to an item already opened.
func (s *Store) MarkItemOpened(ctx context.Context, id sale.ItemID) error {
	var n int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&itemRow{}).Where("id = ?", int64(id)).Update("opened", true).Error; err != nil {
			return err
		}
		// RowsAffected is 0 for an already opened row on MySQL, so count.
		return tx.Model(&itemRow{}).Where("id = ?", int64(id)).Count(&n).Error
	})
	if err == nil && n == 0 {
		err = sale.ErrNotFound
	}
	return translate(ctx, "open item "+id.String(), err)
}
