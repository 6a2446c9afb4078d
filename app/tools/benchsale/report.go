package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"seckill/app/config"
)

// p99Target is the p99 latency (b) must stay under at ~80% of its max rate.
const p99Target = 20 * time.Millisecond

func ms(us float64) string { return fmt.Sprintf("%.2f", us/1000) }

// baseline is the mean rate of the two (a) runs, or the one there is.
func (b *bench) baseline() (float64, bool) {
	a, ok := b.results["a"]
	if !ok {
		return 0, false
	}
	if b.a2 != nil {
		return (a.RPS + b.a2.RPS) / 2, true
	}
	return a.RPS, true
}

// cost is the CPU seconds the benchmark's own processes (seckill, wrk,
// Redis, MariaDB, the Kafka broker) spent per request in r, or 0 if unknown.
func cost(r result) float64 {
	if !r.CPU.Known || r.RPS <= 0 {
		return 0
	}
	return (r.CPU.Server + r.CPU.Wrk + r.CPU.Redis + r.CPU.DB + r.CPU.Kafka) / r.RPS
}

// baselineCost is the mean cost of the (a) runs.
func (b *bench) baselineCost() float64 {
	a, ok := b.results["a"]
	if !ok {
		return 0
	}
	if b.a2 != nil && cost(*b.a2) > 0 && cost(a) > 0 {
		return (cost(a) + cost(*b.a2)) / 2
	}
	return cost(a)
}

func (b *bench) report() {
	w := b.out
	b.reportHeader(w)
	b.reportRatios(w)
	b.reportQueue(w)
	b.reportProbes(w)
	b.reportPipeline(w)
	b.reportSales(w)
	b.reportCPU(w)
	b.reportVerdict(w)
}

// reportHeader says what ran where: the machine, the backends, the load.
func (b *bench) reportHeader(w io.Writer) {
	o := b.o
	fmt.Fprintln(w)
	fmt.Fprintln(w, "=== seckill benchmark: throughput as ratios against GET /healthz from the same run ===")
	if o.embedded {
		fmt.Fprintln(w, "!!! EMBEDDED BACKENDS (miniredis + SQLite in-process): these numbers are NOT comparable")
		fmt.Fprintln(w, "!!! with runs against real Redis/MariaDB, nor with the targets.")
	}
	m := b.machine
	fmt.Fprintf(w, "machine:  %d CPUs, %s, Linux %s, %s, GOGC=%s\n", m.CPUs, m.CPUModel, m.Kernel, m.Go, gogc())
	fmt.Fprintf(w, "backends: %s; %s; Kafka: the kfake broker (franz-go) in a child process of its own, reached over TCP by kafka-go\n", b.sys.RedisVersion, dbName(b.sys.DBVersion))
	fmt.Fprintf(w, "load:     %s, on the same CPUs as everything else: %d threads, %d connections, %s per scenario,\n", m.Wrk, o.threads, o.connections, o.duration)
	fmt.Fprintf(w, "          keep-alive, --latency, a Lua script that sends one user token per request and counts statuses\n")
	fmt.Fprintf(w, "          load average at start %s, at end %s (1/5/15 min)\n", m.LoadStart, loadAvg())
	if o.quietLimit > 0 {
		quietNote := "each scenario started once the CPUs were under 15 % busy"
		if len(b.busy) > 0 {
			quietNote += "; not quiet within " + o.quietLimit.String() + ", measured anyway: " + strings.Join(b.busy, ", ")
		}
		fmt.Fprintf(w, "          %s\n", quietNote)
	}
	fmt.Fprintf(w, "command:  %s\n", b.cmdline)
	fmt.Fprintln(w)

}

