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
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/infra/mysqlstore"
)

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(config.DefaultGCPercent)
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "seckill:", err)
		os.Exit(1)
	}
}

// run parses args and executes the chosen subcommand until SIGINT/SIGTERM.
func run(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	newCmd := func(name, usage, short, long string, exec func(context.Context, config.Config) error) *ffcli.Command {
		var cfg config.Config
		fs := flag.NewFlagSet("seckill "+name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfg.Register(fs)
		return &ffcli.Command{
			Name: name, ShortUsage: "seckill " + name + " [flags]", ShortHelp: short,
			LongHelp: long + "\n\nEvery flag can also be set by an environment variable: --redis-addr is " +
				config.EnvName("redis-addr") + ", and so on. A flag on the command line wins.\n" + usage,
			FlagSet: fs,
			Options: []ff.Option{ff.WithEnvVarPrefix(config.EnvPrefix)},
			Exec: func(ctx context.Context, rest []string) error {
				if len(rest) > 0 {
					return fmt.Errorf("unexpected arguments %q; see seckill %s --help", rest, name)
				}
				return exec(ctx, cfg)
			},
		}
	}

	serve := func(roles bootstrap.Roles, banner bool) func(context.Context, config.Config) error {
		return func(ctx context.Context, cfg config.Config) error {
			log, err := newLogger(cfg, stderr)
			if err != nil {
				return err
			}
			if roles != (bootstrap.Roles{API: true, Worker: true}) && cfg.Embedded() {
				// An embedded backend lives inside one process, so a
				// separate API or worker could never meet its partner there.
				return errors.New("serve and worker need real backends: set --mysql-dsn, --redis-addr and --kafka-brokers " +
					"(SECKILL_MYSQL_DSN, SECKILL_REDIS_ADDR, SECKILL_KAFKA_BROKERS), or run 'seckill all' for the embedded demo")
			}
			if cfg.MySQLDSN == "" && !isSet("seed-demo") {
				// With the embedded database the point is a demo.
				cfg.SeedDemo = true
			}
			m := bootstrap.New(cfg, roles, log)
			if err := m.Start(ctx); err != nil {
				return err
			}
			if banner && roles.API {
				fmt.Fprint(stdout, m.Banner())
			}
			<-ctx.Done()
			log.Info("signal received; shutting down gracefully", "timeout", cfg.ShutdownTimeout)
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			return m.Shutdown(sctx)
		}
	}

	root := &ffcli.Command{
		ShortUsage: "seckill <subcommand> [flags]",
		LongHelp: "seckill is a flash-sale system: a Gin API that sells limited stock through one Redis\n" +
			"Lua script, and workers that confirm orders from Kafka into MySQL.\n\n" +
			"Run 'seckill all' for the whole system in one process (embedded backends when none are configured).\n" +
			"Run 'seckill <subcommand> --help' for its flags.",
		Subcommands: []*ffcli.Command{
			newCmd("all", "", "run the API and the order worker in one process",
				"Runs the HTTP API, the outbox relay and the order worker in one process. With no\n"+
					"--mysql-dsn, --redis-addr or --kafka-brokers it starts embedded stand-ins for the missing ones; with\n"+
					"the embedded database it also seeds two demo sales (--seed-demo overrides) and prints how to buy.",
				serve(bootstrap.Roles{API: true, Worker: true}, true)),
			newCmd("serve", "", "run the HTTP API (and the outbox relay)",
				"Runs the HTTP API, the outbox dispatcher and relay. Run several behind a load balancer;\n"+
					"they must share --token-secret and --admin-token.",
				serve(bootstrap.Roles{API: true}, false)),
			newCmd("worker", "", "run the order worker (Kafka consumer group)",
				"Consumes accepted orders from Kafka in batches and confirms them in the database.\n"+
					"Run several; Kafka's consumer group spreads the partitions among them.",
				serve(bootstrap.Roles{Worker: true}, false)),
			newCmd("migrate", "", "apply database migrations and exit",
				"Applies the embedded SQL migrations (goose) to --mysql-dsn, or to the SQLite file when it is empty.",
				migrate(stderr)),
			reconcileCommand(stdout, stderr),
			brokerCommand(stdout, stderr),
		},
		Exec: func(_ context.Context, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown subcommand %q; run 'seckill --help'", args[0])
			}
			return flag.ErrHelp
		},
	}
	if err := root.Parse(args); err != nil {
		return err
	}
	err := root.Run(ctx)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, ffcli.DefaultUsageFunc(root))
	}
	return err
}

// isSet reports whether a flag was given on the command line or by env.
func isSet(name string) bool {
	if _, ok := os.LookupEnv(config.EnvName(name)); ok {
		return true
	}
	for _, a := range os.Args[1:] {
		if a == "--"+name || a == "-"+name || strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"=") {
			return true
		}
	}
	return false
}

func migrate(stderr io.Writer) func(context.Context, config.Config) error {
	return func(ctx context.Context, cfg config.Config) error {
		log, err := newLogger(cfg, stderr)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		dialect, dsn := mysqlstore.MySQL, cfg.MySQLDSN
		if dsn == "" {
			if cfg.SQLitePath == "" {
				return errors.New("nothing to migrate: set --mysql-dsn (SECKILL_MYSQL_DSN) or --sqlite-path (SECKILL_SQLITE_PATH)")
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

func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
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
	return slog.New(h).With("instance", cfg.InstanceID), nil
}
