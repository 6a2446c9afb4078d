package lab

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/tools/lab/labhttp"
	"seckill/app/tools/lab/naive"
	"seckill/infra/embedded"
	"seckill/infra/faultproxy"
)

// Lab 10: degrade fast. When Redis stops answering, a purchase that waits
// for it waits seconds, and so does every purchase behind it. The guarded
// path gives up on a sick Redis after its call deadline, opens the breaker
// after a few failures, and then answers 503 with Retry-After in
// microseconds until Redis is back.
func init() {
	Register(Lab{
		Number:  10,
		Name:    "breaker",
		Summary: "no circuit breaker and no call deadline while Redis stops answering: p99 purchase latency",
		Metric:  "p99_ms",
		Better:  LowerIsBetter,
		Run:     runBreaker,
	})
}

// breakerFault is how long Redis stops answering, and breakerClients how
// many buyers keep clicking meanwhile.
const (
	breakerFault   = 3 * time.Second
	breakerClients = 32
	breakerStuck   = time.Second // a purchase slower than this is "stuck"
	// breakerPatience is how long a buyer waits for an answer.
	breakerPatience = 6 * time.Second
)

// runBreaker makes Redis go silent for breakerFault while buyers keep
// clicking, and measures how long their purchases take.
func runBreaker(ctx context.Context, env *Env, mode Mode) (Result, error) {
	proxy, closeProxy, err := breakerProxy(env)
	if err != nil {
		return Result{}, err
	}
	defer closeProxy()
	sys, c, done, err := bootLab(ctx, env, breakerTweak(proxy.Addr()), breakerSwap(mode))
	if err != nil {
		return Result{}, err
	}
	defer func() { proxy.Clear(); done() }()

	item, tokens, err := breakerSale(ctx, c)
	if err != nil {
		return Result{}, err
	}
	// A buyer gives up on an answer after breakerPatience.
	buyers := labhttp.New(sys.URL(), sys.AdminToken, breakerPatience)
	defer buyers.Close()

	env.Printf("Redis stops answering for %s; %d buyers keep clicking", breakerFault, breakerClients)
	attempts, recovery := clickThroughFault(ctx, proxy, buyers, tokens, item)
	return breakerResult(attempts, recovery), nil
}

// breakerProxy starts a proxy between the system and Redis, the one the
// operator gave or an embedded one started here, so the lab can make
// Redis go silent; the func closes the proxy, then that Redis.
func breakerProxy(env *Env) (*faultproxy.Proxy, func(), error) {
	upstream := env.Base.RedisAddr
	closeRedis := func() {}
	if upstream == "" {
		r, err := embedded.StartRedis("127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		closeRedis = r.Close
		upstream = r.Addr()
	}
	proxy, err := faultproxy.Start("127.0.0.1:0", upstream)
	if err != nil {
		closeRedis()
		return nil, nil, err
	}
	return proxy, func() { proxy.Close(); closeRedis() }, nil
}

// breakerSwap puts the ledger with no breaker and no call deadline into
// the unprotected run.
func breakerSwap(mode Mode) func(*bootstrap.Parts) {
	if mode != Unprotected {
		return nil
	}
	return func(p *bootstrap.Parts) { p.PurchaseLedger = naive.NewUnguardedLedger(p.Ledger()) }
}

// breakerTweak points the system at the proxy (redisAddr).
func breakerTweak(redisAddr string) func(*config.Config) {
	return func(cfg *config.Config) {
		cfg.RedisAddr = redisAddr
		// Item data stays in this process for the whole run, so what the
		// fault hits is the purchase's Redis round trip.
		cfg.LocalCacheTTL = time.Minute
		// Each buyer clicks as fast as answers come; the user's bucket is
		// not what this lab is about.
		cfg.UserRate, cfg.UserBurst = 1000, 1000
	}
}

// breakerSale opens the lab's sale and logs in breakerClients+2 buyers:
// one per clicking buyer, one probe, and one whose purchase has warmed up
// the item's cache and the connections.
func breakerSale(ctx context.Context, c *labhttp.Client) (int64, []string, error) {
	item, err := c.CreateSale(ctx, "breaker", 1_000_000, 0)
	if err != nil {
		return 0, nil, err
	}
	tokens, err := c.LoginAll(ctx, "breaker", breakerClients+2)
	if err != nil {
		return 0, nil, err
	}
	if r := c.Buy(ctx, tokens[breakerClients+1], item); r.Status != 202 {
		return 0, nil, fmt.Errorf("warm-up purchase: %d %v %v", r.Status, r.Body, r.Err) //nolint:errorlint // the error is nil when only the status is wrong
	}
	return item, tokens, nil
}

// clickThroughFault blackholes Redis for breakerFault while the buyers
// click, and returns their attempts and how long after Redis came back the
// first purchase went through again; it returns once that probe has ended.
func clickThroughFault(ctx context.Context, proxy *faultproxy.Proxy, buyers *labhttp.Client, tokens []string, item int64) ([]labhttp.Attempt, string) {
	proxy.Set(faultproxy.Fault{Kind: faultproxy.BlackHole})
	var (
		mu       sync.Mutex
		attempts []labhttp.Attempt
		recovery = "not within 15s"
		probe    sync.WaitGroup
	)
	end := time.Now().Add(breakerFault)
	// Redis comes back on time, whatever the buyers are waiting for; from
	// then on one buyer tries until a purchase goes through again.
	probe.Add(1)
	time.AfterFunc(breakerFault, func() {
		defer probe.Done()
		proxy.Clear()
		back := time.Now()
		if waitUntil(ctx, 15*time.Second, 50*time.Millisecond, func() bool {
			return buyers.Buy(ctx, tokens[breakerClients], item).Status == 202
		}) {
			recovery = time.Since(back).Round(10 * time.Millisecond).String()
		}
	})
	labhttp.Parallel(breakerClients, breakerClients, func(i int) {
		for time.Now().Before(end) && ctx.Err() == nil {
			r := buyers.Buy(ctx, tokens[i], item)
			mu.Lock()
			attempts = append(attempts, labhttp.Attempt{Buyer: i, Status: r.Status, Code: r.Code(), Took: r.Took, Err: r.Err})
			mu.Unlock()
			// A buyer waits a moment before clicking again.
			sleepCtx(ctx, 20*time.Millisecond)
		}
	})
	probe.Wait()
	return attempts, recovery
}

// breakerResult is the lab's p99 and figures from the attempts made
// during the fault.
func breakerResult(attempts []labhttp.Attempt, recovery string) Result {
	stuck, unavailable, gaveUp := 0, 0, 0
	var slowest time.Duration
	for _, a := range attempts {
		if a.Took > breakerStuck {
			stuck++
		}
		switch {
		case a.Status == 503:
			unavailable++
		case a.Err != nil:
			gaveUp++
		}
		slowest = max(slowest, a.Took)
	}
	p99 := labhttp.Percentile(attempts, 99)
	return Result{Metric: float64(p99.Milliseconds()), Figures: []Figure{
		{"purchases during the fault", strconv.Itoa(len(attempts))},
		{"answered 503 (retry later)", strconv.Itoa(unavailable)},
		{"stuck over " + breakerStuck.String(), strconv.Itoa(stuck)},
		{"buyer gave up (no answer in " + breakerPatience.String() + ")", strconv.Itoa(gaveUp)},
		{"p50", labhttp.Ms(labhttp.Percentile(attempts, 50))},
		{"p99", labhttp.Ms(p99)},
		{"slowest", labhttp.Ms(slowest)},
		{"first 202 after Redis came back", recovery},
	}}
}
