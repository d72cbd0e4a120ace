/**
 * Who an authenticated backend is, as its token(s) said (docs/protocol.md §1.2, §1.9, §5): the routes it
 * serves and, for current-era backends, the port, UDP and outbound claims the node validated.
 */
import { claimedRouteKeys } from './route-key.js';

/** The protocol era a backend session speaks (docs/protocol.md §1.9). */
export type BackendEra = 'seed' | 'current';

/** One `udp_routes` claim, validated: the port and the effective (clamped) flow idle timeout. */
export interface UdpRouteClaim {
  /** UDP port, one of the node's `allowedUDPPortClaims`. */
  readonly port: number;
  /** Idle timeout of a flow on this route, seconds, within the node's bounds. */
  readonly flowIdleTimeoutSeconds: number;
}

/** The outbound (egress) claims, validated. */
export interface OutboundClaims {
  /** `outbound_allowed` (only with the node's `allowOutbound`). */
  readonly allowed: boolean;
  /** `allowed_outbound_ports`, ascending; empty = any port the node allows. */
  readonly ports: readonly number[];
}

/** What authentication established about a backend. */
export interface BackendIdentity {
  /** Normalised patterns (exact names and `*.suffix`) to serve. May be empty for a current-era backend that claims ports only. */
  hostnames: readonly string[];
  /** Pool weight. Default: `1`. */
  weight?: number;
  /** The era of its handshake. Default: `'seed'`. */
  era?: BackendEra;
  /**
   * Current era: the TCP ports it claims (`tcp_ports`), ascending, each in `allowedTCPPortClaims`; the
   * routes keyed `tcp:<port>` that serve them. Validated and carried; empty for seed-era backends.
   */
  tcpPorts?: readonly number[];
  /** Current era: its `udp_routes`, ascending by port. Validated and carried; empty for seed-era backends. */
  udpRoutes?: readonly UdpRouteClaim[];
  /** Current era: its outbound claims. Validated and carried; absent for seed-era backends. */
  outbound?: OutboundClaims;
  /** Current era: `policy_version` of its latest token (informational). */
  policyVersion?: string;
}

/**
 * A backend's routes: its hostnames, and a current-era backend's port claims as `tcp:<port>` and `udp:<port>`
 * (docs/edge.md "TCP port claims", "UDP relay").
 */
export function routePatterns(identity: BackendIdentity): string[] {
  return [...identity.hostnames, ...claimedRouteKeys(identity)];
}
