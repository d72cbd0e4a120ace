/**
 * Adapts a `ws` WebSocket to the `MuxTransport` interface of `@nexus-proxy/mux-protocol`: binary
 * messages out, `bufferedAmount` for backpressure, the underlying socket's `'drain'` to resume sending,
 * and `pause()`/`resume()` to stop reading when a stream's reader does not keep up (PROTOCOL.md §1.5,
 * "unmetered streams still need backpressure").
 */
import type { Duplex } from 'node:stream';
import type { MuxTransport } from '@nexus-proxy/mux-protocol';
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
  const internals = ws as unknown as WsInternals;
  const underlying = (): Duplex | undefined => socket ?? internals._socket ?? undefined;
  // Messages sent in one tick leave in one socket write (one TLS record run, one syscall) instead of one
  // write each: the socket is corked at the first message of a tick and uncorked on the next tick.
  let corked: Duplex | undefined;
  const uncork = (): void => {
    const s = corked;
    corked = undefined;
    s?.uncork();
  };
  const corkForTick = (): void => {
    if (process.env.HP_NOCORK) return;
    if (corked !== undefined) return;
    const s = internals._socket;
    if (s == null || s.destroyed || !s.writable) return;
    corked = s;
    s.cork();
    process.nextTick(uncork);
  };
  return {
    ws,
    send(message: Uint8Array): void {
      if (ws.readyState !== WebSocket.OPEN) return;
      corkForTick();
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
      const s = internals._socket;
      const sender = internals._sender;
      if (
        process.env.HP_NOPARTS ||
        internals._isServer !== true ||
        s == null ||
        sender == null ||
        sender._state !== SENDER_IDLE ||
        sender._firstFragment !== true ||
        ws.extensions !== ''
      ) {
        // Not a plain server socket ws writes synchronously: let ws frame one joined buffer.
        ws.send(Buffer.concat([header, ...payload], header.length + payloadLength), { binary: true });
        process.nextTick(onWritten);
        return;
      }
      // A server's frames are unmasked (RFC 6455 §5.1), so the WebSocket frame header, the DATA header
      // and the payload views go to the socket as they are, byte-identical to what ws.send would write,
      // without joining them into a new buffer first. ws writes synchronously in this state (no
      // compression, no queued message), so the order of messages is kept.
      corkForTick();
      const messageLength = header.length + payloadLength;
      const wsHeaderLength = messageLength < 126 ? 2 : messageLength < 65_536 ? 4 : 10;
      const head = Buffer.allocUnsafe(wsHeaderLength + header.length);
      head[0] = 0x82; // FIN · binary
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
        return;
      }
      s.write(head);
      for (let i = 0; i < last; i++) s.write(payload[i]);
      s.write(payload[last]!, onWritten as () => void);
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

/** The parts of a ws `WebSocket` the zero-copy path checks (ws 8). */
interface WsInternals {
  _socket?: Duplex | null;
  _isServer?: boolean;
  _sender?: { _state?: number; _firstFragment?: boolean } | null;
}
