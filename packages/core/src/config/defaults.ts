/** Defaults of the node configuration (docs/configuration.md lists them with each key). */
import {
  DEFAULT_CLOCK_TOLERANCE_SEC,
  DEFAULT_MAX_TOKEN_BYTES,
  DEFAULT_MAX_TOKEN_HOSTNAMES,
} from '../auth.js';
import { DEFAULT_BACKEND_ERA_MODE } from '../backend-era.js';
import { DEFAULT_MAX_BUFFERED_UPLOAD_BYTES } from '../relay-uploads.js';
import type { ResolvedAuth, ResolvedKeepalive, ResolvedLimits } from './types.js';

/** Hub (backend WebSocket) listen address. Default: `:8443` (all interfaces). */
export const DEFAULT_BACKEND_LISTEN_ADDRESS = ':8443';
/** Peer (mesh) listen address. Default: `:8444`. */
export const DEFAULT_PEER_LISTEN_ADDRESS = ':8444';
/** Public relay ports. Default: `[443, 80]`. */
export const DEFAULT_RELAY_PORTS: readonly number[] = Object.freeze([443, 80]);
/** The relay port that speaks plain HTTP (routes by Host) when listed in `relayPorts`; others route by SNI. */
export const HTTP_RELAY_PORT = 80;
/**
 * Idle timeout of a relayed connection (no byte either way), seconds; `0` = off. Default: `900` (the
 * reference has none; an idle connection still holds a stream of its backend's `maxStreamsPerSession`).
 */
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 900;
/** Secrets shorter than this many bytes get a warning. */
export const MIN_SECRET_BYTES = 32;
/** Outbound connections per backend when `maxOutboundConnsPerBackend` is 0 (the reference's default). */
export const DEFAULT_MAX_OUTBOUND_CONNS_PER_BACKEND = 100;
/** What `maxOutboundConnsPerBackend: -1` (unbounded in the reference) is capped at. */
export const MAX_OUTBOUND_CONNS_PER_BACKEND = 1_000_000;
/** Outbound dial timeout when `outboundDialTimeoutSeconds` is 0, seconds (the reference's default). */
export const DEFAULT_OUTBOUND_DIAL_TIMEOUT_SECONDS = 10;
/**
 * Idle timeout of outbound connections when `outboundIdleTimeoutSeconds` is not set, seconds (the reference
 * has none; like `idleTimeoutSeconds`, an idle connection holds a stream of its backend).
 */
export const DEFAULT_OUTBOUND_IDLE_TIMEOUT_SECONDS = 900;
/** Default log level. */
export const DEFAULT_LOG_LEVEL = 'info';

/** Default resource limits (see {@link LimitsInput} for each one's meaning). */
export const DEFAULT_LIMITS: Readonly<ResolvedLimits> = Object.freeze({
  maxConcurrentSniffs: 256,
  sniffFirstByteTimeoutMs: 15_000,
  sniffFirstByteTimeoutBusyMs: 3_000,
  sniffReadExtensionMs: 5_000,
  sniffAbsoluteTimeoutMs: 30_000,
  maxClientHelloBytes: 32_768,
  maxHttpHeadBytes: 65_536,
  maxStreamsPerSession: 1_024,
  maxSessions: 10_000,
  maxPendingConnects: 1_024,
  maxConnectionsPerIp: 256,
  authTimeoutMs: 10_000,
  maxMessageBytes: 32_785,
  maxControlMessagesPerSecond: 10_000,
  clientFinTimeoutMs: 30_000,
  streamEndGraceMs: 2_000,
  maxPendingAuth: 256,
  maxPendingAuthPerAddress: 16,
  maxSessionsPerAddress: 1_000,
  maxSessionsPerToken: 100,
  tlsHandshakeTimeoutMs: 10_000,
  maxListenerConnections: 20_000,
  maxPeerRoutes: 10_000,
  maxLocalRoutes: 10_000,
  maxPeerMessageBytes: 1_048_576,
  maxBufferedBytes: 268_435_456,
  maxBufferedUploadBytes: DEFAULT_MAX_BUFFERED_UPLOAD_BYTES,
  stunMaxResponsesPerSecond: 10_000,
  stunMaxResponsesPerAddressPerSecond: 50,
});

/** Default keepalive settings (docs/protocol.md §1.6 reference hub values). */
export const DEFAULT_KEEPALIVE: Readonly<ResolvedKeepalive> = Object.freeze({
  hubPingIntervalMs: 54_000,
  hubDeadAfterMs: 60_000,
  peerPingIntervalMs: 54_000,
  peerDeadAfterMs: 60_000,
});

/** Default backend-token checks. */
export const DEFAULT_AUTH: Readonly<ResolvedAuth> = Object.freeze({
  requireExp: false,
  issuer: undefined,
  audience: undefined,
  clockToleranceSec: DEFAULT_CLOCK_TOLERANCE_SEC,
  maxHostnames: DEFAULT_MAX_TOKEN_HOSTNAMES,
  maxTokenBytes: DEFAULT_MAX_TOKEN_BYTES,
  backendEra: DEFAULT_BACKEND_ERA_MODE,
});
