package breaker

import (
	"context"

	"seckill/domain/sale"
)

// StoreBackend is what Store decorates: the database calls made on a
// request's path (item reads under the caches, admin writes, order status,
// the stats' counts).
type StoreBackend interface {
	sale.Catalog
	Order(ctx context.Context, id sale.OrderID) (sale.Order, error)
	OrdersOf(ctx context.Context, item sale.ItemID, user sale.UserID) ([]sale.Order, error)
	CountStatuses(ctx context.Context, id sale.ItemID) (map[sale.OrderStatus]int64, error)
}

var _ sale.Catalog = (*Store)(nil)

// Store is the database behind a breaker, each call bounded by the call
// timeout through its ctx (the drivers end a query when its ctx ends, so
// nothing is left running). The worker, the relay, the reconciler and the
// lifecycle keep the bare store: their writes decide orders' fates and
// they retry them themselves.
type Store struct {
	next StoreBackend
	b    *Breaker
}

// NewStore returns next guarded by b.
func NewStore(next StoreBackend, b *Breaker) *Store { return &Store{next: next, b: b} }

// Item is next.Item within the call timeout.
func (s *Store) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	return do(s.b, ctx, func(ctx context.Context) (sale.Item, error) { return s.next.Item(ctx, id) })
}

// Items is next.Items within the call timeout.
func (s *Store) Items(ctx context.Context) ([]sale.Item, error) {
	return do(s.b, ctx, s.next.Items)
}

// CreateItem is next.CreateItem within the call timeout. A transaction the
// deadline ends is rolled back, so a refused create wrote nothing.
func (s *Store) CreateItem(ctx context.Context, it sale.Item) (sale.Item, error) {
	return do(s.b, ctx, func(ctx context.Context) (sale.Item, error) { return s.next.CreateItem(ctx, it) })
}

// UpdateItem is next.UpdateItem within the call timeout; fn's own errors
// are answers, not failures.
func (s *Store) UpdateItem(ctx context.Context, id sale.ItemID, fn func(*sale.Item) error) (sale.Item, error) {
	return do(s.b, ctx, func(ctx context.Context) (sale.Item, error) { return s.next.UpdateItem(ctx, id, fn) })
}

// DeleteItem is next.DeleteItem behind the breaker. It is the undo of a
// create whose ledger step failed, so it is not refused by an open breaker
// that some other call opened: it runs whenever the database answers.
func (s *Store) DeleteItem(ctx context.Context, id sale.ItemID) error {
	cctx, cancel := s.b.deadline(ctx)
	defer cancel()
	return s.next.DeleteItem(cctx, id)
}

// Restock is next.Restock within the call timeout.
func (s *Store) Restock(ctx context.Context, id sale.ItemID, add int64, key string) (bool, error) {
	return do(s.b, ctx, func(ctx context.Context) (bool, error) { return s.next.Restock(ctx, id, add, key) })
}

// Order is next.Order within the call timeout.
func (s *Store) Order(ctx context.Context, id sale.OrderID) (sale.Order, error) {
	return do(s.b, ctx, func(ctx context.Context) (sale.Order, error) { return s.next.Order(ctx, id) })
}

// OrdersOf is next.OrdersOf within the call timeout.
func (s *Store) OrdersOf(ctx context.Context, item sale.ItemID, user sale.UserID) ([]sale.Order, error) {
	return do(s.b, ctx, func(ctx context.Context) ([]sale.Order, error) { return s.next.OrdersOf(ctx, item, user) })
}

// CountStatuses is next.CountStatuses within the call timeout.
func (s *Store) CountStatuses(ctx context.Context, id sale.ItemID) (map[sale.OrderStatus]int64, error) {
	return do(s.b, ctx, func(ctx context.Context) (map[sale.OrderStatus]int64, error) { return s.next.CountStatuses(ctx, id) })
}
