// Package redisstock is the Redis stock ledger: the live stock of every item
// on sale, the one-order-per-user rule, and the outbox of accepted orders
// between acceptance and confirmation. During a sale Redis is the system of
// record for stock; nothing here reads the database.
//
// Every rule that must hold under concurrency runs inside one Lua script per
// item, and every per-item key carries the hash tag {item:<id>}, so each
// script touches a single cluster slot:
//
//	<p>:{item:42}:sale      hash  stock, total, starts_ms, ends_ms, price, gen
//	<p>:{item:42}:buyers    hash  user id -> order id (one order per user)
//	<p>:{item:42}:pending   hash  order id -> "<user>|<price>|<created_ms>|<accepted_ms>"
//	<p>:{item:42}:outbox    zset  pending order id scored by when the relay should next look at it
//	<p>:{item:42}:restocks  hash  restock idempotency key -> units added (kept with the sale)
//	<p>:{item:42}:returned  hash  order id -> 1 for each cancelled or expired order whose unit came back
//	<p>:{item:42}:moves     hash  move id -> "<dest bucket>|<units>": the journal of moves out of this bucket not yet closed
//	<p>:{item:42}:moved     hash  move id -> units, for each move credited to this bucket (kept with the sale)
//	<p>:{item:42}:closed    hash  move id -> units, for each move out of this bucket that was closed (kept with the sale)
//	<p>:{item:42}:ticket:<id> string  id of the order that used the purchase ticket <id> (expires)
//	<p>:items               set   ids of opened items, for Due
//
// An item with stock_buckets N > 1 splits its stock over N buckets. Bucket 0
// is the key set above; bucket b > 0 has the same keys (but no repairing
// lock) under the tag sale.BucketTag(id, b, N), {item:42:<b>.<j>}, which
// lands on another slot. A buyer buys from their home bucket
// (sale.HomeBucket), whose buyers hash holds their record; the order id
// names the bucket, so every later step goes to it. When a buyer's home
// bucket is empty, units move there from another bucket in three steps,
// each one script in one slot, with a journal: see buckets.go and
// docs/RECOVERY.md.
//
// The ledger never decides an order's fate: the database does (its order
// row is the fence), and the ledger follows with Settle or Release. Every
// age the ledger keeps is measured on Redis's own clock (TIME), never on the
// clock of the instance that sent the command.
//
// Reserve calls from many goroutines are coalesced into pipelines of EVALSHA
// calls (see Options.MaxBatch), which multiplies throughput over one round
// trip per call without adding latency when the store is idle.
package redisstock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"seckill/domain/sale"
)

var (
	_ sale.StockLedger = (*Store)(nil)
	_ sale.OrderLedger = (*Store)(nil)
)

// ErrClosed is returned by Reserve once Close has been called.
var ErrClosed = errors.New("redisstock: store closed")

// Defaults applied by New to zero or negative Options fields.
const (
	DefaultPrefix         = "seckill"
	DefaultMaxBatch       = 32
	DefaultPipelines      = 2
	DefaultFirstLook      = 3 * time.Second
	DefaultRepublishAfter = 30 * time.Second
)

// Options tunes a Store; the zero value gives the defaults.
type Options struct {
	// Prefix starts every key, default "seckill". It must not contain '{'.
	Prefix string
	// MaxBatch is the most Reserve calls sent in one pipeline, default 32,
	// at most 500; 1 sends each call on its own.
	MaxBatch int
	// Pipelines is how many pipelines may be in flight at once, default 2.
	// Fewer pipelines carry more orders each, and a bucket's orders share
	// one script call, so on a small machine 2 beat 4 (docs/BENCHMARKS.md,
	// session 4); more help only when one reply is slow.
	Pipelines int
	// FirstLook is how long after acceptance an order is first due for the
	// relay (to publish it if the dispatcher did not), default 3s; it is
	// also the lease Due takes an order for.
	FirstLook time.Duration
	// RepublishAfter is how long after a publish an order that is still
	// pending is due again (to publish it again, since the broker may have
	// lost it), default 30s. It is also the age past which Counts calls a
	// pending order overdue.
	RepublishAfter time.Duration
	// NodeDown, if set, reports whether the Redis Cluster master at an
	// address is known to be failing (its circuit breaker is open). A
	// buyer's refill of an empty bucket then neither reads nor takes units
	// from the buckets on it, instead of waiting for it to answer; it never
	// calls the item sold out while a bucket is skipped.
	NodeDown func(node string) bool
}

