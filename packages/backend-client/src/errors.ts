/**
 * Errors thrown or emitted by the backend client. Match on `err.code`, which is stable across releases;
 * messages are for humans and may change.
 */

/** Stable error codes of this package. */
export type BackendClientErrorCode =
  | 'NEXUS_ERR_INVALID_OPTIONS'
  | 'NEXUS_ERR_DIAL_FAILED'
  | 'NEXUS_ERR_NO_MAPPING'
  | 'NEXUS_ERR_TOKEN'
  | 'NEXUS_ERR_HANDSHAKE'
  | 'NEXUS_ERR_SESSION'
  | 'NEXUS_ERR_SOCKS5';

const kBrand = Symbol.for('nexus-proxy.backend-client.error');

/** Base class of every error this package creates. */
export class BackendClientError extends Error {
  /** Stable machine-readable code. */
  readonly code: BackendClientErrorCode;

  constructor(code: BackendClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackendClientError';
    this.code = code;
  }

  /** True for any error created by this package, also across duplicated copies of the package. */
  static is(value: unknown): value is BackendClientError {
    return typeof value === 'object' && value !== null && (value as { [kBrand]?: unknown })[kBrand] === true;
  }
}

Object.defineProperty(BackendClientError.prototype, kBrand, { value: true });

/** `createBackendClient` options failed validation; the message names the field path. */
export class InvalidOptionsError extends BackendClientError {
  /** Path of the offending field, e.g. `reconnect.factor`. */
  readonly path: string;

  constructor(path: string, message: string) {
    super('NEXUS_ERR_INVALID_OPTIONS', `${path} ${message}`);
    this.name = 'InvalidOptionsError';
    this.path = path;
  }
}

/** The local service could not be reached (refused, unreachable, timed out, handler failed). */
export class DialError extends BackendClientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NEXUS_ERR_DIAL_FAILED', message, options);
    this.name = 'DialError';
  }
}

/** No port mapping (and no connect handler) serves the stream's port and hostname. */
export class NoMappingError extends BackendClientError {
  constructor(connPort: number, hostname: string) {
    super('NEXUS_ERR_NO_MAPPING', `no port mapping for ${hostname} on port ${connPort}`);
    this.name = 'NoMappingError';
  }
}

/** The token provider threw or returned something that is not a non-empty string. */
export class TokenError extends BackendClientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NEXUS_ERR_TOKEN', message, options);
    this.name = 'TokenError';
  }
}

/** How an attestation command failed. */
export type TokenCommandFailure = 'spawn' | 'timeout' | 'exit' | 'output';

/**
 * The attestation command failed: it could not be started (`spawn`), ran past its timeout and was
 * killed (`timeout`), exited non-zero or by a signal (`exit`), or printed no usable token (`output`,
 * which includes more output than the client reads). The message names the command and its status.
 */
export class TokenCommandError extends TokenError {
  /** The command as configured (not its arguments: they may carry secrets). */
  readonly command: string;
  readonly failure: TokenCommandFailure;
  /** Exit code, when it exited. */
  readonly exitCode: number | undefined;
  /** Signal that ended it, when one did. */
  readonly signal: string | undefined;

  constructor(
    command: string,
    failure: TokenCommandFailure,
    message: string,
    options: { cause?: unknown; exitCode?: number | null; signal?: string | null } = {},
  ) {
    super(`attestation command ${JSON.stringify(command)} ${message}`, { cause: options.cause });
    this.name = 'TokenCommandError';
    this.command = command;
    this.failure = failure;
    this.exitCode = options.exitCode ?? undefined;
    this.signal = options.signal ?? undefined;
  }
}

/**
 * The current era's handshake failed on the hub's side: no `handshake_challenge` in time, a binary
 * frame instead, a wrong `type`, an empty nonce, or a frame that is not JSON.
 */
export class HandshakeError extends BackendClientError {
  /** The `type` of the challenge at fault, when the frame had one. */
  readonly challengeType: string | undefined;

  constructor(message: string, challengeType?: string) {
    super('NEXUS_ERR_HANDSHAKE', message);
    this.name = 'HandshakeError';
    this.challengeType = challengeType;
  }
}

/** A hub session could not be opened or ended abnormally (carries the WebSocket close code, if any). */
export class SessionError extends BackendClientError {
  /** WebSocket close code (e.g. 1008 = token rejected, 1006 = dropped), when known. */
  readonly closeCode: number | undefined;

  constructor(message: string, options?: { cause?: unknown; closeCode?: number }) {
    super('NEXUS_ERR_SESSION', message, options);
    this.name = 'SessionError';
    this.closeCode = options?.closeCode;
  }
}

/**
 * A SOCKS5 client broke off or broke the handshake (RFC 1928), or its request could not be served;
 * `reply` is the RFC 1928 reply code it was sent, when it was sent one.
 */
export class Socks5Error extends BackendClientError {
  readonly reply: number | undefined;

  constructor(message: string, reply?: number, options?: { cause?: unknown }) {
    super('NEXUS_ERR_SOCKS5', message, options);
    this.name = 'Socks5Error';
    this.reply = reply;
  }
}