// reportRatios is the table of throughput ratios against (a), with each
// target's verdict; a miss marks the run.
func (b *bench) reportRatios(w io.Writer) {
	base, haveBase := b.baseline()
	baseCost := b.baselineCost()
	norm := func(r result) string {
		if c := cost(r); c > 0 && baseCost > 0 {
			return fmt.Sprintf("%.2f", baseCost/c)
		}
		return "-"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\treq/s\tp50 ms\tp99 ms\t(a) beside\tratio\ttarget\t\tvs mean (a)\tcpu-norm\tstatuses\t")
	row := func(label string, r result, ratio string, target, verdict string) {
		beside, vsMean := "", ""
		if r.Beside > 0 {
			beside = fmt.Sprintf("%.0f", r.Beside)
			if haveBase {
				vsMean = fmt.Sprintf("%.2f", r.RPS/base)
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", label, r.RPS, ms(r.P50), ms(r.P99), beside, ratio, target, verdict, vsMean, norm(r), statusLine(r.Statuses))
	}
	if a, ok := b.results["a"]; ok {
		if b.a2 != nil {
			fmt.Fprintf(tw, "(a) GET /healthz, baseline = mean\t%.0f\t\t\t\t1.00\t\t\t\t1.00\t\t\n", base)
			row("(a) first run", a, fmt.Sprintf("%.2f", a.RPS/base), "", "")
			row("(a) last run", *b.a2, fmt.Sprintf("%.2f", b.a2.RPS/base), "", "")
		} else {
			row("(a) GET /healthz, baseline", a, "1.00", "", "")
		}
	}
	for _, k := range []string{"b", "c", "d", "e", "g", "h", "i"} {
		r, ok := b.results[k]
		if !ok {
			continue
		}
		ratio, target, verdict := "-", "none", ""
		// The baseline beside the run when there is one (-bracket), else
		// the run's mean (a).
		against, have := base, haveBase
		if r.Beside > 0 {
			against, have = r.Beside, true
		}
		if have {
			ratio = fmt.Sprintf("%.2f", r.RPS/against)
		}
		if r.Scenario.Target > 0 {
			target = fmt.Sprintf("≥%.2f", r.Scenario.Target)
			if have {
				if r.RPS/against >= r.Scenario.Target {
					verdict = "ok"
				} else {
					verdict = "MISS"
					b.missed = true
				}
			}
		}
		row("("+k+") "+r.Scenario.Title, r, ratio, target, verdict)
	}
	tw.Flush()
	if haveBase && b.a2 != nil {
		a := b.results["a"]
		fmt.Fprintf(w, "baseline drift: the last (a) ran at %.0f%% of the first: other load on the machine, or state the scenarios left\n", 100*b.a2.RPS/a.RPS)
		fmt.Fprintf(w, "in seckill (heap %.0f MB then, %.0f MB now), changed by that much; the CPU table below tells which\n", a.CPU.HeapMB, b.a2.CPU.HeapMB)
	}
	if b.o.bracket {
		fmt.Fprintln(w, "ratio: against (a) beside, GET /healthz for half the duration right before and right after the scenario (-bracket),")
		fmt.Fprintln(w, "so the machine's drift during the run cancels; vs mean (a): against the mean of the run's first and last (a).")
	}
	if baseCost > 0 {
		fmt.Fprintln(w, "cpu-norm: the ratio of CPU per request (seckill + wrk + redis + mariadb + kafka) of (a) to the scenario's, an estimate of the")
		fmt.Fprintln(w, "ratio on a machine with no other load; it is NOT the measured ratio the targets apply to.")
	}
}

// reportProbes is the p99 of (b) at about 80 % of its best rate.
func (b *bench) reportProbes(w io.Writer) {
	if len(b.probes) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "p99 of (b) at ~80%% of its max rate (max = %.0f req/s, the best (b) run, at %d connections; wrk is closed-loop, so the rate is set by lowering connections):\n", b.probeMax, b.maxConns)
	for i, p := range b.probes {
		mark := ""
		if i == b.best {
			mark = "  <- used"
		}
		fmt.Fprintf(w, "  %3d connections: %7.0f req/s = %3.0f%% of max, p50 %s ms, p99 %s ms%s\n", p.Conns, p.RPS, 100*p.RPS/b.probeMax, ms(p.P50), ms(p.P99), mark)
	}
	p := b.probes[b.best]
	frac := p.RPS / b.probeMax
	verdict := "ok"
	if time.Duration(p.P99*float64(time.Microsecond)) > p99Target {
		verdict = "MISS"
		b.missed = true
	}
	window := ""
	if frac < 0.75 || frac > 0.85 {
		window = " (no probe landed in 75–85%; this is the closest)"
	}
	fmt.Fprintf(w, "p99@80%%: %s ms at %.0f req/s (%.0f%% of max, %d connections)%s; target ≤ %s: %s\n",
		ms(p.P99), p.RPS, 100*frac, p.Conns, window, p99Target, verdict)
}

// reportSales is what each sale's books said after the worker settled.
func (b *bench) reportSales(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "sales after the worker settled (stats from GET /api/v1/admin/items/{id}/stats):")
	for _, c := range b.checks {
		verdict := "ok: consistent, nothing pending, confirmed == accepted, nothing oversold"
		if c.Problem != "" {
			verdict = "FAIL: " + c.Problem
		}
		fmt.Fprintf(w, "  %-9s item %-3d run: accepted %d, confirmed %d, wrk read %d 202s, %d unavailable; item: %s; settled %s after the run — %s\n",
			c.Label, c.Item, c.Accepted, c.Confirmed, c.Seen, c.HungUp, c.Stats, c.Settle.Round(10*time.Millisecond), verdict)
	}
}

// reportCPU is where the CPU went in each run.
func (b *bench) reportCPU(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "where the CPU went during each run (average cores; \"other processes\" is load from outside this benchmark):")
	cpuRow := func(label string, r result) {
		perReq := ""
		if r.CPU.Known && r.RPS > 0 {
			perReq = fmt.Sprintf("; per request: seckill %.0f µs, redis %.0f µs, mariadb %.0f µs, kafka %.0f µs, wrk %.0f µs; seckill heap %.0f MB, peak RSS %s, %d GCs",
				1e6*r.CPU.Server/r.RPS, 1e6*r.CPU.Redis/r.RPS, 1e6*r.CPU.DB/r.RPS, 1e6*r.CPU.Kafka/r.RPS, 1e6*r.CPU.Wrk/r.RPS, r.CPU.HeapMB, rssText(r.CPU.PeakRSSMB), r.CPU.GCs)
		}
		fmt.Fprintf(w, "  %-16s %s%s\n", label, r.CPU, perReq)
	}
	if a, ok := b.results["a"]; ok {
		cpuRow("(a) first", a)
	}
	for _, k := range []string{"b", "c", "d", "e", "g", "h", "i"} {
		if r, ok := b.results[k]; ok {
			cpuRow("("+k+")", r)
		}
	}
	if b.a2 != nil {
		cpuRow("(a) last", *b.a2)
	}
	for _, p := range b.probes {
		cpuRow(fmt.Sprintf("(b) %d conns", p.Conns), p)
	}
}

