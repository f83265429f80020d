#!/usr/bin/env bash
# berth's package inventory against the packages the peers' own tests
# expect on their fixture files (osv-scalibr's extractor tests, Trivy's
# dependency parser tests, go-rpmdb's TestPackageList, syft's cataloger
# tests, osv-scanner v1's lockfile parser tests): recall and precision
# per ecosystem, every miss and every phantom. The peers' modules are downloaded into the Go module
# cache at the versions pinned here; nothing of theirs is kept in berth.
# With --with-peers, syft and osv-scanner (from $BERTH_PEERS, as
# PEERS.md installs them) also scan every placed fixture, and their
# figures against the same expectations are printed beside berth's
# (about 6 minutes: syft takes about a second a case).
# Usage: bench/peerfixtures.sh [--with-peers] [-v]   (-v lists every skipped test case, and the peers' differences)
set -euo pipefail
cd "$(dirname "$0")/.."
peers=()
if [ "${1:-}" = --with-peers ]; then
	shift
	BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"
	for tool in syft osv-scanner; do
		[ -x "$BERTH_PEERS/$tool" ] || { echo "peerfixtures: $tool is not installed in $BERTH_PEERS (PEERS.md says how)" >&2; exit 1; }
	done
	peers=(-run-syft "$BERTH_PEERS/syft" -run-osv-scanner "$BERTH_PEERS/osv-scanner")
fi
SCALIBR=github.com/google/osv-scalibr@v0.5.3
TRIVY=github.com/aquasecurity/trivy@v0.74.0
RPMDB=github.com/knqyf263/go-rpmdb@v0.0.0-20210911072402-73bd0ce46c49
SYFT=github.com/anchore/syft@v1.57.2
OSVSCANNER=github.com/google/osv-scanner@v1.9.2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# moddir MODULE@VERSION: download outside berth's module (so go.mod is
# not touched) and print where the module cache holds it.
moddir() {
	(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$1") | jq -r .Dir
}
scalibr=$(moddir "$SCALIBR")
trivy=$(moddir "$TRIVY")
rpmdb=$(moddir "$RPMDB")
syft=$(moddir "$SYFT")
osvscanner=$(moddir "$OSVSCANNER")
echo "berth $(git rev-parse --short HEAD); $SCALIBR; $TRIVY; $RPMDB; $SYFT; $OSVSCANNER; $(date -u +%Y-%m-%d)"
if [ ${#peers[@]} -gt 0 ]; then
	echo "run: syft $(go version -m "$BERTH_PEERS/syft" | awk '$1 == "mod" {print $3}'); osv-scanner $("$BERTH_PEERS/osv-scanner" --version | awk 'NR == 1 {print $3}')"
fi
go run ./bench/peerfixtures -scalibr "$scalibr" -trivy "$trivy" -rpmdb "$rpmdb" -syft "$syft" -osvscanner "$osvscanner" "${peers[@]}" "$@"
