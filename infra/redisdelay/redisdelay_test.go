package redisdelay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"seckill/infra/testenv"
)

// onRedis runs f against miniredis, the real Redis and a real three-master
// Redis Cluster (which testenv skips locally, and fails under CI, when it is
// not configured or its binaries are missing).
func onRedis(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient, key string)) {
	t.Run("miniredis", func(t *testing.T) {
		t.Parallel()
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		f(t, rdb, "delay")
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		rdb, prefix := testenv.Redis(t)
		f(t, rdb, prefix+":delay")
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		rdb, prefix := testenv.RedisCluster(t)
		// No hash tag: the queue must still keep both sets in one slot.
		f(t, rdb, prefix+":delay")
	})
}

// runs counts handler calls per task and when each happened.
type runs struct {
	mu    sync.Mutex
	count map[string]int
	at    map[string][]time.Time
}

func newRuns() *runs { return &runs{count: map[string]int{}, at: map[string][]time.Time{}} }

func (r *runs) record(task string) {
	r.mu.Lock()
	r.count[task]++
	r.at[task] = append(r.at[task], time.Now())
	r.mu.Unlock()
}

func (r *runs) of(task string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[task]
}

func (r *runs) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.count)
}

func (r *runs) times(task string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at[task]...)
}

// start runs q until the test ends, and checks that Run then returns nil.
// stop ends it early and waits for it.
func start(t *testing.T, q *Queue, handle func(context.Context, string) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, handle) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v after cancel, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drained reports whether no task is waiting or leased, so none can run again.
func drained(t *testing.T, rdb redis.UniversalClient, key string) bool {
	t.Helper()
	ctx := context.Background()
	a, err1 := rdb.ZCard(ctx, key).Result()
	b, err2 := rdb.ZCard(ctx, leasedKey(key)).Result()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	return a+b == 0
}

func TestTaskRunsOnceWhenDue(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, key string) {
		q := New(rdb, key, Options{Poll: 10 * time.Millisecond})
		rec := newRuns()
		at := time.Now().Add(200 * time.Millisecond)
		if err := q.Schedule(context.Background(), "delete:item:7", at); err != nil {
			t.Fatal(err)
		}
		stop := start(t, q, func(_ context.Context, task string) error {
			rec.record(task)
			return nil
		})
		waitFor(t, "the task to run", func() bool { return rec.of("delete:item:7") > 0 })
		// Scores are whole milliseconds, so a run may start up to 1ms
		// before at.
		if ran := rec.times("delete:item:7")[0]; ran.Before(at.Add(-time.Millisecond)) {
			t.Fatalf("ran %v before its time", at.Sub(ran))
		}
		waitFor(t, "the task to be removed", func() bool { return drained(t, rdb, key) })
		stop()
		if n := rec.of("delete:item:7"); n != 1 {
			t.Fatalf("ran %d times, want 1", n)
		}
		if st := q.Stats(); st.Scheduled != 1 || st.Ran != 1 || st.Failed != 0 || st.Reclaimed != 0 {
			t.Fatalf("stats = %+v", st)
		}
	})
}

func TestTwoInstancesRunEachTaskOnce(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, key string) {
		const tasks = 200
		ctx := context.Background()
		now := time.Now()
		for i := 0; i < tasks; i++ {
			if err := New(rdb, key, Options{}).Schedule(ctx, "task-"+strconv.Itoa(i), now); err != nil {
				t.Fatal(err)
			}
		}
		rec := newRuns()
		var byA, byB atomic.Int64
		handler := func(n *atomic.Int64) func(context.Context, string) error {
			return func(_ context.Context, task string) error {
				rec.record(task)
				n.Add(1)
				return nil
			}
		}
		a := New(rdb, key, Options{Poll: time.Millisecond, Batch: 5})
		b := New(rdb, key, Options{Poll: time.Millisecond, Batch: 5})
		stopA := start(t, a, handler(&byA))
		stopB := start(t, b, handler(&byB))

		waitFor(t, "every task to run", func() bool { return rec.distinct() == tasks })
		waitFor(t, "every task to be removed", func() bool { return drained(t, rdb, key) })
		stopA()
		stopB()
		for i := 0; i < tasks; i++ {
			if n := rec.of("task-" + strconv.Itoa(i)); n != 1 {
				t.Fatalf("task-%d ran %d times, want 1", i, n)
			}
		}
		if got := byA.Load() + byB.Load(); got != tasks {
			t.Fatalf("%d runs for %d tasks", got, tasks)
		}
		t.Logf("instance a ran %d, instance b ran %d", byA.Load(), byB.Load())
	})
}

