/**
 * The backend hub's options, limits and defaults (docs/hub.md), apart from the hub itself (hub.ts).
 */
import type { SecureContextOptions } from 'node:tls';
import type { TokenVerifier } from './auth.js';
import type { BackendEraMode } from './backend-era.js';
import type { BackendSession, BackendSessionOptions } from './backend-session.js';
import type { ClaimPolicy } from './current-claims.js';
import type { HubTlsContext } from './hub-tls.js';
import type { HubAdmissionLimits, ListenerGuardLimits } from './listener-guards.js';
import type { Logger } from './logger.js';
import type { OutboundStreamsOptions } from './outbound-streams.js';
import type { RoutingTable } from './routing-table.js';

/** Default time a backend has to send its token: 10 000 ms (docs/protocol.md §1.2). */
export const DEFAULT_AUTH_TIMEOUT_MS = 10_000;
/** Default most streams per backend session that the backend has not answered yet: 1 024. */
export const DEFAULT_MAX_PENDING_CONNECTS = 1_024;
/** Default grace for close handshakes when the hub shuts down before sockets are cut: 1 000 ms. */
export const DEFAULT_HUB_CLOSE_GRACE_MS = 1_000;

/** Hub limits; field names match `ResolvedLimits` of the node config, so it can be passed as is. */
export interface BackendHubLimits extends ListenerGuardLimits, HubAdmissionLimits {
  /** Time for the token message, ms. Default: `10_000`. */
  authTimeoutMs?: number;
  /** Open streams per session. Default: `1_024`. */
  maxStreamsPerSession?: number;

  /** Largest WebSocket message from a backend after its token, bytes; larger → close 1009. Default: `32_785`. */
  maxMessageBytes?: number;
  /**
   * Streams per session that the backend has not answered yet (no message for them since their
   * `connect`); a session at the limit gets no new stream (`openStream` tries the others of the pool,
   * then throws `LimitError('maxPendingConnects')`). Default: `1_024`.
   */
  maxPendingConnects?: number;
  /** Control messages per second per session before close 1008; `0` = off. Default: `10_000`. */
  maxControlMessagesPerSecond?: number;
  /** DATA granted to backends and not yet delivered, all sessions, bytes (`ReceiveBudget`). Default: 256 MiB. */
  maxBufferedBytes?: number;
  /**
   * Patterns served by local backends, node-wide: a backend whose patterns not yet served would take the
   * node past it is refused (`too many routes on this node`). Default: `10_000`.
   */
  maxLocalRoutes?: number;
}

/** Hub keepalive, ms; names match `ResolvedKeepalive` of the node config. */
export interface BackendHubKeepalive {
  /** Ping interval. Default: `54_000`. */
  hubPingIntervalMs?: number;
  /** Silence after which a session is terminated. Default: `60_000`. */
  hubDeadAfterMs?: number;
}

/** Options of {@link BackendHub}. */
export interface BackendHubOptions<L = string> {
  /**
   * The server certificate: a swappable `HubTlsContext` (ACME renewals reach new handshakes) or plain
   * `tls` options. Needed by `listen()`; `handleUpgrade()` alone works without it.
   */
  tls?: HubTlsContext | SecureContextOptions;
  /**
   * Verifies every token a backend sends (the seed era's one; the current era's stage 0, stage 1 and each
   * re-authentication answer) and resolves with its claims: signature, algorithm, dates. The hub reads the
   * claims (era, routes, port claims) itself. Reject with an `AuthError` whose `reason` is sent in the
   * close frame; any other rejection is reported as `authentication failed`. This is the seam for a
   * verifier other than the node's secret (`createLocalTokenVerifier` is the local one).
   */
  verifyToken: TokenVerifier;
  /** Routing table the sessions are registered in. */
  routes: RoutingTable<BackendSession, L>;
  /**
   * Limits. The hub keeps this object and reads it live: `maxSessions` and `maxMessageBytes` for each new
   * upgrade, `authTimeoutMs` for each new connection, the rest for each new session; change a field in
   * place (as `createNexus`'s `reload()` does) and it applies from then on. Nothing open is cut.
   */
  limits?: BackendHubLimits;
  /** Keepalive; read live like `limits`, for each new session. */
  keepalive?: BackendHubKeepalive;
  /**
   * Token limits; read live, for each new upgrade. `maxTokenBytes` (default `65_536`) is the largest
   * first message (the token): the WebSocket admits `max(maxMessageBytes, maxTokenBytes)` bytes, later
   * messages are held to `maxMessageBytes`, and a larger token is refused with 1008 `token too large`.
   */
  auth?: {
    readonly maxTokenBytes?: number;
    /** Era rule (docs/protocol.md §1.9): `auto` (default), or `seed` / `current` for every backend. */
    readonly backendEra?: BackendEraMode;
  };
  /**
   * What current-era tokens may claim (port allow-lists, UDP timeouts, outbound, most hostnames; the seed
   * era uses `maxHostnames` too); read live, for each new connection. Default: `DEFAULT_CLAIM_POLICY`.
   */
  claims?: ClaimPolicy;
  /** Current-era re-authentication (docs/protocol.md §1.10); read live, for each new session. */
  reauth?: {
    /** Deferral cap while the authorizer is unhealthy, when the token names none, seconds. Default: `1_800`. */
    readonly maintenanceGraceDefaultSeconds?: number;
    /**
     * Authorizer health check. Default: an HTTPS GET, 200 within 5 s, presenting the certificate the hub
     * serves (a `HubTlsContext`: the one in force at each check) as the TLS client certificate.
     */
    readonly checkStatus?: (uri: string) => Promise<boolean>;
    /** CA certificates (PEM) the default check trusts besides Node's root store; read once. Default: none. */
    readonly authorizerStatusCa?: readonly string[];
  };
  /**
   * Mux engine tuning passed to every session. `maxDataPayload` is the largest DATA payload the hub
   * accepts from a backend that says what it accepts (docs/protocol.md §1.11); `sendDataPayload` is set
   * per session from the backend's word. Default: `NEXUS_DATA_PAYLOAD` (128 KiB).
   */
  mux?: BackendSessionOptions['mux'];
  /** Outbound connections (`outbound_connect`, docs/edge.md "Outbound connections"). Default: off. */
  outbound?: Omit<OutboundStreamsOptions, 'logger'>;
  /** Logger; a `component: 'hub'` child is used. Default: no-op. */
  logger?: Logger;
}

/** What an end-user stream needs besides its hostname. */
export interface HubStreamInit {
  /** The relay port the end user connected to. */
  connPort: number;
  /** End user's `ip:port` (`[v6]:port`). */
  clientIp: string;
  /** True when the stream began with a TLS ClientHello. */
  isTls: boolean;
  /** `'udp'`: a UDP flow, a datagram stream (docs/edge.md "UDP relay"). Default: `'tcp'`. */
  transport?: 'tcp' | 'udp';
}

/** Snapshot of the hub. */
export interface BackendHubStats {
  sessions: number;
  authenticating: number;
  streams: number;
}
