package lab

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"seckill/app/tools/lab/naive"
	"seckill/domain/sale"
	"seckill/infra/rediscache"
)

// The stampede lab: a crowd reads one item whose cache entry is cold (just
// expired, or Redis just restarted), all at once. Unprotected, each miss
// reads the database itself (naive.CacheAsideReader), and the lab holds
// every reader between its miss and its load until the whole crowd has
// missed, so the figure is 1,000 on every run; protected, the
// production Redis item cache (rediscache.Reader) lets concurrent misses
// share one load. The read path's protection sits below HTTP, and the
// local cache in front of it would hide it, so the lab reads through the
// shared Redis layer directly, on the running system's Redis and database.
func init() {
	Register(Lab{
		Number:  4,
		Name:    "stampede",
		Summary: "a cold cache without singleflight: database loads per 1,000 concurrent cold reads",
		Metric:  "db_loads_per_1000_reads",
		Better:  LowerIsBetter,
		Run:     runStampede,
	})
}

// countingReader counts the reads that reach the database.
type countingReader struct {
	sale.ItemReader
	loads atomic.Int64
}

func (c *countingReader) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	c.loads.Add(1)
	return c.ItemReader.Item(ctx, id)
}

func runStampede(ctx context.Context, env *Env, mode Mode) (Result, error) {
	sys, err := env.Start(ctx, nil, nil)
	if err != nil {
		return Result{}, err
	}
	defer sys.Close()

	it, err := openSale(ctx, sys, "Lab 4: stampede", 100, 1999)
	if err != nil {
		return Result{}, err
	}
	db := &countingReader{ItemReader: sys.Store()}
	// A namespace of its own, under the run's prefix: the entry is cold
	// whatever the system itself has cached.
	prefix := sys.Config.RedisPrefix + ":stampede"
	reads := env.Scaled(1000, 200)
	rounds := 3 // three cold keys in a row: the figure is their mean
	// Every reader of a round misses before any of them loads: the window
	// between the miss and the load, widened to hold the whole crowd. A
	// barrier per round; the readers of a round start after it is set.
	var hold *barrier
	var cache sale.ItemReader
	if mode == Unprotected {
		cache = naive.NewCacheAsideReader(sys.Redis(), db, prefix, sys.Config.RedisCacheTTL,
			func(ctx context.Context) { hold.Wait(ctx) })
	} else {
		cache = rediscache.New(sys.Redis(), db, rediscache.Options{Prefix: prefix, TTL: sys.Config.RedisCacheTTL})
	}

	env.Printf("%d cold reads of one item at once, %d times", reads, rounds)
	var failed atomic.Int64
	began := time.Now()
	for round := range rounds {
		if round > 0 {
			// Cold again: the entry expired, or Redis restarted.
			keys := rediscache.KeyPatterns(prefix, it.ID)
			sys.Redis().Del(ctx, append(keys, prefix+":naive-item:"+it.ID.String())...)
		}
		hold = newBarrier(reads, raceHold)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range reads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := cache.Item(ctx, it.ID); err != nil {
					failed.Add(1)
				}
				hold.Leave() // a reader that failed before the miss never arrived

			}()
		}
		close(start)
		wg.Wait()
	}
	took := time.Since(began)
	if n := failed.Load(); n > 0 {
		return Result{}, fmt.Errorf("%d reads failed", n)
	}
	loads := db.loads.Load()
	per := float64(loads) * 1000 / float64(reads*rounds)
	return Result{
		Metric: float64(int64(per + 0.5)),
		Figures: []Figure{
			{"concurrent cold reads", fmt.Sprintf("%d x %d", reads, rounds)},
			{"database loads", itoa(loads)},
			{"time for all reads", took.Round(time.Millisecond).String()},
		},
	}, nil
}
