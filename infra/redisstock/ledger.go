package redisstock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// Open makes an item's stock and window live. A new sale starts with
// stock = total = it.StockTotal and gen 0, split as evenly as possible over
// its stock buckets; an open one gets only its window and price refreshed,
// so calling Open twice never resets a running sale, and a second call
// completes a first that failed halfway.
func (s *Store) Open(ctx context.Context, it sale.Item) error {
	if it.ID <= 0 || it.StockTotal < 0 || !it.EndsAt.After(it.StartsAt) || sale.CheckStockBuckets(it.Buckets()) != nil {
		return fmt.Errorf("redisstock: open item %d: %w", it.ID, sale.ErrInvalid)
	}
	// The item joins the index before its sale exists, and outside the
	// script because the index is not in the item's cluster slot. In this
	// order a failure leaves at worst an indexed item with no sale, which
	// Unpublished skips, never an open sale that Unpublished cannot see.
	if err := s.rdb.SAdd(ctx, s.itemsKey(), it.ID.String()).Err(); err != nil {
		return fmt.Errorf("redisstock: open item %d: %w", it.ID, err)
	}
	n := it.Buckets()
	ks := s.bucketKeys(it.ID, n)
	share := shares(it.StockTotal, n)
	// Bucket 0 goes last: a live bucket 0 then means every bucket is live,
	// which is what the readers check.
	for b := n - 1; b >= 0; b-- {
		err := s.runScript(ctx, openScript, []string{ks[b].sale()},
			share[b], it.StartsAt.UnixMilli(), it.EndsAt.UnixMilli(), it.PriceCents, n).Err()
		if err != nil {
			return fmt.Errorf("redisstock: open item %d bucket %d: %w", it.ID, b, err)
		}
	}
	s.buckets.Store(it.ID, n)
	return nil
}

// SetWindow moves a live item's sale window, or returns ErrNotFound if the
// item was never opened.
func (s *Store) SetWindow(ctx context.Context, id sale.ItemID, startsAt, endsAt time.Time) error {
	if id <= 0 || !endsAt.After(startsAt) {
		return fmt.Errorf("redisstock: set window of item %d: %w", id, sale.ErrInvalid)
	}
	ks, err := s.keysOf(ctx, id)
	if err != nil {
		return err
	}
	// One script per bucket: for a moment the buckets of a split item may
	// disagree on the window, as two instances' caches do; each purchase
	// is checked against one bucket's window atomically.
	calls := make([]scriptCall, len(ks))
	for b, k := range ks {
		calls[b] = scriptCall{script: setWindowScript, keys: []string{k.sale()}, args: []any{startsAt.UnixMilli(), endsAt.UnixMilli()}}
	}
	var missing bool
	for b, cmd := range s.runScripts(ctx, calls) {
		code, err := cmd.Int64()
		if err != nil {
			return fmt.Errorf("redisstock: set window of item %d bucket %d: %w", id, b, err)
		}
		switch code {
		case codeWindowSet:
		case codeWindowNotFound:
			missing = true
		default:
			return fmt.Errorf("redisstock: set window of item %d: unknown script code %d", id, code)
		}
	}
	if missing {
		return fmt.Errorf("redisstock: set window of item %d: %w", id, sale.ErrNotFound)
	}
	return nil
}

