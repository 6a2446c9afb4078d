// Package bootstrap wires seckill together. It is the only package besides
// main that builds concrete adapters, and the end-to-end tests start the
// very same Main on 127.0.0.1:0, so what they test is what runs.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/app/auth"
	"seckill/app/breaker"
	"seckill/app/broadcast"
	"seckill/app/catalog"
	"seckill/app/config"
	"seckill/app/fairness"
	"seckill/app/httpapi"
	"seckill/app/lifecycle"
	"seckill/app/metrics"
	"seckill/app/outbox"
	"seckill/app/purchase"
	"seckill/app/reconcile"
	"seckill/app/shield"
	"seckill/app/waitroom"
	"seckill/app/web"
	"seckill/app/worker"
	"seckill/domain/sale"
	"seckill/infra/embedded"
	"seckill/infra/kafkaevents"
	"seckill/infra/localcache"
	"seckill/infra/mysqlstore"
	"seckill/infra/paysim"
	"seckill/infra/redisbus"
	"seckill/infra/rediscache"
	"seckill/infra/redisdelay"
	"seckill/infra/redisline"
	"seckill/infra/redisonce"
	"seckill/infra/redisrate"
	"seckill/infra/redisstock"
)

// Roles chooses what an instance runs.
type Roles struct {
	API    bool // the HTTP API, the outbox dispatcher and relay
	Worker bool // the order consumer
}

// Main is one seckill instance: its backends, its use cases and its loops.
type Main struct {
	Config config.Config
	Roles  Roles
	Log    *slog.Logger

	// AdminToken is the admin bearer token in force (generated if the config
	// had none).
	AdminToken string
	// AdminTokenGenerated is true when AdminToken was generated at start,
	// so the command prints it once in its banner.
	AdminTokenGenerated bool

	// Hooks lets tests observe or delay internal steps. Production leaves
	// it zero, which adds nothing to any path.
	Hooks Hooks

	// Overrides swaps in a lab's naive components (app/lab). Production
	// leaves it zero.
	Overrides Overrides

	emRedis *embedded.Redis
	emKafka *embedded.Kafka

	rdb       redis.UniversalClient // a *redis.Client, or a *redis.ClusterClient on Redis Cluster
	cacheRdb  redis.UniversalClient // the item cache's own client, guarded by a hook
	store     *mysqlstore.Store
	ledger    *redisstock.Store
	publisher *kafkaevents.Publisher
	consumer  *kafkaevents.Consumer
	local     *localcache.Reader
	shared    *rediscache.Reader
	bus       *redisbus.Bus
	delay     *redisdelay.Queue
	shield    *shield.Shield
	userRate  *redisrate.UserLimiter
	coord     *broadcast.Coordinator
	dispatch  *outbox.Dispatcher
	relay     *outbox.Relay
	worker    *worker.Worker[kafkaevents.Delivery]
	recon     *reconcile.Service
	metrics   *metrics.Metrics

	// The guarded ports the request path uses (app/breaker), and one breaker
	// per backend role. Background loops keep the bare adapters.
	breakers backendBreakers
	gLedger  *breaker.Ledger
	gStore   *breaker.Store
	gPublish *breaker.Publisher

	// Catalog, Purchase and Lifecycle are the use cases, exposed for tests
	// and seeding.
	Catalog   *catalog.Service
	Purchase  *purchase.Service
	Lifecycle *lifecycle.Service
	// Fair is the fair-sale use case: tickets, proof of work, blocklist.
	Fair *fairness.Service
	// Payments is the simulated payment provider the lifecycle charges.
	Payments *paysim.Provider
	// Queue is the waiting rooms of queue items (queue.go).
	Queue *waitroom.Service

	httpSrv  *http.Server
	ln       net.Listener
	debugSrv *http.Server
	debugLn  net.Listener
	tmpDir   string

	bgCancel     context.CancelFunc
	bg           sync.WaitGroup
	dispCancel   context.CancelFunc
	disp         sync.WaitGroup
	workerCancel context.CancelFunc
	work         sync.WaitGroup
	closeOnce    sync.Once
	closeErr     error
}

