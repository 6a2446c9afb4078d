// Package flight is the load skeleton the two item cache tiers
// (infra/localcache, infra/rediscache) share: one load per miss among the
// callers that miss together, never joined across an invalidation, and a
// not-found answer remembered like an item.
package flight

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"

	"seckill/domain/sale"
)

// Loads shares loads among concurrent callers. The zero value is ready.
type Loads struct{ sf singleflight.Group }

// Item runs load once for every caller asking for id at the same epoch and
// returns its answer. The epoch (the cache's invalidation count) is part of
// the flight's key, so a caller arriving after an invalidation never joins
// a load that began before it. A caller whose ctx ends stops waiting
// without failing the load the others share.
func (l *Loads) Item(ctx context.Context, id sale.ItemID, epoch uint64, load func() (sale.Item, error)) (sale.Item, error) {
	return WaitItem(ctx, l.StartItem(id, epoch, load))
}

// StartItem starts the load Item would wait for, or joins the one under
// way, and returns where its answer will arrive: a cache that reloads an
// entry ahead of its expiry starts one without waiting.
func (l *Loads) StartItem(id sale.ItemID, epoch uint64, load func() (sale.Item, error)) <-chan singleflight.Result {
	return l.sf.DoChan("i"+id.String()+"@"+strconv.FormatUint(epoch, 10), func() (any, error) { return load() })
}

// WaitItem waits for a load StartItem began, or for ctx to end.
func WaitItem(ctx context.Context, ch <-chan singleflight.Result) (sale.Item, error) {
	select {
	case res := <-ch:
		if res.Err != nil {
			return sale.Item{}, res.Err
		}
		return res.Val.(sale.Item), nil
	case <-ctx.Done():
		return sale.Item{}, ctx.Err()
	}
}

// List is Item for the item list. Each caller gets its own copy: callers
// sharing a flight must not share a backing array.
func (l *Loads) List(ctx context.Context, epoch uint64, load func() ([]sale.Item, error)) ([]sale.Item, error) {
	return WaitList(ctx, l.StartList(epoch, load))
}

// StartList is StartItem for the item list.
func (l *Loads) StartList(epoch uint64, load func() ([]sale.Item, error)) <-chan singleflight.Result {
	return l.sf.DoChan("list@"+strconv.FormatUint(epoch, 10), func() (any, error) { return load() })
}

// WaitList is WaitItem for the list, with a copy of its own for the caller.
func WaitList(ctx context.Context, ch <-chan singleflight.Result) ([]sale.Item, error) {
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return slices.Clone(res.Val.([]sale.Item)), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Remember hands a load's answer to the cache: keep for an item, missing
// for sale.ErrNotFound (a negative entry, so a made-up id costs one load per
// negative TTL), and nothing for any other error, which must not be cached.
func Remember(it sale.Item, err error, keep func(sale.Item), missing func()) {
	switch {
	case err == nil:
		keep(it)
	case errors.Is(err, sale.ErrNotFound):
		missing()
	}
}

// Detach is the context a shared load runs in: cut loose from the caller
// who happened to start it (the others still wait for it), and bounded by
// timeout instead.
func Detach(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}
