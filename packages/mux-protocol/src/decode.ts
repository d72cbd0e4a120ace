import { parseJsonObject } from './_json.js';
import { toBuffer } from './buffer-view.js';
import { type ControlMessage, parseControlObject, type UnknownControlMessage } from './control.js';
import { MuxProtocolError } from './errors.js';
import {
  DATA_HEADER_LENGTH,
  type DecodeResult,
  FrameType,
  type IgnoredMessage,
  MAX_BACKEND_MESSAGE,
} from './frame.js';
import { streamIdFromBytes } from './stream-id.js';

/** A DATA frame. `payload` is a view into the decoded message (no copy); it may be empty. */
export interface DataFrame {
  type: 'data';
  /** Lowercase UUID string. */
  streamId: string;
  /** Stream bytes, ≤ 32 768. Receivers ignore an empty payload (docs/protocol.md §1.3). */
  payload: Uint8Array;
}

/** A CONTROL frame carrying a known control message. */
export interface ControlFrame {
  type: 'control';
  message: ControlMessage;
}

/** A CONTROL frame whose `event` is unknown: log it and go on (docs/protocol.md §1.3). */
export interface UnknownControlFrame {
  type: 'unknown-control';
  message: UnknownControlMessage;
}

/** A frame of the backend session (docs/protocol.md §1.3), as encoded by this package. */
export type BackendFrame = DataFrame | ControlFrame;

/** Everything {@link decodeBackendMessage} can return successfully. */
export type DecodedBackendMessage = BackendFrame | UnknownControlFrame | IgnoredMessage;

/** Options of {@link decodeBackendMessage}. */
export interface DecodeBackendMessageOptions {
  /** Largest accepted message, in bytes. Default: `MAX_BACKEND_MESSAGE` (32 785). */
  maxMessageSize?: number;
}

/**
 * Decodes one binary WebSocket message of a backend session (docs/protocol.md §1.3). Never throws.
 *
 * - `{ type: 'data' }`: the payload is a view into `bytes` (copy it if you keep it beyond `bytes`' life).
 * - `{ type: 'control' }` / `{ type: 'unknown-control' }`: a valid control object, known event or not.
 * - `{ type: 'empty' }` (zero-length message) and `{ type: 'unknown', frameType }`: ignore them.
 * - errors: `MUX_ERR_FRAME_TOO_LARGE` (message > 32 785 bytes: the reference closes the session with a
 *   policy violation), `MUX_ERR_MALFORMED_FRAME` (DATA shorter than 17 bytes),
 *   `MUX_ERR_INVALID_CONTROL` (not a JSON object, missing `event`, field of the wrong type),
 *   `MUX_ERR_INVALID_STREAM_ID` (known event without a valid `client_id`).
 */
export function decodeBackendMessage(
  bytes: Uint8Array,
  options?: DecodeBackendMessageOptions,
): DecodeResult<DecodedBackendMessage> {
  const length = bytes.length;
  if (length === 0) return { ok: true, value: { type: 'empty' } };
  const max = options?.maxMessageSize ?? MAX_BACKEND_MESSAGE;
  if (length > max) {
    return {
      ok: false,
      error: new MuxProtocolError('MUX_ERR_FRAME_TOO_LARGE', `message of ${length} bytes exceeds ${max}`),
    };
  }
  const frameType = bytes[0]!;
  if (frameType === FrameType.Data) {
    if (length < DATA_HEADER_LENGTH) {
      return {
        ok: false,
        error: new MuxProtocolError('MUX_ERR_MALFORMED_FRAME', `DATA frame of ${length} bytes (< 17)`),
      };
    }
    return {
      ok: true,
      value: {
        type: 'data',
        streamId: streamIdFromBytes(bytes, 1),
        payload: bytes.subarray(DATA_HEADER_LENGTH),
      },
    };
  }
  if (frameType === FrameType.Control) {
    const result = decodeControlPayload(bytes.subarray(1));
    if (!result.ok) return result;
    return { ok: true, value: result.value };
  }
  return { ok: true, value: { type: 'unknown', frameType } };
}

/**
 * Decodes the JSON part of a CONTROL frame (the bytes after `0x02`). Invalid UTF-8 is replaced with
 * U+FFFD, as Go does. Never throws.
 */
export function decodeControlPayload(json: Uint8Array): DecodeResult<ControlFrame | UnknownControlFrame> {
  // Buffer#toString is faster than TextDecoder for short strings and also maps invalid UTF-8 to U+FFFD.
  const object = parseJsonObject(toBuffer(json).toString('utf8'));
  if (object === undefined) {
    return {
      ok: false,
      error: new MuxProtocolError('MUX_ERR_INVALID_CONTROL', 'control payload is not a JSON object'),
    };
  }
  const parsed = parseControlObject(object);
  if (!parsed.ok) return parsed;
  return parsed.value.known
    ? { ok: true, value: { type: 'control', message: parsed.value.message } }
    : { ok: true, value: { type: 'unknown-control', message: parsed.value.message } };
}
