/**
 * The node configuration `nexus-proxy init` writes: a commented file with a generated secret, the hub's
 * public hostname (ACME), and the ACME cache in the state directory (the one directory the systemd unit
 * may write). The installer around it (directories, DNS check, systemd) is in `installer.ts`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { CliError } from './errors.js';

/** Directory of the node configuration (`config.yaml`), as the systemd unit and the docs use it. */
export const DEFAULT_CONFIG_DIR = '/etc/nexus-proxy';
/** State directory (ACME account and certificates): the unit's `StateDirectory=`, writable under `ProtectSystem=strict`. */
export const DEFAULT_NODE_STATE_DIR = '/var/lib/nexus-proxy';

/** What {@link renderConfigTemplate} fills in. */
export interface ConfigTemplateOptions {
  /** The hub's public DNS name: backends dial it, ACME certifies it. */
  hostname: string;
  /** ACME account contact. Default: none. */
  email?: string;
  /** Absolute ACME cache directory. Default: `/var/lib/nexus-proxy/acme`. */
  acmeCacheDir?: string;
  /** Backend JWT secret. Default: 32 random bytes, hex. */
  secret?: string;
}

/** A commented starting configuration with a freshly generated secret. */
export function renderConfigTemplate(options: ConfigTemplateOptions): string {
  const secret = options.secret ?? randomBytes(32).toString('hex');
  const cacheDir = options.acmeCacheDir ?? `${DEFAULT_NODE_STATE_DIR}/acme`;
  const email =
    options.email === undefined
      ? '# acmeEmail: ops@your-domain   # ACME account contact (expiry notices)'
      : `acmeEmail: ${JSON.stringify(options.email)}`;
  return `# Nexus Proxy node configuration (written by nexus-proxy init). Every key: docs/configuration.md.
# Reference-format keys (a reference node's config.yaml works unchanged):

# Where backends attach (wss://${options.hostname}:8443/connect).
backendListenAddress: ":8443"
# Public relay ports: 80 routes plain HTTP by Host, every other port routes TLS by SNI.
relayPorts: [443, 80]
# Close a relayed connection after this many seconds with no byte in either direction (0 = never).
idleTimeoutSeconds: 0
# Shared secret that signs backend tokens (HS256). Mint tokens with: nexus-proxy token -c <this file>
backendsJWTSecret: "${secret}"

# Hub TLS: exactly one of the two modes.
# 1) Automatic (ACME HTTP-01, Let's Encrypt): the node's public DNS name; port 80 must reach this node.
hubPublicHostname: ${JSON.stringify(options.hostname)}
${email}
# Absolute: the state directory is the one place the systemd unit may write.
acmeCacheDir: ${JSON.stringify(cacheDir)}
# 2) Manual certificate files instead (remove the three ACME keys above):
# hubTlsCertFile: ${DEFAULT_CONFIG_DIR}/hub.crt
# hubTlsKeyFile: ${DEFAULT_CONFIG_DIR}/hub.key

# Mesh (several nodes, docs/mesh.md): where other nodes attach (wss://<host>:8444/mesh), which to dial,
# and which peer certificates to trust; the listener needs trustedDomainSuffixes.
# peerListenAddress: ":8444"
peers: []
peerAuthentication:
  trustedDomainSuffixes: []
`;
}

/** Writes the template to `file` (mode 0600); refuses to overwrite unless `force`. */
export function writeConfigTemplate(file: string, options: ConfigTemplateOptions, force = false): void {
  if (existsSync(file) && !force) {
    throw new CliError('NEXUS_ERR_FILE_EXISTS', `${file} already exists (use --force to overwrite)`);
  }
  writeFileSync(file, renderConfigTemplate(options), { mode: 0o600 });
}
