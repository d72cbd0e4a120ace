import { Duplex } from 'node:stream';
import type { ConnectMessage } from './control.js';
import { MuxProtocolError } from './errors.js';
import { MAX_CREDITS } from './flow-window.js';
import { DATA_HEADER_LENGTH, FrameType, MAX_DATA_PAYLOAD } from './frame.js';
import { writeStreamId } from './stream-id.js';

/**
 * @internal How a stream accounts for the DATA frames its peer sends (docs/protocol.md §1.5).
 * - `Legacy`: the peer does not meter; backpressure pauses the whole transport, no grants are sent.
 * - `Probing` (hub): the connect offered credits but the backend has not granted yet, so it may be a v1
 *   backend that ignores them. Frames are counted and grants accumulated but not sent; the first grant
 *   from the backend proves it meters (→ `Strict`), more frames than the window prove it does not
 *   (→ `Legacy`).
 * - `Strict` (hub): the backend meters from the `connect` on, so our count is exact and a frame beyond
 *   the window is an overrun.
 * - `Lenient` (backend): the hub meters only after our first grant reaches it and sends unmetered until
 *   then, so our count can legitimately go negative by the frames of that round trip. Those frames are
 *   never an error and do not pause the transport (that would let one stalled stream block all others);
 *   only a hub that goes more than `unmeteredAllowance` frames past the window makes the stream fall
 *   back to pausing the transport, as for a v1 peer.
 */
export const ReceiveMode = {
  Legacy: 0,
  Probing: 1,
  Strict: 2,
  Lenient: 3,
} as const;
/** @internal One of the {@link ReceiveMode} values. */
export type ReceiveMode = (typeof ReceiveMode)[keyof typeof ReceiveMode];

/**
 * @internal What a stream needs from its session. A stream holds no reference to the session itself
 * (the same stream type serves backend sessions and, later, peer tunnels).
 */
export interface StreamHost {
  /** The stream has DATA ready (or got credits): give it a turn at the transport. */
  schedule(stream: MuxStream): void;
  /** Sends one DATA frame now; `payloadLength` is for the counters. */
  sendData(frame: Uint8Array, payloadLength: number): void;
  /**
   * Optional: sends one DATA frame as its header (the stream's own, constant: never modified) and the
   * payload's parts, without joining them (see `MuxTransport.sendData`). Absent: `sendData`.
   */
  sendDataParts?(
    header: Uint8Array,
    payload: Uint8Array[],
    payloadLength: number,
    onWritten: () => void,
  ): void;
  /** Sends one control message now (grants, disconnects, pings are never held behind DATA). */
  sendControl(message: Uint8Array): void;
  /** Sends `disconnect` for the stream (unless the session is closed) and forgets its id. */
  disconnect(stream: MuxStream, reason: string): void;
  /** Forgets the stream's id without sending anything (a disconnect already crossed the wire). */
  forget(stream: MuxStream): void;
  /** The stream's readable buffer is full and its peer is not metered: pause reading the transport. */
  pauseTransport(stream: MuxStream): void;
  /** The stream no longer needs the transport paused. */
  resumeTransport(stream: MuxStream): void;
  /** The peer broke the protocol on this stream only (e.g. credit overrun). */
  streamProtocolError(stream: MuxStream, error: MuxProtocolError): void;
  /**
   * Sends a credit grant of `credits` frames in the host's own encoding (peer tunnels: a `0x15`
   * TUNNEL_CREDITS frame, docs/protocol.md §2.3). Absent: `sendControl(resume_stream{credits})`.
   */
  sendGrant?(stream: MuxStream, credits: number): void;
}

