#!/bin/sh
# Proves a current-era build works: runs the reference node and its backend client (HMAC attestation)
# inside a fresh network namespace that has only loopback, then sends one TLS request by SNI (passthrough
# to a local HTTPS service) and one plain HTTP request by Host through the node. See README.md.
#
#   smoke-current.sh <bin-dir>      (as root: unshare -n and relay ports 80/443)
#
# <bin-dir> holds nexus-proxy-server and nexus-proxy-client from build.sh. The work directory (configs,
# certificates, logs) is printed and kept. Exit code 0 when both requests got the local services' answers.
set -eu

if [ "${NEXUS_GOREF_IN_NETNS:-}" != 1 ]; then
  [ $# -eq 1 ] || { echo "usage: $0 <bin-dir>" >&2; exit 2; }
  BIN=$(cd "$1" && pwd)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/nexus-goref-smoke.XXXXXX")
  echo "work directory: $WORK"
  # A new network namespace: the node binds its relay ports on every interface, and here there is only lo.
  exec env NEXUS_GOREF_IN_NETNS=1 BIN="$BIN" WORK="$WORK" unshare -n sh "$0"
fi

ip link set lo up
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$WORK"
PIDS=
cleanup() { for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

# One CA; a leaf for the hub (localhost) and a leaf for the local HTTPS service (app.test).
CA_NAME=smoke-ca . "$HERE/certs.sh"

SECRET=smoke-hmac-secret-0123456789abcdef0123456789abcdef
cat >server.yaml <<EOF
backendListenAddress: ":8443"
hubTlsCertFile: "$WORK/localhost.pem"
hubTlsKeyFile: "$WORK/localhost.key"
relayPorts:
  - 443
  - 80
idleTimeoutSeconds: 60
backendsJWTSecret: "$SECRET"
maintenanceGraceDefaultSeconds: 1800
EOF
cat >client.yaml <<EOF
backends:
  - name: "smoke"
    hostnames:
      - "app.test"
    nexusAddresses:
      - "wss://localhost:8443/connect"
    weight: 1
    attestation:
      hmacSecret: "$SECRET"
      tokenTTLSeconds: 30
      handshakeMaxAgeSeconds: 60
    portMappings:
      443:
        default: "127.0.0.1:9443"
      80:
        default: "127.0.0.1:9080"
EOF

# Local services: HTTPS (openssl's status page) and plain HTTP (a directory listing with one file).
openssl s_server -quiet -accept 127.0.0.1:9443 -cert app.test.pem -key app.test.key -www >https-service.log 2>&1 &
PIDS="$PIDS $!"
mkdir -p www && echo 'hello from the plain HTTP service' >www/hello.txt
python3 -m http.server 9080 --bind 127.0.0.1 --directory www >http-service.log 2>&1 &
PIDS="$PIDS $!"

"$BIN/nexus-proxy-server" -config server.yaml >server.log 2>&1 &
PIDS="$PIDS $!"
sleep 1
# The client trusts only the system roots: point them at the smoke CA.
SSL_CERT_FILE=$WORK/ca.pem "$BIN/nexus-proxy-client" -config client.yaml >client.log 2>&1 &
PIDS="$PIDS $!"

ok=1
i=0
until curl -sS --max-time 5 --cacert ca.pem --resolve app.test:443:127.0.0.1 https://app.test/ -o https.out \
  -w 'https: HTTP %{http_code}, certificate verified against the service CA\n' 2>curl-https.err; do
  i=$((i + 1))
  [ $i -lt 20 ] || { echo "https: FAIL"; cat curl-https.err; ok=0; break; }
  sleep 1
done
echo "TLS peer certificate seen by the end user:"
openssl s_client -connect 127.0.0.1:443 -servername app.test </dev/null 2>/dev/null | openssl x509 -noout -subject -issuer || ok=0
curl -sS --max-time 5 -H 'Host: app.test' http://127.0.0.1:80/hello.txt -w 'http: HTTP %{http_code}\n' || ok=0
echo '--- server.log'; cat server.log
echo '--- client.log'; cat client.log
[ $ok = 1 ] && echo PASS || { echo FAIL; exit 1; }
