package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"seckill/app/auth"
	"seckill/app/config"
	"seckill/domain/sale"
	"seckill/infra/embedded"
	"seckill/infra/faultproxy"
)

// The fault tests put infra/faultproxy between the system and one backend
// (the real Redis, the real MariaDB, or the embedded broker), run a
// purchase spike, inject a fault for a few seconds in the middle of it, and
// then check that the system degraded instead of hanging and that the sale
// still ends exact. Each logs one FAULTRESULT line: the figures in
// docs/RELIABILITY.md ("Faults on real connections") come from them.

// faultSample is one purchase of the spike.
type faultSample struct {
	start, end  time.Time
	status      int
	code, order string
	user, token string
}

// faultLoad buys with a fresh user per attempt from a few workers, so
// per-user limits never answer and every attempt reaches the purchase path.
type faultLoad struct {
	in      *instance
	path    string
	client  *http.Client
	signer  *auth.Signer
	prefix  string
	n       atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples []faultSample
}

const (
	faultWorkers = 16
	faultPause   = 2 * time.Millisecond // between one worker's attempts
	maxAttempts  = 40000                // bounds the load whatever happens
)

func newClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
}

func startLoad(in *instance, item int64, prefix string, workers int, pause time.Duration) *faultLoad {
	l := &faultLoad{in: in, path: fmt.Sprintf("%s/api/v1/items/%d/purchase", in.url, item), client: newClient(),
		signer: auth.NewSigner(in.Config.TokenSecret, time.Hour, nil), prefix: prefix, stop: make(chan struct{})}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				i := l.n.Add(1)
				if i > maxAttempts {
					return
				}
				l.buy(fmt.Sprintf("%s-%06d", l.prefix, i))
				time.Sleep(pause)
			}
		}()
	}
	return l
}

func (l *faultLoad) buy(user string) {
	tok, _ := l.signer.Issue(sale.UserID(user))
	req, _ := http.NewRequest(http.MethodPost, l.path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	s := faultSample{start: time.Now(), user: user, token: tok}
	res, err := l.client.Do(req)
	s.end = time.Now()
	if err == nil {
		var body struct {
			Error   string `json:"error"`
			OrderID string `json:"order_id"`
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		_ = json.Unmarshal(b, &body)
		s.status, s.code, s.order = res.StatusCode, body.Error, body.OrderID
		if res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
			l.in.t.Errorf("503 without Retry-After: %s", b)
		}
	}
	l.mu.Lock()
	l.samples = append(l.samples, s)
	l.mu.Unlock()
}

// firstAcceptedAfter is the end of the first 202 that started after t.
func (l *faultLoad) firstAcceptedAfter(t time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, s := range l.samples {
		if s.status == 202 && !s.start.Before(t) && (first.IsZero() || s.end.Before(first)) {
			first = s.end
		}
	}
	return first, !first.IsZero()
}

func (l *faultLoad) halt() []faultSample {
	close(l.stop)
	l.wg.Wait()
	return l.samples
}

// pageSample is one item page read during the fault.
type pageSample struct {
	status    int
	nullStock bool
	took      time.Duration
}

func pollItem(in *instance, item int64, stop <-chan struct{}) func() []pageSample {
	var out []pageSample
	done := make(chan struct{})
	c := newClient()
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			res, err := c.Get(fmt.Sprintf("%s/api/v1/items/%d", in.url, item))
			p := pageSample{took: time.Since(t0)}
			if err == nil {
				var body map[string]any
				b, _ := io.ReadAll(res.Body)
				_ = res.Body.Close()
				_ = json.Unmarshal(b, &body)
				v, has := body["stock_left"]
				p.status, p.nullStock = res.StatusCode, has && v == nil
				if p.nullStock && body["status"] != string(sale.StatusStockUnavailable) {
					in.t.Errorf("stock_left null with status %v, want %s", body["status"], sale.StatusStockUnavailable)
				}
			}
			out = append(out, p)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() []pageSample { <-done; return out }
}

// faultSpec is one fault test.
type faultSpec struct {
	backend string // redis, database or broker
	fault   faultproxy.Fault
	dur     time.Duration
	// fastRefusals: purchases need this backend, so during the fault they
	// must be refused fast. Otherwise they must go on being accepted.
	fastRefusals bool
	// nullStock: every item page during the fault must show stock_left
	// null (the ledger cannot answer at all).
	nullStock bool
	// workers and pause pace the spike; zero means faultWorkers and
	// faultPause. The tests whose purchases go on use a lighter spike, so
	// that confirming what it sold keeps them short.
	workers int
	pause   time.Duration
	// breaker, if set, must be seen open (or probing) in /readyz and in
	// the metrics during the fault.
	breaker string
}

// waitedOutAfter is about the Redis call timeout (150ms): a purchase that
// took this long waited for Redis rather than being refused by its breaker.
const waitedOutAfter = 140 * time.Millisecond

// faultResult is what one run measured.
type faultResult struct {
	n              int
	p50, p99, max  time.Duration
	mix            string
	accepted       int
	waitedOut      int // purchases that took about the Redis call timeout or longer
	pages, pagesOK int
	pagesNull      int
	pageMax        time.Duration
	recovered      time.Duration
	recoveredOK    bool
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds)-1) * p)
	return ds[i]
}

