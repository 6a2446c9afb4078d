// Package localcache keeps item data in this process's memory, in front of
// the shared Redis layer, so the hottest read of a flash sale — the item page —
// is answered without a network round trip.
//
// Reader decorates any sale.ItemReader. Items live in a freecache (off the
// garbage collector's books); the list of items lives in a single slot of its
// own, because freecache refuses entries larger than 1/1024 of its size and a
// list of long descriptions would not fit. Both expire after TTL, the backstop
// for an invalidation message that never arrived. An entry read in its last
// RefreshBefore is reloaded in the background while the old copy is served,
// so a hot entry never expires and its readers never wait for a load (the
// layer below may be slow: a hung Redis Cluster master holding the item's
// key costs its call timeout). Not-found answers are cached for NegativeTTL
// so that requests for random ids cannot hammer the layer below. Concurrent
// misses for one key share a single load.
//
// The last item a lookup found in each of a few slots is also kept decoded,
// until the next write to the cache or its entry's expiry, so a sale's hot
// item costs no decode.
//
// Live stock is not item data and never passes through here.
package localcache

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coocood/freecache"
	"golang.org/x/sync/singleflight"

	"seckill/domain/sale"
	"seckill/infra/internal/flight"
)

var _ sale.ItemReader = (*Reader)(nil)

// Options configures a Reader. Zero fields take their defaults.
type Options struct {
	// SizeBytes is the memory given to cached items; default 32 MiB. One item
	// must fit in 1/1024 of it (an item with the longest description is
	// about 17 KiB encoded), or that item is never cached.
	SizeBytes int
	// TTL bounds how long an entry is served without being reloaded; default
	// 5s. It is the backstop when an invalidation message is lost.
	TTL time.Duration
	// RefreshBefore is how long before its expiry an item or list entry
	// that is read gets reloaded in the background; default (and whenever
	// it is not below TTL) TTL/5. Not-found entries are never reloaded
	// ahead: made-up ids must cost no load.
	RefreshBefore time.Duration
	// NegativeTTL is how long a not-found answer is remembered; default 1s.
	NegativeTTL time.Duration
	// LoadTimeout bounds one shared load from the next layer; default 3s.
	LoadTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.SizeBytes <= 0 {
		o.SizeBytes = 32 << 20
	}
	if o.TTL <= 0 {
		o.TTL = 5 * time.Second
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = time.Second
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = 3 * time.Second
	}
	if o.RefreshBefore <= 0 || o.RefreshBefore >= o.TTL {
		o.RefreshBefore = o.TTL / 5
	}
	return o
}

// Stats is a snapshot of a Reader's counters since New.
type Stats struct {
	Hits          uint64 // answered from memory with an item or the list
	Misses        uint64 // callers that found nothing usable in memory
	NegativeHits  uint64 // answered ErrNotFound from memory
	Loads         uint64 // calls made to the next reader
	Refreshes     uint64 // of the Loads, those made ahead of an entry's expiry
	Invalidations uint64 // calls to Invalidate
	Flushes       uint64 // calls to Flush
	Uncacheable   uint64 // loaded items too large for the cache
}

// Reader is a sale.ItemReader that serves from process memory and falls back
// to the reader it decorates. It is safe for concurrent use.
type Reader struct {
	next    sale.ItemReader
	opts    Options
	cache   *freecache.Cache
	flights flight.Loads
	now     func() time.Time

	// mu orders fills against invalidations: a fill checks epoch and writes
	// under the read lock, Invalidate and Flush bump epoch and delete under
	// the write lock. So a load that began before an invalidation can never
	// write after it.
	mu    sync.RWMutex
	epoch atomic.Uint64
	list  atomic.Pointer[listEntry]

	hits, misses, negHits, loads, refreshes, invalidations, flushes, uncacheable atomic.Uint64

	// refreshing holds the item ids (and listRefreshing the list) whose
	// reload ahead of expiry is under way, so that the hits meanwhile do
	// not each join it.
	refreshing     sync.Map
	listRefreshing atomic.Bool

	// maxID is the highest item id seen in a loaded list or named by
	// Invalidate (every instance hears of a new item that way), and
	// idRange says a list was loaded since the last Flush. While idRange
	// holds, an id more than IDSlack above maxID is not found without
	// asking anyone: made-up ids cost no backend call and no cache entry.
	maxID   atomic.Int64
	idRange atomic.Bool

	// hot holds the decoded copy of the last item entry a lookup found, per
	// slot (id mod hotSlots), so the hottest read of a sale (every purchase
	// looks its item up) skips freecache's segment lock and the decode's
	// allocations. A copy serves only while writes, bumped after every
	// write to the cache (fill, Invalidate, Flush), is what it was before
	// the copy's entry was read, and only until that entry's own expiry: it
	// never says anything the entry it was decoded from would not. The
	// slots bound the copies, so the catalog stays off the GC's books.
	hot    [hotSlots]atomic.Pointer[hotItem]
	writes atomic.Uint64
}

