// WRONG ON PURPOSE: lacks batching; the real one is the worker's batched
// Confirm, many orders per transaction (app/worker/worker.go,
// infra/mysqlstore/orders.go).

package naive

import (
	"context"

	"seckill/domain/sale"
)

// OneOrderPerTxBook is the order book a newcomer's worker uses: every order
// is its own transaction, and every transaction locks and updates the same
// item row (stock_left), so a hot item's orders queue behind one row lock
// and one commit each. The SQL is the production book's; only the
// transaction size differs. Every other method is the production book's.
type OneOrderPerTxBook struct {
	sale.OrderBook
}

// NewOneOrderPerTxBook returns the naive book over the production one.
func NewOneOrderPerTxBook(real sale.OrderBook) *OneOrderPerTxBook {
	return &OneOrderPerTxBook{OrderBook: real}
}

// Confirm confirms the orders one transaction at a time. On an error the
// orders before it stay confirmed; the worker retries the whole batch, and
// Confirm is idempotent, so nothing is confirmed twice.
func (b *OneOrderPerTxBook) Confirm(ctx context.Context, orders []sale.Order) (int, map[sale.OrderID]sale.Fate, error) {
	total := 0
	fates := make(map[sale.OrderID]sale.Fate, len(orders))
	for _, o := range orders {
		n, f, err := b.OrderBook.Confirm(ctx, []sale.Order{o})
		if err != nil {
			return 0, nil, err
		}
		total += n
		fates[o.ID] = f[o.ID]
	}
	return total, fates, nil
}
