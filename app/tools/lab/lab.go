// Package lab runs the workshop labs. Each lab switches off one protection
// by swapping in the naive component a newcomer would write (package
// app/tools/lab/naive, wrong on purpose), runs the same scripted workload once
// with it and once with the production component, and prints the figures
// side by side, ending with one line a script can read:
//
//	lab NAME: METRIC unprotected=X protected=Y
//
// A lab never toggles a flag inside the production path: the unprotected
// run is the same system with a different component plugged into the same
// port. Production wiring (serve, worker) cannot reach the naive package;
// app/tests/archtest enforces that only this package imports it.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Mode says which variant of a lab's component a run uses.
type Mode string

// The two runs of every lab, in the order they run.
const (
	Unprotected Mode = "unprotected" // the naive component from app/tools/lab/naive
	Protected   Mode = "protected"   // the production component
)

// Direction says which way the headline metric improves.
type Direction int

// A lab's metric either shrinks or grows when the protection is on.
const (
	LowerIsBetter  Direction = iota // e.g. units oversold, duplicate orders
	HigherIsBetter                  // e.g. orders settled per second
)

// Figure is one row of a run's table. Both runs of a lab report the same
// rows, in the same order, so they print side by side.
type Figure struct {
	Name  string
	Value string
}

// Result is what one run of a lab measured.
type Result struct {
	// Metric is the lab's headline figure (Lab.Metric names it).
	Metric float64
	// Figures are the supporting rows printed in the table.
	Figures []Figure
}

// Lab is one workshop lab.
type Lab struct {
	// Number orders the labs as the workshop runs them; it is the NN of
	// the guide docs/labs/NN-NAME.md.
	Number int
	// Name is the command-line name: lowercase words joined by '-'.
	Name string
	// Summary is one line: the protection switched off and what it shows.
	Summary string
	// Metric names the headline figure, e.g. "oversold_units".
	Metric string
	// Better says which way the metric improves with the protection on.
	Better Direction
	// Run runs the lab's scripted workload once in the given mode. It must
	// stop within its budget (60 s for both runs on a 2-core machine with
	// embedded backends) and honour ctx.
	Run func(ctx context.Context, env *Env, mode Mode) (Result, error)
}

// Guide is the path of the lab's guide, relative to the repository root.
func (l Lab) Guide() string { return fmt.Sprintf("docs/labs/%02d-%s.md", l.Number, l.Name) }

var (
	mu       sync.Mutex
	registry = map[string]Lab{}
)

// Register adds a lab. Labs register themselves from init functions in this
// package; a bad or duplicate lab is a programming error and panics.
func Register(l Lab) {
	mu.Lock()
	defer mu.Unlock()
	if l.Name == "" || l.Name != strings.ToLower(l.Name) || strings.ContainsAny(l.Name, " _") {
		panic("lab: bad name " + strconv.Quote(l.Name))
	}
	if l.Run == nil || l.Summary == "" || l.Metric == "" || l.Number <= 0 {
		panic("lab: " + l.Name + " lacks Run, Summary, Metric or Number")
	}
	if _, dup := registry[l.Name]; dup {
		panic("lab: " + l.Name + " registered twice")
	}
	for _, o := range registry {
		if o.Number == l.Number {
			panic(fmt.Sprintf("lab: %s and %s share number %d", o.Name, l.Name, l.Number))
		}
	}
	registry[l.Name] = l
}

// All returns every lab in workshop order.
func All() []Lab {
	mu.Lock()
	defer mu.Unlock()
	out := make([]Lab, 0, len(registry))
	for _, l := range registry {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

// Find returns the lab with this name.
func Find(name string) (Lab, bool) {
	mu.Lock()
	defer mu.Unlock()
	l, ok := registry[name]
	return l, ok
}

// Report is both runs of one lab.
type Report struct {
	Lab         Lab
	Unprotected Result
	Protected   Result
	Elapsed     time.Duration
}

// Holds reports whether the protected run beat the unprotected one in the
// direction the lab predicts. Equal figures do not hold: a lab that shows
// no difference teaches nothing.
func (r Report) Holds() bool {
	u, p := r.Unprotected.Metric, r.Protected.Metric
	if math.IsNaN(u) || math.IsNaN(p) {
		return false
	}
	if r.Lab.Better == HigherIsBetter {
		return p > u
	}
	return p < u
}

// Line is the report's last line, the one scripts read.
func (r Report) Line() string {
	return fmt.Sprintf("lab %s: %s unprotected=%s protected=%s",
		r.Lab.Name, r.Lab.Metric, FormatFloat(r.Unprotected.Metric), FormatFloat(r.Protected.Metric))
}

// FormatFloat prints a figure without noise: integers as integers, others
// with up to three significant decimals.
func FormatFloat(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// ErrNotHeld is returned by RunOne when the protected run did not beat the
// unprotected one.
var ErrNotHeld = errors.New("the protected run did not beat the unprotected one")

// RunOne runs a lab twice (unprotected, then protected) on env, printing
// progress, the side-by-side table and the last line to out. It returns
// ErrNotHeld (wrapped) when the figures point the wrong way.
func RunOne(ctx context.Context, env *Env, l Lab, out io.Writer) (Report, error) {
	start := time.Now()
	rep := Report{Lab: l}
	fmt.Fprintf(out, "== lab %s: %s\n", l.Name, l.Summary)
	fmt.Fprintf(out, "   guide: %s\n", l.Guide())
	for _, mode := range []Mode{Unprotected, Protected} {
		fmt.Fprintf(out, "-- %s run\n", mode)
		t := time.Now()
		res, err := l.Run(ctx, env, mode)
		if err != nil {
			env.Settle(ctx)
			return rep, fmt.Errorf("lab %s, %s run: %w", l.Name, mode, err)
		}
		fmt.Fprintf(out, "   done in %s: %s = %s\n", time.Since(t).Round(100*time.Millisecond), l.Metric, FormatFloat(res.Metric))
		if env.Linger > 0 {
			// The room reads this run's figures while its charts stay up.
			for _, f := range res.Figures {
				fmt.Fprintf(out, "   %s: %s\n", f.Name, f.Value)
			}
		}
		env.Settle(ctx)
		if mode == Unprotected {
			rep.Unprotected = res
		} else {
			rep.Protected = res
		}
	}
	rep.Elapsed = time.Since(start)
	printTable(out, rep)
	fmt.Fprintln(out, rep.Line())
	if !rep.Holds() {
		return rep, fmt.Errorf("lab %s: %w (%s)", l.Name, ErrNotHeld, rep.Line())
	}
	return rep, nil
}

// printTable prints the figures of both runs side by side, the headline
// metric first.
func printTable(out io.Writer, r Report) {
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t%s\t\n", Unprotected, Protected)
	fmt.Fprintf(tw, "%s\t%s\t%s\t\n", r.Lab.Metric, FormatFloat(r.Unprotected.Metric), FormatFloat(r.Protected.Metric))
	rows := map[string]string{}
	for _, f := range r.Protected.Figures {
		rows[f.Name] = f.Value
	}
	seen := map[string]bool{}
	for _, f := range r.Unprotected.Figures {
		seen[f.Name] = true
		p, ok := rows[f.Name]
		if !ok {
			p = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", f.Name, f.Value, p)
	}
	for _, f := range r.Protected.Figures {
		if !seen[f.Name] {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\n", f.Name, "-", f.Value)
		}
	}
	_ = tw.Flush()
}
