// Package redisbus broadcasts small events between the instances of the app
// over one Redis Pub/Sub channel: "drop your local copy of item 7", "item 7
// sold out at generation 3", "item 7 was restocked".
//
// Pub/Sub is fire-and-forget: a message sent while an instance is not
// connected is lost to it, and go-redis reconnects without saying so. Bus
// makes that loss visible instead of silent: every subscription confirmation
// after the first means the connection was re-established, and Run calls
// onResubscribe so the app can discard whatever the lost messages would
// have told it (the local cache flushes). A connection that stays open but
// stops delivering is found by a ping and replaced, with the same callback.
//
// On Redis Cluster the bus uses classic Pub/Sub, which the cluster carries
// to every node: it subscribes on, and publishes to, the master of the
// channel's slot, so events keep their order as on a single node.
package redisbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/domain/sale"
)

// Kind names what an Event announces.
type Kind string

// The kinds of event the app sends.
const (
	// KindInvalidate asks every instance to drop its copy of the item's data.
	KindInvalidate Kind = "invalidate"
	// KindSoldOut says the item sold out at stock generation Gen.
	KindSoldOut Kind = "soldout"
	// KindRestocked says units came back to the item at stock generation Gen.
	KindRestocked Kind = "restocked"
	// KindBlocked says User was put on the blocklist (app/fairness).
	KindBlocked Kind = "blocked"
	// KindUnblocked says User was taken off the blocklist.
	KindUnblocked Kind = "unblocked"
)

func (k Kind) valid() bool {
	return k == KindInvalidate || k == KindSoldOut || k == KindRestocked || k == KindBlocked || k == KindUnblocked
}

// aboutUser reports whether events of kind k name a user instead of an item.
func (k Kind) aboutUser() bool { return k == KindBlocked || k == KindUnblocked }

// wellFormed reports whether e names what its kind needs: a positive item,
// or for the blocklist kinds a valid user id and no item.
func (e Event) wellFormed() bool {
	if !e.Kind.valid() {
		return false
	}
	if e.Kind.aboutUser() {
		_, err := sale.ParseUserID(string(e.User))
		return err == nil && e.Item == 0
	}
	return e.Item > 0
}

// Event is one broadcast. Sender is the instance id of the bus that published
// it; a bus receives its own events too, and can tell them by Sender.
type Event struct {
	Kind Kind
	Item sale.ItemID
	Gen  int64
	// User is the user a blocklist event is about; empty for item events.
	User   sale.UserID
	Sender string
}

// wireEvent is the JSON on the channel; short names keep messages small.
type wireEvent struct {
	Kind   Kind   `json:"k"`
	Item   int64  `json:"i"`
	Gen    int64  `json:"g,omitempty"`
	User   string `json:"u,omitempty"`
	Sender string `json:"s"`
}

// Stats is a snapshot of a Bus's counters since New.
type Stats struct {
	Sent         uint64 // events published
	Received     uint64 // well-formed events handed to the handler
	Malformed    uint64 // messages on the channel that were not a valid event; dropped
	Resubscribes uint64 // times the subscription was re-established after the first
	Errors       uint64 // failed receives, pings and publishes
}

// Bus publishes and receives Events on one channel. It is safe for
// concurrent use; Run should be running at most once per Bus.
type Bus struct {
	rdb     redis.UniversalClient
	channel string
	id      string

	// health is how long the subscription may be silent before it is
	// pinged; a ping unanswered for as long again replaces the connection.
	health time.Duration
	// retryMax caps the pause between attempts while Redis is unreachable.
	retryMax time.Duration

	sent, received, malformed, resubscribes, errs atomic.Uint64
	// confirmations counts subscription confirmations, the first included,
	// and pongs the answers to health pings; tests wait on them.
	confirmations, pongs atomic.Uint64
}

// New returns a Bus on channel that stamps the events it sends with
// instanceID.
func New(rdb redis.UniversalClient, channel, instanceID string) *Bus {
	return &Bus{
		rdb:      rdb,
		channel:  channel,
		id:       instanceID,
		health:   15 * time.Second,
		retryMax: time.Second,
	}
}

// Publish sends e to every instance subscribed now, this one included, with
// Sender set to this bus's instance id. It returns an error wrapping
// sale.ErrInvalid for an unknown kind, an item id that is not positive (or,
// for a blocklist event, a bad user id or any item id), and
// Redis's error if the message was not handed to Redis; it cannot report
// whether anyone received it.
func (b *Bus) Publish(ctx context.Context, e Event) error {
	if !e.wellFormed() {
		return fmt.Errorf("redisbus: publish %q for item %d user %q: %w", e.Kind, e.Item, e.User, sale.ErrInvalid)
	}
	payload, err := json.Marshal(wireEvent{Kind: e.Kind, Item: int64(e.Item), Gen: e.Gen, User: string(e.User), Sender: b.id})
	if err != nil {
		return fmt.Errorf("redisbus: encode event: %w", err)
	}
	pub, err := b.publisher(ctx)
	if err == nil {
		err = pub.Publish(ctx, b.channel, payload).Err()
	}
	if err != nil {
		b.errs.Add(1)
		return fmt.Errorf("redisbus: publish: %w", err)
	}
	b.sent.Add(1)
	return nil
}

