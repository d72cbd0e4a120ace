/**
 * The peer mesh's options, events, defaults and their validation (docs/protocol.md §2).
 */
import type { ListenerGuardLimits } from './listener-guards.js';
import type { PeerPolicyOptions } from './peer-limits.js';
import {
  isOfferableDataPayload,
  NEXUS_DATA_PAYLOAD,
  OFFERED_DATA_PAYLOAD_RANGE,
  type TunnelSessionStats,
} from '@nexus-proxy/mux-protocol';
import type { BackoffSettings } from '@nexus-proxy/common';
import { InvalidConfigError } from './errors.js';
import type { HubTlsContext } from './hub-tls.js';
import type { Logger } from './logger.js';
import { DEFAULT_PEER_INITIAL_DIAL_JITTER, DEFAULT_PEER_MAX_CONCURRENT_DIALS } from './mesh-dial.js';
import type { OpenLocalStream } from './mesh-tunnels.js';
import type { RouteSyncMode } from './mesh-announce.js';
import type { PeerLinkCloseReason, PeerLinkDirection } from './peer-link.js';
import type { UploadBudget } from './relay-uploads.js';
import type { RoutingTable } from './routing-table.js';

/** First reconnect delay of a peer dialer: `1_000` ms. */
export const DEFAULT_PEER_RECONNECT_INITIAL_DELAY = 1_000;
/** Largest reconnect delay of a peer dialer (before jitter): `60_000` ms. */
export const DEFAULT_PEER_RECONNECT_MAX_DELAY = 60_000;
/** Relative reconnect jitter: `0.25` (±25 %, docs/protocol.md §2.5). */
export const DEFAULT_PEER_RECONNECT_JITTER = 0.25;
/** Time allowed for a dial (TCP + TLS + WebSocket handshake): `10_000` ms. */
export const DEFAULT_PEER_CONNECT_TIMEOUT = 10_000;
/** A link that stayed up this long resets its dialer's backoff, in ms. */
export const BACKOFF_RESET_AFTER_MS = 10_000;
/**
 * Local route changes within this window are announced together, once per link: `20` ms. The window opens
 * at the first change and is not extended by later ones, so an announce is never held back longer.
 */
export const DEFAULT_PEER_ANNOUNCE_COALESCE = 20;
/** Close reason of an outbound link whose peer URL was removed by {@link PeerMesh.setPeers}. */
export const PEER_REMOVED_REASON = 'peer_removed';

/** Reconnect backoff of the peer dialers. */
export interface PeerReconnectOptions {
  /** First delay, ms. Default: `1_000`. */
  initialDelayMs?: number;
  /** Largest delay before jitter, ms. Default: `60_000`. */
  maxDelayMs?: number;
  /** Growth per failed attempt. Default: `2`. */
  factor?: number;
  /** Relative jitter in [0, 1). Default: `0.25`. */
  jitter?: number;
}

