#!/usr/bin/env bash
# Runs the whole test suite, race detector on, against SQLite and PostgreSQL.
#
# It sets up what the tests need on a fresh Debian machine: when AUDITSTREAM_TEST_DATABASE_URL
# is not set, it installs PostgreSQL with apt (when missing) and starts a throwaway server on a
# free loopback port for the duration of the run; it installs Chromium (when missing) for the
# browser tests, Node.js with npm (when missing) for the tests that prove our protocol test
# servers with real clients (npm's s3rver, splunk-logging), and rsyslog with its GnuTLS driver
# (when missing) for the syslog destination's tests. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh

if [ -z "${AUDITSTREAM_TEST_DATABASE_URL:-}" ]; then
  PG_EXTRA_OPTS="-c fsync=off" start_postgres
fi

if ! command -v chromium >/dev/null; then
  echo "==> installing Chromium (Debian package chromium) for the browser tests" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "==> installing Node.js and npm (Debian packages nodejs, npm) for the protocol-server tests" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

if ! ls /usr/sbin/rsyslogd /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1; then
  echo "==> installing rsyslog (Debian packages rsyslog, rsyslog-gnutls) for the syslog destination's tests" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog rsyslog-gnutls >/dev/null
fi

echo "==> gofmt, go vet" >&2
unformatted=$(gofmt -l cmd internal e2e)
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted:" $unformatted >&2
  exit 1
fi
go vet ./...
echo "==> generated GraphQL code matches the schema" >&2
# gqlgen rewrites exec/ and model/ from schema/*.graphqls; a schema change without
# `go generate ./internal/api/graphql` fails here instead of serving a stale API.
gen=$(mktemp -d) # not removed by a trap: postgres.sh owns the EXIT trap
cp -r internal/api/graphql/. "$gen/"
go generate ./internal/api/graphql
if ! diff -r -q "$gen" internal/api/graphql >/dev/null; then
  diff -r "$gen" internal/api/graphql | head -40 >&2
  echo "internal/api/graphql: generated code is stale; run go generate ./internal/api/graphql and commit" >&2
  exit 1
fi
rm -rf "$gen"
echo "==> go test -race ./..." >&2
go test -race -count=1 -timeout 45m "$@" ./...
echo "==> fuzzing the decoders briefly" >&2
# Budgets are execution counts, not durations: go1.26's fuzz coordinator can report its own
# -fuzztime deadline as a failure (golang/go#75804, fixed in go1.27). Each is ~10-15 s here.
fuzz() { go test -run='^$' -fuzz="^$1\$" -fuzztime="$2" -fuzzminimizetime=100x "$3"; }
fuzz FuzzDecodeMatchesEncodingJSON 200000x ./internal/ingest
fuzz FuzzIngestDecode 150000x ./internal/ingest
fuzz FuzzNormalize 200000x ./internal/event
fuzz FuzzParseIndex 150000x ./internal/event
fuzz FuzzCreatedAt 100000x ./internal/event
fuzz FuzzParseTimeParam 200000x ./internal/event
fuzz FuzzRestJSON 150000x ./internal/api/rest
fuzz FuzzMatch 100000x ./internal/destination
fuzz FuzzParseConfig 100000x ./internal/destination
fuzz FuzzExpression 10000x ./internal/destination
fuzz FuzzDetailsFind 20000x ./internal/destination
fuzz FuzzCEFEscaping 100000x ./internal/destination/format
fuzz FuzzRead 100000x ./internal/destination/format
fuzz FuzzParseGID 100000x ./internal/api/graphql/model
fuzz FuzzOpen 50000x ./internal/secret
fuzz FuzzSafeReturn 100000x ./internal/web
