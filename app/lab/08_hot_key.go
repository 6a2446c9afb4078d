package lab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/lab/labhttp"
	"seckill/app/lab/naive"
	"seckill/app/shield"
)

// Lab 8: the hot key. During a spike nearly every purchase is doomed; the
// protected path refuses most of them in this process (the item's token
// bucket, then the local sold-out flag), so Redis sees a trickle. The
// naive path sends every one of them to the single key that holds the
// item's stock.
func init() {
	Register(Lab{
		Number:  8,
		Name:    "hot-key",
		Summary: "no hot-key limiter and no local sold-out flag during a spike: Redis calls per purchase (and p99)",
		Metric:  "redis_calls_per_purchase",
		Better:  LowerIsBetter,
		Run:     runHotKey,
	})
}

// hotKeyRate is the lab's --item-rate: the Redis budget of one hot item on
// one instance. Production's default (20,000/s) is sized for a real Redis;
// at a laptop's spike it would never bite, so the lab sets what this
// machine's spike exceeds.
const hotKeyRate, hotKeyBurst = 500, 50

func runHotKey(ctx context.Context, env *Env, mode Mode) (Result, error) {
	tweak := func(cfg *config.Config) {
		cfg.ItemRate, cfg.ItemBurst = hotKeyRate, hotKeyBurst
		patientRedis(cfg)
	}
	var ov bootstrap.Overrides
	if mode == Unprotected {
		cfg := env.Base
		tweak(&cfg)
		// The naive guard keeps a shield's in-flight bound and user buckets,
		// built with the system's own settings, so that only the hot-key
		// protections are off.
		ov.PurchaseGuard = naive.NewHotKeyGuard(shield.New(shield.Options{
			ItemRate: cfg.ItemRate, ItemBurst: cfg.ItemBurst, UserRate: cfg.UserRate, UserBurst: cfg.UserBurst,
			MaxInFlight: cfg.MaxInFlight, SoldOutTTL: cfg.SoldOutTTL,
		}))
	}
	sys, c, done, err := bootLab(ctx, env, tweak, ov)
	if err != nil {
		return Result{}, err
	}
	defer done()

	stock := env.Scaled(200, 20)
	buyers := env.Scaled(2000, 200)
	const tries = 3 // each buyer clicks three times
	item, err := c.CreateSale(ctx, "hot-key", stock, 0)
	if err != nil {
		return Result{}, err
	}
	tokens, err := c.LoginAll(ctx, "hot", buyers)
	if err != nil {
		return Result{}, err
	}
	clicks := make([]string, 0, buyers*tries)
	for range tries {
		clicks = append(clicks, tokens...)
	}
	// Same shuffle in both runs: the same spike.
	r := rand.New(rand.NewPCG(6, 8))
	r.Shuffle(len(clicks), func(i, j int) { clicks[i], clicks[j] = clicks[j], clicks[i] })

	env.Printf("%d buyers click %d times each on %d units", buyers, tries, stock)
	calls0 := sys.Purchase.Stats().LedgerCalls
	start := time.Now()
	attempts := c.Spike(ctx, item, clicks, 64)
	took := time.Since(start)
	calls := sys.Purchase.Stats().LedgerCalls - calls0

	var accepted, soldOut, already, limited, unavailable, other int
	for _, a := range attempts {
		switch {
		case a.Status == 202:
			accepted++
		case a.Code == "sold_out":
			soldOut++
		case a.Code == "already_purchased":
			already++
		case a.Status == 429:
			limited++
		case a.Status == 503:
			unavailable++
		default:
			other++
		}
	}
	if accepted == 0 {
		return Result{}, fmt.Errorf("no purchase was accepted")
	}
	return Result{Metric: float64(calls) / float64(len(attempts)), Figures: []Figure{
		{"purchases", strconv.Itoa(len(attempts))},
		{"Redis reserve calls", strconv.FormatUint(calls, 10)},
		{"accepted (202)", strconv.Itoa(accepted)},
		{"409 sold_out", strconv.Itoa(soldOut)},
		{"409 already_purchased", strconv.Itoa(already)},
		{"429 rate limited", strconv.Itoa(limited)},
		{"503 unavailable", strconv.Itoa(unavailable)},
		{"other answers", strconv.Itoa(other)},
		{"p50", labhttp.Ms(labhttp.Percentile(attempts, 50))},
		{"p99", labhttp.Ms(labhttp.Percentile(attempts, 99))},
		{"spike took", took.Round(10 * time.Millisecond).String()},
	}}, nil
}
