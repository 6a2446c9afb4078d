// Package breaker puts a circuit breaker and a deadline in front of each
// backend role (the Redis stock ledger, the Redis item cache, the database,
// Kafka produce), as decorators around the ports the use cases already
// use. The adapters do not know about it and the use cases keep their
// interfaces; only app/bootstrap builds guards. On a Redis Cluster the
// ledger's purchases and order lookups pass one breaker per master
// (NodeBreakers), so a hung master refuses only its own buckets' calls.
//
// What it guarantees:
//   - while a breaker is open, every call through it fails within
//     microseconds with an error that errors.Is ErrOpen, without touching
//     the backend;
//   - a call to a backend that is slow waits at most its role's call
//     timeout: database and Kafka calls through their ctx; Redis ledger
//     reads and Reserve by the guard giving up even when the adapter would
//     wait longer (the call then finishes on its own, see Ledger.Reserve
//     for why that is safe). A ledger call that waits in this process's
//     own queue while Redis answers (a spike) is not given up (RedisHealth);
//     the request deadline bounds it. The ledger's admin writes pass the
//     breaker without a deadline, because the catalog acts on their answer;
//   - only transport errors and deadline overruns count as failures. A
//     domain answer (sold out, not found, invalid, already purchased) is a
//     success however often it comes, so a spike of refusals never opens a
//     breaker; so is a Redis Cluster's TRYAGAIN, ASK or MOVED (a slot in
//     migration). A caller that went away (context.Canceled) counts as
//     neither.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"seckill/domain/sale"
)

// ErrOpen is what a call through an open (or saturated half-open) breaker
// returns, wrapped with the backend's name. The use cases turn it into
// their ErrUnavailable, which the HTTP error table answers with 503
// unavailable and Retry-After.
var ErrOpen = errors.New("circuit breaker open")

// Settings tunes one breaker. Zero fields take the defaults documented in
// docs/CONFIG.md ("Timeouts and circuit breakers").
type Settings struct {
	// CallTimeout bounds one call to the backend; 0 leaves calls unbounded
	// by the guard.
	CallTimeout time.Duration
	// OpenFor is how long the breaker stays open before it lets probes
	// through (half-open); default 1s.
	OpenFor time.Duration
	// Probes is how many calls half-open lets through, and how many must
	// succeed in a row to close again; default 3.
	Probes uint32
	// ConsecutiveFailures opens the breaker on that many failures in a row;
	// default 5.
	ConsecutiveFailures uint32
	// MinRequests and FailureRatio open it when, within Window, at least
	// MinRequests calls were made and at least FailureRatio of them failed;
	// defaults 20 and 0.5.
	MinRequests  uint32
	FailureRatio float64
	// Window is the closed state's rolling count period; default 10s.
	Window time.Duration
	// Health, if set, tells a detached call whether the backend itself is
	// slow; a call past its deadline is then given up (and counted) only
	// when it is. See RedisHealth.
	Health interface{ Slow(d time.Duration) bool }
}

func (s Settings) withDefaults() Settings {
	if s.OpenFor <= 0 {
		s.OpenFor = time.Second
	}
	if s.Probes == 0 {
		s.Probes = 3
	}
	if s.ConsecutiveFailures == 0 {
		s.ConsecutiveFailures = 5
	}
	if s.MinRequests == 0 {
		s.MinRequests = 20
	}
	if s.FailureRatio <= 0 {
		s.FailureRatio = 0.5
	}
	if s.Window <= 0 {
		s.Window = 10 * time.Second
	}
	return s
}

// Breaker is one backend role's circuit breaker and call deadline. It is
// safe for concurrent use.
type Breaker struct {
	name    string
	timeout time.Duration
	health  interface{ Slow(d time.Duration) bool }
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]

	rejected, failures, opened atomic.Uint64
}

// NewBreaker returns a closed breaker for the backend role name.
func NewBreaker(name string, s Settings) *Breaker {
	s = s.withDefaults()
	b := &Breaker{name: name, timeout: s.CallTimeout, health: s.Health}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         name,
		MaxRequests:  s.Probes,
		Interval:     s.Window,
		BucketPeriod: s.Window / 10,
		Timeout:      s.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= s.ConsecutiveFailures ||
				(c.Requests >= s.MinRequests && float64(c.TotalFailures) >= s.FailureRatio*float64(c.Requests))
		},
		IsSuccessful: func(err error) bool { return !Failure(err) },
		IsExcluded:   func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, _, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.opened.Add(1)
			}
		},
	})
	return b
}

