package redisstock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// ErrRepairConflict means the sale moved between the snapshot and the
// repair in a way that would make the repair wrong (a restock or a release
// bumped its generation, or it appeared or vanished); take a new snapshot.
var ErrRepairConflict = errors.New("redisstock: the sale changed since the snapshot")

// Snapshot reads an item's sale and every pending order in one atomic step
// (a split item's buckets as of one moment, see readBuckets, with the units
// in transit between them counted as stock). A sale that is not live, or a
// split one with a bucket that is not, gives Exists=false, not an error.
func (s *Store) Snapshot(ctx context.Context, id sale.ItemID) (sale.LedgerSnapshot, error) {
	ks, err := s.keysOf(ctx, id)
	if err != nil {
		return sale.LedgerSnapshot{}, err
	}
	v, err := s.readBuckets(ctx, id, ks, 2)
	if err != nil {
		return sale.LedgerSnapshot{}, fmt.Errorf("redisstock: snapshot of item %d: %w", id, err)
	}
	snap := sale.LedgerSnapshot{Exists: true, StockLeft: v.inTransit}
	var window *bucketState
	for b := range v.states {
		st := &v.states[b]
		snap.Buckets = append(snap.Buckets, sale.BucketSnapshot{Exists: st.exists, Gen: st.gen, Total: st.total})
		// Pending records outlive a lost sale hash (they are other keys),
		// and the repair must still decide them.
		for i := 0; i+1 < len(st.records); i += 2 {
			o, _, err := decodeRecord(sale.OrderID(st.records[i]), st.records[i+1])
			if err != nil {
				return sale.LedgerSnapshot{}, err
			}
			snap.Pending = append(snap.Pending, o)
		}
		if !st.exists {
			snap.Exists = false
			continue
		}
		if window == nil {
			window = st
		}
		snap.StockLeft += st.stock
		snap.StockTotal += st.total
		snap.Gen += st.gen
	}
	if window != nil {
		// Bucket 0's window and price, or the first live bucket's: they
		// agree but for a moment after a change (SetWindow).
		snap.PriceCents = window.price
		snap.StartsAt, snap.EndsAt = time.UnixMilli(window.startsMS).UTC(), time.UnixMilli(window.endsMS).UTC()
	}
	if !snap.Exists && window == nil {
		snap.StockLeft = 0
	}
	slices.SortFunc(snap.Pending, func(a, b sale.Order) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return snap, nil
}

// Repair applies a reconciliation to the sale that snap was read from:
// the stock the database says it should have, the database's total, window
// and price, and a generation above any seen before (so every instance's
// sold-out flag clears). A sale that existed is corrected by the stock
// difference, which stays right while purchases run; a missing one is
// created. It returns ErrRepairConflict, changing nothing, if the sale
// moved in a way that makes the repair wrong. Buyers and restock keys are
// restored separately (RestoreBuyers, RestoreRestockKeys), before it.
//
// A split item is corrected in its bucket 0 (stock and total: moves carry
// the units on from there), after its other buckets' generations are
// checked against the snapshot; a bucket that is missing is recreated empty
// first. No script spans two slots, so the check of the other buckets and
// the script on bucket 0 are two steps, and those buckets can move in
// between. Nothing that runs there makes the stock difference wrong,
// provided want was computed as reconcile.Service.Repair computes it: with
// every pending order in snap undecided (it follows decided ones and looks
// again first), and with the database's restock keys and return marks
// restored before the call. Then a reservation, settle or release moves a
// unit between the stock and an order want counted as pending; a move
// keeps stock plus units in transit; a return is of an order cancelled
// after want was computed (an earlier one finds its mark and does nothing);
// a restock want left out adds its share to stock and total in each
// bucket. On bucket 0 a release, return or restock bumps the generation,
// and the script refuses. TestRepairGapOfASplitItem puts each of these in
// that gap (afterPeek) and checks that no unit is lost or made.
func (s *Store) Repair(ctx context.Context, it sale.Item, snap sale.LedgerSnapshot, want int64) (gen int64, err error) {
	want = max(want, 0)
	n := it.Buckets()
	ks := s.bucketKeys(it.ID, n)
	buckets := snap.Buckets
	if len(buckets) == 0 {
		// A snapshot from before buckets: one bucket, as it says.
		buckets = []sale.BucketSnapshot{{Exists: snap.Exists, Gen: snap.Gen, Total: snap.StockTotal}}
	}
	if len(buckets) != n {
		// The snapshot was read before this store knew the item's bucket
		// count (bucket 0 was lost with it): learn it, and have the caller
		// take a snapshot of every bucket.
		s.buckets.Store(it.ID, n)
		return 0, fmt.Errorf("redisstock: repair item %d: snapshot of %d buckets, item has %d: %w", it.ID, len(buckets), n, ErrRepairConflict)
	}
	// The index is another cluster slot, so it is written outside the
	// script and first, as Open does: at worst an indexed item with no
	// sale, never a sale the relay cannot find.
	if err := s.rdb.SAdd(ctx, s.itemsKey(), it.ID.String()).Err(); err != nil {
		return 0, fmt.Errorf("redisstock: repair item %d: %w", it.ID, err)
	}
	var othersTotal int64
	if n > 1 {
		states, err := s.peek(ctx, it.ID, ks, 0)
		if err != nil {
			return 0, fmt.Errorf("redisstock: repair item %d: %w", it.ID, err)
		}
		for b := 1; b < n; b++ {
			was, now := buckets[b], states[b]
			if was.Exists != now.exists || (now.exists && was.Gen != now.gen) {
				return 0, fmt.Errorf("redisstock: repair item %d bucket %d: %w", it.ID, b, ErrRepairConflict)
			}
			if !now.exists {
				err := s.runScript(ctx, openScript, []string{ks[b].sale()}, 0, it.StartsAt.UnixMilli(), it.EndsAt.UnixMilli(), it.PriceCents, n).Err()
				if err != nil {
					return 0, fmt.Errorf("redisstock: repair item %d bucket %d: %w", it.ID, b, err)
				}
				continue
			}
			othersTotal += now.total
			if now.startsMS != it.StartsAt.UnixMilli() || now.endsMS != it.EndsAt.UnixMilli() || now.price != it.PriceCents {
				err := s.runScript(ctx, openScript, []string{ks[b].sale()}, 0, it.StartsAt.UnixMilli(), it.EndsAt.UnixMilli(), it.PriceCents, n).Err()
				if err != nil {
					return 0, fmt.Errorf("redisstock: repair item %d bucket %d: %w", it.ID, b, err)
				}
			}
		}
		if s.afterPeek != nil {
			s.afterPeek()
		}
	}
	existed, stock := "0", want-snap.StockLeft
	if buckets[0].Exists {
		existed = "1"
	}
	v, err := ints(s.runScript(ctx, repairScript, []string{ks[0].sale()},
		existed, buckets[0].Gen, stock, it.StockTotal-othersTotal, it.StartsAt.UnixMilli(), it.EndsAt.UnixMilli(), it.PriceCents, n), 2)
	if err != nil {
		return 0, fmt.Errorf("redisstock: repair item %d: %w", it.ID, err)
	}
	switch v[0] {
	case codeRepairApplied:
		s.buckets.Store(it.ID, n)
		if n > 1 {
			return s.itemGen(ctx, ks)
		}
		return v[1], nil
	case codeRepairConflict:
		return 0, fmt.Errorf("redisstock: repair item %d: %w", it.ID, ErrRepairConflict)
	}
	return 0, fmt.Errorf("redisstock: repair item %d: unknown script code %d", it.ID, v[0])
}

// Buyers returns the item's one-order-per-user records, over all its
// buckets: user -> order.
func (s *Store) Buyers(ctx context.Context, id sale.ItemID) (map[sale.UserID]sale.OrderID, error) {
	ks, err := s.keysOf(ctx, id)
	if err != nil {
		return nil, err
	}
	out := map[sale.UserID]sale.OrderID{}
	for _, k := range ks {
		m, err := s.rdb.HGetAll(ctx, k.buyers()).Result()
		if err != nil {
			return nil, fmt.Errorf("redisstock: buyers of item %d: %w", id, err)
		}
		for u, o := range m {
			out[sale.UserID(u)] = sale.OrderID(o)
		}
	}
	return out, nil
}

// restoreChunk is how many hash fields one restoring HSET carries.
const restoreChunk = 1000

// RestoreBuyers writes the given user -> order records, which must be the
// database's live orders: a user with a live order in the database holds
// that order, whatever the ledger remembered. Each record goes to the
// bucket its order was bought from, the user's home bucket. Other records
// are left alone. It is idempotent and safe while the sale runs.
func (s *Store) RestoreBuyers(ctx context.Context, id sale.ItemID, holders map[sale.UserID]sale.OrderID) error {
	ks, err := s.keysOf(ctx, id)
	if err != nil {
		return err
	}
	fields := make([][]any, len(ks))
	flush := func(b int) error {
		if len(fields[b]) == 0 {
			return nil
		}
		err := s.rdb.HSet(ctx, ks[b].buyers(), fields[b]...).Err()
		fields[b] = fields[b][:0]
		return err
	}
	for u, o := range holders {
		b := o.Bucket()
		if b >= len(ks) {
			continue // not an order of this item's buckets
		}
		fields[b] = append(fields[b], string(u), string(o))
		if len(fields[b]) >= 2*restoreChunk {
			if err := flush(b); err != nil {
				return fmt.Errorf("redisstock: restore buyers of item %d: %w", id, err)
			}
		}
	}
	for b := range fields {
		if err := flush(b); err != nil {
			return fmt.Errorf("redisstock: restore buyers of item %d: %w", id, err)
		}
	}
	return nil
}

// RestoreRestockKeys records keys the database has applied, in every bucket
// (a split restock applies its shares per bucket), so a late retry of any
// of them is a repeat in the ledger too. Keys already there keep their
// value.
func (s *Store) RestoreRestockKeys(ctx context.Context, id sale.ItemID, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	ks, err := s.keysOf(ctx, id)
	if err != nil {
		return err
	}
	pipe := s.rdb.Pipeline()
	for _, k := range ks {
		for _, key := range keys {
			pipe.HSetNX(ctx, k.restocks(), key, "restored")
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstock: restore restock keys of item %d: %w", id, err)
	}
	return nil
}

// LockRepair takes the item's repair lock for ttl, so that one instance at a
// time repairs an item; ok is false if another holds it. unlock releases it
// only if it is still this holder's.
func (s *Store) LockRepair(ctx context.Context, id sale.ItemID, ttl time.Duration) (unlock func(), ok bool, err error) {
	key := s.item(id).repairing()
	token := fmt.Sprintf("%d", time.Now().UnixNano())
	ok, err = s.rdb.SetNX(ctx, key, token, ttl).Result()
	if err != nil || !ok {
		return func() {}, false, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = unlockScript.Run(ctx, s.rdb, []string{key}, token).Err()
	}, true, nil
}

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
