#!/usr/bin/env bash
# berth scan vs osv-scanner v2.2.4 on the same inputs with the same records.
#
#   1. findings: kitchen-sink (osv-scanner reads the docker-archive skopeo
#      makes of it, berth the OCI archive) and the real lockfiles under
#      internal/inventory/analyzers/*/testdata, compared by bench/findingscmp
#   2. speed: berth scan (cold and warm layer cache) vs osv-scanner on
#      kitchen-sink, both reading the same docker-archive (skopeo's, with
#      uncompressed layers, and one with the gzip layers as registries serve
#      them), alternating rounds (bench/sidebyside: wall, peak RSS), then CPU
#      time (user+sys, hyperfine; not alternated), which a loaded machine
#      disturbs less
#   3. berth db update importing every source under ../shared/vulndata
#   4. with --sweep: every package version the records name, in every
#      ecosystem (bench/recordsweep), through both tools; needs ~5 GB of
#      memory for osv-scanner and several minutes
#
# Both tools get exactly the OSV records of ../shared/vulndata/osv: berth's
# DB is `berth db update --source ../shared/vulndata/osv`; osv-scanner's
# offline cache holds the same <ECOSYSTEM>/all.zip files, and empty ones for
# the ecosystems it asks for that have none.
#
# Usage: bench/scan.sh [--sweep] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."

sweep=false
if [ "${1:-}" = "--sweep" ]; then
	sweep=true
	shift
fi
rounds="${1:-5}"
shared="$(realpath "${SHARED:-../shared}")"
vulndata="$shared/vulndata"
image="$shared/images/kitchen-sink.oci.tar"

BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"
mkdir -p "$BERTH_PEERS"
osv="$BERTH_PEERS/osv-scanner"
if [ ! -x "$osv" ]; then
	echo "building osv-scanner v2.2.4 into $BERTH_PEERS" >&2
	GOBIN="$BERTH_PEERS" go install github.com/google/osv-scanner/v2/cmd/osv-scanner@v2.2.4
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/berth" ./cmd/berth
for tool in sidebyside findingscmp recordsweep; do
	go build -o "$work/$tool" "./bench/$tool"
done
berth="$work/berth"

