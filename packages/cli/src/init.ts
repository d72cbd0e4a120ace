import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { CliError } from './errors.js';

/** A commented starting configuration with a freshly generated secret. */
export function renderConfigTemplate(secret: string = randomBytes(32).toString('hex')): string {
  return `# Nexus Proxy node configuration. Every key is documented in docs/configuration.md.
# Reference-format keys (a reference node's config.yaml works unchanged):

# Where backends attach (wss://<host>:8443/connect).
backendListenAddress: ":8443"
# Where other nodes of the mesh attach (wss://<host>:8444/mesh).
peerListenAddress: ":8444"
# Public relay ports: 80 routes plain HTTP by Host, every other port routes TLS by SNI.
relayPorts: [443, 80]
# Close a relayed connection after this many seconds with no byte in either direction (0 = never).
idleTimeoutSeconds: 0
# Shared secret that signs backend tokens (HS256). Mint tokens with: nexus-proxy token -c config.yaml
backendsJWTSecret: "${secret}"

# Hub TLS: exactly one of the two modes.
# 1) Automatic (ACME HTTP-01, Let's Encrypt): the node's public DNS name; port 80 must reach this node.
hubPublicHostname: "nexus.example.com"
# acmeCacheDir: acme_certs
# acmeEmail: ops@example.com
# 2) Manual certificate files:
# hubTlsCertFile: /etc/nexus/hub.crt
# hubTlsKeyFile: /etc/nexus/hub.key

# Mesh: other nodes to dial, and which peer certificates to trust.
peers: []
peerAuthentication:
  trustedDomainSuffixes: []
`;
}

/** Writes the template to `file`; refuses to overwrite unless `force`. */
export function writeConfigTemplate(file: string, force = false): void {
  if (existsSync(file) && !force) {
    throw new CliError('NEXUS_ERR_FILE_EXISTS', `${file} already exists (use --force to overwrite)`);
  }
  writeFileSync(file, renderConfigTemplate(), { mode: 0o600 });
}
