/**
 * The mesh section: peers to dial, where the peer endpoint listens, and which peer certificates are
 * trusted (docs/protocol.md §2.1).
 */
import { isIPv4 } from 'node:net';
import {
  ConfigIssue,
  convert,
  describeValue,
  integer,
  list,
  mapping,
  nonEmptyText,
  optional,
  type Parsed,
  resolveFrom,
  text,
} from '@nexus-proxy/common/config';
import { normalizeHostname } from '@nexus-proxy/sni';
import * as v from 'valibot';
import { addressField, parseListenAddress, parsePeerUrl } from './address.js';
import { DEFAULT_PEER_LISTEN_ADDRESS } from './defaults.js';
import type { ListenAddress, ResolveContext } from './types.js';

function trustedSuffix(raw: string): string {
  // A leading dot only stresses the label boundary, which is always enforced (docs/protocol.md §2.1).
  const suffix = normalizeHostname(raw.replace(/^\*?\./, ''));
  if (suffix === undefined || suffix.startsWith('[') || isIPv4(suffix)) {
    throw new ConfigIssue(
      '',
      `must be a domain name such as ".mesh.example.com" (got ${describeValue(raw)})`,
    );
  }
  if (!suffix.includes('.')) {
    throw new ConfigIssue('', `is too broad: it would trust every name under ".${suffix}"`);
  }
  return suffix;
}

/** Keys of the mesh section. */
export const meshFields = {
  peerListenAddress: optional(
    addressField(),
    '(reference) Where the peer endpoint (wss://…/mesh) listens; used when trustedDomainSuffixes is set. Default: ":8444".',
  ),
  peers: optional(
    list(convert(nonEmptyText(), parsePeerUrl)),
    '(reference) Peer nodes to dial: wss://host:port/mesh, or host[:port]. Requires trustedDomainSuffixes.',
  ),
  peerAuthentication: optional(
    mapping({
      trustedDomainSuffixes: optional(
        list(convert(nonEmptyText(), trustedSuffix)),
        '(reference) A peer certificate is accepted when one of its DNS names equals a suffix or ends with "." + suffix.',
      ),
      caFile: optional(
        text(),
        'Extra CA bundle (PEM) peer certificates may chain to, besides Node’s roots, the OS store and NODE_EXTRA_CA_CERTS.',
      ),
      allowedRoutes: optional(
        v.record(v.string(), list(nonEmptyText())),
        'Per peer (its certificate name, or the host of its URL): the hostnames and .suffixes it may announce. Default: any.',
      ),
    }),
    '(reference) Peer mTLS settings.',
  ),
  peerTunnelPorts: optional(
    list(integer(1, 65_535)),
    'Relay ports a peer’s tunnel may name (conn_port); others are refused. Default: any.',
  ),
};

type MeshParsed = Parsed<typeof meshFields>;

/** The resolved mesh keys. */
export interface ResolvedMesh {
  readonly peers: string[];
  readonly peerListen: ListenAddress | undefined;
  readonly peerAuthentication: {
    trustedDomainSuffixes: string[];
    caFile: string | undefined;
    allowedRoutes: Record<string, string[]> | undefined;
  };
  readonly peerTunnelPorts: number[] | undefined;
}

/** Peers, the peer listener (only when a peer could be accepted) and the peer trust settings. */
export function resolveMesh(p: MeshParsed, ctx: ResolveContext): ResolvedMesh {
  const auth = p.peerAuthentication ?? {};
  const trustedDomainSuffixes = [...new Set(auth.trustedDomainSuffixes ?? [])];
  const peers = [...new Set(p.peers ?? [])];
  if (peers.length > 0 && trustedDomainSuffixes.length === 0) {
    throw new ConfigIssue('peerAuthentication.trustedDomainSuffixes', 'must be set when peers are listed');
  }
  let peerListen: ListenAddress | undefined;
  if (trustedDomainSuffixes.length > 0) {
    peerListen = p.peerListenAddress ?? parseListenAddress(DEFAULT_PEER_LISTEN_ADDRESS, 'peerListenAddress');
  } else if (p.peerListenAddress) {
    ctx.warnings.push(
      'peerListenAddress is ignored: no peer can be accepted without peerAuthentication.trustedDomainSuffixes',
    );
  }
  return {
    peers,
    peerListen,
    peerAuthentication: {
      trustedDomainSuffixes,
      caFile: resolveFrom(ctx.baseDir, auth.caFile ?? undefined),
      allowedRoutes: auth.allowedRoutes ?? undefined,
    },
    peerTunnelPorts: p.peerTunnelPorts ?? undefined,
  };
}
