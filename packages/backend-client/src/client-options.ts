import type { Duplex } from 'node:stream';
import { type Logger, noopLogger } from '@nexus-proxy/common';
import {
  isOfferableDataPayload,
  NEXUS_DATA_PAYLOAD,
  OFFERED_DATA_PAYLOAD_RANGE,
} from '@nexus-proxy/mux-protocol';
import type { AttestationContext } from './attestation.js';
import { type BackendIdentity, resolveAttestation, type TokenProviderOption } from './attestation-options.js';
import { InvalidOptionsError } from './errors.js';
import { normalizeNodeAddress } from './node-address.js';
import { parseSocks5ListenAddr, type Socks5ListenAddress } from './socks5-listener.js';
import type { ResolvedPortMappings } from './port-mappings.js';

/** Default first reconnect delay, ms (docs/protocol.md §1.6). */
export const DEFAULT_RECONNECT_INITIAL_DELAY = 1_000;
/** Default cap of the reconnect delay, ms. */
export const DEFAULT_RECONNECT_MAX_DELAY = 60_000;
/** Default growth of the reconnect delay per failed attempt. */
export const DEFAULT_RECONNECT_FACTOR = 2;
/** Default relative reconnect jitter (±25 %). */
export const DEFAULT_RECONNECT_JITTER = 0.25;
/** Default time a session must stay up before the backoff starts over, ms. */
export const DEFAULT_RECONNECT_RESET_AFTER = 30_000;
/** Default WebSocket ping interval, ms (reference backend value). */
export const DEFAULT_KEEPALIVE_INTERVAL = 5_000;
/** Default silence after which a session is dead, ms (reference backend value). */
export const DEFAULT_KEEPALIVE_TIMEOUT = 10_000;
/** Default idle time before a stream is probed with `ping_client`, ms. */
export const DEFAULT_HEALTH_INACTIVITY_TIMEOUT = 60_000;
/** Default wait for `pong_client`, ms. */
export const DEFAULT_HEALTH_PONG_TIMEOUT = 5_000;
/** Default timeout of a local dial, ms. */
export const DEFAULT_DIAL_TIMEOUT = 10_000;
/** Default timeout of the TLS + WebSocket handshake with a hub, ms. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;
/** Default time `close()` lets open streams finish before cutting them, ms. */
export const DEFAULT_CLOSE_GRACE = 5_000;
/** Default most local UDP sockets (one per UDP flow) per hub address. */
export const DEFAULT_UDP_MAX_SOCKETS = 1_024;
/** Default idle timeout of a UDP flow on a port without a `udpRoutes` timeout, ms (the reference's 30 s). */
export const DEFAULT_UDP_IDLE_TIMEOUT = 30_000;

/** What a connect handler learns about a new stream. */
export interface StreamRequest {
  /** Stream id (the `client_id` UUID). */
  id: string;
  /** Hub URL the stream arrived on. */
  node: string;
  /** Normalised hostname the end user asked for (SNI or Host). */
  hostname: string;
  /** End user's `ip:port` (`[v6]:port`); `''` when the hub did not say. */
  clientIp: string;
  /** The node's relay port the end user connected to (e.g. 443, 80). */
  connPort: number;
  /** True when the stream starts with a TLS ClientHello. */
  isTls: boolean;
  /** `'tcp'` (or `'udp'` from hubs that carry UDP flows). */
  transport: string;
  /** Aborted when the stream ends before the handler settled (hub `disconnect`, session drop, close()). */
  signal: AbortSignal;
}

/**
 * Supplies the local end of a stream: return a connected (or connecting) `Duplex` such as a
 * `net.Socket`, or `undefined` to fall back to the port mappings. Throwing / rejecting closes the stream
 * with reason `dial_failed`. The prelude (ClientHello or HTTP head) is the stream's first data.
 */
export type ConnectHandler = (request: StreamRequest) => Duplex | undefined | Promise<Duplex | undefined>;

/** TLS settings for the connection to the hubs. */
export interface BackendClientTlsOptions {
  /** Trusted CA certificate(s), PEM. Default: Node's root store. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Verify the hub's certificate. Default: `true`. Turn off only for tests. */
  rejectUnauthorized?: boolean;
  /** SNI / certificate name to expect, when it differs from the address's host. */
  servername?: string;
}

