package lab

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/tools/lab/naive"
	"seckill/domain/sale"
	"seckill/infra/redisstock"
)

// The oversell lab: a crowd four times the stock buys through the HTTP
// API at once. Unprotected, the ledger reads the stock, compares, and
// decrements as three commands (naive.CheckThenDecrLedger), and the lab
// holds every buyer between the compare and the decrement until the whole
// crowd has read the stock, so all of them are sold a unit: the figure is
// buyers minus stock on every run. Protected, the reserve script does all
// three atomically.
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

// raceHold is the longest the naive components hold a buyer between the
// check and the act, should fewer buyers arrive than the lab expects: a
// fallback, so nothing can hang; it never runs out in a normal run.
const raceHold = 30 * time.Second

func runOversell(ctx context.Context, env *Env, mode Mode) (Result, error) {
	stock := env.Scaled(100, 20)
	buyers := 4 * stock
	// Every buyer reads the stock before any of them decrements it: the
	// window between GET and DECR, widened to hold the whole crowd.
	hold := newBarrier(buyers, raceHold)
	swap, closeCrowd := oversellSwap(mode, hold, buyers)
	defer closeCrowd()
	sys, err := env.Start(ctx, oversellTweak(buyers), swap)
	if err != nil {
		return Result{}, err
	}
	defer sys.Close()

	sh := newShop(sys.URL(), buyers)
	sh.client.Timeout = 4 * raceHold // the first buyer waits for the last
	defer sh.close()
	tokens, err := sh.loginAll(ctx, fmt.Sprintf("oversell-%s-", mode), buyers)
	if err != nil {
		return Result{}, err
	}
	it, err := openSale(ctx, sys, "Lab 1: oversell", stock, 1999)
	if err != nil {
		return Result{}, err
	}
	// One look at the item page first, as a shopper's browser does: the
	// item is then in this process's cache, so the crowd's purchases go
	// straight to the shield and the ledger.
	page := fmt.Sprintf("/api/v1/items/%d", it.ID)
	if !waitFor(ctx, raceHold, func() bool {
		code, err := sh.do(ctx, http.MethodGet, page, "", nil, nil)
		return err == nil && code == http.StatusOK
	}) {
		return Result{}, fmt.Errorf("the item page of the lab's sale did not answer 200 within %s", raceHold)
	}
	env.Printf("%d buyers, %d units: all buy at once", buyers, stock)
	// A purchase answered while the barrier is still closed never reached
	// it (the shield refused it, say): the barrier stops waiting for it.
	counts := sh.buyAll(ctx, it.ID, tokens, 0, func(int) { hold.Leave() })
	accepted := counts[http.StatusAccepted]

	// Every 202 travels to the database; wait until each is decided, so
	// the table shows what became of the promises.
	var st map[sale.OrderStatus]int64
	decided := waitFor(ctx, 2*raceHold, func() bool {
		st, err = sys.Store().CountStatuses(ctx, it.ID)
		return err == nil && st[sale.OrderConfirmed]+st[sale.OrderFailed] >= int64(accepted)
	})
	if err != nil {
		return Result{}, err
	}
	if !decided {
		env.Printf("not every accepted order was decided within %s; the table shows the figures so far", 2*raceHold)
	}
	left, err := sys.Ledger().StockLeft(ctx, it.ID)
	if err != nil {
		return Result{}, err
	}
	oversold := max(accepted-stock, 0)
	return Result{
		Metric: float64(oversold),
		Figures: []Figure{
			{"units on sale", itoa(int64(stock))},
			{"buyers", itoa(int64(buyers))},
			{"buyers held between check and decrement", heldFigure(hold, mode)},
			{"told 202 accepted", itoa(int64(accepted))},
			{"told 409 sold out", itoa(int64(counts[http.StatusConflict]))},
			{"other answers", otherAnswers(counts, http.StatusAccepted, http.StatusConflict)},
			{"confirmed by the database", itoa(st[sale.OrderConfirmed])},
			{"failed later by the database's stock guard", itoa(st[sale.OrderFailed])},
			{"Redis stock after the sale", itoa(left[it.ID])},
		},
	}, nil
}