/** Options of {@link PeerMesh}. */
export interface PeerMeshOptions extends PeerPolicyOptions, ListenerGuardLimits {
  /** The node's routing table: local patterns are announced, peer routes are written into it. */
  routes: RoutingTable<unknown, string>;
  /** The hub certificate: served by the peer listener and presented as client certificate when dialling. */
  tls: HubTlsContext;
  /** `peerAuthentication.trustedDomainSuffixes`; at least one. See `PeerAuthenticatorOptions`. */
  trustedDomainSuffixes: readonly string[];
  /** Extra trusted CAs, PEM (the contents of `peerAuthentication.caFile`). Default: none. */
  ca?: string | readonly string[];
  /** Also trust Node's bundled root CAs. Default: `true`. */
  systemCa?: boolean;
  /** Peer URLs to dial, `wss://host:port/mesh`. Default: none. */
  peers?: readonly string[];
  /**
   * Destination side: opens a stream to a local backend for a tunnel (the hub's `openStream`). Returning
   * `undefined` (no local backend) answers the tunnel with `0x12` at once. Never consults peers: tunnels
   * are one hop. Default: none (every tunnel is refused).
   */
  openLocalStream?: OpenLocalStream;
  /**
   * Destination side: the node's count of what streams hold of uploads (`limits.maxBufferedUploadBytes`),
   * which the relay of a tunnel to a local backend counts in as an end user's does. Default: none.
   */
  uploads?: UploadBudget;
  /** Idle timeout of tunnels relayed to local backends, ms; `0` = off. Default: `0`. */
  idleTimeoutMs?: number;
  /** Ping interval on every link, ms. Default: `10_000`. */
  keepaliveIntervalMs?: number;
  /** A link silent for this long is dropped, ms. Default: `30_000`. */
  keepaliveTimeoutMs?: number;
  /** Dialer backoff. */
  reconnect?: PeerReconnectOptions;
  /** Time allowed for one dial, ms. Default: `10_000`. */
  connectTimeoutMs?: number;
  /** Tunnel receive window per tunnel, frames. Default: `64`. */
  tunnelWindow?: number;
  /** Tunnel grant batch, frames. Default: `8`. */
  tunnelGrantBatch?: number;
  /**
   * The largest TUNNEL_DATA payload this node accepts from Nexus peers, bytes, from 32 768 to 1 MiB, said in
   * its first announce (docs/protocol.md §2.6, §1.11), and at most `maxPeerMessageBytes` − 17; a peer that
   * says nothing (the reference) gets 32 768 both ways. With frames larger than 32 768 bytes, the default
   * window and batch cover the same bytes in fewer frames. Default: `131_072`.
   */
  tunnelMaxDataPayload?: number;
  /** Most tunnels per link. Default: `10_000`. */
  maxTunnelsPerLink?: number;
  /** Link `bufferedAmount` above which TUNNEL_DATA waits, bytes. Default: 1 MiB. */
  linkHighWaterMark?: number;
  /** Local route changes within this window (ms) make one announce per link. Default: `20`. */
  announceCoalesceMs?: number;
  /**
   * Speak route deltas with Nexus peers (docs/protocol.md §2.6): advertise the capability on every link,
   * and send deltas to peers that advertise it too. `false` makes the node a full-state-only peer, as the
   * reference is (full-state announces to everyone, two links per pair). Default: `true`.
   */
  routeDeltas?: boolean;
  /** Most dials in flight at once. Default: `8`. */
  maxConcurrentDials?: number;
  /** First dials after `start()` are spread over up to this long, ms. Default: `250`. */
  initialDialJitterMs?: number;
  /** Logger; a child with `component: 'mesh'` is used. Default: no-op. */
  logger?: Logger;
  /** Random source for backoff jitter, [0, 1). Default: `Math.random`. */
  random?: () => number;
}

/** What {@link PeerMesh.setTrust} replaces: who may join through the peer listener. */
export interface PeerTrustOptions {
  /** `peerAuthentication.trustedDomainSuffixes`; at least one. See `PeerAuthenticatorOptions`. */
  trustedDomainSuffixes: readonly string[];
  /** Extra trusted CAs, PEM (the contents of `peerAuthentication.caFile`). Default: none. */
  ca?: string | readonly string[];
}

/** What {@link PeerMesh.setKeepalive} replaces; an omitted field keeps its value. */
export interface PeerKeepaliveOptions {
  /** Ping interval on every link, ms; `0` = no pings. */
  keepaliveIntervalMs?: number;
  /** A link silent for this long is dropped, ms; `0` = never. */
  keepaliveTimeoutMs?: number;
}

/** A link as reported by events and {@link PeerMesh.links}. */
export interface PeerLinkInfo {
  /** The routing table's key for this link. */
  linkId: string;
  /** Matched certificate name (inbound) or dialled URL (outbound). */
  peer: string;
  direction: PeerLinkDirection;
}

/** A snapshot of one link. */
export interface PeerLinkSnapshot extends PeerLinkInfo {
  /** When the link was established (ms since the epoch). */
  openedAt: number;
  /** Version of the last accepted announce, if any. */
  lastAnnounceVersion: number | undefined;
  /** How this node sends routes on the link: peer not known yet, full-state announces, or deltas. */
  routeSync: RouteSyncMode;
  /** Routes learned on this link, sorted. */
  routes: string[];
  /** Tunnel counters. */
  tunnels: TunnelSessionStats;
}

/** Events of {@link PeerMesh}. */
export interface PeerMeshEvents {
  /** A link was established (either direction). */
  'peer-connected': [info: PeerLinkInfo];
  /** A link ended; its routes are already gone and its tunnels closed. */
  'peer-disconnected': [info: PeerLinkInfo & { reason: PeerLinkCloseReason }];
  /** The routes learned on a link changed (an announce, or the link died: `hostnames` is empty). */
  'routes-changed': [change: PeerLinkInfo & { hostnames: string[]; version: number | undefined }];
  /** A peer was refused at the listener (before any message was read). */
  'peer-refused': [event: { remoteAddress: string | undefined; reason: string }];
}

