package lab

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/tools/lab/naive"
	"seckill/domain/sale"
	"seckill/infra/rediscache"
)

// The stale-cache lab: another instance misses the cache, reads the item
// from the database, and stalls (a GC pause, a slow network) before
// writing it back to Redis. Meanwhile an admin changes the price through
// the HTTP API. The stalled reader then writes the old row over the cache.
// Unprotected, the catalog deletes cached copies once, before the update
// (naive.SingleDeleteCaches); protected, it deletes again after
// --double-delete-delay (the delayed double delete). The lab polls the item
// page and counts the seconds it shows the old price.
func init() {
	Register(Lab{
		Number:  5,
		Name:    "stale-cache",
		Summary: "an update without the second delete while a slow reader writes the old row back: seconds the stale price is served",
		Metric:  "stale_seconds",
		Better:  LowerIsBetter,
		Run:     runStaleCache,
	})
}

// staleUpdateAt is when the admin's update comes after the stalled reader
// has read the old row; staleWriteAfter is how long after the update's
// answer the stalled reader wakes up and writes the old row back.
const (
	staleUpdateAt   = 50 * time.Millisecond
	staleWriteAfter = 50 * time.Millisecond
)

// staleOldPrice is the item's price at the sale's opening, staleNewPrice
// the admin's update.
const staleOldPrice, staleNewPrice = 1000, 2000

// slowReader reads the database, then stalls until release is closed (the
// update has been answered) and a little longer, before handing the row
// up: the stall always spans the update, however slow the machine.
type slowReader struct {
	sale.ItemReader
	read    chan struct{} // closed once the row is read
	release chan struct{}
}

func (s *slowReader) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	it, err := s.ItemReader.Item(ctx, id)
	close(s.read)
	select {
	case <-s.release:
	case <-ctx.Done():
		return sale.Item{}, ctx.Err()
	}
	time.Sleep(staleWriteAfter)
	return it, err
}

// runStaleCache updates the price while a stalled reader on another
// instance holds the old row, then watches the item page for the seconds
// it shows the old price.
func runStaleCache(ctx context.Context, env *Env, mode Mode) (Result, error) {
	var swap func(*bootstrap.Parts)
	if mode == Unprotected {
		swap = func(p *bootstrap.Parts) { p.Caches = naive.NewSingleDeleteCaches(p.Caches) }
	}
	// The local cache's TTL is the backstop for lost invalidations (5 s by
	// default); shortened here, this instance's page shows within 100 ms
	// what Redis holds, which is what every other instance shows.
	tweak := func(c *config.Config) { c.LocalCacheTTL = 100 * time.Millisecond }
	sys, err := env.Start(ctx, tweak, swap)
	if err != nil {
		return Result{}, err
	}
	defer sys.Close()

	it, err := openSale(ctx, sys, "Lab 5: stale-cache", 100, staleOldPrice)
	if err != nil {
		return Result{}, err
	}
	// Let the second delete that follows the creation pass, so it cannot
	// clean up this lab's stale entry by luck.
	time.Sleep(sys.Config.DoubleDeleteDelay + 300*time.Millisecond)

	release, otherDone, err := startStalledReader(ctx, sys, mode, it.ID)
	defer release()
	if err != nil {
		return Result{}, err
	}
	time.Sleep(staleUpdateAt)

	sh := newShop(sys.URL(), 4)
	defer sh.close()
	env.Printf("a reader on another instance holds the old row; the admin sets the price from %d to %d", staleOldPrice, staleNewPrice)
	if err := setPrice(ctx, sh, sys.AdminToken, it.ID, staleNewPrice); err != nil {
		return Result{}, err
	}
	updated := time.Now()
	release()

	window := time.Duration(env.Scaled(3000, 1500)) * time.Millisecond
	env.Printf("watching the item page for %s", window)
	w, err := watchPrice(ctx, sh, it.ID, updated, window)
	if err != nil {
		return Result{}, err
	}
	if err := <-otherDone; err != nil {
		return Result{}, fmt.Errorf("the slow reader: %w", err)
	}
	ttl, _ := sys.Redis().TTL(ctx, rediscache.KeyPatterns(sys.Config.RedisPrefix, it.ID)[0]).Result()
	still := "no"
	if w.lastPrice == staleOldPrice {
		still = fmt.Sprintf("yes, for up to %s more (Redis TTL)", ttl.Round(time.Second))
	}
	return Result{
		Metric: float64(int64(w.stale.Seconds()*100+0.5)) / 100,
		Figures: []Figure{
			{"old price, new price", fmt.Sprintf("%d, %d", staleOldPrice, staleNewPrice)},
			{"page reads", itoa(int64(w.samples))},
			{"page reads showing the old price", itoa(int64(w.staleSamples))},
			{"watched for", window.String()},
			{"second delete after", map[Mode]string{Unprotected: "never", Protected: sys.Config.DoubleDeleteDelay.String()}[mode]},
			{"old price still served at the end", still},
		},
	}, nil
}

