package redisstock

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
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
// generation; with the same non-empty key it applies at most once within
// 24 hours, and a repeat returns applied=false with the current generation.
func (s *Store) Restock(ctx context.Context, id sale.ItemID, add int64, key string) (bool, int64, error) {
	if id <= 0 || add <= 0 {
		return false, 0, fmt.Errorf("redisstock: restock item %d: %w", id, sale.ErrInvalid)
	}
	k := s.item(id)
	keys := []string{k.sale()}
	if key != "" {
		keys = append(keys, k.idem(key))
	}
	cmd := s.runScript(ctx, restockScript, keys, add, idemTTL.Milliseconds())
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

// Lookup returns a pending order with status queued or a failed order with
// its reason; an unknown or malformed id gives ErrOrderNotFound.
func (s *Store) Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error) {
	if _, err := sale.ParseOrderID(string(id)); err != nil {
		return sale.Order{}, fmt.Errorf("redisstock: lookup %q: %w", id, sale.ErrOrderNotFound)
	}
	k := s.item(id.Item())
	pipe := s.rdb.Pipeline()
	pending := pipe.HGet(ctx, k.pending(), string(id))
	failed := pipe.HGet(ctx, k.failed(), string(id))
	_, _ = pipe.Exec(ctx)
	for _, c := range []struct {
		cmd    *redis.StringCmd
		failed bool
	}{{pending, false}, {failed, true}} {
		rec, err := c.cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return sale.Order{}, fmt.Errorf("redisstock: lookup %s: %w", id, err)
		}
		return decodeRecord(id, rec, c.failed)
	}
	return sale.Order{}, fmt.Errorf("redisstock: lookup %s: %w", id, sale.ErrOrderNotFound)
}

