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
	"seckill/app/lab"
)

// errLabsFailed is the error of a lab run in which some lab's figures did
// not point the way its guide predicts; main turns it into exit status 1.
var errLabsFailed = errors.New("some labs did not show the difference their guide predicts")

// labCommand runs the workshop labs: `seckill lab list` and
// `seckill lab run NAME|all`.
func labCommand(stdout, stderr io.Writer) *ffcli.Command {
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

	var (
		cfg     config.Config
		scale   float64
		verbose bool
	)
	fs := flag.NewFlagSet("seckill lab run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Where the backends are: empty ones are embedded, as for seckill all.
	cfg.RegisterOnly(fs, "mysql-dsn", "redis-addr", "redis-password", "redis-db", "kafka-brokers", "http-addr")
	fs.Float64Var(&scale, "scale", 1, "multiply each lab's workload (1 is the workshop's size; labs keep a floor)")
	fs.BoolVar(&verbose, "verbose", false, "print the lab systems' own logs (warnings and errors) to stderr")
	run := &ffcli.Command{
		Name: "run", ShortUsage: "seckill lab run [flags] NAME|all",
		ShortHelp: "run one lab (or all): the workload without the protection, then with it, side by side",
		LongHelp: "Starts the system (embedded backends unless --mysql-dsn, --redis-addr or --kafka-brokers\n" +
			"say otherwise; each run gets its own Redis prefix and database), runs the lab's scripted\n" +
			"workload with the naive component and then with the production one, and prints a table\n" +
			"and a last line a script can read:\n\n" +
			"  lab NAME: METRIC unprotected=X protected=Y\n\n" +
			"Open the dashboard it prints (--http-addr fixes its address) and watch. The exit status is 1\n" +
			"if a lab's figures do not point the way its guide (docs/labs/) predicts.\n\n" +
			"Every flag can also be set by an environment variable: --redis-addr is SECKILL_REDIS_ADDR.",
		FlagSet: fs,
		Options: []ff.Option{ff.WithEnvVarPrefix(config.EnvPrefix)},
		Exec: func(ctx context.Context, rest []string) error {
			if len(rest) != 1 {
				return usageErrorf("lab run takes one lab name or all; run 'seckill lab list'")
			}
			var labs []lab.Lab
			if rest[0] == "all" {
				labs = lab.All()
			} else {
				l, ok := lab.Find(rest[0])
				if !ok {
					return usageErrorf("no lab %q; run 'seckill lab list'", rest[0])
				}
				labs = []lab.Lab{l}
			}
			if scale <= 0 {
				return usageErrorf("--scale must be above 0, got %v", scale)
			}
			base := config.Default()
			base.MySQLDSN, base.RedisAddr, base.RedisPassword, base.RedisDB = cfg.MySQLDSN, cfg.RedisAddr, cfg.RedisPassword, cfg.RedisDB
			base.KafkaBrokers, base.HTTPAddr = cfg.KafkaBrokers, cfg.HTTPAddr
			env := &lab.Env{Base: base, Out: stdout, Scale: scale}
			if verbose {
				env.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			return runLabs(ctx, env, labs, stdout)
		},
	}
	return &ffcli.Command{
		Name: "lab", ShortUsage: "seckill lab <list|run> ...",
		ShortHelp: "workshop labs: each switches one protection off and measures the difference",
		LongHelp: "Each lab runs the same workload twice: once with the naive component a newcomer would\n" +
			"write (package app/lab/naive, wrong on purpose), once with the production one, and\n" +
			"prints both side by side. docs/WORKSHOP.md is the instructor's agenda; docs/labs/ has a\n" +
			"guide per lab.",
		FlagSet:     flag.NewFlagSet("seckill lab", flag.ContinueOnError),
		Subcommands: []*ffcli.Command{list, run},
		Exec: func(context.Context, []string) error {
			return usageErrorf("lab needs a subcommand: list or run; see seckill lab --help")
		},
	}
}

// runLabs runs labs one after another and sums up; a lab that errors or
// does not hold makes the whole run fail, after the others have run.
func runLabs(ctx context.Context, env *lab.Env, labs []lab.Lab, out io.Writer) error {
	start := time.Now()
	var failed, lines []string
	for i, l := range labs {
		if i > 0 {
			fmt.Fprintln(out)
		}
		rep, err := lab.RunOne(ctx, env, l, out)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			fmt.Fprintf(out, "FAIL %v\n", err)
			failed = append(failed, l.Name)
			continue
		}
		lines = append(lines, rep.Line())
	}
	if len(labs) > 1 {
		fmt.Fprintf(out, "\n== %d labs in %s: %d held, %d failed\n", len(labs), time.Since(start).Round(time.Second), len(labs)-len(failed), len(failed))
		for _, l := range lines {
			fmt.Fprintln(out, l)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w: %s", errLabsFailed, strings.Join(failed, ", "))
	}
	return nil
}
