/**
 * Bounds on what an authenticated peer may ask of this node (docs/security.md, "a peer"): how many routes
 * it may announce and which, how large its messages may be, and what a tunnel request may carry before
 * its fields reach a local backend (`conn_port` selects the backend's port mapping, `client_ip` ends up in
 * PROXY protocol headers).
 */
import { isIP } from 'node:net';
import { normalizeHostname, normalizeHostnamePattern } from '@nexus-proxy/sni';
import { normalizeRouteKey } from './route-key.js';
import { InvalidConfigError } from './errors.js';

/** Default most routes kept from one peer's announce: 10 000. */
export const DEFAULT_MAX_PEER_ROUTES = 10_000;
/** Default largest WebSocket message accepted on a peer link: 1 MiB (10 000 names of 100 bytes fit). */
export const DEFAULT_MAX_PEER_MESSAGE_BYTES = 1024 * 1024;

/**
 * A normalised allow-list entry: an exact hostname (`app.example.com`) or a suffix (`.example.com`, also
 * written `*.example.com`) that allows every name below it, at any depth.
 */
export type PeerAllowEntry = { exact: string } | { suffix: string };

/** Parses allow-list entries; `undefined` for one that is not a hostname or suffix. */
export function parsePeerAllowEntry(entry: string): PeerAllowEntry | undefined {
  const text = entry.trim();
  const suffixText = text.startsWith('*.') ? text.slice(2) : text.startsWith('.') ? text.slice(1) : undefined;
  if (suffixText !== undefined) {
    const suffix = normalizeHostname(suffixText);
    return suffix === undefined || !suffix.includes('.') ? undefined : { suffix };
  }
  const exact = normalizeHostname(text);
  return exact === undefined ? undefined : { exact };
}

/**
 * True when an announced `pattern` (normalised: an exact name or `*.suffix`) is allowed by `entries`: an
 * exact name equal to an exact entry or below a suffix entry; a wildcard whose every name is below a
 * suffix entry (`*.a.example.com` under `.example.com`, and `*.example.com` under `.example.com`).
 */
export function isAllowedPeerRoute(pattern: string, entries: readonly PeerAllowEntry[]): boolean {
  const wildcard = pattern.startsWith('*.');
  const base = wildcard ? pattern.slice(2) : pattern;
  for (const entry of entries) {
    if ('exact' in entry) {
      if (!wildcard && base === entry.exact) return true;
    } else if (base.endsWith(`.${entry.suffix}`) || (wildcard && base === entry.suffix)) {
      return true;
    }
  }
  return false;
}

/** The outcome of {@link filterPeerAnnounce}. */
export interface FilteredAnnounce {
  /** The routes to keep, normalised, in announce order. */
  accepted: string[];
  /** Entries dropped as invalid or outside the allow-list. */
  refused: number;
  /** Valid, allowed entries dropped beyond `maxRoutes`. */
  truncated: number;
}

/**
 * What this node keeps of one announce: valid patterns, allowed by `allow` when there is one, at most
 * `maxRoutes` (the first ones, in the peer's order).
 */
export function filterPeerAnnounce(
  hostnames: readonly string[],
  policy: { maxRoutes: number; allow?: readonly PeerAllowEntry[] | undefined },
): FilteredAnnounce {
  const accepted: string[] = [];
  const seen = new Set<string>();
  let refused = 0;
  let truncated = 0;
  for (const entry of hostnames) {
    // Port-claim route keys (`tcp:443`) travel like hostnames (docs/edge.md "TCP port claims").
    const pattern =
      typeof entry === 'string' ? (normalizeRouteKey(entry) ?? normalizeHostnamePattern(entry)) : undefined;
    if (pattern === undefined || (policy.allow !== undefined && !isAllowedPeerRoute(pattern, policy.allow))) {
      refused++;
      continue;
    }
    if (seen.has(pattern)) continue;
    if (accepted.length >= policy.maxRoutes) {
      truncated++;
      continue;
    }
    seen.add(pattern);
    accepted.push(pattern);
  }
  return { accepted, refused, truncated };
}

/**
 * True when `text` is an end user's address as a node writes it: `a.b.c.d:port` or `[v6]:port`, port
 * 0–65535. Anything else in a tunnel request would be written into a backend's PROXY header unchecked.
 */
