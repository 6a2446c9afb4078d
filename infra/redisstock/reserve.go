package redisstock

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"seckill/domain/sale"
)

// reserveReq is one Reserve call waiting for a flusher.
type reserveReq struct {
	ctx  context.Context
	call scriptCall
	// done is buffered so a flusher never blocks on a caller.
	done chan reserveResult
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
	return s.reserveSplit(ctx, o, req.call, res)
}

// send hands req to a flusher and waits for its answer.
func (s *Store) send(ctx context.Context, req *reserveReq) (sale.Reservation, error) {
	select {
	case s.reqs <- req:
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
func (s *Store) reserveSplit(ctx context.Context, o sale.Order, call scriptCall, r sale.Reservation) (sale.Reservation, error) {
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
		r, err = s.send(ctx, &reserveReq{ctx: ctx, call: call, done: make(chan reserveResult, 1)})
		if err != nil || r.Outcome != sale.OutcomeSoldOut {
			return r, err
		}
	}
	return sale.Reservation{Outcome: sale.OutcomeStockMoving, Gen: r.Gen}, nil
}

// newReserveReq prepares the reserve script call for o, on the keys of its
// bucket; ks is the item's bucket keys, nil for bucket 0.
func (s *Store) newReserveReq(ctx context.Context, o sale.Order, ks []itemKeys) *reserveReq {
	k := s.item(o.ItemID)
	if b := o.ID.Bucket(); b > 0 {
		k = ks[b]
	}
	keys := k.reserve()
	args := []any{
		strconv.FormatInt(o.CreatedAt.UnixMilli(), 10),
		string(o.UserID),
		string(o.ID),
		encodePending(o),
		s.firstLook.Milliseconds(),
	}
	// The ticket's used mark goes with the buyers key of the order's
	// bucket: the user's home bucket, the same for every attempt the
	// user makes on this item, so a ticket is used once per item.
	if o.Ticket.ID != "" {
		keys, args = withTicket(keys, args, o)
	}
	return &reserveReq{
		ctx:  ctx,
		call: scriptCall{script: reserveScript, keys: keys, args: args},
		done: make(chan reserveResult, 1),
	}
}

// UsedTicketSlack is how much longer than its ticket a used-ticket mark
// lives. Instances check a ticket's expiry on their own clocks; the slack
// keeps the mark alive past the expiry an instance whose clock runs behind
// by up to this much still accepts.
const UsedTicketSlack = 30 * time.Second

// withTicket adds the optional ticket key and argument of reserveSrc.
func withTicket(keys []string, args []any, o sale.Order) ([]string, []any) {
	ttl := max(time.Until(o.Ticket.ExpiresAt), 0) + UsedTicketSlack
	return append(keys, usedTicketKey(keys, o.Ticket.ID)), append(args, ttl.Milliseconds())
}

// usedTicketKey names a ticket's used mark beside the buyers key of the
// reserve key set it is checked with (keys[1]), so it shares that key set's
// hash tag, whatever the set (see reserveSrc's KEYS).
func usedTicketKey(reserveKeys []string, ticketID string) string {
	return strings.TrimSuffix(reserveKeys[1], "buyers") + "ticket:" + ticketID
}

// flush is one flusher: it waits for a first request, takes whatever other
// requests are already waiting (never waiting for more, so an idle store adds
// no delay), and sends them as one pipeline.
func (s *Store) flush() {
	defer s.flushers.Done()
	batch := make([]*reserveReq, 0, s.maxBatch)
	calls := make([]scriptCall, 0, s.maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-s.quit:
			return
		}
	drain:
		for len(batch) < s.maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		calls = s.sendBatch(batch, calls[:0])
	}
}

// sendBatch answers every request in batch; calls is scratch space.
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
		calls = append(calls, r.call)
	}
	// The pipeline runs under a context of its own: one caller's
	// cancellation must not fail the calls of the others sharing it, and a
	// sent call's result must reach its caller whatever happens to its ctx.
	cmds := s.runScripts(context.Background(), calls)
	for i, r := range live {
		res, err := decodeReserve(cmds[i].Slice())
		if err != nil {
			err = fmt.Errorf("redisstock: reserve: %w", err)
		}
		r.done <- reserveResult{r: res, err: err}
	}
	// Drop references so finished requests can be collected.
	clear(batch)
	clear(calls)
	return calls[:0]
}

// decodeReserve maps the reserve script's {code, stock, gen, order_id} reply
// to a Reservation. A transport or script error stays an error.
func decodeReserve(vals []any, err error) (sale.Reservation, error) {
	if err != nil {
		return sale.Reservation{}, err
	}
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
