#!/usr/bin/env bash
# Scan on push in berth serve: push → stored report for kitchen-sink on a
# cold layer cache and with only a new top layer, and 200 concurrent pushes
# losing no scan. No peer runs beside it: Harbor re-scans on demand and
# Clair's notifier polls (see docs/benchmarks.md for the anchors).
# Usage: bench/scanpush.sh [-rounds N] [-concurrent N]
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/berth" ./cmd/berth
go build -o "$work/scanpush" ./bench/scanpush
mkdir "$work/kitchen-sink"
tar -C "$work/kitchen-sink" -xf ../shared/images/kitchen-sink.oci.tar
"$work/scanpush" -berth "$work/berth" -shared ../shared -kitchen-sink "$work/kitchen-sink" "$@"
