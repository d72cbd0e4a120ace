#!/bin/sh
# First interoperability probe between the current-era reference and this repository, both directions,
# inside a fresh network namespace with only loopback. Every WebSocket frame between backend client and
# hub passes through ws-tap.mjs, which prints it. See README.md ("Current era vs Nexus today").
#
#   probe-current-vs-nexus.sh <bin-dir>     (as root; run `npm run build` first)
#
# <bin-dir> holds nexus-proxy-server and nexus-proxy-client from build.sh. A: the reference client (HMAC
# attestation) against `nexus-proxy serve`; B: `nexus-backend` (token from `nexus-proxy token`) against the
# reference node. Each half runs for PROBE_SECONDS (default 40) and then tries one HTTPS request by SNI.
# The work directory with every log is printed and kept.
set -eu

if [ "${NEXUS_GOREF_IN_NETNS:-}" != 1 ]; then
  [ $# -eq 1 ] || { echo "usage: $0 <bin-dir>" >&2; exit 2; }
  BIN=$(cd "$1" && pwd)
  ROOT=$(cd "$(dirname "$0")/../.." && pwd)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/nexus-goref-probe.XXXXXX")
  echo "work directory: $WORK"
  exec env NEXUS_GOREF_IN_NETNS=1 BIN="$BIN" ROOT="$ROOT" WORK="$WORK" unshare -n sh "$0"
fi

ip link set lo up
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$WORK"
SECONDS_EACH=${PROBE_SECONDS:-40}
TAP=$ROOT/scripts/go-reference/ws-tap.mjs
PIDS=
cleanup() { for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

CA_NAME=probe-ca . "$HERE/certs.sh"
openssl s_server -quiet -accept 127.0.0.1:9443 -cert app.test.pem -key app.test.key -www >https-service.log 2>&1 &
PIDS="$PIDS $!"

SECRET=probe-hmac-secret-0123456789abcdef0123456789abcdef
try_https() {
  curl -sS --max-time 5 --cacert ca.pem --resolve "app.test:$1:127.0.0.1" "https://app.test:$1/" -o /dev/null \
    -w "$2: HTTPS by SNI through the node: HTTP %{http_code}\n" 2>&1 || echo "$2: HTTPS by SNI through the node failed"
}

echo "=== A: reference client (current era) -> Nexus node"
cat >nexus-node.yaml <<EOF
backendListenAddress: "127.0.0.1:7443"
backendsJWTSecret: "$SECRET"
hubTlsCertFile: "$WORK/localhost.pem"
hubTlsKeyFile: "$WORK/localhost.key"
listeners:
  - { port: 7001, mode: tls, host: "127.0.0.1" }
idleTimeoutSeconds: 0
EOF
cat >go-client.yaml <<EOF
backends:
  - name: "probe"
    hostnames: ["app.test"]
    nexusAddresses: ["wss://localhost:17443/connect"]
    attestation:
      hmacSecret: "$SECRET"
    portMappings:
      7001:
        default: "127.0.0.1:9443"
EOF
node "$ROOT/packages/cli/dist/cli.js" serve -c nexus-node.yaml --log-level debug --log-format json >a-nexus-node.log 2>&1 &
PIDS="$PIDS $!"
node "$TAP" 17443 7443 localhost.pem localhost.key ca.pem >a-tap.log 2>&1 &
PIDS="$PIDS $!"
sleep 2
SSL_CERT_FILE=$WORK/ca.pem "$BIN/nexus-proxy-client" -config go-client.yaml >a-go-client.log 2>&1 &
A_CLIENT=$!
PIDS="$PIDS $A_CLIENT"
sleep "$SECONDS_EACH"
try_https 7001 A
kill "$A_CLIENT" 2>/dev/null || true

echo "=== B: Nexus backend client -> reference node (current era)"
cat >go-node.yaml <<EOF
backendListenAddress: ":8443"
hubTlsCertFile: "$WORK/localhost.pem"
hubTlsKeyFile: "$WORK/localhost.key"
relayPorts:
  - 443
idleTimeoutSeconds: 60
backendsJWTSecret: "$SECRET"
EOF
TOKEN=$(node "$ROOT/packages/cli/dist/cli.js" token --secret "$SECRET" --hostname app.test)
echo "$TOKEN" >b-token.jwt
cat >nexus-backend.yaml <<EOF
backends:
  - name: "probe"
    hostnames: ["app.test"]
    nexusAddresses: ["wss://localhost:18443/connect"]
    authToken: "$TOKEN"
    caFile: "$WORK/ca.pem"
    portMappings:
      443: "127.0.0.1:9443"
EOF
"$BIN/nexus-proxy-server" -config go-node.yaml >b-go-node.log 2>&1 &
PIDS="$PIDS $!"
node "$TAP" 18443 8443 localhost.pem localhost.key ca.pem >b-tap.log 2>&1 &
PIDS="$PIDS $!"
sleep 2
node "$ROOT/packages/backend-client/dist/cli.js" -c nexus-backend.yaml >b-nexus-backend.log 2>&1 &
B_CLIENT=$!
PIDS="$PIDS $B_CLIENT"
sleep "$SECONDS_EACH"
try_https 443 B
kill "$B_CLIENT" 2>/dev/null || true
sleep 1

for f in a-tap.log a-go-client.log a-nexus-node.log b-tap.log b-nexus-backend.log b-go-node.log; do
  echo "--- $f"
  cat "$f"
done
