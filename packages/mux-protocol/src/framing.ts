/**
 * Framing adapters: the only part of the stream engine that differs between a backend session
 * (docs/protocol.md §1.3: `0x01` DATA, `0x02` JSON control) and a peer link's tunnels (§2.3: `0x11`–`0x15`).
 * An adapter says how DATA frames start, how a grant and a close are encoded, and how every other
 * message decodes into the few things the engine acts on; the stream table, credit windows, pumps,
 * close handling and limits are the engine's, shared by both.
 */
import type { ControlMessage } from './control.js';
import { decodeBackendMessage } from './decode.js';
import { encodeControlMessage } from './encode.js';
import type { MuxProtocolError } from './errors.js';
import { FrameType } from './frame.js';
import { decodeTunnelFrame, encodeTunnelFrame } from './peer.js';

/** What one non-DATA message (or a DATA frame off the fast path) means to the engine. */
export type FramingEvent =
  /** A DATA frame; `payload` is a view into the message (possibly empty). */
  | { readonly kind: 'data'; readonly id: string; readonly payload: Uint8Array }
  /** The peer closed stream `id` (`reason` as it gave it, or the framing's default). */
  | { readonly kind: 'close'; readonly id: string; readonly reason: string }
  /** A credit grant of `credits` (> 0) frames for stream `id`. */
  | { readonly kind: 'grant'; readonly id: string; readonly credits: number }
  /** The peer's advisory pause / resume of our sending on stream `id`. */
  | { readonly kind: 'pause' | 'resume'; readonly id: string }
  /** A message the engine does not handle itself (backend sessions: `connect`, pings): for the session. */
  | { readonly kind: 'message'; readonly id: string; readonly message: ControlMessage }
  /**
   * Nothing to do. `warning` (with `fields`) is logged, rate-limited; `control` says whether the message
   * counts as a control message received.
   */
  | {
      readonly kind: 'ignored';
      readonly control: boolean;
      readonly warning?: string;
      readonly fields?: Record<string, unknown>;
    }
  /** The message broke the protocol. */
  | { readonly kind: 'error'; readonly error: MuxProtocolError };

/** How one wire encodes the engine's frames. Implementations are stateless. */
export interface StreamFraming {
  /** For logs: `backend` or `tunnel`. */
  readonly name: string;
  /** First byte of a DATA frame on this wire (`0x01` or `0x11`); DATA of that type takes the fast path. */
  readonly dataFrameType: number;
  /** Decodes a message that is not a well-formed DATA frame of at most `maxMessageSize` bytes. Never throws. */
  decode(message: Uint8Array, maxMessageSize: number): FramingEvent;
  /** A grant of `credits` frames for stream `id`. */
  encodeGrant(id: string, credits: number): Uint8Array;
  /** The close of stream `id`; `reason` is sent where the wire carries one. */
  encodeClose(id: string, reason: string): Uint8Array;
  /** A liveness ping for stream `id`, or `undefined` where the wire has none. */
  encodePing(id: string): Uint8Array | undefined;
}

const IGNORED: FramingEvent = { kind: 'ignored', control: false };

/** A control frame with only `event` and `client_id` (ping/pong), without JSON.stringify. */
export function idOnlyControlFrame(event: 'ping_client' | 'pong_client', id: string): Buffer {
  return Buffer.from(`\x02{"event":"${event}","client_id":"${id}"}`, 'latin1');
}

const GRANT_PREFIX = '\x02{"event":"resume_stream","client_id":"';
const GRANT_MIDDLE = '","credits":';

/** Backend sessions (docs/protocol.md §1.3, §1.4): DATA `0x01`, everything else JSON control `0x02`. */
export const backendFraming: StreamFraming = {
  name: 'backend',
  dataFrameType: FrameType.Data,
  decode(message, maxMessageSize) {
    const result = decodeBackendMessage(message, { maxMessageSize });
    if (!result.ok) return { kind: 'error', error: result.error };
    const value = result.value;
    switch (value.type) {
      case 'data':
        return { kind: 'data', id: value.streamId, payload: value.payload };
      case 'control':
        return controlEvent(value.message);
      case 'unknown-control':
        return {
          kind: 'ignored',
          control: true,
          warning: 'ignoring unknown control event',
          fields: { event: value.message.event },
        };
      case 'unknown':
        return {
          kind: 'ignored',
          control: false,
          warning: 'ignoring message with unknown frame type',
          fields: { frameType: value.frameType },
        };
      default:
        return IGNORED;
    }
  },
  /**
   * `resume_stream{credits}` without JSON.stringify on the data path: one buffer, byte-identical to
   * `encodeControlMessage` (field order event, client_id, credits). Ids are ASCII (lowercase UUIDs).
   */
  encodeGrant(id, credits) {
    const digits = String(credits);
    const length = GRANT_PREFIX.length + id.length + GRANT_MIDDLE.length + digits.length + 1;
    const frame = Buffer.allocUnsafe(length);
    let offset = frame.write(GRANT_PREFIX, 0, 'latin1');
    offset += frame.write(id, offset, 'latin1');
    offset += frame.write(GRANT_MIDDLE, offset, 'latin1');
    offset += frame.write(digits, offset, 'latin1');
    frame[offset] = 0x7d; // '}'
    return frame;
  },
  encodeClose(id, reason) {
    return encodeControlMessage({ event: 'disconnect', client_id: id, reason });
  },
  encodePing(id) {
    return idOnlyControlFrame('ping_client', id);
  },
};

function controlEvent(message: ControlMessage): FramingEvent {
  const id = message.client_id;
  switch (message.event) {
    case 'disconnect':
      return { kind: 'close', id, reason: message.reason ?? 'normal' };
    case 'resume_stream':
      // With credits: a grant; without (or 0): the end of an advisory pause (§1.5).
      return message.credits !== undefined && message.credits > 0
        ? { kind: 'grant', id, credits: message.credits }
        : { kind: 'resume', id };
    case 'pause_stream':
      return { kind: 'pause', id };
    default:
      return { kind: 'message', id, message };
  }
}

/** Peer-link tunnels (docs/protocol.md §2.3): `0x11` DATA, `0x12` close, `0x13`/`0x14` pause/resume, `0x15` credits. */
export const tunnelFraming: StreamFraming = {
  name: 'tunnel',
  dataFrameType: FrameType.TunnelData,
  decode(message, maxMessageSize) {
    const result = decodeTunnelFrame(message, { maxMessageSize });
    if (!result.ok) return { kind: 'error', error: result.error };
    const frame = result.value;
    switch (frame.type) {
      case 'tunnel-data':
        return { kind: 'data', id: frame.tunnelId, payload: frame.payload };
      case 'tunnel-close':
        return { kind: 'close', id: frame.tunnelId, reason: 'peer_closed' };
      case 'tunnel-credits':
        return frame.credits > 0 ? { kind: 'grant', id: frame.tunnelId, credits: frame.credits } : IGNORED;
      case 'tunnel-pause':
        return { kind: 'pause', id: frame.tunnelId };
      case 'tunnel-resume':
        return { kind: 'resume', id: frame.tunnelId };
      case 'unknown':
        return {
          kind: 'ignored',
          control: false,
          warning: 'ignoring peer message with unknown frame type',
          fields: { frameType: frame.frameType },
        };
      default:
        return IGNORED;
    }
  },
  encodeGrant(id, credits) {
    return encodeTunnelFrame({ type: 'tunnel-credits', tunnelId: id, credits });
  },
  encodeClose(id) {
    return encodeTunnelFrame({ type: 'tunnel-close', tunnelId: id });
  },
  encodePing() {
    return undefined;
  },
};
