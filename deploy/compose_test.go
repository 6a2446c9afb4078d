package deploy

import (
	"context"
	"encoding/json"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/go-sql-driver/mysql"
	"gopkg.in/yaml.v3"

	"seckill/app/config"
)

// root is the repository root, where docker-compose.yml lives.
const root = ".."

// seckillServices run the seckill image; their SECKILL_* settings are checked
// against what the binary reads.
var seckillServices = []string{"migrate", "api", "worker"}

// loadProject loads docker-compose.yml the way `docker compose --profile '*'`
// does, with an empty environment so every ${VAR:-default} takes its default.
func loadProject(t *testing.T) *types.Project {
	t.Helper()
	dir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithName("seckill"),
		cli.WithProfiles([]string{"*"}),
		cli.WithEnv(nil),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("service %q missing (have %v)", name, p.ServiceNames())
	}
	return s
}

func env(s types.ServiceConfig, key string) (string, bool) {
	v, ok := s.Environment[key]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

func TestComposeServicesExist(t *testing.T) {
	p := loadProject(t)
	want := []string{"mysql", "redis", "kafka", "migrate", "api", "lb", "worker", "prometheus", "grafana", "jaeger", "k6"}
	for _, name := range want {
		service(t, p, name)
	}
	got := p.ServiceNames()
	sort.Strings(got)
	if len(got) != len(want) {
		t.Errorf("services = %v, want exactly %v (update this test and the README together)", got, want)
	}
	for name, profile := range map[string]string{"prometheus": "observability", "grafana": "observability", "jaeger": "observability", "k6": "load"} {
		if s := service(t, p, name); !slices.Equal(s.Profiles, []string{profile}) {
			t.Errorf("%s profiles = %v, want [%s]", name, s.Profiles, profile)
		}
	}
	for _, name := range []string{"mysql", "redis", "kafka", "migrate", "api", "lb", "worker"} {
		if s := service(t, p, name); len(s.Profiles) != 0 {
			t.Errorf("%s is in profiles %v; the core stack must start with a plain `docker compose up`", name, s.Profiles)
		}
	}
}

func TestComposeCommandsAndImages(t *testing.T) {
	p := loadProject(t)
	for name, cmd := range map[string]string{"migrate": "migrate", "api": "serve", "worker": "worker"} {
		s := service(t, p, name)
		if !slices.Equal([]string(s.Command), []string{cmd}) {
			t.Errorf("%s command = %q, want [%s]", name, s.Command, cmd)
		}
		if s.Build == nil || s.Build.Dockerfile != "Dockerfile" || s.Image != "seckill:local" {
			t.Errorf("%s must build ./Dockerfile as seckill:local; build=%+v image=%q", name, s.Build, s.Image)
		}
	}
	if s := service(t, p, "migrate"); s.Restart != "no" {
		t.Errorf("migrate restart = %q; a one-shot job must not restart, or service_completed_successfully never fires", s.Restart)
	}
	if s := service(t, p, "mysql"); s.Image != "mysql:8.4" {
		t.Errorf("mysql image = %q, want mysql:8.4", s.Image)
	}
	if s := service(t, p, "kafka"); !strings.HasPrefix(s.Image, "apache/kafka:") {
		t.Errorf("kafka image = %q, want the official apache/kafka", s.Image)
	}
	if s := service(t, p, "mysql"); env2(s, "MYSQL_DATABASE") != "seckill" {
		t.Errorf("mysql MYSQL_DATABASE = %q, want seckill", env2(s, "MYSQL_DATABASE"))
	}

	redis := strings.Join(service(t, p, "redis").Command, " ")
	for _, flag := range []string{"--appendonly yes", "--appendfsync everysec"} {
		if !strings.Contains(redis, flag) {
			t.Errorf("redis command %q lacks %q: Redis holds live stock and the outbox", redis, flag)
		}
	}
}

func env2(s types.ServiceConfig, key string) string { v, _ := env(s, key); return v }

func TestComposeAPIReplicasAndLB(t *testing.T) {
	p := loadProject(t)
	api := service(t, p, "api")
	if n := api.GetScale(); api.Deploy == nil || api.Deploy.Replicas == nil || n < 2 {
		t.Fatalf("api runs %d replica(s), want deploy.replicas >= 2", n)
	}
	if len(api.Ports) != 0 {
		t.Errorf("api publishes %v; replicas cannot share a host port, only lb publishes", api.Ports)
	}
	if api.HealthCheck == nil || !strings.Contains(strings.Join(api.HealthCheck.Test, " "), "http://127.0.0.1:8080/readyz") {
		t.Errorf("api healthcheck must probe /readyz on :8080, got %+v", api.HealthCheck)
	}

	lb := service(t, p, "lb")
	if !strings.HasPrefix(lb.Image, "nginx:") {
		t.Errorf("lb image = %q, want nginx", lb.Image)
	}
	published := false
	for _, port := range lb.Ports {
		if port.Target == 8080 && port.Published == "8080" {
			published = true
		}
	}
	if !published {
		t.Errorf("lb must publish 8080:8080, ports = %+v", lb.Ports)
	}
}

func TestComposeDependsOnConditions(t *testing.T) {
	p := loadProject(t)
	want := map[string]map[string]string{
		"migrate":    {"mysql": types.ServiceConditionHealthy},
		"api":        {"migrate": types.ServiceConditionCompletedSuccessfully, "redis": types.ServiceConditionHealthy, "kafka": types.ServiceConditionHealthy},
		"worker":     {"migrate": types.ServiceConditionCompletedSuccessfully, "redis": types.ServiceConditionHealthy, "kafka": types.ServiceConditionHealthy},
		"lb":         {"api": types.ServiceConditionHealthy},
		"prometheus": {"api": types.ServiceConditionHealthy},
		"grafana":    {"prometheus": types.ServiceConditionStarted},
		"k6":         {"lb": types.ServiceConditionHealthy},
	}
	for name, deps := range want {
		s := service(t, p, name)
		got := map[string]string{}
		for dep, d := range s.DependsOn {
			got[dep] = d.Condition
		}
		if len(got) != len(deps) {
			t.Errorf("%s depends_on %v, want %v", name, got, deps)
		}
		for dep, cond := range deps {
			if got[dep] != cond {
				t.Errorf("%s depends_on %s condition = %q, want %q", name, dep, got[dep], cond)
			}
		}
	}
	// A service_healthy condition on a service without a healthcheck never
	// becomes true, and `docker compose up` hangs.
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				continue
			}
			if h := service(t, p, dep).HealthCheck; h == nil || h.Disable || len(h.Test) == 0 {
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
	}
}

