#!/usr/bin/env bash
# Runs the whole test suite, race detector on, against SQLite and PostgreSQL.
#
# It sets up what the tests need on a fresh Debian machine: when AUDITSTREAM_TEST_DATABASE_URL
# is not set, it installs PostgreSQL with apt (when missing) and starts a throwaway server on a
# free loopback port for the duration of the run. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

start_postgres() {
  if [ -z "$(pg_bin)" ]; then
    log "installing PostgreSQL (Debian package postgresql)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local bin; bin=$(pg_bin)
  PGTMP=$(mktemp -d /tmp/auditstream-pg.XXXXXX)
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55433)
  local run=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$PGTMP"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bin/initdb" -D "$PGTMP/data" -A trust -U postgres >"$PGTMP/initdb.log" 2>&1 || { cat "$PGTMP/initdb.log" >&2; exit 1; }
  "${run[@]}" "$bin/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w -t 60 \
    -o "-p $port -k $PGTMP -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 -c shared_buffers=256MB" start >/dev/null
  trap 'runuser_stop' EXIT
  export AUDITSTREAM_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $PGTMP)"
  PG_STOP=("${run[@]}" "$bin/pg_ctl" -D "$PGTMP/data" -m immediate stop)
}

runuser_stop() { "${PG_STOP[@]}" >/dev/null 2>&1 || true; rm -rf "$PGTMP"; }

if [ -z "${AUDITSTREAM_TEST_DATABASE_URL:-}" ]; then
  start_postgres
fi

log "go vet"
go vet ./...
log "go test -race ./..."
go test -race -count=1 -timeout 45m "$@" ./...
log "fuzzing the decoders briefly"
go test -run='^$' -fuzz='^FuzzIngestDecode$' -fuzztime=15s ./internal/ingest
go test -run='^$' -fuzz='^FuzzAppendString$' -fuzztime=10s ./internal/event