// StockLeft returns the live stock of each open id, in one round trip (two
// if some item is split: its other buckets are read in the second); ids
// that are not open are absent from the map. It is a display figure: units
// in transit between a split item's buckets (a move under way) are not in
// it for the moment the move takes.
func (s *Store) StockLeft(ctx context.Context, ids ...sale.ItemID) (map[sale.ItemID]int64, error) {
	out := make(map[sale.ItemID]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.item(id).sale(), "stock", "buckets")
	}
	// Per-command errors are read below.
	_, _ = pipe.Exec(ctx)
	type rest struct {
		id   sale.ItemID
		cmds []*redis.StringCmd
	}
	var split []rest
	pipe = s.rdb.Pipeline()
	for i, cmd := range cmds {
		vals, err := cmd.Result()
		if err != nil {
			return nil, fmt.Errorf("redisstock: stock of item %d: %w", ids[i], err)
		}
		if len(vals) != 2 || vals[0] == nil {
			continue // not open
		}
		n, err := strconv.ParseInt(vals[0].(string), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redisstock: stock of item %d: %w", ids[i], err)
		}
		out[ids[i]] = n
		nb, err := s.learnBuckets(ids[i], vals)
		if err != nil {
			return nil, err
		}
		if nb > 1 {
			r := rest{id: ids[i]}
			for _, k := range s.bucketKeys(ids[i], nb)[1:] {
				r.cmds = append(r.cmds, pipe.HGet(ctx, k.sale(), "stock"))
			}
			split = append(split, r)
		}
	}
	if len(split) == 0 {
		return out, nil
	}
	_, _ = pipe.Exec(ctx)
	for _, r := range split {
		for _, cmd := range r.cmds {
			n, err := cmd.Int64()
			if errors.Is(err, redis.Nil) {
				continue // a lost bucket; Counts reports it
			}
			if err != nil {
				return nil, fmt.Errorf("redisstock: stock of item %d: %w", r.id, err)
			}
			out[r.id] += n
		}
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
	ks, err := s.keysOf(ctx, id)
	if err != nil {
		return false, 0, err
	}
	// A split item's restock is split like its opening stock, and each
	// bucket applies its share once per key: a retry after a partial
	// failure adds only the shares still missing.
	share := shares(add, len(ks))
	var calls []scriptCall
	for b, k := range ks {
		if share[b] > 0 {
			calls = append(calls, scriptCall{script: restockScript, keys: []string{k.sale(), k.restocks()}, args: []any{share[b], key}})
		}
	}
	applied, missing := false, false
	var gen int64
	for _, cmd := range s.runScripts(ctx, calls) {
		v, err := ints(cmd, 2)
		if err != nil {
			return false, 0, fmt.Errorf("redisstock: restock item %d: %w", id, err)
		}
		switch v[0] {
		case codeRestockApplied:
			applied = true
		case codeRestockRepeat:
		case codeRestockNotFound:
			missing = true
		default:
			return false, 0, fmt.Errorf("redisstock: restock item %d: unknown script code %d", id, v[0])
		}
		gen = v[1]
	}
	if missing {
		return false, 0, fmt.Errorf("redisstock: restock item %d: %w", id, sale.ErrNotFound)
	}
	if len(ks) > 1 {
		if gen, err = s.itemGen(ctx, ks); err != nil {
			return false, 0, err
		}
	}
	return applied, gen, nil
}

// Lookup returns a pending order with status queued; an unknown or
// malformed id gives ErrOrderNotFound.
func (s *Store) Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error) {
	if _, err := sale.ParseOrderID(string(id)); err != nil {
		return sale.Order{}, fmt.Errorf("redisstock: lookup %q: %w", id, sale.ErrOrderNotFound)
	}
	k, err := s.orderKeys(ctx, id)
	if errors.Is(err, sale.ErrInvalid) {
		// A bucket the item does not have: no order was ever reserved there.
		return sale.Order{}, fmt.Errorf("redisstock: lookup %s: %w", id, sale.ErrOrderNotFound)
	}
	if err != nil {
		return sale.Order{}, fmt.Errorf("redisstock: lookup %s: %w", id, err)
	}
	rec, err := s.rdb.HGet(ctx, k.pending(), string(id)).Result()
	if errors.Is(err, redis.Nil) {
		return sale.Order{}, fmt.Errorf("redisstock: lookup %s: %w", id, sale.ErrOrderNotFound)
	}
	if err != nil {
		return sale.Order{}, fmt.Errorf("redisstock: lookup %s: %w", id, err)
	}
	o, _, err := decodeRecord(id, rec)
	return o, err
}

