package redisstock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// A split item's stock lives in several buckets, each in its own cluster
// slot, and no script can touch two slots. So a move of units from one
// bucket to another is three scripts, with a journal in the source's slot:
//
//  1. moveOut on the source: take the units and, in the same step, write
//     the journal entry (move id, destination, units). The units are now in
//     transit, recorded only there.
//  2. moveIn on the destination: credit the units unless the move id is
//     already in the destination's moved hash, and record it there, in the
//     same step.
//  3. moveClose on the source: drop the journal entry and, in the same
//     step, keep what the move took in the source's closed hash, so a step
//     1 that a client sends again after its reply was lost takes nothing.
//
// A process that dies after step 1 or 2 leaves an open entry; replaying it
// (steps 2 and 3 again) is safe at any time and by anyone, because step 2
// applies once per move id and step 3 is a delete. RecoverMoves replays
// every open entry (at startup and in the reconciler's pass), and a buyer
// who finds every bucket empty replays the entries it sees before it calls
// the item sold out. Every step bumps its bucket's mseq, so a reader of
// several buckets can tell whether a move ran while it read (readBuckets).

// ErrBucketsBusy means move steps kept running between an item's buckets
// while a reader (Counts, Snapshot) tried to read them as of one moment;
// retry.
var ErrBucketsBusy = errors.New("redisstock: units are moving between the item's stock buckets; try again")

// maxMove bounds the units one move carries; moveOut takes at most half the
// source's stock anyway.
const maxMove = sale.MaxStock

// journalEntry is one open move out of a bucket.
type journalEntry struct {
	id    string
	dest  int
	units int64
}

// bucketState is one bucket as bucketScript read it.
type bucketState struct {
	exists                  bool
	stock, total, gen       int64
	startsMS, endsMS, price int64
	mseq, nowMS             int64
	pending, overdue        int64
	moves                   []journalEntry
	records                 []string // order id, record, ...
}

// bucketsOf returns the item's stock bucket count: cached, or read from
// bucket 0 (its buckets field; a sale written before buckets existed has
// one). An item whose bucket 0 is not live answers 1 and is not cached.
func (s *Store) bucketsOf(ctx context.Context, id sale.ItemID) (int, error) {
	if v, ok := s.buckets.Load(id); ok {
		return v.(int), nil
	}
	vals, err := s.rdb.HMGet(ctx, s.item(id).sale(), "stock", "buckets").Result()
	if err != nil {
		return 0, fmt.Errorf("redisstock: stock buckets of item %d: %w", id, err)
	}
	return s.learnBuckets(id, vals)
}

// learnBuckets reads an HMGET stock, buckets reply of bucket 0.
func (s *Store) learnBuckets(id sale.ItemID, vals []any) (int, error) {
	if len(vals) != 2 || vals[0] == nil {
		return 1, nil
	}
	n := 1
	if v, ok := vals[1].(string); ok {
		var err error
		n, err = strconv.Atoi(v)
		if err != nil || sale.CheckStockBuckets(n) != nil {
			return 0, fmt.Errorf("redisstock: item %d has a malformed bucket count %q", id, v)
		}
	}
	s.buckets.Store(id, n)
	return n, nil
}

// keysOf returns the key sets of every bucket of the item.
func (s *Store) keysOf(ctx context.Context, id sale.ItemID) ([]itemKeys, error) {
	n, err := s.bucketsOf(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.bucketKeys(id, n), nil
}

// orderKeys returns the keys of the bucket an order id names. Bucket 0 needs
// no lookup; another bucket's tag depends on the item's bucket count.
func (s *Store) orderKeys(ctx context.Context, id sale.OrderID) (itemKeys, error) {
	b := id.Bucket()
	if b == 0 {
		return s.item(id.Item()), nil
	}
	ks, err := s.keysOf(ctx, id.Item())
	if err != nil {
		return itemKeys{}, err
	}
	if b >= len(ks) {
		return itemKeys{}, fmt.Errorf("redisstock: order %s names bucket %d of an item with %d: %w", id, b, len(ks), sale.ErrInvalid)
	}
	return ks[b], nil
}

// OrderNode names the Redis Cluster master that serves the bucket an order
// id names, by the client's slot map; "" on a single Redis, or when the
// item's bucket count cannot be read.
func (s *Store) OrderNode(ctx context.Context, id sale.OrderID) string {
	k, err := s.orderKeys(ctx, id)
	if err != nil {
		return ""
	}
	return s.NodeOfKey(ctx, k.sale())
}

// BucketNodes names the Redis Cluster master of each of the item's stock
// buckets, in bucket order ("" on a single Redis).
func (s *Store) BucketNodes(ctx context.Context, id sale.ItemID) ([]string, error) {
	ks, err := s.keysOf(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ks))
	for b, k := range ks {
		out[b] = s.NodeOfKey(ctx, k.sale())
	}
	return out, nil
}

