package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"seckill/app/purchase"
	"seckill/app/shield"
	"seckill/domain/sale"
	"seckill/infra/kafkaevents"
)

// drainTarget is the worker drain rate (f) must reach, orders per second.
const drainTarget = 20000

// confirmTarget is the p99 of 202 → confirmed under the (b) load.
const confirmTarget = time.Second

// rssTarget is the peak RSS (b) must stay under, in MiB.
const rssTarget = 150

// latencies are the 202 → confirmed times of one sale's orders.
type latencies struct {
	N             int
	P50, P99, Max time.Duration
	Err           error
}

// db opens (once) the benchmark's own database, for the figures the API
// does not report. Real backends only.
func (s *system) db() (*sql.DB, error) {
	if s.sqlDB != nil {
		return s.sqlDB, nil
	}
	if s.dbName == "" {
		return nil, errors.New("needs the real MariaDB (not -embedded)")
	}
	c := s.baseDSN.Clone()
	c.DBName = s.dbName
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	s.sqlDB = db
	return db, nil
}

// confirmLatencies reads, for every confirmed order of item, the time from
// its creation (the API stamps it just before the reserve script, so this
// is the 202 plus the script's round trip) to the worker's confirmation
// (confirmed_at, stamped in the confirm transaction), both on this
// machine's clock, to the millisecond the columns keep.
func (s *system) confirmLatencies(ctx context.Context, item int64) latencies {
	db, err := s.db()
	if err != nil {
		return latencies{Err: err}
	}
	rows, err := db.QueryContext(ctx, "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, confirmed_at) FROM orders WHERE item_id = ? AND confirmed_at IS NOT NULL", item)
	if err != nil {
		return latencies{Err: err}
	}
	defer rows.Close()
	var us []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return latencies{Err: err}
		}
		us = append(us, v)
	}
	if err := rows.Err(); err != nil {
		return latencies{Err: err}
	}
	if len(us) == 0 {
		return latencies{Err: errors.New("no confirmed orders")}
	}
	sort.Slice(us, func(i, j int) bool { return us[i] < us[j] })
	at := func(q float64) time.Duration {
		i := min(len(us)-1, int(q*float64(len(us))))
		return time.Duration(us[i]) * time.Microsecond
	}
	return latencies{N: len(us), P50: at(0.50), P99: at(0.99), Max: time.Duration(us[len(us)-1]) * time.Microsecond}
}

// drainResult is scenario (f).
type drainResult struct {
	Item    int64
	Orders  int64         // orders in the queue when the worker started
	Fill    time.Duration // how long filling the queue took
	Start   time.Duration // worker start until its first confirmation
	Drain   time.Duration // first confirmation until the last
	Total   time.Duration // worker start until the last confirmation
	FirstN  int64         // orders already confirmed at the first poll that saw any
	CPU     cpuUse
	Problem string
}

// Rate is the steady drain rate: orders confirmed after the first poll that
// saw a confirmation, over the time until the last.
func (d drainResult) Rate() float64 {
	if d.Drain <= 0 {
		return 0
	}
	return float64(d.Orders-d.FirstN) / d.Drain.Seconds()
}

// runDrain is scenario (f): stop the worker, fill the queue with n accepted
// orders of a fresh sale through the purchase use case (the same path a 202
// takes: shield, reserve script, dispatcher, Kafka), start a fresh worker
// and time it confirming them all into MariaDB.
func (b *bench) runDrain(ctx context.Context, n int) (drainResult, error) {
	s := b.sys
	item, err := s.createSale(ctx, "bench (f) worker drain", 5_000_000, 0)
	if err != nil {
		return drainResult{}, err
	}
	d := drainResult{Item: item}
	db, err := s.db()
	if err != nil {
		return d, fmt.Errorf("(f): %w", err)
	}
	b.logf("(f) worker drain: stopping the worker, filling the queue with %d accepted orders of item %d", n, item)
	if err := s.stopWorker(ctx); err != nil {
		return d, fmt.Errorf("(f): stop the worker: %w", err)
	}
	backlog := kafkaevents.NewBacklog(s.cfg.Brokers(), s.cfg.KafkaGroup, s.cfg.KafkaTopic)
	published := func() (int64, error) {
		marks, err := backlog.Marks(ctx)
		var sum int64
		for _, m := range marks {
			sum += m
		}
		return sum, err
	}
	base, err := published()
	if err != nil {
		return d, fmt.Errorf("(f): %w", err)
	}

	t0 := time.Now()
	accepted, err := b.fillDrainQueue(ctx, item, n, func() (int64, error) {
		p, err := published()
		return p - base, err
	})
	if err != nil {
		return d, err
	}
	d.Fill = time.Since(t0)
	d.Orders = accepted
	b.logf("    %d orders accepted and published in %s; starting a fresh worker", d.Orders, d.Fill.Round(time.Millisecond))

	if err := b.timeDrain(ctx, db, &d); err != nil {
		return d, err
	}

	st, _, err := s.settle(ctx, item, b.o.settleTimeout)
	switch {
	case err != nil:
		d.Problem = err.Error()
	case st.Confirmed != d.Orders || st.Failed != 0 || !st.Consistent || st.Pending != 0:
		d.Problem = fmt.Sprintf("accepted %d, then %s", d.Orders, st)
	}
	if d.Problem != "" {
		b.failed = true
		b.logf("    ERROR: sale (f) (item %d): %s", item, d.Problem)
	}
	return d, nil
}