// BuyerOrder returns the order the ledger's one-order-per-user record holds
// for user on item, read from the user's home bucket, or an error matching
// sale.ErrOrderNotFound when there is none. The record outlives the order's
// stay in the outbox (it is what refuses a second purchase), so the order
// may be queued, confirmed or already decided otherwise: ask Lookup, then
// the database.
func (s *Store) BuyerOrder(ctx context.Context, item sale.ItemID, user sale.UserID) (sale.OrderID, error) {
	ks, err := s.keysOf(ctx, item)
	if err != nil {
		return "", fmt.Errorf("redisstock: order of %s for item %d: %w", user, item, err)
	}
	id, err := s.rdb.HGet(ctx, ks[sale.HomeBucket(user, len(ks))].buyers(), string(user)).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("redisstock: order of %s for item %d: %w", user, item, sale.ErrOrderNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("redisstock: order of %s for item %d: %w", user, item, err)
	}
	return sale.OrderID(id), nil
}

// Due takes up to limit pending orders, across all items, whose next look
// is due by the ledger's clock, and postpones each by FirstLook so that
// relays on other instances skip them meanwhile. Each comes with its age
// since acceptance, also by the ledger's clock. Orders whose record predates
// the acceptance stamp are aged from their creation time.
//
// A bucket whose script fails (its master is down or stalled) and a record
// that does not decode are skipped: Due returns every order it could read
// together with the errors, joined. One dead master or one corrupt record
// used to fail the whole call, and the relay then published nothing, on
// any master, until that node came back. If the items index itself cannot
// be read (its master is the one down), the last index read is used.
func (s *Store) Due(ctx context.Context, limit int) ([]sale.DueOrder, error) {
	if limit <= 0 {
		return nil, nil
	}
	var errs []error
	members, err := s.rdb.SMembers(ctx, s.itemsKey()).Result()
	if err != nil {
		errs = append(errs, fmt.Errorf("redisstock: due: items index: %w", err))
		last, _ := s.lastItems.Load().([]string)
		members = last
	} else {
		s.lastItems.Store(members)
	}
	var items []sale.ItemID
	var calls []scriptCall
	for _, m := range members {
		id, err := sale.ParseItemID(m)
		if err != nil {
			continue // not ours; the index holds only ids Open wrote
		}
		ks, err := s.keysOf(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("redisstock: due: %w", err))
			continue
		}
		for _, k := range ks {
			items = append(items, id)
			calls = append(calls, scriptCall{script: dueScript, keys: []string{k.outbox(), k.pending()},
				args: []any{limit, s.firstLook.Milliseconds()}})
		}
	}
	var out []sale.DueOrder
	for i, cmd := range s.runScripts(ctx, calls) {
		due, err := decodeDue(cmd)
		out = append(out, due...)
		if err != nil {
			errs = append(errs, fmt.Errorf("redisstock: due orders of item %d: %w", items[i], err))
		}
	}
	return out, errors.Join(errs...)
}

