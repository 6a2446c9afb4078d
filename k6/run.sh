#!/usr/bin/env bash
# Runs one k6 script against seckill.
#
#   k6/run.sh <script.js> [extra k6 run args...]
#
# BASE_URL unset: builds seckill, starts `seckill all` on 127.0.0.1:18080 with
#   a fixed admin token and a throw-away SQLite file (embedded Redis and Kafka
#   unless SECKILL_REDIS_ADDR / SECKILL_KAFKA_BROKERS / SECKILL_MYSQL_DSN are
#   set, which pass through), waits for /readyz, runs k6, and stops the system
#   again whatever happens. The server log is kept in a temp dir and its tail
#   printed if k6 fails.
# BASE_URL set: runs k6 against it; ADMIN_TOKEN must be set too.
#
# K6 is the k6 binary (default: k6 on PATH; the Makefile passes k6/docker.sh,
# the official image, when there is none).
# k6's REST API is turned on at K6_REST_ADDR (default 127.0.0.1:6565): spike.js
# reads its accepted counter there in teardown.
# Exit status: k6's.
set -euo pipefail
cd "$(dirname "$0")/.."

script=${1:?usage: k6/run.sh <script.js> [k6 run args...]}
shift
script=${script#k6/}
[ -f "k6/$script" ] || { echo "run.sh: no such script k6/$script" >&2; exit 2; }
K6=${K6:-k6}
command -v "$K6" >/dev/null 2>&1 || { echo "run.sh: k6 not found at '$K6' (install k6, or docker for k6/docker.sh)" >&2; exit 2; }
rest_addr=${K6_REST_ADDR:-127.0.0.1:6565}

# k6's own log (console.warn of the scripts, k6's warnings) is kept beside
# the terminal, so a failing run can count its distinct causes.
k6_log=$(mktemp "${TMPDIR:-/tmp}/seckill-k6-log.XXXXXX")
run_k6() {
  local s
  # A pipeline, not a process substitution, so tee has written everything
  # before the causes are counted; fd 3 keeps k6's stdout on the terminal.
  { "$K6" run --address "$rest_addr" "$@" "k6/$script" 2>&1 1>&3 | tee "$k6_log" >&2; s=${PIPESTATUS[0]}; } 3>&1
  return "$s"
}

# causes prints the distinct lines of a log with their counts, most
# frequent first: the time, request and order ids, ports and numbers are
# blanked, so 40 copies of one refusal read as one line with "40".
causes() {
  sed -E -e 's/time="?[^" ]*"? ?//; s/(request_id|order_id|user|trace_id)=[^ ]*/\1=…/g' \
    -e 's/[0-9]+-[0-9a-f]{28}/…/g; s/\[ *[0-9]+\]//; s/:[0-9]{2,5}\b/:…/g; s/[0-9]+(\.[0-9]+)?(ms|s|µs)?/N/g' "$1" |
    sort | uniq -c | sort -rn | head -n "${2:-15}"
}

# report_causes, on failure, lists what went wrong by distinct cause.
report_causes() {
  if [ -s "$k6_log" ] && grep -qE 'level=(warning|error)' "$k6_log"; then
    echo "run.sh: k6 warnings and errors, by distinct cause (count, line):" >&2
    grep -E 'level=(warning|error)' "$k6_log" | causes /dev/stdin >&2
  fi
  if [ -n "${1:-}" ] && [ -s "$1" ]; then
    echo "run.sh: server log warnings and errors, by distinct cause (count, line; whole log: $1):" >&2
    grep -E 'level=(WARN|ERROR)' "$1" | causes /dev/stdin >&2 || true
  fi
}

if [ -n "${BASE_URL:-}" ]; then
  : "${ADMIN_TOKEN:?run.sh: with BASE_URL set, ADMIN_TOKEN must be set to the admin token of the server}"
  export BASE_URL ADMIN_TOKEN RUNNER_API="http://$rest_addr"
  set +e
  run_k6 "$@"
  status=$?
  [ "$status" -eq 0 ] || report_causes
  rm -f "$k6_log"
  exit "$status"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/seckill-k6.XXXXXX")
addr=127.0.0.1:18080
stamp=$(date +%s)-$$
server_pid=""

stop_server() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    echo "run.sh: stopping seckill (pid $server_pid)" >&2
    kill -TERM "$server_pid" 2>/dev/null || true
    # Graceful shutdown flushes the outbox and the worker's batch; give it
    # the shutdown timeout, then cut it off.
    for _ in $(seq 1 200); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "run.sh: seckill did not stop within 20s; killing it" >&2
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    report_causes "$tmp/server.log"
  else
    rm -rf "$tmp"
  fi
  rm -f "$k6_log"
  exit "$status"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "run.sh: building seckill" >&2
# A built binary rather than `go run`, so SIGTERM reaches seckill itself and
# its graceful shutdown runs.
go build -o "$tmp/seckill" ./app/cmd/seckill

export SECKILL_HTTP_ADDR=$addr
export SECKILL_ADMIN_TOKEN=${SECKILL_ADMIN_TOKEN:-k6-admin-token-0000000001}
export SECKILL_TOKEN_SECRET=${SECKILL_TOKEN_SECRET:-k6-token-secret-0000000001}
# The two defaults above are published in this repository, which seckill
# refuses outside development mode; this local load run is one.
export SECKILL_DEV=${SECKILL_DEV:-1}
export SECKILL_SQLITE_PATH=$tmp/seckill.db
export SECKILL_SEED_DEMO=${SECKILL_SEED_DEMO:-false}
export SECKILL_LOG_LEVEL=${SECKILL_LOG_LEVEL:-warn}
# k6 solves proofs of work in JavaScript at about 90k SHA-256/s per VU, far
# slower than the sale page's worker: keep the difficulty low enough that a
# spike of thousands of users measures the server, not k6's hashing
# (docs/FAIRNESS.md). bots.js raises them (Makefile, k6-bots).
export SECKILL_POW_MIN_DIFFICULTY=${SECKILL_POW_MIN_DIFFICULTY:-8}
export SECKILL_POW_MAX_DIFFICULTY=${SECKILL_POW_MAX_DIFFICULTY:-12}
# The scripts use fresh users per attempt; the per-user limit is not under test.
export SECKILL_USER_RATE=${SECKILL_USER_RATE:-1000}
export SECKILL_USER_BURST=${SECKILL_USER_BURST:-1000}
# A fresh SQLite numbers items from 1 again: against a shared real Redis or
# Kafka, keep this run's keys and topics apart from earlier runs'.
if [ -n "${SECKILL_REDIS_ADDR:-}" ]; then
  export SECKILL_REDIS_PREFIX=${SECKILL_REDIS_PREFIX:-k6-$stamp}
fi
if [ -n "${SECKILL_KAFKA_BROKERS:-}" ]; then
  export SECKILL_KAFKA_TOPIC=${SECKILL_KAFKA_TOPIC:-seckill.k6-$stamp.orders}
  export SECKILL_KAFKA_DLQ_TOPIC=${SECKILL_KAFKA_DLQ_TOPIC:-seckill.k6-$stamp.orders.dlq}
  export SECKILL_KAFKA_GROUP=${SECKILL_KAFKA_GROUP:-seckill-k6-$stamp}
fi

echo "run.sh: starting seckill all on $addr (log: $tmp/server.log)" >&2
"$tmp/seckill" all >"$tmp/server.log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 120); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run.sh: seckill exited during start-up" >&2
    server_pid=""
    exit 1
  fi
  if curl -fsS -o /dev/null --max-time 2 "http://$addr/readyz" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.5
done
[ -n "$ready" ] || { echo "run.sh: seckill not ready within 60s" >&2; exit 1; }

export BASE_URL="http://$addr" ADMIN_TOKEN="$SECKILL_ADMIN_TOKEN" RUNNER_API="http://$rest_addr"
echo "run.sh: open the dashboard and watch: $BASE_URL/dashboard" >&2
set +e
run_k6 "$@"
k6_status=$?
set -e
exit "$k6_status"
