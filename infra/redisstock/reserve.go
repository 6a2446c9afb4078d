package redisstock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// reserveReq is one Reserve call waiting for a flusher: one order on the
// key set of its bucket. A flusher sends the requests it holds for one
// bucket as one reserve script call (see lua/reserve.lua).
type reserveReq struct {
	ctx  context.Context
	keys []string // reserveKeys of the order's bucket; shared, never written
	// The order's six values in lua/reserve.lua's ARGV, but the ticket mark's
	// KEYS index, which depends on the batch.
	at, user, id, rec string
	ticketKey         string // the used-ticket mark, "" for an order without a ticket
	ticketTTL         int64  // ms
	// done is buffered so a flusher never blocks on a caller.
	done chan reserveResult
}

// again returns the same request with a fresh answer channel, to send it
// once more.
func (r *reserveReq) again() *reserveReq {
	c := *r
	c.done = make(chan reserveResult, 1)
	return &c
}

type reserveResult struct {
	r   sale.Reservation
	err error
}

// Reserve atomically checks the window at o.CreatedAt, the one-order-per-user
// rule and the stock, and on success deducts one unit and records o as
// pending and unpublished (see sale.StockLedger).
//
// Concurrent calls are coalesced into one pipeline. A caller whose ctx is
// done before its call is sent gets ctx.Err() and nothing is reserved; once
// the call is sent, the result stands and is returned even if ctx ends while
// the pipeline is in flight, because Redis may already have applied it (the
// client's read and write timeouts bound that wait). Reserve is idempotent
// per order id: the same order again, while it still holds its user's slot,
// reports Accepted without deducting twice, so a pipeline the client retries
// after a lost reply cannot double-sell. After Close it returns ErrClosed.
//
// The order is reserved in the stock bucket its id names (the buyer's home
// bucket). If that bucket of a split item is empty, units are first moved
// there from the others (see buckets.go); the item is sold out only when
// every bucket is, and OutcomeStockMoving (nothing reserved) means units
// kept moving while it looked.
func (s *Store) Reserve(ctx context.Context, o sale.Order) (sale.Reservation, error) {
	if err := o.Check(); err != nil {
		return sale.Reservation{}, fmt.Errorf("redisstock: reserve: %w", err)
	}
	// A caller already gone takes no place in a batch.
	if err := ctx.Err(); err != nil {
		return sale.Reservation{}, err
	}
	var ks []itemKeys
	if o.ID.Bucket() > 0 {
		var err error
		if ks, err = s.keysOf(ctx, o.ItemID); err != nil {
			return sale.Reservation{}, err
		}
		if o.ID.Bucket() >= len(ks) {
			return sale.Reservation{}, fmt.Errorf("redisstock: reserve %s: bucket %d of an item with %d: %w", o.ID, o.ID.Bucket(), len(ks), sale.ErrInvalid)
		}
	}
	req := s.newReserveReq(ctx, o, ks)
	res, err := s.send(ctx, req)
	if err != nil || res.Outcome != sale.OutcomeSoldOut {
		return res, err
	}
	return s.reserveSplit(ctx, o, req, res)
}