/** @internal Everything a session passes to a new stream. */
export interface MuxStreamInit {
  id: string;
  /** The `connect` message that opened the stream (sent by the hub, received by the backend). */
  connect: ConnectMessage;
  role: 'hub' | 'backend';
  host: StreamHost;
  /** Send credits granted up front (backend: `connect.credits`); `undefined` = not metered from the start. */
  sendCredits: number | undefined;
  /**
   * Hub role, before the backend's first grant: the most frames to send unmetered. `undefined` = no
   * limit (the reference behaviour, needed for v1 backends); the session sets it to the window the
   * backend granted on earlier streams once it knows the backend does credits.
   */
  assumedWindow: number | undefined;
  /** Backend role: frames beyond the window tolerated from a metered hub before falling back to pausing the transport. */
  unmeteredAllowance: number;
  receiveMode: ReceiveMode;
  /** Frames the peer may send before our next grant (the window we granted). */
  receiveCredits: number;
  /** Grants are sent in batches of this many frames. */
  grantBatch: number;
  /** Readable and writable high-water mark of the Duplex, in bytes. */
  highWaterMark: number;
  /** First byte of the DATA frames this stream sends. Default: `0x01`; peer tunnels use `0x11` (§2.3). */
  dataFrameType?: number;
}

/**
 * One multiplexed stream as a Node `Duplex`, so wiring a TCP socket to it is
 * `pipeline(socket, stream, socket)`.
 *
 * Writable side: writes become DATA frames of at most 32 768 bytes (small writes buffered by Node are
 * coalesced into full frames by `_writev`). A write's callback is held while the stream has no send
 * credits, is paused by its peer, or waits for its turn at a full transport; `write()` then returns
 * `false` and `'drain'` follows, like any Node stream.
 *
 * Readable side: DATA from the peer is pushed as it arrives; send credits are returned to the peer
 * (`resume_stream{credits}`) only as the consumer takes the bytes.
 *
 * End of stream: a `disconnect` from the peer (or the session closing) delivers everything already
 * received, then EOF; from then on writes (and the one pending) complete without being sent — the
 * peer has gone — until the owner ends the writable side. See `_final` for what a local `end()` sends.
 */
export class MuxStream extends Duplex {
  /** Stream id (lowercase UUID string, the wire `client_id`). */
  readonly id: string;
  /** The `connect` message that opened the stream. */
  readonly connect: ConnectMessage;
  /** Payload bytes received from the peer. */
  bytesRead = 0;
  /** Payload bytes sent to the peer. */
  bytesWritten = 0;
  /** Why the stream ended: the peer's `disconnect` reason, the session close reason, or a local reason. */
  closeReason: string | undefined;

  readonly #role: 'hub' | 'backend';
  readonly #host: StreamHost;
  readonly #idBytes: Buffer;
  /** Frame type · stream id: the 17-byte DATA header, built once (hosts that send parts). */
  #dataHeader: Buffer | undefined;
  readonly #grantBatch: number;
  readonly #dataFrameType: number;

  // Send side.
  /** From the peer's first grant on (backend: from a connect with credits), DATA is metered. */
  #sendMetered: boolean;
  /** Total frames this stream may have sent: grants received (metered), the assumed window, or ∞. */
  #sendLimit: number;
  #framesSent = 0;
  #peerPaused = false;
  /** Chunks of the write in progress (reused array), read position, bytes left, held callback. */
  readonly #pending: Buffer[] = [];
  #pendingIndex = 0;
  #pendingOffset = 0;
  #pendingBytes = 0;
  #pendingCallback: ((error?: Error | null) => void) | null = null;
  /** Counts writes, so that a late transport callback cannot complete a later write. */
  #writeSeq = 0;
  /**
   * The write's last frame went to the transport as views of the writer's chunks: its callback waits
   * until the transport no longer holds them (a writer may reuse a buffer once its write completed).
   */
  #awaitingFlush = false;
  #inSend = false;
  /** The peer is gone: nothing more is sent; pending and later writes are discarded. */
  #sendDead = false;

  // Receive side.
  #receiveMode: ReceiveMode;
  #receiveCredits: number;
  readonly #unmeteredAllowance: number;
  /** Frames the consumer took that have not been granted back yet. */
  #delivered = 0;
  /** Frames pushed while the readable buffer was full: granted back on the next `_read()`. */
  #owed = 0;
  #receiveEnded = false;