// fillDrainQueue accepts n orders of item through the purchase use case,
// in chunks, each published before the next starts, so the dispatcher's
// buffer never overflows into the relay's slower path. published says how
// many orders the broker holds beyond the run's start. It returns how many
// were accepted.
func (b *bench) fillDrainQueue(ctx context.Context, item int64, n int, published func() (int64, error)) (int64, error) {
	s := b.sys
	const chunk = 5000
	user := nonce()[:6]
	var next, accepted atomic.Int64
	for done := 0; done < n; done += chunk {
		end := int64(min(n, done+chunk))
		next.Store(int64(done))
		var wg sync.WaitGroup
		var firstErr error
		var once sync.Once
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= end {
						return
					}
					if err := buyOne(ctx, s, sale.UserID(fmt.Sprintf("f%s-u%08d", user, i)), sale.ItemID(item)); err != nil {
						once.Do(func() { firstErr = err })
						return
					}
					accepted.Add(1)
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return accepted.Load(), fmt.Errorf("(f): filling the queue: %w", firstErr)
		}
		if err := waitUntil(ctx, 2*time.Minute, func() (bool, error) {
			p, err := published()
			return p >= end, err
		}); err != nil {
			return accepted.Load(), fmt.Errorf("(f): waiting for the dispatcher to publish %d orders: %w", end, err)
		}
	}
	return accepted.Load(), nil
}

// timeDrain starts a fresh worker and times it confirming d.Orders orders
// of d.Item into the database.
func (b *bench) timeDrain(ctx context.Context, db *sql.DB, d *drainResult) error {
	s, item := b.sys, d.Item
	// The poll reads the item row's stock_left, which the worker lowers in
	// the same transaction as it inserts the orders: a primary-key read.
	// A COUNT(*) over the orders, every 20 ms, would cost MariaDB more CPU
	// than the inserts it measures as the table grows. settle checks the
	// count once at the end.
	stockLeft := func() (int64, error) {
		var left int64
		err := db.QueryRowContext(ctx, "SELECT stock_left FROM items WHERE id = ?", item).Scan(&left)
		return left, err
	}
	left0, err := stockLeft()
	if err != nil {
		return fmt.Errorf("(f): reading the item's stock: %w", err)
	}
	count := func() (int64, error) {
		left, err := stockLeft()
		return left0 - left, err
	}
	cpu0 := takeCPU(b.pids)
	start := time.Now()
	if err := s.startWorker(ctx); err != nil {
		return fmt.Errorf("(f): %w", err)
	}
	var first time.Time
	err = waitUntil(ctx, b.o.settleTimeout, func() (bool, error) {
		c, err := count()
		if err != nil {
			return false, err
		}
		if c > 0 && first.IsZero() {
			first, d.FirstN = time.Now(), c
		}
		return c >= d.Orders, nil
	})
	end := time.Now()
	d.CPU = cpuBetween(cpu0, takeCPU(b.pids), 0)
	if err != nil {
		return fmt.Errorf("(f): waiting for the worker to confirm %d orders: %w", d.Orders, err)
	}
	d.Total, d.Start, d.Drain = end.Sub(start), first.Sub(start), end.Sub(first)
	b.logf("    confirmed in %s (%s to the first confirmation): %.0f orders/s", d.Total.Round(time.Millisecond), d.Start.Round(time.Millisecond), d.Rate())

	return nil
}

// buyOne buys one unit for user, retrying while the ledger is slow or the
// shield sheds load (a busy machine): filling the queue is not what (f)
// measures. A retry that finds the user already holding an order means an
// earlier attempt reserved it after all (its caller stopped waiting); that
// order is in the ledger's outbox, and the relay publishes it at its first
// look, so it counts as accepted.
func buyOne(ctx context.Context, s *system, user sale.UserID, item sale.ItemID) error {
	var err error
	for attempt := 0; attempt < 100; attempt++ {
		_, err = s.m.Purchase.Buy(ctx, user, item)
		var held *sale.AlreadyPurchasedError
		switch {
		case err == nil:
			return nil
		case attempt > 0 && errors.As(err, &held):
			return nil
		case errors.Is(err, purchase.ErrUnavailable), errors.Is(err, shield.ErrOverloaded), errors.Is(err, shield.ErrRateLimited):
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		default:
			return err
		}
	}
	return err
}

// waitUntil polls cond every 20ms until it holds, fails, or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("not done after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
