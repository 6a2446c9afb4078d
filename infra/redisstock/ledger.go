package redisstock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// Open makes an item's stock and window live. A new sale starts with
// stock = total = it.StockTotal and gen 0; an open one gets only its window
// and price refreshed, so calling Open twice never resets a running sale.
func (s *Store) Open(ctx context.Context, it sale.Item) error {
	if it.ID <= 0 || it.StockTotal < 0 || !it.EndsAt.After(it.StartsAt) {
		return fmt.Errorf("redisstock: open item %d: %w", it.ID, sale.ErrInvalid)
	}
	// The item joins the index before its sale exists, and outside the
	// script because the index is not in the item's cluster slot. In this
	// order a failure leaves at worst an indexed item with no sale, which
	// Unpublished skips, never an open sale that Unpublished cannot see.
	if err := s.rdb.SAdd(ctx, s.itemsKey(), it.ID.String()).Err(); err != nil {
		return fmt.Errorf("redisstock: open item %d: %w", it.ID, err)
	}
	err := s.runScript(ctx, openScript, []string{s.item(it.ID).sale()},
		it.StockTotal, it.StartsAt.UnixMilli(), it.EndsAt.UnixMilli(), it.PriceCents).Err()
	if err != nil {
		return fmt.Errorf("redisstock: open item %d: %w", it.ID, err)
	}
	return nil
}

// SetWindow moves a live item's sale window, or returns ErrNotFound if the
// item was never opened.
func (s *Store) SetWindow(ctx context.Context, id sale.ItemID, startsAt, endsAt time.Time) error {
	if id <= 0 || !endsAt.After(startsAt) {
		return fmt.Errorf("redisstock: set window of item %d: %w", id, sale.ErrInvalid)
	}
	code, err := s.runScript(ctx, setWindowScript, []string{s.item(id).sale()},
		startsAt.UnixMilli(), endsAt.UnixMilli()).Int64()
	if err != nil {
		return fmt.Errorf("redisstock: set window of item %d: %w", id, err)
	}
	switch code {
	case codeWindowSet:
		return nil
	case codeWindowNotFound:
		return fmt.Errorf("redisstock: set window of item %d: %w", id, sale.ErrNotFound)
	}
	return fmt.Errorf("redisstock: set window of item %d: unknown script code %d", id, code)
}

// StockLeft returns the live stock of each open id, in one round trip; ids
// that are not open are absent from the map.
func (s *Store) StockLeft(ctx context.Context, ids ...sale.ItemID) (map[sale.ItemID]int64, error) {
	out := make(map[sale.ItemID]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, s.item(id).sale(), "stock")
	}
	// Per-command errors are read below; redis.Nil (not open) is not one.
	_, _ = pipe.Exec(ctx)
	for i, cmd := range cmds {
		n, err := cmd.Int64()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("redisstock: stock of item %d: %w", ids[i], err)
		}
		out[ids[i]] = n
	}
	return out, nil
}

// Restock adds units to a live item's stock and total and bumps its
// generation, at most once per (item, key): a repeat returns applied=false
// with the current generation. The key is kept as long as the sale, so a
// retry can never apply twice. It returns ErrNotFound if the sale is not
// live (never opened, or its ledger was lost and is being rebuilt).
func (s *Store) Restock(ctx context.Context, id sale.ItemID, add int64, key string) (bool, int64, error) {
	if id <= 0 || add <= 0 || key == "" {
		return false, 0, fmt.Errorf("redisstock: restock item %d: %w", id, sale.ErrInvalid)
	}
	k := s.item(id)
	cmd := s.runScript(ctx, restockScript, []string{k.sale(), k.restocks()}, add, key)
	v, err := ints(cmd, 2)
	if err != nil {
		return false, 0, fmt.Errorf("redisstock: restock item %d: %w", id, err)
	}
	switch v[0] {
	case codeRestockApplied:
		return true, v[1], nil
	case codeRestockRepeat:
		return false, v[1], nil
	case codeRestockNotFound:
		return false, 0, fmt.Errorf("redisstock: restock item %d: %w", id, sale.ErrNotFound)
	}
	return false, 0, fmt.Errorf("redisstock: restock item %d: unknown script code %d", id, v[0])
}

