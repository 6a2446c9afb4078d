package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"seckill/app/auth"
	"seckill/app/breaker"
	"seckill/app/broadcast"
	"seckill/app/catalog"
	"seckill/app/config"
	"seckill/app/fairness"
	"seckill/app/httpapi"
	"seckill/app/purchase"
	"seckill/app/reconcile"
	"seckill/app/shield"
	"seckill/app/waitroom"
	"seckill/app/web"
	"seckill/app/worker"
	"seckill/infra/kafkaevents"
	"seckill/infra/redisbus"
	"seckill/infra/redisonce"
	"seckill/infra/redisrate"
)

// Main is one running seckill instance: its parts, the use cases built on
// them, its loops and its HTTP server.
type Main struct {
	*Parts

	// Catalog, Purchase, Fair and Queue are the use cases, exposed for
	// tests and seeding: the catalog, purchases, the fair sale (tickets,
	// proof of work, blocklist) and the waiting rooms of queue items.
	Catalog  *catalog.Service
	Purchase *purchase.Service
	Fair     *fairness.Service
	Queue    *waitroom.Service

	listener *broadcast.Listener
	userRate *redisrate.UserLimiter
	recon    *reconcile.Service
	consumer *kafkaevents.Consumer
	worker   *worker.Worker[kafkaevents.Delivery]

	httpSrv  *http.Server
	debugSrv *http.Server
	debugLn  net.Listener

	bgCancel     context.CancelFunc
	bg           sync.WaitGroup
	dispCancel   context.CancelFunc
	disp         sync.WaitGroup
	workerCancel context.CancelFunc
	work         sync.WaitGroup
	closeOnce    sync.Once
	closeErr     error
}

