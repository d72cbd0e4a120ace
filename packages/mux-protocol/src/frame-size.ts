/**
 * Larger DATA frames between two Nexus ends (docs/protocol.md §1.11): what an end says it accepts, how a
 * peer's word is read, and the credit window that goes with a payload size. A peer that says nothing (the
 * reference, an older Nexus) gets the base protocol: payloads of at most 32 768 bytes and 64 credits.
 */
import { MAX_CREDITS } from './flow-window.js';
import { DATA_HEADER_LENGTH, MAX_DATA_PAYLOAD } from './frame.js';

/**
 * The largest DATA payload a Nexus node accepts by default, in bytes (docs/protocol.md §1.11): 128 KiB,
 * eight 16 KiB TLS records per frame (docs/benchmarks.md, "Larger frames between Nexus ends").
 */
export const NEXUS_DATA_PAYLOAD = 131_072;
/** The largest payload an end may offer or accept, in bytes: 1 MiB. An offer above it is read as 1 MiB. */
export const MAX_OFFERED_DATA_PAYLOAD = 1024 * 1024;
/**
 * Bytes a stream's receive window covers, whatever the frame size: 64 frames of 32 768 bytes (2 MiB), the
 * base protocol's window. Larger frames get proportionally fewer credits.
 */
export const WINDOW_BYTES = 64 * MAX_DATA_PAYLOAD;
/** Bytes delivered before credits are returned, whatever the frame size: 8 frames of 32 768 bytes. */
export const GRANT_BATCH_BYTES = 8 * MAX_DATA_PAYLOAD;
/** Bytes past a window tolerated from a peer that meters (`unmeteredAllowance`): 1 024 frames of 32 768. */
export const UNMETERED_ALLOWANCE_BYTES = 1024 * MAX_DATA_PAYLOAD;

/** What a payload limit an end accepts must be, for the error messages of the options that set it. */
export const OFFERED_DATA_PAYLOAD_RANGE = `an integer from ${MAX_DATA_PAYLOAD} to ${MAX_OFFERED_DATA_PAYLOAD}`;

/** Whether `value` may be the payload limit an end accepts (and says): {@link OFFERED_DATA_PAYLOAD_RANGE}. */
export function isOfferableDataPayload(value: unknown): value is number {
  return (
    typeof value === 'number' &&
    Number.isInteger(value) &&
    value >= MAX_DATA_PAYLOAD &&
    value <= MAX_OFFERED_DATA_PAYLOAD
  );
}

/**
 * The payload limit an end accepts (and says), validated ({@link isOfferableDataPayload}).
 * Throws `RangeError` otherwise (a configuration error).
 */
export function checkOfferedDataPayload(bytes: number): number {
  if (!isOfferableDataPayload(bytes)) {
    throw new RangeError(`the offered DATA payload must be ${OFFERED_DATA_PAYLOAD_RANGE}`);
  }
  return bytes;
}

/**
 * The payload limit a peer said it accepts (`offered`, as read from the wire, hostile): what this side
 * may send it. Anything but an integer reads as 32 768 (the base protocol); under 32 768 as 32 768 (every
 * end takes that much); over {@link MAX_OFFERED_DATA_PAYLOAD} as that.
 */
export function peerDataPayload(offered: unknown): number {
  if (typeof offered !== 'number' || !Number.isSafeInteger(offered)) return MAX_DATA_PAYLOAD;
  return Math.min(Math.max(offered, MAX_DATA_PAYLOAD), MAX_OFFERED_DATA_PAYLOAD);
}

/** Reads an offer written as text (an HTTP header value): digits only, else `undefined`. */
export function parseOfferedDataPayload(text: string | string[] | undefined): number | undefined {
  const value = Array.isArray(text) ? text[0] : text;
  if (value === undefined || !/^\s*\d{1,9}\s*$/.test(value)) return undefined;
  return Number(value);
}

