#!/usr/bin/env bash
# Runs every test of berth: static checks, unit tests with the race detector,
# short fuzz runs, and the end-to-end tests that drive berth with real clients
# (crane, skopeo, oras, regctl, cosign, the OCI conformance suite), and the
# scale-out backends against a throwaway PostgreSQL and S3 server
# (scripts/services.sh).
# The peer tools are installed once into $BERTH_PEERS (default
# ~/.cache/berth-peers) by scripts/peers.sh and reused afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

export BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"
scripts/peers.sh
export PATH="$BERTH_PEERS:$PATH"
# A missing peer tool fails the end-to-end tests instead of skipping them.
export BERTH_REQUIRE_PEERS=1
# PostgreSQL and an S3 server for the scale-out backends' suites and e2e.
services=$(mktemp -d)
trap 'scripts/services.sh stop "$services"' EXIT
eval "$(scripts/services.sh start "$services")"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 30m ./...

# The 2 GiB streaming tests skip under -race (they would take many
# minutes there); without it they take ~30 s.
echo "== go test (the tests too slow for -race)"
go test -count=1 -timeout 10m -run '^TestTwoGiB' ./internal/scan/ ./internal/secret/

echo "== fuzz (bounded)"
scripts/fuzz.sh "${BERTH_FUZZTIME:-3s}"