// downBuckets marks the buckets whose master Options.NodeDown reports
// failing; nil when none is.
func (s *Store) downBuckets(ctx context.Context, ks []itemKeys) []bool {
	if s.nodeDown == nil || len(ks) == 1 {
		return nil
	}
	var down []bool
	for b, k := range ks {
		if node := s.NodeOfKey(ctx, k.sale()); node != "" && s.nodeDown(node) {
			if down == nil {
				down = make([]bool, len(ks))
			}
			down[b] = true
		}
	}
	return down
}

// readBucket is the bucketScript call for one bucket.
func readBucket(k itemKeys, mode int, overdueMS int64, scanLimit int) scriptCall {
	return scriptCall{script: bucketScript, keys: []string{k.sale(), k.pending(), k.moves()}, args: []any{mode, overdueMS, scanLimit}}
}

// overdueScanLimit is the most pending records the bucket script reads to
// count the overdue ones (Store.overdueScan, which tests lower); above it,
// countOverdue counts them in chunks. 10,000 records take Redis a few ms.
const overdueScanLimit = 10_000

// countOverdue counts the pending records of one bucket accepted before
// limitMS (the ledger's clock), reading them in chunks of a few hundred so
// no single command holds Redis for long. It is not atomic with the
// bucket's other figures, which an age count does not need: an order
// settled or accepted during the scan was not overdue either way, and the
// scan sees every record that stays pending throughout.
func (s *Store) countOverdue(ctx context.Context, pendingKey string, limitMS int64) (int64, error) {
	var n int64
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, pendingKey, cursor, "*", 500).Result()
		if err != nil {
			return 0, err
		}
		for i := 1; i < len(kv); i += 2 {
			if acc, ok := acceptedMS(kv[i]); ok && acc < limitMS {
				n++
			}
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// peek reads every bucket in one pipeline (mode as bucketScript).
func (s *Store) peek(ctx context.Context, id sale.ItemID, ks []itemKeys, mode int) ([]bucketState, error) {
	calls := make([]scriptCall, len(ks))
	for b, k := range ks {
		calls[b] = readBucket(k, mode, s.republish.Milliseconds(), s.overdueScan)
	}
	out := make([]bucketState, len(ks))
	for b, cmd := range s.runScripts(ctx, calls) {
		st, err := decodeBucket(cmd)
		if err != nil {
			return nil, fmt.Errorf("redisstock: read bucket %d of item %d: %w", b, id, err)
		}
		out[b] = st
	}
	return out, nil
}

func decodeBucket(cmd *redis.Cmd) (bucketState, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return bucketState{}, err
	}
	if len(vals) < 12 {
		return bucketState{}, fmt.Errorf("bucket script replied %d values", len(vals))
	}
	var n [12]int64
	for i := range n {
		v, ok := vals[i].(int64)
		if !ok {
			return bucketState{}, fmt.Errorf("bucket script value %d is %T", i, vals[i])
		}
		n[i] = v
	}
	st := bucketState{exists: n[0] == 1, stock: n[1], total: n[2], gen: n[3], startsMS: n[4], endsMS: n[5],
		price: n[6], mseq: n[7], nowMS: n[8], pending: n[9], overdue: n[10]}
	rest := vals[12:]
	if int64(len(rest)) < 2*n[11] || (len(rest)-int(2*n[11]))%2 != 0 {
		return bucketState{}, fmt.Errorf("bucket script replied %d values for %d moves", len(vals), n[11])
	}
	for i := 0; i < int(2*n[11]); i += 2 {
		id, _ := rest[i].(string)
		entry, _ := rest[i+1].(string)
		dest, units, ok := strings.Cut(entry, "|")
		d, err1 := strconv.Atoi(dest)
		u, err2 := strconv.ParseInt(units, 10, 64)
		if !ok || err1 != nil || err2 != nil || id == "" {
			return bucketState{}, fmt.Errorf("malformed journal entry %q: %q", id, entry)
		}
		st.moves = append(st.moves, journalEntry{id: id, dest: d, units: u})
	}
	for _, v := range rest[2*n[11]:] {
		str, _ := v.(string)
		st.records = append(st.records, str)
	}
	return st, nil
}

