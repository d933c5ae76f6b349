#!/usr/bin/env bash
# Runs the load scenarios of docs/benchmarks.md against the real binary, each on a fresh data
# directory, and prints loadgen's report for each. Everything runs on this machine on loopback.
#   scripts/bench.sh            all scenarios
#   scripts/bench.sh batch lag  only those (batch single steady lag lag-pg sync)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh

BIN=$(mktemp -d /tmp/auditstream-bench.XXXXXX)
go build -o "$BIN/auditstream" ./cmd/auditstream
go build -o "$BIN/loadgen" ./cmd/loadgen
TOKEN=ast-bench-admin-token-0123456789
PORT=18480
SERVER_PID=

stop_server() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null; SERVER_PID=; }
cleanup() { stop_server; rm -rf "$BIN"; pg_stop 2>/dev/null || true; }
trap cleanup EXIT

# serve [flags…]: start a fresh server and wait until it is ready.
serve() {
  stop_server
  rm -rf "$BIN/data"
  AUDITSTREAM_ADMIN_TOKEN=$TOKEN "$BIN/auditstream" serve --data-dir "$BIN/data" --listen 127.0.0.1:$PORT \
    --log-level warn --ingest-rate 0 "$@" >"$BIN/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/-/ready >/dev/null && return; sleep 0.1; done
  cat "$BIN/server.log" >&2; exit 1
}

load() { "$BIN/loadgen" -url http://127.0.0.1:$PORT -token $TOKEN -pid "$SERVER_PID" "$@"; }

title() { echo; echo "### $*"; }

scenario() {
  case "$1" in
    batch)  title "batched ingest: NDJSON, 1,000 events of 1 KB per request, 4 clients, 20 s"
            serve; load -mode batch -batch 1000 -clients 4 -duration 20s ;;
    single) title "single-event requests, 64 clients, 20 s"
            serve; load -mode single -clients 64 -duration 20s ;;
    steady) title "steady 2,000 single events/s from 64 clients, 30 s: ack latency"
            serve; load -mode steady -rate 2000 -clients 64 -duration 30s ;;
    lag)    title "store lag, SQLite: steady 20,000 events/s (100 per request, 8 clients) for 60 s"
            serve; load -mode steady -rate 20000 -batch 100 -clients 8 -duration 60s ;;
    lag-pg) [ -n "${AUDITSTREAM_TEST_DATABASE_URL:-}" ] || start_postgres
            title "store lag, PostgreSQL: steady 20,000 events/s (100 per request, 8 clients) for 60 s"
            serve --database-url "$AUDITSTREAM_TEST_DATABASE_URL"; load -mode steady -rate 20000 -batch 100 -clients 8 -duration 60s ;;
    sync)   title "batched ingest with --log-sync-always (fsync before every ack), 4 clients, 20 s"
            serve --log-sync-always; load -mode batch -batch 1000 -clients 4 -duration 20s ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
  stop_server
}

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(batch single steady lag lag-pg sync)
echo "auditstream load scenarios on $(nproc) cores, $(date -u +%F), commit $(git rev-parse --short HEAD 2>/dev/null || echo none)"
for s in "${scenarios[@]}"; do scenario "$s"; done