// Store is the Redis stock and order ledger. It is safe for concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	maxBatch  int
	pipelines int
	firstLook time.Duration
	republish time.Duration
	// overdueScan is overdueScanLimit; tests lower it.
	overdueScan int

	// buckets caches each item's stock bucket count (immutable once the
	// item is created); keys caches the key sets of split items.
	buckets sync.Map // sale.ItemID -> int
	keys    sync.Map // bucketsKey -> []itemKeys
	rkeys   sync.Map // reserveKeysKey -> []string
	fills   singleflight.Group
	// lastItems is the items index as Due last read it ([]string), used
	// when the index's master does not answer.
	lastItems atomic.Value

	// afterPeek runs in Repair of a split item between the check of the
	// other buckets and the script on bucket 0. It is nil in production;
	// only this package's tests set it, to put a concurrent operation
	// exactly in that gap (repair_gap_test.go).
	afterPeek func()

	reqs chan *reserveReq // the lane of a single Redis
	// lanes holds a Redis Cluster master's queue (node address -> chan
	// *reserveReq); see lane. closing, under lanesMu, stops new lanes.
	lanes     sync.Map
	lanesMu   sync.Mutex
	closing   bool
	nodeDown  func(node string) bool
	quit      chan struct{}
	closeOnce sync.Once
	flushers  sync.WaitGroup
}

// New returns a Store on rdb and starts its Reserve flushers. The caller
// keeps ownership of rdb and closes it after Close.
func New(rdb redis.UniversalClient, opts Options) *Store {
	s := newStore(rdb, opts)
	s.start(s.pipelines)
	return s
}

// newStore applies the defaults and returns a Store with no flushers yet;
// tests use it to queue requests before any flusher runs.
func newStore(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	// A batch goes out as one script call whose writes unpack two values
	// per order; more than this would pass luaChunk.
	opts.MaxBatch = min(opts.MaxBatch, luaChunk/2)
	if opts.Pipelines <= 0 {
		opts.Pipelines = DefaultPipelines
	}
	if opts.FirstLook <= 0 {
		opts.FirstLook = DefaultFirstLook
	}
	if opts.RepublishAfter <= 0 {
		opts.RepublishAfter = DefaultRepublishAfter
	}
	return &Store{
		rdb:         rdb,
		prefix:      opts.Prefix,
		maxBatch:    opts.MaxBatch,
		pipelines:   opts.Pipelines,
		firstLook:   opts.FirstLook,
		republish:   opts.RepublishAfter,
		overdueScan: overdueScanLimit,
		nodeDown:    opts.NodeDown,
		// Unbuffered on purpose: a request is handed straight to a flusher,
		// so none can be stranded in a buffer when Close stops them, and the
		// callers blocked on the send are exactly what a flusher drains.
		reqs: make(chan *reserveReq),
		quit: make(chan struct{}),
	}
}

// start launches n Reserve flushers.
func (s *Store) start(n int) {
	s.flushers.Add(n)
	for range n {
		go s.flush(s.reqs)
	}
}

// Close stops the Reserve flushers after their in-flight pipelines answer;
// Reserve then returns ErrClosed. Other methods use the client directly and
// keep working until the caller closes it. Close is idempotent.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.lanesMu.Lock()
		s.closing = true
		s.lanesMu.Unlock()
		close(s.quit)
		s.flushers.Wait()
	})
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstock: ping: %w", err)
	}
	return nil
}

// KeyPatterns lists every key a Store with this prefix uses, for item id,
// built by the same functions the Store uses; a new key builder belongs
// here too. It exists so the docs test can check the key tables.
func KeyPatterns(prefix string, id sale.ItemID) []string {
	s := &Store{prefix: prefix}
	k := s.item(id)
	out := []string{k.sale(), k.buyers(), k.pending(), k.outbox(), k.restocks(), k.returned(), k.moves(), k.moved(), k.closed(), k.repairing(),
		usedTicketKey(k.reserve(), "<ticket id>"), s.itemsKey()}
	// The keys of bucket b > 0, with the bucket and the tag's search index
	// left symbolic, since they depend on the item and the bucket count.
	b := s.tagKeys("item:" + id.String() + ":<b>.<j>")
	return append(out, b.sale(), b.buyers(), b.pending(), b.outbox(), b.restocks(), b.returned(), b.moves(), b.moved(), b.closed(), usedTicketKey(b.reserve(), "<ticket id>"))
}

// itemKeys names the keys of one item's stock bucket; they share one hash
// tag, {item:<id>} for bucket 0.
type itemKeys struct{ base string }

// item returns the keys of the item's bucket 0, the only bucket of an
// unsplit item.
func (s *Store) item(id sale.ItemID) itemKeys {
	return s.tagKeys("item:" + id.String())
}

func (s *Store) tagKeys(tag string) itemKeys {
	return itemKeys{base: s.prefix + ":{" + tag + "}:"}
}

type bucketsKey struct {
	id sale.ItemID
	n  int
}

// bucketKeys returns the key sets of all n buckets of the item, in bucket
// order; a tag costs a few CRC16 runs to find, so split items' keys are
// computed once.
func (s *Store) bucketKeys(id sale.ItemID, n int) []itemKeys {
	if n <= 1 {
		return []itemKeys{s.item(id)}
	}
	if v, ok := s.keys.Load(bucketsKey{id, n}); ok {
		return v.([]itemKeys)
	}
	ks := make([]itemKeys, n)
	for b := range ks {
		ks[b] = s.tagKeys(sale.BucketTag(id, b, n))
	}
	s.keys.Store(bucketsKey{id, n}, ks)
	return ks
}