// newMoveID returns a fresh move id: 64 random bits.
func newMoveID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// moveOut is step 1: it takes up to limit units out of bucket src for dst and
// journals them. It returns the units taken (0 if src is empty or missing).
func (s *Store) moveOut(ctx context.Context, ks []itemKeys, moveID string, src, dst int, limit int64) (int64, error) {
	v, err := ints(s.runScript(ctx, moveOutScript, []string{ks[src].sale(), ks[src].moves(), ks[src].closed()}, moveID, dst, limit), 2)
	if err != nil {
		return 0, fmt.Errorf("redisstock: move out of bucket %d: %w", src, err)
	}
	switch v[0] {
	case codeMoveOut:
		return v[1], nil
	case codeMoveEmpty, codeMoveNotFound:
		return 0, nil
	}
	return 0, fmt.Errorf("redisstock: move out of bucket %d: unknown script code %d", src, v[0])
}

// moveIn is step 2. credited is false on a repeat, and missing is true if
// the destination bucket is not live (then the entry must stay open until a
// rebuild creates the bucket).
func (s *Store) moveIn(ctx context.Context, ks []itemKeys, e journalEntry) (missing bool, err error) {
	if e.dest < 0 || e.dest >= len(ks) {
		return false, fmt.Errorf("redisstock: move %s names bucket %d of %d", e.id, e.dest, len(ks))
	}
	k := ks[e.dest]
	code, err := s.runScript(ctx, moveInScript, []string{k.sale(), k.moved()}, e.id, e.units).Int64()
	if err != nil {
		return false, fmt.Errorf("redisstock: move %s into bucket %d: %w", e.id, e.dest, err)
	}
	switch code {
	case codeMoveIn, codeMoveRepeat:
		return false, nil
	case codeMoveNotFound:
		return true, nil
	}
	return false, fmt.Errorf("redisstock: move %s into bucket %d: unknown script code %d", e.id, e.dest, code)
}

// moveClose is step 3.
func (s *Store) moveClose(ctx context.Context, ks []itemKeys, src int, moveID string) error {
	k := ks[src]
	if err := s.runScript(ctx, moveCloseScript, []string{k.sale(), k.moves(), k.closed()}, moveID).Err(); err != nil {
		return fmt.Errorf("redisstock: close move %s of bucket %d: %w", moveID, src, err)
	}
	return nil
}

// moveAll carries half of each source bucket's stock (rounded up) to dst,
// all sources at once: each step is one pipeline over the sources, so a
// refill costs three round trips however many buckets feed it, and the home
// bucket of a crowd of buyers gets units from every bucket that has some.
// It returns the units moved.
func (s *Store) moveAll(ctx context.Context, ks []itemKeys, srcs []int, dst int) (int64, error) {
	out := make([]scriptCall, len(srcs))
	entries := make([]journalEntry, len(srcs))
	for i, src := range srcs {
		entries[i] = journalEntry{id: newMoveID(), dest: dst}
		out[i] = scriptCall{script: moveOutScript, keys: []string{ks[src].sale(), ks[src].moves(), ks[src].closed()}, args: []any{entries[i].id, dst, maxMove}}
	}
	var moved []int // indexes into srcs of the moves that took units
	var errs []error
	for i, cmd := range s.runScripts(ctx, out) {
		v, err := ints(cmd, 2)
		if err != nil {
			errs = append(errs, fmt.Errorf("redisstock: move out of bucket %d: %w", srcs[i], err))
			continue
		}
		if v[0] == codeMoveOut && v[1] > 0 {
			entries[i].units = v[1]
			moved = append(moved, i)
		}
	}
	in := make([]scriptCall, len(moved))
	for j, i := range moved {
		e := entries[i]
		in[j] = scriptCall{script: moveInScript, keys: []string{ks[dst].sale(), ks[dst].moved()}, args: []any{e.id, e.units}}
	}
	var closing []int
	for j, cmd := range s.runScripts(ctx, in) {
		code, err := cmd.Int64()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("redisstock: move into bucket %d: %w", dst, err))
		case code == codeMoveIn || code == codeMoveRepeat:
			closing = append(closing, moved[j])
		default:
			// The destination is not live: the entry stays open for the
			// rebuild, as in finishMove.
			errs = append(errs, fmt.Errorf("redisstock: move into bucket %d: script code %d; the entry stays open", dst, code))
		}
	}
	closes := make([]scriptCall, len(closing))
	var total int64
	for j, i := range closing {
		closes[j] = scriptCall{script: moveCloseScript, keys: []string{ks[srcs[i]].sale(), ks[srcs[i]].moves(), ks[srcs[i]].closed()}, args: []any{entries[i].id}}
		total += entries[i].units
	}
	for j, cmd := range s.runScripts(ctx, closes) {
		if err := cmd.Err(); err != nil {
			errs = append(errs, fmt.Errorf("redisstock: close move of bucket %d: %w", srcs[closing[j]], err))
		}
	}
	return total, errors.Join(errs...)
}

