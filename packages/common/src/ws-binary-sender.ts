/**
 * The send path of a multiplexer over one `ws` WebSocket, for the node's hub sessions and peer links and for
 * the backend client alike: binary messages out through `ws.send`, DATA frames through the
 * {@link WsFrameWriter} (header and payload parts straight to the socket), falling back to one joined
 * `ws.send` whenever the writer declines. Sending on a WebSocket that is no longer open is a no-op: its
 * session is being closed anyway.
 */
import type WebSocket from 'ws';
import { createWsFrameWriter, type WsFrameWriter } from './ws-frame-writer.js';
import { wsInternals } from './ws-internals.js';

/** `WebSocket.OPEN` (the WHATWG value `ws` uses). */
const OPEN = 1;

/** Options of {@link createWsBinarySender}. */
export interface WsBinarySenderOptions {
  /**
   * Runs after each message sent has reached the socket (ws's send callback), e.g. to resume DATA held
   * back above a high-water mark once `bufferedAmount` fell: ws has no public `'drain'` event.
   */
  onSent?: () => void;
}

/** Sends the binary messages of a multiplexer over one WebSocket. */
export interface WsBinarySender {
  /** Sends `message` as one binary message; corks the socket for the tick. */
  send(message: Uint8Array): void;
  /**
   * Sends `header` · payload parts (`payloadLength` bytes) as one binary message. `onWritten` runs once,
   * never synchronously, when the parts are no longer held: at once (next tick) where they were copied
   * (a client's masked frame, or the joined fallback), once the socket wrote them where they went out as
   * they are (a server's frame). The `sendData` of `MuxTransport` (`@nexus-proxy/mux-protocol`).
   */
  sendData(
    header: Uint8Array,
    payload: readonly Uint8Array[],
    payloadLength: number,
    onWritten: () => void,
  ): void;
  /** The frame writer used (its `corkForTick` batches the other messages of a tick). */
  readonly writer: WsFrameWriter;
}

/** One message of `header` · parts: the fallback when the parts cannot go out as they are. */
function join(header: Uint8Array, payload: readonly Uint8Array[], payloadLength: number): Buffer {
  return Buffer.concat([header, ...payload], header.length + payloadLength);
}

/** A {@link WsBinarySender} for `ws`, server or client side. */
export function createWsBinarySender(ws: WebSocket, options: WsBinarySenderOptions = {}): WsBinarySender {
  const onSent = options.onSent;
  const writer = createWsFrameWriter(ws);
  // A client's frames are masked into a fresh buffer: its parts are free once writeData returns.
  const copies = wsInternals(ws)._isServer === false;
  const wrote = (onWritten: () => void) => () => {
    onWritten();
    onSent?.();
  };
  return {
    writer,
    send(message: Uint8Array): void {
      if (ws.readyState !== OPEN) return;
      writer.corkForTick();
      ws.send(message, { binary: true }, onSent);
    },
    sendData(header, payload, payloadLength, onWritten): void {
      if (ws.readyState !== OPEN) {
        process.nextTick(onWritten);
        return;
      }
      if (copies) {
        if (!writer.writeData(header, payload, payloadLength, onSent ?? noop)) {
          writer.corkForTick();
          ws.send(join(header, payload, payloadLength), { binary: true }, onSent);
        }
        process.nextTick(onWritten);
        return;
      }
      // Without onSent the stream's own callback goes to the socket as it is: no closure per frame.
      if (
        writer.writeData(header, payload, payloadLength, onSent === undefined ? onWritten : wrote(onWritten))
      ) {
        return;
      }
      writer.corkForTick();
      ws.send(join(header, payload, payloadLength), { binary: true }, onSent);
      process.nextTick(onWritten);
    },
  };
}

function noop(): void {}
