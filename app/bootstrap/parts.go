package bootstrap

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/app/auth"
	"seckill/app/breaker"
	"seckill/app/broadcast"
	"seckill/app/catalog"
	"seckill/app/config"
	"seckill/app/lifecycle"
	"seckill/app/metrics"
	"seckill/app/outbox"
	"seckill/app/purchase"
	"seckill/app/shield"
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
	"seckill/infra/redisstock"
)

// Roles chooses what an instance runs.
type Roles struct {
	API    bool // the HTTP API, the outbox dispatcher and relay
	Worker bool // the order consumer
}

// Parts are one instance's backends and the adapters built on them, made
// by Build and put to work by Start. The exported port fields hold the
// production adapters; a lab, the bench or a test may replace one between
// the two calls, and Start builds the use cases on whatever they hold.
// Nothing in Parts runs until Start.
type Parts struct {
	// Config is the configuration, with the embedded backends' addresses
	// filled in.
	Config config.Config
	Roles  Roles
	Log    *slog.Logger
	// AdminToken is the admin bearer token in force (generated if the
	// config had none); AdminTokenGenerated says so, so the command prints
	// it once in its banner.
	AdminToken          string
	AdminTokenGenerated bool

	// Lifecycle is the order lifecycle: pay, cancel and the payment window.
	Lifecycle *lifecycle.Service
	// Payments is the simulated payment provider the lifecycle charges.
	Payments *paysim.Provider

	// PurchaseLedger is what purchases reserve from and look orders up in:
	// the Redis ledger behind its circuit breaker and call deadline.
	PurchaseLedger PurchaseLedger
	// PurchaseShield answers before the ledger: in-flight bound, hot-key
	// and user limiters, sold-out flags.
	PurchaseShield purchase.Shield
	// OrderQueue takes accepted orders from purchases: the outbox
	// dispatcher, publishing to Kafka behind its breaker.
	OrderQueue OrderQueue
	// Relay publishes again what the dispatcher could not: the outbox relay.
	Relay Loop
	// OrderBook is the worker's database side: the store's idempotent
	// Confirm and Fail.
	OrderBook WorkerBook
	// Caches runs item invalidations (the double delete) on every
	// instance: the broadcast notifier.
	Caches catalog.Invalidator
	// PaymentWindow enforces the payment window: the lifecycle.
	PaymentWindow PaymentWindow

	ln       net.Listener
	secret   string // the token secret (generated if the config had none)
	logged   startupConfig
	metrics  *metrics.Metrics
	emRedis  *embedded.Redis
	emKafka  *embedded.Kafka
	tmpDir   string
	rdb      redis.UniversalClient // a *redis.Client, or a *redis.ClusterClient on Redis Cluster
	cacheRdb redis.UniversalClient // the item cache's own client, guarded by a hook
	store    *mysqlstore.Store
	ledger   *redisstock.Store
	kafka    *kafkaevents.Publisher
	breakers backendBreakers
	gLedger  *breaker.Ledger
	gStore   *breaker.Store
	gPublish *breaker.Publisher
	shield   *shield.Shield
	shared   *rediscache.Reader
	local    *localcache.Reader
	bus      *redisbus.Bus
	delay    *redisdelay.Queue
	line     *redisline.Store // the waiting rooms' lines, beside the ledger (same prefix, same slot per item)
	notifier *broadcast.Notifier
	dispatch *outbox.Dispatcher
	relay    *outbox.Relay
}

// OrderPublisher sends accepted orders to the order queue (Kafka).
type OrderPublisher interface {
	Publish(ctx context.Context, orders ...sale.Order) error
}

// OrderQueue takes an accepted order from the purchase, without waiting,
// and sends what it took until Run's context ends.
type OrderQueue interface {
	Enqueue(o sale.Order)
	Run(ctx context.Context)
}

// Loop is a background loop that runs until its context ends.
type Loop interface {
	Run(ctx context.Context)
}

// WorkerBook is the part of sale.OrderBook the worker uses: it decides
// queued orders.
type WorkerBook interface {
	Confirm(ctx context.Context, orders []sale.Order) (inserted int, fates map[sale.OrderID]sale.Fate, err error)
	Fail(ctx context.Context, orders []sale.Order, reason string) (map[sale.OrderID]sale.Fate, error)
}

