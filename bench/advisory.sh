#!/usr/bin/env bash
# Advisory to webhook in berth serve: the time from a new advisory in a
# followed feed to the dev.berth.vulnerabilities.new delivery for a stored
# image (database update, re-match, delivery). No peer runs beside it:
# Harbor re-scans and Clair's notifier polls (see docs/benchmarks.md).
# Usage: bench/advisory.sh [-rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/berth" ./cmd/berth
go build -o "$work/advisory" ./bench/advisory
mkdir "$work/kitchen-sink"
tar -C "$work/kitchen-sink" -xf ../shared/images/kitchen-sink.oci.tar
"$work/advisory" -berth "$work/berth" -shared ../shared -kitchen-sink "$work/kitchen-sink" "$@"