// TestComposeDependsOnExplicit reads the raw YAML: the loader fills in
// service_started for the short list form, so only the file shows whether a
// condition was actually written.
func TestComposeDependsOnExplicit(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Services) == 0 {
		t.Fatal("no services in the raw YAML")
	}
	for name, s := range doc.Services {
		d, ok := s["depends_on"]
		if !ok {
			continue
		}
		m, ok := d.(map[string]any)
		if !ok {
			t.Errorf("%s depends_on is %T; use the long form with a condition for every dependency", name, d)
			continue
		}
		for dep, v := range m {
			c, _ := v.(map[string]any)
			if cond, _ := c["condition"].(string); cond == "" {
				t.Errorf("%s depends_on %s has no condition", name, dep)
			}
		}
	}
}

// flagsByEnv maps every SECKILL_* variable to its flag name.
func flagsByEnv() map[string]string {
	var c config.Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.Register(fs)
	out := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { out[config.EnvName(f.Name)] = f.Name })
	return out
}

func TestComposeSeckillEnv(t *testing.T) {
	p := loadProject(t)
	known := map[string]bool{}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	if !known["SECKILL_REDIS_ADDR"] || len(known) < 20 {
		t.Fatalf("config.EnvNames() looks wrong: %v", config.EnvNames())
	}
	byEnv := flagsByEnv()

	realMode := []string{"SECKILL_MYSQL_DSN", "SECKILL_REDIS_ADDR", "SECKILL_KAFKA_BROKERS"}
	for _, name := range seckillServices {
		s := service(t, p, name)
		// Every SECKILL_* variable set must be one the binary reads: a typo
		// would be silently ignored and the embedded stand-in started.
		var cfg config.Config
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		cfg.Register(fs)
		for key, v := range s.Environment {
			if !strings.HasPrefix(key, config.EnvPrefix+"_") {
				continue
			}
			if !known[key] {
				t.Errorf("%s sets %s, which seckill does not read (typo?)", name, key)
				continue
			}
			if v == nil {
				t.Errorf("%s sets %s without a value", name, key)
				continue
			}
			if err := fs.Set(byEnv[key], *v); err != nil {
				t.Errorf("%s: %s=%q is not a valid --%s: %v", name, key, *v, byEnv[key], err)
			}
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: the config its environment gives is invalid: %v", name, err)
		}
		for _, key := range realMode {
			if v, ok := env(s, key); !ok || v == "" {
				t.Errorf("%s does not set %s; an empty one starts an embedded stand-in", name, key)
			}
		}
		if cfg.Embedded() {
			t.Errorf("%s would run with an embedded backend: mysql=%q redis=%q kafka=%q", name, cfg.MySQLDSN, cfg.RedisAddr, cfg.KafkaBrokers)
		}
		if cfg.LogFormat != "json" {
			t.Errorf("%s log format = %q, want json", name, cfg.LogFormat)
		}

		dsn, err := mysql.ParseDSN(cfg.MySQLDSN)
		if err != nil {
			t.Errorf("%s: SECKILL_MYSQL_DSN does not parse: %v", name, err)
		} else {
			if dsn.Addr != "mysql:3306" || dsn.DBName != "seckill" || !dsn.ParseTime {
				t.Errorf("%s: DSN addr=%q db=%q parseTime=%v; want mysql:3306, seckill, parseTime=true",
					name, dsn.Addr, dsn.DBName, dsn.ParseTime)
			}
			// The driver defaults loc to UTC, so only the text shows it was written.
			_, query, _ := strings.Cut(cfg.MySQLDSN, "?")
			if q, err := url.ParseQuery(query); err != nil || q.Get("loc") != "UTC" || q.Get("parseTime") != "true" {
				t.Errorf("%s: DSN query %q must say parseTime=true&loc=UTC", name, query)
			}
			mysqlSvc := service(t, p, "mysql")
			if dsn.User != env2(mysqlSvc, "MYSQL_USER") || dsn.Passwd != env2(mysqlSvc, "MYSQL_PASSWORD") || dsn.Passwd == "" {
				t.Errorf("%s: DSN user/password do not match the mysql service's MYSQL_USER/MYSQL_PASSWORD", name)
			}
		}
		if cfg.RedisAddr != "redis:6379" || cfg.KafkaBrokers != "kafka:9092" {
			t.Errorf("%s: redis=%q kafka=%q, want redis:6379 and kafka:9092", name, cfg.RedisAddr, cfg.KafkaBrokers)
		}
		if name != "migrate" && cfg.AutoMigrate {
			t.Errorf("%s migrates on start; the migrate job owns the schema (SECKILL_AUTO_MIGRATE=false)", name)
		}
	}

	api := service(t, p, "api")
	for _, key := range []string{"SECKILL_ADMIN_TOKEN", "SECKILL_TOKEN_SECRET"} {
		v, ok := env(api, key)
		if !ok || len(v) < 16 {
			t.Errorf("api %s = %q; it must be set (replicas share it) and at least 16 characters", key, v)
		}
	}
	if v, _ := env(api, "SECKILL_HTTP_ADDR"); v != "0.0.0.0:8080" {
		t.Errorf("api SECKILL_HTTP_ADDR = %q, want 0.0.0.0:8080 (127.0.0.1 is unreachable from nginx)", v)
	}
	// Every scraped service must listen on all interfaces, on the port
	// Prometheus scrapes: a container's 127.0.0.1 is its own loopback, and
	// Prometheus would report the target down.
	for _, name := range []string{"api", "worker"} {
		if v, _ := env(service(t, p, name), "SECKILL_HTTP_ADDR"); v != "0.0.0.0:8080" {
			t.Errorf("%s SECKILL_HTTP_ADDR = %q, want 0.0.0.0:8080 (the port prometheus.yml scrapes)", name, v)
		}
	}
	// Exactly one service seeds the demo: the api replicas would race.
	seeders := 0
	for _, name := range seckillServices {
		if v, _ := env(service(t, p, name), "SECKILL_SEED_DEMO"); v == "true" {
			seeders++
			if name == "api" {
				t.Errorf("api seeds the demo, but it has several replicas that would race to seed an empty catalog")
			}
		}
	}
	if seeders != 1 {
		t.Errorf("%d services seed the demo, want exactly 1", seeders)
	}
	// The load test logs in to the admin API with the api's token.
	if got, want := env2(service(t, p, "k6"), "ADMIN_TOKEN"), env2(api, "SECKILL_ADMIN_TOKEN"); got != want {
		t.Errorf("k6 ADMIN_TOKEN = %q, api SECKILL_ADMIN_TOKEN = %q; they must match", got, want)
	}
	if got := env2(service(t, p, "k6"), "BASE_URL"); got != "http://lb:8080" {
		t.Errorf("k6 BASE_URL = %q, want http://lb:8080", got)
	}
}

