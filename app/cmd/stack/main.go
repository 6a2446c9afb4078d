// Command stack is `make stack`: the docker-compose.yml topology as native
// processes on this machine (nginx, two seckill serve, two seckill worker,
// seckill broker, Prometheus, and Jaeger when -jaeger names it) against the machine's Redis and MariaDB, in a
// database and a Redis key prefix of its own that it drops on exit. It
// prints the load balancer's, the dashboard's, Prometheus's and Jaeger's URLs and the
// admin token, stays in the foreground, and on Ctrl+C or SIGTERM stops
// everything it started. It runs in development mode (compose's SECKILL_DEV)
// with every address on 127.0.0.1.
// The plan is read from docker-compose.yml itself (package deploy/stack).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"seckill/deploy/stack"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

// envOr is the value of the environment variable key, or def when unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	compose := fs.String("compose", "docker-compose.yml", "the compose file the stack is read from")
	seckill := fs.String("seckill", "bin/seckill", "the seckill binary (make stack builds it)")
	jaegerUI := fs.String("jaeger-ui", envOr("STACK_JAEGER_UI", ""), "a jaeger-ui build directory for Jaeger to serve (a Jaeger built from the Go module has no UI assets; its HTTP API works without) (env STACK_JAEGER_UI)")
	jaeger := fs.String("jaeger", envOr("STACK_JAEGER", ""), "the Jaeger binary (make jaeger builds it); set, the stack runs it and turns tracing on in every API and worker; empty, tracing is off (env STACK_JAEGER)")
	dir := fs.String("dir", "", "directory for rendered configs, logs and Prometheus data; empty means a new temp dir")
	mysqlDSN := fs.String("mysql-dsn", envOr("STACK_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/seckill"), "MariaDB/MySQL server; each run creates a database of its own named after this DSN's (seckill_stack_<random>) and drops it on exit (env STACK_MYSQL_DSN)")
	redisAddr := fs.String("redis-addr", envOr("STACK_REDIS_ADDR", "127.0.0.1:6379"), "Redis host:port (env STACK_REDIS_ADDR)")
	redisPrefix := fs.String("redis-prefix", envOr("STACK_REDIS_PREFIX", ""), "Redis key prefix for every process; empty gives each run a fresh one whose keys are deleted on exit (env STACK_REDIS_PREFIX)")
	lbAddr := fs.String("lb-addr", envOr("STACK_LB_ADDR", ""), "the load balancer's address; empty picks a free 127.0.0.1 port (env STACK_LB_ADDR)")
	promAddr := fs.String("prometheus-addr", envOr("STACK_PROMETHEUS_ADDR", ""), "Prometheus's address; empty picks a free 127.0.0.1 port (env STACK_PROMETHEUS_ADDR)")
	install := fs.Bool("install", os.Getenv("STACK_INSTALL") == "1", "apt-get install nginx and prometheus when missing (env STACK_INSTALL=1)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nginx, prom, err := tools(ctx, *install, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat(*seckill); err != nil {
		return fmt.Errorf("seckill binary %s: %w (make stack builds it; or go build -o bin/seckill ./app/cmd/seckill)", *seckill, err)
	}
	p, err := stack.LoadCompose(ctx, *compose, os.Environ())
	if err != nil {
		return err
	}
	plan, err := stack.NewPlan(p)
	if err != nil {
		return err
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "seckill-stack-*"); err != nil {
			return err
		}
	}
	if *jaeger != "" {
		if _, err := os.Stat(*jaeger); err != nil {
			return fmt.Errorf("jaeger binary %s: %w (make jaeger builds it)", *jaeger, err)
		}
	}
	fmt.Fprintf(stderr, "stack: %d api, %d worker, broker, nginx, prometheus; working directory %s\n", plan.API.Replicas, plan.Worker.Replicas, *dir)
	s, err := stack.Start(ctx, plan, stack.Options{
		Seckill: *seckill, Nginx: nginx, Prom: prom, Jaeger: *jaeger, JaegerUI: *jaegerUI, Dir: *dir,
		MySQLDSN: *mysqlDSN, Redis: *redisAddr, RedisPrefix: *redisPrefix,
		LBAddr: *lbAddr, PromAddr: *promAddr, Log: stderr,
	})
	if err != nil {
		return err
	}
	defer s.Stop()

	printBanner(stdout, s)
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "stack: signal received; stopping gracefully")
		return nil
	case msg := <-s.Exited():
		return errors.New(msg)
	}
}

// printBanner says where everything of the running stack is.
func printBanner(stdout io.Writer, s *stack.Stack) {
	fmt.Fprintf(stdout, "\n  seckill stack is running (the docker-compose.yml topology, native)\n\n")
	fmt.Fprintf(stdout, "  Load balancer: %s/        admin page: %s/admin\n", s.LBURL, s.LBURL)
	fmt.Fprintf(stdout, "  Dashboard:     %s\n", s.DashboardURL)
	fmt.Fprintf(stdout, "  Prometheus:    %s\n", s.TargetsURL)
	if s.JaegerURL != "" {
		fmt.Fprintf(stdout, "  Jaeger:        %s/api/traces?service=seckill-api (the UI, %s/search, needs -jaeger-ui)\n", s.JaegerURL, s.JaegerURL)
	}
	fmt.Fprintf(stdout, "  Database:      %s (this run's own; dropped on exit)\n", s.Database)
	fmt.Fprintf(stdout, "  Admin token:   %s\n", s.AdminToken)
	fmt.Fprintf(stdout, "  APIs:          %v\n  Workers:       %v\n", s.APIs, s.Workers)
	fmt.Fprintf(stdout, "  Logs:          %s/logs\n\n", s.Dir)
	fmt.Fprintf(stdout, "  k6 against it: BASE_URL=%s ADMIN_TOKEN=%s make k6-spike\n", s.LBURL, s.AdminToken)
	fmt.Fprintf(stdout, "  Press Ctrl+C to stop everything.\n\n")

}

// tools finds nginx and prometheus, installing the Debian packages first
// when asked and either is missing.
func tools(ctx context.Context, install bool, stderr io.Writer) (nginx, prom string, err error) {
	nginx, errN := stack.FindTool("nginx")
	prom, errP := stack.FindTool("prometheus")
	if errN == nil && errP == nil {
		return nginx, prom, nil
	}
	if !install {
		return "", "", errors.Join(errN, errP)
	}
	fmt.Fprintln(stderr, "stack: installing nginx and prometheus (apt-get)")
	cmd := exec.CommandContext(ctx, "sh", "-c", "apt-get update -qq && apt-get install -y -qq nginx prometheus")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("apt-get install nginx prometheus: %w", err)
	}
	if nginx, err = stack.FindTool("nginx"); err != nil {
		return "", "", err
	}
	prom, err = stack.FindTool("prometheus")
	return nginx, prom, err
}
