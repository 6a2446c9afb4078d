package bootstrap

import (
	"github.com/redis/go-redis/v9"

	"seckill/app/catalog"
	"seckill/domain/sale"
)

// Overrides swaps single components for the workshop labs (app/lab), which
// plug in the naive variants from app/lab/naive. Production (serve, worker,
// all) leaves it zero, and a zero field changes nothing. bootstrap never
// imports the naive package; the lab passes the component in, behind the
// same port the production one implements.
type Overrides struct {
	// Labs 1-5 add their fields here.

	// StockLedger, if set, builds the stock ledger purchases reserve from,
	// given the production ledger, the Redis client and the key prefix
	// (lab oversell).
	StockLedger func(ledger sale.StockLedger, rdb redis.UniversalClient, prefix string) sale.StockLedger
	// OrderBook, if set, wraps the order book the worker confirms its
	// batches in (lab hot-row).
	OrderBook func(book sale.OrderBook) sale.OrderBook
	// Caches, if set, wraps the cache invalidator the catalog's admin
	// writes use (lab stale-cache).
	Caches func(caches catalog.Invalidator) catalog.Invalidator

	// Labs 6 and on add their fields here.
}

// reserver is the stock ledger purchases use: the guarded production one
// unless a lab swapped it.
func (o Overrides) reserver(guarded, bare sale.StockLedger, rdb redis.UniversalClient, prefix string) sale.StockLedger {
	if o.StockLedger == nil {
		return guarded
	}
	return o.StockLedger(bare, rdb, prefix)
}

// orderBook is the order book the worker confirms in.
func (o Overrides) orderBook(book sale.OrderBook) sale.OrderBook {
	if o.OrderBook == nil {
		return book
	}
	return o.OrderBook(book)
}

// caches is the invalidator the catalog uses.
func (o Overrides) caches(c catalog.Invalidator) catalog.Invalidator {
	if o.Caches == nil {
		return c
	}
	return o.Caches(c)
}
