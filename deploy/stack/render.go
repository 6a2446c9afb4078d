package stack

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// NginxParams are the native values substituted into the project's
// nginx.conf.
type NginxParams struct {
	Listen    string   // host:port the load balancer listens on
	Upstream  string   // the upstream's server name in the file (the api service)
	Port      int      // the upstream's port in the file (the api's listen port)
	Servers   []string // host:port of every API process
	Dir       string   // nginx's prefix: pid, logs and temp files go here
	RunAsRoot bool     // the stack runs as root (nginx would switch its workers to nobody)
	// MaxOpenFiles is this machine's hard limit on open files; a larger
	// worker_rlimit_nofile is lowered to it (0 leaves the file's value).
	MaxOpenFiles uint64
}

var (
	reNginxResolver = regexp.MustCompile(`(?m)^(\s*)(resolver|resolver_timeout)\s[^;]*;`)
	reNginxServer   = regexp.MustCompile(`(?m)^(\s*)server\s+([A-Za-z0-9_.-]+):(\d+)([^;]*);`)
	reNginxListen   = regexp.MustCompile(`(?m)^(\s*)listen\s+(\d+)\s*;`)
	reNginxAccess   = regexp.MustCompile(`(?m)^(\s*)access_log\s+(/\S+)`)
	reNginxHTTP     = regexp.MustCompile(`(?m)^http\s*\{\s*$`)
	reNginxRlimit   = regexp.MustCompile(`(?m)^(\s*)worker_rlimit_nofile\s+(\d+)\s*;`)
)

// RenderNginx rewrites the project's nginx.conf for one machine: the
// upstream's DNS name becomes one server line per API process (`resolve`
// dropped: there is no Docker DNS to re-resolve), the listen port becomes
// p.Listen, the access log, pid, error log and temp paths move into p.Dir,
// and nginx stays in the foreground. Everything else (keepalive, timeouts,
// retries, headers, the health location) is the file's own. Each rewrite
// must find what it rewrites, so a changed nginx.conf fails loudly here
// instead of running with, say, Docker's resolver address.
func RenderNginx(src string, p NginxParams) (string, error) {
	e := &nginxEdit{out: src}
	n := e.replace(reNginxResolver, func(sm []string) (string, bool) {
		indent := sm[0][:len(sm[0])-len(strings.TrimLeft(sm[0], " \t"))]
		return indent + "# (make stack: no Docker DNS here) " + strings.TrimSpace(sm[0]), true
	})
	e.must("resolver directives", min(n, 1), 1)
	e.must("upstream server "+p.Upstream, e.replace(reNginxServer, func(sm []string) (string, bool) { return e.upstream(sm, p) }), 1)
	e.must("listen", e.replace(reNginxListen, func(sm []string) (string, bool) {
		return sm[1] + "listen " + p.Listen + ";", true
	}), 1)
	e.must("access_log with a path", e.replace(reNginxAccess, func(sm []string) (string, bool) {
		return sm[1] + "access_log " + p.Dir + "/access.log", true
	}), 1)
	e.replace(reNginxRlimit, func(sm []string) (string, bool) { return rlimit(sm, p.MaxOpenFiles), true })
	e.must("http block", e.replace(reNginxHTTP, func(sm []string) (string, bool) {
		// Every temp path in the prefix: the compiled-in ones are under
		// /var/lib/nginx, which an unprivileged user cannot write.
		var b strings.Builder
		b.WriteString(sm[0] + "\n    # (make stack) temp files in the stack's directory\n")
		for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			fmt.Fprintf(&b, "    %s_temp_path %s/%s_temp;\n", t, p.Dir, t)
		}
		return strings.TrimSuffix(b.String(), "\n"), true
	}), 1)
	if len(e.errs) > 0 {
		return "", fmt.Errorf("render nginx.conf: %s", strings.Join(e.errs, "; "))
	}
	head := "# Rendered by deploy/stack from deploy/nginx/nginx.conf for make stack.\n" +
		"daemon off;\n" +
		"pid " + p.Dir + "/nginx.pid;\n" +
		"error_log " + p.Dir + "/error.log warn;\n"
	if p.RunAsRoot {
		// The stack's directory is private to the user who runs it; workers
		// switched to nobody could not write their temp files there.
		head += "user root;\n"
	}
	return head + "\n" + e.out, nil
}

// nginxEdit rewrites a config with regexps and collects every rewrite that
// did not find what it expected, so one error names them all.
type nginxEdit struct {
	out  string
	errs []string
}