func (k itemKeys) sale() string         { return k.base + "sale" }
func (k itemKeys) buyers() string       { return k.base + "buyers" }
func (k itemKeys) pending() string      { return k.base + "pending" }
func (k itemKeys) outbox() string       { return k.base + "outbox" }
func (k itemKeys) restocks() string     { return k.base + "restocks" }
func (k itemKeys) repairing() string    { return k.base + "repairing" }
func (k itemKeys) returned() string     { return k.base + "returned" }
func (k itemKeys) moves() string        { return k.base + "moves" }
func (k itemKeys) moved() string        { return k.base + "moved" }
func (k itemKeys) closed() string       { return k.base + "closed" }
func (s *Store) itemsKey() string       { return s.prefix + ":items" }
func (k itemKeys) reserve() []string    { return []string{k.sale(), k.buyers(), k.pending(), k.outbox()} }
func (k itemKeys) settleKeys() []string { return []string{k.pending(), k.outbox()} }

// scriptCall is one script invocation to send in a pipeline.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// runScripts sends the calls as pipelines of EVALSHA and returns one Cmd
// per call, in order; each Cmd carries its own error. On a Redis Cluster
// the calls are split by the master that serves their first key and each
// master's share goes out as a pipeline of its own, concurrently: a master
// that hangs then fails only its own calls. (One cluster pipeline over
// several masters waits for the slowest, retries its calls, and when ctx
// ends during a retry it overwrites every call's result, those the healthy
// masters had answered too, with ctx's error.)
func (s *Store) runScripts(ctx context.Context, calls []scriptCall) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	if len(calls) == 0 {
		return cmds
	}
	groups := s.byNode(ctx, len(calls), func(i int) string { return calls[i].keys[0] })
	if len(groups) <= 1 {
		s.runPipeline(ctx, calls, cmds)
		return cmds
	}
	var wg sync.WaitGroup
	for _, idx := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			part := make([]scriptCall, len(idx))
			for j, i := range idx {
				part[j] = calls[i]
			}
			out := make([]*redis.Cmd, len(idx))
			s.runPipeline(ctx, part, out)
			for j, i := range idx {
				cmds[i] = out[j]
			}
		}()
	}
	wg.Wait()
	return cmds
}

// byNode groups the indexes [0, n) by the master serving key(i), in
// first-seen order; on a single Redis (or when the slot map cannot tell)
// everything is one group.
func (s *Store) byNode(ctx context.Context, n int, key func(i int) string) [][]int {
	if _, ok := s.rdb.(*redis.ClusterClient); !ok || n <= 1 {
		return nil
	}
	at := map[string]int{}
	var groups [][]int
	for i := range n {
		node := s.NodeOfKey(ctx, key(i))
		g, ok := at[node]
		if !ok {
			g = len(groups)
			at[node] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// NodeOfKey names the Redis Cluster master that serves key, by this
// client's slot map (no round trip), or "" on a single Redis or when the
// map has no master for it.
func (s *Store) NodeOfKey(ctx context.Context, key string) string {
	c, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return ""
	}
	m, err := c.MasterForKey(ctx, key)
	if err != nil {
		return ""
	}
	return m.Options().Addr
}

// runPipeline sends calls as one pipeline, filling cmds.
func (s *Store) runPipeline(ctx context.Context, calls []scriptCall, cmds []*redis.Cmd) {
	pipe := s.rdb.Pipeline()
	for i, c := range calls {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	// Exec's error is the first failed command's; each Cmd is inspected
	// instead, because one NOSCRIPT must not fail the others.
	_, _ = pipe.Exec(ctx)

	// NOSCRIPT means the script did not run (a fresh server, a failover, or
	// SCRIPT FLUSH), so sending the same call as EVAL cannot apply it twice.
	// EVAL also caches the script, so the next pipeline's EVALSHA hits.
	var retry []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) == 0 {
		return
	}
	pipe = s.rdb.Pipeline()
	for _, i := range retry {
		cmds[i] = calls[i].script.Eval(ctx, pipe, calls[i].keys, calls[i].args...)
	}
	_, _ = pipe.Exec(ctx)
}

// runScript runs one script, with the same NOSCRIPT fallback.
func (s *Store) runScript(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	return script.Run(ctx, s.rdb, keys, args...)
}

// ints reads a script's array reply of integers; want is the expected length.
func ints(cmd *redis.Cmd, want int) ([]int64, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(vals) != want {
		return nil, fmt.Errorf("redisstock: script replied %d values, want %d", len(vals), want)
	}
	out := make([]int64, len(vals))
	for i, v := range vals {
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("redisstock: script reply %d is %T, want integer", i, v)
		}
		out[i] = n
	}
	return out, nil
}