  /** @internal Set while this stream holds the transport paused. */
  pausingTransport = false;
  /** @internal A disconnect for this stream crossed the wire (either way) or the session closed. */
  detached = false;
  /** @internal Intrusive link of the session's ready queue. */
  nextReady: MuxStream | null = null;
  /** @internal Whether the stream is in the session's ready queue. */
  queued = false;
  /**
   * Hub role: whether the backend has sent anything for this stream yet (DATA, a grant, a pause, a
   * ping or pong, a disconnect); until then the stream counts in the session's `pendingConnects`.
   * Always `true` on the backend role.
   */
  answered: boolean;

  #grantPrefix: Buffer | undefined;
  /** Set by `disconnect()`: send `disconnect` with this reason once the writable side has finished. */
  #disconnectReason: string | undefined;
  #finalDone = false;

  /** @internal Streams are created by `MuxSession` (`openStream` or an incoming `connect`). */
  constructor(init: MuxStreamInit) {
    super({
      readableHighWaterMark: init.highWaterMark,
      writableHighWaterMark: init.highWaterMark,
    });
    this.id = init.id;
    this.connect = init.connect;
    this.#role = init.role;
    this.#host = init.host;
    this.#idBytes = Buffer.allocUnsafe(16);
    writeStreamId(this.#idBytes, 0, init.id);
    this.#grantBatch = init.grantBatch;
    this.#dataFrameType = init.dataFrameType ?? FrameType.Data;
    const credits = init.sendCredits ?? 0;
    this.#sendMetered = credits > 0;
    this.#sendLimit = this.#sendMetered
      ? Math.min(credits, MAX_CREDITS)
      : (init.assumedWindow ?? Number.POSITIVE_INFINITY);
    this.#unmeteredAllowance = init.unmeteredAllowance;
    this.#receiveMode = init.receiveMode;
    this.#receiveCredits = init.receiveCredits;
    this.answered = init.role !== 'hub';
  }

  /** The hostname the stream is for (from the `connect`). */
  get hostname(): string {
    return this.connect.hostname;
  }

  /** DATA frames this side may still send before the next grant; `Infinity` while sending is unmetered. */
  get sendWindow(): number {
    return this.#sendLimit - this.#framesSent;
  }

  /** True once sending is metered by the peer's grants (hub: from its first grant; backend: from a connect with credits). */
  get sendMetered(): boolean {
    return this.#sendMetered;
  }

  /**
   * Frames the peer may still send before our next grant, as far as this side can count, or `undefined`
   * when the peer does not meter (legacy stream). Negative only in the lenient case described on
   * {@link ReceiveMode}.
   */
  get receiveWindow(): number | undefined {
    return this.#receiveMode === ReceiveMode.Legacy ? undefined : this.#receiveCredits;
  }

  /** Sends `ping_client` for this stream (backend role health check, docs/protocol.md §1.6); `'pong'` follows. */
  ping(): void {
    if (this.detached) return;
    this.#host.sendControl(controlFrame('ping_client', this.id));
  }

  // ───────────────────────────── send side ─────────────────────────────

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#sendDead || chunk.length === 0) {
      callback();
      return;
    }
    this.#pending.push(chunk);
    this.#pendingBytes = chunk.length;
    this.#pendingCallback = callback;
    this.#writeSeq++;
    this.#host.schedule(this);
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (error?: Error | null) => void,
  ): void {
    if (this.#sendDead) {
      callback();
      return;
    }
    let bytes = 0;
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i]!.chunk;
      if (chunk.length === 0) continue;
      this.#pending.push(chunk);
      bytes += chunk.length;
    }
    if (bytes === 0) {
      callback();
      return;
    }
    this.#pendingBytes = bytes;
    this.#pendingCallback = callback;
    this.#writeSeq++;
    this.#host.schedule(this);
  }

  /**
   * @internal Called by the session when it is this stream's turn: sends at most `maxFrames` DATA
   * frames. Returns true when the stream could send more right now (the session requeues it).
   */
  sendFrames(maxFrames: number): boolean {
    let sent = 0;
    const sendParts = this.#host.sendDataParts;
    this.#inSend = true;
    try {
      while (this.#pendingBytes > 0) {
        if (this.#sendDead) break;
        if (this.#peerPaused || this.#framesSent >= this.#sendLimit) return false;
        if (sent === maxFrames) return true;
        const length = Math.min(this.#pendingBytes, MAX_DATA_PAYLOAD);
        if (sendParts !== undefined) {
          this.#sendParts(sendParts, length);
          sent++;
          continue;
        }
        // One allocation per frame: header and payload together (the WebSocket sends one message).
        const frame = Buffer.allocUnsafe(DATA_HEADER_LENGTH + length);
        frame[0] = this.#dataFrameType;
        this.#idBytes.copy(frame, 1);
        let offset = DATA_HEADER_LENGTH;
        let need = length;
        const pending = this.#pending;
        while (need > 0) {
          const chunk = pending[this.#pendingIndex]!;
          const start = this.#pendingOffset;
          const available = chunk.length - start;
          const take = Math.min(available, need);
          chunk.copy(frame, offset, start, start + take);
          offset += take;
          need -= take;
          if (take === available) {
            this.#pendingIndex++;
            this.#pendingOffset = 0;
          } else {
            this.#pendingOffset = start + take;
          }
        }
        this.#pendingBytes -= length;
        this.#framesSent++;
        this.bytesWritten += length;
        sent++;
        this.#host.sendData(frame, length);
      }
    } finally {
      this.#inSend = false;
    }
    // The transport still holds the write's last parts: it calls back once they are written.
    if (this.#awaitingFlush && !this.#sendDead) return false;
    // The whole write went out (or the peer is gone): release the callback so Node hands us the next.
    this.#completeWrite();
    return this.#pendingBytes > 0 && this.#canSend();
  }

  /**
   * One DATA frame of `length` bytes as views of the pending chunks (no copy, no large allocation): the
   * host writes the constant header and the parts as one message.
   */
  #sendParts(send: NonNullable<StreamHost['sendDataParts']>, length: number): void {
    let header = this.#dataHeader;
    if (header === undefined) {
      header = Buffer.allocUnsafe(DATA_HEADER_LENGTH);
      header[0] = this.#dataFrameType;
      this.#idBytes.copy(header, 1);
      this.#dataHeader = header;
    }
    const pending = this.#pending;
    const parts: Uint8Array[] = [];
    let need = length;
    while (need > 0) {
      const chunk = pending[this.#pendingIndex]!;
      const start = this.#pendingOffset;
      const available = chunk.length - start;
      if (available <= need) {
        parts.push(start === 0 ? chunk : chunk.subarray(start));
        need -= available;
        this.#pendingIndex++;
        this.#pendingOffset = 0;
      } else {
        parts.push(chunk.subarray(start, start + need));
        this.#pendingOffset = start + need;
        need = 0;
      }
    }
    this.#pendingBytes -= length;
    this.#framesSent++;
    this.bytesWritten += length;
    let onWritten = noop;
    if (this.#pendingBytes === 0) {
      this.#awaitingFlush = true;
      const seq = this.#writeSeq;
      onWritten = () => {
        if (seq !== this.#writeSeq || !this.#awaitingFlush) return;
        this.#awaitingFlush = false;
        this.#completeWrite();
      };
    }
    send.call(this.#host, header, parts, length, onWritten);
  }

  #canSend(): boolean {
    return !this.#sendDead && !this.#peerPaused && this.#framesSent < this.#sendLimit;
  }

  #completeWrite(): void {
    this.#awaitingFlush = false;
    const callback = this.#pendingCallback;
    if (callback === null) return;
    this.#pending.length = 0;
    this.#pendingIndex = 0;
    this.#pendingOffset = 0;
    this.#pendingBytes = 0;
    this.#pendingCallback = null;
    // May synchronously call _write/_writev again (Node's clearBuffer): the session's pump is re-entrant.
    callback();
  }

  /** @internal A credit grant from the peer (`resume_stream{credits}`), already known to be positive. */
  grant(credits: number): void {
    // Backend role: a stream whose connect carried no credits stays unmetered (a v1 hub never grants;
    // starting to meter on a stray grant could stall the stream). Hub role: from the first grant on,
    // one credit per DATA frame (docs/protocol.md §1.5).
    if (!this.#sendMetered) {
      if (this.#role === 'backend') return;
      // The first grant is the backend's window counted from the stream's first frame (it counts every
      // frame it receives), so the frames we sent unmetered before it arrived are spent out of it. The
      // balance may start negative; later grants pay it off. This keeps our count equal to the
      // backend's, so it never sees more frames than it granted.
      this.#sendMetered = true;
      this.#sendLimit = 0;
    }
    // Balances above 2^20 are clamped (docs/protocol.md §1.5).
    const limit = this.#sendLimit + credits;
    const max = this.#framesSent + MAX_CREDITS;
    this.#sendLimit = Math.min(limit, max);
    this.#peerPaused = false;
    if (this.#receiveMode === ReceiveMode.Probing) {
      // The backend grants, so it also meters what it sends us from the connect on (§1.5).
      this.#receiveMode = ReceiveMode.Strict;
      this.#flushGrant();
    }
    if (this.#pendingBytes > 0) this.#host.schedule(this);
  }

  /** @internal `pause_stream` / `resume_stream` without credits: advisory hold of our sending. */
  setPeerPaused(paused: boolean): void {
    this.#peerPaused = paused;
    if (!paused && this.#pendingBytes > 0) this.#host.schedule(this);
  }

  /**
   * Local end of the writable side; Node calls it after every write has been sent.
   *
   * The v1 wire has no half-close: `disconnect` ends both directions, and the reference backend client
   * closes its local connection when it gets one. So the two roles differ (docs/protocol.md §1.4, §1.7):
   * - backend: the local service closed, so its response is complete; send `disconnect{normal}` after
   *   the last DATA, and stop accepting data for the stream.
   * - hub: the end user half-closed (sent FIN after its request). Sending `disconnect` now would make
   *   the backend drop the response, so nothing is sent: the stream stays open to receive the response
   *   until the backend disconnects, or until the owner calls `disconnect()` (end user fully closed)
   *   or `destroy()` (error), which send `disconnect`.
   */
  override _final(callback: (error?: Error | null) => void): void {
    this.#finalDone = true;
    const reason = this.#disconnectReason ?? (this.#role === 'backend' ? 'normal' : undefined);
    if (reason !== undefined) this.#sendDisconnect(reason);
    callback();
  }

  /**
   * Closes the stream in both directions once every byte written so far has been sent: ends the
   * writable side, then sends `disconnect{reason}` after the last DATA and ends the readable side.
   * For the hub when the end user has closed completely (nobody is left to read the response);
   * `destroy()` instead would discard writes still waiting for credits. On the backend role `end()`
   * already does this.
   */
  disconnect(reason = 'normal'): void {
    if (this.detached || this.destroyed) return;
    this.#disconnectReason = reason;
    if (this.#finalDone) this.#sendDisconnect(reason);
    else if (!this.writableEnded) this.end();
    // Otherwise end() was called and _final (still waiting for writes to go out) will send it.
  }

  #sendDisconnect(reason: string): void {
    if (this.detached) return;
    this.closeReason ??= reason;
    this.#host.disconnect(this, reason);
    this.#endReadable();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.detached) {
      this.closeReason ??= error ? 'local_error' : 'normal';
      this.#host.disconnect(this, error ? 'local_error' : 'normal');
    }
    this.#sendDead = true;
    this.#receiveEnded = true;
    if (this.pausingTransport) this.#host.resumeTransport(this);
    if (!this.#inSend) this.#completeWrite();
    callback(error);
  }

  // ───────────────────────────── receive side ─────────────────────────────

  /** @internal One DATA frame from the peer; `payload` is not reused by the transport. */
  receiveData(payload: Buffer): void {
    if (this.#receiveEnded) return;
    const mode = this.#receiveMode;
    if (mode !== ReceiveMode.Legacy) {
      const credits = --this.#receiveCredits;
      if (credits < 0) {
        if (mode === ReceiveMode.Strict) {
          this.#host.streamProtocolError(
            this,
            new MuxProtocolError(
              'MUX_ERR_CREDIT_OVERRUN',
              `stream ${this.id}: peer sent a DATA frame beyond the window it was granted`,
            ),
          );
          return;
        }
        if (mode === ReceiveMode.Probing) this.#receiveMode = ReceiveMode.Legacy;
      }
    }
    const length = payload.length;
    if (length === 0) {
      // Receivers ignore empty payloads (§1.3), but the sender spent a credit on it: give it back.
      this.#credit(1);
      return;
    }
    this.bytesRead += length;
    const accepted = this.push(payload);
    if (this.#receiveMode === ReceiveMode.Legacy || this.#receiveCredits < -this.#unmeteredAllowance) {
      // No credit window bounds this peer (v1), or a hub kept sending far past it: the only
      // backpressure left is to stop reading the transport.
      if (!accepted && !this.pausingTransport) this.#host.pauseTransport(this);
    }
    if (accepted) this.#credit(1);
    else this.#owed++;
  }

  override _read(): void {
    // The consumer wants more: the frames pushed while the buffer was full count as delivered now.
    const owed = this.#owed;
    if (owed > 0) {
      this.#owed = 0;
      this.#credit(owed);
    }
    if (this.pausingTransport) this.#host.resumeTransport(this);
  }

  #credit(frames: number): void {
    const mode = this.#receiveMode;
    if (mode === ReceiveMode.Legacy) return;
    this.#delivered += frames;
    if (mode !== ReceiveMode.Probing && this.#delivered >= this.#grantBatch) this.#flushGrant();
  }

  /** Sends the accumulated grant now. A grant is never dropped: it waits in `#delivered` until sent. */
  #flushGrant(): void {
    const frames = this.#delivered;
    if (frames === 0 || this.detached || this.#receiveEnded) return;
    this.#delivered = 0;
    this.#receiveCredits += frames;
    if (this.#host.sendGrant !== undefined) this.#host.sendGrant(this, frames);
    else this.#host.sendControl(this.#grantFrame(frames));
  }

  /**
   * `resume_stream{credits}` without JSON.stringify on the data path: a cached prefix plus the number,
   * byte-identical to `encodeControlMessage` (field order event, client_id, credits).
   */
  #grantFrame(credits: number): Buffer {
    let prefix = this.#grantPrefix;
    if (prefix === undefined) {
      prefix = Buffer.from(`\x02{"event":"resume_stream","client_id":"${this.id}","credits":`, 'latin1');
      this.#grantPrefix = prefix;
    }
    const digits = String(credits);
    const frame = Buffer.allocUnsafe(prefix.length + digits.length + 1);
    prefix.copy(frame, 0);
    frame.write(digits, prefix.length, 'latin1');
    frame[frame.length - 1] = 0x7d; // '}'
    return frame;
  }

  /** @internal The remote side disconnected, or the session closed: deliver what we have, then EOF. */
  remoteClosed(reason: string): void {
    this.closeReason ??= reason;
    this.detached = true;
    this.#sendDead = true;
    this.#endReadable();
    // The peer will not read what we still hold: release the write in progress; from now on the
    // writable side is a sink that discards (the stream is gone, there is nobody to deliver to). It is
    // deliberately not ended here: a consumer still writing (`pipeline(socket, stream, socket)` with an
    // end user mid-upload) would get "write after end" errors, and the pipeline would then destroy the
    // end-user socket before it has flushed the response. The owner ends it, as for any socket.
    // Not while a frame is being built: sendFrames notices `#sendDead` and releases it itself.
    if (!this.#inSend) this.#completeWrite();
  }

  /** @internal The stream broke the protocol: it has already been disconnected on the wire. */
  fail(error: MuxProtocolError): void {
    this.closeReason ??= 'protocol_error';
    this.#sendDead = true;
    this.#receiveEnded = true;
    this.destroy(error);
  }

  #endReadable(): void {
    if (this.#receiveEnded) return;
    this.#receiveEnded = true;
    // Nothing more arrives for this stream, so it no longer needs the transport paused; what it
    // already buffered stays readable.
    if (this.pausingTransport) this.#host.resumeTransport(this);
    this.push(null);
  }
}

function noop(): void {}

/** A control frame with only `event` and `client_id` (ping/pong), without JSON.stringify. */
function controlFrame(event: string, id: string): Buffer {
  return Buffer.from(`\x02{"event":"${event}","client_id":"${id}"}`, 'latin1');
}
