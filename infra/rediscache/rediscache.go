// Package rediscache keeps item data in Redis, shared by every instance,
// between each instance's local cache and MySQL.
//
// Reader decorates any sale.ItemReader. An item lives under
// "<prefix>:item:<id>" and the list under "<prefix>:items:list", as JSON, for
// TTL (with a little jitter so entries filled together do not expire
// together); a not-found answer is remembered for NegativeTTL. Concurrent
// misses in one process share a single load. When Redis fails, reads fall
// through to the next reader rather than failing the page.
//
// Only item data is kept here. Live stock is in the stock ledger's own keys,
// which this package never reads, writes or deletes.
package rediscache

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
	"seckill/infra/internal/flight"
)

var _ sale.ItemReader = (*Reader)(nil)

// Options configures a Reader. Zero fields take their defaults.
type Options struct {
	// Prefix starts every key; default "seckill".
	Prefix string
	// TTL bounds how long an entry lives; default 10m. Invalidate is what
	// keeps entries fresh; TTL only ages out what nobody reads.
	TTL time.Duration
	// NegativeTTL is how long a not-found answer is remembered; default 2s.
	NegativeTTL time.Duration
	// LoadTimeout bounds one shared load from the next layer, including
	// writing its result to Redis; default 3s.
	LoadTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = "seckill"
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Minute
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 2 * time.Second
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = 3 * time.Second
	}
	return o
}

// Stats is a snapshot of a Reader's counters since New.
type Stats struct {
	Hits         uint64 // answered from Redis with an item or the list
	Misses       uint64 // callers that found nothing usable in Redis
	NegativeHits uint64 // answered ErrNotFound from Redis
	Loads        uint64 // calls made to the next reader
	RedisErrors  uint64 // Redis commands that failed; reads fell through
	DecodeErrors uint64 // values in Redis that could not be read; treated as misses
}

// Reader is a sale.ItemReader that serves from Redis and falls back to the
// reader it decorates. It is safe for concurrent use.
type Reader struct {
	rdb     redis.UniversalClient
	next    sale.ItemReader
	opts    Options
	flights flight.Loads

	// epoch counts this process's invalidations. A store checks it and
	// writes under mu's read lock; Invalidate bumps it under the write lock
	// before deleting. So a load from this process that began before an
	// Invalidate has either written before the DEL or not at all. Loads in
	// other processes are what the app's delayed second delete is for.
	mu    sync.RWMutex
	epoch atomic.Uint64

	hits, misses, negHits, loads, redisErrs, decodeErrs atomic.Uint64
}

// New returns a Reader in front of next that keeps its entries in rdb.
func New(rdb redis.UniversalClient, next sale.ItemReader, opts Options) *Reader {
	return &Reader{rdb: rdb, next: next, opts: opts.withDefaults()}
}

// notFound is stored for a missing item. JSON objects start with '{', so it
// cannot be mistaken for one.
const notFound = "-"

// KeyPatterns lists every key a Reader with this prefix uses, for item id,
// built by the same functions the Reader uses. It exists so the docs test
// can check the key tables.
func KeyPatterns(prefix string, id sale.ItemID) []string {
	r := &Reader{opts: Options{Prefix: prefix}}
	return []string{r.itemKey(id), r.listKey()}
}

func (r *Reader) itemKey(id sale.ItemID) string {
	return r.opts.Prefix + ":item:" + id.String()
}

func (r *Reader) listKey() string { return r.opts.Prefix + ":items:list" }

// outcome is what a GET found.
type outcome int

const (
	absent  outcome = iota // no usable value: a miss
	present                // an item or a list
	missing                // a remembered not-found
	failed                 // Redis did not answer
)