// New returns an instance that has not started yet.
func New(cfg config.Config, roles Roles, log *slog.Logger) *Main {
	if log == nil {
		log = slog.Default()
	}
	return &Main{Config: cfg, Roles: roles, Log: log}
}

// Start connects to (or starts) every backend, applies migrations, seeds the
// demo if asked, starts the background loops and begins serving HTTP. When
// it returns nil the instance is ready; on error everything it started is
// stopped again. A busy --http-addr is reported before anything starts.
func (m *Main) Start(ctx context.Context) (err error) {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	// Listen first: a second instance on a busy port should say so at once,
	// not after starting its backends and seeding. Serving starts last.
	ln, err := net.Listen("tcp", m.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another seckill running? set --http-addr)", m.Config.HTTPAddr, err)
	}
	m.ln = ln
	defer func() {
		if err != nil {
			_ = m.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	m.metrics = metrics.New()
	if err := m.openBackends(ctx); err != nil {
		return err
	}
	secret, logged := m.secrets()
	if err := m.wireEdge(ctx, secret); err != nil {
		return err
	}
	m.wireOrders()
	if m.Config.SeedDemo {
		if err := m.seedDemo(ctx); err != nil {
			return fmt.Errorf("seed demo: %w", err)
		}
	}
	if err := m.startLoops(ctx); err != nil {
		return err
	}
	if m.Roles.Worker {
		m.startWorker() //nolint:contextcheck // the worker lives until Shutdown, not ctx, and must not inherit its values (a startup span)
	}
	// A worker-only instance still serves /healthz, /readyz and /metrics,
	// so it can be probed and scraped like the API.
	if err := m.serveHTTP(secret); err != nil { //nolint:contextcheck // false positive: every handler runs under its request's context
		return err
	}
	if m.Roles.API {
		// One list load teaches the local cache the id range, so a
		// purchase on a made-up id is refused with no backend call
		// (localcache.Reader.Item). Best effort: any later list does too.
		if _, err := m.local.Items(ctx); err != nil {
			m.Log.Warn("could not load the item list at start; unknown ids reach the backends until it loads", "err", err)
		}
	}
	m.Log.Info("seckill started", "config", logged, "api", m.Roles.API, "worker", m.Roles.Worker, "url", m.URL())
	return nil
}

// secrets settles the admin token and the token secret, generating what the
// config left empty, and returns the secret and the config as logged.
func (m *Main) secrets() (string, startupConfig) {
	cfg := m.Config // now with the embedded backends' addresses
	logged := startupConfig{cfg: cfg}
	if m.AdminToken = cfg.AdminToken; m.AdminToken == "" && m.Roles.API {
		m.AdminToken = auth.RandomSecret()
		logged.generatedAdminToken = true
		m.AdminTokenGenerated = true
		// Never the value: logs are shipped and kept. The command prints
		// it once, in its start-up banner (docs/CONFIG.md).
		m.Log.Warn("no --admin-token given; generated one for this run, shown once in the start-up banner")
	}
	secret := cfg.TokenSecret
	if secret == "" {
		secret = auth.RandomSecret()
		logged.generatedTokenSecret = true
		if m.emRedis == nil {
			m.Log.Warn("no --token-secret given; tokens from this instance will not work on others")
		}
	}
	return secret, logged
}

// wireEdge builds what answers before the ledger and what keeps the
// instances in step: the shield, the item caches, the bus, the delay
// queue, the fair-sale service and the coordinator.
func (m *Main) wireEdge(ctx context.Context, secret string) error {
	cfg := m.Config
	m.shield = shield.New(shield.Options{
		ItemRate: cfg.ItemRate, ItemBurst: cfg.ItemBurst, UserRate: cfg.UserRate, UserBurst: cfg.UserBurst,
		MaxInFlight: cfg.MaxInFlight, SoldOutTTL: cfg.SoldOutTTL,
	})
	var dbReader sale.ItemReader = m.gStore
	if m.Hooks.AfterDBRead != nil {
		dbReader = hookedReader{m.gStore, m.Hooks.AfterDBRead}
	}
	m.shared = rediscache.New(m.cacheRdb, dbReader, rediscache.Options{
		Prefix: cfg.RedisPrefix, TTL: cfg.RedisCacheTTL,
		// A load that outlives the second delete could write back data older
		// than the update; bounding loads by the delay closes that gap.
		LoadTimeout: min(3*time.Second, cfg.DoubleDeleteDelay),
	})
	m.local = localcache.New(m.shared, localcache.Options{SizeBytes: cfg.LocalCacheMB << 20, TTL: cfg.LocalCacheTTL})
	m.bus = redisbus.New(m.rdb, EventsChannel(cfg.RedisPrefix), cfg.InstanceID)
	m.delay = redisdelay.New(m.rdb, delayKey(cfg.RedisPrefix), redisdelay.Options{})
	m.Fair = fairness.New(fairness.Deps{
		Items: m.local, Once: redisonce.New(m.rdb, cfg.RedisPrefix), Blocks: m.store,
		// The coordinator is built next, with the service as its blocklist.
		Broadcast: func(u sale.UserID, blocked bool) { m.coord.Blocked(u, blocked) }, Log: m.Log, //nolint:contextcheck // the coordinator detaches its broadcast from every caller on purpose
	}, fairness.Options{
		Secret: secret, TicketTTL: cfg.TicketTTL, TicketLead: cfg.TicketLead, ChallengeTTL: cfg.ChallengeTTL,
		MinDifficulty: cfg.PowMinDifficulty, MaxDifficulty: cfg.PowMaxDifficulty, Window: cfg.PowWindow,
		AdmittedRate: cfg.ItemRate, RefreshEvery: cfg.BlocklistRefresh,
	})
	if err := m.Fair.Reload(ctx); err != nil {
		return err
	}
	m.coord = broadcast.New(broadcast.Deps{
		Bus: busAdapter{m.bus}, Shared: m.shared, Local: m.local, Flags: m.shield, Delay: m.delay, Blocks: m.Fair,
		SecondDelete: cfg.DoubleDeleteDelay, Log: m.Log,
		// The lifecycle is built below, with the coordinator's StockBack;
		// the delay queue starts only after both exist.
		Tasks: func(ctx context.Context, task string) (bool, error) { return m.paymentWindow().RunTask(ctx, task) },
	})
	return nil
}

// wireOrders builds the use cases of an order's life: the lifecycle, the
// reconciler, the catalog, the outbox, the purchase and the waiting rooms.
func (m *Main) wireOrders() {
	cfg := m.Config
	m.Payments = &paysim.Provider{}
	m.Lifecycle = lifecycle.New(lifecycle.Deps{
		Book: m.store, Pending: m.ledger, Ledger: returnLedger{m.ledger}, Payments: m.Payments, Delay: m.delay,
		StockBack: m.coord.StockBack, Log: m.Log,
	})

	m.recon = reconcile.New(m.ledger, m.store, kafkaevents.NewBacklog(cfg.Brokers(), cfg.KafkaGroup, cfg.KafkaTopic), reconcile.Options{
		Every: cfg.ReconcileEvery, Repair: cfg.ReconcileRepair, Grace: cfg.RecoveryGrace,
		OnStockBack: m.coord.StockBack, RecoverMoves: m.ledger.RecoverMoves, Log: m.Log,
	})
	m.Catalog = catalog.New(catalog.Deps{
		Reader: m.local, Store: m.gStore, Ledger: m.gLedger, Book: m.gStore, Caches: m.Overrides.caches(m.coord),
		StockBack: m.coord.StockBack, LedgerMissing: m.recon.Notify, LastReconciliation: m.recon.LastReconciliation, Log: m.Log,
		StockDisplayTTL: cfg.StockDisplayTTL, SecondDelete: cfg.DoubleDeleteDelay,
		Creates: breaker.NewCreates(m.store, m.breakers.db),
	})
	var pub OrderPublisher = m.gPublish
	if wrap := m.Overrides.WrapPublisher; wrap != nil {
		pub = wrap(pub)
	}
	m.dispatch = outbox.NewDispatcher(pub, m.ledger, m.Log, outbox.DispatcherOptions{
		Batch: cfg.PublishBatch, Linger: cfg.PublishLinger,
	})
	m.relay = outbox.NewRelay(m.ledger, m.store, pub, m.Log, outbox.RelayOptions{
		Every: cfg.RelayEvery, GiveUp: cfg.RelayGiveUp,
	}, m.coord.StockBack)
	deps := purchase.Deps{
		Items: m.local, Ledger: m.Overrides.reserver(m.gLedger, m.ledger, m.rdb, cfg.RedisPrefix), Queue: m.dispatch, Shield: m.shield,
		Pending: m.gLedger, Book: m.gStore, Buyers: m.gLedger, OnSoldOut: m.coord.SoldOut, OnLedgerMissing: m.recon.Notify,
		Fair: m.Fair,
	}
	// A lab's naive components (Overrides), each behind the port it swaps.
	if ov := m.Overrides; ov.Queue != nil {
		deps.Queue = ov.Queue(m.publisher)
	}
	if ov := m.Overrides; ov.PurchaseShield != nil {
		deps.Shield = ov.PurchaseShield
	}
	if ov := m.Overrides; ov.PurchaseLedger != nil {
		l := ov.PurchaseLedger(m.ledger)
		deps.Ledger, deps.Pending = l, l
	}
	if cfg.UserLimiter == "redis" {
		m.userRate = redisrate.New(m.rdb, cfg.RedisPrefix, cfg.UserRate, cfg.UserBurst)
		deps.SharedUsers = m.userRate
	}
	m.Purchase = purchase.New(deps)
	m.buildQueue(cfg)
	m.registerMetrics()

}

// startLoops starts the background loops every role runs, and the API's;
// it returns once the bus subscription is live.
func (m *Main) startLoops(ctx context.Context) error { //nolint:contextcheck // the background loops live until Shutdown, not ctx, and must not inherit its values (a startup span)
	bgCtx, cancel := context.WithCancel(context.Background())
	m.bgCancel = cancel
	m.goBG(func() {
		_ = m.bus.Run(bgCtx, func(e redisbus.Event) {
			m.coord.Handle(broadcast.Event{Kind: string(e.Kind), Item: e.Item, Gen: e.Gen, User: e.User, Sender: e.Sender})
		}, m.coord.Resubscribed)
	})
	// Serve nothing before the subscription is live: an invalidation or a
	// sold-out flag broadcast in between would never reach this instance.
	if err := waitFor(ctx, 10*time.Second, m.bus.Subscribed); err != nil {
		return fmt.Errorf("subscribe to the instance bus: %w", err)
	}
	m.goBG(func() { _ = m.delay.Run(bgCtx, m.coord.RunTask) })
	m.goBG(func() { sweepUsers(bgCtx, m.shield) })
	m.goBG(func() { m.Fair.Run(bgCtx) })
	if m.Roles.API {
		if m.Overrides.Queue == nil {
			m.goBG(func() { m.relay.Run(bgCtx) })
		}
		m.goBG(func() { m.recon.Run(bgCtx) })
		m.goBG(func() { m.paymentWindow().Run(bgCtx) })
		dctx, dcancel := context.WithCancel(context.Background())
		m.dispCancel = dcancel
		m.disp.Add(1)
		go func() { defer m.disp.Done(); m.dispatch.Run(dctx) }()
	}
	return nil
}

// startWorker starts the order consumer and its worker.
func (m *Main) startWorker() {
	cfg := m.Config
	m.consumer = kafkaevents.NewConsumer(cfg.Brokers(), cfg.KafkaGroup, cfg.KafkaTopic, cfg.KafkaDLQTopic, kafkaevents.ConsumerOptions{})
	var book OrderBook = m.Overrides.wrapOrderBook(m.store)
	if f := m.Overrides.OrderBook; f != nil {
		book = f(m.store.DB())
	}
	m.worker = worker.New[kafkaevents.Delivery](m.consumer, m.ledger, book, m.Log, worker.Options{
		Batch: cfg.WorkerBatch, Linger: cfg.WorkerLinger, OnReleased: m.coord.StockBack,
		OnBatch:     func(size, _ int) { m.metrics.WorkerBatch.Observe(float64(size)) },
		OnConfirmed: m.paymentWindow().ScheduleExpiry,
	})
	wctx, wcancel := context.WithCancel(context.Background())
	m.workerCancel = wcancel
	m.work.Add(1)
	go func() { defer m.work.Done(); _ = m.worker.Run(wctx) }()
}

func (m *Main) goBG(f func()) {
	m.bg.Add(1)
	go func() { defer m.bg.Done(); f() }()
}

// waitFor polls cond until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func sweepUsers(ctx context.Context, s *shield.Shield) {
	t := time.NewTicker(s.UserIdle())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.SweepUsers(now)
		}
	}
}

