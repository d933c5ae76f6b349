#!/usr/bin/env bash
# Runs the whole test suite, race detector on, against SQLite and PostgreSQL.
#
# It sets up what the tests need on a fresh Debian machine: when AUDITSTREAM_TEST_DATABASE_URL
# is not set, it installs PostgreSQL with apt (when missing) and starts a throwaway server on a
# free loopback port for the duration of the run. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh

if [ -z "${AUDITSTREAM_TEST_DATABASE_URL:-}" ]; then
  PG_EXTRA_OPTS="-c fsync=off" start_postgres
fi

echo "==> go vet" >&2
go vet ./...
echo "==> go test -race ./..." >&2
go test -race -count=1 -timeout 45m "$@" ./...
echo "==> fuzzing the decoders briefly" >&2
go test -run='^$' -fuzz='^FuzzDecodeMatchesEncodingJSON$' -fuzztime=15s -fuzzminimizetime=0 ./internal/ingest
go test -run='^$' -fuzz='^FuzzIngestDecode$' -fuzztime=10s -fuzzminimizetime=0 ./internal/ingest
go test -run='^$' -fuzz='^FuzzNormalize$' -fuzztime=10s -fuzzminimizetime=0 ./internal/event
go test -run='^$' -fuzz='^FuzzParseIndex$' -fuzztime=10s -fuzzminimizetime=0 ./internal/event
go test -run='^$' -fuzz='^FuzzRestJSON$' -fuzztime=10s -fuzzminimizetime=0 ./internal/api/rest