// replace rewrites each match of re (fn gets its submatches) and returns
// how many rewrites fn counted.
func (e *nginxEdit) replace(re *regexp.Regexp, fn func(sm []string) (string, bool)) int {
	n := 0
	e.out = re.ReplaceAllStringFunc(e.out, func(m string) string {
		repl, counted := fn(re.FindStringSubmatch(m))
		if counted {
			n++
		}
		return repl
	})
	return n
}

// must records an error unless n is want.
func (e *nginxEdit) must(what string, n, want int) {
	if n != want {
		e.errs = append(e.errs, fmt.Sprintf("%s: found %d, want %d", what, n, want))
	}
}

// upstream turns the api service's one server line into one per native
// replica, keeping its parameters but Docker's "resolve"; a server that is
// not the api service is an error and stays as it is.
func (e *nginxEdit) upstream(sm []string, p NginxParams) (string, bool) {
	if sm[2] != p.Upstream || sm[3] != strconv.Itoa(p.Port) {
		e.errs = append(e.errs, fmt.Sprintf("upstream server %s:%s is not the api service (%s:%d)", sm[2], sm[3], p.Upstream, p.Port))
		return sm[0], false
	}
	var params []string
	for _, f := range strings.Fields(sm[4]) {
		if f != "resolve" {
			params = append(params, f)
		}
	}
	var b strings.Builder
	for i, s := range p.Servers {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(sm[1] + "server " + strings.Join(append([]string{s}, params...), " ") + ";")
	}
	return b.String(), true
}

// rlimit lowers worker_rlimit_nofile to the machine's hard limit: above it
// an unprivileged nginx cannot raise it and logs an alert on every start
// (the container gets its own limit).
func rlimit(sm []string, maxOpen uint64) string {
	want, _ := strconv.ParseUint(sm[2], 10, 64)
	if maxOpen == 0 || want <= maxOpen {
		return sm[0]
	}
	return fmt.Sprintf("%sworker_rlimit_nofile %d; # (make stack) the file's %d is above this machine's hard limit", sm[1], maxOpen, want)
}

// PrometheusParams are the native values substituted into the project's
// prometheus.yml.
type PrometheusParams struct {
	// Targets maps a compose service name looked up by dns_sd_configs to
	// the host:port of each of its processes.
	Targets map[string][]string
	// Ports maps the same names to the port the service listens on in
	// compose, which the dns_sd_configs entry must name.
	Ports map[string]int
	// Interval replaces the global scrape and evaluation intervals.
	Interval time.Duration
	// Files maps the container paths the prometheus service mounts to
	// their host paths; rule_files are rewritten through it.
	Files map[string]string
}

// RenderPrometheus rewrites the project's prometheus.yml for one machine:
// every dns_sd_configs A lookup of a compose service becomes static_configs
// listing its native processes, and the global intervals become p.Interval.
// Job names and metrics paths stay the file's own. A lookup of an unknown
// service, or of a port the service does not listen on in compose (the
// mistake that leaves a target down), is an error.
func RenderPrometheus(src []byte, p PrometheusParams) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("prometheus.yml: %w", err)
	}
	global, _ := doc["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
		doc["global"] = global
	}
	global["scrape_interval"] = p.Interval.String()
	global["evaluation_interval"] = p.Interval.String()
	if err := renderRuleFiles(doc, p.Files); err != nil {
		return nil, err
	}

	scs, _ := doc["scrape_configs"].([]any)
	if len(scs) == 0 {
		return nil, fmt.Errorf("prometheus.yml has no scrape_configs")
	}
	for _, raw := range scs {
		sc, _ := raw.(map[string]any)
		sds, _ := sc["dns_sd_configs"].([]any)
		if len(sds) == 0 {
			return nil, fmt.Errorf("scrape config %v has no dns_sd_configs; deploy/stack renders only those", sc["job_name"])
		}
		var targets []string
		for _, rsd := range sds {
			sd, _ := rsd.(map[string]any)
			port, _ := sd["port"].(int)
			names, _ := sd["names"].([]any)
			for _, rn := range names {
				name, _ := rn.(string)
				want, known := p.Ports[name]
				switch {
				case !known:
					return nil, fmt.Errorf("job %v looks up %q, which the stack does not run", sc["job_name"], name)
				case port != want:
					return nil, fmt.Errorf("job %v scrapes %s on port %d, but %s listens on %d in compose", sc["job_name"], name, port, name, want)
				}
				targets = append(targets, p.Targets[name]...)
			}
		}
		delete(sc, "dns_sd_configs")
		sc["static_configs"] = []any{map[string]any{"targets": targets}}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Rendered by deploy/stack from deploy/prometheus/prometheus.yml for make stack.\n"), out...), nil
}

// portOf is the port of a host:port listen address.
func portOf(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(port)
}