// startStalledReader starts the other instance's read of the item and
// returns once it has read the old row from the database; the row reaches
// that instance's Redis cache only after release is called (which is safe
// to call more than once, and must be called even on error), and otherDone
// gives the read's end.
func startStalledReader(ctx context.Context, sys *System, mode Mode, id sale.ItemID) (release func(), otherDone <-chan error, err error) {
	// The other instance's Redis item cache, as bootstrap builds it, over a
	// database read that stalls. Protected, bootstrap bounds every load by
	// the second delete's delay, so no load can outlive it; without the
	// second delete there is nothing to bound it by, and the cache's own
	// default (3 s) applies.
	slow := &slowReader{ItemReader: sys.Store(), read: make(chan struct{}), release: make(chan struct{})}
	opts := rediscache.Options{Prefix: sys.Config.RedisPrefix, TTL: sys.Config.RedisCacheTTL}
	if mode == Protected {
		opts.LoadTimeout = min(3*time.Second, sys.Config.DoubleDeleteDelay)
	}
	other := rediscache.New(sys.Redis(), slow, opts)
	released := false
	release = func() {
		if !released {
			released = true
			close(slow.release)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := other.Item(ctx, id); done <- err }()
	select {
	case <-slow.read:
	case <-time.After(5 * time.Second):
		return release, done, fmt.Errorf("the slow reader never read the database")
	}
	return release, done, nil
}

// setPrice sets the item's price through the admin API, and fails unless
// it answers 200.
func setPrice(ctx context.Context, sh *shop, adminToken string, id sale.ItemID, price int64) error {
	code, err := sh.do(ctx, http.MethodPatch, fmt.Sprintf("/api/v1/admin/items/%d", id), adminToken,
		map[string]int64{"price_cents": price}, nil)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("update the price: status %d, %v", code, err) //nolint:errorlint // the error is nil when only the status is wrong
	}
	return nil
}

// priceWatch is what the item page showed during the watch.
type priceWatch struct {
	stale                 time.Duration // time the page showed staleOldPrice
	samples, staleSamples int
	lastPrice             int64 // the price of the last read
}

// watchPrice reads the item page every 20 ms from since until window has
// passed, and adds up how long it showed staleOldPrice.
func watchPrice(ctx context.Context, sh *shop, id sale.ItemID, since time.Time, window time.Duration) (priceWatch, error) {
	var w priceWatch
	last := since
	for time.Since(since) < window {
		var page struct {
			PriceCents int64 `json:"price_cents"`
		}
		code, err := sh.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/items/%d", id), "", nil, &page)
		if err != nil || code != http.StatusOK {
			return w, fmt.Errorf("read the item page: status %d, %v", code, err) //nolint:errorlint // the error is nil when only the status is wrong
		}
		now := time.Now()
		if page.PriceCents == staleOldPrice {
			w.stale += now.Sub(last)
			w.staleSamples++
		}
		w.samples++
		last, w.lastPrice = now, page.PriceCents
		time.Sleep(20 * time.Millisecond)
	}
	return w, nil
}
