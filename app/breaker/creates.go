package breaker

import (
	"context"

	"seckill/domain/sale"
)

// CreatesBackend is the database side of an idempotent admin create, as
// mysqlstore implements it.
type CreatesBackend interface {
	CreateItemKeyed(ctx context.Context, it sale.Item, key string) (sale.Item, bool, error)
	ItemByCreateKey(ctx context.Context, key string) (sale.Item, bool, error)
	MarkItemOpened(ctx context.Context, id sale.ItemID) error
}

// Creates is a CreatesBackend behind the database breaker, each call bounded
// by the call timeout.
type Creates struct {
	next CreatesBackend
	b    *Breaker
}

// NewCreates returns next guarded by b.
func NewCreates(next CreatesBackend, b *Breaker) *Creates { return &Creates{next: next, b: b} }

type opened struct {
	it sale.Item
	ok bool
}

// CreateItemKeyed is next.CreateItemKeyed within the call timeout.
func (c *Creates) CreateItemKeyed(ctx context.Context, it sale.Item, key string) (sale.Item, bool, error) {
	r, err := do(c.b, ctx, func(ctx context.Context) (opened, error) {
		it, ok, err := c.next.CreateItemKeyed(ctx, it, key)
		return opened{it, ok}, err
	})
	return r.it, r.ok, err
}

// ItemByCreateKey is next.ItemByCreateKey. Like DeleteItem it reads back an
// ambiguous create, so an open breaker does not refuse it: it runs whenever
// the database answers, within the call timeout.
func (c *Creates) ItemByCreateKey(ctx context.Context, key string) (sale.Item, bool, error) {
	cctx, cancel := c.b.deadline(ctx)
	defer cancel()
	return c.next.ItemByCreateKey(cctx, key)
}

// MarkItemOpened is next.MarkItemOpened within the call timeout.
func (c *Creates) MarkItemOpened(ctx context.Context, id sale.ItemID) error {
	_, err := do(c.b, ctx, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, c.next.MarkItemOpened(ctx, id)
	})
	return err
}