// An instance that claims a task and dies leaves it leased; another
// instance runs it once the lease is over, and not before.
func TestAbandonedTaskRunsAfterLease(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, key string) {
		const lease = 300 * time.Millisecond
		ctx := context.Background()
		dying := New(rdb, key, Options{Lease: lease})
		if err := dying.Schedule(ctx, "orphan", time.Now()); err != nil {
			t.Fatal(err)
		}
		claimedAt := time.Now()
		got, err := dying.claim(ctx, claimedAt, claimedAt.UnixMilli()+lease.Milliseconds())
		if err != nil || len(got) != 1 || got[0] != "orphan" {
			t.Fatalf("claim = %v, %v", got, err)
		}
		// The dying instance never completes it.

		rec := newRuns()
		survivor := New(rdb, key, Options{Lease: lease, Poll: 10 * time.Millisecond})
		start(t, survivor, func(_ context.Context, task string) error {
			rec.record(task)
			return nil
		})
		waitFor(t, "the survivor to run the orphan", func() bool { return rec.of("orphan") == 1 })
		if ran := rec.times("orphan")[0]; ran.Sub(claimedAt) < lease-time.Millisecond {
			t.Fatalf("survivor ran the task %v after the claim, inside the %v lease", ran.Sub(claimedAt), lease)
		}
		waitFor(t, "the task to be removed", func() bool { return drained(t, rdb, key) })
		if st := survivor.Stats(); st.Reclaimed != 1 || st.Ran != 1 {
			t.Fatalf("survivor stats = %+v, want 1 reclaimed and 1 ran", st)
		}
	})
}

func TestFailingHandlerIsRetried(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, key string) {
		q := New(rdb, key, Options{Lease: 100 * time.Millisecond, Poll: 10 * time.Millisecond})
		if err := q.Schedule(context.Background(), "flaky", time.Now()); err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int64
		start(t, q, func(_ context.Context, _ string) error {
			if calls.Add(1) <= 2 {
				return errors.New("redis blinked")
			}
			return nil
		})
		waitFor(t, "a successful run", func() bool { return q.Stats().Ran == 1 })
		waitFor(t, "the task to be removed", func() bool { return drained(t, rdb, key) })
		if st := q.Stats(); st.Failed != 2 || st.Reclaimed != 2 || calls.Load() != 3 {
			t.Fatalf("stats = %+v after %d calls, want 2 failed, 2 reclaimed, 3 calls", st, calls.Load())
		}
	})
}

// Scheduling a task while it runs must not be swallowed by the running
// instance's completion.
func TestRescheduleDuringRunRunsAgain(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, key string) {
		ctx := context.Background()
		q := New(rdb, key, Options{Poll: 10 * time.Millisecond})
		if err := q.Schedule(ctx, "again", time.Now()); err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int64
		start(t, q, func(_ context.Context, task string) error {
			if calls.Add(1) == 1 {
				// Another change asks for the task while it is running.
				if err := q.Schedule(ctx, task, time.Now()); err != nil {
					return err
				}
			}
			return nil
		})
		waitFor(t, "the second run", func() bool { return calls.Load() >= 2 })
		waitFor(t, "the task to be removed", func() bool { return drained(t, rdb, key) })
		if n := calls.Load(); n != 2 {
			t.Fatalf("ran %d times, want 2", n)
		}
	})
}

// A late completion from an instance whose lease ran out must not remove
// the lease another instance now holds.
func TestLateCompletionKeepsTheNewLease(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, key string) {
		ctx := context.Background()
		q := New(rdb, key, Options{})
		t0 := time.Now()
		if err := q.Schedule(ctx, "slow", t0); err != nil {
			t.Fatal(err)
		}
		leaseA := t0.UnixMilli() + 100
		if got, err := q.claim(ctx, t0, leaseA); err != nil || len(got) != 1 {
			t.Fatalf("claim by a = %v, %v", got, err)
		}
		// Instance b comes along after a's lease ran out.
		t1 := t0.Add(200 * time.Millisecond)
		leaseB := t1.UnixMilli() + 5000
		if got, err := q.claim(ctx, t1, leaseB); err != nil || len(got) != 1 {
			t.Fatalf("claim by b = %v, %v", got, err)
		}
		if ok, err := q.complete(ctx, "slow", leaseA); err != nil || ok {
			t.Fatalf("a's late completion = %v, %v; want refused", ok, err)
		}
		score, err := rdb.ZScore(ctx, leasedKey(key), "slow").Result()
		if err != nil || int64(score) != leaseB {
			t.Fatalf("lease after a's completion = %v, %v; want b's %d", score, err, leaseB)
		}
		if ok, err := q.complete(ctx, "slow", leaseB); err != nil || !ok {
			t.Fatalf("b's completion = %v, %v; want done", ok, err)
		}
	})
}

