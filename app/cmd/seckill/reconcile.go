package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/redis/go-redis/v9"

	"seckill/app/bootstrap"
	"seckill/app/config"
	"seckill/app/reconcile"
	"seckill/domain/sale"
	"seckill/infra/kafkaevents"
	"seckill/infra/mysqlstore"
	"seckill/infra/redisbus"
	"seckill/infra/redisline"
	"seckill/infra/redisstock"
)

// errDrift is the error of a reconcile run that found drift it did not
// repair; main turns it into exit status 1.
var errDrift = errors.New("the ledger and the database disagree")

// reconcileCommand compares every item's Redis ledger with the database
// and, with --repair, repairs what can be repaired safely.
func reconcileCommand(stdout, stderr io.Writer) *ffcli.Command {
	var (
		cfg    config.Config
		item   int64
		repair bool
	)
	fs := flag.NewFlagSet("seckill reconcile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Int64Var(&item, "item", 0, "check only this item id (default: every item)")
	fs.BoolVar(&repair, "repair", false, "repair what can be repaired safely: wait for the workers to drain the order queue, then settle or release orders the database decided, restore buyers and restock keys, and correct or rebuild the stock")
	// Only the settings that say where the backends are and how keys are
	// named matter here.
	fs.StringVar(&cfg.MySQLDSN, "mysql-dsn", "", "MySQL DSN (required), e.g. root:pw@tcp(mysql:3306)/seckill")
	fs.StringVar(&cfg.RedisAddr, "redis-addr", "", "Redis host:port (required); a comma-separated list of nodes means Redis Cluster")
	fs.BoolVar(&cfg.RedisCluster, "redis-cluster", false, "treat a single --redis-addr as a Redis Cluster node")
	fs.StringVar(&cfg.RedisPassword, "redis-password", "", "Redis password (secret)")
	fs.IntVar(&cfg.RedisDB, "redis-db", 0, "Redis database number")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", "seckill", "namespace of every Redis key, as the instances use it")
	fs.StringVar(&cfg.KafkaBrokers, "kafka-brokers", "", "comma-separated Kafka brokers (required with --repair: the repair waits for the workers to drain the queue)")
	fs.StringVar(&cfg.KafkaTopic, "kafka-topic", "seckill.orders", "topic accepted orders travel on")
	fs.StringVar(&cfg.KafkaGroup, "kafka-group", "seckill-workers", "consumer group of the order workers")
	return &ffcli.Command{
		Name: "reconcile", ShortUsage: "seckill reconcile [--item N] [--repair] [flags]",
		ShortHelp: "compare each item's Redis ledger with the database; --repair fixes what is safe",
		LongHelp: "Compares each item's Redis stock ledger (stock, buyers, pending orders) with the database\n" +
			"(orders, stock_total) and prints one line per item. Without --repair nothing changes, and the\n" +
			"exit status is 1 if any item differs. With --repair it repairs what can be repaired safely and\n" +
			"says what it cannot. The running instances do the same by themselves (--reconcile-every).\n\n" +
			"Every flag can also be set by an environment variable: --redis-addr is SECKILL_REDIS_ADDR.",
		FlagSet: fs,
		Options: []ff.Option{ff.WithEnvVarPrefix(config.EnvPrefix)},
		Exec: func(ctx context.Context, rest []string) error {
			if len(rest) > 0 {
				return usageErrorf("unexpected arguments %q; see seckill reconcile --help", rest)
			}
			if cfg.MySQLDSN == "" || cfg.RedisAddr == "" || (repair && cfg.KafkaBrokers == "") {
				return usageErrorf("reconcile needs --mysql-dsn and --redis-addr, and --kafka-brokers with --repair (or their SECKILL_* variables)")
			}
			return runReconcile(ctx, stdout, cfg, sale.ItemID(item), repair)
		},
	}
}

func runReconcile(ctx context.Context, out io.Writer, cfg config.Config, only sale.ItemID, repair bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	store, err := mysqlstore.Open(ctx, mysqlstore.MySQL, cfg.MySQLDSN, mysqlstore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	rdb := bootstrap.NewRedisClient(&redis.UniversalOptions{
		Addrs: cfg.RedisAddrs(), IsClusterMode: cfg.RedisClusterMode(),
		Password: cfg.RedisPassword, DB: cfg.RedisDB, ClientName: "seckill-reconcile",
	})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", cfg.RedisAddr, err)
	}
	ledger := redisstock.New(rdb, redisstock.Options{Prefix: cfg.RedisPrefix}) //nolint:contextcheck // the ledger batches many callers' calls, so each batch runs under its own deadline
	defer ledger.Close()
	var backlog reconcile.Backlog
	if cfg.KafkaBrokers != "" {
		backlog = kafkaevents.NewBacklog(cfg.Brokers(), cfg.KafkaGroup, cfg.KafkaTopic)
	}
	// A repair bumps the item's stock generation; announcing it on the bus
	// clears every running instance's sold-out flag for the item at once,
	// as an instance's own repair does, instead of after the flag's TTL.
	bus := redisbus.New(rdb, bootstrap.EventsChannel(cfg.RedisPrefix), "seckill-reconcile")
	svc := reconcile.New(reconcile.Deps{Ledger: ledger, Book: store, Backlog: backlog, Notify: announcer{ctx, bus, out}, Lines: redisline.New(rdb, cfg.RedisPrefix)}, reconcile.Options{})

	var ids []sale.ItemID
	if only > 0 {
		ids = []sale.ItemID{only}
	} else {
		items, err := store.Items(ctx)
		if err != nil {
			return err
		}
		for _, it := range items {
			ids = append(ids, it.ID)
		}
	}
	drifted, unrepairable := reconcileEach(ctx, out, svc, ids, repair)
	switch {
	case unrepairable > 0:
		return fmt.Errorf("%w: %d item(s) cannot be repaired from the ledger alone (see above)", errDrift, unrepairable)
	case drifted > 0 && repair:
		return fmt.Errorf("%w: %d item(s) were not repaired; run again", errDrift, drifted)
	case drifted > 0:
		return fmt.Errorf("%w in %d item(s); run with --repair to fix them", errDrift, drifted)
	}
	return nil
}

// reconcileEach checks (or repairs) each item and prints its line. It
// counts the items that drifted or could not be checked, and those the
// ledger alone cannot repair.
func reconcileEach(ctx context.Context, out io.Writer, svc *reconcile.Service, ids []sale.ItemID, repair bool) (drifted, unrepairable int) {
	for _, id := range ids {
		var rec sale.Reconciliation
		if repair {
			rep, err := svc.Repair(ctx, id)
			if err != nil {
				fmt.Fprintf(out, "item %d: not repaired: %v\n", id, err)
				drifted++
				continue
			}
			rec = rep.Reconciliation
			if rep.Repaired {
				fmt.Fprintf(out, "%s -> repaired (waited %s for the queue)\n", rec, rep.Waited.Round(time.Millisecond))
				if rep.LineReseeded > 0 {
					fmt.Fprintf(out, "item %d: the waiting room was lost too; its used admissions restart from the database's %d buyers\n", id, rep.LineReseeded)
				}
			} else {
				fmt.Fprintln(out, rec)
			}
		} else {
			var err error
			rec, _, err = svc.Check(ctx, id)
			if err != nil {
				fmt.Fprintf(out, "item %d: not checked: %v\n", id, err)
				drifted++
				continue
			}
			fmt.Fprintln(out, rec)
			if rec.Drifted() {
				drifted++
			}
		}
		if rec.Unrepairable != "" {
			unrepairable++
		}
	}
	return drifted, unrepairable
}

// announcer tells the running instances of a repair's new generation on
// their bus, as an instance's own reconciler does through its notifier.
type announcer struct {
	ctx context.Context //nolint:containedctx // the command's context, for the announcements its one run makes
	bus *redisbus.Bus
	out io.Writer
}

func (a announcer) StockBack(id sale.ItemID, gen int64) {
	ctx, cancel := context.WithTimeout(a.ctx, 2*time.Second)
	defer cancel()
	if err := a.bus.Publish(ctx, redisbus.Event{Kind: redisbus.KindRestocked, Item: id, Gen: gen}); err != nil {
		fmt.Fprintf(a.out, "item %d: repaired, but the instances were not told (their sold-out flags clear within seconds): %v\n", id, err)
	}
}
