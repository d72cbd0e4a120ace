import { randomUUID } from 'node:crypto';
import { MuxProtocolError } from './errors.js';
import { STREAM_ID_LENGTH } from './frame.js';

/** The all-zero UUID (the reference sends it as `client_id` on peer `announce`, docs/protocol.md §2.2). */
export const NIL_STREAM_ID = '00000000-0000-0000-0000-000000000000';

// Lookup tables instead of `toString(16)` / `parseInt`: the id is converted on every DATA frame.
const BYTE_TO_HEX: string[] = [];
for (let i = 0; i < 256; i++) BYTE_TO_HEX.push(i.toString(16).padStart(2, '0'));

/** Char code → nibble value, or -1 for a non-hex character (both cases accepted). */
const HEX_TO_NIBBLE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX_TO_NIBBLE[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX_TO_NIBBLE[65 + i] = 10 + i;
  HEX_TO_NIBBLE[97 + i] = 10 + i;
}

/** Positions of the first hex digit of each byte in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. */
const BYTE_POSITIONS = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

function nibble(text: string, index: number): number {
  const code = text.charCodeAt(index);
  return code < 128 ? HEX_TO_NIBBLE[code]! : -1;
}

function hasUuidShape(text: string): boolean {
  return (
    text.length === 36 &&
    text.charCodeAt(8) === 45 &&
    text.charCodeAt(13) === 45 &&
    text.charCodeAt(18) === 45 &&
    text.charCodeAt(23) === 45
  );
}

/**
 * True when `value` is a UUID string in the 8-4-4-4-12 form (either letter case). Any 16 bytes make a
 * valid id: the version and variant bits are not checked.
 */
export function isStreamId(value: unknown): value is string {
  if (typeof value !== 'string' || !hasUuidShape(value)) return false;
  for (const p of BYTE_POSITIONS) {
    if ((nibble(value, p) | nibble(value, p + 1)) < 0) return false;
  }
  return true;
}

/** The lowercase form of a UUID string, or `undefined` when `value` is not one ({@link isStreamId}). */
export function normalizeStreamId(value: unknown): string | undefined {
  if (!isStreamId(value)) return undefined;
  return value.toLowerCase();
}

/**
 * Writes the 16 raw bytes of UUID string `id` (RFC 4122 byte order) into `target` at `offset`.
 * Throws `MuxProtocolError` (`MUX_ERR_INVALID_STREAM_ID`) when `id` is not a UUID string.
 */
export function writeStreamId(target: Uint8Array, offset: number, id: string): void {
  if (!hasUuidShape(id) || offset < 0 || offset + STREAM_ID_LENGTH > target.length) {
    throw new MuxProtocolError('MUX_ERR_INVALID_STREAM_ID', `invalid stream id: ${JSON.stringify(id)}`);
  }
  for (let i = 0; i < STREAM_ID_LENGTH; i++) {
    const p = BYTE_POSITIONS[i]!;
    const hi = nibble(id, p);
    const lo = nibble(id, p + 1);
    if ((hi | lo) < 0) {
      throw new MuxProtocolError('MUX_ERR_INVALID_STREAM_ID', `invalid stream id: ${JSON.stringify(id)}`);
    }
    target[offset + i] = (hi << 4) | lo;
  }
}

/**
 * The 16 raw bytes (RFC 4122 byte order) of UUID string `id`, in a new array.
 * Throws `MuxProtocolError` (`MUX_ERR_INVALID_STREAM_ID`) when `id` is not a UUID string.
 */
export function streamIdToBytes(id: string): Uint8Array {
  const bytes = new Uint8Array(STREAM_ID_LENGTH);
  writeStreamId(bytes, 0, id);
  return bytes;
}

/**
 * The lowercase 36-character UUID string of the 16 bytes at `offset` in `bytes`.
 * Throws `MuxProtocolError` (`MUX_ERR_INVALID_STREAM_ID`) when fewer than 16 bytes are available.
 */
export function streamIdFromBytes(bytes: Uint8Array, offset = 0): string {
  if (!(offset >= 0) || offset + STREAM_ID_LENGTH > bytes.length) {
    throw new MuxProtocolError('MUX_ERR_INVALID_STREAM_ID', 'a stream id needs 16 bytes');
  }
  const h = BYTE_TO_HEX;
  const b = bytes;
  const o = offset;
  return (
    h[b[o]!]! +
    h[b[o + 1]!]! +
    h[b[o + 2]!]! +
    h[b[o + 3]!]! +
    '-' +
    h[b[o + 4]!]! +
    h[b[o + 5]!]! +
    '-' +
    h[b[o + 6]!]! +
    h[b[o + 7]!]! +
    '-' +
    h[b[o + 8]!]! +
    h[b[o + 9]!]! +
    '-' +
    h[b[o + 10]!]! +
    h[b[o + 11]!]! +
    h[b[o + 12]!]! +
    h[b[o + 13]!]! +
    h[b[o + 14]!]! +
    h[b[o + 15]!]!
  );
}

/** A new random (version 4) stream id, lowercase. */
export function newStreamId(): string {
  return randomUUID();
}
