package lab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/shield"
	"seckill/app/tools/lab/labhttp"
	"seckill/app/tools/lab/naive"
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

// runHotKey sends a spike of doomed clicks at one item and counts the
// Redis reserve calls per purchase.
func runHotKey(ctx context.Context, env *Env, mode Mode) (Result, error) {
	sys, c, done, err := bootLab(ctx, env, hotKeyTweak, hotKeySwap(env, mode))
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
	clicks := hotKeyClicks(tokens, tries)

	env.Printf("%d buyers click %d times each on %d units", buyers, tries, stock)
	calls0 := sys.Purchase.Stats().LedgerCalls
	start := time.Now()
	attempts := c.Spike(ctx, item, clicks, 64)
	took := time.Since(start)
	calls := sys.Purchase.Stats().LedgerCalls - calls0

	a := tallyHotKey(attempts)
	if a.accepted == 0 {
		return Result{}, fmt.Errorf("no purchase was accepted")
	}
	return Result{Metric: float64(calls) / float64(len(attempts)), Figures: []Figure{
		{"purchases", strconv.Itoa(len(attempts))},
		{"Redis reserve calls", strconv.FormatUint(calls, 10)},
		{"accepted (202)", strconv.Itoa(a.accepted)},
		{"409 sold_out", strconv.Itoa(a.soldOut)},
		{"409 already_purchased", strconv.Itoa(a.already)},
		{"429 rate limited", strconv.Itoa(a.limited)},
		{"503 unavailable", strconv.Itoa(a.unavailable)},
		{"other answers", strconv.Itoa(a.other)},
		{"p50", labhttp.Ms(labhttp.Percentile(attempts, 50))},
		{"p99", labhttp.Ms(labhttp.Percentile(attempts, 99))},
		{"spike took", took.Round(10 * time.Millisecond).String()},
	}}, nil
}

// hotKeyTweak sets the lab's item budget, in both runs.
func hotKeyTweak(cfg *config.Config) {
	cfg.ItemRate, cfg.ItemBurst = hotKeyRate, hotKeyBurst
	patientRedis(cfg)
}

// hotKeySwap puts the naive guard into the unprotected run. It keeps
// a shield's in-flight bound and user buckets, built with the system's own
// settings, so that only the hot-key protections are off.
func hotKeySwap(env *Env, mode Mode) func(*bootstrap.Parts) {
	if mode != Unprotected {
		return nil
	}
	cfg := env.Base
	hotKeyTweak(&cfg)
	return func(p *bootstrap.Parts) {
		p.PurchaseShield = naive.NewHotKeyGuard(shield.New(shield.Options{
			ItemRate: cfg.ItemRate, ItemBurst: cfg.ItemBurst, UserRate: cfg.UserRate, UserBurst: cfg.UserBurst,
			MaxInFlight: cfg.MaxInFlight, SoldOutTTL: cfg.SoldOutTTL,
		}))
	}
}

// hotKeyClicks is every buyer's token tries times, shuffled the same way
// in both runs: the same spike.
func hotKeyClicks(tokens []string, tries int) []string {
	clicks := make([]string, 0, len(tokens)*tries)
	for range tries {
		clicks = append(clicks, tokens...)
	}
	r := rand.New(rand.NewPCG(6, 8))
	r.Shuffle(len(clicks), func(i, j int) { clicks[i], clicks[j] = clicks[j], clicks[i] })
	return clicks
}

// hotKeyAnswers counts the spike's answers by kind; each attempt counts
// once.
type hotKeyAnswers struct {
	accepted, soldOut, already, limited, unavailable, other int
}

// tallyHotKey counts attempts by answer.
func tallyHotKey(attempts []labhttp.Attempt) hotKeyAnswers {
	var n hotKeyAnswers
	for _, a := range attempts {
		switch {
		case a.Status == 202:
			n.accepted++
		case a.Code == "sold_out":
			n.soldOut++
		case a.Code == "already_purchased":
			n.already++
		case a.Status == 429:
			n.limited++
		case a.Status == 503:
			n.unavailable++
		default:
			n.other++
		}
	}
	return n
}