export function nonNegative(path: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidConfigError(path, 'must be a number ≥ 0');
  }
  return value;
}

export function optionalNonNegative(path: string, value: number | undefined): number | undefined {
  return value === undefined ? undefined : nonNegative(path, value, 0);
}

/** Validates and normalises peer URLs (duplicates kept: each is one link). */
export function validatePeerUrls(urls: readonly string[]): string[] {
  return urls.map((url, i) => validatePeerUrl(url, i));
}

function validatePeerUrl(url: string, index: number): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidConfigError(`peers[${index}]`, 'must be a URL such as wss://peer.example.com:8444/mesh');
  }
  if (parsed.protocol !== 'wss:')
    throw new InvalidConfigError(`peers[${index}]`, 'must use wss:// (mutual TLS)');
  return parsed.toString();
}

/** The mesh's numeric settings, validated, defaults applied. */
export interface MeshSettings {
  reconnect: BackoffSettings;
  connectTimeoutMs: number;
  tunnelOptions: { initialWindow?: number; grantBatch?: number; maxTunnels?: number; highWaterMark?: number };
  /** The largest TUNNEL_DATA payload accepted from peers, bytes. */
  tunnelMaxDataPayload: number;
  announceCoalesceMs: number;
  initialDialJitterMs: number;
  maxConcurrentDials: number;
}

/** Validates the mesh's numeric options. Throws `InvalidConfigError` naming the field. */
export function resolveMeshSettings(options: PeerMeshOptions): MeshSettings {
  const r = options.reconnect ?? {};
  const reconnect: BackoffSettings = {
    initialDelayMs: nonNegative(
      'reconnect.initialDelayMs',
      r.initialDelayMs,
      DEFAULT_PEER_RECONNECT_INITIAL_DELAY,
    ),
    maxDelayMs: nonNegative('reconnect.maxDelayMs', r.maxDelayMs, DEFAULT_PEER_RECONNECT_MAX_DELAY),
    factor: Math.max(1, nonNegative('reconnect.factor', r.factor, 2)),
    jitter: nonNegative('reconnect.jitter', r.jitter, DEFAULT_PEER_RECONNECT_JITTER),
  };
  if (reconnect.jitter >= 1) throw new InvalidConfigError('reconnect.jitter', 'must be in [0, 1)');
  const connectTimeoutMs = nonNegative(
    'connectTimeoutMs',
    options.connectTimeoutMs,
    DEFAULT_PEER_CONNECT_TIMEOUT,
  );
  const tunnelOptions = {
    ...(options.tunnelWindow !== undefined ? { initialWindow: options.tunnelWindow } : {}),
    ...(options.tunnelGrantBatch !== undefined ? { grantBatch: options.tunnelGrantBatch } : {}),
    ...(options.maxTunnelsPerLink !== undefined ? { maxTunnels: options.maxTunnelsPerLink } : {}),
    ...(options.linkHighWaterMark !== undefined ? { highWaterMark: options.linkHighWaterMark } : {}),
  };
  const announceCoalesceMs = nonNegative(
    'announceCoalesceMs',
    options.announceCoalesceMs,
    DEFAULT_PEER_ANNOUNCE_COALESCE,
  );
  const initialDialJitterMs = nonNegative(
    'initialDialJitterMs',
    options.initialDialJitterMs,
    DEFAULT_PEER_INITIAL_DIAL_JITTER,
  );
  const maxConcurrentDials = nonNegative(
    'maxConcurrentDials',
    options.maxConcurrentDials,
    DEFAULT_PEER_MAX_CONCURRENT_DIALS,
  );
  if (maxConcurrentDials < 1) throw new InvalidConfigError('maxConcurrentDials', 'must be at least 1');
  const tunnelMaxDataPayload = options.tunnelMaxDataPayload ?? NEXUS_DATA_PAYLOAD;
  if (!isOfferableDataPayload(tunnelMaxDataPayload)) {
    throw new InvalidConfigError('tunnelMaxDataPayload', `must be ${OFFERED_DATA_PAYLOAD_RANGE}`);
  }
  return {
    reconnect,
    connectTimeoutMs,
    tunnelOptions,
    tunnelMaxDataPayload,
    announceCoalesceMs,
    initialDialJitterMs,
    maxConcurrentDials,
  };
}
