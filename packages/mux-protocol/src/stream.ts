import { Duplex } from 'node:stream';
import type { ConnectMessage } from './control.js';
import { MuxProtocolError } from './errors.js';
import { ReceiveLedger, SendWindow } from './flow-window.js';
import { DATA_HEADER_LENGTH, MAX_DATA_PAYLOAD } from './frame.js';
import { PendingChunks } from './pending-chunks.js';
import { grantWithinBudget, type ReceiveBudgetShare } from './receive-budget.js';
import { WindowTuner } from './window-tuning.js';
import type { LocalEndBehaviour, MuxStreamInit, ReceiveMetering, StreamHost } from './stream-host.js';
import { writeStreamId } from './stream-id.js';

/** The receive accounting a stream is in now (see {@link ReceiveMetering}); `lenient` keeps its options. */
type ReceiveState = 'unmetered' | 'probing' | 'strict' | 'lenient';

/**
 * One multiplexed stream as a Node `Duplex`, so wiring a TCP socket to it is
 * `pipeline(socket, stream, socket)`.
 *
 * Writable side: writes become DATA frames of at most 32 768 bytes, or the larger size a Nexus
 * peer accepts (docs/protocol.md §1.11); small writes buffered by Node are coalesced into full frames by
 * `_writev`, and a chunk of half a frame or more is not cut across two frames when the frame can end
 * before it (`PendingChunks.frameLength`: a read with frame room then goes out in place). A write's
 * callback is held while the stream has no send
 * credits, is paused by its peer, or waits for its turn at a full transport; `write()` then returns
 * `false` and `'drain'` follows, like any Node stream. On a transport with `sendData` the chunks go out
 * as views, not copies; a writer that lent a chunk's memory for framing in place (see
 * `MuxTransport.sendData`) must not read it again once written, and takes it back only when the write
 * has called back.
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
  /** Datagram streams: datagrams received and dropped because the reader was full. */
  datagramsDropped = 0;
  /** A datagram stream (`MuxStreamInit.datagram`): one write = one frame; received frames never wait. */
  readonly datagram: boolean;

  readonly #host: StreamHost;
  readonly #localEnd: LocalEndBehaviour;
  readonly #idBytes: Buffer;
  /** Frame type · stream id: the 17-byte DATA header, built once (hosts that send parts). */
  #dataHeader: Buffer | undefined;
  readonly #dataFrameType: number;
  /** Largest DATA payload sent, bytes (`MuxStreamInit.maxDataPayload`). */
  readonly #maxPayload: number;

  // Send side.
  readonly #send: SendWindow;
  /** Grants are ignored (`unmetered` send metering). */
  readonly #ignoreGrants: boolean;
  #peerPaused = false;
  /** Chunks of the write in progress and its held callback. */
  readonly #pending = new PendingChunks();
  #pendingCallback: ((error?: Error | null) => void) | null = null;
  /** Counts writes, so that a late transport callback cannot complete a later write. */
  #writeSeq = 0;
  /**
   * Frames of the write in progress that went to the transport as views of the writer's chunks and that
   * it still holds: the write's callback waits until it holds none (a writer may reuse a buffer once its
   * write completed, and a transport writes what the views show when it writes them). Also when the
   * peer is gone or the stream is destroyed: what is not sent yet is dropped then, what the transport
   * holds is not.
   */
  #inTransport = 0;
  #inSend = false;
  /** The peer is gone: nothing more is sent; pending and later writes are discarded. */
  #sendDead = false;

  // Receive side.
  #receiveState: ReceiveState;
  readonly #receive: ReceiveLedger;
  /** This stream's part of the node-wide receive budget, if it has one (closed once nothing is held). */
  readonly #share: ReceiveBudgetShare | undefined;
  /** Grows the receive window with the path's bandwidth-delay product, between Nexus ends. */
  readonly #tuner: WindowTuner | undefined;
  /** `lenient`: what a peer past the allowance means. */
  readonly #overrunCloses: boolean;
  /** `lenient`: frames past the window tolerated before `onOverrun` applies (`0` otherwise). */
  readonly #allowance: number;
  /** `lenient`: frames received past the window and not yet granted back, as counted to the host. */
  #pastWindow = 0;
  #receiveEnded = false;

  /** A close for this stream crossed the wire (either way) or the session closed. */
  #detached = false;
  /** Set by `disconnect()`: send `disconnect` with this reason once the writable side has finished. */
  #disconnectReason: string | undefined;
  #finalDone = false;

  /** Streams are created by their host (a `StreamEngine`), which passes itself as `init.host`. */
  constructor(init: MuxStreamInit) {
    super({
      readableHighWaterMark: init.highWaterMark,
      writableHighWaterMark: init.highWaterMark,
    });
    this.id = init.id;
    this.connect = init.connect;
    this.#host = init.host;
    this.#localEnd = init.localEnd;
    this.datagram = init.datagram === true;
    this.#idBytes = Buffer.allocUnsafe(16);
    writeStreamId(this.#idBytes, 0, init.id);
    this.#dataFrameType = init.dataFrameType;
    this.#maxPayload = init.maxDataPayload ?? MAX_DATA_PAYLOAD;
    const sending = init.sendMetering;
    this.#ignoreGrants = sending.mode === 'unmetered';
    this.#send = new SendWindow({
      chargeUnmetered: true,
      ...(sending.mode === 'metered' ? { initialCredits: sending.credits } : {}),
      ...(sending.mode === 'on-first-grant' && sending.unmeteredLimit !== undefined
        ? { unmeteredLimit: sending.unmeteredLimit }
        : {}),
    });
    const receiving: ReceiveMetering = init.receiveMetering;
    this.#receiveState = receiving.mode;
    this.#overrunCloses = receiving.mode === 'lenient' && receiving.onOverrun === 'close';
    this.#allowance = receiving.mode === 'lenient' ? receiving.overrunAllowance : 0;
    const budget = receiving.mode === 'unmetered' ? undefined : init.receiveBudget;
    this.#share = budget?.share(() => this.#roomReturned(), init.budgetUnits);
    this.#receive = new ReceiveLedger({
      window: init.receiveWindow,
      batch: init.grantBatch,
      slack: this.#allowance,
      // Up front, only what the budget allows (at least its per-stream floor); the rest follows as room returns.
      initialGrant: this.#share?.afford(0, init.receiveWindow) ?? init.receiveWindow,
    });
    const growth = receiving.mode === 'unmetered' || this.datagram ? undefined : init.windowGrowth;
    this.#tuner = growth && new WindowTuner(this.#receive, growth);
  }

  /** Credits granted to the peer when the stream opened (`connect.credits` or the first grant), in frames. */
  get initialCredits(): number {
    return this.#receive.initialGrant;
  }

  /** The hostname the stream is for (from the `connect`). */
  get hostname(): string {
    return this.connect.hostname;
  }

  /**
   * DATA frames this side may still send before the next grant: while unmetered, what is left of the
   * unmetered limit (`Infinity` without one).
   */
  get sendWindow(): number {
    return this.#send.available;
  }

  /** True once sending is metered by the peer's grants (from its first grant, or from the connect's credits). */
  get sendMetered(): boolean {
    return this.#send.metered;
  }

  /**
   * Frames the peer may still send before our next grant, as far as this side can count, or `undefined`
   * when the peer does not meter. Negative only in the `lenient` case of {@link ReceiveMetering}.
   */
  get receiveWindow(): number | undefined {
    return this.#receiveState === 'unmetered' ? undefined : this.#receive.outstanding;
  }

  /** Whether a close for this stream has crossed the wire (either way), or the session has closed. */
  get detached(): boolean {
    return this.#detached;
  }

  /** Sends a liveness ping for this stream (backend sessions: `ping_client`, docs/protocol.md §1.6); `'pong'` follows. */
  ping(): void {
    if (this.#detached) return;
    this.#host.sendPing(this);
  }

  // ───────────────────────────── send side ─────────────────────────────

  /** Bytes written and not yet sent as DATA (the engine's scheduler reads it). */
  get pendingBytes(): number {
    return this.#pending.bytes;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#sendDead || chunk.length === 0) {
      callback();
      return;
    }
    this.#pending.push(chunk);
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
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i]!.chunk;
      if (chunk.length > 0) this.#pending.push(chunk);
    }
    if (this.#pending.bytes === 0) {
      callback();
      return;
    }
    this.#pendingCallback = callback;
    this.#writeSeq++;
    this.#host.schedule(this);
  }

  /**
   * Host side: it is this stream's turn at the transport; sends at most `maxFrames` DATA frames, of at
   * most `maxPayload` bytes each (default: the stream's frame size; a host with many streams waiting
   * keeps turns short with less). Returns true when the stream could send more right now (the host
   * queues it again).
   */
  sendFrames(maxFrames: number, maxPayload = this.#maxPayload): boolean {
    let sent = 0;
    const sendParts = this.#host.sendDataParts;
    const window = this.#send;
    this.#inSend = true;
    try {
      while (this.#pending.bytes > 0) {
        if (this.#sendDead) break;
        if (this.#peerPaused || !window.canSend()) return false;
        if (sent === maxFrames) return true;
        // A datagram is one frame of its own: never joined with the next write.
        const length = this.datagram
          ? Math.min(this.#pending.headLength, MAX_DATA_PAYLOAD)
          : this.#pending.frameLength(Math.min(maxPayload, this.#maxPayload));
        window.spend();
        if (sendParts !== undefined) {
          this.#sendParts(sendParts, length);
          sent++;
          continue;
        }
        // One allocation per frame: header and payload together (the WebSocket sends one message).
        const frame = Buffer.allocUnsafe(DATA_HEADER_LENGTH + length);
        frame[0] = this.#dataFrameType;
        this.#idBytes.copy(frame, 1);
        this.#pending.copyTo(frame, DATA_HEADER_LENGTH, length);
        this.bytesWritten += length;
        sent++;
        this.#host.sendData(frame, length);
      }
    } finally {
      this.#inSend = false;
    }
    // The transport still holds parts of the write: it calls back once they are written (or dropped).
    if (this.#inTransport > 0) return false;
    // The whole write went out (or the peer is gone): release the callback so Node hands us the next.
    this.#completeWrite();
    return this.#pending.bytes > 0 && this.#canSend();
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
    const parts = this.#pending.views(length);
    this.bytesWritten += length;
    this.#inTransport++;
    send.call(this.#host, header, parts, length, this.#partsWritten(this.#writeSeq));
  }

  /**
   * The transport's callback for a frame of write `seq` sent as views: once it holds none of the write's
   * frames, the write completes if nothing of it is left to send (or nothing will be: the peer is gone).
   * The transport calls back exactly once per frame, in order, never synchronously (`MuxTransport.sendData`).
   */
  #partsWritten(seq: number): () => void {
    return () => {
      if (seq !== this.#writeSeq || this.#inTransport === 0) return;
      this.#inTransport--;
      if (this.#inTransport === 0 && (this.#pending.bytes === 0 || this.#sendDead) && !this.#inSend) {
        this.#completeWrite();
      }
    };
  }

  /**
   * Datagram streams: queues `payload` as one DATA frame and returns true, or drops it and returns false —
   * when the stream can no longer send, `payload` is empty or over 32 768 bytes, or the datagrams not yet
   * sent (waiting for credits, a pause or the transport) already fill the writable high-water mark. Never
   * waits: UDP is lossy, and a flow that cannot send must not hold its socket's reader.
   */
  sendDatagram(payload: Buffer): boolean {
    const length = payload.length;
    if (this.#sendDead || this.writableEnded || this.destroyed) return false;
    if (length === 0 || length > MAX_DATA_PAYLOAD) return false;
    if (this.writableLength + length > this.writableHighWaterMark) return false;
    this.write(payload);
    return true;
  }

  #canSend(): boolean {
    return !this.#sendDead && !this.#peerPaused && this.#send.canSend();
  }

  #completeWrite(): void {
    this.#inTransport = 0;
    const callback = this.#pendingCallback;
    if (callback === null) return;
    this.#pending.clear();
    this.#pendingCallback = null;
    // May synchronously call _write/_writev again (Node's clearBuffer): the host's pump is re-entrant.
    callback();
  }

  /**
   * Host side: a credit grant of `credits` (> 0) frames from the peer. Ignored under `unmetered` send
   * metering; otherwise sending is metered from here on, one credit per DATA frame (docs/protocol.md §1.5),
   * the first grant counting from the stream's first frame. A `probing` receive side learns that the
   * peer meters too, and becomes `strict`.
   */
  grant(credits: number): void {
    if (this.#ignoreGrants) {
      // A datagram stream sends unmetered, but a grant still proves the peer meters what it sends.
      this.#peerMeters();
      return;
    }
    this.#send.grant(credits);
    this.#peerPaused = false;
    this.#peerMeters();
    if (this.#pending.bytes > 0) this.#host.schedule(this);
  }

  #peerMeters(): void {
    if (this.#receiveState !== 'probing') return;
    // The backend grants, so it also meters what it sends us from the connect on (§1.5).
    this.#receiveState = 'strict';
    this.#sendGrant(this.#receive.flush());
  }

  /** Host side: the peer's advisory pause (`true`) or resume of our sending. */
  setPeerPaused(paused: boolean): void {
    this.#peerPaused = paused;
    if (!paused && this.#pending.bytes > 0) this.#host.schedule(this);
  }

  /**
   * Local end of the writable side; Node calls it after every write has been sent. What it sends is the
   * stream's {@link LocalEndBehaviour}: `close` sends the close after the last DATA and stops accepting
   * data; `keep-open` sends nothing (unless `disconnect()` asked for a close).
   */
  override _final(callback: (error?: Error | null) => void): void {
    this.#finalDone = true;
    const reason = this.#disconnectReason ?? (this.#localEnd === 'close' ? 'normal' : undefined);
    if (reason !== undefined) this.#sendDisconnect(reason);
    callback();
  }

  /**
   * Closes the stream in both directions once every byte written so far has been sent: ends the
   * writable side, then sends the close with `reason` after the last DATA and ends the readable side.
   * For a `keep-open` stream when the end user has closed completely (nobody is left to read the
   * response); `destroy()` instead would discard writes still waiting for credits. On a `close` stream
   * `end()` already does this.
   */
  disconnect(reason = 'normal'): void {
    if (this.#detached || this.destroyed) return;
    this.#disconnectReason = reason;
    if (this.#finalDone) this.#sendDisconnect(reason);
    else if (!this.writableEnded) this.end();
    // Otherwise end() was called and _final (still waiting for writes to go out) will send it.
  }

  #sendDisconnect(reason: string): void {
    if (this.#detached) return;
    this.closeReason ??= reason;
    this.#host.disconnect(this, reason);
    this.#endReadable();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#detached) {
      this.closeReason ??= error ? 'local_error' : 'normal';
      this.#host.disconnect(this, error ? 'local_error' : 'normal');
    }
    this.#sendDead = true;
    this.#receiveEnded = true;
    this.#releasePastWindow();
    this.#releaseReceiveRoom();
    this.#host.resumeTransport(this);
    if (!this.#inSend && this.#inTransport === 0) this.#completeWrite();
    callback(error);
  }

  // ───────────────────────────── receive side ─────────────────────────────

  /**
   * Host side: one DATA frame from the peer, whole or in parts (`length` bytes in all, none empty: views
   * of the transport's reads, each pushed as it is); `payload` is not reused by the transport. An empty payload
   * is ignored (docs/protocol.md §1.3): it earns no grant and counts against no window (the engine
   * bounds how many a peer may send).
   */
  receiveData(payload: Buffer | readonly Buffer[], length = (payload as Buffer).length): void {
    if (this.#receiveEnded || length === 0) return;
    const state = this.#receiveState;
    if (state !== 'unmetered' && !this.#receive.received()) {
      // The peer went past the window (plus the allowance of a lenient stream).
      if (state === 'strict' || this.#overrunCloses) {
        this.#overrun();
        return;
      }
      if (state === 'probing') {
        // A v1 backend: no credits bound it, pausing the transport does; the budget no longer applies.
        this.#receiveState = 'unmetered';
        this.#share?.close();
      }
    } else if (state === 'lenient' && this.#receive.outstanding < 0) {
      // Within the allowance, but past the window: the host bounds these frames across its streams.
      this.#pastWindow++;
      if (!this.#host.countPastWindow(this, 1)) {
        this.#overrun();
        return;
      }
    }
    this.#tuner?.received();
    this.bytesRead += length;
    if (this.datagram) {
      // Delivered or dropped on arrival: never buffered past the high-water mark, never a reason to
      // pause the transport, and always counted as delivered, so the peer's credits keep coming.
      if (this.readableLength + length > this.readableHighWaterMark) this.datagramsDropped++;
      else this.push(Buffer.isBuffer(payload) ? payload : Buffer.concat(payload, length));
      this.#delivered(1);
      return;
    }
    let accepted = true;
    if (Buffer.isBuffer(payload)) accepted = this.push(payload);
    // The parts as they came (views of the transport's reads); what counts is the room after the last.
    else for (const part of payload) accepted = this.push(part);
    if (accepted) {
      this.#delivered(1);
      return;
    }
    // Behind (a grown window used slowly narrows back). A peer no credit window bounds (v1), or one far
    // past it, is held back only by not reading the transport; else the frame is granted on `_read()`.
    this.#tuner?.behind();
    if (this.#receiveState === 'unmetered' || this.#receive.outstanding < -this.#allowance) {
      this.#host.pauseTransport(this);
    }
  }

  #overrun(): void {
    this.#host.streamProtocolError(
      this,
      new MuxProtocolError(
        'MUX_ERR_CREDIT_OVERRUN',
        `stream ${this.id}: peer sent a DATA frame beyond the window it was granted`,
      ),
    );
  }

  override _read(): void {
    // The consumer wants more: the frames pushed while the buffer was full count as delivered now.
    const buffered = this.#receive.buffered;
    if (buffered > 0 && this.#receiveState !== 'unmetered') this.#delivered(buffered);
    this.#host.resumeTransport(this);
  }

  /** Counts `frames` handed to the consumer; sends a grant once a batch has accumulated. */
  #delivered(frames: number): void {
    const state = this.#receiveState;
    if (state === 'unmetered') return;
    const ledger = this.#receive;
    const share = this.#share;
    this.#tuner?.delivered(frames, !this.#receiveEnded);
    if (share !== undefined) {
      // Under a budget the grant is sized by what the budget allows (grantWithinBudget).
      ledger.countDelivered(frames);
      share.settle(ledger.outstanding + ledger.buffered);
      if (this.#receiveEnded && ledger.buffered === 0) this.#releaseReceiveRoom();
      // Probing: the backend may not meter; grants wait (in the ledger) for its first grant.
      if (state !== 'probing') this.#grantWithinBudget();
      return;
    }
    const grant = ledger.delivered(frames);
    if (grant === 0) return;
    if (state === 'probing') ledger.requeue(grant);
    else this.#sendGrant(grant);
  }

  /** Sends a grant taken from the ledger; a grant that cannot be sent goes back to it, never lost. */
  #sendGrant(wanted: number): void {
    if (wanted === 0) return;
    if (this.#detached || this.#receiveEnded || this.#share !== undefined) {
      this.#receive.requeue(wanted);
      // Under a budget, only what it allows, in batches; the rest stays pending until it calls back.
      if (this.#share !== undefined) this.#grantWithinBudget();
      return;
    }
    this.#emitGrant(wanted);
  }

  /** Under a receive budget: grants what it allows now, if that makes a batch (see grantWithinBudget). */
  #grantWithinBudget(): void {
    if (this.#detached || this.#receiveEnded) return;
    const frames = grantWithinBudget(this.#receive, this.#share!);
    if (frames > 0) this.#emitGrant(frames);
  }

  #emitGrant(frames: number): void {
    this.#tuner?.granted(frames);
    this.#host.sendGrant(this, frames);
    if (this.#pastWindow > 0) {
      // The grant pays back frames received past the window first.
      const pastWindow = Math.max(0, -this.#receive.outstanding);
      this.#host.countPastWindow(this, pastWindow - this.#pastWindow);
      this.#pastWindow = pastWindow;
    }
  }

  /** Nothing more is received or held: the stream's part of the budget and its window's growth go back. */
  #releaseReceiveRoom(): void {
    this.#share?.close();
    this.#tuner?.release();
  }

  /** The budget has room again: grant what was deferred (a strict or lenient receive side only). */
  #roomReturned(): void {
    const state = this.#receiveState;
    if (state === 'probing' || state === 'unmetered') return;
    this.#grantWithinBudget();
  }

  /** Nothing more is received: the frames past the window no longer count against the host's budget. */
  #releasePastWindow(): void {
    if (this.#pastWindow === 0) return;
    this.#host.countPastWindow(this, -this.#pastWindow);
    this.#pastWindow = 0;
  }

  /** Host side: the peer closed the stream, or the session closed: deliver what we have, then EOF. */
  remoteClosed(reason: string): void {
    this.closeReason ??= reason;
    this.#detached = true;
    this.#sendDead = true;
    this.#endReadable();
    // The peer will not read what we still hold: release the write in progress; from now on the
    // writable side is a sink that discards (the stream is gone, there is nobody to deliver to). It is
    // deliberately not ended here: a consumer still writing (`pipeline(socket, stream, socket)` with an
    // end user mid-upload) would get "write after end" errors, and the pipeline would then destroy the
    // end-user socket before it has flushed the response. The owner ends it, as for any socket.
    // Not while a frame is being built: sendFrames notices `#sendDead` and releases it itself. Nor while
    // the transport holds frames of it: the last one it lets go of releases it (see #partsWritten).
    if (!this.#inSend && this.#inTransport === 0) this.#completeWrite();
  }

  /** Host side: a close for this stream is crossing the wire (or the session is closing): send nothing more. */
  detach(): void {
    this.#detached = true;
  }

  /** Host side: the stream broke the protocol and has already been closed on the wire. */
  fail(error: MuxProtocolError): void {
    this.closeReason ??= 'protocol_error';
    this.#sendDead = true;
    this.#receiveEnded = true;
    this.#releasePastWindow();
    this.destroy(error);
  }

  #endReadable(): void {
    if (this.#receiveEnded) return;
    this.#receiveEnded = true;
    this.#releasePastWindow();
    // What is still buffered keeps its part of the budget until delivered or the stream is destroyed.
    if (this.#receive.buffered === 0) this.#releaseReceiveRoom();
    // Nothing more arrives for this stream, so it no longer needs the transport paused; what it
    // already buffered stays readable.
    this.#host.resumeTransport(this);
    this.push(null);
  }
}
