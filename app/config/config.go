// Package config is seckill's one configuration struct. It is filled once in
// main from flags and SECKILL_* environment variables (flag "redis-addr" is
// env SECKILL_REDIS_ADDR; a flag given on the command line wins) and passed
// down as plain values. Adapters never read the environment.
package config

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// DefaultGCPercent is the GOGC the binaries run with unless GOGC is set. A
// purchase allocates little that survives, so a larger heap between
// collections trades memory this service has plenty of for GC CPU; set GOGC
// (and GOMEMLIMIT) to override. docs/BENCHMARKS.md has the measurement.
const DefaultGCPercent = 400

// DefaultMemoryLimit is the soft memory limit (GOMEMLIMIT) the binaries run
// with unless GOMEMLIMIT is set. GOGC=400 alone lets the heap grow to five
// times the live data between collections (about 400 MB during a spike on
// a 60-70 MB live heap, mostly the 32 MB item cache); under this limit the
// collector runs earlier instead, so the process stays near 115 MB while
// the live heap is small, with no throughput loss the benchmark could see.
// The limit is soft: a live heap above it is still served, with more
// collector work, never refused. docs/BENCHMARKS.md has the measurement.
const DefaultMemoryLimit = 128 << 20

// ApplyRuntimeDefaults sets DefaultGCPercent and DefaultMemoryLimit unless
// GOGC or GOMEMLIMIT, respectively, is set in the environment (the runtime
// has then applied it already).
func ApplyRuntimeDefaults() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
}

// EnvPrefix is the prefix of every environment variable the binary reads.
const EnvPrefix = "SECKILL"

// Config is everything the binary can be told. The zero value is not useful;
// Register sets the defaults.
type Config struct {
	// HTTP
	HTTPAddr        string
	RequestTimeout  time.Duration
	ShutdownTimeout time.Duration
	InstanceID      string
	LogLevel        string
	LogFormat       string
	AccessLog       bool

	// Internal endpoints
	DebugAddr           string
	MetricsOnPublicPort bool
	// DashboardHistory records the dashboard once a second, watched or
	// not, so a page opened late draws the last two minutes.
	DashboardHistory bool

	// Backends. An empty MySQL DSN, Redis address or Kafka broker list
	// starts the embedded stand-in for that backend instead.
	MySQLDSN      string
	SQLitePath    string
	RedisAddr     string // one host:port, or a comma-separated list of cluster nodes
	RedisCluster  bool   // a single RedisAddr is a cluster node (a list always is)
	RedisPassword string
	RedisDB       int
	RedisPrefix   string
	KafkaBrokers  string
	KafkaTopic    string
	KafkaDLQTopic string
	KafkaGroup    string
	KafkaParts    int
	AutoMigrate   bool
	SeedDemo      bool

	// Per-backend call deadlines and circuit breakers (app/breaker).
	RedisCallTimeout time.Duration
	MySQLCallTimeout time.Duration
	KafkaCallTimeout time.Duration
	BreakerOpenFor   time.Duration

	// Identity
	AdminToken  string
	TokenSecret string
	TokenTTL    time.Duration

	// Purchase shield
	ItemRate    float64
	ItemBurst   int
	UserRate    float64
	UserBurst   int
	UserLimiter string
	MaxInFlight int
	SoldOutTTL  time.Duration

	// Fair sales (app/fairness, docs/FAIRNESS.md)
	TicketTTL    time.Duration
	TicketLead   time.Duration
	ChallengeTTL time.Duration
	// The waiting rooms of queue items (docs/QUEUE.md)
	QueueAdmissionTTL time.Duration
	QueueRefresh      time.Duration
	PowMinDifficulty  int
	PowMaxDifficulty  int
	PowWindow         time.Duration
	BlocklistRefresh  time.Duration

	// Read path
	LocalCacheMB      int
	LocalCacheTTL     time.Duration
	RedisCacheTTL     time.Duration
	DoubleDeleteDelay time.Duration
	StockDisplayTTL   time.Duration

	// Order pipeline
	PublishBatch   int
	PublishLinger  time.Duration
	WorkerBatch    int
	WorkerLinger   time.Duration
	RelayEvery     time.Duration
	RelayAfter     time.Duration
	RepublishAfter time.Duration
	RelayGiveUp    time.Duration

	// Order lifecycle
	PaymentWindow time.Duration

	// Recovery
	ReconcileEvery  time.Duration
	ReconcileRepair bool
	RecoveryGrace   time.Duration

	// Dev accepts the admin tokens and token secrets published in this
	// repository (PublishedSecrets), for a local demo only.
	Dev bool

	// Tracing (app/tracing)
	Tracing       string
	TraceSample   float64
	TraceEndpoint string
}

