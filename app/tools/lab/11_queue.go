package lab

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"seckill/app/tools/lab/labhttp"
)

// Lab 11: the waiting room. The same crowd, one tenth of it fast retriers,
// meets a sale that refuses what it cannot serve (the plain sale: every
// buyer clicks, retriers click again and again) and one with a line in
// front (protection queue: retriers may join as often as they like, it
// keeps their first place). Retrying wins units in the first and nothing
// in the second.
func init() {
	Register(Lab{
		Number:  11,
		Name:    "queue",
		Summary: "reject against queue on the same crowd: a fast retrier's share of units over its share of buyers (and requests per buyer, p99)",
		Metric:  "fast_retrier_advantage",
		Better:  LowerIsBetter,
		Run:     runQueueLab,
	})
}

// queueTries is how many times a fast retrier clicks (or joins).
const queueTries = 20

// queueCrowd is the lab's crowd: buyer indexes in click order (a fast
// retrier appears queueTries times), the same shuffle in both runs.
func queueCrowd(buyers, fast int) []int {
	var clicks []int
	for b := range buyers {
		n := 1
		if b < fast {
			n = queueTries
		}
		for range n {
			clicks = append(clicks, b)
		}
	}
	r := rand.New(rand.NewPCG(11, 24))
	r.Shuffle(len(clicks), func(i, j int) { clicks[i], clicks[j] = clicks[j], clicks[i] })
	return clicks
}

func runQueueLab(ctx context.Context, env *Env, mode Mode) (Result, error) {
	_, c, done, err := bootLab(ctx, env, patientRedis, nil)
	if err != nil {
		return Result{}, err
	}
	defer done()
	buyers := env.Scaled(200, 40)
	// A quarter of the buyers get a unit: retrying pays in the plain sale,
	// and a fair line gives retriers a tenth of the units, give or take.
	stock, fast := buyers/4, buyers/10
	tokens, err := c.LoginAll(ctx, "queue", buyers)
	if err != nil {
		return Result{}, err
	}
	clicks := queueCrowd(buyers, fast)
	env.Printf("%d buyers (%d fast retriers clicking %d times) for %d units", buyers, fast, queueTries, stock)
	var won map[int]bool
	var calls []labhttp.Attempt
	if mode == Unprotected {
		won, calls, err = rejectRun(ctx, c, tokens, clicks, stock)
	} else {
		won, calls, err = queueRun(ctx, c, tokens, clicks, stock)
	}
	if err != nil {
		return Result{}, err
	}
	fastWon := 0
	for b := range won {
		if b < fast {
			fastWon++
		}
	}
	if len(won) == 0 {
		return Result{}, fmt.Errorf("no unit was sold")
	}
	unitShare, buyerShare := float64(fastWon)/float64(len(won)), float64(fast)/float64(buyers)
	return Result{Metric: unitShare / buyerShare, Figures: []Figure{
		{"units sold", strconv.Itoa(len(won))},
		{"fast retriers' share of buyers", fmt.Sprintf("%.0f%%", 100*buyerShare)},
		{"fast retriers' share of units", fmt.Sprintf("%.0f%%", 100*unitShare)},
		{"requests per buyer", fmt.Sprintf("%.1f", float64(len(calls))/float64(buyers))},
		{"p99", labhttp.Ms(labhttp.Percentile(calls, 99))},
	}}, nil
}

// rejectRun is the plain sale: every click is a purchase.
func rejectRun(ctx context.Context, c *labhttp.Client, tokens []string, clicks []int, stock int) (map[int]bool, []labhttp.Attempt, error) {
	item, err := c.CreateSale(ctx, "queue-lab-reject", stock, 0)
	if err != nil {
		return nil, nil, err
	}
	order := make([]string, len(clicks))
	for i, b := range clicks {
		order[i] = tokens[b]
	}
	attempts := c.Spike(ctx, item, order, 64)
	won := map[int]bool{}
	for i, a := range attempts {
		if a.Status == 202 {
			won[clicks[i]] = true
		}
	}
	return won, attempts, nil
}

// queueRun is the waiting room: every click is a join, made before the
// opening; then every buyer polls five times a second and buys with the
// admission when it comes.
func queueRun(ctx context.Context, c *labhttp.Client, tokens []string, clicks []int, stock int) (map[int]bool, []labhttp.Attempt, error) {
	opens := time.Now().Add(2 * time.Second).UTC()
	r := c.Do(ctx, "POST", "/api/v1/admin/items", c.AdminToken(), map[string]any{
		"name": "queue-lab-queue", "price_cents": 1999, "stock": stock, "protection": "queue", "admit_per_second": 10 * stock,
		"starts_at": opens.Format(time.RFC3339Nano), "ends_at": opens.Add(time.Hour).Format(time.RFC3339Nano),
	})
	if r.Err != nil || r.Status != 201 {
		return nil, nil, fmt.Errorf("create queue item: %d %v %v", r.Status, r.Body, r.Err) //nolint:errorlint // the error is nil when only the status is wrong
	}
	path := fmt.Sprintf("/api/v1/items/%d/queue", r.Num("id"))
	buy := fmt.Sprintf("/api/v1/items/%d/purchase", r.Num("id"))
	var mu sync.Mutex
	var calls []labhttp.Attempt
	record := func(r labhttp.Reply) {
		mu.Lock()
		calls = append(calls, labhttp.Attempt{Status: r.Status, Took: r.Took, Err: r.Err})
		mu.Unlock()
	}
	labhttp.Parallel(len(clicks), 64, func(i int) { record(c.Do(ctx, "POST", path, tokens[clicks[i]], nil)) })
	sleepCtx(ctx, time.Until(opens)+100*time.Millisecond)
	won, open := map[int]bool{}, map[int]bool{}
	for b := range tokens {
		open[b] = true
	}
	for round := 0; len(open) > 0 && round < 300 && ctx.Err() == nil; round++ {
		var left []int
		for b := range open {
			left = append(left, b)
		}
		labhttp.Parallel(len(left), 64, func(i int) {
			b := left[i]
			p := c.Do(ctx, "GET", path, tokens[b], nil)
			record(p)
			switch p.Str("state") {
			case "waiting", "":
				return
			case "admitted":
				res := c.Do(ctx, "POST", buy, tokens[b], map[string]string{"ticket": p.Str("ticket")})
				record(res)
				if res.Status == 429 || res.Status == 503 {
					return // the admission is still good: buy on the next round
				}
				mu.Lock()
				if res.Status == 202 {
					won[b] = true
				}
				mu.Unlock()
			}
			mu.Lock()
			delete(open, b)
			mu.Unlock()
		})
		sleepCtx(ctx, 200*time.Millisecond)
	}
	return won, calls, nil
}
