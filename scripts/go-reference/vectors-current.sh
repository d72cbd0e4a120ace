#!/bin/sh
# Runs current-era-vectors.go inside the current-era tree that build.sh made, and prints its JSON: the data
# behind packages/core/test/vectors/current-era-*.json and remote-verifier.json (see README.md).
#
#   vectors-current.sh <out-dir of build.sh for the current era> > vectors.json
set -eu
if [ $# -ne 1 ]; then
  echo "usage: $0 <out-dir of build.sh for the current era>" >&2
  exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(cd "$1" && pwd)
DEST=$OUT/gopath/src/github.com/AtDexters-Lab/nexus-proxy
[ -d "$DEST/client" ] || { echo "$DEST is not a current-era build.sh tree" >&2; exit 2; }
mkdir -p "$DEST/cmd/nexus-vectors"
cp "$HERE/current-era-vectors.go" "$DEST/cmd/nexus-vectors/main.go"
cd "$DEST"
GO111MODULE=off GOPATH="$OUT/gopath:/usr/share/gocode" GOFLAGS=-trimpath go run ./cmd/nexus-vectors
