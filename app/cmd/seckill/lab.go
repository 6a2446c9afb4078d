package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"seckill/app/config"
	"seckill/app/tools/lab"
)

// errLabsFailed is the error of a lab run in which some lab's figures did
// not point the way its guide predicts; main turns it into exit status 1.
var errLabsFailed = errors.New("some labs did not show the difference their guide predicts")

// labHTTPAddr is where the labs listen unless --http-addr says otherwise:
// a port nothing else in the README uses (make run holds 8080, compose's
// Prometheus 9090), so a workshop can keep its sale page open beside them.
const labHTTPAddr = "127.0.0.1:8070"

// errLabsBroken is the error of a lab run in which some lab could not run
// at all (its system did not start, its workload failed): it measured
// nothing, so it says so rather than that it showed no difference.
var errLabsBroken = errors.New("some labs could not run")

// labCommand runs the workshop labs: `seckill lab list` and
// `seckill lab run NAME|all`.
func labCommand(stdout, stderr io.Writer) *ffcli.Command {
	return &ffcli.Command{
		Name: "lab", ShortUsage: "seckill lab <list|run> ...",
		ShortHelp: "workshop labs: each switches one protection off and measures the difference",
		LongHelp: "Each lab runs the same workload twice: once with the naive component a newcomer would\n" +
			"write (package app/tools/lab/naive, wrong on purpose), once with the production one, and\n" +
			"prints both side by side. docs/WORKSHOP.md is the instructor's agenda; docs/labs/ has a\n" +
			"guide per lab.",
		FlagSet:     flag.NewFlagSet("seckill lab", flag.ContinueOnError),
		Subcommands: []*ffcli.Command{labListCommand(stdout, stderr), labRunCommand(stdout, stderr)},
		Exec: func(context.Context, []string) error {
			return usageErrorf("lab needs a subcommand: list or run; see seckill lab --help")
		},
	}
}

// labListCommand is `seckill lab list`: one lab per line.
func labListCommand(stdout, stderr io.Writer) *ffcli.Command {
	list := &ffcli.Command{
		Name: "list", ShortUsage: "seckill lab list",
		ShortHelp: "list the labs, one per line: name, then what it shows",
		FlagSet:   flag.NewFlagSet("seckill lab list", flag.ContinueOnError),
		Exec: func(_ context.Context, rest []string) error {
			if len(rest) > 0 {
				return usageErrorf("unexpected arguments %q; see seckill lab list --help", rest)
			}
			tw := tabwriter.NewWriter(stdout, 0, 2, 2, ' ', 0)
			for _, l := range lab.All() {
				fmt.Fprintf(tw, "%s\t%s\n", l.Name, l.Summary)
			}
			return tw.Flush()
		},
	}
	list.FlagSet.SetOutput(stderr)
	return list
}