// Lookup returns a pending order with status queued; an unknown or
// malformed id gives ErrOrderNotFound.
func (s *Store) Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error) {
	if _, err := sale.ParseOrderID(string(id)); err != nil {
		return sale.Order{}, fmt.Errorf("redisstock: lookup %q: %w", id, sale.ErrOrderNotFound)
	}
	rec, err := s.rdb.HGet(ctx, s.item(id.Item()).pending(), string(id)).Result()
	if errors.Is(err, redis.Nil) {
		return sale.Order{}, fmt.Errorf("redisstock: lookup %s: %w", id, sale.ErrOrderNotFound)
	}
	if err != nil {
		return sale.Order{}, fmt.Errorf("redisstock: lookup %s: %w", id, err)
	}
	o, _, err := decodeRecord(id, rec)
	return o, err
}

// Due takes up to limit pending orders, across all items, whose next look
// is due by the ledger's clock, and postpones each by FirstLook so that
// relays on other instances skip them meanwhile. Each comes with its age
// since acceptance, also by the ledger's clock. Orders whose record predates
// the acceptance stamp are aged from their creation time.
func (s *Store) Due(ctx context.Context, limit int) ([]sale.DueOrder, error) {
	if limit <= 0 {
		return nil, nil
	}
	members, err := s.rdb.SMembers(ctx, s.itemsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstock: due: %w", err)
	}
	var items []sale.ItemID
	var calls []scriptCall
	for _, m := range members {
		id, err := sale.ParseItemID(m)
		if err != nil {
			continue // not ours; the index holds only ids Open wrote
		}
		k := s.item(id)
		items = append(items, id)
		calls = append(calls, scriptCall{script: dueScript, keys: []string{k.outbox(), k.pending()},
			args: []any{limit, s.firstLook.Milliseconds()}})
	}
	var out []sale.DueOrder
	for i, cmd := range s.runScripts(ctx, calls) {
		vals, err := cmd.Slice()
		if err != nil {
			return nil, fmt.Errorf("redisstock: due orders of item %d: %w", items[i], err)
		}
		if len(vals) == 0 || len(vals)%2 != 1 {
			return nil, fmt.Errorf("redisstock: due orders of item %d: reply of %d values", items[i], len(vals))
		}
		nowMS, ok := vals[0].(int64)
		if !ok {
			return nil, fmt.Errorf("redisstock: due orders of item %d: clock is %T", items[i], vals[0])
		}
		now := time.UnixMilli(nowMS)
		for j := 1; j+1 < len(vals); j += 2 {
			id, _ := vals[j].(string)
			rec, _ := vals[j+1].(string)
			o, accepted, err := decodeRecord(sale.OrderID(id), rec)
			if err != nil {
				return nil, err
			}
			if accepted.IsZero() {
				accepted = o.CreatedAt
			}
			out = append(out, sale.DueOrder{Order: o, Age: now.Sub(accepted)})
		}
	}
	return out, nil
}

// MarkPublished records that the orders reached the order queue: each is
// next due RepublishAfter from now, by the ledger's clock. Orders no longer
// pending are left alone. One script per item, in one round trip.
func (s *Store) MarkPublished(ctx context.Context, ids ...sale.OrderID) error {
	return s.postpone(ctx, "mark published", s.republish, ids)
}

func (s *Store) postpone(ctx context.Context, op string, delay time.Duration, ids []sale.OrderID) error {
	groups := groupByItem(ids)
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		calls[i] = scriptCall{script: postponeScript, keys: []string{s.item(g.item).outbox()},
			args: append([]any{delay.Milliseconds()}, g.members()...)}
	}
	for i, cmd := range s.runScripts(ctx, calls) {
		if err := cmd.Err(); err != nil {
			return fmt.Errorf("redisstock: %s orders of item %d: %w", op, groups[i].item, err)
		}
	}
	return nil
}

