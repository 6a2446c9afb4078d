package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"seckill/domain/sale"
)

// luaScript is the wrk script every scenario runs.
//
//go:embed bench.lua
var luaScript []byte

// scenario is one wrk run's target and what it must answer.
type scenario struct {
	Key    string // "a" … "e"
	Title  string
	Method string
	Path   string
	// Expect lists the status keys this scenario may answer: "200", or
	// "409:sold_out" (status and JSON error code) for non-2xx.
	Expect []string
	// Target is the minimum ratio to the baseline; 0 for the baseline.
	Target float64
	// Limit, when > 0, makes each wrk thread cycle over the first Limit
	// tokens of its slice only: (i) polls as users who joined the line.
	Limit int
}

// wrkErrors are wrk's own socket-level error counters.
type wrkErrors struct {
	Connect, Read, Write, Timeout int64
}

func (e wrkErrors) total() int64 { return e.Connect + e.Read + e.Write + e.Timeout }

// result is one wrk run, parsed.
type result struct {
	Scenario scenario
	Conns    int
	Threads  int
	Requests int64
	Duration time.Duration
	RPS      float64
	// Latencies in microseconds, as wrk reports them.
	P50, P75, P90, P99, P999, Max, Mean float64
	Statuses                            map[string]int64
	Errors                              wrkErrors
	// Wrapped counts how often a thread ran out of tokens and started its
	// slice again (users repeated).
	Wrapped int64
	Tokens  int64
	CPU     cpuUse
	// Beside is the mean req/s of the (a) runs right before and right after
	// this one (-bracket), the baseline its target is judged against; 0 if
	// none ran.
	Beside  float64
	Command string
	Output  string
}

// unexpected returns the status keys the scenario must not answer, with counts.
func (r result) unexpected() map[string]int64 {
	ok := map[string]bool{}
	for _, k := range r.Scenario.Expect {
		ok[k] = true
	}
	out := map[string]int64{}
	for k, v := range r.Statuses {
		if !ok[k] {
			out[k] = v
		}
	}
	return out
}

// statusLine renders the status breakdown, most frequent first.
func statusLine(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// tokenFile is the fixed-width file of user tokens the script reads.
type tokenFile struct {
	Path   string
	RecLen int // bytes per line, newline included
	Count  int
	// User names the user of token i (its line number).
	User func(i int) sale.UserID
}

// wrkRunner runs wrk against one base URL.
type wrkRunner struct {
	script  string
	url     string
	tokens  tokenFile
	timeout time.Duration
	verbose bool
	pids    backendPIDs
}

func newWrkRunner(dir, url string, tokens tokenFile, timeout time.Duration, verbose bool, pids backendPIDs) (*wrkRunner, error) {
	script := filepath.Join(dir, "bench.lua")
	if err := os.WriteFile(script, luaScript, 0o644); err != nil {
		return nil, err
	}
	return &wrkRunner{script: script, url: url, tokens: tokens, timeout: timeout, verbose: verbose, pids: pids}, nil
}

// run runs sc with conns connections over threads threads for d.
func (w *wrkRunner) run(ctx context.Context, sc scenario, conns, threads int, d time.Duration) (result, error) {
	threads = max(1, min(threads, conns))
	secs := max(1, int((d+time.Second-1)/time.Second))
	per := w.tokens.Count / threads
	args := []string{
		"--latency",
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", secs),
		"--timeout", fmt.Sprintf("%ds", max(1, int(w.timeout/time.Second))),
		"-s", w.script, w.url + sc.Path,
		"--", sc.Method, sc.Path, w.tokens.Path, strconv.Itoa(w.tokens.RecLen), strconv.Itoa(per), strconv.Itoa(sc.Limit),
	}
	cmd := exec.CommandContext(ctx, "wrk", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	rssOK := resetPeakRSS()
	before := takeCPU(w.pids)
	err := cmd.Run()
	after := takeCPU(w.pids)
	res := result{Scenario: sc, Conns: conns, Threads: threads, Command: "wrk " + strings.Join(args, " "), Output: out.String()}
	if cmd.ProcessState != nil {
		res.CPU = cpuBetween(before, after, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		if !rssOK {
			res.CPU.PeakRSSMB = 0
		}
	}
	if w.verbose {
		fmt.Fprintf(os.Stderr, "$ %s\n%s%s", res.Command, out.String(), errb.String())
	}
	if err != nil {
		return res, fmt.Errorf("wrk: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	if err := parseWrk(out.String(), &res); err != nil {
		return res, fmt.Errorf("wrk output: %w\n%s%s", err, out.String(), errb.String())
	}
	return res, nil
}

// parseWrk reads the "BENCH ..." lines the script's done() prints.
func parseWrk(out string, r *result) error {
	r.Statuses = map[string]int64{}
	var sawSummary, sawLatency bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "BENCH ")
		if !ok {
			continue
		}
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "summary":
			kv, err := keyValues(rest)
			if err != nil {
				return err
			}
			r.Requests = int64(kv["requests"])
			r.Duration = time.Duration(kv["duration_us"]) * time.Microsecond
			r.Errors = wrkErrors{Connect: int64(kv["connect"]), Read: int64(kv["read"]), Write: int64(kv["write"]), Timeout: int64(kv["timeout"])}
			sawSummary = true
		case "latency":
			kv, err := keyValues(rest)
			if err != nil {
				return err
			}
			r.P50, r.P75, r.P90, r.P99, r.P999, r.Max, r.Mean = kv["p50"], kv["p75"], kv["p90"], kv["p99"], kv["p99.9"], kv["max"], kv["mean"]
			sawLatency = true
		case "status":
			k, v, ok := strings.Cut(rest, " ")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil {
				return fmt.Errorf("bad status line %q", line)
			}
			r.Statuses[k] += n
		case "thread":
			kv, err := keyValues(rest)
			if err != nil {
				return err
			}
			r.Wrapped += int64(kv["wrapped"])
			r.Tokens += int64(kv["tokens"])
		}
	}
	if !sawSummary || !sawLatency {
		return fmt.Errorf("no BENCH summary/latency lines (did the script's done() run?)")
	}
	if r.Duration <= 0 {
		return fmt.Errorf("duration %v", r.Duration)
	}
	r.RPS = float64(r.Requests) / r.Duration.Seconds()
	return nil
}

func keyValues(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("bad field %q", f)
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("bad field %q: %w", f, err)
		}
		out[k] = x
	}
	return out, nil
}
