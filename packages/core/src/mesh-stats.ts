/**
 * The mesh's counters (docs/mesh.md "Scaling"): peer messages and bytes in and out by type, the time spent
 * applying announces, and what the dials cost. Plain numbers: the CLI's metrics read them through
 * `PeerMesh.stats()` (core has no metrics dependency).
 */

import type { RouteSyncStats } from './mesh-announce.js';

/** Message types counted: the text messages of docs/protocol.md §2 and the binary tunnel frames. */
export type PeerMessageType =
  | 'announce'
  | 'route_delta'
  | 'route_state'
  | 'route_resync'
  | 'tunnel_request'
  | 'tunnel_frame'
  | 'other';

const TEXT_TYPES: ReadonlySet<string> = new Set([
  'announce',
  'route_delta',
  'route_state',
  'route_resync',
  'tunnel_request',
]);

/** Messages and bytes (WebSocket payload) per type. */
export type PeerTrafficCounts = Record<PeerMessageType, { messages: number; bytes: number }>;

function emptyCounts(): PeerTrafficCounts {
  return {
    announce: { messages: 0, bytes: 0 },
    route_delta: { messages: 0, bytes: 0 },
    route_state: { messages: 0, bytes: 0 },
    route_resync: { messages: 0, bytes: 0 },
    tunnel_request: { messages: 0, bytes: 0 },
    tunnel_frame: { messages: 0, bytes: 0 },
    other: { messages: 0, bytes: 0 },
  };
}

/** Counters shared by every link of one mesh. */
export class PeerTraffic {
  readonly in: PeerTrafficCounts = emptyCounts();
  readonly out: PeerTrafficCounts = emptyCounts();

  received(type: PeerMessageType, bytes: number): void {
    this.in[type].messages++;
    this.in[type].bytes += bytes;
  }

  sent(type: PeerMessageType, bytes: number): void {
    this.out[type].messages++;
    this.out[type].bytes += bytes;
  }
}

/** The type of a text peer message, for counting (before it is decoded). */
export function textMessageType(type: string): PeerMessageType {
  return TEXT_TYPES.has(type) ? (type as PeerMessageType) : 'other';
}

/** A snapshot of {@link PeerMesh.stats}. */
export interface PeerMeshStats {
  /** Open links (both directions). */
  links: number;
  /** Routes learned per open link. */
  routesPerLink: Array<{ linkId: string; peer: string; routes: number }>;
  /** Messages and bytes received, by type. */
  in: PeerTrafficCounts;
  /** Messages and bytes sent, by type. */
  out: PeerTrafficCounts;
  /** Announces applied to the routing table, and the time that took in all (ms) and at most (ms). */
  announcesApplied: number;
  announceApplyMs: number;
  announceApplyMaxMs: number;
  /** Route deltas, resyncs and full-state announces cut to fit (docs/mesh.md "Scaling"). */
  routeSync: RouteSyncStats;
  /** Outbound links this node closed because the peer had dialled it too (one link per pair). */
  duplicateLinksClosed: number;
  /** TLS client contexts built for dials (one per trust configuration). */
  dialContextsCreated: number;
  /** Dials in flight now, and the most ever at once. */
  dialsInFlight: number;
  dialsInFlightPeak: number;
  /** Dials of configured peers that failed: refused, timed out, or refused in TLS or the upgrade. */
  dialFailures: number;
  /** Of those, the dials whose opening handshake timed out. */
  dialTimeouts: number;
  /**
   * Peer certificates checked (inbound peers, discovered listeners), by the validation that decided:
   * `direct` (issued directly by a trusted CA, without PKI.js) or `full` (PKI.js's chain engine).
   */
  certificateChecks: { direct: number; full: number };
}
