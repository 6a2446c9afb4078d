package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// quiet is what waiting for a quiet machine before a scenario found.
type quiet struct {
	Waited time.Duration
	Busy   float64 // share of all CPUs busy in the last sample, 0 to 1
	Quiet  bool    // false: still busy at the deadline, measured anyway
}

// quietBusy is the share of the machine's CPUs that counts as quiet: the
// system between runs (timers, Redis' cron, MariaDB's idle threads) stays
// well under it, while InnoDB flushing the pages of 100,000s of inserts or
// a worker still settling takes a core or more.
const quietBusy = 0.15

// cpuTimes reads /proc/stat's first line: time spent busy and in total
// over all CPUs, in clock ticks, for the quiet wait and the CPU table. Only
// the first eight columns (user to steal) are summed: guest time is
// already counted in user and nice.
func cpuTimes() (busy, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var idle int64
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total - idle, total, nil
}

// waitQuiet samples the CPUs every step until two samples in a row are
// below quietBusy, or until limit has passed. A scenario measured while the
// previous one's background work still runs (the (b) run's inserts being
// flushed, its orders being settled, the GC) would measure that work too.
// (It was suspected of the ±0.15 spread of (c) and (d), run right after
// (b), but the wait ends within 1.5 s in every run so far: the spread is
// the machine's drift, which bracket answers.) Without /proc/stat (not
// Linux) it returns at once.
func waitQuiet(ctx context.Context, limit, step time.Duration) (quiet, error) {
	start := time.Now()
	busy0, total0, err := cpuTimes()
	if err != nil {
		return quiet{Quiet: true}, nil //nolint:nilerr // no /proc/stat: nothing to wait for
	}
	calm := 0
	for {
		select {
		case <-ctx.Done():
			return quiet{}, ctx.Err()
		case <-time.After(step):
		}
		busy1, total1, err := cpuTimes()
		if err != nil {
			return quiet{}, err
		}
		q := quiet{Waited: time.Since(start)}
		if total1 > total0 {
			q.Busy = float64(busy1-busy0) / float64(total1-total0)
		}
		busy0, total0 = busy1, total1
		if q.Busy < quietBusy {
			calm++
		} else {
			calm = 0
		}
		if calm >= 2 {
			q.Quiet = true
			return q, nil
		}
		if q.Waited >= limit {
			return q, nil
		}
	}
}

// waitQuiet waits for a quiet machine before sc's run (see waitQuiet) and
// says what it found; a machine still busy at the limit is measured anyway,
// and the report names the scenario.
func (b *bench) waitQuiet(ctx context.Context, sc scenario) error {
	if b.o.quietLimit <= 0 {
		return nil
	}
	q, err := waitQuiet(ctx, b.o.quietLimit, 250*time.Millisecond)
	if err != nil {
		return err
	}
	if !q.Quiet {
		b.busy = append(b.busy, fmt.Sprintf("(%s) %.0f %%", sc.Key, 100*q.Busy))
		b.logf("    the CPUs are still %.0f %% busy after %s: measuring anyway", 100*q.Busy, q.Waited.Round(time.Millisecond))
		return nil
	}
	b.logf("    quiet after %s (CPUs %.0f %% busy)", q.Waited.Round(time.Millisecond), 100*q.Busy)
	return nil
}

// bracket runs the baseline (a) for half of -duration beside a scenario
// with a target (when = "before" or "after" it), once the machine is quiet,
// and returns its req/s; 0 when no bracket is wanted. On a shared VM the
// machine's speed drifted by up to 18 % over one make bench, so a ratio
// against the mean of the run's first and last (a), minutes away, moved
// with it; a baseline taken beside the scenario cancels that drift.
func (b *bench) bracket(ctx context.Context, sc scenario, when string) (float64, error) {
	wanted := b.o.bracket && sc.Target > 0 && sc.Key != "a"
	if when == "after" && !wanted {
		return 0, nil
	}
	// Before: the scenario itself starts on a quiet machine, bracketed or not.
	if err := b.waitQuiet(ctx, sc); err != nil {
		return 0, err
	}
	if !wanted {
		return 0, nil
	}
	d := max(b.o.duration/2, time.Second).Round(time.Second)
	r, err := b.wrk.run(ctx, b.scenarios()["a"], b.o.connections, b.o.threads, d)
	if err != nil {
		return 0, fmt.Errorf("(%s): the baseline %s it: %w", sc.Key, when, err)
	}
	b.logf("    (a) %s (%s): %.0f req/s", when, d, r.RPS)
	return r.RPS, nil
}
