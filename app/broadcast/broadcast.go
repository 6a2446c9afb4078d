// Package broadcast keeps the instances of one deployment in step. The
// Notifier sends what this instance learned (sale.Notifier: sold out, stock
// back, blocked) and runs item invalidations; the Listener applies what the
// others sent: "drop your local copy of item N", "item N sold out / got
// stock back at generation G", "user U was blocked / unblocked". The
// Listener also runs the delay queue's tasks, among them the second delete
// of a delayed double delete, so that delete happens even if the instance
// that scheduled it dies.
//
// Broadcasts are best effort; correctness never depends on them. A lost
// invalidation is bounded by the local cache TTL, a lost sold-out flag costs
// a Redis round trip, and a lost "stock back" is bounded by the flag's TTL.
// When the bus reconnects (and may have missed messages) every local copy
// and every flag is dropped at once.
//
// Sending and listening are two types so that nothing waits to be bound
// late: the use cases that notify are built with the Notifier, and the
// Listener is built after them, with the ones it hands work to.
package broadcast

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"seckill/domain/sale"
)

// Event kinds on the bus.
const (
	KindInvalidate = "invalidate"
	KindSoldOut    = "soldout"
	KindRestocked  = "restocked"
	KindBlocked    = "blocked"
	KindUnblocked  = "unblocked"
)

// Event is one broadcast message.
type Event struct {
	Kind   string
	Item   sale.ItemID
	Gen    int64
	User   sale.UserID // the user of a blocklist event
	Sender string
}

type bus interface {
	Publish(ctx context.Context, e Event) error
}

type sharedCache interface {
	Invalidate(ctx context.Context, id sale.ItemID) error
}

type localCache interface {
	Invalidate(id sale.ItemID)
	Flush()
}

type flags interface {
	MarkSoldOut(id sale.ItemID, gen int64, now time.Time)
	StockBack(id sale.ItemID, gen int64)
	Forget()
}

type scheduler interface {
	Schedule(ctx context.Context, task string, at time.Time) error
}

// NotifierDeps are what the Notifier works on.
type NotifierDeps struct {
	Bus    bus
	Shared sharedCache // the Redis item-data cache
	Local  localCache  // this instance's freecache
	Flags  flags       // this instance's shield
	Delay  scheduler   // the durable delay queue, for second deletes
	// SecondDelete is the delay of the second delete.
	SecondDelete time.Duration
	Log          *slog.Logger
	Now          func() time.Time
}

// Notifier implements sale.Notifier on the bus, and catalog.Invalidator.
type Notifier struct{ d NotifierDeps }

var _ sale.Notifier = (*Notifier)(nil)

// NewNotifier returns a notifier.
func NewNotifier(d NotifierDeps) *Notifier {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Notifier{d: d}
}

// Invalidate deletes the item's shared entry, drops this instance's copy and
// tells every other instance to drop theirs. It fails only if the shared
// delete fails; a failed broadcast is logged, since the local TTL bounds it.
func (n *Notifier) Invalidate(ctx context.Context, id sale.ItemID) error {
	if err := n.d.Shared.Invalidate(ctx, id); err != nil {
		return fmt.Errorf("delete shared item entry: %w", err)
	}
	n.d.Local.Invalidate(id)
	if err := n.d.Bus.Publish(ctx, Event{Kind: KindInvalidate, Item: id}); err != nil {
		n.d.Log.Warn("invalidation broadcast failed; other instances rely on their cache TTL", "item_id", id, "err", err)
	}
	return nil
}

const taskPrefix = "invalidate-item:"

// InvalidateLater schedules the second delete in the durable delay queue;
// any instance's Listener runs it when it is due.
func (n *Notifier) InvalidateLater(ctx context.Context, id sale.ItemID) error {
	return n.d.Delay.Schedule(ctx, taskPrefix+id.String(), n.d.Now().Add(n.d.SecondDelete))
}

// SoldOut broadcasts that an item sold out at generation gen.
func (n *Notifier) SoldOut(id sale.ItemID, gen int64) {
	n.publish(Event{Kind: KindSoldOut, Item: id, Gen: gen})
}

// StockBack clears this instance's flag and broadcasts that units came back
// at generation gen.
func (n *Notifier) StockBack(id sale.ItemID, gen int64) {
	n.d.Flags.StockBack(id, gen)
	n.publish(Event{Kind: KindRestocked, Item: id, Gen: gen})
}

// Blocked broadcasts a blocklist change; the caller has applied it here.
func (n *Notifier) Blocked(user sale.UserID, blocked bool) {
	kind := KindUnblocked
	if blocked {
		kind = KindBlocked
	}
	n.publish(Event{Kind: kind, User: user})
}

func (n *Notifier) publish(e Event) {
	// Off the caller's path and context: a purchase that discovered the sell
	// out must not wait for, or be cancelled with, the broadcast.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := n.d.Bus.Publish(ctx, e); err != nil {
			n.d.Log.Warn("broadcast failed", "kind", e.Kind, "item_id", e.Item, "err", err)
		}
	}()
}