// oversellSwap plugs the naive ledger, on a Redis client of its own
// (crowdClient), into the unprotected run; the func closes that client.
func oversellSwap(mode Mode, hold *barrier, buyers int) (func(*bootstrap.Parts), func()) {
	if mode != Unprotected {
		return nil, func() {}
	}
	var crowd redis.UniversalClient
	swap := func(p *bootstrap.Parts) {
		crowd = crowdClient(p.Redis(), buyers)
		prefix := p.Config.RedisPrefix
		p.PurchaseLedger = naive.NewCheckThenDecrLedger(p.Ledger(), crowd, func(id sale.ItemID) string {
			return redisstock.KeyPatterns(prefix, id)[0] // the sale hash
		}, hold.Wait)
	}
	return swap, func() {
		if crowd != nil {
			_ = crowd.Close()
		}
	}
}

// oversellTweak makes the path to the ledger patient for the crowd.
func oversellTweak(buyers int) func(*config.Config) {
	return func(c *config.Config) {
		// Every buyer reaches the ledger: the crowd is one sale's worth of
		// single clicks, well inside the shield's budgets, and a request
		// held at the barrier keeps its deadline.
		c.ItemRate, c.ItemBurst = float64(10*buyers), 10*buyers
		c.MaxInFlight = max(c.MaxInFlight, 2*buyers)
		c.RequestTimeout = 3 * raceHold
		c.MySQLCallTimeout = raceHold
		// The item stays in this process for the whole sale, so no buyer
		// waits on (or is refused by) a database read on a loaded machine.
		c.LocalCacheTTL = time.Minute
		// A loaded machine's slow Redis call must not turn into a 503
		// shared by every buyer waiting on the same item load.
		c.RedisCallTimeout = raceHold
	}
}

// crowdClient is a client of rdb's Redis for the naive ledger, with a
// connection for each of the crowd's buyers and the lab's patience
// (raceHold) for a connection and an answer. The system's own client
// shares 64 connections and waits 3 s for one and 2 s for an answer: the
// production ledger pipelines its calls and never needs more, but the
// naive one sends every buyer's GET, and after the barrier every DECR, at
// once; on a machine far past its capacity (a load average of 50 on 2
// cores) some of them waited longer and were answered 503 before the
// check, so the figure fell (216 instead of 300 in one run). Alone on its
// connections, every buyer reaches the check and the decrement, and the
// figure is 300 on every run. A cluster client (not a lab set-up) is
// returned as it is.
func crowdClient(rdb redis.UniversalClient, buyers int) redis.UniversalClient {
	c, ok := rdb.(*redis.Client)
	if !ok {
		return rdb
	}
	o := *c.Options()
	o.PoolSize, o.MinIdleConns, o.MaxIdleConns = buyers, 0, buyers
	o.PoolTimeout, o.ReadTimeout, o.WriteTimeout = raceHold, raceHold, raceHold
	o.ClientName += "-naive"
	return redis.NewClient(&o)
}

// otherAnswers sums the answers other than those listed, with their
// statuses (0: no answer), e.g. "7 (503: 5, 0: 2)".
func otherAnswers(counts map[int]int, listed ...int) string {
	n, parts := 0, []string{}
	for code, c := range counts {
		if !slices.Contains(listed, code) {
			n += c
			parts = append(parts, fmt.Sprintf("%d: %d", code, c))
		}
	}
	if n == 0 {
		return "0"
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}

// heldFigure says how many callers a naive component's barrier held (and
// whether its fallback timeout opened it); the protected run has none.
func heldFigure(b *barrier, mode Mode) string {
	if mode == Protected {
		return "- (atomic)"
	}
	n, timedOut := b.Held()
	if timedOut {
		return fmt.Sprintf("%d (timed out after %s)", n, raceHold)
	}
	return itoa(int64(n))
}
