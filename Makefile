# seckill — run `make` for the list of targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
# A K6 given in the environment or on the command line wins, then a k6 on
# PATH; without either, k6/docker.sh runs the official grafana/k6 image.
# k6 is AGPL-licensed: it runs beside this project, never built from its
# module into bin/.
ifndef K6
K6 := $(or $(shell command -v k6 2>/dev/null),$(CURDIR)/k6/docker.sh)
endif
# golangci-lint on PATH wins; only without one is it built into bin/.
GOLANGCI_BIN := $(BIN)/golangci-lint
GOLANGCI_VER := v2.15.0
ifndef GOLANGCI
GOLANGCI := $(or $(shell command -v golangci-lint 2>/dev/null),$(GOLANGCI_BIN))
endif
# Jaeger's own module (see the jaeger target); make stack runs bin/jaeger.
JAEGER_BIN := $(BIN)/jaeger
JAEGER_MOD := deploy/tools/jaeger
GOLANGCI_DEP := $(if $(filter $(GOLANGCI_BIN),$(GOLANGCI)),$(GOLANGCI_BIN))
TEST_FLAGS ?= -race -count=1 -timeout 15m
# -buildvcs=auto stamps the commit into the binary (seckill version, the
# seckill_build_info metric) whenever git can tell it, whatever GOFLAGS says.
BUILD_FLAGS ?= -buildvcs=auto
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# fail a healthy target with "context deadline exceeded" as the time runs
# out (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME  ?= 20000x

.PHONY: jaeger help run build test test-short fuzz chaos lab labs stack bench k6-smoke k6-spike k6-soldout k6-queue k6-bots up down logs lint screenshot clean

# Bold target names only on a terminal, so a piped `make help` is plain text.
help: ## list the targets
	@if [ -t 1 ]; then b=$$'\033[1m' n=$$'\033[0m'; fi; \
	awk -v b="$$b" -v n="$$n" 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %s%-12s%s %s\n", b, $$1, n, $$2}' $(MAKEFILE_LIST)

# The built binary, not `go run`, which exits 1 on SIGINT even after a clean
# shutdown. On a terminal, set -m runs seckill as its own foreground job, so
# Ctrl+C reaches seckill alone and make reports seckill's exit status (GNU
# make that receives SIGINT itself always dies of it). Saving the status keeps
# bash from exec'ing seckill in its own place, which would skip the job.
run: build ## start the whole system in one process on embedded backends, with two demo sales
	@if [ -t 0 ]; then set -m; fi; $(BIN)/seckill all; status=$$?; exit $$status

build: ## build bin/seckill
	$(GO) build $(BUILD_FLAGS) -o $(BIN)/seckill ./app/cmd/seckill

test: ## run every test with the race detector (real Redis/MariaDB when SECKILL_TEST_* are set)
	@if [ -z "$$SECKILL_TEST_REDIS_ADDR$$SECKILL_TEST_MYSQL_DSN" ]; then \
	  echo "note: SECKILL_TEST_REDIS_ADDR / SECKILL_TEST_MYSQL_DSN unset: real-service tests are skipped (see README)"; \
	else echo "real services: Redis $$SECKILL_TEST_REDIS_ADDR, MySQL $$SECKILL_TEST_MYSQL_DSN (adapter and end-to-end suites run against them$${CI:+; CI=true: unset would fail, not skip})"; fi
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test $(TEST_FLAGS) ./...

# The targets are found by name (func FuzzXxx in a _test.go file), so a new
# one is fuzzed without editing this file; go test -fuzz takes one target
# per run, hence the loop.
fuzz: ## run every native fuzz target for FUZZTIME each (default 20000x: that many inputs), one after the other
	@set -e; for f in $$(git ls-files '*_test.go' 2>/dev/null || find . -name '*_test.go'); do \
	  for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' $$f); do \
	    echo "== fuzz ./$$(dirname $$f) $$name ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f)/; \
	  done; \
	done
chaos: ## crash tests on real processes: SIGKILL workers/API/broker, restart Redis and MariaDB, fail over and reshard a Redis Cluster mid-sale; prints the reliability table
	@command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null || \
	  echo "note: redis-server, redis-cli, mariadbd or mariadb-install-db is missing: the scenarios that need it will FAIL (Debian: apt-get install redis-server mariadb-server)"
	SECKILL_TEST_MYSQL_DSN="$${SECKILL_TEST_MYSQL_DSN:-root@tcp(127.0.0.1:3306)/test}" \
	  SECKILL_CHAOS=1 $(GO) test -count=1 -timeout 12m -v -run . ./app/tests/chaos/

# LAB_FLAGS passes flags to seckill lab run, e.g. LAB_FLAGS='--redis-addr
# 127.0.0.1:6379 --mysql-dsn root@tcp(127.0.0.1:3306)/test' for the real
# services, or --http-addr to choose the dashboard's address (the labs use
# 127.0.0.1:8070, or a free port when it is taken). LAB_LINGER keeps each
# run's system and dashboard up that long after its figures (make labs: 0).
LAB_LINGER ?= 30s
lab: build ## run one workshop lab: make lab LAB=oversell (each run stays up LAB_LINGER=30s for the dashboard)
	@test -n "$(LAB)" || { echo "usage: make lab LAB=NAME; the labs are:"; $(BIN)/seckill lab list; exit 2; }
	$(BIN)/seckill lab run --linger=$(LAB_LINGER) $(LAB_FLAGS) $(LAB)