func TestScheduleKeepsTheLaterTime(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, key string) {
		ctx := context.Background()
		q := New(rdb, key, Options{})
		base := time.Now().Truncate(time.Millisecond)
		for _, step := range []struct {
			at   time.Time
			want time.Time
		}{
			{base.Add(time.Hour), base.Add(time.Hour)},
			{base, base.Add(time.Hour)},                        // earlier: ignored
			{base.Add(2 * time.Hour), base.Add(2 * time.Hour)}, // later: moves
		} {
			if err := q.Schedule(ctx, "t", step.at); err != nil {
				t.Fatal(err)
			}
			score, err := rdb.ZScore(ctx, key, "t").Result()
			if err != nil || int64(score) != step.want.UnixMilli() {
				t.Fatalf("after Schedule(%v): score %v, %v; want %d", step.at, score, err, step.want.UnixMilli())
			}
		}
		if err := q.Schedule(ctx, "", base); err == nil {
			t.Fatal("Schedule accepted an empty task")
		}
	})
}

// Stopping Run lets a running handler finish and still records its success.
func TestStopWaitsForHandlersAndKeepsTheirResult(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, key string) {
		ctx := context.Background()
		q := New(rdb, key, Options{Poll: 10 * time.Millisecond})
		if err := q.Schedule(ctx, "finishing", time.Now()); err != nil {
			t.Fatal(err)
		}
		entered := make(chan struct{})
		var finished atomic.Bool
		stop := start(t, q, func(hctx context.Context, _ string) error {
			close(entered)
			<-hctx.Done() // Run's ctx is cancelled while we work
			finished.Store(true)
			return nil
		})
		<-entered
		stop()
		if !finished.Load() {
			t.Fatal("Run returned before its handler did")
		}
		if !drained(t, rdb, key) {
			t.Fatal("a handler that succeeded during shutdown left its task behind")
		}
	})
}

// TestScheduleAllRunsEachTaskOnceAtItsTime: a batch scheduled in one round
// trip runs each task once, none before its own time, and keeps the later
// time of a task that was already waiting.
func TestScheduleAllRunsEachTaskOnceAtItsTime(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, key string) {
		q := New(rdb, key, Options{Poll: 10 * time.Millisecond})
		rec := newRuns()
		now := time.Now()
		later := now.Add(400 * time.Millisecond)
		if err := q.Schedule(context.Background(), "expire-order:b", later); err != nil {
			t.Fatal(err)
		}
		tasks := map[string]time.Time{
			"expire-order:a": now.Add(100 * time.Millisecond),
			"expire-order:b": now.Add(50 * time.Millisecond), // must not bring b forward
			"expire-order:c": now.Add(200 * time.Millisecond),
		}
		if err := q.ScheduleAll(context.Background(), tasks); err != nil {
			t.Fatal(err)
		}
		stop := start(t, q, func(_ context.Context, task string) error { rec.record(task); return nil })
		waitFor(t, "every task to run", func() bool { return rec.distinct() == 3 })
		waitFor(t, "the tasks to be removed", func() bool { return drained(t, rdb, key) })
		stop()
		tasks["expire-order:b"] = later
		for task, at := range tasks {
			if n := rec.of(task); n != 1 {
				t.Errorf("%s ran %d times, want 1", task, n)
			}
			if ran := rec.times(task)[0]; ran.Before(at.Add(-time.Millisecond)) {
				t.Errorf("%s ran %v before its time", task, at.Sub(ran))
			}
		}
		if st := q.Stats(); st.Scheduled != 4 {
			t.Fatalf("stats = %+v, want 4 scheduled", st)
		}
	})
}

// TestScheduleAllInChunks: a batch larger than one ZADD's chunk is still
// scheduled whole, every task at its own time.
func TestScheduleAllInChunks(t *testing.T) {
	t.Parallel()
	onRedis(t, func(t *testing.T, rdb redis.UniversalClient, key string) {
		q := New(rdb, key, Options{})
		n := 2*scheduleChunk + 3
		at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		tasks := make(map[string]time.Time, n)
		for i := range n {
			tasks[fmt.Sprintf("task:%d", i)] = at.Add(time.Duration(i) * time.Millisecond)
		}
		if err := q.ScheduleAll(context.Background(), tasks); err != nil {
			t.Fatal(err)
		}
		got, err := rdb.ZRangeWithScores(context.Background(), q.due, 0, -1).Result()
		if err != nil || len(got) != n {
			t.Fatalf("%d tasks waiting (%v), want %d", len(got), err, n)
		}
		for _, z := range got {
			if want := tasks[z.Member.(string)]; int64(z.Score) != want.UnixMilli() {
				t.Fatalf("%v due at %d, want %d", z.Member, int64(z.Score), want.UnixMilli())
			}
		}
	})
}