// Failure reports whether err says the backend is unwell: any error except
// the domain's own answers and a Redis Cluster's redirections. Only
// failures move a breaker towards open.
func Failure(err error) bool {
	if err == nil {
		return false
	}
	// During a slot migration a cluster answers TRYAGAIN to a multi-key
	// command, such as a stock ledger script, whose keys are split between
	// two nodes, and ASK (or, once it is over, MOVED) to one whose keys
	// have left; go-redis follows and retries them, but a few outlast its
	// MaxRedirects. They are healthy nodes saying "not here, not this
	// moment" about one slot. Counted, they opened the ledger's breaker
	// during a live reshard and refused the purchases of every stock
	// bucket, those on untouched masters too (docs/RELIABILITY.md,
	// redis-cluster-reshard).
	if redis.IsTryAgainError(err) {
		return false
	}
	if _, ok := redis.IsAskError(err); ok {
		return false
	}
	if _, ok := redis.IsMovedError(err); ok {
		return false
	}
	for _, domain := range []error{
		sale.ErrInvalid, sale.ErrNotFound, sale.ErrOrderNotFound, sale.ErrNotStarted,
		sale.ErrEnded, sale.ErrSoldOut, sale.ErrAlreadyPurchased, sale.ErrStockExhausted,
		sale.ErrPaymentWindowClosed, sale.ErrOrderPending, sale.ErrOrderFailed, sale.ErrAlreadyPaid,
	} {
		if errors.Is(err, domain) {
			return false
		}
	}
	return true
}

// Name is the backend role the breaker guards.
func (b *Breaker) Name() string { return b.name }

// State is the breaker's state now: "closed", "half-open" or "open".
func (b *Breaker) State() string { return b.cb.State().String() }

// StateValue is State as a number for a gauge: 0 closed, 1 half-open, 2 open.
func (b *Breaker) StateValue() float64 {
	switch b.cb.State() {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

// Stats counts what the breaker did since NewBreaker.
type Stats struct {
	Rejected uint64 // calls refused without reaching the backend
	Failures uint64 // calls that reached the backend and failed or overran
	Opened   uint64 // times the breaker opened
}

// Stats returns the counters, for metrics and tests.
func (b *Breaker) Stats() Stats {
	return Stats{Rejected: b.rejected.Load(), Failures: b.failures.Load(), Opened: b.opened.Load()}
}

// enter asks the breaker for a call; done must be called with the call's
// error exactly once.
func (b *Breaker) enter() (done func(error), err error) {
	d, err := b.cb.Allow()
	if err != nil {
		b.rejected.Add(1)
		return nil, fmt.Errorf("%s: %w (%v)", b.name, ErrOpen, err)
	}
	return func(err error) {
		if Failure(err) && !errors.Is(err, context.Canceled) {
			b.failures.Add(1)
		}
		d(err)
	}, nil
}

// deadline derives the call's context.
func (b *Breaker) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if b.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, b.timeout)
}

// do runs f under the breaker with the call deadline in its ctx. It is for
// adapters that honour their ctx (database/sql, kafka-go): the call itself
// ends at the deadline.
func do[T any](b *Breaker, ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	return call(b, ctx, true, f)
}

// pass runs f under the breaker without the call deadline.
func pass[T any](b *Breaker, ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	return call(b, ctx, false, f)
}

func call[T any](b *Breaker, ctx context.Context, bounded bool, f func(context.Context) (T, error)) (T, error) {
	done, err := b.enter()
	if err != nil {
		var zero T
		return zero, err
	}
	var cctx context.Context
	var cancel context.CancelFunc
	if bounded {
		cctx, cancel = b.deadline(ctx)
	} else {
		cctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	v, err := f(cctx)
	done(err)
	return v, err
}

// detach runs f under the breaker and stops waiting for it once it is past
// the call deadline and the backend is slow (see Settings.Health; without
// Health, at the deadline), returning context.DeadlineExceeded even if f
// does not honour its ctx. f gets the caller's ctx, so a call still queued
// in the adapter when the caller leaves is never sent. A call given up
// finishes on its own goroutine and its result is dropped. It is for the
// Redis ledger, whose client bounds a sent call by its read timeout (2s),
// not by ctx. The goroutines left behind are bounded: only calls the
// breaker admits can be given up, and it opens after a few.
func detach[T any](b *Breaker, ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	done, err := b.enter()
	if err != nil {
		var zero T
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1) // buffered: the goroutine never blocks on a caller that left
	go func() {
		v, err := f(ctx)
		ch <- result{v, err}
	}()
	var zero T
	// Without a call timeout, expired stays nil and never fires.
	var expired <-chan time.Time
	var t *time.Timer
	if b.timeout > 0 {
		t = time.NewTimer(b.timeout)
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case r := <-ch:
			done(r.err)
			return r.v, r.err
		case <-ctx.Done():
			done(ctx.Err())
			return zero, ctx.Err()
		case <-expired:
			if b.health == nil || b.health.Slow(b.timeout) {
				err := fmt.Errorf("%s: no answer within %v: %w", b.name, b.timeout, context.DeadlineExceeded)
				done(err)
				return zero, err
			}
			// The backend is answering; the wait is this process's own
			// queue, which the in-flight bound and the request deadline
			// limit. Look again soon.
			t.Reset(b.timeout / 4)
		}
	}
}