// bindSource returns the host path mounted at target in s, or "".
func bindSource(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source
		}
	}
	return ""
}

func readMounted(t *testing.T, p *types.Project, svc, target string) []byte {
	t.Helper()
	src := bindSource(service(t, p, svc), target)
	if src == "" {
		t.Fatalf("%s mounts nothing at %s", svc, target)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("%s mounts %s at %s: %v", svc, src, target, err)
	}
	return b
}

func TestNginxConfig(t *testing.T) {
	p := loadProject(t)
	conf := string(readMounted(t, p, "lb", "/etc/nginx/nginx.conf"))
	for _, want := range []string{
		"resolver 127.0.0.11",              // Docker's DNS, so "api" resolves to every replica
		"server api:8080 resolve",          // re-resolved, round robin over replicas
		"zone ",                            // `resolve` needs a shared-memory zone
		"listen 8080;",                     // the published port
		"location = /lb-healthz",           // the lb healthcheck's path
		"proxy_set_header Connection \"\"", // upstream keepalive
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	if hc := strings.Join(service(t, p, "lb").HealthCheck.Test, " "); !strings.Contains(hc, "/lb-healthz") {
		t.Errorf("lb healthcheck %q does not probe /lb-healthz", hc)
	}
}

func TestPrometheusConfig(t *testing.T) {
	p := loadProject(t)
	raw := readMounted(t, p, "prometheus", "/etc/prometheus/prometheus.yml")
	var cfg struct {
		ScrapeConfigs []struct {
			JobName     string `yaml:"job_name"`
			MetricsPath string `yaml:"metrics_path"`
			DNSSD       []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	found := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, sd := range sc.DNSSD {
			for _, n := range sd.Names {
				if sd.Type == "A" && sd.Port == 8080 && sc.MetricsPath == "/metrics" {
					found[n] = true
				}
			}
		}
	}
	// Discovering by service name is what makes every replica a target.
	for _, n := range []string{"api", "worker"} {
		if !found[n] {
			t.Errorf("prometheus.yml has no dns_sd_configs A lookup of %q on :8080/metrics", n)
		}
	}
}

// appMetricNames collects the metric names the app registers, from its source.
func appMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`"(seckill_[a-z0-9_]+)"`)
	names := map[string]bool{}
	for _, dir := range []string{"app/metrics", "app/bootstrap"} {
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
		}
	}
	if !names["seckill_purchases_total"] {
		t.Fatalf("could not find the app's metric names (got %v)", names)
	}
	return names
}