/** What a payload limit means for the engine: the message limit and the credit window in frames. */
export interface FrameSizeTuning {
  /** Largest DATA payload sent and accepted, bytes. */
  maxDataPayload: number;
  /** Largest binary message accepted, bytes (header + payload). */
  maxMessageSize: number;
  /** Receive window per stream, frames: {@link WINDOW_BYTES} in frames of this size (64 at 32 768). */
  initialWindow: number;
  /** Grant batch, frames: {@link GRANT_BATCH_BYTES} in frames of this size (8 at 32 768). */
  grantBatch: number;
  /** Frames tolerated past a window: {@link UNMETERED_ALLOWANCE_BYTES} in frames (1 024 at 32 768). */
  unmeteredAllowance: number;
  /** Units of the node-wide receive budget (32 768 bytes each) one frame of this size takes. */
  budgetUnits: number;
}

/** The tuning that goes with frames of at most `maxDataPayload` bytes. */
export function frameSizeTuning(maxDataPayload: number): FrameSizeTuning {
  const frames = (bytes: number): number => Math.max(1, Math.floor(bytes / maxDataPayload));
  return {
    maxDataPayload,
    maxMessageSize: DATA_HEADER_LENGTH + maxDataPayload,
    initialWindow: frames(WINDOW_BYTES),
    grantBatch: frames(GRANT_BATCH_BYTES),
    unmeteredAllowance: frames(UNMETERED_ALLOWANCE_BYTES),
    budgetUnits: Math.ceil(maxDataPayload / MAX_DATA_PAYLOAD),
  };
}

/** What the engine's tuning says explicitly, which a payload size does not override. */
export interface ExplicitTuning {
  maxMessageSize?: number | undefined;
  initialWindow?: number | undefined;
  grantBatch?: number | undefined;
  unmeteredAllowance?: number | undefined;
  streamHighWaterMark?: number | undefined;
}

/** Throws `RangeError` for explicit tuning that no payload size could make work. */
export function checkExplicitTuning(explicit: ExplicitTuning): void {
  const positive = (name: string, value: number | undefined): void => {
    if (value !== undefined && (!Number.isInteger(value) || value < 1))
      throw new RangeError(`${name} must be a positive integer`);
  };
  const window = explicit.initialWindow;
  positive('initialWindow', window);
  if (window !== undefined && window > MAX_CREDITS) throw new RangeError('initialWindow must be ≤ 2^20');
  positive('grantBatch', explicit.grantBatch);
  // A batch larger than the window would never be reached: the peer would stall (a lost grant).
  const batch = explicit.grantBatch;
  if (batch !== undefined && batch > (window ?? frameSizeTuning(MAX_DATA_PAYLOAD).initialWindow))
    throw new RangeError('grantBatch must be ≤ initialWindow');
  positive('maxMessageSize', explicit.maxMessageSize);
  const allowance = explicit.unmeteredAllowance;
  if (allowance !== undefined && !(allowance >= 0)) throw new RangeError('unmeteredAllowance must be ≥ 0');
  positive('streamHighWaterMark', explicit.streamHighWaterMark);
}

/** An engine's settings that follow from the payload sizes it accepts and sends (docs/protocol.md §1.11). */
export interface PayloadSettings extends FrameSizeTuning {
  /** Largest DATA payload sent (what the peer accepts), bytes. */
  sendDataPayload: number;
  /** Readable/writable high-water mark of each stream, bytes. */
  streamHighWaterMark: number;
}

/**
 * The settings for payloads of at most `receive` bytes accepted and `send` bytes sent (both checked with
 * {@link checkOfferedDataPayload}), where `explicit` does not set them: a window of the same bytes, and
 * streams whose writes gather into full frames — room for one in flight and the next behind it (at least
 * `minStreamHighWaterMark`), so the writer is paused less often.
 */
export function payloadSettings(
  explicit: ExplicitTuning,
  { receive, send }: { receive: number; send: number },
  minStreamHighWaterMark: number,
): PayloadSettings {
  const tuning = frameSizeTuning(checkOfferedDataPayload(receive));
  const initialWindow = explicit.initialWindow ?? tuning.initialWindow;
  return {
    ...tuning,
    maxMessageSize: Math.max(explicit.maxMessageSize ?? 0, tuning.maxMessageSize),
    initialWindow,
    grantBatch: Math.min(explicit.grantBatch ?? tuning.grantBatch, initialWindow),
    unmeteredAllowance: explicit.unmeteredAllowance ?? tuning.unmeteredAllowance,
    sendDataPayload: checkOfferedDataPayload(send),
    streamHighWaterMark: explicit.streamHighWaterMark ?? Math.max(minStreamHighWaterMark, 2 * send),
  };
}