// PublishedSecrets are the admin tokens and token secrets that appear in this
// repository (docker-compose.yml's placeholders, k6/run.sh's defaults): anyone
// can read them, so an instance started with one is open to anyone who
// reaches it. Validate refuses them unless Dev is set.
var PublishedSecrets = []string{
	"change-me-admin-token-0001",
	"change-me-token-secret-0001",
	"k6-admin-token-0000000001",
	"k6-token-secret-0000000001",
}

func published(s string) bool {
	for _, p := range PublishedSecrets {
		if s == p {
			return true
		}
	}
	return false
}

// Register declares every setting on fs with its default and help text. The
// names are the single source for flags, env vars and the docs.
func (c *Config) Register(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address the HTTP API listens on")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 5*time.Second, "deadline for one API request's work")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long graceful shutdown may take before connections are cut")
	fs.StringVar(&c.InstanceID, "instance-id", host+"-"+fmt.Sprint(os.Getpid()), "this instance's name in logs and invalidation messages")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.BoolVar(&c.AccessLog, "access-log", true, "log one structured line per API request (method, route, status, duration, request id, order id); --access-log=false silences them")
	fs.DurationVar(&c.RedisCallTimeout, "redis-call-timeout", 150*time.Millisecond, "deadline for one Redis call on a request's path (reserve, stock read, item cache); past it the call counts against the Redis circuit breaker")
	fs.DurationVar(&c.MySQLCallTimeout, "mysql-call-timeout", time.Second, "deadline for one database call on a request's path (item read, admin write, order status)")
	fs.DurationVar(&c.KafkaCallTimeout, "kafka-call-timeout", 2*time.Second, "deadline for one Kafka produce call; an order it cuts short stays in the outbox for the relay")
	fs.DurationVar(&c.BreakerOpenFor, "breaker-open-for", time.Second, "how long an opened circuit breaker refuses calls before it lets probes through")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "address of a separate listener for net/http/pprof (/debug/pprof/) and /metrics; empty turns it off. Keep it off the public network")
	fs.BoolVar(&c.DashboardHistory, "dashboard-history", false, "sample the dashboard once a second even when nobody watches, so a page opened late draws the last two minutes (costs a stock read and an order count per live sale a second; the labs turn it on)")
	fs.BoolVar(&c.MetricsOnPublicPort, "metrics-on-public-port", true, "also serve /metrics on --http-addr (the demo and compose scrape it there); production sets false with --debug-addr")

	fs.StringVar(&c.MySQLDSN, "mysql-dsn", "", "MySQL DSN, e.g. root:pw@tcp(mysql:3306)/seckill; empty uses embedded SQLite")
	fs.StringVar(&c.SQLitePath, "sqlite-path", "", "SQLite file used when --mysql-dsn is empty; empty means a fresh temporary file per run, which matches the embedded Redis (it keeps nothing either)")
	fs.StringVar(&c.RedisAddr, "redis-addr", "", "Redis host:port; a comma-separated list of nodes (seed addresses) selects Redis Cluster; empty starts an embedded miniredis")
	fs.BoolVar(&c.RedisCluster, "redis-cluster", false, "treat a single --redis-addr as a Redis Cluster node (e.g. a cluster's configuration endpoint); a comma-separated list always is a cluster")
	fs.StringVar(&c.RedisPassword, "redis-password", "", "Redis password (secret)")
	fs.IntVar(&c.RedisDB, "redis-db", 0, "Redis database number")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "seckill", "namespace of every Redis key and channel; deployments sharing a Redis need different ones")
	fs.StringVar(&c.KafkaBrokers, "kafka-brokers", "", "comma-separated Kafka brokers; empty starts an embedded Kafka-protocol broker")
	fs.StringVar(&c.KafkaTopic, "kafka-topic", "seckill.orders", "topic accepted orders travel on, keyed by item id")
	fs.StringVar(&c.KafkaDLQTopic, "kafka-dlq-topic", "seckill.orders.dlq", "topic for orders that can never be confirmed")
	fs.StringVar(&c.KafkaGroup, "kafka-group", "seckill-workers", "consumer group of the order workers")
	fs.IntVar(&c.KafkaParts, "kafka-partitions", 6, "partitions created for the orders topic when it is missing")
	fs.BoolVar(&c.AutoMigrate, "auto-migrate", true, "apply database migrations on start")
	fs.BoolVar(&c.SeedDemo, "seed-demo", false, "create two demo sales on start if the catalog is empty; when not given it is true with the embedded database (no --mysql-dsn) and false otherwise")

	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token for /api/v1/admin (secret); empty generates one and prints it once, in the start-up banner on stderr")
	fs.StringVar(&c.TokenSecret, "token-secret", "", "HMAC key for user tokens (secret); all API instances must share it; empty generates one")
	fs.DurationVar(&c.TokenTTL, "token-ttl", 24*time.Hour, "lifetime of a user token")
	fs.BoolVar(&c.Dev, "dev", false, "development mode: accept the admin token and token secret published in the repository (the compose placeholders); never in production")

	fs.Float64Var(&c.ItemRate, "item-rate", 20000, "purchase attempts per second per item per instance sent on to Redis (hot-key shield); an item's purchase_rate overrides it")
	fs.IntVar(&c.ItemBurst, "item-burst", 2000, "burst allowed above --item-rate")
	fs.Float64Var(&c.UserRate, "user-rate", 5, "purchase attempts per second per user")
	fs.IntVar(&c.UserBurst, "user-burst", 5, "burst allowed above --user-rate")
	fs.StringVar(&c.UserLimiter, "user-limiter", "local", "where the per-user limit is kept: local (per instance) or redis (shared, GCRA)")
	fs.IntVar(&c.MaxInFlight, "max-inflight", 4096, "purchases in progress per instance before new ones get 503 at once")
	fs.DurationVar(&c.SoldOutTTL, "soldout-ttl", 2*time.Second, "how long a local sold-out flag is trusted before Redis is asked again")

	fs.DurationVar(&c.TicketTTL, "ticket-ttl", 30*time.Second, "lifetime of a purchase ticket for a protected item (at most 60s)")
	fs.DurationVar(&c.TicketLead, "ticket-lead", 30*time.Second, "how long before a protected sale opens its tickets and challenges are issued")
	fs.DurationVar(&c.QueueAdmissionTTL, "queue-admission-ttl", 2*time.Minute, "how long an admission from a queue item's waiting room lasts; unused, it lapses and its unit's chance goes to the next in line")
	fs.DurationVar(&c.QueueRefresh, "queue-refresh", 250*time.Millisecond, "how old an instance's copy of a waiting room may be before a poll or a join reads it from Redis again (and so advances the admissions); waiters see a sell-out within about this")
	fs.DurationVar(&c.ChallengeTTL, "challenge-ttl", 60*time.Second, "how long a client has to solve a proof-of-work challenge")
	fs.IntVar(&c.PowMinDifficulty, "pow-min-difficulty", 16, "base proof-of-work difficulty, in leading zero bits of SHA-256 (2^n hashes expected): asked while an item's pressure is at most its purchase rate")
	fs.IntVar(&c.PowMaxDifficulty, "pow-max-difficulty", 20, "highest proof-of-work difficulty; one bit is added per doubling of an item's pressure beyond its purchase rate")
	fs.DurationVar(&c.PowWindow, "pow-window", 5*time.Second, "sliding window over which an item's purchase pressure (challenges and purchases per second on this instance) is measured")
	fs.DurationVar(&c.BlocklistRefresh, "blocklist-refresh", 30*time.Second, "how often each instance reloads the blocklist from the database (changes also arrive by broadcast at once)")

	fs.IntVar(&c.LocalCacheMB, "local-cache-mb", 32, "size of the in-process item cache (freecache)")
	fs.DurationVar(&c.LocalCacheTTL, "local-cache-ttl", 5*time.Second, "lifetime of a local cache entry: the backstop if an invalidation is lost")
	fs.DurationVar(&c.RedisCacheTTL, "redis-cache-ttl", 10*time.Minute, "lifetime of an item-data entry in Redis")
	fs.DurationVar(&c.DoubleDeleteDelay, "double-delete-delay", 500*time.Millisecond, "delay before the second delete of a delayed double delete")
	fs.DurationVar(&c.StockDisplayTTL, "stock-display-ttl", 200*time.Millisecond, "how stale the stock figure on item pages may be (purchases always use live stock)")

	fs.IntVar(&c.PublishBatch, "publish-batch", 256, "accepted orders sent to Kafka in one produce call")
	fs.DurationVar(&c.PublishLinger, "publish-linger", 50*time.Millisecond, "how long the publisher waits to fill a batch (the 202 never waits for it: the order is in the ledger's outbox first)")
	fs.IntVar(&c.WorkerBatch, "worker-batch", 500, "orders the worker confirms in one database transaction")
	fs.DurationVar(&c.WorkerLinger, "worker-linger", 200*time.Millisecond, "how long the worker waits to fill a batch (a full batch goes at once; only a trickle waits)")
	fs.DurationVar(&c.RelayEvery, "relay-every", time.Second, "how often the outbox relay looks for unpublished orders")
	fs.DurationVar(&c.RelayAfter, "relay-after", 3*time.Second, "age (Redis clock) at which the relay publishes an accepted order the dispatcher did not")
	fs.DurationVar(&c.RepublishAfter, "republish-after", 30*time.Second, "how long after a publish a still-pending order is published again (the broker may have lost it); older pending orders are overdue")
	fs.DurationVar(&c.RelayGiveUp, "relay-give-up", 10*time.Minute, "age (Redis clock) at which the database decides a still-pending order: settled if confirmed, else failed and its unit given back")

	fs.DurationVar(&c.PaymentWindow, "payment-window", 15*time.Minute, "how long a confirmed order holds its unit awaiting payment (pay_by = confirmation + this); unpaid, it expires and the unit goes back on sale")

	fs.DurationVar(&c.ReconcileEvery, "reconcile-every", 10*time.Second, "how often every item's Redis ledger is compared with the database")
	fs.BoolVar(&c.ReconcileRepair, "reconcile-repair", true, "let the periodic reconciliation repair drift it has seen twice in a row (a lost ledger is always rebuilt)")
	fs.DurationVar(&c.RecoveryGrace, "recovery-grace", 2*time.Second, "wait after a lost ledger is noticed before the rebuild marks the order queue, so orders accepted just before the loss reach it")

	fs.StringVar(&c.Tracing, "tracing", "off", "OpenTelemetry tracing: off, stdout (spans as JSON on stdout) or otlp (OTLP/HTTP to --trace-endpoint)")
	fs.Float64Var(&c.TraceSample, "trace-sample", 0.01, "share of new traces recorded when --tracing is on, 0 to 1; the default, 1 %, costs nothing make bench can see (1 records every purchase: a fifth of the sold-out rate); a request arriving with a sampled traceparent is always recorded")
	fs.StringVar(&c.TraceEndpoint, "trace-endpoint", "", "OTLP/HTTP collector host:port for --tracing=otlp (Jaeger: 127.0.0.1:4318); empty uses OTEL_EXPORTER_OTLP_ENDPOINT or localhost:4318")
}