// publisher is the client a PUBLISH goes through. On Redis Cluster any node
// forwards a classic PUBLISH to every other, but go-redis sends a keyless
// command to whichever node it picks, and two messages sent through two
// nodes can arrive in either order. So on a cluster every message goes to
// the master of the channel's slot, the node go-redis subscribes on: one
// path, in order, as on a single node.
func (b *Bus) publisher(ctx context.Context) (redis.UniversalClient, error) {
	cc, ok := b.rdb.(*redis.ClusterClient)
	if !ok {
		return b.rdb, nil
	}
	return cc.MasterForKey(ctx, b.channel)
}

// Run receives events until ctx is done, then returns nil; it returns an
// error at once only if handle is nil. It calls handle
// for each well-formed event, one at a time and in order, on its own
// goroutine; handle must be quick, since Redis drops subscribers that fall
// far behind. It calls onResubscribe (which may be nil) each time the
// subscription is re-established after the first, because events sent while
// it was down are lost. While Redis is unreachable Run keeps retrying.
func (b *Bus) Run(ctx context.Context, handle func(Event), onResubscribe func()) error {
	if handle == nil {
		return errors.New("redisbus: Run needs a handler")
	}
	first := true
	for ctx.Err() == nil {
		b.listen(ctx, &first, handle, onResubscribe)
	}
	return nil
}

// listen runs one PubSub until ctx is done or its connection is judged dead.
func (b *Bus) listen(ctx context.Context, first *bool, handle func(Event), onResubscribe func()) {
	ps := b.rdb.Subscribe(ctx, b.channel)
	defer ps.Close()
	// A blocked Receive does not watch ctx; closing the PubSub ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()

	pinged := false
	retry := time.Duration(0)
	for {
		msg, err := ps.ReceiveTimeout(ctx, b.health)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var nerr net.Error
			if errors.As(err, &nerr) && nerr.Timeout() {
				if pinged {
					// A whole interval without an answer to our ping: the
					// connection is dead without TCP having noticed. A new
					// PubSub dials afresh.
					b.errs.Add(1)
					return
				}
				// Silence is normal on a quiet channel; a ping tells a
				// quiet channel from a dead connection. If it cannot even
				// be written, go-redis redials at once.
				if err := ps.Ping(ctx); err != nil {
					b.errs.Add(1)
				}
				pinged = true
				continue
			}
			// go-redis has already dropped the connection and redials and
			// resubscribes on the next receive; pause first so an outage
			// is not a busy loop.
			b.errs.Add(1)
			retry = min(max(2*retry, 50*time.Millisecond), b.retryMax)
			select {
			case <-time.After(retry):
			case <-ctx.Done():
				return
			}
			continue
		}
		pinged, retry = false, 0

		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			b.confirmations.Add(1)
			if *first {
				*first = false
				continue
			}
			b.resubscribes.Add(1)
			if onResubscribe != nil {
				onResubscribe()
			}
		case *redis.Pong:
			b.pongs.Add(1)
		case *redis.Message:
			e, ok := decode(m.Payload)
			if !ok {
				b.malformed.Add(1)
				continue
			}
			b.received.Add(1)
			handle(e)
		}
	}
}

// Stats returns the counters; each is read atomically, the set is not a
// consistent snapshot.
func (b *Bus) Stats() Stats {
	return Stats{
		Sent:         b.sent.Load(),
		Received:     b.received.Load(),
		Malformed:    b.malformed.Load(),
		Resubscribes: b.resubscribes.Load(),
		Errors:       b.errs.Load(),
	}
}

// decode accepts only what Publish produces. Unknown kinds are refused too:
// an instance must not act on an event it does not understand.
func decode(payload string) (Event, bool) {
	var w wireEvent
	if err := json.Unmarshal([]byte(payload), &w); err != nil {
		return Event{}, false
	}
	e := Event{Kind: w.Kind, Item: sale.ItemID(w.Item), Gen: w.Gen, User: sale.UserID(w.User), Sender: w.Sender}
	if !e.wellFormed() || w.Sender == "" {
		return Event{}, false
	}
	return e, true
}

// Subscribed reports whether Redis has confirmed the subscription at least
// once, so that events published from now on reach this instance.
func (b *Bus) Subscribed() bool { return b.confirmations.Load() > 0 }
