import { field, goJsonString, isIntegerIn, MAX_PORT, parseJsonObject } from './_json.js';
import { encodeIdFrame } from './encode.js';
import { MuxProtocolError } from './errors.js';
import {
  DATA_HEADER_LENGTH,
  type DecodeResult,
  FrameType,
  type IgnoredMessage,
  MAX_BACKEND_MESSAGE,
  STREAM_ID_LENGTH,
  TUNNEL_CREDITS_LENGTH,
} from './frame.js';
import {
  decodeCapabilities,
  decodeRouteSyncMessage,
  encodeCapabilities,
  encodeRouteSyncMessage,
  type PeerCapabilities,
  ROUTE_SYNC_TYPES,
  type RouteSyncMessage,
} from './peer-routes.js';
import { NIL_STREAM_ID, normalizeStreamId, streamIdFromBytes, writeStreamId } from './stream-id.js';

/** Full-state route announcement (docs/protocol.md §2.2). */
export interface AnnounceMessage {
  type: 'announce';
  /** Per-node increasing counter; `0` is omitted on the wire. */
  version: number;
  /** The full set of routes the node serves locally (exact names and `*.example.com` wildcards). */
  hostnames: string[];
  /** The reference sends the all-zero UUID here; encoded as {@link NIL_STREAM_ID} when absent. */
  client_id?: string;
  /**
   * A Nexus node's capabilities (docs/protocol.md §2.6), on its first announce of a link; written last, under
   * the key `nexus`, which the reference ignores.
   */
  nexus?: PeerCapabilities;
}

/** Asks the destination node to carry one stream (docs/protocol.md §2.2). */
export interface TunnelRequestMessage {
  type: 'tunnel_request';
  /** Tunnel id, lowercase UUID string. */
  client_id: string;
  /** The origin node's relay port (`0` omitted). */
  conn_port: number;
  /** End user's `ip:port` (`''` omitted). */
  client_ip: string;
  /** The route. */
  hostname: string;
  is_tls: boolean;
  /** `'tcp'`; absent means tcp. */
  transport?: string;
}

/** A peer-link text message, discriminated on `type` (the route-sync ones go to Nexus peers only). */
export type PeerMessage = AnnounceMessage | TunnelRequestMessage | RouteSyncMessage;

/** A JSON object whose `type` this package does not know: log it and go on. */
export interface UnknownPeerMessage {
  type: 'unknown';
  /** The `type` value as received. */
  messageType: string;
}

/** Largest peer text message {@link decodePeerMessage} accepts by default, in UTF-16 code units (1 MiB). */
export const MAX_PEER_TEXT_MESSAGE = 1_048_576;

/**
 * Serialises a peer message to the JSON text the reference sends: Go marshalling a struct with fields
 * `version`, `type`, `hostnames`, `client_id`, `conn_port`, `client_ip`, `hostname`, `transport`,
 * `is_tls`, all `omitempty` — but `client_id` is a UUID array in Go and is therefore always present (the
 * all-zero UUID on `announce`), and an empty `hostnames` list is omitted. An announce's `nexus`
 * capabilities come last; the route-sync messages (docs/protocol.md §2.6) have their own layout.
 * Throws `MuxProtocolError` on an invalid id or number (a programming error).
 */
