#!/usr/bin/env bash
# Side-by-side registry benchmark: berth (auth off), distribution's registry
# and berth with auth on, on loopback, same load, alternating rounds; prints
# berth/distribution ratios (compare the berth and berth-auth columns for
# what auth costs).
# Usage: bench/registry.sh [regbench flags, e.g. -duration 10s -rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."

BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"
mkdir -p "$BERTH_PEERS"
if [ ! -x "$BERTH_PEERS/registry" ]; then
	echo "building distribution's registry v3.1.2 into $BERTH_PEERS" >&2
	GOBIN="$BERTH_PEERS" go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2
fi

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/berth" ./cmd/berth
go build -o "$work/regbench" ./bench/regbench

cat > "$work/registry.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/distribution-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5102
YAML

"$work/berth" serve --addr 127.0.0.1:5101 --data "$work/berth-data" --log-level error --no-auth &
berth_pid=$!
# The same berth with auth on (the default): every request carries a bearer
# token from its /token endpoint, as docker's would.
BERTH_ADMIN_PASSWORD=bench-admin-password "$work/berth" serve --addr 127.0.0.1:5103 --data "$work/berth-auth-data" --log-level error &
berth_auth_pid=$!
"$BERTH_PEERS/registry" serve "$work/registry.yml" >/dev/null 2>&1 &
dist_pid=$!

for url in http://127.0.0.1:5101/v2/ http://127.0.0.1:5102/v2/ http://127.0.0.1:5103/readyz; do
	for _ in $(seq 100); do
		curl -fs "$url" >/dev/null && break
		sleep 0.1
	done
done
sleep 1 # let both settle before reading idle RSS

echo "berth $(git rev-parse --short HEAD), distribution v3.1.2, $(nproc) cores, $(date -u +%Y-%m-%d)"
"$work/regbench" -targets "berth=127.0.0.1:5101:$berth_pid,distribution=127.0.0.1:5102:$dist_pid,berth-auth=127.0.0.1:5103:$berth_auth_pid" \
	-auth berth-auth=admin:bench-admin-password "$@"
