/**
 * The private fields of a `ws` WebSocket that {@link createWsFrameWriter} and
 * {@link takeBinaryMessagesAsViews} read, in one place, with a
 * check of their shape. `ws` does not promise them: every package that depends on `ws` pins it to the
 * minor release they were read from (see docs/architecture.md, "Shared mechanisms"), and the test of
 * this module fails, naming the field, when a new `ws` changes them.
 */
import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';

/** The `ws` minor release whose private fields this module reads. */
export const WS_INTERNALS_VERSION = '8.23';

/** ws `Sender` state in which it writes each message synchronously (no compression, no Blob read, no queue). */
export const WS_SENDER_IDLE = 0;

/** The parts of a ws `WebSocket` the frame writer checks and writes through. */
export interface WsInternals {
  /** The TCP/TLS socket under the WebSocket (null before the handshake completes). */
  _socket?: Duplex | null;
  /** True on the server side (frames unmasked), false on the client side (frames masked). */
  _isServer?: boolean;
  /** ws's frame writer. */
  _sender?: {
    /** {@link WS_SENDER_IDLE} while ws writes synchronously. */
    _state?: number;
    /** False while a fragmented message (`send(data, { fin: false })`) is in progress. */
    _firstFragment?: boolean;
  } | null;
  /** ws's frame parser, fed every read of the socket (see {@link checkWsReceiverInternals}). */
  _receiver?: unknown;
}

/** `ws` seen through the private fields this module reads. */
export function wsInternals(ws: WebSocket): WsInternals {
  return ws as unknown as WsInternals;
}

/**
 * Checks that an open `ws` WebSocket has the private fields the frame writer reads, with the types it
 * expects. Returns undefined when they do, or a sentence naming the first field that does not match.
 */
export function checkWsInternals(ws: WebSocket): string | undefined {
  const internals = wsInternals(ws);
  const where = `ws (read as ${WS_INTERNALS_VERSION}.x)`;
  const socket = internals._socket as
    | { write?: unknown; cork?: unknown; uncork?: unknown }
    | null
    | undefined;
  if (socket == null || typeof socket !== 'object') {
    return `${where}: WebSocket._socket is ${describe(socket)}, expected the underlying socket`;
  }
  for (const method of ['write', 'cork', 'uncork'] as const) {
    if (typeof socket[method] !== 'function') {
      return `${where}: WebSocket._socket.${method} is ${describe(socket[method])}, expected a function`;
    }
  }
  if (typeof internals._isServer !== 'boolean') {
    return `${where}: WebSocket._isServer is ${describe(internals._isServer)}, expected a boolean`;
  }
  const sender = internals._sender;
  if (sender == null || typeof sender !== 'object') {
    return `${where}: WebSocket._sender is ${describe(sender)}, expected ws's Sender`;
  }
  if (typeof sender._state !== 'number') {
    return `${where}: WebSocket._sender._state is ${describe(sender._state)}, expected a number`;
  }
  if (typeof sender._firstFragment !== 'boolean') {
    return `${where}: WebSocket._sender._firstFragment is ${describe(sender._firstFragment)}, expected a boolean`;
  }
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  return typeof value === 'object' || typeof value === 'function' ? `a ${typeof value}` : String(value);
}

/**
 * The parts of ws's Receiver that {@link takeBinaryMessagesAsViews} (ws-data-frames.ts) reads: besides
 * its public Writable API, its `maxPayload` and whether it holds bytes of a frame not yet complete.
 */
export interface WsReceiver {
  /** ws's Writable `write`, called by its `socketOnData` for every socket read. */
  write(chunk: Buffer): boolean;
  readonly writableLength: number;
  readonly writableEnded: boolean;
  readonly errored: Error | null;
  readonly destroyed: boolean;
  /** The WebSocket's `maxPayload` (0: no limit). */
  _maxPayload: number;
  /** Bytes given to the Receiver that it has not parsed yet (part of a frame). */
  _bufferedBytes: number;
  /** Its parser's state: {@link WS_RECEIVER_GET_INFO} between frames. */
  _state: number;
  /** The opcode of the fragmented message in progress, 0 when none. */
  _fragmented: number;
}

/** ws Receiver state in which the next byte it gets starts a frame. */
export const WS_RECEIVER_GET_INFO = 0;

/**
 * Checks that an open `ws` WebSocket has the Receiver fields {@link takeBinaryMessagesAsViews} reads.
 * Returns undefined when it does, or a sentence naming the first field that does not match.
 */
export function checkWsReceiverInternals(ws: WebSocket): string | undefined {
  const where = `ws (read as ${WS_INTERNALS_VERSION}.x)`;
  if (typeof wsInternals(ws)._isServer !== 'boolean') {
    return `${where}: WebSocket._isServer is ${describe(wsInternals(ws)._isServer)}, expected a boolean`;
  }
  const receiver = wsInternals(ws)._receiver as Partial<WsReceiver> | null | undefined;
  if (receiver == null || typeof receiver !== 'object') {
    return `${where}: WebSocket._receiver is ${describe(receiver)}, expected ws's Receiver`;
  }
  if (typeof receiver.write !== 'function') {
    return `${where}: WebSocket._receiver.write is ${describe(receiver.write)}, expected a function`;
  }
  for (const field of ['_maxPayload', '_bufferedBytes', '_state', '_fragmented', 'writableLength'] as const) {
    if (typeof receiver[field] !== 'number') {
      return `${where}: WebSocket._receiver.${field} is ${describe(receiver[field])}, expected a number`;
    }
  }
  return undefined;
}