// Item returns the item from Redis, or loads it from the next reader and
// stores the answer; ErrNotFound is remembered for NegativeTTL. A Redis
// failure sends the read to the next reader. A caller whose ctx ends stops
// waiting, without failing the shared load.
func (r *Reader) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	key := r.itemKey(id)
	it, got := r.getItem(ctx, key)
	switch got {
	case present:
		r.hits.Add(1)
		return it, nil
	case missing:
		r.negHits.Add(1)
		return sale.Item{}, sale.ErrNotFound
	case failed:
		if ctx.Err() != nil {
			// The caller is gone; do not load on its behalf.
			return sale.Item{}, ctx.Err()
		}
	}
	r.misses.Add(1)
	redisUp := got != failed

	epoch := r.epoch.Load()
	return r.flights.Item(ctx, id, epoch, func() (sale.Item, error) {
		lctx, cancel := flight.Detach(ctx, r.opts.LoadTimeout)
		defer cancel()
		if redisUp {
			// A flight that finished between our GET and this one has
			// filled the key already; one more GET, by the leader only,
			// keeps it to one load per fill.
			switch it, got := r.getItem(lctx, key); got {
			case present:
				return it, nil
			case missing:
				return sale.Item{}, sale.ErrNotFound
			}
		}
		r.loads.Add(1)
		it, err := r.next.Item(lctx, id)
		// Skip the write when the read just failed: Redis is likely down,
		// and waiting for a second failure only slows the page.
		if redisUp {
			flight.Remember(it, err, func(it sale.Item) {
				if b, merr := json.Marshal(fromDomain(it)); merr == nil {
					r.store(lctx, epoch, key, b, r.jitter(r.opts.TTL))
				}
			}, func() { r.store(lctx, epoch, key, []byte(notFound), r.opts.NegativeTTL) })
		}
		return it, err
	})
}

// Items returns the list from Redis, or loads it from the next reader and
// stores it for TTL. A Redis failure sends the read to the next reader. The
// caller owns the returned slice.
func (r *Reader) Items(ctx context.Context) ([]sale.Item, error) {
	key := r.listKey()
	items, got := r.getList(ctx, key)
	switch got {
	case present:
		r.hits.Add(1)
		return items, nil
	case failed:
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	r.misses.Add(1)
	redisUp := got != failed

	epoch := r.epoch.Load()
	return r.flights.List(ctx, epoch, func() ([]sale.Item, error) {
		lctx, cancel := flight.Detach(ctx, r.opts.LoadTimeout)
		defer cancel()
		if redisUp {
			if items, got := r.getList(lctx, key); got == present {
				return items, nil
			}
		}
		r.loads.Add(1)
		items, err := r.next.Items(lctx)
		if err != nil {
			return nil, err
		}
		items = slices.Clone(items)
		if redisUp {
			rows := make([]itemRow, len(items))
			for i, it := range items {
				rows[i] = fromDomain(it)
			}
			if b, merr := json.Marshal(rows); merr == nil {
				r.store(lctx, epoch, key, b, r.jitter(r.opts.TTL))
			}
		}
		return items, nil
	})
}

func (r *Reader) getItem(ctx context.Context, key string) (sale.Item, outcome) {
	val, got := r.get(ctx, key)
	if got != present {
		return sale.Item{}, got
	}
	if val == notFound {
		return sale.Item{}, missing
	}
	var row itemRow
	if err := json.Unmarshal([]byte(val), &row); err != nil {
		// Written by another version of this code, or damaged: treat it as
		// a miss so the load overwrites it.
		r.decodeErrs.Add(1)
		return sale.Item{}, absent
	}
	return row.toDomain(), present
}

func (r *Reader) getList(ctx context.Context, key string) ([]sale.Item, outcome) {
	val, got := r.get(ctx, key)
	if got != present {
		return nil, got
	}
	var rows []itemRow
	if err := json.Unmarshal([]byte(val), &rows); err != nil {
		r.decodeErrs.Add(1)
		return nil, absent
	}
	items := make([]sale.Item, len(rows))
	for i, row := range rows {
		items[i] = row.toDomain()
	}
	return items, present
}

func (r *Reader) get(ctx context.Context, key string) (string, outcome) {
	val, err := r.rdb.Get(ctx, key).Result()
	switch {
	case err == nil:
		return val, present
	case errors.Is(err, redis.Nil):
		return "", absent
	case ctx.Err() != nil:
		// The caller's own deadline, not a Redis fault.
		return "", failed
	}
	r.redisErrs.Add(1)
	return "", failed
}

// Invalidate deletes the item's entry and the list. When it returns nil,
// neither key holds a value that this process loaded before the call; it
// waits for stores already under way, which LoadTimeout bounds.
func (r *Reader) Invalidate(ctx context.Context, id sale.ItemID) error {
	r.mu.Lock()
	r.epoch.Add(1)
	r.mu.Unlock()
	// Two DELs, not one: the item's key and the list are in different
	// cluster slots, and Redis Cluster refuses a multi-key command across
	// slots (CROSSSLOT). A plain pipeline keeps one round trip on a single
	// node; on a cluster go-redis sends each DEL to the node owning its key.
	pipe := r.rdb.Pipeline()
	pipe.Del(ctx, r.itemKey(id))
	pipe.Del(ctx, r.listKey())
	if _, err := pipe.Exec(ctx); err != nil {
		r.redisErrs.Add(1)
		return err
	}
	return nil
}

// Stats returns the counters; each is read atomically, the set is not a
// consistent snapshot.
func (r *Reader) Stats() Stats {
	return Stats{
		Hits:         r.hits.Load(),
		Misses:       r.misses.Load(),
		NegativeHits: r.negHits.Load(),
		Loads:        r.loads.Load(),
		RedisErrors:  r.redisErrs.Load(),
		DecodeErrors: r.decodeErrs.Load(),
	}
}

// store writes val unless this process invalidated since epoch was read.
// The read lock spans the SET so that Invalidate's DEL comes after it.
func (r *Reader) store(ctx context.Context, epoch uint64, key string, val []byte, ttl time.Duration) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.epoch.Load() != epoch {
		return
	}
	if err := r.rdb.Set(ctx, key, val, ttl).Err(); err != nil {
		r.redisErrs.Add(1)
	}
}

