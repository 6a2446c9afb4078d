// Package stack runs the docker-compose.yml topology as native processes on
// one machine (make stack): nginx with deploy/nginx/nginx.conf, the API
// replicas (seckill serve), the workers (seckill worker), the dev broker
// (seckill broker) in place of Kafka, Prometheus with
// deploy/prometheus/prometheus.yml, and the machine's Redis and MariaDB.
//
// docker-compose.yml is the one source of truth: the plan is read from it
// with compose-go (commands, replicas, SECKILL_* environment, stop grace
// periods, the mounted nginx and Prometheus files), and the only departures
// are the addresses in the Local table, which a test checks against compose.
package stack

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// Service is one seckill service of the compose file, as the native stack
// runs it: the same subcommand and the same SECKILL_* environment.
type Service struct {
	Name     string            // compose service name: migrate, api, worker
	Command  []string          // the seckill subcommand and its arguments, as in compose
	Env      map[string]string // every SECKILL_* variable compose sets, verbatim
	Replicas int               // deploy.replicas (1 when unset)
	Grace    time.Duration     // stop_grace_period (10s, compose's default, when unset)
}

// Plan is everything the native stack takes from docker-compose.yml.
type Plan struct {
	Migrate, API, Worker Service

	// BrokerPartitions is the kafka service's KAFKA_NUM_PARTITIONS, which
	// the dev broker gives the orders topic.
	BrokerPartitions int

	NginxConf      string   // host path of the file the lb service mounts as nginx.conf
	PrometheusConf string   // host path of the file the prometheus service mounts
	PrometheusArgs []string // the prometheus service's flags other than --config.file
	// PrometheusFiles maps the prometheus service's bind-mount targets to
	// their host paths (the rule files prometheus.yml names).
	PrometheusFiles map[string]string
}

// Compose service names the plan reads; nothing else in the file is run
// natively except through them (mysql and redis are the machine's, kafka is
// the dev broker, grafana and k6 are not started).
const (
	svcMigrate    = "migrate"
	svcAPI        = "api"
	svcWorker     = "worker"
	svcKafka      = "kafka"
	svcLB         = "lb"
	svcPrometheus = "prometheus"
)

// LoadCompose loads compose (docker-compose.yml) the way `docker compose
// --profile '*'` would, interpolating ${VAR:-default} from env (nil means
// every default), so SECKILL_ADMIN_TOKEN and friends can be overridden from
// the shell exactly as with Docker.
func LoadCompose(ctx context.Context, compose string, env []string) (*types.Project, error) {
	path, err := filepath.Abs(compose)
	if err != nil {
		return nil, err
	}
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithName("seckill"),
		cli.WithProfiles([]string{"*"}),
		cli.WithEnv(env),
	)
	if err != nil {
		return nil, err
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return p, nil
}

// NewPlan reads the native stack's plan from a loaded compose project. It
// fails when a service it needs is missing or when a setting it cannot
// translate appears (a SECKILL_* value naming a container that the Local
// table does not rewrite), so a compose change cannot silently diverge.
func NewPlan(p *types.Project) (Plan, error) {
	var plan Plan
	var err error
	for _, s := range []struct {
		name string
		dst  *Service
	}{{svcMigrate, &plan.Migrate}, {svcAPI, &plan.API}, {svcWorker, &plan.Worker}} {
		if *s.dst, err = seckillService(p, s.name); err != nil {
			return Plan{}, err
		}
	}

	kafka, ok := p.Services[svcKafka]
	if !ok {
		return Plan{}, fmt.Errorf("compose has no %s service", svcKafka)
	}
	plan.BrokerPartitions = 1
	if v := kafka.Environment["KAFKA_NUM_PARTITIONS"]; v != nil {
		if plan.BrokerPartitions, err = strconv.Atoi(*v); err != nil {
			return Plan{}, fmt.Errorf("kafka KAFKA_NUM_PARTITIONS %q: %w", *v, err)
		}
	}

	if plan.NginxConf, err = mounted(p, svcLB, "/etc/nginx/nginx.conf"); err != nil {
		return Plan{}, err
	}
	const promConf = "/etc/prometheus/prometheus.yml"
	if plan.PrometheusConf, err = mounted(p, svcPrometheus, promConf); err != nil {
		return Plan{}, err
	}
	plan.PrometheusFiles = bindMounts(p, svcPrometheus)
	for _, a := range p.Services[svcPrometheus].Command {
		switch {
		case a == "--config.file="+promConf:
			// Replaced by the rendered file.
		case strings.HasPrefix(a, "--config.file"), strings.HasPrefix(a, "--storage.tsdb.path"), strings.HasPrefix(a, "--web.listen-address"):
			return Plan{}, fmt.Errorf("prometheus flag %q: the native stack sets this one itself; update deploy/stack", a)
		default:
			plan.PrometheusArgs = append(plan.PrometheusArgs, a)
		}
	}
	return plan, nil
}