export function encodePeerMessage(message: PeerMessage): string {
  if (ROUTE_SYNC_TYPES.has(message.type)) return encodeRouteSyncMessage(message as RouteSyncMessage);
  const m = message as unknown as Record<string, unknown>;
  let json = '{';
  const version = m.version;
  if (version !== undefined && version !== 0) {
    if (!isIntegerIn(version, 0, Number.MAX_SAFE_INTEGER)) {
      throw new MuxProtocolError('MUX_ERR_INVALID_PEER_MESSAGE', `invalid version: ${String(version)}`);
    }
    json += '"version":' + version + ',';
  }
  json += '"type":' + goJsonString(String(m.type));
  const hostnames = m.hostnames;
  if (Array.isArray(hostnames) && hostnames.length > 0) {
    json += ',"hostnames":[' + hostnames.map((h) => goJsonString(String(h))).join(',') + ']';
  }
  const clientId = m.client_id === undefined ? NIL_STREAM_ID : normalizeStreamId(m.client_id);
  if (clientId === undefined) {
    throw new MuxProtocolError('MUX_ERR_INVALID_STREAM_ID', `invalid client_id: ${String(m.client_id)}`);
  }
  json += ',"client_id":"' + clientId + '"';
  const connPort = m.conn_port;
  if (connPort !== undefined && connPort !== 0) {
    if (!isIntegerIn(connPort, 0, MAX_PORT)) {
      throw new MuxProtocolError('MUX_ERR_INVALID_PEER_MESSAGE', `invalid conn_port: ${String(connPort)}`);
    }
    json += ',"conn_port":' + connPort;
  }
  if (typeof m.client_ip === 'string' && m.client_ip !== '')
    json += ',"client_ip":' + goJsonString(m.client_ip);
  if (typeof m.hostname === 'string' && m.hostname !== '') json += ',"hostname":' + goJsonString(m.hostname);
  if (typeof m.transport === 'string' && m.transport !== '')
    json += ',"transport":' + goJsonString(m.transport);
  if (m.is_tls === true) json += ',"is_tls":true';
  if (typeof m.nexus === 'object' && m.nexus !== null)
    json += ',"nexus":' + encodeCapabilities(m.nexus as PeerCapabilities);
  return json + '}';
}

function invalidPeer(message: string): { ok: false; error: MuxProtocolError } {
  return { ok: false, error: new MuxProtocolError('MUX_ERR_INVALID_PEER_MESSAGE', message) };
}

/** Options of {@link decodePeerMessage}. */
export interface DecodePeerMessageOptions {
  /** Largest accepted text, in UTF-16 code units. Default: {@link MAX_PEER_TEXT_MESSAGE}. */
  maxLength?: number;
}

/**
 * Decodes one peer-link text message (docs/protocol.md §2.2). Never throws. Unknown fields are ignored,
 * `null` counts as absent, a known field of the wrong type is an error (`MUX_ERR_INVALID_PEER_MESSAGE`).
 * `announce`: `version` (default 0) is a non-negative safe integer, `hostnames` (default `[]`) an array of
 * strings (returned as sent: normalising them is the router's job); an invalid `client_id` is dropped, as
 * nothing uses it. `tunnel_request`: `client_id` must be a UUID (`MUX_ERR_INVALID_STREAM_ID`).
 * An unknown `type` gives `{ type: 'unknown', messageType }`. Text longer than `maxLength` gives
 * `MUX_ERR_FRAME_TOO_LARGE`.
 */
