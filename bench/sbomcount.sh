#!/usr/bin/env bash
# Packages found, by purl type, by berth, syft and osv-scanner on the
# shared images and on the analyzers' own fixtures (every
# internal/inventory/analyzers/*/testdata folder, golden and fuzz data
# left out), each counted as distinct purls of its CycloneDX output.
# A peer that is not installed in $BERTH_PEERS is reported as such.
# Usage: bench/sbomcount.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# KEEP=DIR keeps every tool's output (the purls) in DIR for a closer look.
keep="${KEEP:-}"
go build -o "$work/berth" ./cmd/berth

fixtures="$work/fixtures"
for d in internal/inventory/analyzers/*/testdata; do
	name=$(basename "$(dirname "$d")")
	mkdir -p "$fixtures/$name"
	cp -r "$d/." "$fixtures/$name/"
	rm -rf "$fixtures/$name/golden" "$fixtures/$name/fuzz"
done
# Compressed rpm databases are kept gzipped in testdata.
find "$fixtures" -name '*.gz' -exec gunzip -f {} +

# count FILE: "type count" lines, distinct purls (qualifiers dropped).
count() {
	jq -r '[.components[]?.purl // empty] | map(sub("\\?.*$"; "")) | unique[]' "$1" |
		sed -E 's|^pkg:([^/]+)/.*|\1|' | sort | uniq -c | awk '{print $2, $1}'
}

run() { # tool input out
	local tool=$1 input=$2 out=$3
	case $tool in
	berth) "$work/berth" sbom --no-cache -f cyclonedx -o "$out" "$input" >/dev/null 2>&1 ;;
	syft) SYFT_CHECK_FOR_APP_UPDATE=false "$BERTH_PEERS/syft" scan "$input" -o "cyclonedx-json=$out" -q ;;
	osv-scanner)
		# Offline, against empty local databases: only the package list
		# is wanted (exit status 1 means "vulnerabilities found").
		export OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY="$work/osvdb"
		case $input in
		dir:*) "$BERTH_PEERS/osv-scanner" scan source --offline --format json --all-packages --output "$out.raw" -r "${input#dir:}" >/dev/null 2>&1 || [ -s "$out.raw" ] ;;
		*) "$BERTH_PEERS/osv-scanner" scan image --offline --format json --all-packages --output "$out.raw" --archive "$work/image.docker.tar" >/dev/null 2>&1 || [ -s "$out.raw" ] ;;
		esac && osvToComponents "$out.raw" >"$out" ;;
	esac
}

# osvToComponents turns osv-scanner's JSON package list into
# {"components": [{"purl": …}]} with the purl types of its ecosystems.
osvToComponents() {
	jq '{components: [.results[]?.packages[]?.package | {purl: ("pkg:" + ({"PyPI": "pypi", "npm": "npm", "Go": "golang", "Maven": "maven", "crates.io": "cargo", "Packagist": "composer", "NuGet": "nuget", "RubyGems": "gem", "Pub": "pub", "Hex": "hex", "ConanCenter": "conan", "Debian": "deb", "Ubuntu": "deb", "Alpine": "apk", "Red Hat": "rpm"}[((.ecosystem // "") | split(":") | .[0] // "")] // ("other-" + .ecosystem)) + "/" + (.name // "") + "@" + (.version // ""))}]}' "$1"
}
for e in PyPI npm Go Maven crates.io Packagist NuGet RubyGems Pub Hex ConanCenter Debian Alpine Ubuntu "Red Hat"; do
	mkdir -p "$work/osvdb/osv-scanner/$e"
	printf 'PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' >"$work/osvdb/osv-scanner/$e/all.zip"
done

echo "berth $(git rev-parse --short HEAD); $(nproc) cores; $(date -u +%Y-%m-%d)"
for input in "oci-archive:../shared/images/debian-bookworm-minbase.oci.tar" "oci-archive:../shared/images/kitchen-sink.oci.tar" "dir:$fixtures"; do
	label=${input##*/}
	[ "${input#dir:}" != "$input" ] && label="analyzer fixtures"
	echo
	echo "== $label"
	tools=""
	for tool in berth syft osv-scanner; do
		if [ "$tool" != berth ] && [ ! -x "$BERTH_PEERS/$tool" ]; then
			echo "$tool: not installed in $BERTH_PEERS"
			continue
		fi
		if [ "$tool" = osv-scanner ] && [ "${input#oci-archive:}" != "$input" ]; then
			# osv-scanner reads images as docker archives.
			skopeo copy -q "$input" "docker-archive:$work/image.docker.tar:img:latest" 2>/dev/null || { echo "osv-scanner: skopeo could not make a docker archive"; continue; }
		fi
		if run "$tool" "$input" "$work/$tool.json"; then
			count "$work/$tool.json" >"$work/$tool.count"
			if [ -n "$keep" ]; then
				mkdir -p "$keep"
				jq -r '[.components[]?.purl // empty] | map(sub("\\?.*$"; "")) | unique[]' "$work/$tool.json" >"$keep/${label// /-}.$tool.purls"
			fi
			tools="$tools $tool"
		else
			echo "$tool: failed on $label"
		fi
		rm -f "$work/image.docker.tar"
	done
	printf '%-10s' type
	for t in $tools; do printf ' %12s' "$t"; done
	echo
	cat $(for t in $tools; do echo "$work/$t.count"; done) | awk '{print $1}' | sort -u | while read -r type; do
		printf '%-10s' "$type"
		for t in $tools; do
			printf ' %12s' "$(awk -v ty="$type" '$1 == ty {n = $2} END {print n + 0}' "$work/$t.count")"
		done
		echo
	done
done
