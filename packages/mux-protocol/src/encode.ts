import { type ControlMessage, serializeControlMessage } from './control.js';
import { MuxProtocolError } from './errors.js';
import { DATA_HEADER_LENGTH, FrameType, MAX_DATA_PAYLOAD, STREAM_ID_LENGTH } from './frame.js';
import { writeStreamId } from './stream-id.js';

/**
 * Writes a DATA header (`0x01` · 16-byte stream id) into `target` at `offset` and returns the offset just
 * past it. For callers that read socket data into a buffer with {@link DATA_HEADER_LENGTH} bytes of room in
 * front, so a frame needs no copy. `frameType` may be `FrameType.TunnelData` for peer tunnels.
 */
export function writeDataHeader(
  target: Uint8Array,
  offset: number,
  streamIdBytes: Uint8Array,
  frameType: number = FrameType.Data,
): number {
  if (streamIdBytes.length !== STREAM_ID_LENGTH) {
    throw new MuxProtocolError('MUX_ERR_INVALID_STREAM_ID', 'a stream id is 16 bytes');
  }
  if (!(offset >= 0) || offset + DATA_HEADER_LENGTH > target.length) {
    throw new MuxProtocolError('MUX_ERR_MALFORMED_FRAME', 'no room for a 17-byte header');
  }
  target[offset] = frameType;
  target.set(streamIdBytes, offset + 1);
  return offset + DATA_HEADER_LENGTH;
}

/** @internal Header + payload in one allocation, shared with the tunnel encoder. */
export function encodeIdFrame(frameType: number, id: string | Uint8Array, payload: Uint8Array): Uint8Array {
  if (payload.length > MAX_DATA_PAYLOAD) {
    throw new MuxProtocolError(
      'MUX_ERR_FRAME_TOO_LARGE',
      `payload of ${payload.length} bytes exceeds ${MAX_DATA_PAYLOAD}; split it with splitPayload()`,
    );
  }
  const frame = Buffer.allocUnsafe(DATA_HEADER_LENGTH + payload.length);
  if (typeof id === 'string') {
    frame[0] = frameType;
    writeStreamId(frame, 1, id);
  } else {
    writeDataHeader(frame, 0, id, frameType);
  }
  frame.set(payload, DATA_HEADER_LENGTH);
  return frame;
}

/**
 * Encodes one DATA frame: `0x01` · 16-byte stream id · payload, in one allocation. `streamId` is a UUID
 * string or its 16 raw bytes. Throws `MuxProtocolError` when the id is invalid or the payload is larger
 * than {@link MAX_DATA_PAYLOAD} (use {@link splitPayload} or {@link encodeDataFrames}).
 */
export function encodeDataFrame(streamId: string | Uint8Array, payload: Uint8Array): Uint8Array {
  return encodeIdFrame(FrameType.Data, streamId, payload);
}

/**
 * Splits `payload` into views (no copies) of at most `max` bytes each. An empty payload gives an empty
 * array. `max` defaults to {@link MAX_DATA_PAYLOAD} and must be a positive integer.
 */
export function splitPayload(payload: Uint8Array, max: number = MAX_DATA_PAYLOAD): Uint8Array[] {
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be a positive integer, got ${max}`);
  if (payload.length <= max) return payload.length === 0 ? [] : [payload];
  const chunks: Uint8Array[] = [];
  for (let start = 0; start < payload.length; start += max) {
    chunks.push(payload.subarray(start, start + max));
  }
  return chunks;
}

/**
 * Encodes `payload` as as many DATA frames as needed (each payload ≤ 32 768 bytes), e.g. for the
 * replayed prelude, which may be up to 64 KiB (docs/protocol.md §4.3). An empty payload gives no frame.
 */
export function encodeDataFrames(streamId: string | Uint8Array, payload: Uint8Array): Uint8Array[] {
  const chunks = splitPayload(payload);
  if (chunks.length === 0) return [];
  const id = typeof streamId === 'string' ? streamIdBytesOnce(streamId) : streamId;
  return chunks.map((chunk) => encodeIdFrame(FrameType.Data, id, chunk));
}

function streamIdBytesOnce(id: string): Uint8Array {
  const bytes = new Uint8Array(STREAM_ID_LENGTH);
  writeStreamId(bytes, 0, id);
  return bytes;
}

/**
 * Encodes a control message: `0x02` · UTF-8 JSON, byte-identical to what the reference sends (field
 * order and omitted empty fields as documented on `serializeControlMessage`). Throws `MuxProtocolError`
 * for an invalid `client_id` or a non-integer number.
 */
export function encodeControlMessage(message: ControlMessage): Uint8Array {
  const json = serializeControlMessage(message);
  const length = Buffer.byteLength(json, 'utf8');
  const frame = Buffer.allocUnsafe(1 + length);
  frame[0] = FrameType.Control;
  frame.write(json, 1, length, 'utf8');
  return frame;
}

/**
 * A DATA (or TUNNEL_DATA) frame given as its 17-byte header and payload views, joined into one new buffer:
 * the form `ws.send` takes when a transport cannot write the parts separately (`MuxTransport.sendData`).
 */
export function joinDataParts(
  header: Uint8Array,
  payload: readonly Uint8Array[],
  payloadLength: number,
): Buffer {
  const frame = Buffer.allocUnsafe(header.length + payloadLength);
  frame.set(header, 0);
  let offset = header.length;
  for (const part of payload) {
    frame.set(part, offset);
    offset += part.length;
  }
  return frame;
}
