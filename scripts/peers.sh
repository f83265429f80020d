#!/usr/bin/env bash
# Installs the peer tools the tests drive berth with, once, into $BERTH_PEERS.
# A tool already there is not rebuilt; delete it to force a rebuild.
set -euo pipefail

BERTH_PEERS="${BERTH_PEERS:-$HOME/.cache/berth-peers}"
mkdir -p "$BERTH_PEERS"

goinstall() { # name module@version
	if [ ! -x "$BERTH_PEERS/$1" ]; then
		echo "peers: building $1 ($2)"
		GOBIN="$BERTH_PEERS" go install "$2"
	fi
}

goinstall crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
goinstall oras oras.land/oras/cmd/oras@v1.3.6
goinstall regctl github.com/regclient/regclient/cmd/regctl@v0.11.7
