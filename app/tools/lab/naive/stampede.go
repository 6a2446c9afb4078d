// WRONG ON PURPOSE: lacks singleflight; the real one shares one load per
// key among concurrent misses (infra/rediscache/rediscache.go and
// infra/localcache/localcache.go, Reader.Item).

package naive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// CacheAsideReader is the item cache a newcomer writes: GET from Redis; on
// a miss, read the database and SET the answer. Every concurrent miss does
// its own database read, so a cold key under a crowd sends the whole crowd
// to the database at once (a cache stampede).
type CacheAsideReader struct {
	rdb    redis.UniversalClient
	next   sale.ItemReader
	prefix string
	ttl    time.Duration
	hold   func(context.Context)
}

// NewCacheAsideReader returns the naive cache in front of next, keeping its
// entries under prefix for ttl. hold, if not nil, runs between the miss
// and the database read: the lab widens the window there until every
// reader of the crowd has missed, so the stampede is the whole crowd on
// every run.
func NewCacheAsideReader(rdb redis.UniversalClient, next sale.ItemReader, prefix string, ttl time.Duration, hold func(context.Context)) *CacheAsideReader {
	return &CacheAsideReader{rdb: rdb, next: next, prefix: prefix, ttl: ttl, hold: hold}
}

// Item answers from Redis, or from the database on a miss.
func (r *CacheAsideReader) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	key := r.prefix + ":naive-item:" + id.String()
	if b, err := r.rdb.Get(ctx, key).Bytes(); err == nil {
		var it sale.Item
		if json.Unmarshal(b, &it) == nil {
			return it, nil
		}
	} else if !errors.Is(err, redis.Nil) {
		return sale.Item{}, fmt.Errorf("naive cache: get: %w", err)
	}
	if r.hold != nil {
		r.hold(ctx) // the window between the miss and the load, widened
	}
	it, err := r.next.Item(ctx, id) // every miss reads the database
	if err != nil {
		return sale.Item{}, err
	}
	if b, err := json.Marshal(it); err == nil {
		r.rdb.Set(ctx, key, b, r.ttl)
	}
	return it, nil
}

// Items is not cached: the lab reads single items.
func (r *CacheAsideReader) Items(ctx context.Context) ([]sale.Item, error) { return r.next.Items(ctx) }
