package stack

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Options are what a run of the native stack needs beyond the plan.
type Options struct {
	Seckill string // path of the seckill binary
	Nginx   string // path of nginx
	Prom    string // path of prometheus
	// Jaeger is the path of the all-in-one Jaeger binary (make jaeger).
	// Set, the stack runs it and every API and worker exports its spans to
	// it (sampled at compose's SECKILL_TRACE_SAMPLE); empty, tracing is off.
	Jaeger   string
	JaegerUI string // a jaeger-ui build for Jaeger to serve; "" serves its placeholder page
	Dir      string // working directory: rendered configs, logs, Prometheus data
	MySQLDSN string // the database (created if missing); parseTime and loc=UTC are forced
	Redis    string // host:port of Redis
	// RedisPrefix, when set, is given to every seckill process. Empty
	// gives the run a fresh prefix of its own, whose keys Stop deletes, so
	// a run never sees the sales, stock or caches of another.
	RedisPrefix    string
	LBAddr         string        // the load balancer's address; empty picks a free loopback port
	PromAddr       string        // Prometheus's address; empty picks a free loopback port
	ScrapeInterval time.Duration // Prometheus's scrape interval; 0 means 1s
	Log            io.Writer     // progress lines for a person; nil discards them
}

// Stack is a running native stack.
type Stack struct {
	LBURL         string // the load balancer, http://127.0.0.1:port
	PrometheusURL string
	// TargetsURL is Prometheus's targets page on the version that runs:
	// /classic/targets on 2.x releases such as Debian's 2.42, whose
	// /targets is the new UI's route and answers 404 without it.
	TargetsURL   string
	DashboardURL string // the live dashboard, through the load balancer
	// JaegerURL is the trace viewer's UI and HTTP API (/api/traces), or ""
	// when the stack runs without Jaeger.
	JaegerURL string
	// Database is the database the run created for itself; Stop drops it.
	Database   string
	AdminToken string
	APIs       []string // base URLs of the API processes
	Workers    []string // base URLs of the worker processes
	Dir        string

	procs []*proc // in start order; stopped in reverse
	// addrs and redisPrefix are what every seckill process of the run got
	// (HTTP aside), for a test that starts one more.
	addrs       Addrs
	redisPrefix string
	log         io.Writer
	// cleanups run after every process stopped: drop the run's database,
	// delete its Redis keys.
	cleanups []func()
}

// proc is one child process with its log file.
type proc struct {
	name  string
	cmd   *exec.Cmd
	grace time.Duration
	logf  string
	done  chan struct{}
	err   error
}

// FindTool returns the path of name from PATH or /usr/sbin (where Debian's
// nginx lives, which a non-root PATH often lacks), or an error that says how
// to install it.
func FindTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed: on Debian/Ubuntu run `apt-get install nginx prometheus` (or `STACK_INSTALL=1 make stack` to have it done)", name)
}

