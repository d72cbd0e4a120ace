/**
 * What the stream engine needs from the transport it runs on (a WebSocket, adapted), and the logger
 * shape it accepts.
 */

/** One WebSocket (or any message transport), adapted for a session. */
export interface MuxTransport {
  /** Sends one binary message. The session never reuses `message` after the call. */
  send(message: Uint8Array): void;
  /** Bytes queued but not yet written to the kernel (WebSocket `bufferedAmount`). */
  readonly bufferedAmount: number;
  /**
   * Optional: sends one DATA frame given as its 17-byte header and the payload's parts (views of the
   * writer's chunks, in order, `payloadLength` bytes in all), as one binary message. A transport that can
   * write the parts without first joining them (a WebSocket server writing its own frame header) saves a
   * copy and an allocation per frame; one that recognises a part its writer lent for framing in place
   * (room for the frame's headers in front, see `lendFrameRoom` in `@nexus-proxy/common`) builds the
   * frame where the payload is and may overwrite that part (mask it). It must not modify any other part,
   * and must call `onWritten` exactly once, never synchronously, when it no longer holds them (written to
   * the socket, or dropped because the transport is closed): the parts are views of the writer's
   * buffers, which the writer may reuse once its write completes. Frames of one stream are called back
   * in the order they were sent. Without it, DATA goes through `send()` as one buffer.
   */
  sendData?(
    header: Uint8Array,
    payload: readonly Uint8Array[],
    payloadLength: number,
    onWritten: () => void,
  ): void;
}

/** Pino-compatible logger (a pino logger can be passed as is). */
export interface MuxLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child?(bindings: Record<string, unknown>): MuxLogger;
}