// runFault is one fault test end to end.
func runFault(t *testing.T, spec faultSpec) {
	b := newBackends(t)
	var proxy *faultproxy.Proxy
	edit := func(*config.Config) {}
	switch spec.backend {
	case "redis":
		p, err := faultproxy.Start("127.0.0.1:0", b.cfg.RedisAddr)
		if err != nil {
			t.Fatal(err)
		}
		proxy = p
		edit = func(c *config.Config) { c.RedisAddr = p.Addr() }
	case "database":
		if !b.real {
			t.Skip("the database fault needs MariaDB (SECKILL_TEST_MYSQL_DSN): SQLite is a file, not a connection")
		}
		dsn, err := mysql.ParseDSN(b.cfg.MySQLDSN)
		if err != nil {
			t.Fatal(err)
		}
		p, err := faultproxy.Start("127.0.0.1:0", dsn.Addr)
		if err != nil {
			t.Fatal(err)
		}
		proxy = p
		dsn.Addr = p.Addr()
		proxied := dsn.FormatDSN()
		edit = func(c *config.Config) { c.MySQLDSN = proxied }
	case "broker":
		// The Kafka protocol hands clients the broker's address in its
		// metadata, so the broker must advertise the proxy's address, or
		// clients would bypass the proxy after the first request.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p, err := faultproxy.Start("127.0.0.1:0", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		proxy = p
		k, err := embedded.StartKafkaOn(advertising{ln, p.Addr()},
			embedded.KafkaTopic{Name: b.cfg.KafkaTopic, Partitions: b.cfg.KafkaParts},
			embedded.KafkaTopic{Name: b.cfg.KafkaDLQTopic, Partitions: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(k.Close)
		if got := k.Brokers(); len(got) != 1 || got[0] != p.Addr() {
			t.Fatalf("broker advertises %v, want the proxy %s", got, p.Addr())
		}
		edit = func(c *config.Config) { c.KafkaBrokers = p.Addr() }
	}
	t.Cleanup(proxy.Close)
	in := b.start(t, "api-1", both, func(c *config.Config) {
		// The production call timeout even under -race (the harness
		// raises it for the unpaced spike tests): the faults below are
		// sized against it, and this spike is paced, 16 buyers at a time.
		c.RedisCallTimeout = config.Default().RedisCallTimeout
		edit(c)
	})

	const stock = 100000 // never sells out: recovery is seen as the first 202 after the fault
	item := in.createSale("fault", stock, 0)
	// Warm the caches after the create's second delete, as for a sale
	// created ahead of time: item data must then not need the database.
	time.Sleep(in.Config.DoubleDeleteDelay + 300*time.Millisecond)
	if r := in.do("GET", fmt.Sprintf("/api/v1/items/%d", item), "", nil); r.Status != 200 {
		t.Fatalf("item page before the fault: %d %s", r.Status, r.Raw)
	}
	if spec.workers == 0 {
		spec.workers, spec.pause = faultWorkers, faultPause
	}
	load := startLoad(in, item, "f"+spec.backend, spec.workers, spec.pause)
	time.Sleep(500 * time.Millisecond)

	stopPages := make(chan struct{})
	faultStart := time.Now()
	proxy.Set(spec.fault)
	pages := pollItem(in, item, stopPages)
	if spec.breaker != "" {
		time.Sleep(time.Second)
		checkBreakerShown(t, in, spec.breaker)
		checkDecidedOrderReadable(t, in, load, faultStart)
	}
	time.Sleep(time.Until(faultStart.Add(spec.dur)))
	close(stopPages)
	proxy.Clear()
	faultEnd := time.Now()

	var res faultResult
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if at, ok := load.firstAcceptedAfter(faultEnd); ok {
			res.recovered, res.recoveredOK = at.Sub(faultEnd), true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	samples := load.halt()
	pageSamples := pages()

	var lat []time.Duration
	mix := map[string]int{}
	for _, s := range samples {
		if s.start.Before(faultStart) || !s.start.Before(faultEnd) {
			continue
		}
		lat = append(lat, s.end.Sub(s.start))
		if s.end.Sub(s.start) >= waitedOutAfter {
			res.waitedOut++
		}
		key := fmt.Sprint(s.status)
		if s.code != "" {
			key += " " + s.code
		}
		mix[key]++
		if s.status == 202 {
			res.accepted++
		}
	}
	slices.Sort(lat)
	res.n, res.p50, res.p99 = len(lat), percentile(lat, 0.50), percentile(lat, 0.99)
	if len(lat) > 0 {
		res.max = lat[len(lat)-1]
	}
	var keys []string
	for k := range mix {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = fmt.Sprintf("%s×%d", k, mix[k])
	}
	res.mix = strings.Join(keys, ", ")
	for _, p := range pageSamples {
		res.pages++
		if p.status == 200 {
			res.pagesOK++
		}
		if p.nullStock {
			res.pagesNull++
		}
		res.pageMax = max(res.pageMax, p.took)
	}
	t.Logf("FAULTRESULT | %s | %s | %v | %d | %v | %v | %v | %s | %d/%d 200, %d null, slowest %v | %v",
		spec.fault, spec.backend, spec.dur, res.n, res.p50.Round(100*time.Microsecond), res.p99.Round(100*time.Microsecond),
		res.max.Round(time.Millisecond), res.mix, res.pagesOK, res.pages, res.pagesNull, res.pageMax.Round(time.Millisecond), res.recovered.Round(time.Millisecond))

	if res.n < 100 {
		t.Fatalf("only %d purchases during the fault; the spike did not test it", res.n)
	}
	if spec.fastRefusals {
		// The target is p99 < 50ms (docs/RELIABILITY.md has the measured
		// figures; the FAULTRESULT line reports it). The test asserts no
		// speed, only the breaker's effect: without it every purchase waits
		// out the 150ms call timeout (or the client's 2s read timeout);
		// with it only those in flight before it opens, and its half-open
		// probes, do. A quarter is far above that, and far below "all".
		// (A p99 bound failed once on a loaded CI machine, with 20 of 1,251
		// purchases in flight when the breaker opened.)
		if res.waitedOut*4 > res.n {
			t.Errorf("%d of %d purchases during the fault took %v or more: the breaker did not refuse them fast (p99 %v, target < 50ms)", res.waitedOut, res.n, waitedOutAfter, res.p99)
		}
	} else if res.accepted == 0 {
		t.Errorf("no purchase was accepted during the %s fault; purchases must go on without it", spec.backend)
	}
	if res.pagesOK != res.pages || res.pages == 0 {
		t.Errorf("item pages during the fault: %d of %d answered 200", res.pagesOK, res.pages)
	}
	if spec.nullStock && res.pagesNull != res.pages {
		t.Errorf("item pages during the fault: %d of %d showed stock_left null", res.pagesNull, res.pages)
	}
	// Target 2s (one --breaker-open-for plus a probe); the assertion
	// allows 5s of headroom for the loaded machine.
	if !res.recoveredOK || res.recovered > 5*time.Second {
		t.Errorf("purchases did not succeed again within 5s after the fault ended (recovered=%v after %v)", res.recoveredOK, res.recovered)
	}

	attempts := make([]attempt, 0, len(samples))
	for _, s := range samples {
		attempts = append(attempts, attempt{user: s.user, token: s.token, status: s.status, code: s.code, orderID: s.order})
	}
	attempts = auditAnswers(t, in, item, attempts)
	settled := time.Since(faultEnd)
	confirmed, failed := checkSettledSale(t, in, item, stock, attempts)
	if failed != 0 {
		t.Errorf("%d accepted orders failed; the fault must not cost an order", failed)
	}
	t.Logf("sale settled %v after the fault ended (load stopped at first 202 + 200ms): %d confirmed, %d failed", settled.Round(10*time.Millisecond), confirmed, failed)
}

// checkBreakerShown requires the named breaker to be open or half-open in
// /readyz and to have opened according to /metrics.
func checkBreakerShown(t *testing.T, in *instance, name string) {
	t.Helper()
	r := in.do("GET", "/readyz", "", nil)
	br, _ := r.Body["breakers"].(map[string]any)
	if st := br[name]; st != "open" && st != "half-open" {
		t.Errorf("/readyz during the fault shows breaker %s as %v, want open or half-open: %s", name, st, r.Raw)
	}
	res, err := http.Get(in.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	want := `seckill_breaker_opened_total{backend="` + name + `"} `
	raw := string(body)
	i := strings.Index(raw, want)
	if i < 0 || strings.HasPrefix(raw[i+len(want):], "0\n") {
		t.Errorf("/metrics during the fault: %s missing or 0", want)
	}
}

// checkDecidedOrderReadable requires an order that the database confirmed
// before the fault to be readable during it: order status reads the
// database first and needs Redis only for orders still queued.
func checkDecidedOrderReadable(t *testing.T, in *instance, l *faultLoad, before time.Time) {
	t.Helper()
	l.mu.Lock()
	var accepted []faultSample
	for _, s := range l.samples {
		if s.status == 202 && s.end.Before(before) {
			accepted = append(accepted, s)
		}
	}
	l.mu.Unlock()
	for _, s := range accepted {
		var status string
		in.Store().DB().Raw("SELECT status FROM orders WHERE order_id = ?", s.order).Scan(&status)
		if status != "confirmed" {
			continue
		}
		r := in.do("GET", "/api/v1/orders/"+s.order, s.token, nil)
		if r.Status != 200 || r.str("status") != "confirmed" {
			t.Errorf("a confirmed order during the fault: %d %s, want 200 confirmed from the database", r.Status, r.Raw)
		}
		return
	}
	t.Errorf("no order accepted before the fault was confirmed by the time of the check (%d accepted)", len(accepted))
}

// advertising is a listener that reports another address, so kfake
// advertises the fault proxy in front of it.
type advertising struct {
	net.Listener
	addr string
}

func (a advertising) Addr() net.Addr {
	ta, _ := net.ResolveTCPAddr("tcp", a.addr)
	return ta
}

// TestRedisBlackHoleDegrades is the issue's acceptance case: Redis black-holed
// for 5 s in the middle of a spike.
func TestRedisBlackHoleDegrades(t *testing.T) {
	runFault(t, faultSpec{backend: "redis", fault: faultproxy.Fault{Kind: faultproxy.BlackHole}, dur: 5 * time.Second, fastRefusals: true, nullStock: true, breaker: "redis-ledger"})
}

func TestRedisResetDegrades(t *testing.T) {
	runFault(t, faultSpec{backend: "redis", fault: faultproxy.Fault{Kind: faultproxy.Reset}, dur: 2 * time.Second, fastRefusals: true, nullStock: true})
}

func TestRedisLatencyDegrades(t *testing.T) {
	runFault(t, faultSpec{backend: "redis", fault: faultproxy.Fault{Kind: faultproxy.Latency, Delay: 300 * time.Millisecond}, dur: 2 * time.Second, fastRefusals: true})
}

func TestRedisBandwidthDegrades(t *testing.T) {
	runFault(t, faultSpec{backend: "redis", fault: faultproxy.Fault{Kind: faultproxy.Bandwidth, BytesPerSec: 2000}, dur: 2 * time.Second, fastRefusals: true})
}

func TestDatabaseBlackHoleKeepsSelling(t *testing.T) {
	runFault(t, faultSpec{backend: "database", fault: faultproxy.Fault{Kind: faultproxy.BlackHole}, dur: 5 * time.Second, workers: 4, pause: 10 * time.Millisecond})
}

func TestBrokerBlackHoleKeepsSelling(t *testing.T) {
	runFault(t, faultSpec{backend: "broker", fault: faultproxy.Fault{Kind: faultproxy.BlackHole}, dur: 5 * time.Second, workers: 4, pause: 10 * time.Millisecond})
}
