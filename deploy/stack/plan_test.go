package stack

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"seckill/app/config"
)

// composeFile is the repository's compose file, relative to this package.
const composeFile = "../../docker-compose.yml"

func loadPlan(t *testing.T) (*types.Project, Plan) {
	t.Helper()
	p, err := LoadCompose(context.Background(), composeFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(p)
	if err != nil {
		t.Fatalf("the native stack cannot run docker-compose.yml: %v", err)
	}
	return p, plan
}

// TestNativeEnvMatchesCompose is the drift test: for every seckill service,
// the native process gets exactly compose's subcommand (no extra flags) and
// exactly compose's SECKILL_* variables, with only the Local addresses
// changed and only the Added names added; no value points into the compose
// network. A variable or flag set on one side only fails here.
func TestNativeEnvMatchesCompose(t *testing.T) {
	p, plan := loadPlan(t)
	known := map[string]bool{}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	a := Addrs{MySQLDSN: "root@tcp(127.0.0.1:3306)/seckill?parseTime=true&loc=UTC", Redis: "127.0.0.1:6379", Broker: "127.0.0.1:19092", HTTP: "127.0.0.1:18080"}
	for _, svc := range []Service{plan.Migrate, plan.API, plan.Worker} {
		cs := p.Services[svc.Name]
		if !slices.Equal(svc.Command, []string(cs.Command)) {
			t.Errorf("%s: native argv %q, compose command %q", svc.Name, svc.Command, cs.Command)
		}
		composeEnv := map[string]string{}
		for k, v := range cs.Environment {
			if strings.HasPrefix(k, "SECKILL_") && v != nil {
				composeEnv[k] = *v
			}
		}
		native := NativeEnv(svc, a, svc.Name+"-1", "")
		for k, v := range native {
			cv, inCompose := composeEnv[k]
			switch {
			case !known[k]:
				t.Errorf("%s: native sets %s, which seckill does not read", svc.Name, k)
			case !inCompose && !slices.Contains(Added, k):
				t.Errorf("%s: native sets %s=%q, compose does not", svc.Name, k, v)
			case inCompose && Local[k] == nil && v != cv:
				t.Errorf("%s: %s is %q natively, %q in compose, and it is not an address in the Local table", svc.Name, k, v, cv)
			case NamesContainer(p, v):
				t.Errorf("%s: native %s=%q points into the compose network", svc.Name, k, v)
			}
		}
		for k := range composeEnv {
			if _, ok := native[k]; !ok {
				t.Errorf("%s: compose sets %s, the native stack does not", svc.Name, k)
			}
		}
		if svc.Name != svcMigrate && native["SECKILL_HTTP_ADDR"] != a.HTTP {
			t.Errorf("%s: native SECKILL_HTTP_ADDR = %q, want the instance's own %q", svc.Name, native["SECKILL_HTTP_ADDR"], a.HTTP)
		}
	}
	// A Local entry compose never sets would be dead: the table would claim
	// a departure that does not happen.
	for k := range Local {
		used := false
		for _, svc := range []Service{plan.Migrate, plan.API, plan.Worker} {
			_, ok := svc.Env[k]
			used = used || ok
		}
		if !used {
			t.Errorf("Local rewrites %s, which no compose seckill service sets", k)
		}
	}
	if plan.API.Replicas < 2 || plan.Worker.Replicas < 2 {
		t.Errorf("api %d / worker %d replicas; compose (and so make stack) runs two of each", plan.API.Replicas, plan.Worker.Replicas)
	}
	if plan.BrokerPartitions != 6 {
		t.Errorf("broker partitions = %d, want compose kafka's KAFKA_NUM_PARTITIONS (6)", plan.BrokerPartitions)
	}
}

// TestPlanRefusesUntranslatedAddress shows NewPlan fails, rather than
// running a process that dials a container name, when compose grows a
// SECKILL_* address the Local table does not know.
func TestPlanRefusesUntranslatedAddress(t *testing.T) {
	p, _ := loadPlan(t)
	w := p.Services[svcWorker]
	v := "redis:6379"
	env := types.MappingWithEquals{}
	for k, x := range w.Environment {
		env[k] = x
	}
	env["SECKILL_SOMETHING_ADDR"] = &v
	w.Environment = env
	p.Services[svcWorker] = w
	if _, err := NewPlan(p); err == nil || !strings.Contains(err.Error(), "SECKILL_SOMETHING_ADDR") {
		t.Fatalf("NewPlan with an untranslated container address: err = %v, want it named", err)
	}
}

func TestRenderNginx(t *testing.T) {
	_, plan := loadPlan(t)
	src, err := os.ReadFile(plan.NginxConf)
	if err != nil {
		t.Fatal(err)
	}
	out, err := RenderNginx(string(src), NginxParams{
		Listen: "127.0.0.1:18000", Upstream: "api", Port: 8080,
		Servers: []string{"127.0.0.1:18001", "127.0.0.1:18002"}, Dir: "/tmp/x", MaxOpenFiles: 1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"daemon off;", "pid /tmp/x/nginx.pid;", "error_log /tmp/x/error.log",
		"server 127.0.0.1:18001 max_fails=0;", "server 127.0.0.1:18002 max_fails=0;",
		"listen 127.0.0.1:18000;", "access_log /tmp/x/access.log lb",
		"proxy_temp_path /tmp/x/proxy_temp;", "worker_rlimit_nofile 1024;",
		"location = /lb-healthz", "keepalive 128;", // the file's own settings survive
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered nginx.conf lacks %q", want)
		}
	}
	for _, gone := range []string{"api:8080", "resolve max_fails", "\n    resolver ", "/var/log/nginx", "listen 8080;"} {
		if strings.Contains(out, gone) {
			t.Errorf("rendered nginx.conf still has %q", gone)
		}
	}
	// A file whose upstream names another service must not render.
	if _, err := RenderNginx(strings.Replace(string(src), "server api:8080", "server apix:8080", 1), NginxParams{Upstream: "api", Port: 8080}); err == nil {
		t.Error("RenderNginx accepted an upstream that is not the api service")
	}
}

func TestRenderPrometheus(t *testing.T) {
	_, plan := loadPlan(t)
	src, err := os.ReadFile(plan.PrometheusConf)
	if err != nil {
		t.Fatal(err)
	}
	params := PrometheusParams{
		Targets:  map[string][]string{"api": {"127.0.0.1:1", "127.0.0.1:2"}, "worker": {"127.0.0.1:3"}},
		Ports:    map[string]int{"api": 8080, "worker": 8080},
		Interval: 1e9,
		Files:    plan.PrometheusFiles,
	}
	out, err := RenderPrometheus(src, params)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Global        map[string]string `yaml:"global"`
		RuleFiles     []string          `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string           `yaml:"job_name"`
			DNS     []any            `yaml:"dns_sd_configs"`
			Static  []map[string]any `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Global["scrape_interval"] != "1s" {
		t.Errorf("scrape_interval = %q, want 1s", cfg.Global["scrape_interval"])
	}
	got := map[string]int{}
	for _, sc := range cfg.ScrapeConfigs {
		if len(sc.DNS) != 0 || len(sc.Static) != 1 {
			t.Errorf("job %s: dns_sd %v static %v", sc.JobName, sc.DNS, sc.Static)
			continue
		}
		ts, _ := sc.Static[0]["targets"].([]any)
		got[sc.JobName] = len(ts)
	}
	if got["seckill-api"] != 2 || got["seckill-worker"] != 1 {
		t.Errorf("targets per job = %v, want seckill-api 2, seckill-worker 1", got)
	}
	// make stack's Prometheus loads the rules file from the tree.
	if want, _ := filepath.Abs("../prometheus/rules.yml"); len(cfg.RuleFiles) != 1 || cfg.RuleFiles[0] != want {
		t.Errorf("rule_files = %v, want [%s]", cfg.RuleFiles, want)
	}
	// The defect the issue names: scraping a port the service does not
	// listen on must not render.
	params.Ports["worker"] = 9999
	if _, err := RenderPrometheus(src, params); err == nil {
		t.Error("RenderPrometheus accepted a scrape port the worker does not listen on")
	}
}

// TestPlanFilesExist guards the paths NewPlan takes from compose's mounts.
func TestPlanFilesExist(t *testing.T) {
	_, plan := loadPlan(t)
	for _, f := range []string{plan.NginxConf, plan.PrometheusConf} {
		if _, err := os.Stat(f); err != nil || !filepath.IsAbs(f) {
			t.Errorf("%s: %v", f, err)
		}
	}
	if slices.ContainsFunc(plan.PrometheusArgs, func(a string) bool { return strings.HasPrefix(a, "--config.file") }) {
		t.Errorf("prometheus args keep compose's --config.file: %v", plan.PrometheusArgs)
	}
}

// TestRenderJaeger: every listener of the native Jaeger is the address the
// stack picked (none left at a fixed default port another program may
// hold), its self-tracing is off, and the UI assets path appears only
// when given.
func TestRenderJaeger(t *testing.T) {
	p := JaegerParams{OTLP: "127.0.0.1:14318", Query: "127.0.0.1:16686", QueryGRPC: "127.0.0.1:16685"}
	out, err := RenderJaeger(p)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Extensions struct {
			Query struct {
				EnableTracing *bool             `yaml:"enable_tracing"`
				HTTP          map[string]string `yaml:"http"`
				GRPC          map[string]string `yaml:"grpc"`
				UI            map[string]string `yaml:"ui"`
			} `yaml:"jaeger_query"`
		} `yaml:"extensions"`
		Receivers struct {
			OTLP struct {
				Protocols map[string]map[string]string `yaml:"protocols"`
			} `yaml:"otlp"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("rendered jaeger.yaml: %v\n%s", err, out)
	}
	q := cfg.Extensions.Query
	if q.HTTP["endpoint"] != p.Query || q.GRPC["endpoint"] != p.QueryGRPC {
		t.Errorf("query listens on %v and %v, want %s and %s", q.HTTP, q.GRPC, p.Query, p.QueryGRPC)
	}
	if protos := cfg.Receivers.OTLP.Protocols; len(protos) != 1 || protos["http"]["endpoint"] != p.OTLP {
		t.Errorf("OTLP receiver protocols %v, want only http on %s", protos, p.OTLP)
	}
	if q.EnableTracing == nil || *q.EnableTracing {
		t.Error("Jaeger's self-tracing is not off (it would dial localhost:4317)")
	}
	if q.UI != nil {
		t.Errorf("ui set without a UI directory: %v", q.UI)
	}
	p.UI = "/srv/jaeger-ui"
	if out, err = RenderJaeger(p); err != nil || !strings.Contains(string(out), `assets_path: "/srv/jaeger-ui"`) {
		t.Errorf("with a UI directory: %v\n%s", err, out)
	}
	if _, err := RenderJaeger(JaegerParams{OTLP: p.OTLP}); err == nil {
		t.Error("RenderJaeger accepted unset addresses")
	}
}