// hotSlots is how many decoded items a Reader keeps (Reader.hot): a sale's
// hot items are a handful.
const hotSlots = 64

// hotItem is an item entry as decoded at writes (Reader.hot).
type hotItem struct {
	item    sale.Item
	expires int64 // unix nanoseconds, the entry's
	writes  uint64
}

type listEntry struct {
	items   []sale.Item
	expires int64 // unix nanoseconds
}

// New returns a Reader in front of next.
func New(next sale.ItemReader, opts Options) *Reader {
	opts = opts.withDefaults()
	return &Reader{
		next:  next,
		opts:  opts,
		cache: freecache.NewCache(opts.SizeBytes),
		now:   time.Now,
	}
}

// Item returns the item from memory, or loads it from the next reader and
// remembers the answer; ErrNotFound answers are remembered for NegativeTTL.
// An item read in its last RefreshBefore is returned at once and reloaded
// in the background, so only a caller that finds nothing live waits.
// Once Items has loaded a list (and until Flush), an id more than IDSlack
// above every id seen in a list or an Invalidate is ErrNotFound at once,
// with no load.
// A caller whose ctx ends stops waiting, without failing the shared load.
func (r *Reader) Item(ctx context.Context, id sale.ItemID) (sale.Item, error) {
	if r.idRange.Load() && int64(id) > r.maxID.Load()+IDSlack {
		r.negHits.Add(1)
		return sale.Item{}, sale.ErrNotFound
	}
	if it, found, ok, due := r.lookupItem(id); ok {
		if !found {
			r.negHits.Add(1)
			return sale.Item{}, sale.ErrNotFound
		}
		r.hits.Add(1)
		if due {
			r.refreshItem(ctx, id)
		}
		return it, nil
	}
	r.misses.Add(1)
	return flight.WaitItem(ctx, r.loadItem(ctx, id, false))
}

// refreshItem reloads id in the background, unless that is under way.
func (r *Reader) refreshItem(ctx context.Context, id sale.ItemID) {
	if _, busy := r.refreshing.LoadOrStore(id, struct{}{}); busy {
		return
	}
	ch := r.loadItem(ctx, id, true)
	go func() {
		<-ch
		r.refreshing.Delete(id)
	}()
}

// loadItem starts the shared load of id, or joins the one under way, and
// returns where its answer will be; ahead says a hit due for a refresh
// asked for it. The load runs on a context of its own (flight.Detach).
func (r *Reader) loadItem(ctx context.Context, id sale.ItemID, ahead bool) <-chan singleflight.Result {
	// The epoch is part of the flight key: a caller arriving after an
	// invalidation must not join a load that began before it.
	epoch := r.epoch.Load()
	return r.flights.StartItem(id, epoch, func() (sale.Item, error) {
		// Its own key, so the caller's stays on the stack on the hit path.
		key := itemKey(id)
		// A flight that finished between our lookup and DoChan has filled the
		// entry already; looking again keeps it to one load per fill.
		if it, found, ok, due, _ := r.lookup(key, r.now().UnixNano()); ok && !due {
			if !found {
				return sale.Item{}, sale.ErrNotFound
			}
			return it, nil
		}
		lctx, cancel := flight.Detach(ctx, r.opts.LoadTimeout)
		defer cancel()
		r.loads.Add(1)
		if ahead {
			r.refreshes.Add(1)
		}
		it, err := r.next.Item(lctx, id)
		flight.Remember(it, err,
			func(it sale.Item) { r.fill(epoch, key, encodeEntry(kindItem, r.expiry(r.opts.TTL), it), r.opts.TTL) },
			func() {
				r.fill(epoch, key, encodeEntry(kindMissing, r.expiry(r.opts.NegativeTTL), sale.Item{}), r.opts.NegativeTTL)
			})
		return it, err
	})
}