// Unpublished returns up to limit pending orders accepted (created) strictly
// before the given time and not yet marked published, oldest first across
// all items, ties broken by order id.
func (s *Store) Unpublished(ctx context.Context, before time.Time, limit int) ([]sale.Order, error) {
	if limit <= 0 {
		return nil, nil
	}
	members, err := s.rdb.SMembers(ctx, s.itemsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstock: unpublished: %w", err)
	}
	if len(members) == 0 {
		return nil, nil
	}

	// Each item gives at most its own oldest `limit`, which is enough for
	// the merged oldest `limit`.
	pipe := s.rdb.Pipeline()
	ranges := make([]*redis.ZSliceCmd, len(members))
	items := make([]sale.ItemID, len(members))
	for i, m := range members {
		id, err := sale.ParseItemID(m)
		if err != nil {
			continue // not ours; the index holds only ids Open wrote
		}
		items[i] = id
		ranges[i] = pipe.ZRangeByScoreWithScores(ctx, s.item(id).outbox(), &redis.ZRangeBy{
			Min:   "-inf",
			Max:   "(" + strconv.FormatInt(before.UnixMilli(), 10),
			Count: int64(limit),
		})
	}
	_, _ = pipe.Exec(ctx)

	type candidate struct {
		id    sale.OrderID
		score float64
	}
	var cands []candidate
	for i, cmd := range ranges {
		if cmd == nil {
			continue
		}
		zs, err := cmd.Result()
		if err != nil {
			return nil, fmt.Errorf("redisstock: unpublished of item %d: %w", items[i], err)
		}
		for _, z := range zs {
			id, _ := z.Member.(string)
			cands = append(cands, candidate{id: sale.OrderID(id), score: z.Score})
		}
	}
	sort.Slice(cands, func(a, b int) bool {
		if cands[a].score != cands[b].score {
			return cands[a].score < cands[b].score
		}
		return cands[a].id < cands[b].id
	})
	if len(cands) > limit {
		cands = cands[:limit]
	}
	if len(cands) == 0 {
		return nil, nil
	}

	pipe = s.rdb.Pipeline()
	recs := make([]*redis.StringCmd, len(cands))
	for i, c := range cands {
		recs[i] = pipe.HGet(ctx, s.item(c.id.Item()).pending(), string(c.id))
	}
	_, _ = pipe.Exec(ctx)
	out := make([]sale.Order, 0, len(cands))
	for i, cmd := range recs {
		rec, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			// Failed or settled between the two round trips: nothing to
			// publish any more.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("redisstock: unpublished %s: %w", cands[i].id, err)
		}
		o, err := decodeRecord(cands[i].id, rec, false)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// MarkPublished removes the orders from the outbox, in one round trip; their
// pending records stay until Settle or Expire. Unknown ids are ignored.
func (s *Store) MarkPublished(ctx context.Context, ids ...sale.OrderID) error {
	groups := groupByItem(ids)
	if len(groups) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for _, g := range groups {
		pipe.ZRem(ctx, s.item(g.item).outbox(), g.members()...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisstock: mark published: %w", err)
	}
	return nil
}

// Claim fences each pending order against Expire and reports, in input
// order, Claimed, ClaimFailed or ClaimUnknown; one script per item, all in
// one round trip. A malformed id is ClaimUnknown.
func (s *Store) Claim(ctx context.Context, ids ...sale.OrderID) ([]sale.Claim, error) {
	out := make([]sale.Claim, len(ids))
	for i := range out {
		out[i] = sale.ClaimUnknown
	}
	groups := groupByItem(ids)
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		calls[i] = scriptCall{script: claimScript, keys: s.item(g.item).claimKeys(), args: g.members()}
	}
	cmds := s.runScripts(ctx, calls)
	for gi, g := range groups {
		v, err := ints(cmds[gi], len(g.ids))
		if err != nil {
			return nil, fmt.Errorf("redisstock: claim orders of item %d: %w", g.item, err)
		}
		for j, code := range v {
			var c sale.Claim
			switch code {
			case codeClaimClaimed:
				c = sale.Claimed
			case codeClaimFailed:
				c = sale.ClaimFailed
			case codeClaimUnknown:
				c = sale.ClaimUnknown
			default:
				return nil, fmt.Errorf("redisstock: claim orders of item %d: unknown script code %d", g.item, code)
			}
			out[g.pos[j]] = c
		}
	}
	return out, nil
}

// Settle drops the pending, outbox and claim records of confirmed orders,
// one script per item in one round trip; the user's buyers entry stays, so
// they still hold their one order. Unknown ids are a no-op.
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

// Expire fails a pending, unclaimed order, giving its unit and its user's
// slot back and bumping the generation; it returns released=false and
// changes nothing if the order is claimed, already failed or unknown.
func (s *Store) Expire(ctx context.Context, id sale.OrderID, reason string) (bool, int64, error) {
	return s.fail(ctx, "expire", id, reason, true)
}

// Reject fails a pending order even if it is claimed, with the same effects
// as Expire; it returns released=false if the order is already failed or
// unknown.
func (s *Store) Reject(ctx context.Context, id sale.OrderID, reason string) (bool, int64, error) {
	return s.fail(ctx, "reject", id, reason, false)
}

func (s *Store) fail(ctx context.Context, op string, id sale.OrderID, reason string, fence bool) (bool, int64, error) {
	item := id.Item()
	if item <= 0 {
		// Never a pending order: Reserve only records checked ids.
		return false, 0, nil
	}
	fenceArg := "0"
	if fence {
		fenceArg = "1"
	}
	cmd := s.runScript(ctx, failScript, s.item(item).failKeys(),
		string(id), reason, fenceArg, s.failedTTL.Milliseconds())
	v, err := ints(cmd, 2)
	if err != nil {
		return false, 0, fmt.Errorf("redisstock: %s %s: %w", op, id, err)
	}
	switch v[0] {
	case codeFailReleased:
		return true, v[1], nil
	case codeFailUnknown, codeFailFenced, codeFailNotFound:
		return false, v[1], nil
	case codeFailBadRecord:
		return false, v[1], fmt.Errorf("redisstock: %s %s: malformed pending record", op, id)
	}
	return false, 0, fmt.Errorf("redisstock: %s %s: unknown script code %d", op, id, v[0])
}

// Counts returns the ledger's accounting for an item, or ErrNotFound if it
// was never opened. Failed counts the failed records still kept (FailedTTL).
func (s *Store) Counts(ctx context.Context, id sale.ItemID) (sale.Counts, error) {
	k := s.item(id)
	pipe := s.rdb.Pipeline()
	fields := pipe.HMGet(ctx, k.sale(), "total", "stock", "gen")
	pending := pipe.HLen(ctx, k.pending())
	failed := pipe.HLen(ctx, k.failed())
	if _, err := pipe.Exec(ctx); err != nil {
		return sale.Counts{}, fmt.Errorf("redisstock: counts of item %d: %w", id, err)
	}
	vals := fields.Val()
	if len(vals) != 3 || vals[0] == nil {
		return sale.Counts{}, fmt.Errorf("redisstock: counts of item %d: %w", id, sale.ErrNotFound)
	}
	var n [3]int64
	for i, v := range vals {
		str, _ := v.(string)
		x, err := strconv.ParseInt(str, 10, 64)
		if err != nil {
			return sale.Counts{}, fmt.Errorf("redisstock: counts of item %d: malformed sale hash field %d: %q", id, i, str)
		}
		n[i] = x
	}
	return sale.Counts{
		StockTotal: n[0],
		StockLeft:  n[1],
		Pending:    pending.Val(),
		Failed:     failed.Val(),
		Gen:        n[2],
	}, nil
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
