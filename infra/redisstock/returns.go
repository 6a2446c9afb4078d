package redisstock

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// Returned is what Return did for one item.
type Returned struct {
	Item sale.ItemID
	// Units is how many of the given orders' units this call put back;
	// orders returned before count 0.
	Units int64
	// Gen is the item's stock generation after the call; it moved only if
	// Units > 0.
	Gen int64
	// Missing is true when the ledger has no sale for the item (or, for a
	// split item, for one of the buckets the orders were bought from):
	// nothing was returned or marked there, and the rebuild will count
	// those returns.
	Missing bool
}

// Return puts back the unit of each order, once per order id however often
// it is called: call it only for orders the database has cancelled or
// expired. It runs one script per item, in one round trip, and bumps the
// generation of every item that got units back, so sold-out flags stamped
// before it are known to be stale. The buyers entry stays.
func (s *Store) Return(ctx context.Context, ids ...sale.OrderID) ([]Returned, error) {
	groups, err := s.groupByBucket(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("redisstock: return orders: %w", err)
	}
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		calls[i] = scriptCall{script: returnScript, keys: []string{g.keys.sale(), g.keys.returned()}, args: g.members()}
	}
	// Each unit goes back to the bucket it was bought from; a split item's
	// buckets are then reported as one item.
	var out []Returned
	index := map[sale.ItemID]int{}
	for i, cmd := range s.runScripts(ctx, calls) {
		item := groups[i].item
		v, err := ints(cmd, 3)
		if err != nil {
			return out, fmt.Errorf("redisstock: return orders of item %d: %w", item, err)
		}
		r := Returned{Item: item}
		switch v[0] {
		case codeReturnDone:
			r.Units, r.Gen = v[1], v[2]
		case codeReturnNotFound:
			r.Missing = true
		default:
			return out, fmt.Errorf("redisstock: return orders of item %d: unknown script code %d", item, v[0])
		}
		j, seen := index[item]
		if !seen {
			index[item] = len(out)
			out = append(out, r)
			continue
		}
		out[j].Units += r.Units
		out[j].Missing = out[j].Missing || r.Missing
	}
	for j, r := range out {
		ks, err := s.keysOf(ctx, r.Item)
		if err != nil {
			return out, err
		}
		// A bucket that is missing is left to the rebuild, as a missing
		// unsplit sale is; the units the other buckets took back stand.
		if len(ks) > 1 && (r.Units > 0 || !r.Missing) {
			if out[j].Gen, err = s.itemGen(ctx, ks); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// RestoreReturned marks orders the database has cancelled or expired as
// returned, without touching the stock: a repair calls it before it writes
// the stock it computed from the database (which already counts those
// returns), so a late Return of any of them is then a no-op. Marks already
// there stay.
func (s *Store) RestoreReturned(ctx context.Context, id sale.ItemID, ids []sale.OrderID) error {
	if len(ids) == 0 {
		return nil
	}
	groups, err := s.groupByBucket(ctx, ids)
	if err != nil {
		return fmt.Errorf("redisstock: restore returned orders of item %d: %w", id, err)
	}
	pipe := s.rdb.Pipeline()
	for _, g := range groups {
		for _, o := range g.ids {
			pipe.HSetNX(ctx, g.keys.returned(), string(o), 1)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstock: restore returned orders of item %d: %w", id, err)
	}
	return nil
}
