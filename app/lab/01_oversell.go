package lab

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/app/bootstrap"
	"seckill/app/lab/naive"
	"seckill/domain/sale"
	"seckill/infra/redisstock"
)

// The oversell lab: a crowd four times the stock buys through the HTTP
// API at once. Unprotected, the ledger reads the stock, compares, and
// decrements as three commands (naive.CheckThenDecrLedger); protected, the
// reserve script does all three atomically.
func init() {
	Register(Lab{
		Number:  1,
		Name:    "oversell",
		Summary: "check-then-decrement in Redis (GET, compare, DECR) instead of the Lua script: units sold beyond stock",
		Metric:  "oversold_units",
		Better:  LowerIsBetter,
		Run:     runOversell,
	})
}

// raceRounds is how many sales the oversell lab runs at most per mode.
const raceRounds = 3

func runOversell(ctx context.Context, env *Env, mode Mode) (Result, error) {
	var ov bootstrap.Overrides
	if mode == Unprotected {
		ov.StockLedger = func(real sale.StockLedger, rdb redis.UniversalClient, prefix string) sale.StockLedger {
			return naive.NewCheckThenDecrLedger(real, rdb, func(id sale.ItemID) string {
				return redisstock.KeyPatterns(prefix, id)[0] // the sale hash
			})
		}
	}
	sys, err := env.Start(ctx, nil, ov)
	if err != nil {
		return Result{}, err
	}
	defer sys.Close()

	stock := env.Scaled(100, 20)
	buyers := 4 * stock
	sh := newShop(sys.URL(), buyers)
	defer sh.close()
	tokens, err := sh.loginAll(ctx, fmt.Sprintf("oversell-%s-", mode), buyers)
	if err != nil {
		return Result{}, err
	}
	// A race is won or lost by timing. On a machine busy with other work
	// the crowd can arrive one by one and the naive ledger gets lucky, so
	// each mode gets up to raceRounds sales and stops at the first that
	// oversells: one that never does, in three tries, is the reserve
	// script's point.
	var (
		it       sale.Item
		counts   map[int]int
		accepted int
		st       map[sale.OrderStatus]int64
		round    int
	)
	for round = 1; round <= raceRounds; round++ {
		it, err = openSale(ctx, sys, fmt.Sprintf("Lab 1: oversell (round %d)", round), stock, 1999)
		if err != nil {
			return Result{}, err
		}
		env.Printf("round %d: %d buyers, %d units: all buy at once", round, buyers, stock)
		counts = sh.buyAll(ctx, it.ID, tokens, 0)
		accepted = counts[http.StatusAccepted]

		// Every 202 travels to the database; wait until each is decided,
		// so the table shows what became of the promises.
		decided := waitFor(ctx, 20*time.Second, func() bool {
			st, err = sys.Store().CountStatuses(ctx, it.ID)
			return err == nil && st[sale.OrderConfirmed]+st[sale.OrderFailed] >= int64(accepted)
		})
		if err != nil {
			return Result{}, err
		}
		if !decided {
			env.Printf("not every accepted order was decided within 20s; the table shows the figures so far")
		}
		if accepted > stock {
			break
		}
		if round < raceRounds {
			env.Printf("round %d oversold nothing; another sale", round)
		}
	}
	round = min(round, raceRounds)
	left, err := sys.Ledger().StockLeft(ctx, it.ID)
	if err != nil {
		return Result{}, err
	}
	oversold := max(accepted-stock, 0)
	return Result{
		Metric: float64(oversold),
		Figures: []Figure{
			{"sales run (up to 3, until one oversells)", itoa(int64(round))},
			{"units on sale", itoa(int64(stock))},
			{"buyers", itoa(int64(buyers))},
			{"told 202 accepted", itoa(int64(accepted))},
			{"told 409 sold out", itoa(int64(counts[http.StatusConflict]))},
			{"other answers", itoa(int64(buyers - accepted - counts[http.StatusConflict]))},
			{"confirmed by the database", itoa(st[sale.OrderConfirmed])},
			{"failed later by the database's stock guard", itoa(st[sale.OrderFailed])},
			{"Redis stock after the sale", itoa(left[it.ID])},
		},
	}, nil
}
