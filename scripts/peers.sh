#!/usr/bin/env bash
# Installs the peer tools the tests drive berth with, once, into $BERTH_PEERS.
# A tool already there is not rebuilt; delete it to force a rebuild.
set -euo pipefail

BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"
mkdir -p "$BERTH_PEERS"

# skopeo comes from Debian.
if ! command -v skopeo >/dev/null 2>&1; then
	echo "peers: installing skopeo with apt-get"
	sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq skopeo >/dev/null
fi

# The reference implementations the version-ordering corpus tests
# (internal/match/version) compare berth with: dpkg's own Perl module,
# rpm's vercmp, Python's packaging (all from Debian), node-semver (npm);
# and SoftHSM2 for the PKCS #11 tests (internal/sign/hsm, berth key).
missing=""
perl -MDpkg::Version -e 1 >/dev/null 2>&1 || missing="$missing libdpkg-perl"
command -v rpm >/dev/null 2>&1 || missing="$missing rpm"
# SoftHSM2: the PKCS #11 token the hardware-key tests sign and wrap with.
{ command -v softhsm2-util >/dev/null 2>&1 && [ -f /usr/lib/softhsm/libsofthsm2.so ]; } || missing="$missing softhsm2"
/usr/bin/python3 -c 'import packaging.version' >/dev/null 2>&1 || missing="$missing python3-packaging"
# Headless Chromium drives the web UI's browser tests (e2e/ui_test.go).
[ -x /usr/bin/chromium ] || missing="$missing chromium"
# The CA bundle scripts/release.sh --image puts in berth's container image.
[ -r /etc/ssl/certs/ca-certificates.crt ] || missing="$missing ca-certificates"
if [ -n "$missing" ]; then
	echo "peers: installing$missing with apt-get"
	sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi
# PostgreSQL for the scale-out tests (scripts/services.sh starts a throwaway
# cluster).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	echo "peers: installing postgresql with apt-get"
	sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi
if [ ! -f "$BERTH_PEERS/npm/node_modules/semver/package.json" ]; then
	echo "peers: installing node-semver with npm"
	npm install --prefix "$BERTH_PEERS/npm" --no-audit --no-fund --silent semver@7.7.2
fi

goinstall() { # name module@version
	if [ ! -x "$BERTH_PEERS/$1" ]; then
		echo "peers: building $1 ($2)"
		GOBIN="$BERTH_PEERS" go install "$2"
	fi
}

goinstall crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
goinstall oras oras.land/oras/cmd/oras@v1.3.6
goinstall regctl github.com/regclient/regclient/cmd/regctl@v0.11.7
goinstall helm helm.sh/helm/v3/cmd/helm@v3.22.0
# Validates the Helm chart's output (deploy/helm) against Kubernetes'
# schemas, which the chart test generates from k8s.io/kubernetes' OpenAPI.
goinstall kubeconform github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0
# The S3 server the scale-out tests store blobs in (scripts/services.sh).
goinstall versitygw github.com/versity/versitygw/cmd/versitygw@v1.8.0

# cosign v2 and v3 both install a binary named cosign: build each into a
# scratch GOBIN and keep it under its own name.
goinstall_as() { # name module@version
	if [ ! -x "$BERTH_PEERS/$1" ]; then
		echo "peers: building $1 ($2)"
		tmp=$(mktemp -d)
		GOBIN="$tmp" go install "$2"
		mv "$tmp"/* "$BERTH_PEERS/$1"
		rm -rf "$tmp"
	fi
}
goinstall_as cosign2 github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
goinstall_as cosign3 github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3

# The OCI distribution-spec conformance suite is a main package inside a module
# of its own: build it from a copy of the downloaded module.
CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111
if [ ! -x "$BERTH_PEERS/oci-conformance" ]; then
	echo "peers: building oci-conformance ($CONFORMANCE_VERSION)"
	dir=$(cd "$(mktemp -d)" && go mod download -json "github.com/opencontainers/distribution-spec/conformance@$CONFORMANCE_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	work=$(mktemp -d)
	cp -r "$dir"/. "$work"/ && chmod -R u+w "$work"
	(cd "$work" && go build -o "$BERTH_PEERS/oci-conformance" .)
	rm -rf "$work"
fi

# kube-apiserver and etcd for the admission e2e. k8s.io/kubernetes cannot be
# `go install`ed (its go.mod replaces 33 modules with ./staging folders): a
# tools module made here, in a temporary folder, requires it and points each
# staging replace at the published k8s.io/<x> of the same release. etcd is a
# tiny main calling etcdmain (Debian's etcd is too old for this apiserver).
# Nothing of this is kept but the two binaries.
KUBE_VERSION=v1.37.2
KUBE_STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.7.0
if [ ! -x "$BERTH_PEERS/kube-apiserver" ]; then
	echo "peers: building kube-apiserver ($KUBE_VERSION)"
	work=$(mktemp -d)
	gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	{
		echo "module berth.dev/peers/kube"
		echo
		echo "go 1.26"
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		echo "replace ("
		sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$KUBE_STAGING_VERSION"'#p' "$gomod"
		echo ")"
	} >"$work/go.mod"
	printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n' >"$work/tools.go"
	(cd "$work" && go mod tidy >/dev/null && go build -o "$BERTH_PEERS/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
	rm -rf "$work"
fi
if [ ! -x "$BERTH_PEERS/etcd" ]; then
	echo "peers: building etcd ($ETCD_VERSION)"
	work=$(mktemp -d)
	printf 'module berth.dev/peers/etcd\n\ngo 1.26\n' >"$work/go.mod"
	printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >"$work/main.go"
	(cd "$work" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 && go mod tidy >/dev/null && go build -o "$BERTH_PEERS/etcd" .)
	rm -rf "$work"
fi
