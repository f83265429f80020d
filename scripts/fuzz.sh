#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a bounded time each.
# Usage: scripts/fuzz.sh [DURATION]   (default 5s; e.g. 10m for a long run)
# A crasher is written by `go test` under the package's testdata/fuzz/ and
# becomes a regression test of the ordinary `go test` run: commit it with
# the fix.
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" as -fuzztime runs out, with no failing input (golang/go#75804,
# fixed in Go 1.27). Such a run is retried; only a run that writes a failing
# input, or fails any other way, fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-5s}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT

inputs() { # pkgdir name: how many inputs its corpus folder holds
	find "$1/testdata/fuzz/$2" -type f 2>/dev/null | wc -l || true
}

# deadline_only: the run failed with nothing but the coordinator's deadline
# error, and wrote no new failing input.
deadline_only() { # pkgdir name inputs-before
	local now
	now=$(inputs "$1" "$2")
	[ "$now" -eq "$3" ] &&
		grep -q '^    context deadline exceeded$' "$log" &&
		! grep -q -e 'Failing input written' -e 'panic:' -e '_test.go:[0-9]*:' "$log"
}

targets=$(git ls-files '*_test.go' | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func / /' | sort)
count=0
while read -r file name; do
	[ -n "$file" ] || continue
	dir=$(dirname "$file")
	pkg="./$dir"
	echo "fuzz: $pkg $name ($fuzztime)"
	for attempt in 1 2 3; do
		before=$(inputs "$dir" "$name")
		if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
			break
		fi
		if deadline_only "$dir" "$name" "$before" && [ "$attempt" -lt 3 ]; then
			echo "fuzz: $pkg $name stopped with the Go 1.26 deadline race and no failing input; running it again"
			continue
		fi
		cat "$log"
		echo "fuzz: $pkg $name failed; the input that broke it is under $pkg/testdata/fuzz/$name/"
		exit 1
	done
	count=$((count + 1))
done <<< "$targets"
echo "fuzz: $count targets, $fuzztime each, no failure"
