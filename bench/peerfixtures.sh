#!/usr/bin/env bash
# berth's package inventory against the packages the peers' own tests
# expect on their fixture files (osv-scalibr's extractor tests, Trivy's
# dependency parser tests, go-rpmdb's TestPackageList, syft's cataloger
# tests, osv-scanner v1's lockfile parser tests): recall and precision
# per ecosystem, every miss and every phantom. The peers' modules are
# downloaded into the Go module cache at the versions pinned here;
# nothing of theirs is kept in berth.
# With --with-peers, syft (the release whose tests are read, built into
# $BERTH_PEERS once) and osv-scanner (from $BERTH_PEERS, as bench/scan.sh
# installs it) also scan every placed fixture, and their figures against
# the same expectations are printed beside berth's (about 20 minutes on
# two shared cores: syft takes about a second a case).
# Usage: bench/peerfixtures.sh [--with-peers] [-v]   (-v lists every skipped test case, and the peers' differences)
set -euo pipefail
cd "$(dirname "$0")/.."
peers=()
SCALIBR=github.com/google/osv-scalibr@v0.5.3
TRIVY=github.com/aquasecurity/trivy@v0.74.0
RPMDB=github.com/knqyf263/go-rpmdb@v0.0.0-20210911072402-73bd0ce46c49
SYFT_VERSION=v1.57.2
SYFT=github.com/anchore/syft@$SYFT_VERSION
OSVSCANNER=github.com/google/osv-scanner@v1.9.2
if [ "${1:-}" = --with-peers ]; then
	shift
	BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"
	[ -x "$BERTH_PEERS/osv-scanner" ] || { echo "peerfixtures: osv-scanner is not installed in $BERTH_PEERS (bench/scan.sh installs it)" >&2; exit 1; }
	# The syft whose tests are read, built once (a few minutes) beside the
	# v1.30.0 that bench/sbom.sh compares speeds with.
	syft_bin="$BERTH_PEERS/syft-$SYFT_VERSION"
	if [ ! -x "$syft_bin" ]; then
		echo "peerfixtures: building syft $SYFT_VERSION into $syft_bin" >&2
		gobin=$(mktemp -d)
		GOBIN="$gobin" go install "github.com/anchore/syft/cmd/syft@$SYFT_VERSION"
		mv "$gobin/syft" "$syft_bin"
		rmdir "$gobin"
	fi
	peers=(-run-syft "$syft_bin" -run-osv-scanner "$BERTH_PEERS/osv-scanner")
fi

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
	echo "run: syft $(go version -m "$syft_bin" | awk '$1 == "mod" {print $3}'); osv-scanner $("$BERTH_PEERS/osv-scanner" --version | awk 'NR == 1 {print $3}')"
fi
go run ./bench/peerfixtures -scalibr "$scalibr" -trivy "$trivy" -rpmdb "$rpmdb" -syft "$syft" -osvscanner "$osvscanner" "${peers[@]}" "$@"
