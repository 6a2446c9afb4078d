package lab

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/lab/naive"
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

// gatedBook holds every Confirm until open is closed. It is the lab's
// stand-in for a database that is briefly out of reach; both runs wrap
// their book in it.
type gatedBook struct {
	sale.OrderBook
	open chan struct{}
}

func (g gatedBook) Confirm(ctx context.Context, orders []sale.Order) (int, map[sale.OrderID]sale.Fate, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	return g.OrderBook.Confirm(ctx, orders)
}

func runHotRow(ctx context.Context, env *Env, mode Mode) (Result, error) {
	gate := make(chan struct{})
	opened := false
	openGate := func() {
		if !opened {
			opened = true
			close(gate)
		}
	}
	defer openGate() // so shutdown can finish the worker's batch
	ov := bootstrap.Overrides{OrderBook: func(real sale.OrderBook) sale.OrderBook {
		if mode == Unprotected {
			real = naive.NewOneOrderPerTxBook(real)
		}
		return gatedBook{OrderBook: real, open: gate}
	}}
	sys, err := env.Start(ctx, nil, ov)
	if err != nil {
		return Result{}, err
	}
	defer sys.Close()

	orders := env.Scaled(4000, 600)
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
	counts := sh.buyAll(ctx, it.ID, tokens, 32)
	accepted := int64(counts[http.StatusAccepted])
	if accepted == 0 {
		return Result{}, fmt.Errorf("no purchase was accepted: %v", counts)
	}
	// Give the dispatcher a moment to hand the last orders to the queue,
	// so the drain times the worker, not the publisher.
	time.Sleep(200 * time.Millisecond)

	env.Printf("%d orders queued; the database is back: draining", accepted)
	var confirmed int64
	started := time.Now()
	openGate()
	waitFor(ctx, hotRowDrainCap, func() bool {
		confirmed, err = sys.Store().CountHeld(ctx, it.ID)
		return err == nil && confirmed >= accepted
	})
	took := time.Since(started)
	if err != nil {
		return Result{}, err
	}
	rate := float64(confirmed) / took.Seconds()
	figs := []Figure{
		{"orders queued", itoa(accepted)},
		{"orders confirmed", itoa(confirmed)},
		{"drain time", took.Round(10 * time.Millisecond).String()},
		{"database transactions per order", map[Mode]string{Unprotected: "1", Protected: fmt.Sprintf("1/%d (batch)", sys.Config.WorkerBatch)}[mode]},
	}
	if confirmed < accepted {
		figs = append(figs, Figure{"drain stopped at the cap", hotRowDrainCap.String()})
	}
	return Result{Metric: float64(int64(rate)), Figures: figs}, nil
}
