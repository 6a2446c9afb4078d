package lab

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/tools/lab/naive"
	"seckill/domain/sale"
)

// The hot-row lab: every order of a flash sale lowers the same item row's
// stock_left, so every transaction waits for that row's lock and pays one
// commit. Orders are bought through the HTTP API while the lab holds the
// worker's database calls (in both runs alike: a backlog, as after a
// database hiccup or a spike bigger than the worker), then lets go and
// times how fast the worker drains the backlog. Unprotected, the worker
// confirms one order per transaction (naive.OneOrderPerTxBook); protected,
// its whole batch in one.
func init() {
	Register(Lab{
		Number:  3,
		Name:    "hot-row",
		Summary: "one order per transaction on the item row instead of the batched worker: orders settled per second",
		Metric:  "orders_settled_per_second",
		Better:  HigherIsBetter,
		Run:     runHotRow,
	})
}

// hotRowDrainCap bounds the drain, so a slow disk (one fsync per
// transaction on a real MySQL) cannot stretch the lab past its budget.
const hotRowDrainCap = 15 * time.Second

// hotRowCommitCost is what the lab adds to every transaction, in both
// runs: the embedded SQLite commits in microseconds, with no network and
// no fsync, while a transaction on a real MySQL costs round trips and a
// flush to disk (3-4 ms each on this machine's MariaDB, see the guide).
// It also bounds the unprotected figure whatever the machine's load: the
// worker settles one item's transactions one after the other, so one
// order per transaction settles at most 1 s / 4 ms = 250 orders a second,
// while a batch pays the cost once for hundreds of orders.
const hotRowCommitCost = 4 * time.Millisecond

// gatedBook holds every Confirm until open is closed, the lab's stand-in
// for a database that is briefly out of reach, then charges each
// transaction commitCost. It notes when the first released call began and
// when the last one ended: the drain is timed between the two, so the
// time the queue takes to wake up counts in neither run. Both runs wrap
// their book in it.
type gatedBook struct {
	sale.OrderBook
	open       chan struct{}
	commitCost time.Duration

	mu          sync.Mutex
	first, last time.Time
}

func (g *gatedBook) Confirm(ctx context.Context, orders []sale.Order) (int, map[sale.OrderID]sale.Fate, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	g.mu.Lock()
	if g.first.IsZero() {
		g.first = time.Now()
	}
	g.mu.Unlock()
	time.Sleep(g.commitCost)
	n, f, err := g.OrderBook.Confirm(ctx, orders)
	g.mu.Lock()
	g.last = time.Now()
	g.mu.Unlock()
	return n, f, err
}

// span is the time from the first released call to the end of the last.
func (g *gatedBook) span() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last.Sub(g.first)
}

// runHotRow queues every buyer's order while the worker's database is
// held, then lets go and measures the orders settled per second.
func runHotRow(ctx context.Context, env *Env, mode Mode) (Result, error) {
	gate := make(chan struct{})
	opened := false
	openGate := func() {
		if !opened {
			opened = true
			close(gate)
		}
	}
	gated := &gatedBook{open: gate}
	if env.Base.MySQLDSN == "" {
		gated.commitCost = hotRowCommitCost // a real server pays its own
	}
	// The lab is about the database: give the Redis ledger room on a busy
	// laptop, so every buyer's purchase is accepted and queued.
	tweak := func(c *config.Config) { c.RedisCallTimeout = time.Second }
	sys, err := env.Start(ctx, tweak, hotRowSwap(mode, gated))
	if err != nil {
		return Result{}, err
	}
	defer sys.Close()
	// Deferred after Close, so it runs before it: a shutdown must not wait
	// for a worker held at the gate.
	defer openGate()

	orders := env.Scaled(2000, 300)
	it, err := openSale(ctx, sys, "Lab 3: hot-row", orders, 1999)
	if err != nil {
		return Result{}, err
	}
	sh := newShop(sys.URL(), 32)
	defer sh.close()
	tokens, err := sh.loginAll(ctx, fmt.Sprintf("hotrow-%s-", mode), orders)
	if err != nil {
		return Result{}, err
	}
	env.Printf("%d buyers buy one unit each while the worker's database is held", orders)
	counts := sh.buyAll(ctx, it.ID, tokens, 32, nil)
	accepted := int64(counts[http.StatusAccepted])
	if accepted == 0 {
		return Result{}, fmt.Errorf("no purchase was accepted: %v", counts)
	}
	// Give the dispatcher a moment to hand the last orders to the queue,
	// so the drain times the worker, not the publisher.
	time.Sleep(500 * time.Millisecond)

	env.Printf("%d orders queued; the database is back: draining", accepted)
	confirmed, took, err := drainHotRow(ctx, sys, it.ID, accepted, openGate)
	if err != nil {
		return Result{}, err
	}
	span := gated.span()
	if span <= 0 {
		span = took
	}
	rate := float64(confirmed) / span.Seconds()
	figs := []Figure{
		{"orders queued", itoa(accepted)},
		{"orders confirmed", itoa(confirmed)},
		{"drain time (first to last database call)", span.Round(10 * time.Millisecond).String()},
		{"drain time (gate open to last order seen)", took.Round(10 * time.Millisecond).String()},
		{"time added per transaction (embedded only)", map[bool]string{true: hotRowCommitCost.String(), false: "0 (real server)"}[env.Base.MySQLDSN == ""]},
		{"database transactions per order", map[Mode]string{Unprotected: "1", Protected: fmt.Sprintf("1/%d (batch)", sys.Config.WorkerBatch)}[mode]},
	}
	if confirmed < accepted {
		figs = append(figs, Figure{"drain stopped at the cap", hotRowDrainCap.String()})
	}
	return Result{Metric: float64(int64(rate)), Figures: figs}, nil
}

// hotRowSwap wraps the run's order book in gated; the unprotected run
// puts the naive one-order-per-transaction book around it, not the other
// way round, so one Confirm runs per transaction the naive book makes too.
func hotRowSwap(mode Mode, gated *gatedBook) func(*bootstrap.Parts) {
	return func(p *bootstrap.Parts) {
		gated.OrderBook = p.Store()
		p.OrderBook = gated
		if mode == Unprotected {
			p.OrderBook = naive.NewOneOrderPerTxBook(gated)
		}
	}
}

// drainHotRow opens the gate and waits, up to hotRowDrainCap, until the
// database holds all accepted orders of the item; it returns how many it
// holds and the time from the gate's opening to the last count.
func drainHotRow(ctx context.Context, sys *System, id sale.ItemID, accepted int64, openGate func()) (confirmed int64, took time.Duration, err error) {
	started := time.Now()
	openGate()
	waitFor(ctx, hotRowDrainCap, func() bool {
		confirmed, err = sys.Store().CountHeld(ctx, id)
		return err == nil && confirmed >= accepted
	})
	return confirmed, time.Since(started), err
}