// Items returns every item from memory, or loads the list from the next
// reader and remembers it for TTL; like Item, it reloads a list read in its
// last RefreshBefore in the background. The caller owns the returned slice.
func (r *Reader) Items(ctx context.Context) ([]sale.Item, error) {
	if e := r.list.Load(); e != nil {
		if now := r.now().UnixNano(); now < e.expires {
			r.hits.Add(1)
			if r.due(now, e.expires) && r.listRefreshing.CompareAndSwap(false, true) {
				ch := r.loadList(ctx, true)
				go func() {
					<-ch
					r.listRefreshing.Store(false)
				}()
			}
			return slices.Clone(e.items), nil
		}
	}
	r.misses.Add(1)
	return flight.WaitList(ctx, r.loadList(ctx, false))
}

// loadList is loadItem for the list.
func (r *Reader) loadList(ctx context.Context, ahead bool) <-chan singleflight.Result {
	epoch := r.epoch.Load()
	return r.flights.StartList(epoch, func() ([]sale.Item, error) {
		if e := r.list.Load(); e != nil {
			if now := r.now().UnixNano(); now < e.expires && !r.due(now, e.expires) {
				return e.items, nil
			}
		}
		lctx, cancel := flight.Detach(ctx, r.opts.LoadTimeout)
		defer cancel()
		r.loads.Add(1)
		if ahead {
			r.refreshes.Add(1)
		}
		items, err := r.next.Items(lctx)
		if err != nil {
			return nil, err
		}
		// Keep a private copy: the next reader may reuse its slice.
		items = slices.Clone(items)
		e := &listEntry{items: items, expires: r.expiry(r.opts.TTL)}
		r.mu.RLock()
		if r.epoch.Load() == epoch {
			r.list.Store(e)
			// Only a list no Flush overtook may vouch for the id range.
			for _, it := range items {
				r.seen(it.ID)
			}
			r.idRange.Store(true)
		}
		r.mu.RUnlock()
		return items, nil
	})
}

// Invalidate drops the item and the cached list. A load that began before
// Invalidate returns will not put its result into the cache.
func (r *Reader) Invalidate(id sale.ItemID) {
	r.invalidations.Add(1)
	r.seen(id)
	r.mu.Lock()
	r.epoch.Add(1)
	r.cache.Del(itemKey(id))
	r.writes.Add(1) // after the delete: see Reader.hot
	r.list.Store(nil)
	r.mu.Unlock()
}

// IDSlack is how far above the highest known id an id is still looked up.
// Ids are assigned in increasing order by the database, and an instance
// hears of an item created on another one over the bus a moment later; a
// purchase that arrives first must not be told the new item does not exist.
// Ids further out cannot be an item created since, unless more than IDSlack
// were created in that moment, and are refused without a load.
const IDSlack = 100

// seen raises maxID to id.
func (r *Reader) seen(id sale.ItemID) {
	for {
		cur := r.maxID.Load()
		if int64(id) <= cur || r.maxID.CompareAndSwap(cur, int64(id)) {
			return
		}
	}
}

// Flush drops every entry, as Invalidate does for one item. The app calls it
// when invalidation messages may have been lost.
func (r *Reader) Flush() {
	r.flushes.Add(1)
	r.mu.Lock()
	r.epoch.Add(1)
	// A lost message may have named a new item: trust no id range until
	// the next list load.
	r.idRange.Store(false)
	r.cache.Clear()
	r.writes.Add(1)
	for i := range r.hot {
		r.hot[i].Store(nil)
	}
	r.list.Store(nil)
	r.mu.Unlock()
}