func TestGrafanaDashboard(t *testing.T) {
	p := loadProject(t)
	dir := bindSource(service(t, p, "grafana"), "/var/lib/grafana/dashboards")
	if dir == "" {
		t.Fatal("grafana mounts no dashboards directory")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "seckill.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) < 4 {
		t.Fatalf("dashboard uid=%q with %d panels; want a uid and at least 4 panels", dash.UID, len(dash.Panels))
	}

	known := appMetricNames(t)
	used := map[string]bool{}
	re := regexp.MustCompile(`seckill_[a-z0-9_]+`)
	for _, pn := range dash.Panels {
		if pn.Datasource.UID != "prometheus" {
			t.Errorf("panel %q uses datasource %q; the provisioned one is uid prometheus", pn.Title, pn.Datasource.UID)
		}
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q has no queries", pn.Title)
		}
		for _, tg := range pn.Targets {
			for _, m := range re.FindAllString(tg.Expr, -1) {
				base := m
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if strings.HasSuffix(m, suf) && known[strings.TrimSuffix(m, suf)] {
						base = strings.TrimSuffix(m, suf)
					}
				}
				if !known[base] {
					t.Errorf("panel %q queries %s, which the app does not export", pn.Title, m)
				}
				used[base] = true
			}
		}
	}
	for _, m := range []string{"seckill_purchases_total", "seckill_http_request_duration_seconds", "seckill_worker_lag", "seckill_worker_confirmed_total"} {
		if !used[m] {
			t.Errorf("no panel queries %s", m)
		}
	}

	// The provisioned datasource is the one the panels name.
	ds, err := os.ReadFile(filepath.Join(bindSource(service(t, p, "grafana"), "/etc/grafana/provisioning"), "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var dsCfg struct {
		Datasources []struct {
			UID string `yaml:"uid"`
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(ds, &dsCfg); err != nil {
		t.Fatal(err)
	}
	if len(dsCfg.Datasources) != 1 || dsCfg.Datasources[0].UID != "prometheus" || dsCfg.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("grafana datasources = %+v, want one uid prometheus at http://prometheus:9090", dsCfg.Datasources)
	}
}

func TestK6LoadService(t *testing.T) {
	p := loadProject(t)
	k6 := service(t, p, "k6")
	dir := bindSource(k6, "/scripts")
	if dir == "" {
		t.Fatal("k6 mounts nothing at /scripts")
	}
	cmd := strings.Join(k6.Command, " ")
	if !strings.Contains(cmd, "/scripts/spike.js") {
		t.Errorf("k6 command %q does not run /scripts/spike.js", cmd)
	}
	for _, f := range []string{"spike.js", "lib.js"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("k6 script: %v", err)
		}
	}
}

// TestComposePublishesOnLoopbackOnly: every published port is bound to
// 127.0.0.1. The demo runs with secrets published in the repository (in
// dev mode), so a port on every interface would make anyone who reaches
// the machine an admin.
func TestComposePublishesOnLoopbackOnly(t *testing.T) {
	p := loadProject(t)
	n := 0
	for _, name := range p.ServiceNames() {
		for _, port := range p.Services[name].Ports {
			n++
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s:%s->%d on %q; want 127.0.0.1 only", name, port.HostIP, port.Published, port.Target, port.HostIP)
			}
		}
	}
	if n == 0 {
		t.Fatal("no published port found; the test reads nothing")
	}
}