// Start runs the plan: Jaeger when o.Jaeger is set, the dev broker, the migrate job, the API replicas and
// the workers, nginx and Prometheus, each waited for before the next (the
// compose depends_on conditions). On error everything already started is
// stopped again.
func Start(ctx context.Context, plan Plan, o Options) (_ *Stack, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.ScrapeInterval == 0 {
		o.ScrapeInterval = time.Second
	}
	s := &Stack{Dir: o.Dir, log: o.Log, AdminToken: plan.API.Env["SECKILL_ADMIN_TOKEN"]}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	for _, d := range []string{"logs", "nginx", "prometheus"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	dsn, err := s.ownDatabase(ctx, o.MySQLDSN)
	if err != nil {
		return nil, err
	}
	if o.RedisPrefix == "" {
		o.RedisPrefix = "seckill-stack-" + nonce()
		s.cleanups = append(s.cleanups, func() { dropRedisPrefix(o.Redis, o.RedisPrefix, s.log) }) //nolint:contextcheck // a cleanup runs at Stop, after Start's ctx, under its own deadline
	}

	addrs := Addrs{MySQLDSN: dsn, Redis: o.Redis}
	if o.Jaeger != "" {
		if addrs.Traces, err = s.startJaeger(ctx, o); err != nil {
			return nil, err
		}
	}
	if addrs.Broker, err = s.startBroker(ctx, plan, o); err != nil {
		return nil, err
	}
	s.addrs, s.redisPrefix = addrs, o.RedisPrefix
	if err := s.migrate(ctx, plan, o); err != nil {
		return nil, err
	}
	if s.APIs, err = s.startReplicas(ctx, plan.API, o); err != nil {
		return nil, err
	}
	if s.Workers, err = s.startReplicas(ctx, plan.Worker, o); err != nil {
		return nil, err
	}

	if err := s.startNginx(ctx, plan, o); err != nil {
		return nil, err
	}
	if err := s.startPrometheus(ctx, plan, o); err != nil {
		return nil, err
	}
	return s, nil
}

// startBroker starts `seckill broker` on a free port and waits until it
// accepts connections; it returns its address.
func (s *Stack) startBroker(ctx context.Context, plan Plan, o Options) (string, error) {
	brokerAddr, err := freeAddr()
	if err != nil {
		return "", err
	}
	broker, err := s.spawn("broker", o.Seckill, []string{"broker"}, []string{
		"SECKILL_ADDR=" + brokerAddr, fmt.Sprintf("SECKILL_KAFKA_PARTITIONS=%d", plan.BrokerPartitions),
	}, 5*time.Second)
	if err != nil {
		return "", err
	}
	if err := waitFor(ctx, broker, "broker "+brokerAddr, func() error { return dialTCP(brokerAddr) }); err != nil {
		return "", err
	}
	return brokerAddr, nil
}

// migrate runs the migrate job to completion before any API or worker
// starts (service_completed_successfully in compose).
func (s *Stack) migrate(ctx context.Context, plan Plan, o Options) error {
	mig, err := s.spawn("migrate", o.Seckill, plan.Migrate.Command, environ(NativeEnv(plan.Migrate, s.addrs, "migrate", o.RedisPrefix)), plan.Migrate.Grace)
	if err != nil {
		return err
	}
	select {
	case <-mig.done:
		if mig.err != nil {
			return fmt.Errorf("migrate: %w (log: %s)\n%s", mig.err, mig.logf, tail(mig.logf, 20))
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startReplicas starts svc's replicas, each on a free port, one after the
// other once the previous answers /readyz, and returns their URLs.
func (s *Stack) startReplicas(ctx context.Context, svc Service, o Options) ([]string, error) {
	var urls []string
	for i := 1; i <= svc.Replicas; i++ {
		a := s.addrs
		var err error
		if a.HTTP, err = freeAddr(); err != nil {
			return nil, err
		}
		name := fmt.Sprintf("%s-%d", svc.Name, i)
		p, err := s.spawn(name, o.Seckill, svc.Command, environ(NativeEnv(svc, a, name, o.RedisPrefix)), svc.Grace)
		if err != nil {
			return nil, err
		}
		u := "http://" + a.HTTP
		if err := waitFor(ctx, p, name+" /readyz", func() error { return httpOK(u + "/readyz") }); err != nil {
			return nil, err
		}
		urls = append(urls, u)
	}
	return urls, nil
}

func (s *Stack) startNginx(ctx context.Context, plan Plan, o Options) error {
	src, err := os.ReadFile(plan.NginxConf)
	if err != nil {
		return err
	}
	apiPort, err := portOf(plan.API.Env["SECKILL_HTTP_ADDR"])
	if err != nil {
		return fmt.Errorf("api SECKILL_HTTP_ADDR: %w", err)
	}
	lb := o.LBAddr
	if lb == "" {
		if lb, err = freeAddr(); err != nil {
			return err
		}
	}
	dir := filepath.Join(o.Dir, "nginx")
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	conf, err := RenderNginx(string(src), NginxParams{
		Listen: lb, Upstream: svcAPI, Port: apiPort, Servers: hosts(s.APIs), Dir: dir,
		RunAsRoot: os.Geteuid() == 0, MaxOpenFiles: lim.Max,
	})
	if err != nil {
		return err
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return err
	}
	// -e: the compiled-in error log (/var/log/nginx) is opened before the
	// config is read, and may not be writable.
	args := []string{"-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log")}
	if out, err := exec.CommandContext(ctx, o.Nginx, append(args, "-t")...).CombinedOutput(); err != nil {
		return fmt.Errorf("nginx -t on the rendered %s: %w\n%s", confPath, err, out)
	}
	p, err := s.spawn("nginx", o.Nginx, args, nil, 5*time.Second)
	if err != nil {
		return err
	}
	s.LBURL = "http://" + lb
	s.DashboardURL = s.LBURL + "/dashboard"
	return waitFor(ctx, p, "nginx /lb-healthz", func() error { return httpOK(s.LBURL + "/lb-healthz") })
}

func (s *Stack) startPrometheus(ctx context.Context, plan Plan, o Options) error {
	src, err := os.ReadFile(plan.PrometheusConf)
	if err != nil {
		return err
	}
	ports := map[string]int{}
	for _, svc := range []Service{plan.API, plan.Worker} {
		if ports[svc.Name], err = portOf(svc.Env["SECKILL_HTTP_ADDR"]); err != nil {
			return fmt.Errorf("%s SECKILL_HTTP_ADDR: %w", svc.Name, err)
		}
	}
	conf, err := RenderPrometheus(src, PrometheusParams{
		Targets:  map[string][]string{svcAPI: hosts(s.APIs), svcWorker: hosts(s.Workers)},
		Ports:    ports,
		Interval: o.ScrapeInterval,
		Files:    plan.PrometheusFiles,
	})
	if err != nil {
		return err
	}
	dir := filepath.Join(o.Dir, "prometheus")
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return err
	}
	addr := o.PromAddr
	if addr == "" {
		if addr, err = freeAddr(); err != nil {
			return err
		}
	}
	args := append([]string{
		"--config.file=" + confPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
	}, plan.PrometheusArgs...)
	p, err := s.spawn("prometheus", o.Prom, args, nil, 10*time.Second)
	if err != nil {
		return err
	}
	s.PrometheusURL = "http://" + addr
	if err := waitFor(ctx, p, "prometheus /-/ready", func() error { return httpOK(s.PrometheusURL + "/-/ready") }); err != nil {
		return err
	}
	s.TargetsURL = targetsPage(s.PrometheusURL)
	// Ready only once every process has been scraped: a run that starts
	// load at once then has a sample from before it, so rates are defined.
	want := len(s.APIs) + len(s.Workers)
	return waitFor(ctx, p, "prometheus targets up", func() error { return targetsUp(s.PrometheusURL, want) })
}

// targetsPage returns the URL of Prometheus's targets page that answers 200
// on the running version: /classic/targets (2.x, Debian's 2.42), else
// /targets (3.x, where the classic UI is gone).
func targetsPage(base string) string {
	for _, path := range []string{"/classic/targets", "/targets"} {
		if httpOK(base+path) == nil {
			return base + path
		}
	}
	return base + "/targets"
}

// targetsUp returns nil when Prometheus has exactly want active targets and
// all of them are up.
func targetsUp(base string, want int) error {
	r, err := httpc.Get(base + "/api/v1/targets") //nolint:noctx // a poll with no caller context; httpc's 2 s timeout bounds it
	if err != nil {
		return err
	}
	defer r.Body.Close()
	var body struct {
		Data struct {
			Active []struct {
				ScrapeURL string `json:"scrapeUrl"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		return err
	}
	if n := len(body.Data.Active); n != want {
		return fmt.Errorf("%d active targets, want %d", n, want)
	}
	for _, t := range body.Data.Active {
		if t.Health != "up" {
			return fmt.Errorf("target %s is %s %s", t.ScrapeURL, t.Health, t.LastError)
		}
	}
	return nil
}

// spawn starts one child with its output in logs/<name>.log. Each child has
// a process group of its own, so a Ctrl+C on the terminal reaches only the
// stack, which then stops the children in order; Pdeathsig stops a child
// if the stack itself is killed.
func (s *Stack) spawn(name, path string, args, env []string, grace time.Duration) (*proc, error) {
	logf := filepath.Join(s.Dir, "logs", name+".log")
	f, err := os.Create(logf)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(baseEnviron(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, grace: grace, logf: logf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
	fmt.Fprintf(s.log, "stack: started %-10s pid %-7d log %s\n", name, cmd.Process.Pid, logf)
	return p, nil
}

// Exited returns a channel that receives the name of the first child that
// exits without having been stopped, for a foreground run to notice a crash.
func (s *Stack) Exited() <-chan string {
	ch := make(chan string, 1)
	var once sync.Once
	for _, p := range s.procs {
		if p.name == "migrate" {
			continue // a one-shot job; it has exited already
		}
		go func() {
			<-p.done
			once.Do(func() {
				ch <- fmt.Sprintf("%s exited (%v); last lines of %s:\n%s", p.name, p.err, p.logf, tail(p.logf, 15))
			})
		}()
	}
	return ch
}

// Stop stops every child, newest first (nginx and Prometheus before the
// APIs, so no request reaches a stopping API; the APIs, which flush their
// outbox to the broker, before the workers; the broker last): SIGTERM,
// up to the service's stop grace period, then SIGKILL. It returns once all
// have exited.
func (s *Stack) Stop() {
	defer func() {
		for i := len(s.cleanups) - 1; i >= 0; i-- {
			s.cleanups[i]()
		}
		s.cleanups = nil
	}()
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		select {
		case <-p.done:
			continue
		default:
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
			fmt.Fprintf(s.log, "stack: stopped %s\n", p.name)
		case <-time.After(p.grace):
			fmt.Fprintf(s.log, "stack: %s still running %s after SIGTERM; SIGKILL\n", p.name, p.grace)
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// ownDatabase creates a fresh database for this run, named after the DSN's
// (seckill_stack_<random>), registers its drop for Stop, and returns the
// DSN that names it. A run then never shows the sales of another run, or of
// tests sharing the DSN's database.
func (s *Stack) ownDatabase(ctx context.Context, dsn string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("mysql dsn: %w", err)
	}
	if cfg.DBName == "" {
		return "", errors.New("mysql dsn names no database")
	}
	cfg.DBName = cfg.DBName + "_stack_" + nonce()
	own, err := ensureDatabase(ctx, cfg.FormatDSN())
	if err != nil {
		return "", err
	}
	s.Database = cfg.DBName
	s.cleanups = append(s.cleanups, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := dropDatabase(ctx, own); err != nil {
			fmt.Fprintf(s.log, "stack: drop database %s: %v\n", cfg.DBName, err)
			return
		}
		fmt.Fprintf(s.log, "stack: dropped database %s\n", cfg.DBName)
	})
	return own, nil
}

// dropDatabase drops the DSN's database.
func dropDatabase(ctx context.Context, dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return err
	}
	name := cfg.DBName
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+strings.ReplaceAll(name, "`", "``")+"`")
	return err
}

// nonce is 8 random hex digits.
func nonce() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ensureDatabase creates the DSN's database when it is missing and returns
// the DSN with parseTime=true and loc=UTC, as compose writes it.
func ensureDatabase(ctx context.Context, dsn string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("mysql dsn: %w", err)
	}
	if cfg.DBName == "" {
		return "", errors.New("mysql dsn names no database")
	}
	cfg.ParseTime, cfg.Loc = true, time.UTC
	server := *cfg
	server.DBName = ""
	db, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		return "", err
	}
	defer db.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(cctx, "CREATE DATABASE IF NOT EXISTS `"+strings.ReplaceAll(cfg.DBName, "`", "``")+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		return "", fmt.Errorf("create database %s on %s: %w", cfg.DBName, cfg.Addr, err)
	}
	return cfg.FormatDSN(), nil
}

// waitFor polls ok every 100 ms for at most a minute, giving up early when p
// exits or ctx ends.
func waitFor(ctx context.Context, p *proc, what string, ok func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := ok()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s: %s exited (%v); last lines of %s:\n%s", what, p.name, p.err, p.logf, tail(p.logf, 20)) //nolint:errorlint // p.err is nil when the process exited 0
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after a minute: %w (log %s)", what, err, p.logf)
		}
	}
}

var httpc = &http.Client{Timeout: 2 * time.Second}

func httpOK(url string) error {
	r, err := httpc.Get(url) //nolint:noctx // a poll with no caller context; httpc's 2 s timeout bounds it
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, r.Status)
	}
	return nil
}

func dialTCP(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second) //nolint:noctx // a poll with no caller context; the timeout bounds it
	if err == nil {
		c.Close()
	}
	return err
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// hosts strips http:// from base URLs.
func hosts(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = strings.TrimPrefix(u, "http://")
	}
	return out
}

// tail returns the last n lines of a log file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
