package bootstrap

import (
	"context"

	"seckill/domain/sale"
)

// Hooks are test seams into the wiring.
type Hooks struct {
	// AfterDBRead, if set, runs after every item read from the database and
	// before the value travels up the cache chain; a test can count reads
	// or hold one to open a race window.
	AfterDBRead func(sale.Item)
}

// hookedReader calls a hook after each database read of an item.
type hookedReader struct {
	next sale.ItemReader
	hook func(sale.Item)
}

func (h hookedReader) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	it, err := h.next.Item(ctx, id)
	if err == nil {
		h.hook(it)
	}
	return it, err
}

func (h hookedReader) Items(ctx context.Context) ([]sale.Item, error) { return h.next.Items(ctx) }