// openBackends connects to the configured services, starting embedded
// stand-ins for the ones left empty.
func (m *Main) openBackends(ctx context.Context) error {
	cfg := &m.Config
	topics := []kafkaevents.Topic{{Name: cfg.KafkaTopic, Partitions: cfg.KafkaParts}, {Name: cfg.KafkaDLQTopic, Partitions: 1}}
	if err := m.startEmbedded(topics); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.openRedis(pctx); err != nil {
		return err
	}
	if err := m.openDatabase(pctx); err != nil {
		return err
	}
	if cfg.AutoMigrate {
		if err := m.store.Migrate(pctx); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if err := kafkaevents.EnsureTopics(pctx, cfg.Brokers(), topics...); err != nil {
		return fmt.Errorf("kafka topics at %s: %w", cfg.KafkaBrokers, err)
	}
	m.ledger = redisstock.New(m.rdb, ledgerOptions(*cfg, m.breakers)) //nolint:contextcheck // the ledger batches many callers' calls, so each batch runs under its own deadline
	m.publisher = kafkaevents.NewPublisher(cfg.Brokers(), cfg.KafkaTopic, kafkaevents.PublisherOptions{})
	m.gLedger = ledgerGuard(m.ledger, m.breakers)
	m.gStore = breaker.NewStore(m.store, m.breakers.db)
	m.gPublish = breaker.NewPublisher(m.publisher, m.breakers.kafka)
	return nil
}

// startEmbedded starts the stand-ins for the backends the config left
// empty (Redis, the Kafka broker) and points the config at them.
func (m *Main) startEmbedded(topics []kafkaevents.Topic) error {
	cfg := &m.Config
	if cfg.RedisAddr == "" {
		r, err := embedded.StartRedis("127.0.0.1:0")
		if err != nil {
			return err
		}
		m.emRedis = r
		cfg.RedisAddr = r.Addr()
		m.Log.Info("started embedded Redis (miniredis)", "addr", cfg.RedisAddr)
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
		m.emKafka = k
		cfg.KafkaBrokers = k.Brokers()[0]
		m.Log.Info("started embedded Kafka-protocol broker (kfake)", "brokers", cfg.KafkaBrokers)
	}
	return nil
}

// openRedis connects the ledger's client and the item cache's own, each
// with its breakers and hooks, and checks that Redis answers.
func (m *Main) openRedis(pctx context.Context) error {
	cfg := &m.Config
	// The ledger's guard gives up on a slow call only when Redis itself is
	// slow, not when the wait is this process's own queue (a spike) or
	// go-redis pausing between retries (a slot in migration), so the
	// watcher times each round trip to a server.
	health := breaker.NewRedisHealth()
	m.rdb = NewRedisClient(&redis.UniversalOptions{
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
	if err := m.rdb.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("redis at %s: %w", cfg.RedisAddr, err)
	}
	m.breakers = newBreakers(*cfg, health)
	// The item cache gets a client of its own so that its breaker and
	// deadline (a go-redis hook) apply to its commands only, and so that
	// go-redis honours the deadline in ctx instead of its read timeout.
	m.cacheRdb = NewRedisClient(&redis.UniversalOptions{
		Addrs: cfg.RedisAddrs(), IsClusterMode: cfg.RedisClusterMode(),
		Password: cfg.RedisPassword, DB: cfg.RedisDB,
		ClientName: "seckill-cache-" + cfg.InstanceID,
		PoolSize:   32, MinIdleConns: 2, ContextTimeoutEnabled: true,
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	})
	m.cacheRdb.AddHook(breaker.NewRedisHook(m.breakers.cache))
	if err := traceRedis(m.rdb, m.cacheRdb); err != nil {
		return err
	}
	return nil
}

// openDatabase opens MySQL, or the embedded SQLite file when no DSN is set.
func (m *Main) openDatabase(pctx context.Context) error {
	cfg := &m.Config
	var err error
	if cfg.MySQLDSN != "" {
		m.store, err = mysqlstore.Open(pctx, mysqlstore.MySQL, cfg.MySQLDSN, mysqlstore.Options{PaymentWindow: cfg.PaymentWindow, Tracing: traceSQL()})
	} else {
		path := cfg.SQLitePath
		if path == "" {
			// The embedded Redis keeps nothing, so a database that outlived
			// it would list sales the ledger no longer knows. Start both fresh.
			dir, derr := os.MkdirTemp("", "seckill-*")
			if derr != nil {
				return fmt.Errorf("sqlite directory: %w", derr)
			}
			m.tmpDir = dir
			path = filepath.Join(dir, "seckill.db")
		} else if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return fmt.Errorf("sqlite directory: %w", err)
		}
		if _, statErr := os.Stat(path); statErr == nil && m.emRedis != nil {
			m.Log.Info("a kept SQLite file with the embedded Redis: the reconciler rebuilds the earlier sales' ledgers from it within --reconcile-every", "path", path)
		}
		m.store, err = mysqlstore.Open(pctx, mysqlstore.SQLite, path, mysqlstore.Options{PaymentWindow: cfg.PaymentWindow, Tracing: traceSQL()})
		if err == nil {
			m.Log.Info("using embedded SQLite", "path", path)
		}
	}
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

func (m *Main) serveHTTP(secret string) error {
	cfg := m.Config
	checks := []httpapi.Check{
		{Name: "redis", Ping: func(ctx context.Context) error { return m.rdb.Ping(ctx).Err() }},
		{Name: "database", Ping: m.store.Ping},
		{Name: "kafka", Ping: func(ctx context.Context) error { return kafkaevents.Ping(ctx, cfg.Brokers()) }},
	}
	for _, b := range m.breakers.all() {
		checks = append(checks, httpapi.Check{Name: b.Name(), State: b.State})
	}
	if n := m.breakers.ledgerNodes; n != nil {
		checks = append(checks, httpapi.Check{Name: n.Name(), State: n.State})
	}
	// The dashboard records its history for as long as this server serves,
	// when asked to: it costs a stock read and an order count per live sale
	// each second, watched or not.
	running, stopRecording := context.WithCancel(context.Background())
	recording := running
	if !cfg.DashboardHistory {
		recording = nil
	}
	var h http.Handler
	if !m.Roles.API {
		h = httpapi.Ops(m.metrics, checks, m.Log)
	} else {
		h = httpapi.New(httpapi.Deps{
			Purchase: m.Purchase, Catalog: m.Catalog, Lifecycle: m.Lifecycle, Fair: m.Fair,
			Signer:     auth.NewSigner(secret, cfg.TokenTTL, nil),
			AdminToken: m.AdminToken, Metrics: m.metrics, Log: m.Log, Ready: checks,
			Web: web.Handler(), RequestTimeout: cfg.RequestTimeout, AccessLog: cfg.AccessLog,
			Queue: m.Queue, Running: recording,
		})
	}
	if !cfg.MetricsOnPublicPort {
		h = withoutMetrics(h)
	}
	if cfg.DebugAddr != "" {
		if err := m.serveDebug(cfg.DebugAddr); err != nil {
			stopRecording()
			return err
		}
	}
	ln := m.ln // opened at the start of Start
	m.httpSrv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20, // above httpapi.MaxHeaderBytes, so oversized headers get its JSON 431, not Go's plain text
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
	}
	m.httpSrv.RegisterOnShutdown(stopRecording)
	go func() {
		if err := m.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// withoutMetrics answers /metrics with the API's JSON 404 instead of passing
// it to h, for --metrics-on-public-port=false. It wraps the handler rather
// than changing the router so the public port's routes stay in one place.
func withoutMetrics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"not_found","message":"no such route"}`))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serveDebug starts the --debug-addr listener: net/http/pprof and /metrics,
// on a mux of its own so nothing else (and no pprof on the public port)
// is reachable there.
func (m *Main) serveDebug(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/metrics", m.metrics.Handler())
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on --debug-addr %s: %w", addr, err)
	}
	m.debugLn = ln
	// No write timeout: a CPU profile or trace streams for as long as asked.
	m.debugSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn)}
	go func() {
		if err := m.debugSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Log.Error("debug server stopped", "err", err)
		}
	}()
	return nil
}

// DebugURL is the base URL of the --debug-addr listener, or "" when it is off.
func (m *Main) DebugURL() string {
	if m.debugLn == nil {
		return ""
	}
	return "http://" + m.debugLn.Addr().String()
}

// URL is the base URL the API serves on, or "" if it does not serve.
func (m *Main) URL() string {
	if m.ln == nil {
		return ""
	}
	return "http://" + m.ln.Addr().String()
}

// Run starts the instance, blocks until ctx is done, then shuts down within
// the configured shutdown timeout.
func (m *Main) Run(ctx context.Context) error {
	if err := m.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	m.Log.Info("shutting down", "timeout", m.Config.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.Config.ShutdownTimeout)
	defer cancel()
	return m.Shutdown(sctx)
}

// Shutdown stops the instance in the order that loses nothing: stop taking
// requests and let in-flight purchases finish; flush accepted orders to
// Kafka; let the worker finish its batch and commit its offsets; stop the
// background loops; close the backends. It is safe to call more than once.
func (m *Main) Shutdown(ctx context.Context) error {
	m.closeOnce.Do(func() { m.closeErr = m.shutdown(ctx) })
	return m.closeErr
}

func (m *Main) shutdown(ctx context.Context) error {
	var errs []error
	if m.debugSrv != nil {
		// Closed, not drained: a profile in progress is not worth delaying
		// the shutdown for.
		_ = m.debugSrv.Close()
	}
	if m.httpSrv != nil {
		if err := m.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			_ = m.httpSrv.Close()
		}
	} else if m.ln != nil {
		// Start failed after listening and before serving.
		_ = m.ln.Close()
	}
	if m.dispCancel != nil {
		m.dispCancel()
		waitCtx(ctx, &m.disp)
	}
	if m.publisher != nil {
		if err := m.publisher.Close(); err != nil {
			errs = append(errs, fmt.Errorf("kafka writer: %w", err))
		}
	}
	if m.workerCancel != nil {
		m.workerCancel()
		waitCtx(ctx, &m.work)
	}
	if m.consumer != nil {
		if err := m.consumer.Close(); err != nil {
			errs = append(errs, fmt.Errorf("kafka reader: %w", err))
		}
	}
	if m.bgCancel != nil {
		m.bgCancel()
		waitCtx(ctx, &m.bg)
	}
	if m.ledger != nil {
		m.ledger.Close()
	}
	if m.rdb != nil {
		_ = m.rdb.Close()
	}
	if m.cacheRdb != nil {
		_ = m.cacheRdb.Close()
	}
	if m.store != nil {
		_ = m.store.Close()
	}
	if m.emKafka != nil {
		m.emKafka.Close()
	}
	if m.emRedis != nil {
		m.emRedis.Close()
	}
	if m.tmpDir != "" {
		_ = os.RemoveAll(m.tmpDir)
	}
	if len(errs) == 0 {
		m.Log.Info("seckill stopped cleanly")
	}
	return errors.Join(errs...)
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// startupConfig is the config as the start-up line logs it: Config.LogValue,
// with a secret this instance generated shown as "generated" rather than as
// the empty setting it was generated for. The value itself is never logged.
type startupConfig struct {
	cfg                                       config.Config
	generatedAdminToken, generatedTokenSecret bool
}

// LogValue implements slog.LogValuer.
func (s startupConfig) LogValue() slog.Value {
	attrs := s.cfg.LogValue().Group()
	for i, a := range attrs {
		if (a.Key == "admin_token" && s.generatedAdminToken) || (a.Key == "token_secret" && s.generatedTokenSecret) {
			attrs[i] = slog.String(a.Key, "generated")
		}
	}
	return slog.GroupValue(attrs...)
}

// EventsChannel is the Redis pub/sub channel the instances with this key
// prefix broadcast on (invalidations, sold-out and restocked flags, the
// blocklist); `seckill reconcile --repair` announces its repairs there too.
func EventsChannel(prefix string) string { return prefix + ":events" }

// delayKey and seedLockKey name the Redis keys the wiring itself chooses;
// RedisKeyPatterns lists them with the adapters'.
func delayKey(prefix string) string    { return prefix + ":{delayed}" }
func seedLockKey(prefix string) string { return prefix + ":seed-lock" }

// RedisKeyPatterns lists every Redis key and channel an instance with this
// prefix uses, for one item and one user, built by the same functions the
// adapters and the wiring use. The docs test checks the documented keys
// against it.
func RedisKeyPatterns(prefix string, item sale.ItemID, user sale.UserID) []string {
	var out []string
	out = append(out, redisstock.KeyPatterns(prefix, item)...)
	out = append(out, rediscache.KeyPatterns(prefix, item)...)
	out = append(out, redisdelay.KeyPatterns(delayKey(prefix))...)
	out = append(out, redisrate.KeyPatterns(prefix, user)...)
	out = append(out, redisonce.KeyPatterns(prefix, "challenge:<challenge id>")...)
	out = append(out, redisline.KeyPatterns(prefix, item)...)
	return append(out, EventsChannel(prefix), seedLockKey(prefix))
}

// returnLedger gives the lifecycle the ledger's return step in its own
// terms.
type returnLedger struct{ s *redisstock.Store }

func (l returnLedger) Return(ctx context.Context, ids ...sale.OrderID) ([]lifecycle.Return, error) {
	rs, err := l.s.Return(ctx, ids...)
	out := make([]lifecycle.Return, 0, len(rs))
	for _, r := range rs {
		out = append(out, lifecycle.Return{Item: r.Item, Units: r.Units, Gen: r.Gen})
	}
	return out, err
}

// busAdapter lets the coordinator publish on the Redis bus.
type busAdapter struct{ b *redisbus.Bus }

func (a busAdapter) Publish(ctx context.Context, e broadcast.Event) error {
	return a.b.Publish(ctx, redisbus.Event{Kind: redisbus.Kind(e.Kind), Item: e.Item, Gen: e.Gen, User: e.User})
}

// Shield exposes this instance's shield, for tests that check its flags.
func (m *Main) Shield() *shield.Shield { return m.shield }

// DelayQueue exposes the delayed-task queue, for tests of the second delete.
func (m *Main) DelayQueue() *redisdelay.Queue { return m.delay }

// Bus exposes the broadcast bus, for tests of reconnection.
func (m *Main) Bus() *redisbus.Bus { return m.bus }

// LocalCache exposes this instance's freecache layer, for tests.
func (m *Main) LocalCache() *localcache.Reader { return m.local }

// SharedCache exposes the Redis item-data layer, for tests.
func (m *Main) SharedCache() *rediscache.Reader { return m.shared }

// Ledger exposes the stock ledger, for tests that check its accounts.
func (m *Main) Ledger() *redisstock.Store { return m.ledger }

// Reconciler exposes the ledger reconciler, for tests and the reconcile
// command.
func (m *Main) Reconciler() *reconcile.Service { return m.recon }

// Store exposes the database store, for tests that check its rows.
func (m *Main) Store() *mysqlstore.Store { return m.store }

// EmbeddedKafka is the in-process broker, or nil when real Kafka is used.
func (m *Main) EmbeddedKafka() *embedded.Kafka { return m.emKafka }

// Breakers exposes the circuit breakers, one per backend role, for tests.
func (m *Main) Breakers() []*breaker.Breaker { return m.breakers.all() }

// Redis exposes the Redis client, for tests.
func (m *Main) Redis() redis.UniversalClient { return m.rdb }

// CacheRedis exposes the item cache's own Redis client, for tests that
// count what reaches Redis.
func (m *Main) CacheRedis() redis.UniversalClient { return m.cacheRdb }