// Settle drops the pending and outbox records of orders the database holds
// as confirmed, one script per item in one round trip; the user's buyers
// entry stays, so they still hold their one order. Unknown ids are a no-op.
func (s *Store) Settle(ctx context.Context, ids ...sale.OrderID) error {
	groups := groupByItem(ids)
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		calls[i] = scriptCall{script: settleScript, keys: s.item(g.item).settleKeys(), args: g.members()}
	}
	for i, cmd := range s.runScripts(ctx, calls) {
		if err := cmd.Err(); err != nil {
			return fmt.Errorf("redisstock: settle orders of item %d: %w", groups[i].item, err)
		}
	}
	return nil
}

// Release gives a failed order's unit and its user's slot back and bumps
// the generation, exactly once: the pending record is deleted in the same
// step, so a second call (a redelivery, another relay, a repair) returns
// released=false and changes nothing. Call it only for an order the
// database has recorded as failed.
func (s *Store) Release(ctx context.Context, id sale.OrderID) (bool, int64, error) {
	item := id.Item()
	if item <= 0 {
		// Never a pending order: Reserve only records checked ids.
		return false, 0, nil
	}
	k := s.item(item)
	cmd := s.runScript(ctx, releaseScript, []string{k.sale(), k.buyers(), k.pending(), k.outbox()}, string(id))
	v, err := ints(cmd, 2)
	if err != nil {
		return false, 0, fmt.Errorf("redisstock: release %s: %w", id, err)
	}
	switch v[0] {
	case codeReleaseReleased:
		return true, v[1], nil
	case codeReleaseUnknown, codeReleaseNotFound:
		return false, v[1], nil
	case codeReleaseBadRecord:
		return false, v[1], fmt.Errorf("redisstock: release %s: malformed pending record", id)
	}
	return false, 0, fmt.Errorf("redisstock: release %s: unknown script code %d", id, v[0])
}

// Counts returns the ledger's accounting for an item in one atomic read, or
// ErrNotFound if its sale is not live. Overdue counts the pending orders
// accepted more than RepublishAfter ago by the ledger's clock.
func (s *Store) Counts(ctx context.Context, id sale.ItemID) (sale.Counts, error) {
	k := s.item(id)
	v, err := ints(s.runScript(ctx, countsScript, []string{k.sale(), k.pending()}, s.republish.Milliseconds()), 6)
	if err != nil {
		return sale.Counts{}, fmt.Errorf("redisstock: counts of item %d: %w", id, err)
	}
	if v[0] == 0 {
		return sale.Counts{}, fmt.Errorf("redisstock: counts of item %d: %w", id, sale.ErrNotFound)
	}
	return sale.Counts{StockTotal: v[1], StockLeft: v[2], Gen: v[3], Pending: v[4], Overdue: v[5]}, nil
}

// itemGroup is the ids of one item and their positions in the caller's list.
type itemGroup struct {
	item sale.ItemID
	ids  []sale.OrderID
	pos  []int
}

func (g itemGroup) members() []any {
	out := make([]any, len(g.ids))
	for i, id := range g.ids {
		out[i] = string(id)
	}
	return out
}

// groupByItem groups ids by the item in their prefix, in order of first
// appearance; ids with no valid item are left out.
func groupByItem(ids []sale.OrderID) []itemGroup {
	var groups []itemGroup
	index := make(map[sale.ItemID]int)
	for pos, id := range ids {
		item := id.Item()
		if item <= 0 {
			continue
		}
		gi, ok := index[item]
		if !ok {
			gi = len(groups)
			index[item] = gi
			groups = append(groups, itemGroup{item: item})
		}
		groups[gi].ids = append(groups[gi].ids, id)
		groups[gi].pos = append(groups[gi].pos, pos)
	}
	return groups
}
