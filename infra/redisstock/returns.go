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
	// Missing is true when the ledger has no sale for the item: nothing was
	// returned or marked, and the rebuild will count the returns.
	Missing bool
}

// Return puts back the unit of each order, once per order id however often
// it is called: call it only for orders the database has cancelled or
// expired. It runs one script per item, in one round trip, and bumps the
// generation of every item that got units back, so sold-out flags stamped
// before it are known to be stale. The buyers entry stays.
func (s *Store) Return(ctx context.Context, ids ...sale.OrderID) ([]Returned, error) {
	groups := groupByItem(ids)
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		k := s.item(g.item)
		calls[i] = scriptCall{script: returnScript, keys: []string{k.sale(), k.returned()}, args: g.members()}
	}
	out := make([]Returned, 0, len(groups))
	for i, cmd := range s.runScripts(ctx, calls) {
		v, err := ints(cmd, 3)
		if err != nil {
			return out, fmt.Errorf("redisstock: return orders of item %d: %w", groups[i].item, err)
		}
		switch v[0] {
		case codeReturnDone:
			out = append(out, Returned{Item: groups[i].item, Units: v[1], Gen: v[2]})
		case codeReturnNotFound:
			out = append(out, Returned{Item: groups[i].item, Missing: true})
		default:
			return out, fmt.Errorf("redisstock: return orders of item %d: unknown script code %d", groups[i].item, v[0])
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
	pipe := s.rdb.Pipeline()
	for _, o := range ids {
		pipe.HSetNX(ctx, s.item(id).returned(), string(o), 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstock: restore returned orders of item %d: %w", id, err)
	}
	return nil
}
