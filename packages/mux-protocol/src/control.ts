import { field, goJsonString, isIntegerIn, MAX_PORT } from './_json.js';
import { MuxProtocolError } from './errors.js';
import type { DecodeResult } from './frame.js';
import { normalizeStreamId } from './stream-id.js';

/** Values of the control message `event` field (docs/protocol.md §1.4). */
export const ControlEvent = {
  Connect: 'connect',
  Disconnect: 'disconnect',
  PingClient: 'ping_client',
  PongClient: 'pong_client',
  PauseStream: 'pause_stream',
  ResumeStream: 'resume_stream',
  OutboundConnect: 'outbound_connect',
  OutboundResult: 'outbound_result',
} as const;

/** One of the known {@link ControlEvent} values. */
export type ControlEventName = (typeof ControlEvent)[keyof typeof ControlEvent];

/** Informational `reason` values seen on `disconnect` / `pause_stream` (others may appear). */
export const DisconnectReason = {
  Normal: 'normal',
  BufferFull: 'buffer_full',
  DialFailed: 'dial_failed',
  Timeout: 'timeout',
  LocalError: 'local_error',
  Shutdown: 'shutdown',
  SessionEnded: 'session_ended',
  PauseViolated: 'pause_violated',
  Unknown: 'unknown',
} as const;

/** hub → backend: a new stream. Zero values (`0`, `''`, `false`) are omitted on the wire. */
export interface ConnectMessage {
  event: 'connect';
  /** Stream id, lowercase UUID string. */
  client_id: string;
  /** The node's relay port the end user connected to (`0` = unknown, omitted). */
  conn_port: number;
  /** End user's address, `ip:port` (`[v6]:port`); `''` = unknown, omitted. */
  client_ip: string;
  /** Normalised hostname the stream is for (from SNI or Host). */
  hostname: string;
  /** True when the stream began with a TLS ClientHello. */
  is_tls: boolean;
  /** `'tcp'` or `'udp'`; absent means tcp. */
  transport?: string;
  /** Initial credit window for backend → hub DATA, in frames; absent = the hub does not do credits (§1.5). */
  credits?: number;
}

/** Either direction: the stream is over (docs/protocol.md §1.4). */
export interface DisconnectMessage {
  event: 'disconnect';
  client_id: string;
  /** Informational, e.g. `normal`, `dial_failed` ({@link DisconnectReason}); absent when empty. */
  reason?: string;
}

/** backend → hub: stream-level liveness probe. */
export interface PingClientMessage {
  event: 'ping_client';
  client_id: string;
}

/** hub → backend: reply to `ping_client`, sent only while the hub knows the stream. */
export interface PongClientMessage {
  event: 'pong_client';
  client_id: string;
}

/** backend → hub, advisory: stop reading from the end user. */
export interface PauseStreamMessage {
  event: 'pause_stream';
  client_id: string;
  reason?: string;
}

/** Resume reading; with `credits` > 0 it is a credit grant, in frames (docs/protocol.md §1.5). */
export interface ResumeStreamMessage {
  event: 'resume_stream';
  client_id: string;
  /** Credit grant in frames; absent = plain resume. Never `0` after decoding. */
  credits?: number;
}

/**
 * backend → hub: open an outbound TCP connection for the backend (SOCKS5 egress, docs/protocol.md §1.4).
 * The backend chooses `client_id`, the id of the stream the connection will use.
 */
export interface OutboundConnectMessage {
  event: 'outbound_connect';
  client_id: string;
  /** `host:port` or `[v6]:port`; `''` when absent (the hub refuses it). */
  target_addr: string;
}

/**
 * hub → backend: the answer to `outbound_connect`. On success the stream `client_id` exists and `credits`
 * is the hub's receive window for it (as in `connect`); on failure `reason` says why.
 */
export interface OutboundResultMessage {
  event: 'outbound_result';
  client_id: string;
  success: boolean;
  /** Why the connection was refused or failed (absent on success). */
  reason?: string;
  /** Success: the initial credit window for backend → hub DATA, in frames (§1.5). */
  credits?: number;
}

/** A control message this package understands, discriminated on `event`; fields use the wire names. */
export type ControlMessage =
  | ConnectMessage
  | DisconnectMessage
  | PingClientMessage
  | PongClientMessage
  | PauseStreamMessage
  | ResumeStreamMessage
  | OutboundConnectMessage
  | OutboundResultMessage;

/**
 * A well-formed control object whose `event` is not one this package knows. Returned as a value, not an error, so a session can log it and carry on.
 */
export interface UnknownControlMessage {
  /** The event name as received. */
  event: string;
  /** The stream id, when the message carried a valid one. */
  client_id?: string;
}

/**
 * Serialises a control message to the exact JSON text the reference implementation sends: Go's
 * `encoding/json` marshalling a struct whose fields are, in order, `event`, `client_id`, `conn_port`,
 * `client_ip`, `transport`, `hostname`, `is_tls`, `reason`, `target_addr`, `success`, `credits` — all but
 * the first two `omitempty`,
 * so `0`, `''` and `false` are left out. `client_id` is a UUID value in Go and is therefore always present.
 * Throws `MuxProtocolError` for an invalid `client_id` or a non-integer number (a programming error).
 */
