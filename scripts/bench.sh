#!/usr/bin/env bash
# Runs the load scenarios of docs/benchmarks.md against the real binary, each on a fresh data
# directory, and prints loadgen's report for each. Everything runs on this machine on loopback.
#   scripts/bench.sh            all scenarios
#   scripts/bench.sh batch lag  only those (batch single steady slow-bodies lag lag-pg sync trail-cost audit-cost, and the delivery
#                               scenarios latency fanout fanout-expr fanout-batch catchup down-cost groups-0
#                               groups-1 groups-10k groups-0-long groups-10k-long groups-100k isolation reads; "ingest" and
#                               "delivery" name each group)
#   PROFILE=1 scripts/bench.sh fanout   also take a CPU profile of the server (--debug-listen)
#                               during the measured phase of a delivery scenario and print
#                               `go tool pprof -top` of it; profiles are kept in $PROFILE_DIR
#                               (default /tmp/auditstream-profiles), one per scenario, overwritten
# The delivery scenarios run HTTP receivers inside loadgen, on this machine, and create instance
# destinations pointing at them (hence --allow-private-destinations).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh

INGEST=(batch single steady slow-bodies lag lag-pg sync trail-cost audit-cost)
DELIVERY=(latency fanout fanout-expr fanout-batch catchup down-cost groups-0 groups-1 groups-10k groups-0-long groups-10k-long groups-100k isolation reads)
scenarios=()
for a in "$@"; do
  case "$a" in
    ingest) scenarios+=("${INGEST[@]}") ;;
    delivery) scenarios+=("${DELIVERY[@]}") ;;
    *) scenarios+=("$a") ;;
  esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=("${INGEST[@]}" "${DELIVERY[@]}")
for s in "${scenarios[@]}"; do # refuse a typo before building and running anything
  case " ${INGEST[*]} ${DELIVERY[*]} " in *" $s "*) ;; *) echo "unknown scenario $s (known: ${INGEST[*]} ${DELIVERY[*]} ingest delivery)" >&2; exit 2 ;; esac
done

# What is measured: the commit, and whether the server's sources differ from it.
REV="$(git rev-parse --short HEAD 2>/dev/null || echo none)"
git diff --quiet HEAD -- internal cmd/auditstream go.mod go.sum 2>/dev/null || REV="$REV + uncommitted changes"
BIN=$(mktemp -d /tmp/auditstream-bench.XXXXXX)
go build -o "$BIN/auditstream" ./cmd/auditstream
go build -o "$BIN/loadgen" ./cmd/loadgen
TOKEN=ast-bench-admin-token-0123456789
PORT=18480
DEBUG_PORT=18481
PROFILE=${PROFILE:-}
PROFILE_DIR=${PROFILE_DIR:-/tmp/auditstream-profiles}
SERVER_PID=