// PaymentWindow enforces the payment window of confirmed orders;
// *lifecycle.Service implements it.
type PaymentWindow interface {
	ScheduleExpiry(ctx context.Context, deadlines map[sale.OrderID]time.Time)
	RunTask(ctx context.Context, task string) (ok bool, err error)
	Run(ctx context.Context)
}

// PurchaseLedger is the stock ledger as the purchase path uses it.
type PurchaseLedger interface {
	Reserve(ctx context.Context, o sale.Order) (sale.Reservation, error)
	Lookup(ctx context.Context, id sale.OrderID) (sale.Order, error)
}

// Build listens on the HTTP address, connects to (or starts) every backend,
// applies migrations and builds the adapters and the lifecycle. A busy
// --http-addr is reported before anything starts. On error everything it
// opened is closed again; otherwise Start, or Close, owns the parts.
func Build(ctx context.Context, cfg config.Config, roles Roles, log *slog.Logger) (_ *Parts, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	// Listen first: a second instance on a busy port should say so at once,
	// not after starting its backends and seeding. Serving starts last.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another seckill running? set --http-addr)", cfg.HTTPAddr, err)
	}
	p := &Parts{Config: cfg, Roles: roles, Log: log, ln: ln, metrics: metrics.New()}
	defer func() { // p, not the named result, which a failed return sets to nil
		if err != nil {
			p.Close()
		}
	}()
	if err := p.openBackends(ctx); err != nil {
		return nil, err
	}
	p.secrets()
	p.buildEdge()
	p.buildOrders()
	return p, nil
}

// secrets settles the admin token and the token secret, generating what the
// config left empty, and keeps the config as the start-up line logs it.
func (p *Parts) secrets() {
	cfg := p.Config // now with the embedded backends' addresses
	p.logged = startupConfig{cfg: cfg}
	if p.AdminToken = cfg.AdminToken; p.AdminToken == "" && p.Roles.API {
		p.AdminToken = auth.RandomSecret()
		p.logged.generatedAdminToken = true
		p.AdminTokenGenerated = true
		// Never the value: logs are shipped and kept. The command prints
		// it once, in its start-up banner (docs/CONFIG.md).
		p.Log.Warn("no --admin-token given; generated one for this run, shown once in the start-up banner")
	}
	p.secret = cfg.TokenSecret
	if p.secret == "" {
		p.secret = auth.RandomSecret()
		p.logged.generatedTokenSecret = true
		if p.emRedis == nil {
			p.Log.Warn("no --token-secret given; tokens from this instance will not work on others")
		}
	}
}

// buildEdge builds what answers before the ledger and what keeps the
// instances in step: the shield, the item caches, the bus, the delay
// queue and the notifier.
func (p *Parts) buildEdge() {
	cfg := p.Config
	p.shield = shield.New(shield.Options{
		ItemRate: cfg.ItemRate, ItemBurst: cfg.ItemBurst, UserRate: cfg.UserRate, UserBurst: cfg.UserBurst,
		MaxInFlight: cfg.MaxInFlight, SoldOutTTL: cfg.SoldOutTTL,
	})
	p.shared = rediscache.New(p.cacheRdb, p.gStore, rediscache.Options{
		Prefix: cfg.RedisPrefix, TTL: cfg.RedisCacheTTL,
		// A load that outlives the second delete could write back data older
		// than the update; bounding loads by the delay closes that gap.
		LoadTimeout: min(3*time.Second, cfg.DoubleDeleteDelay),
	})
	p.local = localcache.New(p.shared, localcache.Options{SizeBytes: cfg.LocalCacheMB << 20, TTL: cfg.LocalCacheTTL})
	p.bus = redisbus.New(p.rdb, EventsChannel(cfg.RedisPrefix), cfg.InstanceID)
	p.delay = redisdelay.New(p.rdb, delayKey(cfg.RedisPrefix), redisdelay.Options{})
	p.line = redisline.New(p.rdb, cfg.RedisPrefix)
	p.notifier = broadcast.NewNotifier(broadcast.NotifierDeps{
		Bus: busAdapter{p.bus}, Shared: p.shared, Local: p.local, Flags: p.shield, Delay: p.delay,
		SecondDelete: cfg.DoubleDeleteDelay, Log: p.Log,
	})
	p.PurchaseShield = p.shield
	p.Caches = p.notifier
	p.PurchaseLedger = p.gLedger
}

