# Sourced by test.sh and bench.sh: when AUDITSTREAM_TEST_DATABASE_URL is not set, install
# PostgreSQL with apt (when missing) and start a throwaway server on a free loopback port until
# the calling script exits. Exports AUDITSTREAM_TEST_DATABASE_URL.

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

pg_stop() { "${PG_STOP[@]}" >/dev/null 2>&1 || true; rm -rf "$PGTMP"; }

start_postgres() {
  if [ -z "$(pg_bin)" ]; then
    echo "==> installing PostgreSQL (Debian package postgresql)" >&2
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
    -o "-p $port -k $PGTMP -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB ${PG_EXTRA_OPTS:-}" start >/dev/null
  PG_STOP=("${run[@]}" "$bin/pg_ctl" -D "$PGTMP/data" -m immediate stop)
  trap pg_stop EXIT
  export AUDITSTREAM_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  echo "==> PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $PGTMP)" >&2
}