/** Reconnect backoff: `min(maxDelayMs, initialDelayMs · factor^n) · (1 ± jitter)`. */
export interface ReconnectOptions {
  /** First delay, ms. Default: `1_000`. */
  initialDelayMs?: number;
  /** Delay cap, ms. Default: `60_000`. */
  maxDelayMs?: number;
  /** Growth per failed attempt, ≥ 1. Default: `2`. */
  factor?: number;
  /** Relative jitter in [0, 1). Default: `0.25`. */
  jitter?: number;
  /** A session that stayed up this long resets the backoff, ms. Default: `30_000`. */
  resetAfterMs?: number;
}

/** Session liveness (docs/protocol.md §1.6). */
export interface KeepaliveOptions {
  /** WebSocket ping interval, ms. Default: `5_000`. */
  intervalMs?: number;
  /** No message or pong for this long → drop and reconnect, ms. Default: `10_000`. */
  timeoutMs?: number;
}

/** Optional per-stream health checks (docs/protocol.md §1.6; reference `healthChecks`). */
export interface HealthCheckOptions {
  /** Default: `false`. */
  enabled?: boolean;
  /** Idle time (no byte either way) before a `ping_client`, ms. Default: `60_000`. */
  inactivityTimeoutMs?: number;
  /** Wait for `pong_client` before closing the stream with reason `timeout`, ms. Default: `5_000`. */
  pongTimeoutMs?: number;
}

/** UDP flows toward local targets (docs/edge.md "UDP relay"). */
export interface UdpTargetOptions {
  /**
   * Local UDP sockets (one per flow) per hub address; past it the least recently used flow is closed.
   * Default: `1_024`.
   */
  maxSockets?: number;
  /**
   * Idle time after which a flow's socket is closed (and the flow disconnected), ms, on a port whose
   * `udpRoutes` entry names no timeout, plus 5 s of grace (the node normally ends idle flows first).
   * Default: `30_000`.
   */
  idleTimeoutMs?: number;
}

/** Options of `createBackendClient`. */
export interface BackendClientOptions {
  /** Hub addresses: `wss://node:8443/connect`, or `node:8443` (see `normalizeNodeAddress`). One session each. */
  nodes: string[];
  /**
   * Seed era: the backend JWT, or a function re-evaluated before every (re)connect (so it can refresh).
   * Exactly one of `token` and `tokenProvider`.
   */
  token?: string | (() => string | Promise<string>);
  /**
   * Current era (attested handshake, re-authentication): a function issuing each stage's token, or the
   * options of a built-in provider — `{ command, args, env, timeoutSeconds, cacheHandshakeSeconds }` runs a
   * program, `{ hmacSecret | hmacSecretFile, tokenTTLSeconds, reauthIntervalSeconds, … }` signs locally.
   * Needs `backend`. Exactly one of `token` and `tokenProvider`.
   */
  tokenProvider?: TokenProviderOption;
  /** Current era: the backend's name and claims, passed to the token provider. Required with `tokenProvider`. */
  backend?: BackendIdentity;
  /** Current era: wait for the hub's `handshake_challenge`, ms. Default: `15_000`. */
  challengeTimeoutMs?: number;
  /** Current era: longest wait for one token (a provider function: 30 s; a command: its timeout + 5 s), ms. */
  tokenTimeoutMs?: number;
  /** TLS settings toward the hubs. */
  tls?: BackendClientTlsOptions;
  /** Where streams go, by relay port and hostname. Used when there is no handler or it returns `undefined`. */
  portMappings?: ResolvedPortMappings;
  /** Hook that supplies the local end of each stream. */
  connectHandler?: ConnectHandler;
  /** Reconnect backoff. */
  reconnect?: ReconnectOptions;
  /** Session keepalive. */
  keepalive?: KeepaliveOptions;
  /** Per-stream health checks. */
  healthChecks?: HealthCheckOptions;
  /** Timeout of a local `net.connect`, ms. Default: `10_000`. */
  dialTimeoutMs?: number;
  /** Timeout of the TLS + WebSocket handshake with a hub, ms. Default: `10_000`. */
  handshakeTimeoutMs?: number;
  /**
   * The largest DATA payload this client accepts from a hub, bytes, from 32 768 to 1 MiB, said in the
   * upgrade (docs/protocol.md §1.11). A Nexus hub answers with what it accepts, and each sends the other
   * at most that; the reference ignores it and keeps 32 768 both ways. Default: `131_072`
   * (docs/benchmarks.md, "Larger frames between Nexus ends").
   */
  maxDataPayload?: number;
  /** How long `close()` lets open streams finish, ms. Default: `5_000`. */
  closeGraceMs?: number;
  /**
   * `host:port` of a local SOCKS5 listener (RFC 1928, no authentication, CONNECT) whose connections go
   * out through the first node in `nodes` (`outbound_connect`; the token must claim `outbound_allowed`).
   * Keep it on loopback: anyone who reaches it leaves through the node. Port `0` picks one
   * (`BackendClient.socks5Address`). Default: none.
   */
  socks5ListenAddr?: string;
  /** UDP flows: the bound on local sockets and their idle timeout. */
  udp?: UdpTargetOptions;
  /** Pino-compatible logger. Default: no-op. */
  logger?: Logger;
}

