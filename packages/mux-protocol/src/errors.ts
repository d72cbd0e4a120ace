/**
 * Stable error codes of `@nexus-proxy/mux-protocol`. Callers match on `err.code`, never on the message.
 */
export type MuxProtocolErrorCode =
  /** A binary message is shorter than its frame type requires, or its layout is wrong (docs/protocol.md §1.3). */
  | 'MUX_ERR_MALFORMED_FRAME'
  /** A message exceeds the size limit (32 785 bytes on a backend session, docs/protocol.md §1.3). */
  | 'MUX_ERR_FRAME_TOO_LARGE'
  /** A control message is not a JSON object, lacks `event`, or has a field of the wrong type (§1.4). */
  | 'MUX_ERR_INVALID_CONTROL'
  /** A peer-link text message is not valid (docs/protocol.md §2.2). */
  | 'MUX_ERR_INVALID_PEER_MESSAGE'
  /** A stream id is not 16 bytes / not a 36-character UUID string. */
  | 'MUX_ERR_INVALID_STREAM_ID'
  /** The peer sent more DATA frames than it held credits for (§1.5). */
  | 'MUX_ERR_CREDIT_OVERRUN'
  /** DATA or a control message arrived for a stream id the receiver does not know (§1.4). */
  | 'MUX_ERR_UNKNOWN_STREAM'
  /** The peer opened more streams than allowed. */
  | 'MUX_ERR_TOO_MANY_STREAMS'
  /** An operation was attempted on a closed session or stream. */
  | 'MUX_ERR_CLOSED'
  /** The peer sent more empty DATA frames per second than allowed (they carry nothing; §1.3). */
  | 'MUX_ERR_EMPTY_DATA_FLOOD'
  /** The peer stopped reading: our unsent bytes stayed above the backlog limit past the grace period. */
  | 'MUX_ERR_PEER_NOT_READING'
  /** The hub refused or could not open an outbound connection (`outbound_result` failure; the message is its reason). */
  | 'MUX_ERR_OUTBOUND_REFUSED'
  /** No `outbound_result` arrived in time. */
  | 'MUX_ERR_OUTBOUND_TIMEOUT';

/** WebSocket close codes (RFC 6455 §7.4.1) a session uses when an error ends it. */
export const WS_CLOSE_POLICY_VIOLATION = 1008;
/** RFC 6455 §7.4.1: "message too big". Not used by default: the reference hub closes with 1008. */
export const WS_CLOSE_MESSAGE_TOO_BIG = 1009;
/** RFC 6455 §7.4.1: unexpected condition. */
export const WS_CLOSE_INTERNAL_ERROR = 1011;

const DEFAULT_MESSAGES: Record<MuxProtocolErrorCode, string> = {
  MUX_ERR_MALFORMED_FRAME: 'malformed frame',
  MUX_ERR_FRAME_TOO_LARGE: 'frame too large',
  MUX_ERR_INVALID_CONTROL: 'invalid control message',
  MUX_ERR_INVALID_PEER_MESSAGE: 'invalid peer message',
  MUX_ERR_INVALID_STREAM_ID: 'invalid stream id',
  MUX_ERR_CREDIT_OVERRUN: 'peer sent more frames than it held credits for',
  MUX_ERR_UNKNOWN_STREAM: 'unknown stream',
  MUX_ERR_TOO_MANY_STREAMS: 'too many streams',
  MUX_ERR_CLOSED: 'closed',
  MUX_ERR_EMPTY_DATA_FLOOD: 'too many empty DATA frames',
  MUX_ERR_PEER_NOT_READING: 'the peer does not read what is sent to it',
  MUX_ERR_OUTBOUND_REFUSED: 'outbound connection refused',
  MUX_ERR_OUTBOUND_TIMEOUT: 'no outbound_result in time',
};

// A registry-wide symbol brands instances, so `MuxProtocolError.is()` also recognises errors created by a
// second copy of this package (the ESM and CJS builds loaded side by side), where `instanceof` fails.
const BRAND = Symbol.for('@nexus-proxy/mux-protocol.MuxProtocolError');

/** Options of {@link MuxProtocolError}. */
export interface MuxProtocolErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** WebSocket close code to use if this error ends the session. Default: `1008` (policy violation). */
  closeCode?: number;
}

/**
 * Every error this package produces or returns. Decoders return it inside a result instead of throwing;
 * encoders throw it for invalid arguments (a programming error, never hostile input).
 */
export class MuxProtocolError extends Error {
  override readonly name = 'MuxProtocolError';
  /** Stable machine-readable code. */
  readonly code: MuxProtocolErrorCode;
  /**
   * The WebSocket close code a session sends when this error is fatal to it. Protocol violations map to
   * 1008 (policy violation), like the reference hub; `MUX_ERR_CLOSED` maps to 1011.
   */
  readonly closeCode: number;

  constructor(code: MuxProtocolErrorCode, message?: string, options: MuxProtocolErrorOptions = {}) {
    super(
      message ?? DEFAULT_MESSAGES[code],
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.closeCode =
      options.closeCode ?? (code === 'MUX_ERR_CLOSED' ? WS_CLOSE_INTERNAL_ERROR : WS_CLOSE_POLICY_VIOLATION);
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** True when `value` is a `MuxProtocolError` (from any copy of this package). */
  static is(value: unknown): value is MuxProtocolError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}