labs: build ## run every workshop lab, one after the other, and sum up (exit 1 if one shows no difference or cannot run)
	$(BIN)/seckill lab run --linger=0 $(LAB_FLAGS) all

# The compose topology as native processes (deploy/stack reads
# docker-compose.yml). Built binaries rather than `go run`, so Ctrl+C reaches
# the stack itself, which stops its children in order. STACK_MYSQL_DSN,
# STACK_REDIS_ADDR, STACK_LB_ADDR, STACK_PROMETHEUS_ADDR override the
# defaults; STACK_INSTALL=1 apt-get installs nginx and prometheus if missing.
stack: $(JAEGER_BIN) ## the compose topology without Docker: nginx, 2 serve, 2 worker, broker, Prometheus, Jaeger on this machine's Redis/MariaDB
	$(GO) build $(BUILD_FLAGS) -o $(BIN)/seckill ./app/cmd/seckill
	$(GO) build $(BUILD_FLAGS) -o $(BIN)/stack ./app/cmd/stack
	exec $(BIN)/stack -seckill $(BIN)/seckill -jaeger $(JAEGER_BIN) -compose $(CURDIR)/docker-compose.yml

bench: ## measure throughput as ratios against a baseline from the same run (real Redis/MariaDB, wrk)
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get update -qq && apt-get install -y -qq wrk; }
	$(GO) run ./app/tools/benchsale $(BENCH_FLAGS)

k6-smoke: ## k6: one user logs in, buys and sees confirmed (starts the system if BASE_URL is unset)
	K6=$(K6) ./k6/run.sh smoke.js

k6-spike: ## k6: thousands of users spike one item; fails on oversell or inconsistency
	K6=$(K6) ./k6/run.sh spike.js

k6-soldout: ## k6: sustained hammering after the item is sold out
	K6=$(K6) ./k6/run.sh soldout.js

k6-queue: ## k6: a waiting room (pre-queue, FIFO, single-use admissions); fails on a FIFO break, an admission sold twice or an oversell
	K6=$(K6) ./k6/run.sh queue.js

# The difficulty bounds are higher than run.sh's spike defaults so the
# solver bot's cost shows, and low enough for k6's JavaScript SHA-256.
k6-bots: ## k6: bots (skip the ticket, replay one, solve at full CPU) against honest users on a pow sale; prints units won per strategy
	K6=$(K6) SECKILL_POW_MIN_DIFFICULTY=$${SECKILL_POW_MIN_DIFFICULTY:-10} SECKILL_POW_MAX_DIFFICULTY=$${SECKILL_POW_MAX_DIFFICULTY:-16} ./k6/run.sh bots.js

up: ## docker compose: the full stack (MySQL, Redis, Kafka, nginx, 2 API replicas, 2 workers, Prometheus)
	docker compose up -d --build

down: ## docker compose: stop and remove the stack
	docker compose down -v

logs: ## docker compose: follow the logs
	docker compose logs -f --tail=100

# Jaeger v2 (module v1.75.0 = release 2.12.0, the compose image's), built
# as a Go tool the way make stack uses Debian's nginx and Prometheus. It is
# pinned in a module of its own (deploy/tools/jaeger), so its ~330
# dependencies stay out of go.mod; `go install ...@v1.75.0` cannot build it
# (Jaeger's go.mod has a replace directive). Rebuilt when the pin changes.
$(JAEGER_BIN): $(JAEGER_MOD)/go.mod $(JAEGER_MOD)/go.sum
	@echo "building jaeger ($(JAEGER_MOD)) into bin/ (the first build compiles ~2,300 packages: 5 to 20 minutes; later ones link in seconds)"
	cd $(JAEGER_MOD) && $(GO) build -o $(JAEGER_BIN) github.com/jaegertracing/jaeger/cmd/jaeger

jaeger: $(JAEGER_BIN) ## build the Jaeger trace viewer into bin/ (make stack runs it; alone: bin/jaeger, UI :16686, OTLP/HTTP :4318)

$(GOLANGCI_BIN):
	@echo "installing golangci-lint $(GOLANGCI_VER) into bin/ (builds from source, a few minutes the first time)"
	GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VER)

lint: $(GOLANGCI_DEP) ## go vet, gofmt and golangci-lint (.golangci.yml; built into bin/ if missing)
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GOLANGCI) run ./...

screenshot: ## regenerate docs/screenshot.png, docs/dashboard.png (a spike), docs/dashboard-queue.png (a queued spike) and docs/labs/dashboard-lingering.png (a lingering lab) in headless Chromium
	SECKILL_SCREENSHOT=$(CURDIR)/docs/screenshot.png SECKILL_SCREENSHOT_DASHBOARD=$(CURDIR)/docs/dashboard.png SECKILL_SCREENSHOT_DASHBOARD_QUEUE=$(CURDIR)/docs/dashboard-queue.png SECKILL_SCREENSHOT_LAB=$(CURDIR)/docs/labs/dashboard-lingering.png $(GO) test -count=1 -run TestBrowser ./app/tests/e2e/

clean: ## remove build output (bin/) and any kept SQLite file in var/
	rm -rf $(BIN) var
