package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"seckill/domain/sale"
)

// The waiting-room scenarios (docs/QUEUE.md): (h) joins a queue item's line
// with a new user per request; (i) polls it as users who joined, while a
// second instance (the worker's waiting-room service, in this process, as
// another API would) polls the same line. The line's own counters, read
// with Redis's clock, give the admission rate across the two instances.
const (
	queueAdmitRate = 200
	// pollUsers is how many users per wrk thread (i) polls as; each joined
	// the line before (i) starts.
	pollUsers = 5000
)

// createQueueItem creates the queue item of (h) and (i), open since a
// second ago, with more units than any run admits.
func (b *bench) createQueueItem(ctx context.Context) error {
	now := time.Now().UTC()
	st, body, err := b.sys.call(ctx, "POST", "/api/v1/admin/items", b.sys.admin, map[string]any{
		"name": "bench (h)(i) waiting room", "description": "benchsale", "price_cents": 100, "stock": 5_000_000,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339Nano), "ends_at": now.Add(2 * time.Hour).Format(time.RFC3339Nano),
		"protection": "queue", "admit_per_second": queueAdmitRate,
	})
	if err != nil {
		return fmt.Errorf("create the queue item: %w", err)
	}
	if st != http.StatusCreated {
		return fmt.Errorf("create the queue item: status %d: %v", st, body)
	}
	id, _ := body["id"].(float64)
	b.itemQ = int64(id)
	return nil
}

// joinPollUsers puts the users (i) polls as in the line, through the API
// instance's service (no HTTP): the first pollUsers of each wrk thread's
// slice of tokens. Those (h) already joined keep their place.
func (b *bench) joinPollUsers(ctx context.Context) error {
	threads := max(1, min(b.o.threads, b.o.connections))
	per := b.wrk.tokens.Count / threads
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if _, err := b.sys.m.Queue.Join(ctx, b.wrk.tokens.User(i), sale.ItemID(b.itemQ)); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		}()
	}
	for k := range threads {
		for j := range min(pollUsers, per) {
			jobs <- k*per + j
		}
	}
	close(jobs)
	wg.Wait()
	return first
}

// admissionRate is the line's admissions per second during (i).
type admissionRate struct {
	Admitted  int64
	Over      time.Duration // Redis clock
	Instances int
	Err       error
}

func (a admissionRate) perSec() float64 {
	if a.Over <= 0 {
		return 0
	}
	return float64(a.Admitted) / a.Over.Seconds()
}

// watchAdmissions polls the line from the second instance (when there is
// one) for d, and reads the admissions given between 1 s into (i) and
// 0.5 s before its end from the API instance's copy of the line: each
// reading is one atomic script reply with Redis's time, so the rate needs
// no local clock.
func (b *bench) watchAdmissions(ctx context.Context, d time.Duration) <-chan admissionRate {
	out := make(chan admissionRate, 1)
	item := sale.ItemID(b.itemQ)
	go func() {
		res := admissionRate{Instances: 1}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		if w := b.sys.w; w != nil && w.Queue != nil {
			res.Instances = 2
			go func() {
				for ctx.Err() == nil {
					_, _ = w.Queue.Poll(ctx, b.wrk.tokens.User(0), item)
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
		sleepCtx(ctx, time.Second)
		from, ok := b.sys.m.Queue.Lines()[item]
		sleepCtx(ctx, d-1500*time.Millisecond)
		to, ok2 := b.sys.m.Queue.Lines()[item]
		if !ok || !ok2 {
			res.Err = fmt.Errorf("the API instance never read the line")
		}
		res.Admitted, res.Over = to.Admitted-from.Admitted, to.Now.Sub(from.Now)
		out <- res
	}()
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// reportQueue is the admission rate measured during (i).
func (b *bench) reportQueue(w io.Writer) {
	a := b.admissions
	if a == nil {
		return
	}
	fmt.Fprintln(w)
	if a.Err != nil {
		fmt.Fprintf(w, "admission rate during (i): not measured: %v\n", a.Err)
		return
	}
	rate := a.perSec()
	verdict := "ok"
	if rate < 0.9*queueAdmitRate || rate > 1.1*queueAdmitRate {
		verdict = "MISS"
		b.missed = true
	}
	fmt.Fprintf(w, "admission rate during (i), %d instance(s) polling one line: %.1f/s (%d over %s of Redis time); setting %d/s, target ±10%%: %s\n",
		a.Instances, rate, a.Admitted, a.Over.Round(time.Millisecond), queueAdmitRate, verdict)
}
