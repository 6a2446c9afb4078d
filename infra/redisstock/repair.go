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

// Snapshot reads an item's sale and every pending order in one atomic step.
// A sale that is not live gives Exists=false, not an error.
func (s *Store) Snapshot(ctx context.Context, id sale.ItemID) (sale.LedgerSnapshot, error) {
	k := s.item(id)
	vals, err := s.runScript(ctx, snapshotScript, []string{k.sale(), k.pending()}).Slice()
	if err != nil {
		return sale.LedgerSnapshot{}, fmt.Errorf("redisstock: snapshot of item %d: %w", id, err)
	}
	if len(vals) < 8 || (len(vals)-8)%2 != 0 {
		return sale.LedgerSnapshot{}, fmt.Errorf("redisstock: snapshot of item %d: reply of %d values", id, len(vals))
	}
	var n [8]int64
	for i := range n {
		v, ok := vals[i].(int64)
		if !ok {
			return sale.LedgerSnapshot{}, fmt.Errorf("redisstock: snapshot of item %d: field %d is %T", id, i, vals[i])
		}
		n[i] = v
	}
	snap := sale.LedgerSnapshot{
		Exists: n[0] == 1, StockLeft: n[1], StockTotal: n[2], Gen: n[3],
		PriceCents: n[6],
	}
	if snap.Exists {
		snap.StartsAt, snap.EndsAt = time.UnixMilli(n[4]).UTC(), time.UnixMilli(n[5]).UTC()
	}
	for i := 8; i+1 < len(vals); i += 2 {
		oid, _ := vals[i].(string)
		rec, _ := vals[i+1].(string)
		o, _, err := decodeRecord(sale.OrderID(oid), rec)
		if err != nil {
			return sale.LedgerSnapshot{}, err
		}
		snap.Pending = append(snap.Pending, o)
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
func (s *Store) Repair(ctx context.Context, it sale.Item, snap sale.LedgerSnapshot, want int64) (gen int64, err error) {
	want = max(want, 0)
	existed, stock := "0", want
	if snap.Exists {
		existed, stock = "1", want-snap.StockLeft
	}
	// The index is another cluster slot, so it is written outside the
	// script and first, as Open does: at worst an indexed item with no
	// sale, never a sale the relay cannot find.
	if err := s.rdb.SAdd(ctx, s.itemsKey(), it.ID.String()).Err(); err != nil {
		return 0, fmt.Errorf("redisstock: repair item %d: %w", it.ID, err)
	}
	v, err := ints(s.runScript(ctx, repairScript, []string{s.item(it.ID).sale()},
		existed, snap.Gen, stock, it.StockTotal, it.StartsAt.UnixMilli(), it.EndsAt.UnixMilli(), it.PriceCents), 2)
	if err != nil {
		return 0, fmt.Errorf("redisstock: repair item %d: %w", it.ID, err)
	}
	switch v[0] {
	case codeRepairApplied:
		return v[1], nil
	case codeRepairConflict:
		return 0, fmt.Errorf("redisstock: repair item %d: %w", it.ID, ErrRepairConflict)
	}
	return 0, fmt.Errorf("redisstock: repair item %d: unknown script code %d", it.ID, v[0])
}

// Buyers returns the item's one-order-per-user records: user -> order.
func (s *Store) Buyers(ctx context.Context, id sale.ItemID) (map[sale.UserID]sale.OrderID, error) {
	m, err := s.rdb.HGetAll(ctx, s.item(id).buyers()).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstock: buyers of item %d: %w", id, err)
	}
	out := make(map[sale.UserID]sale.OrderID, len(m))
	for u, o := range m {
		out[sale.UserID(u)] = sale.OrderID(o)
	}
	return out, nil
}

// restoreChunk is how many hash fields one restoring HSET carries.
const restoreChunk = 1000

// RestoreBuyers writes the given user -> order records, which must be the
// database's live orders: a user with a live order in the database holds
// that order, whatever the ledger remembered. Other records are left alone.
// It is idempotent and safe while the sale runs.
func (s *Store) RestoreBuyers(ctx context.Context, id sale.ItemID, holders map[sale.UserID]sale.OrderID) error {
	fields := make([]any, 0, 2*min(len(holders), restoreChunk))
	flush := func() error {
		if len(fields) == 0 {
			return nil
		}
		err := s.rdb.HSet(ctx, s.item(id).buyers(), fields...).Err()
		fields = fields[:0]
		return err
	}
	for u, o := range holders {
		fields = append(fields, string(u), string(o))
		if len(fields) >= 2*restoreChunk {
			if err := flush(); err != nil {
				return fmt.Errorf("redisstock: restore buyers of item %d: %w", id, err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("redisstock: restore buyers of item %d: %w", id, err)
	}
	return nil
}

// RestoreRestockKeys records keys the database has applied, so a late retry
// of any of them is a repeat in the ledger too. Keys already there keep
// their value.
func (s *Store) RestoreRestockKeys(ctx context.Context, id sale.ItemID, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, key := range keys {
		pipe.HSetNX(ctx, s.item(id).restocks(), key, "restored")
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