export function serializeControlMessage(message: ControlMessage): string {
  const m = message as unknown as Record<string, unknown>;
  const clientId = normalizeStreamId(m.client_id);
  if (clientId === undefined) {
    throw new MuxProtocolError('MUX_ERR_INVALID_STREAM_ID', `invalid client_id: ${String(m.client_id)}`);
  }
  let json = '{"event":' + goJsonString(String(m.event)) + ',"client_id":"' + clientId + '"';
  const connPort = m.conn_port;
  if (connPort !== undefined && connPort !== 0) {
    if (!isIntegerIn(connPort, 0, MAX_PORT)) {
      throw new MuxProtocolError('MUX_ERR_INVALID_CONTROL', `invalid conn_port: ${String(connPort)}`);
    }
    json += ',"conn_port":' + connPort;
  }
  if (typeof m.client_ip === 'string' && m.client_ip !== '')
    json += ',"client_ip":' + goJsonString(m.client_ip);
  if (typeof m.transport === 'string' && m.transport !== '')
    json += ',"transport":' + goJsonString(m.transport);
  if (typeof m.hostname === 'string' && m.hostname !== '') json += ',"hostname":' + goJsonString(m.hostname);
  if (m.is_tls === true) json += ',"is_tls":true';
  if (typeof m.reason === 'string' && m.reason !== '') json += ',"reason":' + goJsonString(m.reason);
  if (typeof m.target_addr === 'string' && m.target_addr !== '')
    json += ',"target_addr":' + goJsonString(m.target_addr);
  if (m.success === true) json += ',"success":true';
  const credits = m.credits;
  if (credits !== undefined && credits !== 0) {
    if (!isIntegerIn(credits, 0, Number.MAX_SAFE_INTEGER)) {
      throw new MuxProtocolError('MUX_ERR_INVALID_CONTROL', `invalid credits: ${String(credits)}`);
    }
    json += ',"credits":' + credits;
  }
  return json + '}';
}

const KNOWN_EVENTS: ReadonlySet<string> = new Set(Object.values(ControlEvent));

function invalid(message: string): { ok: false; error: MuxProtocolError } {
  return { ok: false, error: new MuxProtocolError('MUX_ERR_INVALID_CONTROL', message) };
}

/** Decoded control value: a known message, or an unknown event to log and ignore. */
export type ParsedControl =
  | { known: true; message: ControlMessage }
  | { known: false; message: UnknownControlMessage };

/**
 * Validates a parsed JSON object as a control message (docs/protocol.md §1.4). Unknown fields are ignored; a
 * known field of the wrong type is an error (as it is for Go's `json.Unmarshal`); `null` counts as absent.
 * `client_id` must be a UUID string (either case; returned lowercase). `credits` must be a non-negative
 * integer; it is not clamped here (`SendWindow.grant` clamps at 2^20), and `0` is returned as absent.
 */
export function parseControlObject(object: Record<string, unknown>): DecodeResult<ParsedControl> {
  const event = field(object, 'event');
  if (typeof event !== 'string') return invalid('control message without a string "event"');

  const rawId = field(object, 'client_id');
  const clientId = normalizeStreamId(rawId);

  const connPort = field(object, 'conn_port') ?? 0;
  if (!isIntegerIn(connPort, 0, MAX_PORT)) return invalid('"conn_port" must be an integer port');
  const clientIp = field(object, 'client_ip') ?? '';
  if (typeof clientIp !== 'string') return invalid('"client_ip" must be a string');
  const transport = field(object, 'transport') ?? '';
  if (typeof transport !== 'string') return invalid('"transport" must be a string');
  const hostname = field(object, 'hostname') ?? '';
  if (typeof hostname !== 'string') return invalid('"hostname" must be a string');
  const isTls = field(object, 'is_tls') ?? false;
  if (typeof isTls !== 'boolean') return invalid('"is_tls" must be a boolean');
  const reason = field(object, 'reason') ?? '';
  if (typeof reason !== 'string') return invalid('"reason" must be a string');
  const targetAddr = field(object, 'target_addr') ?? '';
  if (typeof targetAddr !== 'string') return invalid('"target_addr" must be a string');
  const success = field(object, 'success') ?? false;
  if (typeof success !== 'boolean') return invalid('"success" must be a boolean');
  const credits = field(object, 'credits') ?? 0;
  if (!isIntegerIn(credits, 0, Number.MAX_VALUE)) return invalid('"credits" must be a non-negative integer');

  if (!KNOWN_EVENTS.has(event)) {
    const message: UnknownControlMessage = { event };
    if (clientId !== undefined) message.client_id = clientId;
    return { ok: true, value: { known: false, message } };
  }
  if (clientId === undefined) {
    const error = new MuxProtocolError(
      'MUX_ERR_INVALID_STREAM_ID',
      rawId === undefined ? `"${event}" without "client_id"` : `"${event}" with an invalid "client_id"`,
    );
    return { ok: false, error };
  }

  let message: ControlMessage;
  switch (event as ControlEventName) {
    case 'connect': {
      const connect: ConnectMessage = {
        event: 'connect',
        client_id: clientId,
        conn_port: connPort,
        client_ip: clientIp,
        hostname,
        is_tls: isTls,
      };
      if (transport !== '') connect.transport = transport;
      if (credits > 0) connect.credits = credits;
      message = connect;
      break;
    }
    case 'disconnect':
    case 'pause_stream': {
      const m: DisconnectMessage | PauseStreamMessage = { event: event as 'disconnect', client_id: clientId };
      if (reason !== '') m.reason = reason;
      message = m;
      break;
    }
    case 'resume_stream': {
      const resume: ResumeStreamMessage = { event: 'resume_stream', client_id: clientId };
      if (credits > 0) resume.credits = credits;
      message = resume;
      break;
    }
    case 'outbound_connect':
      message = { event: 'outbound_connect', client_id: clientId, target_addr: targetAddr };
      break;
    case 'outbound_result': {
      const result: OutboundResultMessage = { event: 'outbound_result', client_id: clientId, success };
      if (reason !== '') result.reason = reason;
      if (credits > 0) result.credits = credits;
      message = result;
      break;
    }
    default:
      message = { event: event as 'ping_client' | 'pong_client', client_id: clientId };
  }
  return { ok: true, value: { known: true, message } };
}
