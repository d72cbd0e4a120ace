/**
 * Adapts a `ws` WebSocket to the `MuxTransport` interface of `@nexus-proxy/mux-protocol`: binary
 * messages out, `bufferedAmount` for backpressure, the underlying socket's `'drain'` to resume sending,
 * and `pause()`/`resume()` to stop reading when a stream's reader does not keep up (docs/protocol.md §1.5,
 * "unmetered streams still need backpressure").
 */
import type { Duplex } from 'node:stream';
import { joinDataParts, type MuxTransport } from '@nexus-proxy/mux-protocol';
import { WebSocket } from 'ws';

/** A `MuxTransport` over one WebSocket. */
export interface WsTransport extends MuxTransport {
  /** The adapted WebSocket. */
  readonly ws: WebSocket;
  /** Calls `listener` whenever the socket under the WebSocket drains. Returns an unsubscribe function. */
  onDrain(listener: () => void): () => void;
  /** Stop reading messages (the kernel buffer then fills and TCP pushes back on the sender). */
  pause(): void;
  /** Resume reading messages. */
  resume(): void;
}

/**
 * Wrap `ws`. `socket` is the TCP/TLS socket under it (the `socket` of `handleUpgrade`, or the client's
 * `upgrade` response socket); without it the adapter falls back to the WebSocket's internal socket.
 * Sending on a WebSocket that is no longer open is a no-op: the session is being closed anyway.
 */
export function createWsTransport(ws: WebSocket, socket?: Duplex): WsTransport {
  const underlying = (): Duplex | undefined => socket ?? (ws as unknown as WsInternals)._socket ?? undefined;
  const writer = createWsFrameWriter(ws);
  return {
    ws,
    send(message: Uint8Array): void {
      if (ws.readyState !== WebSocket.OPEN) return;
      writer.corkForTick();
      ws.send(message, { binary: true });
    },
    sendData(
      header: Uint8Array,
      payload: readonly Uint8Array[],
      payloadLength: number,
      onWritten: () => void,
    ): void {
      if (ws.readyState !== WebSocket.OPEN) {
        process.nextTick(onWritten);
        return;
      }
      if (writer.writeData(header, payload, payloadLength, onWritten)) return;
      ws.send(joinDataParts(header, payload, payloadLength), { binary: true });
      process.nextTick(onWritten);
    },
    get bufferedAmount(): number {
      return ws.bufferedAmount;
    },
    onDrain(listener: () => void): () => void {
      const s = underlying();
      if (s === undefined) return () => {};
      s.on('drain', listener);
      return () => {
        s.off('drain', listener);
      };
    },
    pause(): void {
      if (ws.readyState === WebSocket.OPEN) ws.pause();
    },
    resume(): void {
      if (ws.readyState === WebSocket.OPEN) ws.resume();
    },
  };
}

/** ws `Sender` state in which it writes each message synchronously (no compression, no queue). */
const SENDER_IDLE = 0;

/** @internal Writes binary messages of an open WebSocket with fewer copies and fewer socket writes. */
export interface WsFrameWriter {
  /**
   * Corks the socket until the next tick, so that every message sent in this tick leaves in one socket
   * write (one run of TLS records, one syscall) instead of one write each. Idempotent within a tick.
   */
  corkForTick(): void;
  /**
   * Writes `header` · payload parts as one binary message straight to the socket, without joining them:
   * a server's frames are unmasked (RFC 6455 §5.1), so the WebSocket frame header, the header and the
   * payload views go out as they are, byte-identical to what `ws.send` would write. `onWritten` runs
   * once the socket has written the parts (or failed). Returns false, having written nothing, when the
   * WebSocket is not a plain server socket that ws writes synchronously (client side, which must mask;
   * compression negotiated; ws holding messages in a queue): the caller then uses `ws.send`.
   */
  writeData(
    header: Uint8Array,
    payload: readonly Uint8Array[],
    payloadLength: number,
    onWritten: () => void,
  ): boolean;
}

/** @internal A {@link WsFrameWriter} for `ws` (open or not; each call checks). */
export function createWsFrameWriter(ws: WebSocket): WsFrameWriter {
  const internals = ws as unknown as WsInternals;
  let corked: Duplex | undefined;
  const uncork = (): void => {
    const s = corked;
    corked = undefined;
    s?.uncork();
  };
  const corkForTick = (): void => {
    if (corked !== undefined) return;
    const s = internals._socket;
    if (s == null || s.destroyed || !s.writable) return;
    corked = s;
    s.cork();
    process.nextTick(uncork);
  };
  return {
    corkForTick,
    writeData(header, payload, payloadLength, onWritten): boolean {
      const s = internals._socket;
      const sender = internals._sender;
      if (
        ws.readyState !== WebSocket.OPEN ||
        internals._isServer !== true ||
        s == null ||
        sender == null ||
        sender._state !== SENDER_IDLE ||
        sender._firstFragment !== true ||
        ws.extensions !== ''
      ) {
        return false;
      }
      corkForTick();
      const messageLength = header.length + payloadLength;
      const wsHeaderLength = messageLength < 126 ? 2 : messageLength < 65_536 ? 4 : 10;
      const head = Buffer.allocUnsafe(wsHeaderLength + header.length);
      head[0] = 0x82; // FIN · binary (RFC 6455 §5.2)
      if (wsHeaderLength === 2) {
        head[1] = messageLength;
      } else if (wsHeaderLength === 4) {
        head[1] = 126;
        head.writeUInt16BE(messageLength, 2);
      } else {
        head[1] = 127;
        head.writeUInt32BE(0, 2);
        head.writeUInt32BE(messageLength, 6);
      }
      head.set(header, wsHeaderLength);
      const last = payload.length - 1;
      if (last < 0) {
        s.write(head, onWritten as () => void);
        return true;
      }
      s.write(head);
      for (let i = 0; i < last; i++) s.write(payload[i]!);
      s.write(payload[last]!, onWritten as () => void);
      return true;
    },
  };
}

/** The parts of a ws `WebSocket` the zero-copy path checks (ws 8). */
interface WsInternals {
  _socket?: Duplex | null;
  _isServer?: boolean;
  _sender?: { _state?: number; _firstFragment?: boolean } | null;
}
