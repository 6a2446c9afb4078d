// WRONG ON PURPOSE: lacks the delayed second delete; the real one is the
// catalog's delayed double delete (app/catalog/catalog.go, Update and
// invalidateLater; app/broadcast/broadcast.go, InvalidateLater and RunTask).

package naive

import (
	"context"

	"seckill/domain/sale"
)

// invalidator is the catalog's cache port (catalog.Invalidator).
type invalidator interface {
	Invalidate(ctx context.Context, id sale.ItemID) error
	InvalidateLater(ctx context.Context, id sale.ItemID) error
}

// SingleDeleteCaches deletes cached copies once, before the database
// update, and never again: a reader that loaded the old row just before
// the update and writes it back just after the delete leaves the old price
// in the cache for the cache's whole TTL.
type SingleDeleteCaches struct {
	next invalidator
}

// NewSingleDeleteCaches returns the naive invalidator over the production one.
func NewSingleDeleteCaches(real invalidator) *SingleDeleteCaches {
	return &SingleDeleteCaches{next: real}
}

// Invalidate is the production first delete.
func (c *SingleDeleteCaches) Invalidate(ctx context.Context, id sale.ItemID) error {
	return c.next.Invalidate(ctx, id)
}

// InvalidateLater does nothing: "I already deleted it."
func (c *SingleDeleteCaches) InvalidateLater(context.Context, sale.ItemID) error { return nil }
