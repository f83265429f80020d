#!/usr/bin/env bash
# berth sbom vs syft on the same image archive, alternating rounds: wall time
# and peak RSS, cold (empty layer cache) and warm (layers cached).
# Usage: bench/sbom.sh [IMAGE.oci.tar] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."

image="${1:-../shared/images/kitchen-sink.oci.tar}"
rounds="${2:-5}"
BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"
mkdir -p "$BERTH_PEERS"
if [ ! -x "$BERTH_PEERS/syft" ]; then
	echo "building syft v1.30.0 into $BERTH_PEERS" >&2
	GOBIN="$BERTH_PEERS" go install github.com/anchore/syft/cmd/syft@v1.30.0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/berth" ./cmd/berth
go build -o "$work/sidebyside" ./bench/sidebyside
image=$(realpath "$image")
"$work/berth" sbom --cache-dir "$work/warm" "oci-archive:$image" -o /dev/null # fill the warm cache

echo "berth $(git rev-parse --short HEAD), syft v1.30.0, $(basename "$image"), $(nproc) cores, $(date -u +%Y-%m-%d)"
export SYFT_CHECK_FOR_APP_UPDATE=false
"$work/sidebyside" -rounds "$rounds" \
	-run "syft=$BERTH_PEERS/syft scan oci-archive:$image -o cyclonedx-json=/dev/null -q" \
	-prep "berth-cold=rm -rf $work/cold" \
	-run "berth-cold=$work/berth sbom --cache-dir $work/cold oci-archive:$image -o /dev/null" \
	-run "berth-warm=$work/berth sbom --cache-dir $work/warm oci-archive:$image -o /dev/null" \
	-ratio syft/berth-cold -ratio syft/berth-warm
