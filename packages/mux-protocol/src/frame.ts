import type { MuxProtocolError } from './errors.js';

/** First byte of every binary message (docs/protocol.md §1.3 backend session, §2.3 peer link). */
export const FrameType = {
  /** `0x01` · 16-byte stream id · payload. */
  Data: 0x01,
  /** `0x02` · UTF-8 JSON control object. */
  Control: 0x02,
  /** `0x11` · 16-byte tunnel id · payload. */
  TunnelData: 0x11,
  /** `0x12` · 16-byte tunnel id. */
  TunnelClose: 0x12,
  /** `0x13` · 16-byte tunnel id. */
  TunnelPause: 0x13,
  /** `0x14` · 16-byte tunnel id. */
  TunnelResume: 0x14,
  /** `0x15` · 16-byte tunnel id · 8-byte big-endian unsigned credit count. */
  TunnelCredits: 0x15,
} as const;

/** One of the {@link FrameType} byte values. */
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

/** Length of a raw stream / tunnel id, in bytes (a UUID). */
export const STREAM_ID_LENGTH = 16;
/** Length of the DATA / TUNNEL_DATA header: type byte + stream id, in bytes. */
export const DATA_HEADER_LENGTH = 1 + STREAM_ID_LENGTH;
/** Largest DATA payload, in bytes. Larger chunks must be split (docs/protocol.md §1.3). */
export const MAX_DATA_PAYLOAD = 32_768;
/**
 * Largest binary message on a backend session, in bytes (header + payload). The reference hub kills the
 * whole session on anything larger (docs/protocol.md §1.3); Nexus applies the same limit to peer tunnel frames.
 */
export const MAX_BACKEND_MESSAGE = DATA_HEADER_LENGTH + MAX_DATA_PAYLOAD;
/** Length of a TUNNEL_CREDITS frame: header + 8-byte count, in bytes. */
export const TUNNEL_CREDITS_LENGTH = DATA_HEADER_LENGTH + 8;

/** Result of every decoder in this package: decoders never throw. */
export type DecodeResult<T> = { ok: true; value: T } | { ok: false; error: MuxProtocolError };

/** A message the receiver ignores: an empty message, or an unknown first byte (docs/protocol.md §1.3). */
export type IgnoredMessage =
  /** A zero-length binary message. */
  | { type: 'empty' }
  /** A message whose first byte is no known frame type; log it and go on. */
  | { type: 'unknown'; frameType: number };