// labRunCommand is `seckill lab run NAME|all`.
func labRunCommand(stdout, stderr io.Writer) *ffcli.Command {
	var (
		cfg     config.Config
		scale   float64
		verbose bool
		linger  time.Duration
	)
	fs := flag.NewFlagSet("seckill lab run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Where the backends are: empty ones are embedded, as for seckill all.
	cfg.RegisterOnly(fs, "mysql-dsn", "redis-addr", "redis-password", "redis-db", "kafka-brokers", "http-addr")
	fs.Float64Var(&scale, "scale", 1, "multiply each lab's workload (1 is the workshop's size; labs keep a floor)")
	fs.BoolVar(&verbose, "verbose", false, "print the lab systems' own logs (warnings and errors) to stderr")
	fs.DurationVar(&linger, "linger", 0, "keep each run's system and dashboard up this long after its figures (make lab uses 30s)")
	return &ffcli.Command{
		Name: "run", ShortUsage: "seckill lab run [flags] NAME|all",
		ShortHelp: "run one lab (or all): the workload without the protection, then with it, side by side",
		LongHelp: "Starts the system (embedded backends unless --mysql-dsn, --redis-addr or --kafka-brokers\n" +
			"say otherwise; each run gets its own Redis prefix and database), runs the lab's scripted\n" +
			"workload with the naive component and then with the production one, and prints a table\n" +
			"and a last line a script can read:\n\n" +
			"  lab NAME: METRIC unprotected=X protected=Y\n\n" +
			"It prints the dashboard's URL first: open it and watch; with --linger each run stays up that\n" +
			"long after its figures, and the page reconnects when the next run starts. Without\n" +
			"--http-addr the labs listen on " + labHTTPAddr + ", or on a free port when that is taken (by\n" +
			"make run, say). The exit status is 1 if a lab's figures do not point the way its guide\n" +
			"(docs/labs/) predicts, or if a lab could not run; the latter prints its cause.\n\n" +
			"Every flag can also be set by an environment variable: --redis-addr is SECKILL_REDIS_ADDR.",
		FlagSet: fs,
		Options: []ff.Option{ff.WithEnvVarPrefix(config.EnvPrefix)},
		Exec: func(ctx context.Context, rest []string) error {
			rest, err := flagsAfterName(fs, rest)
			if err != nil {
				return err
			}
			labs, err := pickLabs(rest)
			if err != nil {
				return err
			}
			if scale <= 0 {
				return usageErrorf("--scale must be above 0, got %v", scale)
			}
			base := config.Default()
			base.MySQLDSN, base.RedisAddr, base.RedisPassword, base.RedisDB = cfg.MySQLDSN, cfg.RedisAddr, cfg.RedisPassword, cfg.RedisDB
			base.KafkaBrokers, base.HTTPAddr = cfg.KafkaBrokers, cfg.HTTPAddr
			if linger < 0 {
				return usageErrorf("--linger must not be negative, got %v", linger)
			}
			freePort := !flagSet(fs, "http-addr")
			if freePort {
				base.HTTPAddr = labHTTPAddr
			}
			env := &lab.Env{Base: base, Out: stdout, Scale: scale, Linger: linger, FreePort: freePort}
			if verbose {
				env.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			return runLabs(ctx, env, labs, stdout)
		},
	}
}

// pickLabs reads lab run's one argument: a lab's name, or all.
func pickLabs(rest []string) ([]lab.Lab, error) {
	if len(rest) != 1 {
		return nil, usageErrorf("lab run takes one lab name or all; run 'seckill lab list'")
	}
	if rest[0] == "all" {
		return lab.All(), nil
	}
	l, ok := lab.Find(rest[0])
	if !ok {
		return nil, usageErrorf("no lab %q; run 'seckill lab list'", rest[0])
	}
	return []lab.Lab{l}, nil
}

// flagsAfterName parses the flags that follow lab run's lab name, as in
// `seckill lab run oversell --linger 15s` (Go's flag package stops at the
// first argument that is not a flag), and returns the arguments left.
func flagsAfterName(fs *flag.FlagSet, rest []string) ([]string, error) {
	if len(rest) < 2 {
		return rest, nil
	}
	if err := fs.Parse(rest[1:]); err != nil {
		return nil, usageErrorf("%v", err)
	}
	return append([]string{rest[0]}, fs.Args()...), nil
}

// flagSet reports whether the flag name was given, on the command line or
// by its environment variable.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// runLabs runs labs one after another and sums up; a lab that errors or
// does not hold makes the whole run fail, after the others have run. It
// prints the dashboard's address first, before any load, so a room can
// open it; a lab that could not run is told apart from one whose figures
// did not point the predicted way.
func runLabs(ctx context.Context, env *lab.Env, labs []lab.Lab, out io.Writer) error {
	start := time.Now()
	// Listening before printing: the URL answers the moment it is read,
	// with the page, which then picks up each run as it starts.
	addr, err := env.Addr()
	if err != nil {
		fmt.Fprintf(out, "FAIL the labs cannot start: %v\n", err)
		return fmt.Errorf("%w: %v", errLabsBroken, err)
	}
	defer env.Close()
	fmt.Fprintf(out, "dashboard: http://%s/dashboard (open it now; it follows each run)\n\n", addr)
	var notHeld, broken, lines []string
	for i, l := range labs {
		if i > 0 {
			fmt.Fprintln(out)
		}
		rep, err := lab.RunOne(ctx, env, l, out)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case errors.Is(err, lab.ErrNotHeld):
			fmt.Fprintf(out, "FAIL %v\n", err)
			notHeld = append(notHeld, l.Name)
			continue
		case err != nil:
			fmt.Fprintf(out, "FAIL lab %s could not run: %v\n", l.Name, err)
			broken = append(broken, fmt.Sprintf("%s (%v)", l.Name, err))
			continue
		}
		lines = append(lines, rep.Line())
	}
	failed := len(notHeld) + len(broken)
	if len(labs) > 1 {
		fmt.Fprintf(out, "\n== %d labs in %s: %d held, %d failed\n", len(labs), time.Since(start).Round(time.Second), len(labs)-failed, failed)
		for _, l := range lines {
			fmt.Fprintln(out, l)
		}
	}
	var errs []error
	if len(broken) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s", errLabsBroken, strings.Join(broken, "; ")))
	}
	if len(notHeld) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s", errLabsFailed, strings.Join(notHeld, ", ")))
	}
	return errors.Join(errs...)
}
