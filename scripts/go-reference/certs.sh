# Sourced by smoke-current.sh and probe-current-vs-nexus.sh: in the current directory, a throwaway CA
# (ca.pem) and two leaves signed by it: localhost.pem/.key (the hub: localhost, 127.0.0.1) and
# app.test.pem/.key (the local HTTPS service).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=${CA_NAME:-goref-test-ca}" -keyout ca.key \
  -out ca.pem 2>/dev/null
leaf() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\n' "$2" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile "$1.ext" \
    -out "$1.pem" 2>/dev/null
}
leaf localhost DNS:localhost,IP:127.0.0.1
leaf app.test DNS:app.test
