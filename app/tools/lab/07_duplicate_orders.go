package lab

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/tools/lab/naive"
	"seckill/domain/sale"
)

// Lab 7: idempotent consumers. Kafka delivers at least once, and so does
// every queue: here the producer's retry after a lost ack sends every batch
// a second time. The protected worker's order book fences on the order id;
// the naive one inserts whatever it is handed.
func init() {
	Register(Lab{
		Number:  7,
		Name:    "duplicate-orders",
		Summary: "an order book with no unique key on the order id, while every order is delivered twice: duplicate orders",
		Metric:  "duplicate_orders",
		Better:  LowerIsBetter,
		Run:     runDuplicateOrders,
	})
}

// resendDelay is how long after a batch's first delivery its second one
// comes at the earliest: a producer that waited that long for an ack, gave
// up and sent the batch again (the broker had stored the first one). The
// copy also waits until the worker has recorded the first one (at most
// resendWait), so the two never share a batch (the worker drops a
// repeated id within one) however slow the machine: every copy reaches
// the book as a redelivery, and the figure is the same on every run.
const (
	resendDelay = 400 * time.Millisecond
	resendWait  = 10 * time.Second
)

// deliverTwice is the lab's fault: every batch the dispatcher or the relay
// publishes reaches the broker twice, the second time once the first copy
// is recorded.
type deliverTwice struct {
	next    bootstrap.OrderPublisher
	wg      sync.WaitGroup
	resent  atomic.Int64
	pending atomic.Int64
	// recorded reports whether every order of a batch has a row; the lab
	// sets it once the system is up, before any purchase.
	recorded func(ctx context.Context, orders []sale.Order) bool
}

func (d *deliverTwice) Publish(ctx context.Context, orders ...sale.Order) error {
	if err := d.next.Publish(ctx, orders...); err != nil {
		return err
	}
	batch := append([]sale.Order(nil), orders...)
	d.pending.Add(1)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer d.pending.Add(-1)
		time.Sleep(resendDelay)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resendWait)
		defer cancel()
		waitUntil(ctx, resendWait, 20*time.Millisecond, func() bool { return d.recorded(ctx, batch) })
		if d.next.Publish(ctx, batch...) == nil {
			d.resent.Add(int64(len(batch)))
		}
	}()
	return nil
}

// runDuplicateOrders delivers every published batch twice and counts the
// order rows recorded more than once.
func runDuplicateOrders(ctx context.Context, env *Env, mode Mode) (Result, error) {
	fault := &deliverTwice{}
	swap, table := duplicateOrdersSwap(mode, fault)
	sys, c, done, err := bootLab(ctx, env, duplicateOrdersTweak, swap)
	if err != nil {
		return Result{}, err
	}
	defer done()
	defer fault.wg.Wait() // before the system closes its publisher
	db := sys.Store().DB()
	fault.recorded = recordedIn(db, table)

	// Twice the units there are buyers: the naive book's second rows take
	// real units and still stay within the database's stock_left >= 0 check.
	n := env.Scaled(200, 40)
	stock := 2 * n
	item, err := c.CreateSale(ctx, "duplicate-orders", stock, 0)
	if err != nil {
		return Result{}, err
	}
	tokens, err := c.LoginAll(ctx, "dup", n)
	if err != nil {
		return Result{}, err
	}
	env.Printf("%d buyers, %d units; every published batch is delivered twice", n, stock)
	accepted := countAccepted(c.Spike(ctx, item, tokens, 32))
	if accepted == 0 {
		return Result{}, fmt.Errorf("no purchase was accepted")
	}

	book := orderRows{db: db, table: table, item: item}
	book.waitStill(ctx, accepted, fault)
	rows, distinct := book.count(ctx)
	users, stockLeft := book.usersWithTwo(ctx), book.stockLeft(ctx)
	return Result{Metric: float64(rows - distinct), Figures: []Figure{
		{"accepted (202)", strconv.Itoa(accepted)},
		{"orders delivered twice", strconv.FormatInt(fault.resent.Load(), 10)},
		{"order rows", strconv.FormatInt(rows, 10)},
		{"distinct orders", strconv.FormatInt(distinct, 10)},
		{"buyers holding two orders", strconv.FormatInt(users, 10)},
		{"stock_left in the database", strconv.FormatInt(stockLeft, 10)},
		{"stock_left it should be", strconv.Itoa(stock - accepted)},
	}}, nil
}