// decodeDue reads one bucket's dueScript reply: the ledger's clock, then
// order id and record pairs. A record that does not decode is skipped and
// reported; the others are returned.
func decodeDue(cmd *redis.Cmd) ([]sale.DueOrder, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(vals) == 0 || len(vals)%2 != 1 {
		return nil, fmt.Errorf("reply of %d values", len(vals))
	}
	nowMS, ok := vals[0].(int64)
	if !ok {
		return nil, fmt.Errorf("clock is %T", vals[0])
	}
	now := time.UnixMilli(nowMS)
	var out []sale.DueOrder
	var errs []error
	for j := 1; j+1 < len(vals); j += 2 {
		id, _ := vals[j].(string)
		rec, _ := vals[j+1].(string)
		o, accepted, err := decodeRecord(sale.OrderID(id), rec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if accepted.IsZero() {
			accepted = o.CreatedAt
		}
		out = append(out, sale.DueOrder{Order: o, Age: now.Sub(accepted)})
	}
	return out, errors.Join(errs...)
}

// MarkPublished records that the orders reached the order queue: each is
// next due RepublishAfter from now, by the ledger's clock. Orders no longer
// pending are left alone. One script per item, in one round trip.
func (s *Store) MarkPublished(ctx context.Context, ids ...sale.OrderID) error {
	return s.postpone(ctx, "mark published", s.republish, ids)
}

func (s *Store) postpone(ctx context.Context, op string, delay time.Duration, ids []sale.OrderID) error {
	groups, err := s.groupByBucket(ctx, ids)
	if err != nil {
		return fmt.Errorf("redisstock: %s: %w", op, err)
	}
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		calls[i] = scriptCall{script: postponeScript, keys: []string{g.keys.outbox()},
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
	groups, err := s.groupByBucket(ctx, ids)
	if err != nil {
		return fmt.Errorf("redisstock: settle: %w", err)
	}
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		calls[i] = scriptCall{script: settleScript, keys: g.keys.settleKeys(), args: g.members()}
	}
	for i, cmd := range s.runScripts(ctx, calls) {
		if err := cmd.Err(); err != nil {
			return fmt.Errorf("redisstock: settle orders of item %d: %w", groups[i].item, err)
		}
	}
	return nil
}

// Release gives a failed order's unit and its user's slot back, to the
// bucket it was bought from, and bumps the generation, exactly once: the
// pending record is deleted in the same step, so a second call (a
// redelivery, another relay, a repair) returns released=false and changes
// nothing. Call it only for an order the database has recorded as failed.
// The generation returned is the item's (for a split item, the sum over its
// buckets).
func (s *Store) Release(ctx context.Context, id sale.OrderID) (bool, int64, error) {
	item := id.Item()
	if item <= 0 {
		// Never a pending order: Reserve only records checked ids.
		return false, 0, nil
	}
	ks, err := s.keysOf(ctx, item)
	if err != nil {
		return false, 0, fmt.Errorf("redisstock: release %s: %w", id, err)
	}
	b := id.Bucket()
	if b >= len(ks) {
		return false, 0, nil // never reserved: Reserve refuses such an order
	}
	k := ks[b]
	cmd := s.runScript(ctx, releaseScript, []string{k.sale(), k.buyers(), k.pending(), k.outbox()}, string(id))
	v, err := ints(cmd, 2)
	if err != nil {
		return false, 0, fmt.Errorf("redisstock: release %s: %w", id, err)
	}
	switch v[0] {
	case codeReleaseReleased:
		if len(ks) > 1 {
			gen, err := s.itemGen(ctx, ks)
			return true, gen, err
		}
		return true, v[1], nil
	case codeReleaseUnknown, codeReleaseNotFound:
		return false, v[1], nil
	case codeReleaseBadRecord:
		return false, v[1], fmt.Errorf("redisstock: release %s: malformed pending record", id)
	}
	return false, 0, fmt.Errorf("redisstock: release %s: unknown script code %d", id, v[0])
}

// Drop deletes the pending record of an order the database failed as a
// phantom and frees its user's slot, in the bucket it was bought from,
// without giving a unit back, exactly once: a second call returns
// dropped=false and changes nothing. Call it only for an order whose fate
// is sale.Fate.Phantom.
func (s *Store) Drop(ctx context.Context, id sale.OrderID) (bool, error) {
	item := id.Item()
	if item <= 0 {
		return false, nil
	}
	ks, err := s.keysOf(ctx, item)
	if err != nil {
		return false, fmt.Errorf("redisstock: drop %s: %w", id, err)
	}
	b := id.Bucket()
	if b >= len(ks) {
		return false, nil
	}
	k := ks[b]
	v, err := ints(s.runScript(ctx, dropScript, []string{k.sale(), k.buyers(), k.pending(), k.outbox()}, string(id)), 2)
	if err != nil {
		return false, fmt.Errorf("redisstock: drop %s: %w", id, err)
	}
	switch v[0] {
	case codeDropDropped:
		return true, nil
	case codeDropUnknown:
		return false, nil
	}
	return false, fmt.Errorf("redisstock: drop %s: unknown script code %d", id, v[0])
}

// Trim takes up to units off an item's stock, never below zero in any
// bucket, and returns how many it took: bucket 0 first, then the others in
// order. It never adds. It is the one-sided correction of a ledger that
// shows more stock than the database allows; a bucket that is not live is
// skipped.
func (s *Store) Trim(ctx context.Context, id sale.ItemID, units int64) (int64, error) {
	if units <= 0 {
		return 0, nil
	}
	ks, err := s.keysOf(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("redisstock: trim item %d: %w", id, err)
	}
	var taken int64
	for _, k := range ks {
		if taken >= units {
			break
		}
		v, err := ints(s.runScript(ctx, trimScript, []string{k.sale()}, units-taken), 3)
		if err != nil {
			return taken, fmt.Errorf("redisstock: trim item %d: %w", id, err)
		}
		switch v[0] {
		case codeTrimDone:
			taken += v[1]
		case codeTrimNotFound:
		default:
			return taken, fmt.Errorf("redisstock: trim item %d: unknown script code %d", id, v[0])
		}
	}
	return taken, nil
}

// Counts returns the ledger's accounting for an item in one atomic read (a
// split item's buckets as of one moment, see readBuckets, summed, with the
// units in transit between them counted as stock), or ErrNotFound if its
// sale, or any bucket of it, is not live. Overdue counts the pending orders
// accepted more than RepublishAfter ago by the ledger's clock.
func (s *Store) Counts(ctx context.Context, id sale.ItemID) (sale.Counts, error) {
	ks, err := s.keysOf(ctx, id)
	if err != nil {
		return sale.Counts{}, err
	}
	v, err := s.readBuckets(ctx, id, ks, 1)
	if err != nil {
		return sale.Counts{}, fmt.Errorf("redisstock: counts of item %d: %w", id, err)
	}
	c := sale.Counts{StockLeft: v.inTransit}
	for b, st := range v.states {
		if !st.exists {
			return sale.Counts{}, fmt.Errorf("redisstock: counts of item %d: %w", id, sale.ErrNotFound)
		}
		if st.overdue < 0 {
			// Too many pending records to count in the script.
			if st.overdue, err = s.countOverdue(ctx, ks[b].pending(), st.nowMS-s.republish.Milliseconds()); err != nil {
				return sale.Counts{}, fmt.Errorf("redisstock: counts of item %d: overdue orders: %w", id, err)
			}
		}
		c.StockTotal += st.total
		c.StockLeft += st.stock
		c.Gen += st.gen
		c.Pending += st.pending
		c.Overdue += st.overdue
	}
	return c, nil
}

// itemGroup is the ids of one item's bucket and their positions in the
// caller's list.
type itemGroup struct {
	item   sale.ItemID
	bucket int
	keys   itemKeys
	ids    []sale.OrderID
	pos    []int
}

func (g itemGroup) members() []any {
	out := make([]any, len(g.ids))
	for i, id := range g.ids {
		out[i] = string(id)
	}
	return out
}

// groupByBucket groups ids by the item and bucket in their prefix, in
// order of first appearance, each with its bucket's keys; ids with no valid
// item, or naming a bucket their item does not have, are left out (Reserve
// never records such an id).
func (s *Store) groupByBucket(ctx context.Context, ids []sale.OrderID) ([]itemGroup, error) {
	type at struct {
		item   sale.ItemID
		bucket int
	}
	var groups []itemGroup
	index := make(map[at]int)
	for pos, id := range ids {
		item := id.Item()
		if item <= 0 {
			continue
		}
		key := at{item, id.Bucket()}
		gi, ok := index[key]
		if !ok {
			k, err := s.orderKeys(ctx, id)
			if errors.Is(err, sale.ErrInvalid) {
				continue
			}
			if err != nil {
				return nil, err
			}
			gi = len(groups)
			index[key] = gi
			groups = append(groups, itemGroup{item: item, bucket: key.bucket, keys: k})
		}
		groups[gi].ids = append(groups[gi].ids, id)
		groups[gi].pos = append(groups[gi].pos, pos)
	}
	return groups, nil
}