# osv-scanner's offline database: the same zips, empty ones for the rest.
osvcache="$work/osv-cache"
empty_zip() { python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").close()' "$1"; }
for eco in Go PyPI npm Maven Debian Alpine NuGet crates.io RubyGems Packagist; do
	mkdir -p "$osvcache/osv-scanner/$eco"
	if [ -f "$vulndata/osv/$eco/all.zip" ]; then
		cp "$vulndata/osv/$eco/all.zip" "$osvcache/osv-scanner/$eco/all.zip"
	else
		empty_zip "$osvcache/osv-scanner/$eco/all.zip"
	fi
done
export OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY="$osvcache"
"$berth" db update --log-level warn --db-dir "$work/db" --source "$vulndata/osv" >&2

# Two docker-archive forms of kitchen-sink: skopeo's, whose layers are
# uncompressed, and docker save's with the OCI archive's gzip layers as they
# are (the form go-containerregistry and crane write).
skopeo copy -q "oci-archive:$image:latest" "docker-archive:$work/kitchen-sink.docker.tar:kitchen-sink:latest"
python3 - "$image" "$work/kitchen-sink.gz.docker.tar" <<'PY'
import io, json, sys, tarfile
src, dst = tarfile.open(sys.argv[1]), tarfile.open(sys.argv[2], "w")
blob = lambda d: src.extractfile("blobs/sha256/" + d.split(":")[1]).read()
index = json.loads(src.extractfile("index.json").read())
manifest = json.loads(blob(index["manifests"][0]["digest"]))
files = {manifest["config"]["digest"]: manifest["config"]["digest"]}
files.update({l["digest"]: l["digest"].split(":")[1] + ".tar.gz" for l in manifest["layers"]})
entry = [{"Config": files[manifest["config"]["digest"]], "RepoTags": ["kitchen-sink:latest"],
          "Layers": [files[l["digest"]] for l in manifest["layers"]]}]
for name, data in [(n, blob(d)) for d, n in files.items()] + [("manifest.json", json.dumps(entry).encode())]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    dst.addfile(info, io.BytesIO(data))
dst.close()
PY

osv_json() { # osv_json OUT ARGS…: osv-scanner exits 1 when it finds something
	local out=$1
	shift
	"$osv" "$@" --offline --all-vulns --verbosity error --format json --output "$out" >/dev/null 2>&1 || [ $? -eq 1 ]
}

echo "berth $(git rev-parse --short HEAD), osv-scanner v2.2.4, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
echo "== findings: kitchen-sink"
"$berth" scan -q --log-level warn --db-dir "$work/db" --cache-dir "$work/warm" -f json -o "$work/ks.berth.json" "oci-archive:$image"
osv_json "$work/ks.osv.json" scan image --archive "$work/kitchen-sink.docker.tar"
"$work/findingscmp" -berth "$work/ks.berth.json" -osv "$work/ks.osv.json"

echo
echo "== findings: lockfiles (osv-scanner scan source -r DIR, berth scan dir:DIR)"
fixtures=internal/inventory/analyzers
for d in npm/testdata/{lock-v1,lock-v2,lock-v3,yarn-v1,yarn-berry,pnpm-v5.4,pnpm-v6,pnpm-v9,bench,kitchen-sink} \
	python/testdata/{poetry-1,poetry-2,uv,pipenv,requirements} php/testdata/app ruby/testdata/bundle \
	rust/testdata/{cargo-v1,cargo-v3,cargo-v4} dotnet/testdata/{src,app} gomod/testdata/{app,replace,legacy}; do
	name=$(echo "$d" | tr / -)
	"$berth" scan -q --log-level warn --db-dir "$work/db" --no-cache -f json -o "$work/$name.berth.json" "dir:$fixtures/$d"
	osv_json "$work/$name.osv.json" scan source --no-call-analysis=all -r "$fixtures/$d"
	"$work/findingscmp" -berth "$work/$name.berth.json" -osv "$work/$name.osv.json" >"$work/$name.diff"
	printf '%-28s %s\n' "$d" "$(awk '$1 == "all" {print "both " $2 ", only osv-scanner " $3 ", only berth " $4}' "$work/$name.diff")"
	if ! awk '$1 == "all" && ($3 != 0 || $4 != 0) {exit 1}' "$work/$name.diff"; then
		sed -n '/^only\|^merged/,$p' "$work/$name.diff"
	fi
done

echo
echo "== speed: berth scan vs osv-scanner scan image, kitchen-sink, $rounds alternating rounds"
"$berth" scan -q --log-level warn --db-dir "$work/db" --cache-dir "$work/warm" -o /dev/null "oci-archive:$image" # fill the warm cache
berth_scan="$berth scan -q --log-level warn --db-dir $work/db -f json -o /dev/null"
# osv-scanner reads both docker-archive forms; berth reads them too, and the
# OCI archive (cold: empty layer cache; warm: every layer cached).
osv_scan="$osv scan image --offline --verbosity error --format json --output /dev/null --archive"
ks_plain="$work/kitchen-sink.docker.tar"
ks_gz="$work/kitchen-sink.gz.docker.tar"
"$work/sidebyside" -rounds "$rounds" \
	-run "osv-scanner=sh -c '$osv_scan $ks_plain; [ \$? -le 1 ]'" \
	-prep "berth-cold=rm -rf $work/cold" \
	-run "berth-cold=$berth_scan --cache-dir $work/cold docker-archive:$ks_plain" \
	-run "osv-scanner-gz=sh -c '$osv_scan $ks_gz; [ \$? -le 1 ]'" \
	-prep "berth-cold-gz=rm -rf $work/cold" \
	-run "berth-cold-gz=$berth_scan --cache-dir $work/cold docker-archive:$ks_gz" \
	-prep "berth-cold-oci=rm -rf $work/cold" \
	-run "berth-cold-oci=$berth_scan --cache-dir $work/cold oci-archive:$image" \
	-run "berth-warm=$berth_scan --cache-dir $work/warm oci-archive:$image" \
	-ratio osv-scanner/berth-cold -ratio osv-scanner-gz/berth-cold-gz -ratio osv-scanner/berth-warm -ratio osv-scanner/berth-cold-oci
echo
echo "CPU time (user+sys, mean of $rounds runs, hyperfine):"
hyperfine -N -i --warmup 1 --runs "$rounds" --export-json "$work/cpu.json" \
	--prepare true --prepare "rm -rf $work/cold" --prepare true --prepare "rm -rf $work/cold" \
	--prepare "rm -rf $work/cold" --prepare true \
	-n osv-scanner -n berth-cold -n osv-scanner-gz -n berth-cold-gz -n berth-cold-oci -n berth-warm \
	"$osv_scan $ks_plain" "$berth_scan --cache-dir $work/cold docker-archive:$ks_plain" \
	"$osv_scan $ks_gz" "$berth_scan --cache-dir $work/cold docker-archive:$ks_gz" \
	"$berth_scan --cache-dir $work/cold oci-archive:$image" \
	"$berth_scan --cache-dir $work/warm oci-archive:$image" >/dev/null
python3 - "$work/cpu.json" <<'PY'
import json, sys
r = {x["command"]: x["user"] + x["system"] for x in json.load(open(sys.argv[1]))["results"]}
for name, cpu in r.items():
    print(f"  {name:16} {cpu * 1000:7.1f} ms")
for a, b in (("osv-scanner", "berth-cold"), ("osv-scanner-gz", "berth-cold-gz"), ("osv-scanner", "berth-warm"), ("osv-scanner", "berth-cold-oci")):
    print(f"  {a} / {b}: CPU {r[a] / r[b]:.2f}×")
PY

echo "== berth db update: every source under $vulndata ($rounds runs, from an empty DB directory)"
update="$berth db update --log-level warn --db-dir $work/db-all --source $vulndata/osv --source debian-tracker:$vulndata/debian-tracker --source alpine-secdb:$vulndata/alpine-secdb --source nodejs-wg:$vulndata/nodejs-security-wg/vuln.zip"
hyperfine -N --runs "$rounds" --prepare "rm -rf $work/db-all" --export-json "$work/update.json" -n "db update" "$update" >/dev/null
python3 - "$work/update.json" <<'PY'
import json, sys
x = json.load(open(sys.argv[1]))["results"][0]
print(f"  wall median {x['median'] * 1000:.0f} ms (min {x['min'] * 1000:.0f}), CPU user+sys mean {(x['user'] + x['system']) * 1000:.0f} ms")
PY
/usr/bin/time -f "  peak RSS %M KB" $update 2>&1 | tail -1

if ! $sweep; then
	exit 0
fi

echo
echo "== findings: record sweep, every version the OSV records name (Go, PyPI, npm, Maven)"
"$work/recordsweep" -records "$vulndata/osv" -debian-tracker "$vulndata/debian-tracker" -alpine-secdb "$vulndata/alpine-secdb" -o "$work/sweep" >/dev/null
"$berth" scan -q --log-level warn --db-dir "$work/db" -f json -o "$work/sweep/berth.json" --from-report "$work/sweep/inventory.json"
osv_json "$work/sweep/osv.json" scan source --no-call-analysis=all -L "$work/sweep/sweep.cdx.json" -r "$work/sweep/gomod"
"$work/findingscmp" -berth "$work/sweep/berth.json" -osv "$work/sweep/osv.json" | sed -n '1,/^only berth/p'
echo
echo "== findings: the sweep's go.mod files alone, read by both tools"
"$berth" scan -q --log-level warn --db-dir "$work/db" --no-cache -f json -o "$work/sweep/gomod.berth.json" "dir:$work/sweep/gomod"
osv_json "$work/sweep/gomod.osv.json" scan source --no-call-analysis=all -r "$work/sweep/gomod"
"$work/findingscmp" -berth "$work/sweep/gomod.berth.json" -osv "$work/sweep/gomod.osv.json" | sed -n '1,/^only berth/p'

echo
echo "== findings: distro sweep (Debian tracker, Alpine secdb, converted by berth, one image per release)"
"$berth" db update --log-level warn --db-dir "$work/db-distro" --source "debian-tracker:$vulndata/debian-tracker" --source "alpine-secdb:$vulndata/alpine-secdb" >&2
distrocache="$work/osv-cache-distro"
mkdir -p "$distrocache"
cp -r "$work/sweep/distro/osv" "$distrocache/osv-scanner"
cmp_args=()
for img in "$work"/sweep/distro/*.docker.tar; do
	n=${img%.docker.tar}
	"$berth" scan -q --log-level warn --db-dir "$work/db-distro" --no-cache -f json -o "$n.berth.json" "docker-archive:$img"
	OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY="$distrocache" osv_json "$n.osv.json" scan image --archive "$img"
	cmp_args+=(-berth "$n.berth.json" -osv "$n.osv.json")
done
"$work/findingscmp" "${cmp_args[@]}" | sed -n '1,/^only berth/p'
