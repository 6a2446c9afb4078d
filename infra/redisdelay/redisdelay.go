// Package redisdelay runs tasks at a later time, at least once, even if the
// instance that scheduled them dies. The app uses it for the second half of
// the delayed double delete: "in a moment, delete item 7's cached data again
// on every layer".
//
// A queue is two sorted sets in Redis, scored by Unix milliseconds: key holds
// tasks waiting for their time, key+":leased" (or "{key}:leased" for a key
// without a hash tag) holds tasks an instance has claimed and not yet
// finished. Any number of instances may Run the same
// queue. A Lua script moves due tasks from the first set to the second with a
// lease, so no two instances take the same due task; the task leaves the
// leased set only when its handler succeeds, and only if its lease is still
// the one that instance set. A task whose handler fails, or whose instance
// dies, is due again when its lease runs out. Both sets are always in one
// Redis Cluster slot, so the claim script works on a cluster.
//
// A task is its string: scheduling a string already waiting merges the two
// into one run, at the later of the two times. Times come from the clocks
// of the instances, which must be kept in step (NTP); skew makes tasks run
// early or late by that much.
package redisdelay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures a Queue. Zero fields take their defaults.
type Options struct {
	// Lease is how long a claimed task is kept from other instances, and the
	// deadline of the handler's context; default 5s. A handler that fails
	// is retried after it.
	Lease time.Duration
	// Poll is how often Run looks for due tasks when the last look found
	// fewer than Batch; default 50ms. It bounds how late a task runs.
	Poll time.Duration
	// Batch is how many tasks one look claims, and so how many handlers run
	// at once; default 32.
	Batch int
}

func (o Options) withDefaults() Options {
	if o.Lease <= 0 {
		o.Lease = 5 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.Batch <= 0 {
		o.Batch = 32
	}
	return o
}

// Stats is a snapshot of a Queue's counters since New, for this instance.
type Stats struct {
	Scheduled uint64 // successful Schedule calls
	Ran       uint64 // handler calls that succeeded
	Failed    uint64 // handler calls that returned an error; retried after the lease
	Reclaimed uint64 // expired leases (failed or abandoned runs) made due again
	Errors    uint64 // Redis commands that failed
}

// Queue schedules and runs delayed tasks stored under one key. It is safe
// for concurrent use.
type Queue struct {
	rdb    redis.UniversalClient
	due    string
	leased string
	opts   Options

	scheduled, ran, failed, reclaimed, errs atomic.Uint64
}

// New returns a Queue on key.
func New(rdb redis.UniversalClient, key string, opts Options) *Queue {
	return &Queue{rdb: rdb, due: key, leased: leasedKey(key), opts: opts.withDefaults()}
}

// KeyPatterns lists the keys a Queue on key uses: the due set and the
// leased set. It exists so the docs test can check the key tables.
func KeyPatterns(key string) []string { return []string{key, leasedKey(key)} }

// leasedKey names the leased set so that it is in the due set's cluster
// slot, which the claim script needs (it moves tasks between the two). A key
// with a hash tag keeps it ("<p>:{delayed}" -> "<p>:{delayed}:leased"); a key
// without one becomes the tag, since the slot of "{k}..." is the slot of k.
func leasedKey(key string) string {
	if hasHashTag(key) {
		return key + ":leased"
	}
	return "{" + key + "}:leased"
}

// hasHashTag reports whether Redis Cluster hashes key by a tag: a '{'
// followed, later, by a '}' with at least one character between.
func hasHashTag(key string) bool {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return false
	}
	end := strings.IndexByte(key[open+1:], '}')
	return end > 0
}

// Schedule makes task due at at. If the task is already waiting, it keeps
// the later of the two times: a second delete must never be brought forward
// to before a delay that another change asked for. A task that is running
// now is scheduled afresh and runs again at at.
func (q *Queue) Schedule(ctx context.Context, task string, at time.Time) error {
	if task == "" {
		return errors.New("redisdelay: empty task")
	}
	err := q.rdb.ZAddArgs(ctx, q.due, redis.ZAddArgs{
		GT:      true,
		Members: []redis.Z{{Score: float64(at.UnixMilli()), Member: task}},
	}).Err()
	if err != nil {
		q.errs.Add(1)
		return fmt.Errorf("redisdelay: schedule: %w", err)
	}
	q.scheduled.Add(1)
	return nil
}

// ScheduleAll is Schedule for many tasks in one round trip, for callers
// that schedule a batch at once, such as the expiry of every order a worker
// confirmed. The tasks go out as one ZADD GT per scheduleChunk members, not
// one per task: Redis parses and dispatches a command once, and the client
// builds one. It fails if any ZADD failed; the others may have been
// applied, which is harmless because scheduling is idempotent.
func (q *Queue) ScheduleAll(ctx context.Context, tasks map[string]time.Time) error {
	if len(tasks) == 0 {
		return nil
	}
	members := make([]redis.Z, 0, len(tasks))
	for task, at := range tasks {
		if task == "" {
			return errors.New("redisdelay: empty task")
		}
		members = append(members, redis.Z{Score: float64(at.UnixMilli()), Member: task})
	}
	pipe := q.rdb.Pipeline()
	for c := range slices.Chunk(members, scheduleChunk) {
		pipe.ZAddArgs(ctx, q.due, redis.ZAddArgs{GT: true, Members: c})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		q.errs.Add(1)
		return fmt.Errorf("redisdelay: schedule %d tasks: %w", len(tasks), err)
	}
	q.scheduled.Add(uint64(len(tasks)))
	return nil
}

