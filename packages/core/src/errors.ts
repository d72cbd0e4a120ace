/**
 * Errors thrown by `@nexus-proxy/core`.
 *
 * Callers match on `err.code` (stable across releases), never on `err.message`. Every error class has a
 * branded `static is()` guard that also works when two copies of this package (ESM and CJS builds) are loaded.
 * Every code is used; the codes without a class of their own (`NEXUS_ERR_CLOSED`,
 * `NEXUS_ERR_PEER`, `NEXUS_ERR_LISTEN`, `NEXUS_ERR_OUTBOUND_DIAL`) are plain `NexusError`s.
 */

/** Stable error codes. */
export const NexusErrorCode = {
  /** A configuration value is missing, of the wrong type or out of range. */
  InvalidConfig: 'NEXUS_ERR_INVALID_CONFIG',
  /** No local backend and no peer serves the requested hostname. */
  NoRoute: 'NEXUS_ERR_NO_ROUTE',
  /** A backend token was refused. */
  Auth: 'NEXUS_ERR_AUTH',
  /** A configured limit (sessions, streams, sniffs, bytes, rate) was exceeded. */
  Limit: 'NEXUS_ERR_LIMIT',
  /** TLS material could not be loaded or a TLS handshake failed. */
  Tls: 'NEXUS_ERR_TLS',
  /** Automatic certificate management (ACME) failed. */
  Acme: 'NEXUS_ERR_ACME',
  /** The component is closed or closing (the mesh, the fault proxy). */
  Closed: 'NEXUS_ERR_CLOSED',
  /** A peer could not be reached or refused the link (the dialer's last error). */
  Peer: 'NEXUS_ERR_PEER',
  /** A server could not bind its address, or is already listening. */
  Listen: 'NEXUS_ERR_LISTEN',
  /** An outbound connection (SOCKS5 egress) was refused by the node's checks or address policy. */
  OutboundRefused: 'NEXUS_ERR_OUTBOUND_REFUSED',
  /** An allowed outbound connection could not be made (resolution, refusal by the far end, timeout). */
  OutboundDial: 'NEXUS_ERR_OUTBOUND_DIAL',
} as const;

/** One of the stable `NEXUS_ERR_*` codes. */
export type NexusErrorCode = (typeof NexusErrorCode)[keyof typeof NexusErrorCode];

const DEFAULT_MESSAGES: Record<NexusErrorCode, string> = {
  NEXUS_ERR_INVALID_CONFIG: 'invalid configuration',
  NEXUS_ERR_NO_ROUTE: 'no route for hostname',
  NEXUS_ERR_AUTH: 'authentication failed',
  NEXUS_ERR_LIMIT: 'limit exceeded',
  NEXUS_ERR_TLS: 'TLS error',
  NEXUS_ERR_ACME: 'ACME error',
  NEXUS_ERR_CLOSED: 'closed',
  NEXUS_ERR_PEER: 'peer error',
  NEXUS_ERR_LISTEN: 'listener error',
  NEXUS_ERR_OUTBOUND_REFUSED: 'outbound connection refused',
  NEXUS_ERR_OUTBOUND_DIAL: 'outbound connection failed',
};

// A registry symbol (not a module-local one) so the brand survives duplicate copies of this module.
const kNexusError = Symbol.for('@nexus-proxy/core.NexusError');

/** Options accepted by every Nexus error constructor. */
export interface NexusErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

/** Base class of every error `@nexus-proxy/core` throws. Match on `code`. */
export class NexusError extends Error {
  /** Stable machine-readable code. */
  readonly code: NexusErrorCode;
  /** The underlying error, if any. */
  declare readonly cause?: unknown;

  constructor(code: NexusErrorCode, message?: string, options?: NexusErrorOptions) {
    super(message ?? DEFAULT_MESSAGES[code] ?? code, options?.cause === undefined ? undefined : options);
    this.name = 'NexusError';
    this.code = code;
    Object.defineProperty(this, kNexusError, { value: true });
  }

  /**
   * True when `value` is a NexusError (from any copy of this package), optionally with the given `code`.
   */
  static is(value: unknown, code?: NexusErrorCode): value is NexusError {
    if (typeof value !== 'object' || value === null) return false;
    if ((value as Record<symbol, unknown>)[kNexusError] !== true) return false;
    return code === undefined || (value as NexusError).code === code;
  }
}

/** A configuration value is invalid. `path` names the field, e.g. `listeners[2].port`. */
export class InvalidConfigError extends NexusError {
  /** Dotted/indexed path of the offending field (`''` for the whole document). */
  readonly path: string;
  /** The reason without the path prefix, e.g. `must be an integer between 1 and 65535`. */
  readonly detail: string;

  constructor(path: string, detail: string, options?: NexusErrorOptions) {
    super(NexusErrorCode.InvalidConfig, path ? `${path} ${detail}` : detail, options);
    this.name = 'InvalidConfigError';
    this.path = path;
    this.detail = detail;
  }

