package bootstrap

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"seckill/app/catalog"
	"seckill/app/purchase"
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
	// WrapOrderBook, if set, wraps the order book the worker confirms its
	// batches in (lab hot-row).
	WrapOrderBook func(book sale.OrderBook) sale.OrderBook
	// Caches, if set, wraps the cache invalidator the catalog's admin
	// writes use (lab stale-cache).
	Caches func(caches catalog.Invalidator) catalog.Invalidator

	// Labs 6 and on add their fields here.

	// Queue, if set, builds what the purchase hands accepted orders to, in
	// place of the outbox dispatcher, from the bare Kafka publisher (lab
	// lost-orders). The outbox relay then does not run: a system that
	// publishes straight to Kafka has no outbox to relay from.
	Queue func(kafka OrderPublisher) OrderQueue
	// WrapPublisher, if set, wraps the publisher the dispatcher and the
	// relay use, so a lab can inject a fault of the delivery itself (lab
	// duplicate-orders: a producer whose retries deliver a batch twice).
	WrapPublisher func(OrderPublisher) OrderPublisher
	// OrderBook, if set, builds the worker's order book on the database's
	// connection, in place of the store's idempotent Confirm (lab
	// duplicate-orders).
	OrderBook func(db *gorm.DB) OrderBook
	// PurchaseShield, if set, replaces the shield on the purchase path (lab
	// hot-key). The shield itself still serves the cluster's flags.
	PurchaseShield purchase.Shield
	// PaymentWindow, if set, replaces the lifecycle's enforcement of the
	// payment window: scheduling each confirmed order's expiry, running the
	// expiry tasks, and the lifecycle's background pass (the expiry scan,
	// and with it the return sweep) (lab unpaid-hold). Pay and cancel stay
	// the lifecycle's, and give their units back at once.
	PaymentWindow PaymentWindow
	// PurchaseLedger, if set, builds the stock ledger the purchase path
	// uses from the bare Redis ledger, in place of the guarded one with its
	// circuit breaker and call deadline (lab breaker).
	PurchaseLedger func(bare PurchaseLedger) PurchaseLedger
}

// OrderPublisher sends accepted orders to the order queue (Kafka).
type OrderPublisher interface {
	Publish(ctx context.Context, orders ...sale.Order) error
}

// OrderQueue takes an accepted order from the purchase, without waiting.
type OrderQueue interface {
	Enqueue(o sale.Order)
}

// OrderBook is the worker's database side: it decides queued orders.
type OrderBook interface {
	Confirm(ctx context.Context, orders []sale.Order) (inserted int, fates map[sale.OrderID]sale.Fate, err error)
	Fail(ctx context.Context, orders []sale.Order, reason string) (map[sale.OrderID]sale.Fate, error)
}

// PaymentWindow enforces the payment window of confirmed orders;
// *lifecycle.Service implements it.
type PaymentWindow interface {
	ScheduleExpiry(ctx context.Context, deadlines map[sale.OrderID]time.Time)
	RunTask(ctx context.Context, task string) (ok bool, err error)
	Run(ctx context.Context)
}

// PurchaseLedger is the stock ledger as the purchase path uses it.
type PurchaseLedger interface {
	Reserve(ctx context.Context, o sale.Order) (sale.Reservation, error)
	Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error)
}

// paymentWindow is the lifecycle, unless a lab replaced its expiry.
func (m *Main) paymentWindow() PaymentWindow {
	if m.Overrides.PaymentWindow != nil {
		return m.Overrides.PaymentWindow
	}
	return m.Lifecycle
}

// reserver is the stock ledger purchases use: the guarded production one
// unless a lab swapped it.
func (o Overrides) reserver(guarded, bare sale.StockLedger, rdb redis.UniversalClient, prefix string) sale.StockLedger {
	if o.StockLedger == nil {
		return guarded
	}
	return o.StockLedger(bare, rdb, prefix)
}

// wrapOrderBook is the production order book, wrapped if a lab asked.
func (o Overrides) wrapOrderBook(book sale.OrderBook) sale.OrderBook {
	if o.WrapOrderBook == nil {
		return book
	}
	return o.WrapOrderBook(book)
}

// caches is the invalidator the catalog uses.
func (o Overrides) caches(c catalog.Invalidator) catalog.Invalidator {
	if o.Caches == nil {
		return c
	}
	return o.Caches(c)
}