// scheduleChunk is the most members ScheduleAll puts in one ZADD, so one
// huge batch does not become one huge command that blocks Redis.
const scheduleChunk = 500

// claimScript first returns tasks whose lease ran out to the due set (keeping
// a later time if the task was scheduled again meanwhile), then moves up to
// ARGV[3] due tasks to the leased set with score ARGV[2]. Both steps in one
// script, so two instances can never claim the same task.
var claimScript = redis.NewScript(`
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, task in ipairs(expired) do
  redis.call('ZREM', KEYS[2], task)
  redis.call('ZADD', KEYS[1], 'GT', ARGV[1], task)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, task in ipairs(due) do
  redis.call('ZREM', KEYS[1], task)
  redis.call('ZADD', KEYS[2], ARGV[2], task)
end
return {#expired, due}
`)

// completeScript drops a finished task from the leased set only if its lease
// is still ours: if it ran out and another instance claimed the task, that
// instance's lease must survive in case it dies too.
var completeScript = redis.NewScript(`
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
`)

// claim takes up to Batch tasks due at now, leased until leaseUntil.
func (q *Queue) claim(ctx context.Context, now time.Time, leaseUntil int64) ([]string, error) {
	res, err := claimScript.Run(ctx, q.rdb, []string{q.due, q.leased},
		now.UnixMilli(), leaseUntil, q.opts.Batch).Slice()
	if err != nil {
		q.errs.Add(1)
		return nil, fmt.Errorf("redisdelay: claim: %w", err)
	}
	if len(res) != 2 {
		q.errs.Add(1)
		return nil, fmt.Errorf("redisdelay: claim: unexpected reply %v", res)
	}
	if n, ok := res[0].(int64); ok {
		q.reclaimed.Add(uint64(n)) //nolint:gosec // G115: n counts reclaimed tasks, never negative
	}
	raw, _ := res[1].([]any)
	tasks := make([]string, 0, len(raw))
	for _, r := range raw {
		if s, ok := r.(string); ok {
			tasks = append(tasks, s)
		}
	}
	return tasks, nil
}

// complete reports whether the task's lease was still ours and is now gone.
func (q *Queue) complete(ctx context.Context, task string, leaseUntil int64) (bool, error) {
	n, err := completeScript.Run(ctx, q.rdb, []string{q.leased}, task, leaseUntil).Int()
	if err != nil {
		q.errs.Add(1)
		return false, fmt.Errorf("redisdelay: complete: %w", err)
	}
	return n == 1, nil
}

// Run claims due tasks and calls handle for each until ctx is done; it then
// waits for running handlers and returns nil. It returns an error at once
// only if handle is nil. handle's context ends when the task's lease does;
// a nil return removes the task, an error leaves it to be retried after the
// lease. handle may run more than once for one scheduling (after a failure,
// a lease that ran out, or a dead instance), so it must be idempotent.
// Redis failures are counted and retried at the next poll.
func (q *Queue) Run(ctx context.Context, handle func(ctx context.Context, task string) error) error {
	if handle == nil {
		return errors.New("redisdelay: Run needs a handler")
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		wait := q.opts.Poll
		// A full batch suggests more are due: look again at once.
		if q.runBatch(ctx, handle) == q.opts.Batch {
			wait = 0
		}
		timer.Reset(wait)
	}
}

// runBatch claims one batch, runs its handlers concurrently and waits for
// them, so that no handler outlives Run.
func (q *Queue) runBatch(ctx context.Context, handle func(context.Context, string) error) int {
	now := time.Now()
	leaseUntil := now.UnixMilli() + q.opts.Lease.Milliseconds()
	tasks, err := q.claim(ctx, now, leaseUntil)
	if err != nil {
		return 0
	}
	var wg sync.WaitGroup
	for _, task := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Stop the handler when the lease ends: past that, another
			// instance may be running the same task.
			hctx, cancel := context.WithDeadline(ctx, time.UnixMilli(leaseUntil))
			err := handle(hctx, task)
			cancel()
			if err != nil {
				q.failed.Add(1)
				return
			}
			q.ran.Add(1)
			// Record success even if Run is being stopped: otherwise the
			// finished task would run again after its lease.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = q.complete(cctx, task, leaseUntil)
		}()
	}
	wg.Wait()
	return len(tasks)
}

// Stats returns the counters; each is read atomically, the set is not a
// consistent snapshot.
func (q *Queue) Stats() Stats {
	return Stats{
		Scheduled: q.scheduled.Load(),
		Ran:       q.ran.Load(),
		Failed:    q.failed.Load(),
		Reclaimed: q.reclaimed.Load(),
		Errors:    q.errs.Load(),
	}
}
