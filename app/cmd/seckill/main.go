// Command seckill runs the flash-sale system: the HTTP API, the order worker,
// both in one process, or the database migrations. With no backend
// configured it starts embedded stand-ins (miniredis, an in-process
// Kafka-protocol broker, SQLite) that the real clients reach over TCP, so
// `seckill all` works on a machine with only Go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/tracing"
	"seckill/infra/mysqlstore"
)

func main() {
	config.ApplyRuntimeDefaults()
	os.Exit(exitCode(run(os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// The exit statuses follow the usual convention.
const (
	exitOK     = 0 // done, or help was asked for
	exitFailed = 1 // the command ran and failed
	exitUsage  = 2 // the command line (or a SECKILL_* variable) is wrong
)

// errHelpShown is returned once help was printed on request; it exits 0.
// It is not flag.ErrHelp, because ffcli prints the usage again when a
// command's Exec returns that.
var errHelpShown = errors.New("help shown")

// usageError is a wrong command line. shown says that its text is already on
// stderr (the flag package prints parse errors itself), so it is not
// printed twice.
type usageError struct {
	err   error
	shown bool
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf returns a usage error that main prints and exits 2 on.
func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitCode prints err if it is not already printed and returns the status.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.Is(err, errHelpShown):
		return exitOK
	case errors.As(err, &ue):
		if !ue.shown {
			fmt.Fprintln(stderr, "seckill:", ue.err)
		}
		return exitUsage
	}
	fmt.Fprintln(stderr, "seckill:", err)
	return exitFailed
}

// run parses args and executes the chosen subcommand until SIGINT/SIGTERM.
func run(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errOut := &countingWriter{w: stderr}
	root := newRoot(stdout, errOut)
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err // the flag package has printed the usage
		}
		return &usageError{err: err, shown: errOut.n > 0}
	}
	return root.Run(ctx)
}

// countingWriter counts what is written through it, so run can tell
// whether the flag package already printed a parse error.
type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	return c.w.Write(p)
}

// envNote ends every configured command's help.
var envNote = "\n\nEvery flag can also be set by an environment variable: --mysql-dsn is " +
	config.EnvName("mysql-dsn") + ", and so on. A flag on the command line wins."

// runConfigured is what a configured command runs, given its settings and
// whether a flag was given (on the command line or by environment).
type runConfigured func(ctx context.Context, cfg config.Config, given func(string) bool) error

