#!/usr/bin/env bash
# Runs every Go fuzz target of the module for a bounded time each.
# Usage: scripts/fuzz.sh [DURATION]   (default 5s; e.g. 10m for a long run)
# A crasher is written by `go test` under the package's testdata/fuzz/ and
# becomes a regression test of the ordinary `go test` run: commit it with
# the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-5s}"

targets=$(git ls-files '*_test.go' | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func / /' | sort)
count=0
while read -r file name; do
	[ -n "$file" ] || continue
	pkg="./$(dirname "$file")"
	echo "fuzz: $pkg $name ($fuzztime)"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/berth-fuzz.log 2>&1 || {
		cat /tmp/berth-fuzz.log
		echo "fuzz: $pkg $name failed; the input that broke it is under $pkg/testdata/fuzz/$name/"
		exit 1
	}
	count=$((count + 1))
done <<< "$targets"
echo "fuzz: $count targets, $fuzztime each, no failure"