export function decodePeerMessage(
  text: string,
  options?: DecodePeerMessageOptions,
): DecodeResult<PeerMessage | UnknownPeerMessage> {
  const max = options?.maxLength ?? MAX_PEER_TEXT_MESSAGE;
  if (text.length > max) {
    return {
      ok: false,
      error: new MuxProtocolError(
        'MUX_ERR_FRAME_TOO_LARGE',
        `peer message of ${text.length} chars exceeds ${max}`,
      ),
    };
  }
  const object = parseJsonObject(text);
  if (object === undefined) return invalidPeer('peer message is not a JSON object');
  const type = field(object, 'type');
  if (typeof type !== 'string') return invalidPeer('peer message without a string "type"');

  if (type === 'announce') {
    const version = field(object, 'version') ?? 0;
    if (!isIntegerIn(version, 0, Number.MAX_SAFE_INTEGER)) {
      return invalidPeer('"version" must be a non-negative integer');
    }
    const hostnames = field(object, 'hostnames') ?? [];
    if (!Array.isArray(hostnames) || !hostnames.every((h) => typeof h === 'string')) {
      return invalidPeer('"hostnames" must be an array of strings');
    }
    const caps = decodeCapabilities(field(object, 'nexus'));
    if (!caps.ok) return caps;
    const announce: AnnounceMessage = { type: 'announce', version, hostnames: hostnames as string[] };
    const clientId = normalizeStreamId(field(object, 'client_id'));
    if (clientId !== undefined) announce.client_id = clientId;
    if (caps.value !== undefined) announce.nexus = caps.value;
    return { ok: true, value: announce };
  }

  if (type === 'tunnel_request') {
    const rawId = field(object, 'client_id');
    const clientId = normalizeStreamId(rawId);
    if (clientId === undefined) {
      return {
        ok: false,
        error: new MuxProtocolError(
          'MUX_ERR_INVALID_STREAM_ID',
          'tunnel_request without a valid "client_id"',
        ),
      };
    }
    const connPort = field(object, 'conn_port') ?? 0;
    if (!isIntegerIn(connPort, 0, MAX_PORT)) return invalidPeer('"conn_port" must be an integer port');
    const clientIp = field(object, 'client_ip') ?? '';
    if (typeof clientIp !== 'string') return invalidPeer('"client_ip" must be a string');
    const hostname = field(object, 'hostname') ?? '';
    if (typeof hostname !== 'string') return invalidPeer('"hostname" must be a string');
    const transport = field(object, 'transport') ?? '';
    if (typeof transport !== 'string') return invalidPeer('"transport" must be a string');
    const isTls = field(object, 'is_tls') ?? false;
    if (typeof isTls !== 'boolean') return invalidPeer('"is_tls" must be a boolean');
    const request: TunnelRequestMessage = {
      type: 'tunnel_request',
      client_id: clientId,
      conn_port: connPort,
      client_ip: clientIp,
      hostname,
      is_tls: isTls,
    };
    if (transport !== '') request.transport = transport;
    return { ok: true, value: request };
  }

  if (ROUTE_SYNC_TYPES.has(type)) return decodeRouteSyncMessage(type, object);
  return { ok: true, value: { type: 'unknown', messageType: type } };
}

/** A peer-link binary frame (docs/protocol.md §2.3), discriminated on `type`. Ids are lowercase UUID strings. */
export type TunnelFrame =
  /** `0x11`: tunnel bytes (≤ 32 768; a view when decoded). */
  | { type: 'tunnel-data'; tunnelId: string; payload: Uint8Array }
  /** `0x12`: the tunnel is over (also the answer to a request the destination cannot serve). */
  | { type: 'tunnel-close'; tunnelId: string }
  /** `0x13`: destination → origin, stop reading from the end user. */
  | { type: 'tunnel-pause'; tunnelId: string }
  /** `0x14`: resume reading. */
  | { type: 'tunnel-resume'; tunnelId: string }
  /** `0x15`: credit grant, in frames (docs/protocol.md §2.4). */
  | { type: 'tunnel-credits'; tunnelId: string; credits: number };

const TUNNEL_TYPES = {
  'tunnel-close': FrameType.TunnelClose,
  'tunnel-pause': FrameType.TunnelPause,
  'tunnel-resume': FrameType.TunnelResume,
} as const;

/**
 * Encodes a peer tunnel frame. `credits` is written as an 8-byte big-endian unsigned integer and must be a
 * non-negative safe integer. Throws `MuxProtocolError` for an invalid id, an oversize payload or invalid
 * credits (programming errors).
 */