  static override is(value: unknown): value is InvalidConfigError {
    return (
      NexusError.is(value, NexusErrorCode.InvalidConfig) &&
      typeof (value as InvalidConfigError).path === 'string'
    );
  }
}

/** Maximum length of a WebSocket close reason in bytes (RFC 6455 §5.5: 125-byte payload minus the code). */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * Truncate `text` to at most `maxBytes` UTF-8 bytes without splitting a character.
 * @internal
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let out = '';
  let used = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (used + n > maxBytes) break;
    out += ch;
    used += n;
  }
  return out;
}

/**
 * Authentication was refused. `reason` is short, safe to show the peer, and fits a WebSocket close frame
 * (≤ 123 UTF-8 bytes, docs/protocol.md §1.2); it is truncated if longer.
 */
export class AuthError extends NexusError {
  /** Close-frame reason, e.g. `token expired`. At most 123 UTF-8 bytes. */
  readonly reason: string;

  constructor(reason: string, options?: NexusErrorOptions) {
    const short = truncateUtf8(reason, MAX_CLOSE_REASON_BYTES);
    super(NexusErrorCode.Auth, short, options);
    this.name = 'AuthError';
    this.reason = short;
  }

  static override is(value: unknown): value is AuthError {
    return NexusError.is(value, NexusErrorCode.Auth) && typeof (value as AuthError).reason === 'string';
  }
}

/** Why there is no route for a hostname. */
export type NoRouteReason =
  /** The name is not a valid hostname (it never matches anything). */
  | 'invalid-hostname'
  /** No local backend and no peer serves the name. */
  | 'no-route'
  /** Peers announce the name, but none of their links took the tunnel (closing, or at its tunnel limit). */
  | 'peers-unavailable';

/** No local backend and no peer serves `hostname` (or none that could take the connection). */
export class NoRouteError extends NexusError {
  /** The normalised hostname that had no route (as given when it was not a valid hostname). */
  readonly hostname: string;
  readonly reason: NoRouteReason;

  constructor(hostname: string, reason: NoRouteReason = 'no-route', options?: NexusErrorOptions) {
    super(
      NexusErrorCode.NoRoute,
      reason === 'no-route' ? `no route for ${hostname}` : `no route for ${hostname} (${reason})`,
      options,
    );
    this.name = 'NoRouteError';
    this.hostname = hostname;
    this.reason = reason;
  }

  static override is(value: unknown): value is NoRouteError {
    return (
      NexusError.is(value, NexusErrorCode.NoRoute) && typeof (value as NoRouteError).hostname === 'string'
    );
  }
}

/** A configured limit was exceeded. `limit` names the option, e.g. `maxStreamsPerSession`. */
export class LimitError extends NexusError {
  /** Name of the limit option that was hit. */
  readonly limit: string;

  constructor(limit: string, message?: string, options?: NexusErrorOptions) {
    super(NexusErrorCode.Limit, message ?? `limit exceeded: ${limit}`, options);
    this.name = 'LimitError';
    this.limit = limit;
  }

  static override is(value: unknown): value is LimitError {
    return NexusError.is(value, NexusErrorCode.Limit) && typeof (value as LimitError).limit === 'string';
  }
}

/** TLS material could not be loaded or used. */
export class TlsError extends NexusError {
  constructor(message?: string, options?: NexusErrorOptions) {
    super(NexusErrorCode.Tls, message, options);
    this.name = 'TlsError';
  }

  static override is(value: unknown): value is TlsError {
    return NexusError.is(value, NexusErrorCode.Tls);
  }
}

/** Automatic certificate management failed. */
export class AcmeError extends NexusError {
  constructor(message?: string, options?: NexusErrorOptions) {
    super(NexusErrorCode.Acme, message, options);
    this.name = 'AcmeError';
  }

  static override is(value: unknown): value is AcmeError {
    return NexusError.is(value, NexusErrorCode.Acme);
  }
}

/**
 * An outbound connection was refused before any byte left the node: by the outbound_connect checks or by
 * the address policy (docs/edge.md "Outbound address policy"). `reason` is the refusal's short name
 * (`loopback`, `private`, `cloud-metadata`…), `address` the address refused when there was one.
 */
export class OutboundRefusedError extends NexusError {
  readonly reason: string;
  readonly address: string | undefined;

  constructor(reason: string, message: string, address?: string, options?: NexusErrorOptions) {
    super(NexusErrorCode.OutboundRefused, message, options);
    this.name = 'OutboundRefusedError';
    this.reason = reason;
    this.address = address;
  }

  static override is(value: unknown): value is OutboundRefusedError {
    return (
      NexusError.is(value, NexusErrorCode.OutboundRefused) &&
      typeof (value as OutboundRefusedError).reason === 'string'
    );
  }
}