// RegisterOnly declares just the named settings on fs, with the same
// defaults and help text as Register, for a subcommand that reads only
// those. Every other field still gets its default. It panics on a name
// Register does not declare, which is a programming error.
func (c *Config) RegisterOnly(fs *flag.FlagSet, names ...string) {
	all := flag.NewFlagSet("all", flag.ContinueOnError)
	c.Register(all)
	for _, name := range names {
		f := all.Lookup(name)
		if f == nil {
			panic("config: no setting --" + name)
		}
		fs.Var(f.Value, f.Name, f.Usage)
	}
}

// Embedded reports whether any backend runs as an in-process stand-in.
func (c Config) Embedded() bool {
	return c.MySQLDSN == "" || c.RedisAddr == "" || c.KafkaBrokers == ""
}

// Brokers splits KafkaBrokers into addresses.
func (c Config) Brokers() []string {
	var out []string
	for _, b := range strings.Split(c.KafkaBrokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// RedisAddrs splits RedisAddr into addresses.
func (c Config) RedisAddrs() []string {
	var out []string
	for _, a := range strings.Split(c.RedisAddr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// RedisClusterMode reports whether the Redis client is a cluster client,
// following go-redis's UniversalClient rule: two or more addresses, or
// --redis-cluster.
func (c Config) RedisClusterMode() bool {
	return c.RedisCluster || len(c.RedisAddrs()) > 1
}

// Validate returns an error naming the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.LogLevel != "debug" && c.LogLevel != "info" && c.LogLevel != "warn" && c.LogLevel != "error":
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	case c.Tracing != "off" && c.Tracing != "stdout" && c.Tracing != "otlp":
		return fmt.Errorf("--tracing %q: want off, stdout or otlp", c.Tracing)
	case c.TraceSample < 0 || c.TraceSample > 1:
		return fmt.Errorf("--trace-sample %v: want 0 to 1", c.TraceSample)
	case c.RedisCluster && len(c.RedisAddrs()) == 0:
		return fmt.Errorf("--redis-cluster needs --redis-addr: the embedded Redis is a single node")
	case c.RedisClusterMode() && c.RedisDB != 0:
		// Redis Cluster has database 0 only.
		return fmt.Errorf("--redis-db %d: Redis Cluster (--redis-addr %q) has database 0 only", c.RedisDB, c.RedisAddr)
	case c.UserLimiter != "local" && c.UserLimiter != "redis":
		return fmt.Errorf("--user-limiter %q: want local or redis", c.UserLimiter)
	case c.ItemRate <= 0 || c.UserRate <= 0:
		return fmt.Errorf("--item-rate and --user-rate must be positive")
	case c.ItemBurst < 1 || c.UserBurst < 1:
		return fmt.Errorf("--item-burst and --user-burst must be at least 1")
	case c.MaxInFlight < 1:
		return fmt.Errorf("--max-inflight must be at least 1")
	case c.RedisCallTimeout <= 0 || c.MySQLCallTimeout <= 0 || c.KafkaCallTimeout <= 0 || c.BreakerOpenFor <= 0:
		return fmt.Errorf("--redis-call-timeout, --mysql-call-timeout, --kafka-call-timeout and --breaker-open-for must be positive")
	case c.RedisCallTimeout >= c.RequestTimeout || c.MySQLCallTimeout >= c.RequestTimeout:
		// A backend call that may take the whole request deadline leaves
		// nothing for the answer, and a slow backend holds every request.
		return fmt.Errorf("--redis-call-timeout (%s) and --mysql-call-timeout (%s) must be shorter than --request-timeout (%s)", c.RedisCallTimeout, c.MySQLCallTimeout, c.RequestTimeout)
	case c.WorkerBatch < 1 || c.PublishBatch < 1:
		return fmt.Errorf("--worker-batch and --publish-batch must be at least 1")
	case c.KafkaParts < 1:
		return fmt.Errorf("--kafka-partitions must be at least 1")
	case c.RelayGiveUp <= c.RelayAfter || c.RelayGiveUp <= c.RepublishAfter:
		return fmt.Errorf("--relay-give-up (%s) must exceed --relay-after (%s) and --republish-after (%s)", c.RelayGiveUp, c.RelayAfter, c.RepublishAfter)
	case c.RelayAfter <= 0 || c.RepublishAfter <= 0 || c.RelayEvery <= 0:
		return fmt.Errorf("--relay-every, --relay-after and --republish-after must be positive")
	case c.ReconcileEvery <= 0 || c.RecoveryGrace < 0:
		return fmt.Errorf("--reconcile-every must be positive and --recovery-grace not negative")
	case c.PaymentWindow < time.Second:
		return fmt.Errorf("--payment-window must be at least 1s")
	case c.QueueAdmissionTTL < time.Second || c.QueueRefresh < 10*time.Millisecond || c.QueueRefresh > 2*time.Second:
		return fmt.Errorf("--queue-admission-ttl (%s) must be at least 1s and --queue-refresh (%s) between 10ms and 2s", c.QueueAdmissionTTL, c.QueueRefresh)
	case c.TicketTTL < time.Second || c.TicketTTL > time.Minute:
		return fmt.Errorf("--ticket-ttl (%s) must be between 1s and 1m", c.TicketTTL)
	case c.TicketLead < 0 || c.ChallengeTTL < time.Second || c.PowWindow < time.Second || c.BlocklistRefresh < time.Second:
		return fmt.Errorf("--ticket-lead must not be negative; --challenge-ttl, --pow-window and --blocklist-refresh must be at least 1s")
	case c.PowMinDifficulty < 1 || c.PowMaxDifficulty < c.PowMinDifficulty || c.PowMaxDifficulty > 32:
		return fmt.Errorf("--pow-min-difficulty (%d) and --pow-max-difficulty (%d) must satisfy 1 <= min <= max <= 32", c.PowMinDifficulty, c.PowMaxDifficulty)
	case c.TokenTTL < time.Minute:
		return fmt.Errorf("--token-ttl must be at least 1m")
	case c.AdminToken != "" && len(c.AdminToken) < 16:
		return fmt.Errorf("--admin-token must be at least 16 characters")
	case c.TokenSecret != "" && len(c.TokenSecret) < 16:
		return fmt.Errorf("--token-secret must be at least 16 characters")
	case !c.Dev && published(c.AdminToken):
		return fmt.Errorf("SECKILL_ADMIN_TOKEN (--admin-token) is a value published in the seckill repository, so anyone may know it: set a secret of your own, leave it empty to generate one, or pass --dev (SECKILL_DEV=1) for a local demo")
	case !c.Dev && published(c.TokenSecret):
		return fmt.Errorf("SECKILL_TOKEN_SECRET (--token-secret) is a value published in the seckill repository, so anyone could sign user tokens: set a secret of your own, leave it empty to generate one, or pass --dev (SECKILL_DEV=1) for a local demo")
	}
	return nil
}

// LogValue prints the config with secrets masked, so logging it at start-up
// never leaks a token or password.
func (c Config) LogValue() slog.Value {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	return slog.GroupValue(
		slog.String("http_addr", c.HTTPAddr),
		slog.String("debug_addr", c.DebugAddr),
		slog.String("instance_id", c.InstanceID),
		slog.String("mysql", maskDSN(c.MySQLDSN, c.SQLitePath)),
		slog.String("redis", orEmbedded(c.RedisAddr)),
		slog.Bool("redis_cluster", c.RedisClusterMode()),
		slog.String("redis_password", mask(c.RedisPassword)),
		slog.String("kafka", orEmbedded(c.KafkaBrokers)),
		slog.String("kafka_topic", c.KafkaTopic),
		slog.String("admin_token", mask(c.AdminToken)),
		slog.String("token_secret", mask(c.TokenSecret)),
		slog.Float64("item_rate", c.ItemRate),
		slog.Float64("user_rate", c.UserRate),
		slog.Int("max_inflight", c.MaxInFlight),
		slog.Int("worker_batch", c.WorkerBatch),
		slog.Bool("dev", c.Dev),
	)
}

func orEmbedded(s string) string {
	if s == "" {
		return "embedded"
	}
	return s
}

// maskDSN hides the password in user:password@tcp(...)/db.
func maskDSN(dsn, sqlite string) string {
	if dsn == "" {
		if sqlite == "" {
			return "embedded sqlite (temporary)"
		}
		return "embedded sqlite " + sqlite
	}
	at := strings.LastIndex(dsn, "@")
	colon := strings.Index(dsn, ":")
	if at > 0 && colon >= 0 && colon < at {
		return dsn[:colon] + ":***" + dsn[at:]
	}
	return dsn
}

// EnvName is the environment variable that sets a flag.
func EnvName(flagName string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// EnvNames lists every environment variable the binary reads, sorted.
func EnvNames() []string {
	var c Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.Register(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, EnvName(f.Name)) })
	sort.Strings(names)
	return names
}

// Default returns the config with every default applied, as if no flag or
// env var were given.
func Default() Config {
	var c Config
	c.Register(flag.NewFlagSet("default", flag.ContinueOnError))
	return c
}