/** {@link BackendClientOptions} after validation and defaults; frozen. */
export interface ResolvedBackendClientOptions {
  readonly nodes: readonly string[];
  /** Seed era's token; `undefined` in the current era. */
  readonly token: string | (() => string | Promise<string>) | undefined;
  /** Current era's provider and claims; `undefined` in the seed era. */
  readonly attestation: AttestationContext | undefined;
  readonly tls: Readonly<BackendClientTlsOptions>;
  readonly portMappings: ResolvedPortMappings | undefined;
  readonly connectHandler: ConnectHandler | undefined;
  readonly reconnect: Readonly<Required<ReconnectOptions>>;
  readonly keepalive: Readonly<Required<KeepaliveOptions>>;
  readonly healthChecks: Readonly<Required<HealthCheckOptions>>;
  readonly dialTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly maxDataPayload: number;
  readonly closeGraceMs: number;
  readonly socks5ListenAddr: Socks5ListenAddress | undefined;
  readonly udp: Readonly<Required<UdpTargetOptions>>;
  readonly logger: Logger;
}

function positive(path: string, value: unknown, fallback: number, { allowZero = false } = {}): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new InvalidOptionsError(path, `must be a ${allowZero ? 'non-negative' : 'positive'} finite number`);
  }
  return value;
}

function dataPayload(value: unknown): number {
  if (value === undefined) return NEXUS_DATA_PAYLOAD;
  if (!isOfferableDataPayload(value)) {
    throw new InvalidOptionsError('maxDataPayload', `must be ${OFFERED_DATA_PAYLOAD_RANGE}`);
  }
  return value;
}

function object<T extends object>(path: string, value: T | undefined): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionsError(path, 'must be an object');
  }
  return value;
}

/**
 * Validates `createBackendClient` options and applies the `DEFAULT_*` values. Throws
 * {@link InvalidOptionsError} naming the field path (`reconnect.jitter must be in [0, 1)`).
 */