// reportVerdict is the last line: failed, missed or met.
func (b *bench) reportVerdict(w io.Writer) {
	fmt.Fprintln(w)
	switch {
	case b.failed:
		fmt.Fprintln(w, "RESULT: FAILED (see the errors above: unexpected statuses, socket errors or a bad sale)")
	case b.missed:
		fmt.Fprintln(w, "RESULT: no errors; some targets missed (MISS above)")
	default:
		fmt.Fprintln(w, "RESULT: no errors; every target met")
	}
	if b.o.embedded {
		fmt.Fprintln(w, "(EMBEDDED backends: not comparable)")
	}
}

// gogc is the GC percent in force.
func gogc() string {
	if v := os.Getenv("GOGC"); v != "" {
		return v + " (from $GOGC)"
	}
	return fmt.Sprintf("%d (as app/cmd/seckill ships)", config.DefaultGCPercent)
}

func dbName(v string) string {
	if strings.Contains(strings.ToLower(v), "mariadb") {
		return "MariaDB " + strings.SplitN(v, "-MariaDB", 2)[0]
	}
	if strings.HasPrefix(v, "SQLite") {
		return v
	}
	return "MySQL " + v
}

func rssText(mb float64) string {
	if mb <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MB", mb)
}

// reportPipeline prints what happens after the 202: how long an order of
// (b) took to be confirmed, the process's memory during (b), and (f).
func (b *bench) reportPipeline(w io.Writer) {
	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		b.missed = true
		return "MISS"
	}
	rb, haveB := b.results["b"]
	if !haveB && b.drain == nil {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "after the 202:")
	if l := b.latB; l != nil {
		if l.Err != nil {
			fmt.Fprintf(w, "  (b) 202 → confirmed: unknown (%v)\n", l.Err)
		} else {
			fmt.Fprintf(w, "  (b) 202 → confirmed, under the (b) load, over its %d orders: p50 %s ms, p99 %s ms, max %s ms; target p99 ≤ %s: %s\n",
				l.N, durMS(l.P50), durMS(l.P99), durMS(l.Max), confirmTarget, verdict(l.P99 <= confirmTarget))
		}
	}
	if haveB {
		if mb := rb.CPU.PeakRSSMB; mb > 0 {
			fmt.Fprintf(w, "  (b) peak RSS of the seckill process (API + worker instances, and benchsale; the broker is a process of its own) during the run: %.0f MB, GOMEMLIMIT %s; target ≤ %d MB: %s\n",
				mb, memLimit(), rssTarget, verdict(mb <= rssTarget))
		} else {
			fmt.Fprintln(w, "  (b) peak RSS: unknown (/proc/self/clear_refs or VmHWM not available)")
		}
	}
	if d := b.drain; d != nil {
		fmt.Fprintf(w, "(f) worker drain: %.0f orders/s: %d queued orders confirmed into MariaDB in %s after the first confirmation; %s including the worker's start and group join (%.0f orders/s); target ≥ %d orders/s: %s\n",
			d.Rate(), d.Orders, d.Drain.Round(time.Millisecond), d.Total.Round(time.Millisecond), float64(d.Orders)/d.Total.Seconds(), drainTarget, verdict(d.Rate() >= drainTarget))
		per := ""
		if d.CPU.Known && d.Total > 0 {
			rate := float64(d.Orders) / d.Total.Seconds()
			per = fmt.Sprintf("; per order: seckill %.0f µs, redis %.0f µs, mariadb %.0f µs, kafka %.0f µs", 1e6*d.CPU.Server/rate, 1e6*d.CPU.Redis/rate, 1e6*d.CPU.DB/rate, 1e6*d.CPU.Kafka/rate)
		}
		fmt.Fprintf(w, "    queue filled in %s through the purchase use case (item %d); during the drain %s%s\n", d.Fill.Round(time.Millisecond), d.Item, d.CPU, per)
		if d.Problem != "" {
			fmt.Fprintf(w, "    FAIL: %s\n", d.Problem)
		}
	}
}

func durMS(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// memLimit is the soft memory limit in force.
func memLimit() string {
	l := debug.SetMemoryLimit(-1)
	if l == math.MaxInt64 {
		return "off"
	}
	src := ""
	if os.Getenv("GOMEMLIMIT") != "" {
		src = " (from $GOMEMLIMIT)"
	}
	return fmt.Sprintf("%d MiB%s", l>>20, src)
}