// duplicateOrdersSwap builds the outbox over fault in both runs, and
// puts the naive order book into the unprotected one; table is the table
// the run's book writes.
func duplicateOrdersSwap(mode Mode, fault *deliverTwice) (swap func(*bootstrap.Parts), table string) {
	table = "orders"
	if mode == Unprotected {
		table = naive.OrdersTable
	}
	return func(p *bootstrap.Parts) {
		fault.next = p.Publisher()
		p.OrderQueue, p.Relay = p.Outbox(fault)
		if mode == Unprotected {
			p.OrderBook = naive.NewOrderBook(p.Store().DB())
		}
	}, table
}

// duplicateOrdersTweak keeps the reconciler out of the run: the naive
// book leaves the database's stock and orders out of step with the
// ledger, and the reconciler need not chase that here.
func duplicateOrdersTweak(cfg *config.Config) {
	cfg.ReconcileEvery = time.Hour
	patientRedis(cfg)
}

// recordedIn reports whether every order of a batch has a row in table.
func recordedIn(db *gorm.DB, table string) func(ctx context.Context, orders []sale.Order) bool {
	return func(ctx context.Context, orders []sale.Order) bool {
		ids := make([]string, len(orders))
		for i, o := range orders {
			ids[i] = string(o.ID)
		}
		var n int64
		err := db.WithContext(ctx).Raw("SELECT COUNT(DISTINCT order_id) FROM "+table+" WHERE order_id IN ?", ids).Scan(&n).Error
		return err == nil && n >= int64(len(ids))
	}
}

// orderRows reads the lab's item's rows in the run's order table.
type orderRows struct {
	db    *gorm.DB
	table string
	item  int64
}

// count is the item's order rows, and its distinct order ids among them.
func (o orderRows) count(ctx context.Context) (rows, distinct int64) {
	var r struct{ Rows, Distinct int64 }
	o.db.WithContext(ctx).Raw("SELECT COUNT(*) AS `rows`, COUNT(DISTINCT order_id) AS `distinct` FROM "+o.table+" WHERE item_id = ?", o.item).Scan(&r)
	return r.Rows, r.Distinct
}

// waitStill returns once every one of accepted orders is recorded once,
// every second delivery of fault is sent, and then the rows stand still:
// the worker has seen everything (or once each wait's bound has passed).
func (o orderRows) waitStill(ctx context.Context, accepted int, fault *deliverTwice) {
	waitUntil(ctx, 15*time.Second, 50*time.Millisecond, func() bool {
		_, d := o.count(ctx)
		return d >= int64(accepted)
	})
	waitUntil(ctx, 10*time.Second, 50*time.Millisecond, func() bool { return fault.pending.Load() == 0 })
	lastRows, since := int64(-1), time.Now()
	waitUntil(ctx, 10*time.Second, 100*time.Millisecond, func() bool {
		r, _ := o.count(ctx)
		if r != lastRows {
			lastRows, since = r, time.Now()
		}
		return time.Since(since) > time.Second
	})
}

// usersWithTwo counts the buyers holding more than one confirmed order
// for the item.
func (o orderRows) usersWithTwo(ctx context.Context) int64 {
	var users struct{ N int64 }
	o.db.WithContext(ctx).Raw("SELECT COUNT(*) AS n FROM (SELECT user_id FROM "+o.table+" WHERE item_id = ? AND status = ? GROUP BY user_id HAVING COUNT(*) > 1) t",
		o.item, string(sale.OrderConfirmed)).Scan(&users)
	return users.N
}

// stockLeft is the item's stock_left in the database.
func (o orderRows) stockLeft(ctx context.Context) int64 {
	var stockLeft struct{ StockLeft int64 }
	o.db.WithContext(ctx).Raw("SELECT stock_left FROM items WHERE id = ?", o.item).Scan(&stockLeft)
	return stockLeft.StockLeft
}