# stop_server stops the server and waits until it is gone (a server the groups scenario restarted
# is not this shell's child: wait cannot wait for it).
stop_server() {
  if [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; then
    wait "$SERVER_PID" 2>/dev/null || true # reaps our child; returns at once for another's
    while kill -0 "$SERVER_PID" 2>/dev/null; do sleep 0.1; done
  fi
  SERVER_PID=
}
cleanup() { stop_server; rm -rf "$BIN"; [ -z "${PGTMP:-}" ] || pg_stop; } # pg_stop fails under set -u unless start_postgres ran
trap cleanup EXIT

# serve [flags…]: start a fresh server and wait until it is ready.
serve() {
  stop_server
  rm -rf "$BIN/data" "$BIN/server.log"
  start "$@"
}

# start [flags…]: start the server on the data dir there is and wait until it is ready.
start() {
  if curl -s -o /dev/null http://127.0.0.1:$PORT/-/ready; then # a server left running would be measured instead
    echo "something already serves 127.0.0.1:$PORT; stop it first" >&2; exit 1
  fi
  AUDITSTREAM_ADMIN_TOKEN=$TOKEN "$BIN/auditstream" serve --data-dir "$BIN/data" --listen 127.0.0.1:$PORT \
    --log-level warn --ingest-rate 0 "$@" >>"$BIN/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/-/ready >/dev/null && return; sleep 0.1; done
  cat "$BIN/server.log" >&2; exit 1
}

load() { "$BIN/loadgen" -url http://127.0.0.1:$PORT -token $TOKEN -pid "$SERVER_PID" "$@"; }

# serve_d: a server for the delivery scenarios: it may deliver to loopback, destination changes
# are not rate limited, and it serves pprof on DEBUG_PORT.
serve_d() { serve --allow-private-destinations --config-mutations-per-minute 0 --debug-listen 127.0.0.1:$DEBUG_PORT "$@"; }

# load_d NAME SECONDS loadgen-flags…: run a delivery scenario; with PROFILE set, take a CPU
# profile of SECONDS from the start of its measured phase and print its top functions.
load_d() {
  local name=$1 secs=$2; shift 2
  if [ -z "$PROFILE" ]; then load "$@"; return; fi
  mkdir -p "$PROFILE_DIR"
  load "$@" -profile http://127.0.0.1:$DEBUG_PORT -profile-seconds "${secs}s" -profile-out "$PROFILE_DIR/$name.pprof"
  echo "--- go tool pprof -top $PROFILE_DIR/$name.pprof"
  go tool pprof -top -nodecount 40 "$PROFILE_DIR/$name.pprof" 2>/dev/null | sed -n '1,48p'
}

# down_cost: the same steady ingest without and with a destination that refuses connections;
# the difference of the server's CPU is what the dead destination costs.
down_cost() {
  local base dead
  echo "--- baseline: no destination"
  serve_d; base=$(load_d down-cost-baseline 20 -mode downcost -dead 0 "$@"); echo "$base"
  echo "--- with a destination refusing connections"
  serve_d; dead=$(load_d down-cost 20 -mode downcost -dead 1 "$@"); echo "$dead"
  cpu() { sed -n 's/^server CPU while sending: \([0-9.]*\)s over \([0-9.]*\)s.*/\1 \2/p'; }
  read -r c0 t0 <<<"$(cpu <<<"$base")"
  read -r c1 t1 <<<"$(cpu <<<"$dead")"
  awk -v c0="$c0" -v t0="$t0" -v c1="$c1" -v t1="$t1" 'BEGIN { printf "dead destination: %+.2fs of server CPU over the run = %+.2f%% of one core (%.1f%% with it, %.1f%% without)\n", c1-c0*t1/t0, 100*(c1/t1-c0/t0), 100*c1/t1, 100*c0/t0 }'
}

# groups N D [loadgen flags]: N top-level groups, D of them with a destination each (one
# receiver), 20,000 events ingested in batches of 1,000 over every group, then 1,000 single
# events/s for 20 s; with destinations, the server is then stopped with SIGTERM and started again.
groups() {
  local n=$1 d=$2; shift 2
  serve_d
  local restart="$BIN/restart.sh"
  cat >"$restart" <<EOS
AUDITSTREAM_ADMIN_TOKEN=$TOKEN "$BIN/auditstream" serve --data-dir "$BIN/data" --listen 127.0.0.1:$PORT --log-level warn --ingest-rate 0 \
  --allow-private-destinations --config-mutations-per-minute 0 --debug-listen 127.0.0.1:$DEBUG_PORT >>"$BIN/server.log" 2>&1 &
echo \$! >"$BIN/pid"
for _ in \$(seq 600); do curl -sf http://127.0.0.1:$PORT/-/ready >/dev/null && break; sleep 0.05; done
cat "$BIN/pid"
EOS
  local args=(-mode groups -groups "$n" -dests "$d" -events 20000 -batch 1000 -clients 4 -rate 1000 -duration 20s -profile http://127.0.0.1:$DEBUG_PORT)
  [ "$d" -gt 0 ] && args+=(-restart "bash $restart")
  if [ -n "$PROFILE" ]; then # the batched ingest and its deliveries
    mkdir -p "$PROFILE_DIR"
    args+=(-profile-seconds 6s -profile-out "$PROFILE_DIR/groups-$n-$d.pprof")
  fi
  load "${args[@]}" "$@"
  if [ -n "$PROFILE" ]; then
    echo "--- go tool pprof -top $PROFILE_DIR/groups-$n-$d.pprof"
    go tool pprof -top -nodecount 40 "$PROFILE_DIR/groups-$n-$d.pprof" 2>/dev/null | sed -n '1,48p'
  fi
  [ ! -f "$BIN/pid" ] || { SERVER_PID=$(cat "$BIN/pid"); rm -f "$BIN/pid"; }
}

# trail_cost PAIRS: the batch scenario with the trail on, then off, PAIRS times, and the ratio
# of the medians: the machine's speed drifts by more than the trail costs, so one pair says little.
trail_cost() {
  local on=() off=() rate
  for _ in $(seq "$1"); do
    for t in true false; do
      AUDITSTREAM_TRAIL=$t serve
      rate=$(load -mode batch -batch 1000 -clients 4 -duration 20s | sed -n 's/^acked events: [0-9]* (\([0-9]*\) events\/s).*/\1/p')
      echo "trail $t: $rate events/s"
      if [ "$t" = true ]; then on+=("$rate"); else off+=("$rate"); fi
    done
  done
  median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
  local mon moff
  mon=$(median "${on[@]}"); moff=$(median "${off[@]}")
  awk -v a="$mon" -v b="$moff" 'BEGIN { printf "medians: trail on %d, off %d events/s: on is %.0f%% of off\n", a, b, 100 * a / b }'
}

# audit_cost SECONDS: batched ingest for SECONDS with the trail audited every 15 s; once the
# store has the latest checkpoint, the server's CPU over 60 s with nothing to do, then over the
# 30 s after a restart: what the audit costs as the history grows.
audit_cost() {
  local flags=(--trail-audit-interval 15s) size=0 stored=-1 c0 c1
  serve "${flags[@]}"
  load -mode batch -batch 1000 -clients 4 -duration "$1s" | grep '^acked events'
  for _ in $(seq 600); do
    read -r size stored <<<"$(curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:$PORT/api/v4/auditstream/trail/checkpoint |
      sed -n 's/.*"tree_size":\([0-9]*\).*"stored_up_to":\([0-9]*\).*/\1 \2/p')"
    [ "${stored:--1}" -ge "${size:-0}" ] && break
    sleep 1
  done
  echo "the store has the latest checkpoint: tree size $size"
  cpu() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; } # clock ticks of 10 ms
  sleep 20 # the audits of the ingest end
  c0=$(cpu); sleep 60; c1=$(cpu)
  awk -v c=$((c1 - c0)) 'BEGIN { printf "server CPU over 60 s with nothing to do: %.2f s = %.1f%% of a core\n", c / 100, c / 60 }'
  stop_server
  start "${flags[@]}"
  c0=$(cpu); sleep 30; c1=$(cpu)
  awk -v c=$((c1 - c0)) 'BEGIN { printf "server CPU over the 30 s after a restart: %.2f s = %.1f%% of a core\n", c / 100, c / 30 }'
}

title() { echo; echo "### $*"; }

scenario() {
  case "$1" in
    batch)  title "batched ingest: NDJSON, 1,000 events of 1 KB per request, 4 clients, 20 s"
            serve; load -mode batch -batch 1000 -clients 4 -duration 20s ;;
    single) title "single-event requests, 64 clients, 20 s"
            serve; load -mode single -clients 64 -duration 20s ;;
    steady) title "steady 2,000 single events/s from 64 clients, 30 s: ack latency"
            serve; load -mode steady -rate 2000 -clients 64 -duration 30s ;;
    slow-bodies) title "steady 1,000 single events/s from 16 clients while another token holds 8 connections announcing 32 MiB and sending a byte every 2 s (reopened when cut), 60 s"
            serve; load -mode slow -attackers 8 -rate 1000 -clients 16 -duration 60s ;;
    lag)    title "store lag, SQLite: steady 20,000 events/s (100 per request, 8 clients) for 60 s"
            serve; load -mode steady -rate 20000 -batch 100 -clients 8 -duration 60s ;;
    lag-pg) [ -n "${AUDITSTREAM_TEST_DATABASE_URL:-}" ] || { start_postgres; trap cleanup EXIT; } # start_postgres sets its own trap
            title "store lag, PostgreSQL: steady 20,000 events/s (100 per request, 8 clients) for 60 s"
            serve --database-url "$AUDITSTREAM_TEST_DATABASE_URL"; load -mode steady -rate 20000 -batch 100 -clients 8 -duration 60s ;;
    sync)   title "batched ingest with --log-sync-always (fsync before every ack), 4 clients, 20 s"
            serve --log-sync-always; load -mode batch -batch 1000 -clients 4 -duration 20s ;;
    latency) title "delivery latency: steady 1,000 single events/s from 16 clients for 30 s to one HTTP destination; ingest ack → receiver arrival"
            serve_d; load_d latency 20 -mode latency -rate 1000 -clients 16 -duration 30s ;;
    fanout) title "fan-out: 10 HTTP destinations, one event per request, a backlog of 30,000 events each (300,000 deliveries)"
            serve_d; load_d fanout 20 -mode fanout -dests 10 -events 30000 ;;
    fanout-expr) title "fan-out as above, each destination with a CEL expression filter that takes every event"
            serve_d; load_d fanout-expr 20 -mode fanout -dests 10 -events 30000 -expression 'details.custom_message.contains("member") && !ip_address.startsWith("192.168.")' ;;
    fanout-batch) title "fan-out batched: 10 HTTP destinations, batch maxEvents 100, a backlog of 150,000 events each (1.5 M deliveries)"
            serve_d; load_d fanout-batch 20 -mode fanout -dests 10 -events 150000 -batch-max 100 ;;
    catchup) title "catch-up: the destination refuses connections for 60 s while 2,000 events/s are ingested, then comes back"
            serve_d; load_d catchup 20 -mode catchup -rate 2000 -batch 10 -clients 8 -down 60s ;;
    groups-0) title "10,000 top-level groups without destinations: the baseline of groups-10k"
            groups 10000 0 ;;
    groups-1) title "10,000 top-level groups and one instance destination that takes every event: as many deliveries as groups-10k, one destination"
            groups 10000 0 -all-to-one ;;
    groups-10k) title "10,000 top-level groups with a destination each: batched ingest, delivery, idle cost, restart"
            groups 10000 10000 ;;
    groups-0-long) title "groups-0 with a burst of 200,000 events instead of 20,000: the baseline of groups-10k-long"
            groups 10000 0 -events 200000 ;;
    groups-10k-long) title "groups-10k with a burst of 200,000 events: ingest while the deliveries take their share of the CPU"
            groups 10000 10000 -events 200000 ;;
    groups-100k) title "100,000 top-level groups with a destination each"
            groups 100000 100000 ;;
    isolation) title "isolation: 1,000 groups with a destination each at 1,000 events/s; an instance destination refuses connections for 60 s, then catches up"
            serve_d; load -mode groups -groups 1000 -dests 1000 -events 20000 -batch 1000 -clients 16 -rate 1000 -duration 20s -isolate -down 60s \
              -profile http://127.0.0.1:$DEBUG_PORT ;;
    trail-cost) title "the trail's cost: batched ingest (as batch) with the trail on and off, 5 alternated pairs"
            trail_cost 5 ;;
    audit-cost) title "the trail's audit as the history grows: 40 s of batched ingest (~1.3 M events), audited every 15 s; CPU idle and after a restart"
            audit_cost 40 ;;
    reads)  title "500 GraphQL readers asking 10 destinations' statuses and attempts again and again while 1,000 events/s are ingested, 30 s"
            serve_d; load -mode reads -dests 10 -readers 500 -rate 1000 -clients 16 -duration 30s ;;
    down-cost) title "down destination cost: steady 1,000 events/s (10 per request, 8 clients) for 60 s, without and with a destination refusing connections"
            down_cost -rate 1000 -batch 10 -clients 8 -duration 60s ;;
    *) echo "unknown scenario $1" >&2; exit 2 ;;
  esac
  stop_server
}

echo "auditstream load scenarios on $(nproc) cores, $(date -u +%F), commit $REV"
for s in "${scenarios[@]}"; do scenario "$s"; done
