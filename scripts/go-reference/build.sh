#!/bin/sh
# Builds the Go reference implementation of the Nexus wire protocol with Debian 12's Go 1.19 in GOPATH mode,
# using only Debian's golang-*-dev packages (no Go module proxy), for live interoperability checks.
# See README.md beside this file.
#
#   build.sh <snapshot-git-dir-or-source-dir> <out-dir> [commit]
#
# The first argument is a git directory (bare or not) of one of the reference repositories, or an
# already checked-out source tree. The module path in go.mod decides what is built:
#
#   github.com/AtDexters-Lab/nexus-proxy                 current era (v0.3.x): node and backend client
#   github.com/AtDexters-Lab/nexus-proxy-server          seed era: node
#   github.com/AtDexters-Lab/nexus-proxy-backend-client  seed era: backend client
#
# [commit] (git directory only) selects what to check out; the module path in go.mod at that commit
# decides the era. Without it, the module path at HEAD decides and the commit the patches were written
# against is used: a34ac85 (v0.3.14) for the current era, 7cc38a2 for the seed client. The seed node
# lives in the history of the current era's repository: pass 8d34d35 to build it. Other commits may
# need other backports.
#
# Output: <out-dir>/gopath (the source tree, patched) and <out-dir>/bin:
#   current era: nexus-proxy-server, nexus-proxy-client
#   seed era:    nexus-proxy-server-seed or nexus-proxy-client-seed
set -eu

if [ $# -lt 2 ]; then
  echo "usage: $0 <snapshot-git-dir-or-source-dir> <out-dir> [commit]" >&2
  exit 2
fi
SRC=$1
OUT=$2
COMMIT=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
PATCHES=$HERE/patches

command -v go >/dev/null || { echo "go is missing: apt-get install golang-go" >&2; exit 2; }
for dir in github.com/gorilla/websocket github.com/golang-jwt/jwt github.com/google/uuid \
  golang.org/x/crypto golang.org/x/net golang.org/x/text gopkg.in/yaml.v3 github.com/pion/stun; do
  [ -d "/usr/share/gocode/src/$dir" ] || {
    echo "missing Debian package for $dir (see README.md: apt-get install ...)" >&2
    exit 2
  }
done

is_git() { git -C "$1" rev-parse --git-dir >/dev/null 2>&1 && [ ! -f "$1/go.mod" ]; }

if is_git "$SRC"; then
  MODULE=$(git -C "$SRC" show "${COMMIT:-HEAD}:go.mod" | sed -n 's/^module //p')
else
  MODULE=$(sed -n 's/^module //p' "$SRC/go.mod")
fi
case $MODULE in
  github.com/AtDexters-Lab/nexus-proxy) ERA=current DEFAULT_COMMIT=a34ac85 ;;
  github.com/AtDexters-Lab/nexus-proxy-server) ERA=seed-server DEFAULT_COMMIT=8d34d35 ;;
  github.com/AtDexters-Lab/nexus-proxy-backend-client) ERA=seed-client DEFAULT_COMMIT=7cc38a2 ;;
  *) echo "unknown module path '$MODULE'" >&2; exit 2 ;;
esac

mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd)
GOPATH_DIR=$OUT/gopath
DEST=$GOPATH_DIR/src/$MODULE
rm -rf "$DEST"
mkdir -p "$DEST"
if is_git "$SRC"; then
  COMMIT=${COMMIT:-$DEFAULT_COMMIT}
  # The module path changes across history (the seed node's repository became the current monorepo).
  AT=$(git -C "$SRC" show "$COMMIT:go.mod" | sed -n 's/^module //p')
  [ "$AT" = "$MODULE" ] || { echo "module path at $COMMIT is '$AT', not '$MODULE'" >&2; exit 2; }
  git -C "$SRC" archive "$COMMIT" | tar -x -C "$DEST"
  echo "$MODULE at $(git -C "$SRC" rev-parse "$COMMIT")"
else
  cp -R "$SRC/." "$DEST/"
  rm -rf "$DEST/.git"
  echo "$MODULE from $SRC"
fi

cd "$DEST"
# Import rewrites: Debian 12 packages jwt v4.4.3 (its go.mod says .../jwt/v4, which GOPATH mode resolves
# through minimal module compatibility) and pion/stun v0.4.0 under its unversioned path.
GOFILES=$(find . -name '*.go' ! -name '*_test.go')
# shellcheck disable=SC2086
sed -i 's#"github.com/golang-jwt/jwt/v5"#"github.com/golang-jwt/jwt/v4"#; s#"github.com/pion/stun/v3"#"github.com/pion/stun"#' $GOFILES

case $ERA in
  current) patch -p1 --no-backup-if-mismatch <"$PATCHES/current-go1.19.patch" ;;
  seed-server)
    patch -p1 --no-backup-if-mismatch <"$PATCHES/seed-server-go1.19.patch"
    # Not a Go 1.19 matter: at 8d34d35 the node's SNI peek sends a TLS alert to the end user, so TLS
    # passthrough fails for every client. NEXUS_GOREF_SEED_AS_IS=1 builds without the fix.
    if [ "${NEXUS_GOREF_SEED_AS_IS:-}" != 1 ]; then
      patch -p1 --no-backup-if-mismatch <"$PATCHES/seed-server-tls-peek-no-alert.patch"
    fi
    ;;
  seed-client) ;; # builds unchanged
esac

export GO111MODULE=off GOPATH="$GOPATH_DIR:/usr/share/gocode" GOFLAGS=-trimpath
case $ERA in
  current)
    go build -o "$OUT/bin/nexus-proxy-server" ./cmd/nexus-proxy-server
    go build -o "$OUT/bin/nexus-proxy-client" ./cmd/nexus-proxy-client
    ;;
  seed-server) go build -o "$OUT/bin/nexus-proxy-server-seed" ./proxy-server ;;
  seed-client) go build -o "$OUT/bin/nexus-proxy-client-seed" ./cmd/client ;;
esac
go version
ls -1 "$OUT/bin"