// Start builds the use cases on p's ports, seeds the demo if asked, starts
// the background loops and begins serving HTTP. When it returns the
// instance is ready, and Main.Shutdown owns p; on error everything is
// stopped and closed again.
func Start(ctx context.Context, p *Parts) (_ *Main, err error) {
	m := &Main{Parts: p}
	defer func() { // m, not the named result, which a failed return sets to nil
		if err != nil {
			_ = m.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	if err := m.wireUseCases(ctx); err != nil {
		return nil, err
	}
	if p.Config.SeedDemo {
		if err := m.seedDemo(ctx); err != nil {
			return nil, fmt.Errorf("seed demo: %w", err)
		}
	}
	if err := m.startLoops(ctx); err != nil {
		return nil, err
	}
	if p.Roles.Worker {
		m.startWorker() //nolint:contextcheck // the worker lives until Shutdown, not ctx, and must not inherit its values (a startup span)
	}
	// A worker-only instance still serves /healthz, /readyz and /metrics,
	// so it can be probed and scraped like the API.
	if err := m.serveHTTP(); err != nil { //nolint:contextcheck // false positive: every handler runs under its request's context
		return nil, err
	}
	if p.Roles.API {
		// One list load teaches the local cache the id range, so a
		// purchase on a made-up id is refused with no backend call
		// (localcache.Reader.Item). Best effort: any later list does too.
		if _, err := p.local.Items(ctx); err != nil {
			p.Log.Warn("could not load the item list at start; unknown ids reach the backends until it loads", "err", err)
		}
	}
	p.Log.Info("seckill started", "config", p.logged, "api", p.Roles.API, "worker", p.Roles.Worker, "url", m.URL())
	return m, nil
}

// wireUseCases builds the fair sale, the listener, the reconciler, the
// catalog, the purchase and the waiting rooms on the parts' ports.
func (m *Main) wireUseCases(ctx context.Context) error {
	cfg, p := m.Config, m.Parts
	m.Fair = fairness.New(fairness.Deps{
		Items: p.local, Once: redisonce.New(p.rdb, cfg.RedisPrefix), Blocks: p.store, Notify: p.notifier, Log: p.Log,
	}, fairness.Options{
		Secret: p.secret, TicketTTL: cfg.TicketTTL, TicketLead: cfg.TicketLead, ChallengeTTL: cfg.ChallengeTTL,
		MinDifficulty: cfg.PowMinDifficulty, MaxDifficulty: cfg.PowMaxDifficulty, Window: cfg.PowWindow,
		AdmittedRate: cfg.ItemRate, RefreshEvery: cfg.BlocklistRefresh,
	})
	if err := m.Fair.Reload(ctx); err != nil {
		return err
	}
	m.listener = broadcast.NewListener(broadcast.ListenerDeps{
		Local: p.local, Flags: p.shield, Blocks: m.Fair, Caches: p.Caches, Tasks: p.PaymentWindow, Log: p.Log,
	})
	m.recon = reconcile.New(reconcile.Deps{
		Ledger: p.ledger, Book: p.store, Backlog: kafkaevents.NewBacklog(cfg.Brokers(), cfg.KafkaGroup, cfg.KafkaTopic),
		Notify: p.notifier, RecoverMoves: p.ledger.RecoverMoves, Lines: p.line, Log: p.Log,
	}, reconcile.Options{Every: cfg.ReconcileEvery, Repair: cfg.ReconcileRepair, Grace: cfg.RecoveryGrace})
	m.Catalog = catalog.New(catalog.Deps{
		Reader: p.local, Store: p.gStore, Ledger: p.gLedger, Book: p.gStore, Caches: p.Caches,
		Notify: p.notifier, LedgerMissing: m.recon.Notify, LastReconciliation: m.recon.LastReconciliation, Log: p.Log,
		StockDisplayTTL: cfg.StockDisplayTTL, SecondDelete: cfg.DoubleDeleteDelay,
		Creates: breaker.NewCreates(p.store, p.breakers.db),
	})
	deps := purchase.Deps{
		Items: p.local, Ledger: p.PurchaseLedger, Pending: p.PurchaseLedger, Queue: p.OrderQueue, Shield: p.PurchaseShield,
		Book: p.gStore, Buyers: p.gLedger, Notify: p.notifier, OnLedgerMissing: m.recon.Notify, Fair: m.Fair,
	}
	if cfg.UserLimiter == "redis" {
		m.userRate = redisrate.New(p.rdb, cfg.RedisPrefix, cfg.UserRate, cfg.UserBurst)
		deps.SharedUsers = m.userRate
	}
	m.Purchase = purchase.New(deps)
	m.buildQueue()
	m.registerMetrics()
	return nil
}

// startLoops starts the background loops every role runs, and the API's;
// it returns once the bus subscription is live.
func (m *Main) startLoops(ctx context.Context) error { //nolint:contextcheck // the background loops live until Shutdown, not ctx, and must not inherit its values (a startup span)
	bgCtx, cancel := context.WithCancel(context.Background())
	m.bgCancel = cancel
	m.goBG(func() {
		_ = m.bus.Run(bgCtx, func(e redisbus.Event) {
			m.listener.Handle(broadcast.Event{Kind: string(e.Kind), Item: e.Item, Gen: e.Gen, User: e.User, Sender: e.Sender})
		}, m.listener.Resubscribed)
	})
	// Serve nothing before the subscription is live: an invalidation or a
	// sold-out flag broadcast in between would never reach this instance.
	if err := waitFor(ctx, 10*time.Second, m.bus.Subscribed); err != nil {
		return fmt.Errorf("subscribe to the instance bus: %w", err)
	}
	m.goBG(func() { _ = m.delay.Run(bgCtx, m.listener.RunTask) })
	m.goBG(func() { sweepUsers(bgCtx, m.shield) })
	m.goBG(func() { m.Fair.Run(bgCtx) })
	if m.Roles.API {
		m.goBG(func() { m.Relay.Run(bgCtx) })
		m.goBG(func() { m.recon.Run(bgCtx) })
		m.goBG(func() { m.PaymentWindow.Run(bgCtx) })
		// The order queue stops on its own context, before the publisher
		// closes, so it can flush what it holds (Shutdown).
		dctx, dcancel := context.WithCancel(context.Background())
		m.dispCancel = dcancel
		m.disp.Add(1)
		go func() { defer m.disp.Done(); m.OrderQueue.Run(dctx) }()
	}
	return nil
}

// startWorker starts the order consumer and its worker.
func (m *Main) startWorker() {
	cfg := m.Config
	m.consumer = kafkaevents.NewConsumer(cfg.Brokers(), cfg.KafkaGroup, cfg.KafkaTopic, cfg.KafkaDLQTopic, kafkaevents.ConsumerOptions{})
	m.worker = worker.New(worker.Deps[kafkaevents.Delivery]{
		Feed: m.consumer, Ledger: m.ledger, Book: m.OrderBook, Notify: m.notifier, Log: m.Log,
	}, worker.Options{
		Batch: cfg.WorkerBatch, Linger: cfg.WorkerLinger,
		OnBatch:     func(size, _ int) { m.metrics.WorkerBatch.Observe(float64(size)) },
		OnConfirmed: m.PaymentWindow.ScheduleExpiry,
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

// serveHTTP serves the API (or, on a worker, the probes and metrics) on
// the listener Build opened.
func (m *Main) serveHTTP() error {
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
			Signer:     auth.NewSigner(m.secret, cfg.TokenTTL, nil),
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
	ln := m.ln // opened first thing in Build
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
	if m.kafka != nil {
		if err := m.kafka.Close(); err != nil {
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
	m.closeBackends()
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

// Open is Build then Start, for callers that swap no port.
func Open(ctx context.Context, cfg config.Config, roles Roles, log *slog.Logger) (*Main, error) {
	p, err := Build(ctx, cfg, roles, log)
	if err != nil {
		return nil, err
	}
	return Start(ctx, p)
}

// Reconciler is the ledger reconciler, for tests that drive a pass.
func (m *Main) Reconciler() *reconcile.Service { return m.recon }