// configCommand is a subcommand whose flags are the config's settings; only
// lists the settings it reads (nil: all of them).
func configCommand(stderr io.Writer, name, short, long string, only []string, exec runConfigured) *ffcli.Command {
	var cfg config.Config
	fs := flag.NewFlagSet("seckill "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if only == nil {
		cfg.Register(fs)
	} else {
		cfg.RegisterOnly(fs, only...)
	}
	return &ffcli.Command{
		Name: name, ShortUsage: "seckill " + name + " [flags]", ShortHelp: short,
		LongHelp: long + envNote,
		FlagSet:  fs,
		Options:  []ff.Option{ff.WithEnvVarPrefix(config.EnvPrefix)},
		Exec: func(ctx context.Context, rest []string) error {
			if len(rest) > 0 {
				return usageErrorf("unexpected arguments %q; see seckill %s --help", rest, name)
			}
			// ff sets flags from env vars with fs.Set too, so Visit sees
			// both ways of giving a flag.
			given := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
			return exec(ctx, cfg, func(n string) bool { return given[n] })
		},
	}
}

// serve runs an instance with the given roles until ctx ends, then shuts it
// down within --shutdown-timeout; banner prints the demo's banner.
func serve(roles bootstrap.Roles, banner bool, stdout, stderr io.Writer) runConfigured {
	return func(ctx context.Context, cfg config.Config, given func(string) bool) error {
		log, err := newLogger(cfg, stderr)
		if err != nil {
			return err
		}
		if roles != (bootstrap.Roles{API: true, Worker: true}) && cfg.Embedded() {
			// An embedded backend lives inside one process, so a separate
			// API or worker could never meet its partner there.
			return usageErrorf("serve and worker need real backends: set --mysql-dsn, --redis-addr and --kafka-brokers " +
				"(SECKILL_MYSQL_DSN, SECKILL_REDIS_ADDR, SECKILL_KAFKA_BROKERS), or run 'seckill all' for the embedded demo")
		}
		if cfg.MySQLDSN == "" && !given("seed-demo") {
			// With the embedded database the point is a demo.
			cfg.SeedDemo = true
		}
		stopTracing, err := startTracing(ctx, cfg, roles, stdout, log)
		if err != nil {
			return err
		}
		defer stopTracing()
		m, err := bootstrap.Open(ctx, cfg, roles, log)
		if err != nil {
			return err
		}
		if banner && roles.API {
			fmt.Fprint(stdout, m.Banner())
		} else if roles.API && m.AdminTokenGenerated {
			// Printed once, never logged (docs/CONFIG.md).
			fmt.Fprintf(stderr, "\n  Admin token (generated for this run, shown only here): %s\n\n", m.AdminToken)
		}
		<-ctx.Done()
		log.Info("signal received; shutting down gracefully", "timeout", cfg.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		return m.Shutdown(sctx)
	}
}

// newRoot builds the command tree: every subcommand with its own flag set,
// and the one usage format (usage) on every command, including ones that
// do not set it themselves.
func newRoot(stdout, stderr io.Writer) *ffcli.Command {
	root := &ffcli.Command{
		Name:       "seckill",
		ShortUsage: "seckill <subcommand> [flags]",
		LongHelp: "seckill is a flash-sale system: a Gin API that sells limited stock through one Redis\n" +
			"Lua script, and workers that confirm orders from Kafka into MySQL.\n\n" +
			"Run 'seckill all' for the whole system in one process (embedded backends when none are configured).\n" +
			"Run 'seckill help <subcommand>' or 'seckill <subcommand> --help' for its flags.",
		FlagSet: flag.NewFlagSet("seckill", flag.ContinueOnError),
		Subcommands: []*ffcli.Command{
			configCommand(stderr, "all", "run the API and the order worker in one process",
				"Runs the HTTP API, the outbox relay and the order worker in one process. With no\n"+
					"--mysql-dsn, --redis-addr or --kafka-brokers it starts embedded stand-ins for the missing ones; with\n"+
					"the embedded database it also seeds two demo sales (--seed-demo overrides) and prints how to buy.",
				nil, serve(bootstrap.Roles{API: true, Worker: true}, true, stdout, stderr)),
			configCommand(stderr, "serve", "run the HTTP API (and the outbox relay)",
				"Runs the HTTP API, the outbox dispatcher and relay. Run several behind a load balancer;\n"+
					"they must share --token-secret and --admin-token.",
				nil, serve(bootstrap.Roles{API: true}, false, stdout, stderr)),
			configCommand(stderr, "worker", "run the order worker (Kafka consumer group)",
				"Consumes accepted orders from Kafka in batches and confirms them in the database.\n"+
					"Run several; Kafka's consumer group spreads the partitions among them.",
				nil, serve(bootstrap.Roles{Worker: true}, false, stdout, stderr)),
			configCommand(stderr, "migrate", "apply database migrations and exit",
				"Applies the embedded SQL migrations (goose) to --mysql-dsn, or to the SQLite file when it is empty.",
				[]string{"mysql-dsn", "sqlite-path", "log-level", "log-format"}, migrate(stderr)),
			reconcileCommand(stdout, stderr),
			brokerCommand(stdout, stderr),
			labCommand(stdout, stderr),
			versionCommand(stdout, stderr),
		},
	}
	root.FlagSet.SetOutput(stderr)
	root.Exec = func(_ context.Context, args []string) error { return rootExec(root, args, stderr) }
	setUsage(root)
	return root
}

// rootExec answers "seckill", "seckill help" and "seckill help NAME"; any
// other word is an unknown subcommand.
func rootExec(root *ffcli.Command, args []string, stderr io.Writer) error {
	if len(args) == 0 {
		// A subcommand is required: show what there is, as a usage error.
		fmt.Fprintln(stderr, usage(root))
		return &usageError{err: errors.New("no subcommand"), shown: true}
	}
	if args[0] != "help" {
		return usageErrorf("unknown subcommand %q; run 'seckill help'", args[0])
	}
	switch len(args) {
	case 1:
		fmt.Fprintln(stderr, usage(root))
		return errHelpShown
	case 2:
		for _, sub := range root.Subcommands {
			if sub.Name == args[1] {
				fmt.Fprintln(stderr, usage(sub))
				return errHelpShown
			}
		}
		return usageErrorf("unknown subcommand %q; run 'seckill help'", args[1])
	}
	return usageErrorf("help takes at most one subcommand; run 'seckill help'")
}

// setUsage gives c and every command below it the house usage format,
// unless a command chose its own.
func setUsage(c *ffcli.Command) {
	if c.UsageFunc == nil {
		c.UsageFunc = usage
	}
	for _, sub := range c.Subcommands {
		setUsage(sub)
	}
}

// usage renders a command's help as the docs write it: flags with two
// dashes, each flag of this command once, and a default only where it is
// not the zero value (as flag.PrintDefaults does).
func usage(c *ffcli.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "USAGE\n  %s\n", c.ShortUsage)
	if c.LongHelp != "" {
		fmt.Fprintf(&b, "\n%s\n", c.LongHelp)
	}
	if len(c.Subcommands) > 0 {
		b.WriteString("\nSUBCOMMANDS\n")
		tw := tabwriter.NewWriter(&b, 0, 2, 2, ' ', 0)
		for _, sub := range c.Subcommands {
			fmt.Fprintf(tw, "  %s\t%s\n", sub.Name, sub.ShortHelp)
		}
		fmt.Fprintf(tw, "  help\tprint this help, or a subcommand's: seckill help <subcommand>\n")
		_ = tw.Flush()
	}
	first := true
	c.FlagSet.VisitAll(func(f *flag.Flag) {
		if first {
			b.WriteString("\nFLAGS\n")
			first = false
		}
		typ, text := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  --%s", f.Name)
		if typ != "" {
			fmt.Fprintf(&b, " %s", typ)
		}
		fmt.Fprintf(&b, "\n        %s", text)
		switch {
		case f.DefValue == "" || f.DefValue == "0" || f.DefValue == "false" || f.DefValue == "0s":
		case typ == "string":
			fmt.Fprintf(&b, " (default %q)", f.DefValue)
		default:
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		b.WriteString("\n")
	})
	return strings.TrimRight(b.String(), "\n")
}

// migrate applies the migrations to the configured database and exits.
func migrate(stderr io.Writer) func(context.Context, config.Config, func(string) bool) error {
	return func(ctx context.Context, cfg config.Config, _ func(string) bool) error {
		log, err := newLogger(cfg, stderr)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		dialect, dsn := mysqlstore.MySQL, cfg.MySQLDSN
		if dsn == "" {
			if cfg.SQLitePath == "" {
				return usageErrorf("nothing to migrate: set --mysql-dsn (SECKILL_MYSQL_DSN) or --sqlite-path (SECKILL_SQLITE_PATH)")
			}
			dialect, dsn = mysqlstore.SQLite, cfg.SQLitePath
		}
		st, err := mysqlstore.Open(ctx, dialect, dsn, mysqlstore.Options{})
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.Migrate(ctx); err != nil {
			return err
		}
		log.Info("migrations applied", "dialect", dialect)
		return nil
	}
}

// newLogger checks cfg (a bad setting is a usage error) and returns the
// logger it asks for.
func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, &usageError{err: err}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	if cfg.Tracing != tracing.ExporterOff {
		h = tracing.LogHandler(h)
	}
	return slog.New(h).With("instance", cfg.InstanceID), nil
}