export function resolveBackendClientOptions(input: BackendClientOptions): ResolvedBackendClientOptions {
  if (typeof input !== 'object' || input === null)
    throw new InvalidOptionsError('options', 'must be an object');
  if (!Array.isArray(input.nodes) || input.nodes.length === 0) {
    throw new InvalidOptionsError('nodes', 'must list at least one hub address');
  }
  const nodes: string[] = [];
  input.nodes.forEach((address, index) => {
    if (typeof address !== 'string') throw new InvalidOptionsError(`nodes[${index}]`, 'must be a string');
    const url = normalizeNodeAddress(address, `nodes[${index}]`);
    if (nodes.includes(url)) throw new InvalidOptionsError(`nodes[${index}]`, `duplicates ${url}`);
    nodes.push(url);
  });
  const token = input.token;
  let attestation: AttestationContext | undefined;
  if (input.tokenProvider !== undefined) {
    if (token !== undefined) {
      throw new InvalidOptionsError('token', 'cannot be combined with tokenProvider: give one of them');
    }
    attestation = resolveAttestation({
      tokenProvider: input.tokenProvider,
      backend: input.backend,
      challengeTimeoutMs: input.challengeTimeoutMs,
      tokenTimeoutMs: input.tokenTimeoutMs,
    });
  } else if (typeof token === 'string' ? token.trim() === '' : typeof token !== 'function') {
    throw new InvalidOptionsError(
      'token',
      'must be a non-empty string or a function returning one (or give tokenProvider)',
    );
  }
  if (input.connectHandler !== undefined && typeof input.connectHandler !== 'function') {
    throw new InvalidOptionsError('connectHandler', 'must be a function');
  }
  if (input.portMappings === undefined && input.connectHandler === undefined) {
    throw new InvalidOptionsError('portMappings', 'is required when there is no connectHandler');
  }

  const tlsIn = object('tls', input.tls);
  const tls: BackendClientTlsOptions = {};
  if (tlsIn.ca !== undefined) tls.ca = tlsIn.ca;
  if (tlsIn.servername !== undefined) tls.servername = tlsIn.servername;
  if (tlsIn.rejectUnauthorized !== undefined) {
    if (typeof tlsIn.rejectUnauthorized !== 'boolean') {
      throw new InvalidOptionsError('tls.rejectUnauthorized', 'must be a boolean');
    }
    tls.rejectUnauthorized = tlsIn.rejectUnauthorized;
  }

  const r = object('reconnect', input.reconnect);
  const reconnect = {
    initialDelayMs: positive('reconnect.initialDelayMs', r.initialDelayMs, DEFAULT_RECONNECT_INITIAL_DELAY),
    maxDelayMs: positive('reconnect.maxDelayMs', r.maxDelayMs, DEFAULT_RECONNECT_MAX_DELAY),
    factor: positive('reconnect.factor', r.factor, DEFAULT_RECONNECT_FACTOR),
    jitter: positive('reconnect.jitter', r.jitter, DEFAULT_RECONNECT_JITTER, { allowZero: true }),
    resetAfterMs: positive('reconnect.resetAfterMs', r.resetAfterMs, DEFAULT_RECONNECT_RESET_AFTER, {
      allowZero: true,
    }),
  };
  if (reconnect.factor < 1) throw new InvalidOptionsError('reconnect.factor', 'must be ≥ 1');
  if (reconnect.jitter >= 1) throw new InvalidOptionsError('reconnect.jitter', 'must be in [0, 1)');
  if (reconnect.maxDelayMs < reconnect.initialDelayMs) {
    throw new InvalidOptionsError('reconnect.maxDelayMs', 'must be ≥ reconnect.initialDelayMs');
  }

  const k = object('keepalive', input.keepalive);
  const keepalive = {
    intervalMs: positive('keepalive.intervalMs', k.intervalMs, DEFAULT_KEEPALIVE_INTERVAL),
    timeoutMs: positive('keepalive.timeoutMs', k.timeoutMs, DEFAULT_KEEPALIVE_TIMEOUT),
  };
  if (keepalive.timeoutMs < keepalive.intervalMs) {
    throw new InvalidOptionsError('keepalive.timeoutMs', 'must be ≥ keepalive.intervalMs');
  }

  const h = object('healthChecks', input.healthChecks);
  if (h.enabled !== undefined && typeof h.enabled !== 'boolean') {
    throw new InvalidOptionsError('healthChecks.enabled', 'must be a boolean');
  }
  const healthChecks = {
    enabled: h.enabled ?? false,
    inactivityTimeoutMs: positive(
      'healthChecks.inactivityTimeoutMs',
      h.inactivityTimeoutMs,
      DEFAULT_HEALTH_INACTIVITY_TIMEOUT,
    ),
    pongTimeoutMs: positive('healthChecks.pongTimeoutMs', h.pongTimeoutMs, DEFAULT_HEALTH_PONG_TIMEOUT),
  };

  const u = object('udp', input.udp);
  const maxSockets = positive('udp.maxSockets', u.maxSockets, DEFAULT_UDP_MAX_SOCKETS);
  if (!Number.isInteger(maxSockets)) throw new InvalidOptionsError('udp.maxSockets', 'must be an integer');
  const udp = {
    maxSockets,
    idleTimeoutMs: positive('udp.idleTimeoutMs', u.idleTimeoutMs, DEFAULT_UDP_IDLE_TIMEOUT),
  };

  return Object.freeze({
    nodes: Object.freeze(nodes),
    token: attestation === undefined ? token : undefined,
    attestation,
    tls: Object.freeze(tls),
    portMappings: input.portMappings,
    connectHandler: input.connectHandler,
    reconnect: Object.freeze(reconnect),
    keepalive: Object.freeze(keepalive),
    healthChecks: Object.freeze(healthChecks),
    dialTimeoutMs: positive('dialTimeoutMs', input.dialTimeoutMs, DEFAULT_DIAL_TIMEOUT),
    handshakeTimeoutMs: positive('handshakeTimeoutMs', input.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT),
    maxDataPayload: dataPayload(input.maxDataPayload),
    closeGraceMs: positive('closeGraceMs', input.closeGraceMs, DEFAULT_CLOSE_GRACE, { allowZero: true }),
    socks5ListenAddr:
      input.socks5ListenAddr === undefined
        ? undefined
        : Object.freeze(parseSocks5ListenAddr(input.socks5ListenAddr, 'socks5ListenAddr')),
    udp: Object.freeze(udp),
    logger: input.logger ?? noopLogger,
  });
}