// buildOrders builds the order's way after the ledger: the outbox, the
// worker's order book and the lifecycle.
func (p *Parts) buildOrders() {
	p.Payments = &paysim.Provider{}
	p.Lifecycle = lifecycle.New(lifecycle.Deps{
		Book: p.store, Pending: p.ledger, Ledger: returnLedger{p.ledger}, Payments: p.Payments, Delay: p.delay,
		Notify: p.notifier, Log: p.Log,
	})
	p.PaymentWindow = p.Lifecycle
	p.dispatch, p.relay = p.Outbox(p.gPublish)
	p.OrderQueue, p.Relay = p.dispatch, p.relay
	p.OrderBook = p.store
}

// Outbox builds the outbox's dispatcher and relay over pub; Build gives
// them the Kafka publisher behind its breaker, and a lab that faults the
// delivery itself builds them over its own.
func (p *Parts) Outbox(pub OrderPublisher) (*outbox.Dispatcher, *outbox.Relay) {
	cfg := p.Config
	d := outbox.NewDispatcher(outbox.DispatcherDeps{Publisher: pub, Ledger: p.ledger, Log: p.Log},
		outbox.DispatcherOptions{Batch: cfg.PublishBatch, Linger: cfg.PublishLinger})
	r := outbox.NewRelay(outbox.RelayDeps{Ledger: p.ledger, Book: p.store, Publisher: pub, Notify: p.notifier, Log: p.Log},
		outbox.RelayOptions{Every: cfg.RelayEvery, GiveUp: cfg.RelayGiveUp})
	return d, r
}

// Close closes what Build opened, for parts that were never started (a
// started instance closes them in Main.Shutdown).
func (p *Parts) Close() {
	if p.ln != nil {
		_ = p.ln.Close()
	}
	if p.kafka != nil {
		_ = p.kafka.Close()
	}
	p.closeBackends()
}

// closeBackends closes the backends in the order that loses nothing; the
// loops that use them have stopped.
func (p *Parts) closeBackends() {
	if p.ledger != nil {
		p.ledger.Close()
	}
	if p.rdb != nil {
		_ = p.rdb.Close()
	}
	if p.cacheRdb != nil {
		_ = p.cacheRdb.Close()
	}
	if p.store != nil {
		_ = p.store.Close()
	}
	if p.emKafka != nil {
		p.emKafka.Close()
	}
	if p.emRedis != nil {
		p.emRedis.Close()
	}
	if p.tmpDir != "" {
		_ = os.RemoveAll(p.tmpDir)
	}
}

// Store is the database store, for tests and labs that check its rows.
func (p *Parts) Store() *mysqlstore.Store { return p.store }

// Ledger is the bare stock ledger (no breaker), for tests and labs that
// check its accounts or build on it.
func (p *Parts) Ledger() *redisstock.Store { return p.ledger }

// Redis is the ledger's Redis client.
func (p *Parts) Redis() redis.UniversalClient { return p.rdb }

// CacheRedis is the item cache's own Redis client, for tests that count
// what reaches Redis.
func (p *Parts) CacheRedis() redis.UniversalClient { return p.cacheRdb }

// Kafka is the bare Kafka publisher (no breaker).
func (p *Parts) Kafka() *kafkaevents.Publisher { return p.kafka }

// Publisher is the Kafka publisher behind its breaker, as the outbox uses it.
func (p *Parts) Publisher() OrderPublisher { return p.gPublish }

// EmbeddedKafka is the in-process broker, or nil when real Kafka is used.
func (p *Parts) EmbeddedKafka() *embedded.Kafka { return p.emKafka }

// Shield is this instance's shield, whose sold-out flags the notifier and
// the listener keep, whatever PurchaseShield holds.
func (p *Parts) Shield() *shield.Shield { return p.shield }

// DelayQueue is the durable delayed-task queue.
func (p *Parts) DelayQueue() *redisdelay.Queue { return p.delay }

// LocalCache is this instance's freecache layer of item data.
func (p *Parts) LocalCache() *localcache.Reader { return p.local }

// Notifier tells the other instances what this one learned.
func (p *Parts) Notifier() *broadcast.Notifier { return p.notifier }
