#!/usr/bin/env bash
# Scale-out numbers of docs/deployment.md: a three-node NATS cluster (nats-server built from the
# module go.mod already depends on), PostgreSQL, and 1 then 2 auditstream replicas, all on this
# machine on loopback. For each replica count, on a fresh cluster and database:
#   ingest    batched ingest through every replica at once (one loadgen per replica, 20 s)
#   delivery  fan-out to 10 HTTP destinations (a backlog of 20,000 events each), which every
#             replica's engine pulls from the shared consumers
#   scripts/bench-cluster.sh            both replica counts
#   REPLICAS="2" scripts/bench-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh

REV="$(git rev-parse --short HEAD 2>/dev/null || echo none)"
git diff --quiet HEAD -- internal cmd/auditstream go.mod go.sum 2>/dev/null || REV="$REV + uncommitted changes"
BIN=$(mktemp -d /tmp/auditstream-bench-cluster.XXXXXX)
go build -o "$BIN/auditstream" ./cmd/auditstream
go build -o "$BIN/loadgen" ./cmd/loadgen
go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2
TOKEN=ast-bench-admin-token-0123456789
KEY=$(head -c 32 /dev/urandom | base64)
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done; PIDS=(); }
cleanup() { stop_all; rm -rf "$BIN"; [ -z "${PGTMP:-}" ] || pg_stop; }
trap cleanup EXIT
[ -n "${AUDITSTREAM_TEST_DATABASE_URL:-}" ] || { PG_EXTRA_OPTS="-c fsync=off" start_postgres; trap cleanup EXIT; }

# ticks PIDS…: CPU time (clock ticks, user + system) the processes have used so far.
ticks() { local p t=0; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
# cpu_split SECONDS BEFORE…: prints where the CPU went since the BEFORE snapshot (nats replicas postgres).
# PostgreSQL: the postmaster and its backends (run as postgres under root, as the caller
# otherwise), when this script started it; an outside server is not counted.
pg_pids() { local pm; [ -n "${PGTMP:-}" ] && pm=$(head -1 "$PGTMP/data/postmaster.pid" 2>/dev/null) || return 0; echo "$pm" $(pgrep -P "$pm"); }
snapshot() { echo "$(ticks "${NATS_PIDS[@]}") $(ticks "${REPLICA_PIDS[@]}") $(ticks $(pg_pids))"; }
cpu_split() {
  local secs=$1 hz; hz=$(getconf CLK_TCK); read -r n0 r0 p0 <<<"$2"; read -r n1 r1 p1 <<<"$(snapshot)"
  awk -v s="$secs" -v hz="$hz" -v n=$((n1 - n0)) -v r=$((r1 - r0)) -v p=$((p1 - p0)) 'BEGIN {
    printf "  CPU over %ss, in cores: NATS (3 servers) %.2f, replicas %.2f, PostgreSQL %.2f\n", s, n/hz/s, r/hz/s, p/hz/s }'
}

wait_url() { for _ in $(seq 300); do curl -sf "$1" >/dev/null && return; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }

# cluster N: three NATS nodes, fresh; then N replicas on a fresh database. Sets URLS.
cluster() {
  local n=$1 run=$2 routes="" urls="" i
  for i in 1 2 3; do routes+="${routes:+,}nats://127.0.0.1:$((17220 + i))"; urls+="${urls:+,}nats://127.0.0.1:$((17210 + i))"; done
  NATS_PIDS=() REPLICA_PIDS=()
  for i in 1 2 3; do
    rm -rf "$BIN/n$i"
    "$BIN/nats-server" -js -sd "$BIN/n$i" -n "n$i" -a 127.0.0.1 -p $((17210 + i)) -m $((17230 + i)) \
      --cluster_name bench --cluster "nats://127.0.0.1:$((17220 + i))" --routes "$routes" >"$BIN/n$i.log" 2>&1 &
    PIDS+=($!) NATS_PIDS+=($!)
  done
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:17231/jsz" | grep -q '"leader"' && break; sleep 0.1; done
  local db="bench_$run"
  "$(pg_bin)/psql" "$AUDITSTREAM_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  local dburl="${AUDITSTREAM_TEST_DATABASE_URL/\/postgres\?/\/$db?}"
  URLS=()
  for i in $(seq "$n"); do
    rm -rf "$BIN/r$i"
    AUDITSTREAM_ADMIN_TOKEN=$TOKEN AUDITSTREAM_SECRET_KEY=$KEY "$BIN/auditstream" serve --data-dir "$BIN/r$i" \
      --listen 127.0.0.1:$((17240 + i)) --nats-url "$urls" --database-url "$dburl" --log-level warn --ingest-rate 0 \
      --allow-private-destinations --config-mutations-per-minute 0 >"$BIN/r$i.log" 2>&1 &
    PIDS+=($!) REPLICA_PIDS+=($!)
    URLS+=("http://127.0.0.1:$((17240 + i))")
  done
  for u in "${URLS[@]}"; do wait_url "$u/-/ready"; done
}

echo "auditstream scale-out on $(nproc) cores, $(date -u +%F), commit $REV: 3 NATS nodes (R3), PostgreSQL, loadgen, all on this machine"
for n in ${REPLICAS:-1 2}; do
  echo; echo "### $n replica(s): batched ingest, 1,000 events of 1 KB per request, 4 clients per replica, 20 s"
  cluster "$n" "ingest$n"
  LG=() before=$(snapshot)
  for u in "${URLS[@]}"; do
    "$BIN/loadgen" -url "$u" -token $TOKEN -mode batch -batch 1000 -clients 4 -duration 20s -wait-store=false >"$BIN/load-${u##*:}.txt" &
    LG+=($!)
  done
  wait "${LG[@]}"
  total=0
  for u in "${URLS[@]}"; do
    f="$BIN/load-${u##*:}.txt"; grep '^acked events' "$f" | sed "s|^|  $u: |"
    r=$(sed -n 's/^acked events: [0-9]* (\([0-9]*\) events\/s).*/\1/p' "$f"); total=$((total + ${r:-0}))
  done
  echo "  total: $total events/s"
  cpu_split 20 "$before"
  stop_all
  echo; echo "### $n replica(s): fan-out to 10 HTTP destinations, one event per request, a backlog of 20,000 events each"
  cluster "$n" "fanout$n"
  before=$(snapshot) t0=$(date +%s)
  "$BIN/loadgen" -url "${URLS[0]}" -token $TOKEN -mode fanout -dests 10 -events 20000 | grep -E '^(deliveries|rate|sustained|NOT)'
  cpu_split $(($(date +%s) - t0)) "$before"
  stop_all
done
