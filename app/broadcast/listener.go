package broadcast

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"seckill/domain/sale"
)

// blocklist is this instance's copy of the fair-sale blocklist.
type blocklist interface {
	Apply(user sale.UserID, blocked bool)
	Reload(ctx context.Context) error
}

// invalidator runs an invalidation on every layer (the Notifier).
type invalidator interface {
	Invalidate(ctx context.Context, id sale.ItemID) error
}

// taskRunner runs the delay-queue tasks of another use case (the payment
// window's expiries); ok is false for a task it does not know.
type taskRunner interface {
	RunTask(ctx context.Context, task string) (ok bool, err error)
}

// ListenerDeps are what the Listener applies events and tasks to.
type ListenerDeps struct {
	Local  localCache // this instance's freecache
	Flags  flags      // this instance's shield
	Blocks blocklist  // this instance's blocklist copy
	// Caches runs the second delete of a delayed double delete.
	Caches invalidator
	// Tasks runs every other delay-queue task.
	Tasks taskRunner
	Log   *slog.Logger
	Now   func() time.Time
}

// Listener applies the bus's events to this instance and is the delay
// queue's handler.
type Listener struct{ d ListenerDeps }

// NewListener returns a listener.
func NewListener(d ListenerDeps) *Listener {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Listener{d: d}
}

// Handle applies an event from the bus to this instance.
func (l *Listener) Handle(e Event) {
	switch e.Kind {
	case KindInvalidate:
		l.d.Local.Invalidate(e.Item)
	case KindSoldOut:
		l.d.Flags.MarkSoldOut(e.Item, e.Gen, l.d.Now())
	case KindRestocked:
		l.d.Flags.StockBack(e.Item, e.Gen)
	case KindBlocked, KindUnblocked:
		l.d.Blocks.Apply(e.User, e.Kind == KindBlocked)
	default:
		l.d.Log.Warn("unknown broadcast ignored", "kind", e.Kind)
	}
}

// Resubscribed drops every local copy and flag, because broadcasts sent
// while the bus was disconnected are lost, and reads the blocklist again.
func (l *Listener) Resubscribed() {
	l.d.Local.Flush()
	l.d.Flags.Forget()
	// Off the bus's goroutine.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.d.Blocks.Reload(ctx); err != nil {
			l.d.Log.Warn("blocklist reload after reconnect failed; the periodic reload will retry", "err", err)
		}
	}()
	l.d.Log.Info("broadcast bus reconnected; local cache and sold-out flags flushed, blocklist reloaded")
}

// RunTask is the delay queue's handler: the second deletes, and every task
// Tasks knows. Unknown tasks are dropped with a log line rather than
// retried forever.
func (l *Listener) RunTask(ctx context.Context, task string) error {
	s, ok := strings.CutPrefix(task, taskPrefix)
	if !ok {
		if ok, err := l.d.Tasks.RunTask(ctx, task); ok {
			return err
		}
		l.d.Log.Warn("unknown delayed task dropped", "task", task)
		return nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		l.d.Log.Warn("malformed delayed task dropped", "task", task)
		return nil //nolint:nilerr // dropped, not retried: a malformed task fails the same way forever
	}
	return l.d.Caches.Invalidate(ctx, sale.ItemID(id))
}