func seckillService(p *types.Project, name string) (Service, error) {
	s, ok := p.Services[name]
	if !ok {
		return Service{}, fmt.Errorf("compose has no %s service", name)
	}
	out := Service{Name: name, Command: slices.Clone([]string(s.Command)), Env: map[string]string{}, Replicas: max(1, s.GetScale()), Grace: 10 * time.Second}
	if len(out.Command) == 0 {
		return Service{}, fmt.Errorf("compose service %s has no command", name)
	}
	if s.StopGracePeriod != nil {
		out.Grace = time.Duration(*s.StopGracePeriod)
	}
	for k, v := range s.Environment {
		if !strings.HasPrefix(k, "SECKILL_") {
			continue
		}
		if v == nil {
			return Service{}, fmt.Errorf("%s sets %s without a value", name, k)
		}
		out.Env[k] = *v
		if _, rewritten := Local[k]; !rewritten && NamesContainer(p, *v) {
			return Service{}, fmt.Errorf("%s %s=%q points into the compose network, and the Local table has no native address for it", name, k, *v)
		}
	}
	return out, nil
}

func mounted(p *types.Project, service, target string) (string, error) {
	s, ok := p.Services[service]
	if !ok {
		return "", fmt.Errorf("compose has no %s service", service)
	}
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source, nil
		}
	}
	return "", fmt.Errorf("compose service %s mounts nothing at %s", service, target)
}

// NamesContainer reports whether v refers to an address that exists only
// inside the compose network: a compose service's host name (mysql:3306,
// redis:6379, kafka:9092) or the all-interfaces address a container binds.
func NamesContainer(p *types.Project, v string) bool {
	if strings.Contains(v, "0.0.0.0") {
		return true
	}
	for _, name := range p.ServiceNames() {
		for _, sep := range []string{"//" + name + ":", "(" + name + ":", "@" + name + ":"} {
			if strings.Contains(v, sep) {
				return true
			}
		}
		if strings.HasPrefix(v, name+":") {
			return true
		}
	}
	return false
}

// Addrs are the native addresses of one run of the stack.
type Addrs struct {
	MySQLDSN string // the database every seckill process uses
	Redis    string // host:port
	Broker   string // the dev broker's host:port
	HTTP     string // this instance's listen address
	// Traces is the OTLP/HTTP collector's host:port (the stack's Jaeger);
	// empty turns tracing off.
	Traces string
}

// Local is the one table of what the native stack changes in a compose
// service's environment: the addresses of the backends and of the instance
// itself, which differ between containers and one machine. Every other
// SECKILL_* setting is passed exactly as compose has it.
var Local = map[string]func(Addrs) string{
	"SECKILL_MYSQL_DSN":      func(a Addrs) string { return a.MySQLDSN },
	"SECKILL_REDIS_ADDR":     func(a Addrs) string { return a.Redis },
	"SECKILL_KAFKA_BROKERS":  func(a Addrs) string { return a.Broker },
	"SECKILL_HTTP_ADDR":      func(a Addrs) string { return a.HTTP },
	"SECKILL_TRACE_ENDPOINT": func(a Addrs) string { return a.Traces },
	// Tracing is on exactly when the stack runs a collector: compose's
	// default is off, since its jaeger service is in an optional profile.
	"SECKILL_TRACING": func(a Addrs) string {
		if a.Traces == "" {
			return "off"
		}
		return "otlp"
	},
}

// Added lists the only variables the native stack sets that compose does
// not: an instance name (compose's default, hostname-pid, would be the same
// machine for every process) and, when asked, a Redis key prefix (a test
// sharing the machine's Redis needs its own).
var Added = []string{"SECKILL_INSTANCE_ID", "SECKILL_REDIS_PREFIX"}

// NativeEnv is the SECKILL_* environment instance gets for s: compose's
// variables with the Local addresses substituted, plus the Added ones
// (prefix only when non-empty).
func NativeEnv(s Service, a Addrs, instance, redisPrefix string) map[string]string {
	env := maps.Clone(s.Env)
	for k, f := range Local {
		if _, ok := env[k]; ok {
			env[k] = f(a)
		}
	}
	env["SECKILL_INSTANCE_ID"] = instance
	if redisPrefix != "" {
		env["SECKILL_REDIS_PREFIX"] = redisPrefix
	}
	return env
}

// environ turns env into KEY=value lines, sorted so logs and tests read the
// same every run.
func environ(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// baseEnviron is this process's environment without any SECKILL_* variable:
// a developer's shell settings must not reach the processes, or the native
// stack would run with settings compose does not have.
func baseEnviron() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SECKILL_") {
			out = append(out, kv)
		}
	}
	return out
}
