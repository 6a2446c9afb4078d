package bootstrap

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/app/breaker"
	"seckill/infra/embedded"
	"seckill/infra/kafkaevents"
	"seckill/infra/mysqlstore"
	"seckill/infra/redisstock"
)

// openBackends connects to the configured services, starting embedded
// stand-ins for the ones left empty.
func (p *Parts) openBackends(ctx context.Context) error {
	cfg := &p.Config
	topics := []kafkaevents.Topic{{Name: cfg.KafkaTopic, Partitions: cfg.KafkaParts}, {Name: cfg.KafkaDLQTopic, Partitions: 1}}
	if err := p.startEmbedded(topics); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.openRedis(pctx); err != nil {
		return err
	}
	if err := p.openDatabase(pctx); err != nil {
		return err
	}
	if cfg.AutoMigrate {
		if err := p.store.Migrate(pctx); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if err := kafkaevents.EnsureTopics(pctx, cfg.Brokers(), topics...); err != nil {
		return fmt.Errorf("kafka topics at %s: %w", cfg.KafkaBrokers, err)
	}
	p.ledger = redisstock.New(p.rdb, ledgerOptions(*cfg, p.breakers)) //nolint:contextcheck // the ledger batches many callers' calls, so each batch runs under its own deadline
	p.kafka = kafkaevents.NewPublisher(cfg.Brokers(), cfg.KafkaTopic, kafkaevents.PublisherOptions{})
	p.gLedger = ledgerGuard(p.ledger, p.breakers)
	p.gStore = breaker.NewStore(p.store, p.breakers.db)
	p.gPublish = breaker.NewPublisher(p.kafka, p.breakers.kafka)
	return nil
}

// startEmbedded starts the stand-ins for the backends the config left
// empty (Redis, the Kafka broker) and points the config at them.
func (p *Parts) startEmbedded(topics []kafkaevents.Topic) error {
	cfg := &p.Config
	if cfg.RedisAddr == "" {
		r, err := embedded.StartRedis("127.0.0.1:0")
		if err != nil {
			return err
		}
		p.emRedis = r
		cfg.RedisAddr = r.Addr()
		p.Log.Info("started embedded Redis (miniredis)", "addr", cfg.RedisAddr)
	}
	if cfg.KafkaBrokers == "" {
		var ets []embedded.KafkaTopic
		for _, t := range topics {
			ets = append(ets, embedded.KafkaTopic{Name: t.Name, Partitions: t.Partitions})
		}
		k, err := embedded.StartKafka("127.0.0.1:0", ets...)
		if err != nil {
			return err
		}
		p.emKafka = k
		cfg.KafkaBrokers = k.Brokers()[0]
		p.Log.Info("started embedded Kafka-protocol broker (kfake)", "brokers", cfg.KafkaBrokers)
	}
	return nil
}

// openRedis connects the ledger's client and the item cache's own, each
// with its breakers and hooks, and checks that Redis answers.
func (p *Parts) openRedis(pctx context.Context) error {
	cfg := &p.Config
	// The ledger's guard gives up on a slow call only when Redis itself is
	// slow, not when the wait is this process's own queue (a spike) or
	// go-redis pausing between retries (a slot in migration), so the
	// watcher times each round trip to a server.
	health := breaker.NewRedisHealth()
	p.rdb = NewRedisClient(&redis.UniversalOptions{
		Addrs: cfg.RedisAddrs(), IsClusterMode: cfg.RedisClusterMode(),
		Password: cfg.RedisPassword, DB: cfg.RedisDB,
		// Named so an operator (or a test) can tell this instance's
		// connections apart in CLIENT LIST.
		ClientName: "seckill-" + cfg.InstanceID,
		// Many concurrent purchases share few connections thanks to the
		// ledger's pipelining; the pool still needs headroom for pub/sub,
		// the relay and page views.
		PoolSize: 64, MinIdleConns: 8,
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	}, health)
	if err := p.rdb.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", cfg.RedisAddr, err)
	}
	p.breakers = newBreakers(*cfg, health)
	// The item cache gets a client of its own so that its breaker and
	// deadline (a go-redis hook) apply to its commands only, and so that
	// go-redis honours the deadline in ctx instead of its read timeout.
	p.cacheRdb = NewRedisClient(&redis.UniversalOptions{
		Addrs: cfg.RedisAddrs(), IsClusterMode: cfg.RedisClusterMode(),
		Password: cfg.RedisPassword, DB: cfg.RedisDB,
		ClientName: "seckill-cache-" + cfg.InstanceID,
		PoolSize:   32, MinIdleConns: 2, ContextTimeoutEnabled: true,
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	})
	p.cacheRdb.AddHook(breaker.NewRedisHook(p.breakers.cache))
	if err := traceRedis(p.rdb, p.cacheRdb); err != nil {
		return err
	}
	return nil
}

// openDatabase opens MySQL, or the embedded SQLite file when no DSN is set.
func (p *Parts) openDatabase(pctx context.Context) error {
	cfg := &p.Config
	var err error
	if cfg.MySQLDSN != "" {
		p.store, err = mysqlstore.Open(pctx, mysqlstore.MySQL, cfg.MySQLDSN, mysqlstore.Options{PaymentWindow: cfg.PaymentWindow, Tracing: traceSQL()})
	} else {
		path := cfg.SQLitePath
		if path == "" {
			// The embedded Redis keeps nothing, so a database that outlived
			// it would list sales the ledger no longer knows. Start both fresh.
			dir, derr := os.MkdirTemp("", "seckill-*")
			if derr != nil {
				return fmt.Errorf("sqlite directory: %w", derr)
			}
			p.tmpDir = dir
			path = filepath.Join(dir, "seckill.db")
		} else if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return fmt.Errorf("sqlite directory: %w", err)
		}
		if _, statErr := os.Stat(path); statErr == nil && p.emRedis != nil {
			p.Log.Info("a kept SQLite file with the embedded Redis: the reconciler rebuilds the earlier sales' ledgers from it within --reconcile-every", "path", path)
		}
		p.store, err = mysqlstore.Open(pctx, mysqlstore.SQLite, path, mysqlstore.Options{PaymentWindow: cfg.PaymentWindow, Tracing: traceSQL()})
		if err == nil {
			p.Log.Info("using embedded SQLite", "path", path)
		}
	}
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}