// Stats returns the counters; each is read atomically, the set is not a
// consistent snapshot.
func (r *Reader) Stats() Stats {
	return Stats{
		Hits:          r.hits.Load(),
		Misses:        r.misses.Load(),
		NegativeHits:  r.negHits.Load(),
		Loads:         r.loads.Load(),
		Refreshes:     r.refreshes.Load(),
		Invalidations: r.invalidations.Load(),
		Flushes:       r.flushes.Load(),
		Uncacheable:   r.uncacheable.Load(),
	}
}

// lookupItem is lookup for id's entry, answered from its decoded copy
// (Reader.hot) while no write to the cache has happened since the copy's
// entry was read.
func (r *Reader) lookupItem(id sale.ItemID) (it sale.Item, found, ok, due bool) {
	now := r.now().UnixNano()
	// Read before the entry: a write after this read makes the copy stale
	// at once, whichever version of the entry GetFn then sees.
	writes := r.writes.Load()
	slot := &r.hot[uint64(id)%hotSlots] //nolint:gosec // G115: any bits of id pick a slot
	h := slot.Load()
	live := h != nil && h.writes == writes && now < h.expires
	if live && h.item.ID == id {
		return h.item, true, true, r.due(now, h.expires)
	}
	it, found, ok, due, expires := r.lookup(itemKey(id), now)
	// A live copy of another item keeps its slot until the next write: ids
	// read in turn would otherwise evict each other at every read, each
	// paying an allocation for a copy never read.
	if found && !live {
		slot.Store(&hotItem{item: it, expires: expires, writes: writes})
	}
	return it, found, ok, due
}

// lookup reports ok when memory holds a live answer for key at now (unix
// nanoseconds), found when that answer is an item rather than a
// remembered not-found, due when that item is in its last RefreshBefore,
// and the entry's expiry.
func (r *Reader) lookup(key []byte, now int64) (it sale.Item, found, ok, due bool, expires int64) {
	err := r.cache.GetFn(key, func(b []byte) error {
		kind, exp, body, err := decodeHeader(b)
		if err != nil || now >= exp {
			// Expired by our clock (freecache only counts whole seconds) or
			// unreadable: treat as absent; the next fill overwrites it.
			return nil //nolint:nilerr // an unreadable entry is a miss, not a failure
		}
		if kind == kindMissing {
			ok = true
			return nil
		}
		it, err = decodeItem(body)
		if err != nil {
			return nil //nolint:nilerr // an undecodable item is a miss; the next fill overwrites it
		}
		found, ok, due, expires = true, true, r.due(now, exp), exp
		return nil
	})
	if err != nil {
		return sale.Item{}, false, false, false, 0
	}
	return it, found, ok, due, expires
}

// due reports whether an entry expiring at expires (unix nanoseconds) is,
// at now, in its last RefreshBefore.
func (r *Reader) due(now, expires int64) bool {
	return now >= expires-int64(r.opts.RefreshBefore)
}

// fill stores an entry unless an invalidation happened since epoch was read.
func (r *Reader) fill(epoch uint64, key, val []byte, ttl time.Duration) {
	// freecache expires in whole seconds; round up and add one so it never
	// drops an entry before our own, exact expiry does.
	secs := int((ttl+time.Second-1)/time.Second) + 1
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.epoch.Load() != epoch {
		return
	}
	if err := r.cache.Set(key, val, secs); err != nil {
		r.uncacheable.Add(1)
	}
	r.writes.Add(1) // after the write: see Reader.hot
}

// itemKey is the id's eight big-endian bytes; the list is not in freecache,
// so item keys need no prefix.
func itemKey(id sale.ItemID) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(id)) //nolint:gosec // G115: a key needs the bits of id, not its sign
}

func (r *Reader) expiry(ttl time.Duration) int64 { return r.now().Add(ttl).UnixNano() }
