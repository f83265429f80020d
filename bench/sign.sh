#!/usr/bin/env bash
# berth verify vs cosign v2 verify, side by side, on one image in berth's own
# registry on loopback, signed by three keys (berth sign, cosign's tag scheme):
#   three signers required: berth (one run, three --key) vs cosign (one key
#     per run, so three runs in one sh -c: what a user must do to require
#     three signers);
#   one signer: berth --key k1.pub vs cosign --key k1.pub.
# Wall time and peak RSS in alternating rounds (bench/sidebyside), then
# user+sys CPU per command (hyperfine; the machine is shared, so CPU time is
# the steadier figure).
# Usage: bench/sign.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-10}"
port="${BERTH_BENCH_PORT:-5131}"
image_tar=../shared/images/debian-bookworm-minbase.oci.tar
BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"
mkdir -p "$BERTH_PEERS"
if [ ! -x "$BERTH_PEERS/cosign2" ]; then
	echo "building cosign v2.6.5 into $BERTH_PEERS (several minutes on two cores)" >&2
	tmpbin=$(mktemp -d)
	GOBIN="$tmpbin" go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
	mv "$tmpbin/cosign" "$BERTH_PEERS/cosign2"
	rmdir "$tmpbin"
fi
if [ ! -x "$BERTH_PEERS/crane" ]; then
	echo "building crane v0.22.1 into $BERTH_PEERS" >&2
	GOBIN="$BERTH_PEERS" go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
fi
cosign="$BERTH_PEERS/cosign2"
crane="$BERTH_PEERS/crane"

work=$(mktemp -d)
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/berth" ./cmd/berth
go build -o "$work/sidebyside" ./bench/sidebyside
berth="$work/berth"

# Authentication is on by default once it exists; the benchmark measures
# verification, not logins.
serve_flags=()
if "$berth" serve --help 2>&1 | grep -q -- '--no-auth'; then
	serve_flags+=(--no-auth)
fi
"$berth" serve --addr "127.0.0.1:$port" --data "$work/data" --log-level error "${serve_flags[@]}" &
server_pid=$!
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break
	sleep 0.1
done

ref="127.0.0.1:$port/bench/debian:bookworm"
mkdir "$work/layout"
tar -xf "$image_tar" -C "$work/layout"
"$crane" push --insecure "$work/layout" "$ref" >"$work/push.log" 2>&1 || { cat "$work/push.log" >&2; exit 1; }
image="127.0.0.1:$port/bench/debian@$("$crane" digest --insecure "$ref")"

export COSIGN_PASSWORD=bench
unset BERTH_KEY_PASSWORD # it would win over COSIGN_PASSWORD
for k in k1 k2 k3; do
	"$berth" key generate --output-key-prefix "$work/$k" 2>/dev/null
	"$berth" sign --key "$work/$k.key" "$image" >/dev/null 2>&1
done

# cosign offline: no transparency log, no TUF cache outside the scratch dir.
mkdir "$work/home"
cosign_verify="env HOME=$work/home TUF_ROOT=$work/home/tuf $cosign verify --insecure-ignore-tlog --allow-http-registry --allow-insecure-registry"
berth3="$berth verify --log-level warn --key $work/k1.pub --key $work/k2.pub --key $work/k3.pub $image"
cosign3="sh -c '$cosign_verify --key $work/k1.pub $image && $cosign_verify --key $work/k2.pub $image && $cosign_verify --key $work/k3.pub $image'"
berth1="$berth verify --log-level warn --key $work/k1.pub $image"
cosign1="$cosign_verify --key $work/k1.pub $image"
# Both must accept the signatures before anything is timed.
for c in "$berth3" "$cosign3" "$berth1" "$cosign1"; do
	sh -c "$c" >/dev/null 2>&1 || { echo "not verified: $c" >&2; exit 1; }
done

echo "berth $(git rev-parse --short HEAD), cosign $("$cosign" version 2>/dev/null | awk '/^GitVersion/ {print $2}'), $(basename "$image_tar") signed by 3 keys, $(nproc) cores, $(date -u +%Y-%m-%d)"
"$work/sidebyside" -rounds "$rounds" \
	-run "berth-3keys=$berth3" -run "cosign-3keys=$cosign3" \
	-run "berth-1key=$berth1" -run "cosign-1key=$cosign1" \
	-ratio cosign-3keys/berth-3keys -ratio cosign-1key/berth-1key

if command -v hyperfine >/dev/null && command -v jq >/dev/null; then
	echo
	echo "CPU (user+sys, mean of $rounds runs, hyperfine):"
	hyperfine -N --style none --warmup 1 --runs "$rounds" --export-json "$work/cpu.json" \
		-n berth-3keys "$berth3" -n cosign-3keys "$cosign3" \
		-n berth-1key "$berth1" -n cosign-1key "$cosign1" >/dev/null
	jq -r '.results | map({key: .command, value: ((.user + .system) * 1000)}) | from_entries as $c
		| ($c | to_entries[] | "  \(.key)\t\(.value | . * 10 | round / 10) ms"),
		  "cosign-3keys / berth-3keys: CPU \($c["cosign-3keys"] / $c["berth-3keys"] | . * 100 | round / 100)×",
		  "cosign-1key / berth-1key: CPU \($c["cosign-1key"] / $c["berth-1key"] | . * 100 | round / 100)×"' "$work/cpu.json"
fi