export function isValidClientAddress(text: unknown): boolean {
  if (typeof text !== 'string' || text.length > 64) return false;
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return false;
  const portText = text.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return false;
  const port = Number(portText);
  if (port > 65_535) return false;
  const host = text.slice(0, colon);
  if (host.startsWith('[')) return host.endsWith(']') && isIP(host.slice(1, -1)) === 6;
  return isIP(host) === 4;
}

/** Options of {@link PeerPolicy} (also fields of `PeerMeshOptions`). */
export interface PeerPolicyOptions {
  /** Most routes kept from one peer's announce (the first ones). Default: `10_000`. */
  maxPeerRoutes?: number;
  /** Largest WebSocket message accepted on a peer link, bytes. Default: 1 MiB. */
  maxPeerMessageBytes?: number;
  /**
   * Per-peer allow-lists: peer name → hostnames (`app.example.com`) and suffixes (`.example.com`) it may
   * announce; routes outside are dropped. A peer's name is the certificate name it was accepted by
   * (inbound) or the host of its URL (outbound). A peer not listed may announce any name. Default: none.
   */
  peerAllowedRoutes?: Readonly<Record<string, readonly string[]>>;
  /**
   * The relay ports a tunnel's `conn_port` may name (a mesh serves the same public ports on every node);
   * others are refused before a local backend is asked. Default: any.
   */
  tunnelPorts?: readonly number[];
}

/** What {@link PeerPolicy.checkTunnel} looks at. */
export interface TunnelRequestFields {
  conn_port: number;
  client_ip: string;
}

/** The bounds applied to every peer of a mesh (see {@link PeerPolicyOptions}). */
export class PeerPolicy {
  readonly maxRoutes: number;
  readonly maxMessageBytes: number;
  readonly #allow = new Map<string, PeerAllowEntry[]>();
  readonly #tunnelPorts: ReadonlySet<number> | undefined;

  /** Throws `InvalidConfigError` for an allow-list entry that is neither a hostname nor a suffix. */
  constructor(options: PeerPolicyOptions = {}) {
    this.maxRoutes = options.maxPeerRoutes ?? DEFAULT_MAX_PEER_ROUTES;
    this.maxMessageBytes = options.maxPeerMessageBytes ?? DEFAULT_MAX_PEER_MESSAGE_BYTES;
    for (const [peer, entries] of Object.entries(options.peerAllowedRoutes ?? {})) {
      const parsed = entries.map((entry, i) => {
        const e = typeof entry === 'string' ? parsePeerAllowEntry(entry) : undefined;
        if (e === undefined) {
          throw new InvalidConfigError(
            `peerAuthentication.allowedRoutes.${peer}[${i}]`,
            'must be a hostname or a suffix such as .example.com',
          );
        }
        return e;
      });
      this.#allow.set(peerKey(peer), parsed);
    }
    this.#tunnelPorts = options.tunnelPorts === undefined ? undefined : new Set(options.tunnelPorts);
  }

  /**
   * What this node keeps of an announce from `peer` (its link's `peer`: a name or a URL): at most
   * `maxRoutes` (default: the cap; a route delta passes its own count, since the table holds the rest).
   */
  routesFrom(peer: string, hostnames: readonly string[], maxRoutes = this.maxRoutes): FilteredAnnounce {
    return filterPeerAnnounce(hostnames, {
      maxRoutes,
      allow: this.#allow.get(peerKey(peer)),
    });
  }

  /** Why a tunnel request must be refused before a backend sees it, or `undefined` when it may go on. */
  checkTunnel(request: TunnelRequestFields): string | undefined {
    if (!isValidClientAddress(request.client_ip)) return 'client_ip is not an ip:port';
    if (this.#tunnelPorts !== undefined && !this.#tunnelPorts.has(request.conn_port)) {
      return `conn_port ${request.conn_port} is not a relay port`;
    }
    return undefined;
  }
}

/** A peer's allow-list key: a certificate name as is, the host of a peer URL. */
function peerKey(peer: string): string {
  if (!peer.includes('://')) return peer.trim().toLowerCase().replace(/\.$/, '');
  try {
    return new URL(peer).hostname.toLowerCase();
  } catch {
    return peer;
  }
}
