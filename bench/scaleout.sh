#!/usr/bin/env bash
# Scale-out benchmarks (docs/benchmarks.md, "Scale-out"): starts a
# throwaway PostgreSQL and versitygw (scripts/services.sh), then
#   1. manifest GET rate over 1, 2 and 3 replicas, with CPU per request;
#   2. blob push/pull and manifest GETs: one berth on files vs one on
#      PostgreSQL + S3 (bench/regbench);
#   3. garbage collection of 100,000 unreferenced blobs on S3;
#   4. catalog and tag-list pages with 100,000 repositories and 1,100,000
#      tags.
# Usage: bench/scaleout.sh [-duration 5s] (passed to the GET runs)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-5s}"
[ "${1:-}" = "-duration" ] && duration="$2"

work=$(mktemp -d)
chmod 755 "$work" # PostgreSQL runs as its own user under it
services="$work/services"
cleanup() {
	kill $(jobs -p) 2>/dev/null || true
	wait 2>/dev/null || true
	scripts/services.sh stop "$services"
	rm -rf "$work"
}
trap cleanup EXIT
eval "$(scripts/services.sh start "$services")"
psql=$(ls /usr/lib/postgresql/*/bin/psql | head -1)
db() { # db NAME: a fresh database's URL
	"$psql" "$BERTH_TEST_POSTGRES" -qc "CREATE DATABASE $1"
	echo "${BERTH_TEST_POSTGRES/\/postgres?/\/$1?}"
}
s3host=${BERTH_TEST_S3#*@}
s3creds=${BERTH_TEST_S3#http://}; s3creds=${s3creds%@*}
export AWS_ACCESS_KEY_ID=${s3creds%%:*} AWS_SECRET_ACCESS_KEY=${s3creds#*:}

go build -o "$work/berth" ./cmd/berth
go build -o "$work/regbench" ./bench/regbench
go build -o "$work/scaleout" ./bench/scaleout
openssl ecparam -genkey -name prime256v1 -noout -out "$work/signing-key.pem" 2>/dev/null
mkdir -p "$services/s3/berth-bench"

export BERTH_STORAGE_META
BERTH_STORAGE_META=$(db berth_replicas)
export BERTH_STORAGE_BLOBS="s3://berth-bench?endpoint=http://$s3host&region=us-east-1"
export BERTH_AUTH_SIGNING_KEY="$work/signing-key.pem"
targets=""
for i in 1 2 3; do
	"$work/berth" serve --addr 127.0.0.1:510$i --data "$work/replica$i" --log-level error --no-auth &
	targets="$targets,127.0.0.1:510$i:$!"
done
"$work/berth" serve --addr 127.0.0.1:5109 --data "$work/files" --log-level error --no-auth \
	--storage-meta sqlite --storage-blobs file &
files_pid=$!
for port in 5101 5102 5103 5109; do
	for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

echo "berth $(git rev-parse --short HEAD), PostgreSQL $("$psql" --version | awk '{print $3}'), versitygw, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo "== 1. replicas"
"$work/scaleout" replicas -targets "${targets#,}" -duration "$duration"
echo "== 2. files vs PostgreSQL + S3 (one replica each)"
replica1_pid=$(echo "$targets" | cut -d, -f2 | cut -d: -f3)
"$work/regbench" -targets "s3=127.0.0.1:5101:$replica1_pid,file=127.0.0.1:5109:$files_pid" -duration "$duration" -rounds 3 -big $((64 << 20))
echo "== 3. gc of 100,000 blobs on S3"
"$work/scaleout" gc -pg "$(db berth_gc)" -s3 "$BERTH_TEST_S3" -n 100000
echo "== 4. metadata pages"
"$work/scaleout" meta -pg "$(db berth_meta)"
