package lab

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/tools/lab/labhttp"
	"seckill/app/tools/lab/naive"
)

// Lab 9: the payment window. A confirmed order holds a unit until its buyer
// pays. Some never do; without a deadline their units are gone for the
// whole sale, and buyers who would pay are told "sold out".
func init() {
	Register(Lab{
		Number:  9,
		Name:    "unpaid-hold",
		Summary: "no payment window, while half the buyers never pay: units held by non-payers at the end",
		Metric:  "units_held_by_non_payers",
		Better:  LowerIsBetter,
		Run:     runUnpaidHold,
	})
}

// labPaymentWindow is the lab's --payment-window (the production default is
// 15 minutes; the shortest allowed is 1s).
const labPaymentWindow = time.Second

// runUnpaidHold sells every unit to a first wave of which half never pay,
// lets the payment window pass, and counts the units the non-payers still
// hold after a second wave of paying buyers.
func runUnpaidHold(ctx context.Context, env *Env, mode Mode) (Result, error) {
	var swap func(*bootstrap.Parts)
	if mode == Unprotected {
		swap = func(p *bootstrap.Parts) { p.PaymentWindow = naive.NoPaymentWindow{} }
	}
	_, c, done, err := bootLab(ctx, env, func(cfg *config.Config) {
		cfg.PaymentWindow = labPaymentWindow
		patientRedis(cfg)
	}, swap)
	if err != nil {
		return Result{}, err
	}
	defer done()

	stock := env.Scaled(60, 10)
	item, err := c.CreateSale(ctx, "unpaid-hold", stock, 0)
	if err != nil {
		return Result{}, err
	}
	tokens, err := c.LoginAll(ctx, "unpaid", 2*stock)
	if err != nil {
		return Result{}, err
	}
	first, second := tokens[:stock], tokens[stock:]

	env.Printf("wave 1: %d buyers take all %d units; half pay, half never come back", stock, stock)
	wave1 := c.Spike(ctx, item, first, 32)
	ids1, err := waitConfirmed(ctx, c, first, wave1)
	if err != nil {
		return Result{}, err
	}
	payers, nonPayers := payEvenBuyers(ctx, c, first, ids1)
	env.Printf("the payment window (%s) passes", labPaymentWindow)
	waitPastPaymentWindow(ctx, c, item, nonPayers)

	env.Printf("wave 2: %d more buyers, who all pay", len(second))
	wave2 := c.Spike(ctx, item, second, 32)
	ids2, err := waitConfirmed(ctx, c, second, wave2)
	if err != nil {
		return Result{}, err
	}
	paid2, soldOut2 := payEveryBuyer(ctx, c, second, ids2, wave2)
	held := heldByNonPayers(ctx, c, first, ids1)
	st, err := c.Stats(ctx, item)
	if err != nil {
		return Result{}, err
	}
	return Result{Metric: float64(held), Figures: []Figure{
		{"units", strconv.Itoa(stock)},
		{"wave 1: paid", strconv.Itoa(payers)},
		{"wave 1: never paid", strconv.Itoa(nonPayers)},
		{"expired (units back on sale)", strconv.FormatInt(st.Num("orders_expired"), 10)},
		{"wave 2: bought and paid", strconv.Itoa(paid2)},
		{"wave 2: told sold_out", strconv.Itoa(soldOut2)},
		{"units sold to payers", strconv.Itoa(payers + paid2)},
		{"stock left in Redis", strconv.FormatInt(st.Num("stock_left_redis"), 10)},
	}}, nil
}

// payEvenBuyers pays the orders (ids, "" for none) of the even-numbered
// buyers, and returns how many paid and how many of the odd-numbered
// holders of an order never will.
func payEvenBuyers(ctx context.Context, c *labhttp.Client, tokens, ids []string) (payers, nonPayers int) {
	for i := range tokens {
		if ids[i] == "" {
			continue
		}
		if i%2 == 0 {
			if r := c.Pay(ctx, tokens[i], ids[i]); r.Status == 200 {
				payers++
			}
		} else {
			nonPayers++
		}
	}
	return payers, nonPayers
}

// waitPastPaymentWindow sleeps past the window, then gives the protected
// system up to 4 s to expire the nonPayers' orders and put their units
// back on sale.
func waitPastPaymentWindow(ctx context.Context, c *labhttp.Client, item int64, nonPayers int) {
	sleepCtx(ctx, labPaymentWindow+500*time.Millisecond)
	waitUntil(ctx, 4*time.Second, 100*time.Millisecond, func() bool {
		st, err := c.Stats(ctx, item)
		return err == nil && st.Num("orders_expired") >= int64(nonPayers) && st.Num("stock_left_redis") >= int64(nonPayers)
	})
}

// payEveryBuyer pays every order (ids, "" for none) of the wave, and
// returns how many were paid and how many buyers were told sold_out.
func payEveryBuyer(ctx context.Context, c *labhttp.Client, tokens, ids []string, wave []labhttp.Attempt) (paid, soldOut int) {
	for i := range tokens {
		if ids[i] != "" {
			if r := c.Pay(ctx, tokens[i], ids[i]); r.Status == 200 {
				paid++
			}
		} else if wave[i].Code == "sold_out" {
			soldOut++
		}
	}
	return paid, soldOut
}

// heldByNonPayers counts the units still held by the first wave's buyers
// who never paid (the odd-numbered ones): their orders are still
// confirmed.
func heldByNonPayers(ctx context.Context, c *labhttp.Client, tokens, ids []string) int {
	held := 0
	for i := range tokens {
		if ids[i] != "" && i%2 == 1 && c.Order(ctx, tokens[i], ids[i]).Str("status") == "confirmed" {
			held++
		}
	}
	return held
}

// waitConfirmed waits until every accepted attempt's order is confirmed and
// returns the order ids by buyer ("" for a buyer who got no 202).
func waitConfirmed(ctx context.Context, c *labhttp.Client, tokens []string, as []labhttp.Attempt) ([]string, error) {
	ids := make([]string, len(as))
	for i, a := range as {
		if a.Status == 202 {
			ids[i] = a.OrderID
		}
	}
	for i, id := range ids {
		if id == "" {
			continue
		}
		ok := waitUntil(ctx, 15*time.Second, 50*time.Millisecond, func() bool {
			return c.Order(ctx, tokens[i], id).Str("status") != "queued"
		})
		if !ok {
			return nil, fmt.Errorf("order %s not decided within 15s", id)
		}
	}
	return ids, nil
}
