package broadcast

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"seckill/domain/sale"
)

type recorder struct {
	shared, local []sale.ItemID
	published     []Event
	flushed       int
	failShared    bool
}

func (r *recorder) Invalidate(_ context.Context, id sale.ItemID) error {
	if r.failShared {
		return errors.New("redis down")
	}
	r.shared = append(r.shared, id)
	return nil
}
func (r *recorder) Publish(_ context.Context, e Event) error {
	r.published = append(r.published, e)
	return nil
}

type local struct{ r *recorder }

func (l local) Invalidate(id sale.ItemID) { l.r.local = append(l.r.local, id) }
func (l local) Flush()                    { l.r.flushed++ }

type noFlags struct{}

func (noFlags) MarkSoldOut(sale.ItemID, int64, time.Time) {}
func (noFlags) StockBack(sale.ItemID, int64)              {}
func (noFlags) Forget()                                   {}

type noBlocks struct{}

func (noBlocks) Apply(sale.UserID, bool)      {}
func (noBlocks) Reload(context.Context) error { return nil }

type noTasks struct{}

func (noTasks) RunTask(context.Context, string) (bool, error) { return false, nil }

type taskFunc func(ctx context.Context, task string) (bool, error)

func (f taskFunc) RunTask(ctx context.Context, task string) (bool, error) { return f(ctx, task) }

type sched struct {
	task string
	at   time.Time
}

func (s *sched) Schedule(_ context.Context, task string, at time.Time) error {
	s.task, s.at = task, at
	return nil
}

func TestDoubleDeleteRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	r, s := &recorder{}, &sched{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := NewNotifier(NotifierDeps{Bus: r, Shared: r, Local: local{r}, Flags: noFlags{}, Delay: s,
		SecondDelete: 500 * time.Millisecond, Log: quiet, Now: func() time.Time { return now }})
	c := NewListener(ListenerDeps{Local: local{r}, Flags: noFlags{}, Blocks: noBlocks{}, Caches: n, Tasks: noTasks{}, Log: quiet})
	if err := n.InvalidateLater(context.Background(), 42); err != nil {
		t.Fatal(err)
	}
	if !s.at.Equal(now.Add(500 * time.Millisecond)) {
		t.Fatalf("second delete scheduled at %v", s.at)
	}
	// Whichever instance runs the task deletes on every layer.
	if err := c.RunTask(context.Background(), s.task); err != nil {
		t.Fatal(err)
	}
	if len(r.shared) != 1 || r.shared[0] != 42 || len(r.local) != 1 || len(r.published) != 1 || r.published[0].Kind != KindInvalidate {
		t.Fatalf("second delete did shared=%v local=%v published=%v", r.shared, r.local, r.published)
	}
	// Junk tasks are dropped, not retried forever.
	if err := c.RunTask(context.Background(), "invalidate-item:abc"); err != nil {
		t.Fatalf("malformed task: %v", err)
	}
	// A failed shared delete is an error, so the delay queue retries it.
	r.failShared = true
	if err := c.RunTask(context.Background(), s.task); err == nil {
		t.Fatal("a failed shared delete was reported as done")
	}
	c.Resubscribed()
	if r.flushed != 1 {
		t.Fatal("resubscribe did not flush the local cache")
	}
}

// TestRunTaskRoutesOtherTasks: a task the listener does not own goes to
// ListenerDeps.Tasks, its error comes back (so the delay queue retries it), and a
// task nobody knows is dropped, not retried forever.
func TestRunTaskRoutesOtherTasks(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	var got []string
	c := NewListener(ListenerDeps{Local: local{r}, Flags: noFlags{}, Blocks: noBlocks{}, Caches: r,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tasks: taskFunc(func(_ context.Context, task string) (bool, error) {
			if task == "expire-order:fail" {
				return true, errors.New("db down")
			}
			if strings.HasPrefix(task, "expire-order:") {
				got = append(got, task)
				return true, nil
			}
			return false, nil
		})})
	ctx := context.Background()
	if err := c.RunTask(ctx, "expire-order:1-abc"); err != nil || len(got) != 1 {
		t.Fatalf("routed task: %v, handler saw %v", err, got)
	}
	if err := c.RunTask(ctx, "expire-order:fail"); err == nil {
		t.Fatal("the handler's error was swallowed; the delay queue would not retry")
	}
	if err := c.RunTask(ctx, "mystery:1"); err != nil {
		t.Fatalf("unknown task: %v, want dropped", err)
	}
}
