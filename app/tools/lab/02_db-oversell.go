package lab

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"seckill/app/tools/lab/naive"
	"seckill/domain/sale"
)

// The db-oversell lab: the database keeps the stock, as in a shop without
// the Redis ledger, and many buyers settle their orders at once, each in
// its own call to the order book's Confirm. Unprotected, the book reads
// stock_left and writes back what it read minus one
// (naive.ReadThenUpdateBook), and the lab holds every buyer between the
// read and the write until all have read, so every buyer is sold a unit:
// the figure is buyers minus stock on every run. Protected, the production
// Confirm lowers it with a guarded UPDATE inside a transaction that holds
// the row. The Redis
// ledger sits in front of this step in the real purchase path, so the lab
// drives the book directly, on the running system's database.
func init() {
	Register(Lab{
		Number:  2,
		Name:    "db-oversell",
		Summary: "read-then-update in the database instead of the guarded UPDATE: units sold beyond stock",
		Metric:  "oversold_units",
		Better:  LowerIsBetter,
		Run:     runDBOversell,
	})
}

func runDBOversell(ctx context.Context, env *Env, mode Mode) (Result, error) {
	sys, err := env.Start(ctx, nil, nil)
	if err != nil {
		return Result{}, err
	}
	defer sys.Close()

	stock := env.Scaled(50, 20)
	buyers := 4 * stock
	it, err := openSale(ctx, sys, "Lab 2: db-oversell", stock, 1999)
	if err != nil {
		return Result{}, err
	}
	// Every buyer reads stock_left before any of them writes it back: the
	// window between the read and the write, widened to hold them all.
	hold := newBarrier(buyers, raceHold)
	var book sale.OrderBook = sys.Store()
	if mode == Unprotected {
		book = naive.NewReadThenUpdateBook(sys.Store(), sys.Store().DB(), sys.Config.PaymentWindow, hold.Wait)
	}
	env.Printf("%d buyers, %d units: each settles its own order in the database, all at once", buyers, stock)
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		sold, refused, bad int
		firstErr           error
		start              = make(chan struct{})
	)
	for i := range buyers {
		o := sale.NewOrder(it, sale.UserID(fmt.Sprintf("dbo-%s-%d", mode, i)), time.Now())
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			n, _, err := book.Confirm(ctx, []sale.Order{o})
			hold.Leave() // a buyer whose read failed never reached the barrier
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && n == 1:
				sold++
			case errors.Is(err, sale.ErrStockExhausted):
				refused++
			default:
				bad++
				if firstErr == nil {
					firstErr = err
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if bad > 0 {
		env.Printf("%d settlements failed otherwise, first: %v", bad, firstErr)
	}
	held, err := sys.Store().CountHeld(ctx, it.ID)
	if err != nil {
		return Result{}, err
	}
	after, err := sys.Store().Item(ctx, it.ID)
	if err != nil {
		return Result{}, err
	}
	return Result{
		Metric: float64(max(held-int64(stock), 0)),
		Figures: []Figure{
			{"units on sale", itoa(int64(stock))},
			{"buyers", itoa(int64(buyers))},
			{"buyers held between read and write", heldFigure(hold, mode)},
			{"orders confirmed in the database", itoa(held)},
			{"refused: stock exhausted", itoa(int64(refused))},
			{"database stock_left afterwards", itoa(after.StockLeft)},
			{"stock_left + confirmed (should be the units on sale)", itoa(after.StockLeft + held)},
		},
	}, nil
}