// ReserveIn is Reserve in exactly the bucket o's id names, without
// bringing units there from the other buckets when it is empty (the answer
// is then sold out for that bucket only). It is for a buyer whose home
// bucket's master is failing: the caller places the order in another
// bucket (an id made with sale.NewBucketOrderID) and moves on to the next
// one if this one is empty, so nothing waits on the failing master. The
// user's one-order record is written in that bucket, not in their home
// bucket, which cannot be read: the database's one-live-order-per-user
// key is then the fence against a second order placed at home later.
func (s *Store) ReserveIn(ctx context.Context, o sale.Order) (sale.Reservation, error) {
	if err := o.Check(); err != nil {
		return sale.Reservation{}, fmt.Errorf("redisstock: reserve: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return sale.Reservation{}, err
	}
	ks, err := s.keysOf(ctx, o.ItemID)
	if err != nil {
		return sale.Reservation{}, err
	}
	if o.ID.Bucket() >= len(ks) {
		return sale.Reservation{}, fmt.Errorf("redisstock: reserve %s: bucket %d of an item with %d: %w", o.ID, o.ID.Bucket(), len(ks), sale.ErrInvalid)
	}
	return s.send(ctx, s.newReserveReq(ctx, o, ks))
}

// send hands req to a flusher of its master's lane and waits for its
// answer.
func (s *Store) send(ctx context.Context, req *reserveReq) (sale.Reservation, error) {
	select {
	case s.lane(ctx, req.keys[0]) <- req:
	case <-ctx.Done():
		return sale.Reservation{}, ctx.Err()
	case <-s.quit:
		return sale.Reservation{}, ErrClosed
	}
	// A flusher that took the request always answers it, so this cannot hang
	// past the pipeline's own timeouts.
	res := <-req.done
	return res.r, res.err
}

// reserveSplit continues a reservation that found the buyer's home bucket
// empty. An unsplit item is sold out right there. For a split item, units
// are brought home from the other buckets (fill) and the reservation is
// tried again, coalesced with the others like the first try; only when fill
// finds every bucket empty is the item sold out, with the item's generation
// (the sum over its buckets), so the sold-out flag means what it says. If
// units kept moving for a few rounds (the last units of a sale, chased by
// many buyers), the answer is OutcomeStockMoving: nothing reserved, retry.
func (s *Store) reserveSplit(ctx context.Context, o sale.Order, req *reserveReq, r sale.Reservation) (sale.Reservation, error) {
	ks, err := s.keysOf(ctx, o.ItemID)
	if err != nil {
		return sale.Reservation{}, err
	}
	if len(ks) == 1 {
		return r, nil
	}
	home := o.ID.Bucket()
	for round := 0; round < 4; round++ {
		if ctx.Err() != nil {
			break
		}
		f, err := s.fill(ctx, o.ItemID, ks, home)
		if err != nil {
			return sale.Reservation{}, fmt.Errorf("redisstock: reserve: %w", err)
		}
		if f.soldOut {
			r.Gen, r.StockLeft = f.gen, 0
			return r, nil
		}
		// The same call again: a replay of an order that did get through
		// is answered as accepted, never deducted twice.
		r, err = s.send(ctx, req.again())
		if err != nil || r.Outcome != sale.OutcomeSoldOut {
			return r, err
		}
	}
	return sale.Reservation{Outcome: sale.OutcomeStockMoving, Gen: r.Gen}, nil //nolint:nilerr // a done ctx ends the refill rounds: the units are still moving, retry
}

// newReserveReq prepares the reservation of o, on the keys of its bucket;
// ks is the item's bucket keys, nil for bucket 0.
func (s *Store) newReserveReq(ctx context.Context, o sale.Order, ks []itemKeys) *reserveReq {
	r := &reserveReq{
		ctx:  ctx,
		keys: s.reserveKeys(o.ItemID, o.ID.Bucket(), ks),
		at:   strconv.FormatInt(o.CreatedAt.UnixMilli(), 10),
		user: string(o.UserID),
		id:   string(o.ID),
		rec:  encodePending(o),
		done: make(chan reserveResult, 1),
	}
	// The ticket's used mark goes with the buyers key of the order's
	// bucket: the user's home bucket, the same for every attempt the
	// user makes on this item, so a ticket is used once per item.
	if o.Ticket.ID != "" {
		r.ticketKey = usedTicketKey(r.keys, o.Ticket.ID)
		r.ticketTTL = (max(time.Until(o.Ticket.ExpiresAt), 0) + UsedTicketSlack).Milliseconds()
	}
	return r
}

// reserveKeysKey names one bucket's reserve key set in Store.rkeys; n is
// the item's bucket count (0 for bucket 0, whose keys do not depend on it).
type reserveKeysKey struct {
	id   sale.ItemID
	n, b int
}

// reserveKeys returns the reserve key set of bucket b of item id (ks is the
// item's bucket keys, nil for bucket 0), built once per bucket: every
// purchase needs it, and building it costs five string concatenations.
func (s *Store) reserveKeys(id sale.ItemID, b int, ks []itemKeys) []string {
	k := reserveKeysKey{id: id, b: b}
	if b > 0 {
		k.n = len(ks)
	}
	if v, ok := s.rkeys.Load(k); ok {
		return v.([]string)
	}
	keys := s.item(id).reserve()
	if b > 0 {
		keys = ks[b].reserve()
	}
	s.rkeys.Store(k, keys)
	return keys
}

// reserveCall is the one reserve script call for reqs, which share one
// bucket (the same keys), in their order.
func (s *Store) reserveCall(reqs []*reserveReq) scriptCall {
	keys := reqs[0].keys
	args := make([]any, 0, 1+6*len(reqs))
	args = append(args, s.firstLook.Milliseconds())
	for _, r := range reqs {
		tk := 0
		if r.ticketKey != "" {
			// Clip first, so the append copies: the shared key set is
			// never written.
			keys = append(slices.Clip(keys), r.ticketKey)
			tk = len(keys)
		}
		args = append(args, r.at, r.user, r.id, r.rec, tk, r.ticketTTL)
	}
	return scriptCall{script: reserveScript, keys: keys, args: args}
}

// UsedTicketSlack is how much longer than its ticket a used-ticket mark
// lives. Instances check a ticket's expiry on their own clocks; the slack
// keeps the mark alive past the expiry an instance whose clock runs behind
// by up to this much still accepts.
const UsedTicketSlack = 30 * time.Second

// usedTicketKey names a ticket's used mark beside the buyers key of the
// reserve key set it is checked with (keys[1]), so it shares that key set's
// hash tag, whatever the set (see lua/reserve.lua's KEYS).
func usedTicketKey(reserveKeys []string, ticketID string) string {
	return strings.TrimSuffix(reserveKeys[1], "buyers") + "ticket:" + ticketID
}

// lane returns the queue of the flushers that serve the master of key,
// starting them the first time. On a single Redis every request shares
// s.reqs. On a Redis Cluster each master has flushers of its own, so a
// master that hangs holds up only the pipelines sent to it: with shared
// flushers, each soon held a batch with a call for that master and every
// purchase waited for it.
func (s *Store) lane(ctx context.Context, key string) chan *reserveReq {
	node := s.NodeOfKey(ctx, key)
	if node == "" {
		return s.reqs
	}
	if ch, ok := s.lanes.Load(node); ok {
		return ch.(chan *reserveReq)
	}
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	if ch, ok := s.lanes.Load(node); ok {
		return ch.(chan *reserveReq)
	}
	if s.closing {
		return s.reqs // send sees quit closed
	}
	ch := make(chan *reserveReq)
	s.lanes.Store(node, ch)
	s.flushers.Add(s.pipelines)
	for range s.pipelines {
		go s.flush(ch) //nolint:contextcheck // a batch carries many callers' calls, so it runs under its own deadline
	}
	return ch
}

// flush is one flusher on the queue reqs: it waits for a first request,
// takes whatever other requests are already waiting (never waiting for
// more, so an idle store adds no delay), and sends them as one pipeline.
func (s *Store) flush(reqs chan *reserveReq) {
	defer s.flushers.Done()
	batch := make([]*reserveReq, 0, s.maxBatch)
	calls := make([]scriptCall, 0, s.maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-reqs:
			batch = append(batch, r)
		case <-s.quit:
			return
		}
	drain:
		for len(batch) < s.maxBatch {
			select {
			case r := <-reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		calls = s.sendBatch(batch, calls[:0])
	}
}

// sendBatch answers every request in batch; calls is scratch space. The
// requests for one bucket go out as one script call, in arrival order, so
// a flusher sends one call per bucket, not one per order.
func (s *Store) sendBatch(batch []*reserveReq, calls []scriptCall) []scriptCall {
	live := batch[:0]
	for _, r := range batch {
		// A caller that gave up before the pipeline left is answered now and
		// not sent, so nothing is reserved for a caller that is gone.
		if err := r.ctx.Err(); err != nil {
			r.done <- reserveResult{err: err}
			continue
		}
		live = append(live, r)
	}
	// Stable, so each bucket's requests keep their order; a hot item's
	// batch is one run already, and its keys compare by pointer.
	slices.SortStableFunc(live, func(a, b *reserveReq) int { return strings.Compare(a.keys[0], b.keys[0]) })
	var groups [][]*reserveReq
	for i := 0; i < len(live); {
		j := i + 1
		for j < len(live) && live[j].keys[0] == live[i].keys[0] {
			j++
		}
		groups = append(groups, live[i:j])
		calls = append(calls, s.reserveCall(live[i:j]))
		i = j
	}
	// The pipeline runs under a context of its own: one caller's
	// cancellation must not fail the calls of the others sharing it, and a
	// sent call's result must reach its caller whatever happens to its ctx.
	bctx, endSpan := traceBatch(context.Background(), live)
	cmds := s.runScripts(bctx, calls)
	endSpan()
	for i, g := range groups {
		vals, err := cmds[i].Slice()
		if err == nil && len(vals) != 4*len(g) {
			err = fmt.Errorf("reserve script replied %d values for %d orders", len(vals), len(g))
		}
		for j, r := range g {
			var res reserveResult
			if err != nil {
				res.err = fmt.Errorf("redisstock: reserve: %w", unanswered(err))
			} else if res.r, res.err = decodeReserve(vals[4*j : 4*j+4]); res.err != nil {
				res.err = fmt.Errorf("redisstock: reserve: %w", res.err)
			}
			r.done <- res
		}
	}
	// Drop references so finished requests can be collected.
	clear(batch)
	clear(calls)
	return calls[:0]
}

// unanswered classifies the error of a reserve call that was handed to the
// client: it matches sale.ErrOutcomeUnknown unless Redis itself answered
// with an error reply (NOSCRIPT, LOADING, READONLY, TRYAGAIN, a script
// error), which it sends instead of running the script. Anything else (a
// read or write timeout, a reset or EOF, and also a dial error or a pool
// timeout) may follow a send: go-redis re-sends a pipeline whose reply was
// lost (EOF, timeout) up to MaxRetries times, so the error it returns is
// only the last attempt's, and an earlier attempt may have been applied.
// The re-send itself is safe: the script is idempotent per order id (see
// Reserve).
func unanswered(err error) error {
	var reply redis.Error
	if errors.As(err, &reply) {
		return err
	}
	return fmt.Errorf("%w: %w", sale.ErrOutcomeUnknown, err) //nolint:errorlint // both wrapped: the answer and the failure that caused it
}

// decodeReserve maps one order's {code, stock, gen, order_id} in the
// reserve script's reply to a Reservation.
func decodeReserve(vals []any) (sale.Reservation, error) {
	if len(vals) != 4 {
		return sale.Reservation{}, fmt.Errorf("reserve script replied %d values, want 4", len(vals))
	}
	code, ok1 := vals[0].(int64)
	stock, ok2 := vals[1].(int64)
	gen, ok3 := vals[2].(int64)
	existing, ok4 := vals[3].(string)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return sale.Reservation{}, fmt.Errorf("reserve script replied %v", vals)
	}
	r := sale.Reservation{Gen: gen, StockLeft: stock}
	switch code {
	case codeReserveAccepted:
		r.Outcome = sale.Accepted
	case codeReserveNotFound:
		r.Outcome = sale.OutcomeNotFound
	case codeReserveNotStarted:
		r.Outcome = sale.OutcomeNotStarted
	case codeReserveEnded:
		r.Outcome = sale.OutcomeEnded
	case codeReserveSoldOut:
		r.Outcome = sale.OutcomeSoldOut
	case codeReserveAlready:
		r.Outcome = sale.OutcomeAlreadyPurchased
		r.Existing = sale.OrderID(existing)
	case codeReserveTicketUsed:
		r.Outcome = sale.OutcomeTicketUsed
	default:
		return sale.Reservation{}, fmt.Errorf("reserve script replied unknown code %d", code)
	}
	return r, nil
}
