// Package broadcast keeps the instances of one deployment in step. It carries
// three kinds of news between them over a broadcast bus: "drop your local
// copy of item N" (cache invalidation), "item N sold out / got stock back at
// generation G" (the shield's sold-out flags) and "user U was blocked /
// unblocked" (the fair-sale blocklist). It also runs the second
// delete of a delayed double delete from a durable delay queue, so the
// delete happens even if the instance that scheduled it dies.
//
// Broadcasts are best effort; correctness never depends on them. A lost
// invalidation is bounded by the local cache TTL, a lost sold-out flag costs
// a Redis round trip, and a lost "stock back" is bounded by the flag's TTL.
// When the bus reconnects (and may have missed messages) every local copy
// and every flag is dropped at once.
package broadcast

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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

// blocklist is this instance's copy of the fair-sale blocklist.
type blocklist interface {
	Apply(user sale.UserID, blocked bool)
	Reload(ctx context.Context) error
}

type scheduler interface {
	Schedule(ctx context.Context, task string, at time.Time) error
}

// Deps are what the coordinator works on.
type Deps struct {
	Bus    bus
	Shared sharedCache // the Redis item-data cache
	Local  localCache  // this instance's freecache
	Flags  flags       // this instance's shield
	Delay  scheduler
	// Blocks, if set, is this instance's blocklist copy, kept in step with
	// the others like the sold-out flags.
	Blocks blocklist
	// SecondDelete is the delay of the second delete.
	SecondDelete time.Duration
	// Tasks, if set, runs the delay-queue tasks of other use cases (the
	// order lifecycle's expiries); ok is false for a task it does not know.
	Tasks func(ctx context.Context, task string) (ok bool, err error)
	Log   *slog.Logger
	Now   func() time.Time
}

// Coordinator implements catalog.Invalidator and the bus and delay-queue
// handlers.
type Coordinator struct{ d Deps }

// New returns a coordinator.
func New(d Deps) *Coordinator {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Coordinator{d: d}
}

// Invalidate deletes the item's shared entry, drops this instance's copy and
// tells every other instance to drop theirs. It fails only if the shared
// delete fails; a failed broadcast is logged, since the local TTL bounds it.
func (c *Coordinator) Invalidate(ctx context.Context, id sale.ItemID) error {
	if err := c.d.Shared.Invalidate(ctx, id); err != nil {
		return fmt.Errorf("delete shared item entry: %w", err)
	}
	c.d.Local.Invalidate(id)
	if err := c.d.Bus.Publish(ctx, Event{Kind: KindInvalidate, Item: id}); err != nil {
		c.d.Log.Warn("invalidation broadcast failed; other instances rely on their cache TTL", "item_id", id, "err", err)
	}
	return nil
}

const taskPrefix = "invalidate-item:"

// InvalidateLater schedules the second delete in the durable delay queue;
// any instance runs it when it is due.
func (c *Coordinator) InvalidateLater(ctx context.Context, id sale.ItemID) error {
	return c.d.Delay.Schedule(ctx, taskPrefix+id.String(), c.d.Now().Add(c.d.SecondDelete))
}

// RunTask is the delay queue's handler: the second deletes, and every task
// Deps.Tasks knows. Unknown tasks are dropped with a log line rather than
// retried forever.
func (c *Coordinator) RunTask(ctx context.Context, task string) error {
	s, ok := strings.CutPrefix(task, taskPrefix)
	if !ok {
		if c.d.Tasks != nil {
			if ok, err := c.d.Tasks(ctx, task); ok {
				return err
			}
		}
		c.d.Log.Warn("unknown delayed task dropped", "task", task)
		return nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		c.d.Log.Warn("malformed delayed task dropped", "task", task)
		return nil //nolint:nilerr // dropped, not retried: a malformed task fails the same way forever
	}
	return c.Invalidate(ctx, sale.ItemID(id))
}

// SoldOut broadcasts that an item sold out at generation gen.
func (c *Coordinator) SoldOut(id sale.ItemID, gen int64) {
	c.publish(Event{Kind: KindSoldOut, Item: id, Gen: gen})
}

// StockBack clears this instance's flag and broadcasts that units came back
// at generation gen.
func (c *Coordinator) StockBack(id sale.ItemID, gen int64) {
	c.d.Flags.StockBack(id, gen)
	c.publish(Event{Kind: KindRestocked, Item: id, Gen: gen})
}

func (c *Coordinator) publish(e Event) {
	// Off the caller's path and context: a purchase that discovered the sell
	// out must not wait for, or be cancelled with, the broadcast.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := c.d.Bus.Publish(ctx, e); err != nil {
			c.d.Log.Warn("broadcast failed", "kind", e.Kind, "item_id", e.Item, "err", err)
		}
	}()
}

// Blocked applies a blocklist change here and broadcasts it to every other
// instance, so each refuses the user without a round trip.
func (c *Coordinator) Blocked(user sale.UserID, blocked bool) {
	kind := KindUnblocked
	if blocked {
		kind = KindBlocked
	}
	if c.d.Blocks != nil {
		c.d.Blocks.Apply(user, blocked)
	}
	c.publish(Event{Kind: kind, User: user})
}

// Handle applies an event from the bus to this instance.
func (c *Coordinator) Handle(e Event) {
	switch e.Kind {
	case KindInvalidate:
		c.d.Local.Invalidate(e.Item)
	case KindSoldOut:
		c.d.Flags.MarkSoldOut(e.Item, e.Gen, c.d.Now())
	case KindRestocked:
		c.d.Flags.StockBack(e.Item, e.Gen)
	case KindBlocked, KindUnblocked:
		if c.d.Blocks != nil {
			c.d.Blocks.Apply(e.User, e.Kind == KindBlocked)
		}
	default:
		c.d.Log.Warn("unknown broadcast ignored", "kind", e.Kind)
	}
}

// Resubscribed drops every local copy and flag, because broadcasts sent
// while the bus was disconnected are lost.
func (c *Coordinator) Resubscribed() {
	c.d.Local.Flush()
	c.d.Flags.Forget()
	if c.d.Blocks != nil {
		// A block broadcast while disconnected is lost: read the durable
		// list again, off the bus's goroutine.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.d.Blocks.Reload(ctx); err != nil {
				c.d.Log.Warn("blocklist reload after reconnect failed; the periodic reload will retry", "err", err)
			}
		}()
	}
	c.d.Log.Info("broadcast bus reconnected; local cache and sold-out flags flushed, blocklist reloaded")
}