// jitter shortens ttl by up to a tenth, so that entries filled together (a
// cold start, a flush) do not all expire in the same instant.
func (r *Reader) jitter(ttl time.Duration) time.Duration {
	return ttl - time.Duration(rand.Int64N(int64(ttl)/10+1)) //nolint:gosec // G404: jitter only spreads expiries; it needs no unpredictability
}

// itemRow is the JSON stored in Redis. Short names keep entries small; the
// layout is private to this package.
type itemRow struct {
	ID           int64     `json:"id"`
	Name         string    `json:"n"`
	Description  string    `json:"d"`
	PriceCents   int64     `json:"p"`
	StockTotal   int64     `json:"st"`
	StockLeft    int64     `json:"sl"`
	StartsAt     time.Time `json:"s"`
	EndsAt       time.Time `json:"e"`
	PurchaseRate int64     `json:"r"`
	StockBuckets int       `json:"b,omitempty"` // absent in entries written before buckets: 1
	// Protection is absent from entries written before protections
	// existed; those items were all "none", which "" means.
	Protection string    `json:"pr,omitempty"`
	Version    int64     `json:"v"`
	CreatedAt  time.Time `json:"c"`
	UpdatedAt  time.Time `json:"u"`
	// The waiting room, absent from entries of items without one.
	AdmitPerSecond int64 `json:"ap,omitempty"`
	MaxActive      int64 `json:"ma,omitempty"`
}

func fromDomain(it sale.Item) itemRow {
	return itemRow{
		ID: int64(it.ID), Name: it.Name, Description: it.Description,
		PriceCents: it.PriceCents, StockTotal: it.StockTotal, StockLeft: it.StockLeft,
		StartsAt: it.StartsAt, EndsAt: it.EndsAt, PurchaseRate: it.PurchaseRate,
		StockBuckets: it.StockBuckets, Protection: string(it.Protection),
		Version: it.Version, CreatedAt: it.CreatedAt, UpdatedAt: it.UpdatedAt,

		AdmitPerSecond: it.AdmitPerSecond, MaxActive: it.MaxActive,
	}
}

func (row itemRow) toDomain() sale.Item {
	return sale.Item{
		ID: sale.ItemID(row.ID), Name: row.Name, Description: row.Description,
		PriceCents: row.PriceCents, StockTotal: row.StockTotal, StockLeft: row.StockLeft,
		StartsAt: row.StartsAt, EndsAt: row.EndsAt, PurchaseRate: row.PurchaseRate,
		StockBuckets: max(row.StockBuckets, 1),
		Protection:   sale.Protection(row.Protection).OrNone(),
		Version:      row.Version, CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt,

		AdmitPerSecond: row.AdmitPerSecond, MaxActive: row.MaxActive,
	}
}