// finishMove runs steps 2 and 3 of a journaled move: the mover's own path
// and every replay.
func (s *Store) finishMove(ctx context.Context, ks []itemKeys, src int, e journalEntry) error {
	missing, err := s.moveIn(ctx, ks, e)
	if err != nil {
		return err
	}
	if missing {
		return fmt.Errorf("redisstock: move %s: destination bucket %d is not live; the entry stays open until it is rebuilt", e.id, e.dest)
	}
	return s.moveClose(ctx, ks, src, e.id)
}

// replay finishes every open move in states; it returns how many it
// finished.
func (s *Store) replay(ctx context.Context, ks []itemKeys, states []bucketState) (int, error) {
	n := 0
	var errs []error
	for src, st := range states {
		for _, e := range st.moves {
			if err := s.finishMove(ctx, ks, src, e); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// RecoverMoves finishes every move between stock buckets that a process
// started and did not finish (it died between the steps), for every opened
// item, and returns how many it finished. Replaying a move that its mover
// is still finishing is harmless: each step applies once. Call it at
// startup and periodically.
func (s *Store) RecoverMoves(ctx context.Context) (int, error) {
	members, err := s.rdb.SMembers(ctx, s.itemsKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("redisstock: recover moves: %w", err)
	}
	total := 0
	var errs []error
	for _, m := range members {
		id, err := sale.ParseItemID(m)
		if err != nil {
			continue
		}
		n, err := s.RecoverItemMoves(ctx, id)
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// RecoverItemMoves is RecoverMoves for one item.
func (s *Store) RecoverItemMoves(ctx context.Context, id sale.ItemID) (int, error) {
	ks, err := s.keysOf(ctx, id)
	if err != nil || len(ks) == 1 {
		return 0, err
	}
	states, err := s.peek(ctx, id, ks, 0)
	if err != nil {
		return 0, err
	}
	n, err := s.replay(ctx, ks, states)
	if err != nil {
		return n, fmt.Errorf("redisstock: recover moves of item %d: %w", id, err)
	}
	return n, nil
}

// fillResult is what one fill of an empty home bucket found.
type fillResult struct {
	soldOut bool  // every bucket is empty and no unit is in transit
	gen     int64 // with soldOut: the item's generation (sum over buckets)
}

// fill brings units to an empty home bucket: it finishes open moves, or
// moves half of every other bucket's stock home (moveAll), or finds that every
// bucket is empty, no unit is in transit, and nothing moved while it looked
// (two reads with the same move counters and generations): only then is
// the item sold out. Concurrent fills of one home bucket share one run.
func (s *Store) fill(ctx context.Context, id sale.ItemID, ks []itemKeys, home int) (fillResult, error) {
	key := id.String() + "/" + strconv.Itoa(home)
	// The shared run must not fail every waiter because the first one's
	// caller went away; the client's timeouts bound it.
	ctx = context.WithoutCancel(ctx)
	v, err, _ := s.fills.Do(key, func() (any, error) {
		// The buckets on a failing master are left out: waiting for it
		// would hold every buyer of this home bucket, and the units there
		// are not lost, only out of reach until it answers.
		down := s.downBuckets(ctx, ks)
		up := ks
		if down != nil {
			if down[home] {
				return fillResult{}, nil
			}
			up = make([]itemKeys, 0, len(ks))
			for b, k := range ks {
				if !down[b] {
					up = append(up, k)
				}
			}
		}
		first, err := s.peek(ctx, id, up, 0)
		if err != nil {
			return fillResult{}, err
		}
		if down != nil {
			return s.fillFrom(ctx, ks, home, down, first)
		}
		if n, err := s.replay(ctx, ks, first); n > 0 || err != nil {
			return fillResult{}, err
		}
		if first[home].stock > 0 {
			return fillResult{}, nil
		}
		var srcs []int
		for b, st := range first {
			if b != home && st.stock > 0 {
				srcs = append(srcs, b)
			}
		}
		if len(srcs) > 0 {
			_, err := s.moveAll(ctx, ks, srcs, home)
			return fillResult{}, err
		}
		again, err := s.peek(ctx, id, ks, 0)
		if err != nil {
			return fillResult{}, err
		}
		var gen int64
		for b := range first {
			a, z := first[b], again[b]
			if a.mseq != z.mseq || a.gen != z.gen || z.stock > 0 || len(z.moves) > 0 {
				return fillResult{}, nil
			}
			gen += z.gen
		}
		return fillResult{soldOut: true, gen: gen}, nil
	})
	if err != nil {
		return fillResult{}, err
	}
	return v.(fillResult), nil
}

// fillFrom is fill while some buckets' master is failing: states are the
// other buckets, in order. It moves units home from those only, and never
// finds the item sold out, since the skipped buckets may hold stock.
func (s *Store) fillFrom(ctx context.Context, ks []itemKeys, home int, down []bool, states []bucketState) (fillResult, error) {
	var srcs, idx []int // bucket numbers of states, and the sources among them
	for b := range ks {
		if !down[b] {
			idx = append(idx, b)
		}
	}
	for i, st := range states {
		if b := idx[i]; b != home && st.stock > 0 {
			srcs = append(srcs, b)
		}
		if idx[i] == home && st.stock > 0 {
			return fillResult{}, nil
		}
	}
	if len(srcs) == 0 {
		return fillResult{}, nil
	}
	_, err := s.moveAll(ctx, ks, srcs, home)
	return fillResult{}, err
}

// itemGen returns a split item's generation: the sum of its buckets'. Each
// bucket's only grows, so the sum read after units come back is above every
// sum read before, which is all a sold-out flag needs.
func (s *Store) itemGen(ctx context.Context, ks []itemKeys) (int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ks))
	for b, k := range ks {
		cmds[b] = pipe.HGet(ctx, k.sale(), "gen")
	}
	_, _ = pipe.Exec(ctx)
	var sum int64
	for _, cmd := range cmds {
		g, err := cmd.Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, fmt.Errorf("redisstock: read generation: %w", err)
		}
		sum += g
	}
	return sum, nil
}

// itemView is a split item's buckets read as one consistent whole.
type itemView struct {
	states []bucketState
	// inTransit is the units in open moves not yet credited to their
	// destination: unsold stock, recorded only in a journal.
	inTransit int64
}

// readBuckets reads every bucket of the item (mode as bucketScript) and
// the units in transit, as of one moment: it reads again until no move step
// ran on any bucket between its reads (same mseq everywhere). Purchases and
// settles may run meanwhile; each changes one bucket atomically and leaves
// its stock plus pending unchanged, which is all the readers need.
func (s *Store) readBuckets(ctx context.Context, id sale.ItemID, ks []itemKeys, mode int) (itemView, error) {
	for attempt := 0; attempt < 10; attempt++ {
		states, err := s.peek(ctx, id, ks, mode)
		if err != nil {
			return itemView{}, err
		}
		if len(ks) == 1 {
			return itemView{states: states}, nil
		}
		var open []journalEntry
		for _, st := range states {
			open = append(open, st.moves...)
		}
		credited := make([]*redis.BoolCmd, len(open))
		var check []*redis.StringCmd
		pipe := s.rdb.Pipeline()
		for i, e := range open {
			if e.dest >= 0 && e.dest < len(ks) {
				credited[i] = pipe.HExists(ctx, ks[e.dest].moved(), e.id)
			}
		}
		for _, k := range ks {
			check = append(check, pipe.HGet(ctx, k.sale(), "mseq"))
		}
		_, _ = pipe.Exec(ctx)
		v := itemView{states: states}
		steady := true
		for b, cmd := range check {
			m, err := cmd.Int64()
			if err != nil && !errors.Is(err, redis.Nil) {
				return itemView{}, fmt.Errorf("redisstock: read buckets of item %d: %w", id, err)
			}
			steady = steady && m == states[b].mseq
		}
		for i, e := range open {
			if credited[i] == nil {
				continue
			}
			done, err := credited[i].Result()
			if err != nil {
				return itemView{}, fmt.Errorf("redisstock: read buckets of item %d: %w", id, err)
			}
			if !done {
				v.inTransit += e.units
			}
		}
		if steady {
			return v, nil
		}
	}
	return itemView{}, fmt.Errorf("redisstock: read buckets of item %d: %w", id, ErrBucketsBusy)
}

// shares splits units over n buckets as evenly as possible, the remainder
// to the lowest buckets.
func shares(units int64, n int) []int64 {
	out := make([]int64, n)
	for b := range out {
		out[b] = units / int64(n)
		if int64(b) < units%int64(n) {
			out[b]++
		}
	}
	return out
}
