/**
 * The send path of a multiplexer over one `ws` WebSocket, for the node's hub sessions and peer links and for
 * the backend client alike: small binary messages (grants, control) straight to the socket through the
 * {@link WsFrameWriter} and larger ones through `ws.send`, corked per tick, DATA frames through the
 * {@link WsFrameWriter} (each frame one buffer, written on its own), falling back to one joined `ws.send`
 * whenever the writer declines. Sending on a WebSocket that is no longer open is a no-op: its session is
 * being closed anyway.
 */
import type WebSocket from 'ws';
import { createWsFrameWriter, type WsFrameWriter } from './ws-frame-writer.js';

/** `WebSocket.OPEN` (the WHATWG value `ws` uses). */
const OPEN = 1;

/**
 * Bytes queued on a link's socket above which its multiplexer holds DATA back (its `highWaterMark`): the
 * socket's own high-water mark (16 KiB), so that a large DATA frame is written only once the frame
 * before it has left. Node's TLS socket completes a write no sooner than the next turn of the event
 * loop and joins everything queued behind it into one copy before encrypting; with at most one large
 * frame queued, each goes to OpenSSL as it is (docs/benchmarks.md, "One buffer per DATA frame"). A
 * socket holding more than this has had `write()` return false, so its `'drain'` follows.
 */
export const DATA_HIGH_WATER_MARK = 16 * 1024;

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
  /**
   * Sends `message` as one binary message, corking the socket for the tick: a small one through the
   * frame writer ({@link WsFrameWriter.writeMessage}), anything else (or when it declines) by `ws.send`.
   */
  send(message: Uint8Array): void;
  /**
   * Sends `header` · payload parts (`payloadLength` bytes) as one binary message. `onWritten` runs once,
   * never synchronously, when the socket has written the message (or the WebSocket was no longer open):
   * the parts may have gone out as they are, or been framed in place (see frame-room.ts), so they are
   * held until then. The `sendData` of `MuxTransport` (`@nexus-proxy/mux-protocol`).
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
  const wrote = (onWritten: () => void) => () => {
    onWritten();
    onSent?.();
  };
  return {
    writer,
    send(message: Uint8Array): void {
      if (ws.readyState !== OPEN) return;
      if (writer.writeMessage(message, onSent)) return;
      writer.corkForTick();
      ws.send(message, { binary: true }, onSent);
    },
    sendData(header, payload, payloadLength, onWritten): void {
      if (ws.readyState !== OPEN) {
        process.nextTick(onWritten);
        return;
      }
      // Without onSent the stream's own callback goes to the socket as it is: no closure per frame.
      const written = onSent === undefined ? onWritten : wrote(onWritten);
      if (writer.writeData(header, payload, payloadLength, written)) return;
      writer.corkForTick();
      ws.send(join(header, payload, payloadLength), { binary: true }, written);
    },
  };
}
