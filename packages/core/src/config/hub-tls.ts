/**
 * The hub: where it listens (`backendListenAddress`) and how it (and the peer endpoint) gets its
 * certificate. Exactly one TLS mode (docs/protocol.md §6.1): manual (`hubTlsCertFile` + `hubTlsKeyFile`) or
 * automatic over ACME (`hubPublicHostname`, with the `acme*` keys).
 */
import { isIPv4 } from 'node:net';
import {
  ConfigIssue,
  describeValue,
  optional,
  type Parsed,
  present,
  resolveFrom,
  text,
} from '@nexus-proxy/common/config';
import { normalizeHostname } from '@nexus-proxy/sni';
import { DEFAULT_ACME_CACHE_DIR, resolveAcmeDirectoryUrl } from '../_acme-options.js';
import { addressField, parseListenAddress } from './address.js';
import { DEFAULT_BACKEND_LISTEN_ADDRESS } from './defaults.js';
import type { HubTlsConfig, ListenAddress, ResolveContext } from './types.js';

/** Keys of the hub section. */
export const hubFields = {
  backendListenAddress: optional(
    addressField(),
    '(reference) Where the hub (backend WebSocket endpoint, wss://…/connect) listens. Default: ":8443".',
  ),
  hubTlsCertFile: optional(
    text(),
    '(reference) Manual TLS: certificate chain (PEM) of the hub and peer endpoints.',
  ),
  hubTlsKeyFile: optional(text(), '(reference) Manual TLS: its private key (PEM).'),
  hubPublicHostname: optional(
    text(),
    '(reference) Automatic TLS: this node’s public DNS name; a certificate is obtained over ACME.',
  ),
  acmeCacheDir: optional(
    text(),
    '(reference) Automatic TLS: where the ACME account and certificates are kept. Default: acme_certs.',
  ),
  acmeDirectoryUrl: optional(
    text(),
    'ACME directory (https), or letsencrypt, letsencrypt-production, letsencrypt-staging. Default: Let’s Encrypt production.',
  ),
  acmeEmail: optional(text(), 'ACME account contact e-mail.'),
  acmeCaFile: optional(text(), 'CA bundle (PEM) to trust for the ACME directory. Default: Node’s roots.'),
};

type HubParsed = Parsed<typeof hubFields>;

/** The hub's listen address. */
export function resolveBackendListen(p: HubParsed): ListenAddress {
  return p.backendListenAddress ?? parseListenAddress(DEFAULT_BACKEND_LISTEN_ADDRESS, 'backendListenAddress');
}

const ACME_KEYS = ['acmeCacheDir', 'acmeDirectoryUrl', 'acmeEmail', 'acmeCaFile'] as const;

/** The one TLS mode of the hub. */
export function resolveHubTls(p: HubParsed, ctx: ResolveContext): HubTlsConfig {
  const certFile = resolveFrom(ctx.baseDir, p.hubTlsCertFile ?? undefined);
  const keyFile = resolveFrom(ctx.baseDir, p.hubTlsKeyFile ?? undefined);
  const publicHostname = p.hubPublicHostname ?? undefined;
  const manual = certFile !== undefined || keyFile !== undefined;
  if (manual && publicHostname !== undefined) {
    throw new ConfigIssue(
      '',
      'choose one TLS mode: manual (hubTlsCertFile + hubTlsKeyFile) or automatic (hubPublicHostname), not both',
    );
  }
  if (manual) {
    if (certFile === undefined) throw new ConfigIssue('hubTlsCertFile', 'is required with hubTlsKeyFile');
    if (keyFile === undefined) throw new ConfigIssue('hubTlsKeyFile', 'is required with hubTlsCertFile');
    for (const k of ACME_KEYS) {
      if (present(ctx.doc[k])) {
        ctx.warnings.push(`${k} is ignored: manual TLS (hubTlsCertFile) is configured`);
      }
    }
    return { mode: 'files', certFile, keyFile };
  }
  if (publicHostname === undefined) {
    throw new ConfigIssue(
      '',
      'no TLS configured for the hub: set hubTlsCertFile + hubTlsKeyFile (manual TLS) or hubPublicHostname (automatic TLS)',
    );
  }
  const hostname = normalizeHostname(publicHostname);
  if (hostname === undefined || hostname.startsWith('[') || isIPv4(hostname) || !hostname.includes('.')) {
    throw new ConfigIssue(
      'hubPublicHostname',
      `must be a public DNS name such as "nexus.example.com" (got ${describeValue(publicHostname)})`,
    );
  }
  const directoryUrl = resolveAcmeDirectoryUrl(p.acmeDirectoryUrl ?? undefined, 'acmeDirectoryUrl');
  const email = p.acmeEmail ?? undefined;
  if (email !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
    throw new ConfigIssue('acmeEmail', `must be an e-mail address (got ${describeValue(email)})`);
  }
  return {
    mode: 'acme',
    hostname,
    cacheDir: resolveFrom(ctx.baseDir, p.acmeCacheDir ?? DEFAULT_ACME_CACHE_DIR),
    directoryUrl,
    email,
    caFile: resolveFrom(ctx.baseDir, p.acmeCaFile ?? undefined),
  };
}
