// WRONG ON PURPOSE: lacks the atomic check-and-deduct; the real one is the
// reserve Lua script (infra/redisstock/lua/reserve.lua, sent by
// infra/redisstock/reserve.go).

package naive

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// productionLedger is the production ledger's methods the naive one keeps:
// the stock ledger port and order lookups.
type productionLedger interface {
	sale.StockLedger
	Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error)
}

// CheckThenDecrLedger is the stock ledger a newcomer writes: read the stock,
// compare it with zero in Go, then decrement, as three separate Redis
// commands (HGET, the comparison, HINCRBY -1 on the sale hash's stock
// field: GET and DECR on a hash field). Between the read and the decrement
// any number of other buyers read the same last units, so it sells more
// than there is. Every other method is the production ledger's.
type CheckThenDecrLedger struct {
	productionLedger
	rdb redis.UniversalClient
	// saleKey names the hash whose "stock" field is the live stock.
	saleKey func(sale.ItemID) string
	// hold runs between the compare and the decrement (nil: not at all).
	hold func(context.Context)
}

// NewCheckThenDecrLedger returns the naive ledger over the production one;
// saleKey names the production ledger's sale hash of an item. hold, if not
// nil, runs between the compare and the decrement: the lab widens the
// window there until every buyer has read the stock, so the race this
// ledger loses is lost on every run, not only when the timing is unlucky.
func NewCheckThenDecrLedger(real productionLedger, rdb redis.UniversalClient, saleKey func(sale.ItemID) string, hold func(context.Context)) *CheckThenDecrLedger {
	return &CheckThenDecrLedger{productionLedger: real, rdb: rdb, saleKey: saleKey, hold: hold}
}

// Reserve checks, then decrements: the race is between the two commands.
// It keeps no record of the order and no one-order-per-user rule; the lab
// gives every buyer a fresh user id, so only the stock check matters.
func (l *CheckThenDecrLedger) Reserve(ctx context.Context, o sale.Order) (sale.Reservation, error) {
	key := l.saleKey(o.ItemID)
	stock, err := l.rdb.HGet(ctx, key, "stock").Int64() // 1. GET
	if errors.Is(err, redis.Nil) {
		return sale.Reservation{Outcome: sale.OutcomeNotFound}, nil
	}
	if err != nil {
		return sale.Reservation{}, fmt.Errorf("naive ledger: read stock: %w", err)
	}
	if stock <= 0 { // 2. compare, in Go, while others read the same figure
		return sale.Reservation{Outcome: sale.OutcomeSoldOut, StockLeft: stock}, nil
	}
	if l.hold != nil {
		l.hold(ctx) // the window between the check and the act, widened
	}
	left, err := l.rdb.HIncrBy(ctx, key, "stock", -1).Result() // 3. DECR
	if err != nil {
		return sale.Reservation{}, fmt.Errorf("naive ledger: decrement stock: %w", err)
	}
	return sale.Reservation{Outcome: sale.Accepted, StockLeft: left}, nil
}
