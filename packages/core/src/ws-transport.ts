/**
 * Adapts a `ws` WebSocket to the `MuxTransport` interface of `@nexus-proxy/mux-protocol`: binary
 * messages out, `bufferedAmount` for backpressure, the underlying socket's `'drain'` to resume sending,
 * and `pause()`/`resume()` to stop reading when a stream's reader does not keep up (docs/protocol.md §1.5,
 * "unmetered streams still need backpressure").
 */
import type { Duplex } from 'node:stream';
import { createWsBinarySender, wsInternals } from '@nexus-proxy/common';
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
  const underlying = (): Duplex | undefined => socket ?? wsInternals(ws)._socket ?? undefined;
  const sender = createWsBinarySender(ws);
  return {
    ws,
    send: sender.send,
    sendData: sender.sendData,
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