export function encodeTunnelFrame(frame: TunnelFrame): Uint8Array {
  switch (frame.type) {
    case 'tunnel-data':
      return encodeIdFrame(FrameType.TunnelData, frame.tunnelId, frame.payload);
    case 'tunnel-credits': {
      const credits = frame.credits;
      if (!isIntegerIn(credits, 0, Number.MAX_SAFE_INTEGER)) {
        throw new MuxProtocolError('MUX_ERR_MALFORMED_FRAME', `invalid credits: ${String(credits)}`);
      }
      const out = Buffer.allocUnsafe(TUNNEL_CREDITS_LENGTH);
      out[0] = FrameType.TunnelCredits;
      writeStreamId(out, 1, frame.tunnelId);
      // Explicit high/low words: a JS number holds at most 53 bits, so the high word is < 2^21.
      out.writeUInt32BE(Math.floor(credits / 0x1_0000_0000), DATA_HEADER_LENGTH);
      out.writeUInt32BE(credits % 0x1_0000_0000, DATA_HEADER_LENGTH + 4);
      return out;
    }
    default: {
      const code = TUNNEL_TYPES[frame.type];
      if (code === undefined) {
        throw new MuxProtocolError(
          'MUX_ERR_MALFORMED_FRAME',
          `unknown tunnel frame type ${String(frame.type)}`,
        );
      }
      const out = Buffer.allocUnsafe(DATA_HEADER_LENGTH);
      out[0] = code;
      writeStreamId(out, 1, frame.tunnelId);
      return out;
    }
  }
}

/** Options of {@link decodeTunnelFrame}. */
export interface DecodeTunnelFrameOptions {
  /** Largest accepted message, in bytes. Default: `MAX_BACKEND_MESSAGE` (32 785). */
  maxMessageSize?: number;
}

/**
 * Decodes one peer-link binary message (docs/protocol.md §2.3). Never throws.
 * Frames shorter than 17 bytes (25 for `0x15`) are `MUX_ERR_MALFORMED_FRAME`; bytes after the fixed part
 * of `0x12`–`0x15` are ignored. A `0x15` count above `Number.MAX_SAFE_INTEGER` is clamped to it (a grant
 * that large means "unlimited"; `SendWindow` clamps further to 2^20). Empty messages and unknown first
 * bytes are returned as `{ type: 'empty' }` / `{ type: 'unknown', frameType }` to be ignored.
 */
export function decodeTunnelFrame(
  bytes: Uint8Array,
  options?: DecodeTunnelFrameOptions,
): DecodeResult<TunnelFrame | IgnoredMessage> {
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
  if (frameType < FrameType.TunnelData || frameType > FrameType.TunnelCredits) {
    return { ok: true, value: { type: 'unknown', frameType } };
  }
  const needed = frameType === FrameType.TunnelCredits ? TUNNEL_CREDITS_LENGTH : 1 + STREAM_ID_LENGTH;
  if (length < needed) {
    return {
      ok: false,
      error: new MuxProtocolError(
        'MUX_ERR_MALFORMED_FRAME',
        `tunnel frame 0x${frameType.toString(16)} of ${length} bytes (< ${needed})`,
      ),
    };
  }
  const tunnelId = streamIdFromBytes(bytes, 1);
  switch (frameType) {
    case FrameType.TunnelData:
      return {
        ok: true,
        value: { type: 'tunnel-data', tunnelId, payload: bytes.subarray(DATA_HEADER_LENGTH) },
      };
    case FrameType.TunnelClose:
      return { ok: true, value: { type: 'tunnel-close', tunnelId } };
    case FrameType.TunnelPause:
      return { ok: true, value: { type: 'tunnel-pause', tunnelId } };
    case FrameType.TunnelResume:
      return { ok: true, value: { type: 'tunnel-resume', tunnelId } };
    default: {
      const o = DATA_HEADER_LENGTH;
      const high = ((bytes[o]! << 24) | (bytes[o + 1]! << 16) | (bytes[o + 2]! << 8) | bytes[o + 3]!) >>> 0;
      const low =
        ((bytes[o + 4]! << 24) | (bytes[o + 5]! << 16) | (bytes[o + 6]! << 8) | bytes[o + 7]!) >>> 0;
      // 2^53 - 1 = 0x001FFFFF_FFFFFFFF: any high word ≥ 2^21 is out of the safe range.
      const credits = high >= 0x20_0000 ? Number.MAX_SAFE_INTEGER : high * 0x1_0000_0000 + low;
      return { ok: true, value: { type: 'tunnel-credits', tunnelId, credits } };
    }
  }
}
