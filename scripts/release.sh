#!/usr/bin/env bash
# Builds a berth release into DIR (default dist/):
#   berth_VERSION_OS_ARCH.tar.gz   a static binary (CGO off) and the README, per target
#   berth_VERSION_OS_ARCH.cdx.json the archive's SBOM (CycloneDX), made by berth itself
#   SHA256SUMS                     checksums of the archives and SBOMs
#   SHA256SUMS.sig                 berth sign-blob's signature of SHA256SUMS (base64)
#   berth-release.pub              the public key that verifies it
#   berth_VERSION_image.oci.tar    with --image: berth's container image, an
#                                  OCI layout (tar) of one image per linux
#                                  target, made without a container engine
#                                  (scripts/imagebuild); push it with
#                                  `crane push --index DIR REF` once untarred,
#                                  or `skopeo copy --all oci-archive:FILE docker://REF`
# then checks every one of them (checksums, signature, and the host's binary
# runs and reports the version).
#
# Usage: scripts/release.sh [-o DIR] [--version VERSION] [--image] [TARGET...]
#   TARGET is OS/ARCH; without any, all four: linux/amd64 linux/arm64
#   darwin/amd64 darwin/arm64 (on 2 cores each takes minutes on a cold
#   build cache; the e2e test builds only linux/amd64).
#   VERSION defaults to `git describe --tags --always --dirty`.
# The signing key is $BERTH_RELEASE_KEY (cosign or berth format; its
# password in BERTH_KEY_PASSWORD, its public key $BERTH_RELEASE_PUB or the
# same path with .pub). Without it a throwaway key is generated and the
# script says so: such a signature proves only that the files were not
# changed after this run.
#
# Verify a release:
#   sha256sum -c SHA256SUMS
#   berth verify-blob SHA256SUMS --key berth-release.pub --signature SHA256SUMS.sig
#   cosign verify-blob SHA256SUMS --key berth-release.pub --signature SHA256SUMS.sig --insecure-ignore-tlog
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist
version=""
targets=()
image=""
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out="$2"; shift 2 ;;
	--version) version="$2"; shift 2 ;;
	--image) image=1; shift ;;
	-h | --help) sed -n '2,32p' "$0"; exit 0 ;;
	-*) echo "release: unknown flag $1" >&2; exit 2 ;;
	*) targets+=("$1"); shift ;;
	esac
done
[ ${#targets[@]} -gt 0 ] || targets=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64)

commit=""
epoch=""
if git rev-parse --git-dir >/dev/null 2>&1; then
	commit=$(git rev-parse HEAD)
	epoch=$(git log -1 --format=%ct)
	[ -n "$version" ] || version=$(git describe --tags --always --dirty)
fi
[ -n "$version" ] || { echo "release: give --version (no git checkout here)" >&2; exit 2; }
case "$version" in v*) ;; *) version="v0.0.0-$version" ;; esac
epoch="${SOURCE_DATE_EPOCH:-${epoch:-0}}"

sha256() { # files… : "hex  name" lines, as sha256sum writes them
	if command -v sha256sum >/dev/null 2>&1; then sha256sum "$@"; else shasum -a 256 "$@"; fi
}

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The same flags for every build (the e2e harness builds with them too, so
# the build cache serves both): static, no local paths, version stamped.
build() { # os arch output
	echo "release: building $1/$2"
	CGO_ENABLED=0 GOOS="$1" GOARCH="$2" go build -trimpath \
		-ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o "$3" ./cmd/berth
}

host_os=$(go env GOHOSTOS)
host_arch=$(go env GOHOSTARCH)
host_berth=""
archives=()
image_args=()
for target in "${targets[@]}"; do
	os=${target%/*}
	arch=${target#*/}
	case "$target" in
	linux/amd64 | linux/arm64 | darwin/amd64 | darwin/arm64) ;;
	*) echo "release: unsupported target $target" >&2; exit 2 ;;
	esac
	name="berth_${version}_${os}_${arch}"
	mkdir -p "$work/$name"
	build "$os" "$arch" "$work/$name/berth"
	cp README.md "$work/$name/"
	[ "$os/$arch" = "$host_os/$host_arch" ] && host_berth="$work/$name/berth"
	[ "$os" = linux ] && image_args+=("$os/$arch=$work/$name/berth")
	# Reproducible archives: sorted names, fixed times and owners, no gzip
	# timestamp.
	tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
		-C "$work" -cf - "$name" | gzip -n -9 >"$out/$name.tar.gz"
	archives+=("$name")
done

# berth itself makes the SBOMs and the signature, with a binary for this
# machine (one of the targets, or one more build).
if [ -z "$host_berth" ]; then
	build "$host_os" "$host_arch" "$work/berth-host"
	host_berth="$work/berth-host"
fi

for name in "${archives[@]}"; do
	echo "release: SBOM of $name"
	# From inside the work directory, so the SBOM names the archive's
	# folder and no path of this machine.
	(cd "$work" && "$host_berth" sbom --no-cache -f cyclonedx -o "$out/$name.cdx.json" "dir:$name")
done

images=()
if [ -n "$image" ]; then
	[ ${#image_args[@]} -gt 0 ] || { echo "release: --image needs a linux target" >&2; exit 2; }
	ca=${BERTH_IMAGE_CA:-/etc/ssl/certs/ca-certificates.crt}
	[ -r "$ca" ] || { echo "release: no CA bundle at $ca (install ca-certificates or set BERTH_IMAGE_CA)" >&2; exit 2; }
	echo "release: container image for ${image_args[*]%%=*}"
	go run ./scripts/imagebuild -o "$work/image" --version "$version" --revision "$commit" \
		--created "$epoch" --ca "$ca" "${image_args[@]}" >/dev/null
	tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
		-C "$work/image" -cf "$out/berth_${version}_image.oci.tar" oci-layout index.json blobs
	images=("berth_${version}_image.oci.tar")
fi

(cd "$out" && sha256 *.tar.gz *.cdx.json "${images[@]}" >SHA256SUMS)

key="${BERTH_RELEASE_KEY:-}"
pub="${BERTH_RELEASE_PUB:-}"
if [ -z "$key" ]; then
	echo "release: BERTH_RELEASE_KEY is not set: signing with a throwaway key (it proves only that nothing changed after this run)" >&2
	export BERTH_KEY_PASSWORD
	BERTH_KEY_PASSWORD=$(head -c 24 /dev/urandom | base64)
	"$host_berth" key generate --output-key-prefix "$work/throwaway" 2>/dev/null
	key="$work/throwaway.key"
	pub="$work/throwaway.pub"
fi
[ -n "$pub" ] || pub="${key%.key}.pub"
cp "$pub" "$out/berth-release.pub"
"$host_berth" sign-blob --key "$key" --output-signature "$out/SHA256SUMS.sig" "$out/SHA256SUMS" 2>/dev/null

# Check what was made, as a user would.
(cd "$out" && sha256 -c SHA256SUMS >/dev/null)
"$host_berth" verify-blob --key "$out/berth-release.pub" --signature "$out/SHA256SUMS.sig" "$out/SHA256SUMS"
"$host_berth" version | head -1 | grep -qx "berth $version" || { echo "release: the binary does not report $version" >&2; exit 1; }
echo "release: $version in $out:"
(cd "$out" && ls -1 SHA256SUMS SHA256SUMS.sig berth-release.pub "${archives[@]/%/.tar.gz}" "${archives[@]/%/.cdx.json}" "${images[@]}")
