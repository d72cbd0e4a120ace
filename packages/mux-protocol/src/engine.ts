/**
 * The stream engine: one implementation of the stream table, credit windows, fair scheduling, close
 * handling and limits, shared by backend sessions (`MuxSession`, docs/protocol.md §1) and peer-link tunnels
 * (`TunnelSession`, §2.4). What differs between the two wires is a {@link StreamFraming} adapter; what
 * differs between their roles (who opens streams, what a local `end()` sends, how a peer's first frames
 * are metered) is chosen per stream through the named options of {@link EngineStreamInit}.
 */
import {
  DEFAULT_BACKLOG_GRACE_MS,
  DEFAULT_BACKLOG_LIMIT,
  DEFAULT_MAX_EMPTY_DATA_FRAMES_PER_SECOND,
  DEFAULT_MAX_STREAMS,
  DEFAULT_MAX_UNKNOWN_STREAM_REPLIES,
  DEFAULT_STREAM_HIGH_WATER_MARK,
  DEFAULT_TRANSPORT_HIGH_WATER_MARK,
  type EngineAbortReason,
  type EngineStreamInit,
  nonNegative,
  positiveInteger,
  type StreamEngineCounters,
  type StreamEngineOptions,
  IGNORED_WARNING_INTERVAL_MS,
  RECENTLY_CLOSED_CAPACITY,
  turnPayload,
} from './engine-options.js';
import { BacklogWatch } from './backlog-watch.js';
import { toBuffer } from './buffer-view.js';
import { MuxProtocolError } from './errors.js';
import { MAX_CREDITS } from './flow-window.js';
import type { FramingEvent, StreamFraming } from './framing.js';
import { dataFrameParts, joinParts } from './data-parts.js';
import { DATA_HEADER_LENGTH, MAX_DATA_PAYLOAD } from './frame.js';
import { checkExplicitTuning, type PayloadSettings, payloadSettings } from './frame-size.js';
import { TurnQueue } from './turn-queue.js';
import { streamWindowGrowth, type WindowGrowthPool, windowGrowthPool } from './window-tuning.js';
import { SecondBudget } from './second-budget.js';
import { RecentIds } from './recent-ids.js';
import { MuxStream } from './stream.js';
import type { StreamHost } from './stream-host.js';
import { streamIdFromBytes } from './stream-id.js';
import type { MuxLogger, MuxTransport } from './transport.js';

/**
 * The multiplexing engine of one transport. The owner feeds every binary message to `receive()`, calls
 * `transportDrained()` when the transport's socket drains, and `close()` when the transport closes.
 * `receive()` keeps views into `message` (no copy): the caller must not reuse that memory (ws never
 * does). DATA is scheduled round-robin, one frame per turn, while the transport is below its
 * high-water mark, so one slow stream never holds back the others and no frame is ever dropped.
 */
export class StreamEngine {
  readonly framing: StreamFraming;
  readonly #transport: MuxTransport;
  readonly #maxStreams: number;
  readonly #highWaterMark: number;
  readonly #growthPool: WindowGrowthPool | undefined;
  /** What follows from the payloads accepted and sent (docs/protocol.md §1.11): window, limits, marks. */
  #payload: PayloadSettings;
  /** Close answers to DATA for unknown ids (§1.4), and empty DATA frames (§1.3), allowed per second. */
  readonly #unknownReplies: SecondBudget;
  readonly #emptyAllowance: SecondBudget;
  readonly #backlog: BacklogWatch;
  readonly #logger: MuxLogger | undefined;
  readonly #options: StreamEngineOptions;
  readonly #now: () => number;
  readonly #host: StreamHost;

  readonly #streams = new Map<string, MuxStream>();
  /** Ids whose late frames are dropped without an answer. */
  readonly #recentlyClosed = new RecentIds(RECENTLY_CLOSED_CAPACITY);
  readonly #ready = new TurnQueue<MuxStream>();
  /** Streams holding the transport's reads paused. */
  readonly #pausing = new Set<MuxStream>();
  /** Streams this side opened that the peer has not sent anything for yet. */
  readonly #unanswered = new Set<MuxStream>();
  #pumping = false;
  #closed = false;
  #closeReason: string | undefined;
  /** The window the peer granted in its first grant on this transport: it meters. */
  #peerWindow: number | undefined;
  /** Frames received past their window by `lenient` streams and not yet granted back, all streams. */
  #pastWindow = 0;
  /** Reading the transport is paused (by streams or the backlog): the hooks were called. */
  #readingPaused = false;
  /** Per kind of ignored message (a fixed few): when it was last warned about, and how many since. */
  readonly #ignoredWarnings = new Map<string, { at: number; since: number }>();

  #streamsOpened = 0;
  #streamsClosed = 0;
  #dataFramesSent = 0;
  #dataFramesReceived = 0;
  #bytesSent = 0;
  #bytesReceived = 0;
  #controlSent = 0;
  #controlReceived = 0;
  #protocolErrors = 0;
  #unknownStreamFrames = 0;
  #emptyDataFrames = 0;

  constructor(options: StreamEngineOptions) {
    this.framing = options.framing;
    this.#options = options;
    this.#transport = options.transport;
    checkExplicitTuning(options);
    this.#payload = payloadSettings(
      options,
      {
        receive: options.maxDataPayload ?? MAX_DATA_PAYLOAD,
        send: options.sendDataPayload ?? MAX_DATA_PAYLOAD,
      },
      DEFAULT_STREAM_HIGH_WATER_MARK,
    );
    this.#maxStreams = positiveInteger('maxStreams', options.maxStreams, DEFAULT_MAX_STREAMS);
    this.#highWaterMark = options.highWaterMark ?? DEFAULT_TRANSPORT_HIGH_WATER_MARK;
    if (!(this.#highWaterMark >= 0)) throw new RangeError('highWaterMark must be ≥ 0');
    const now = (): number => this.#now();
    this.#unknownReplies = new SecondBudget(
      options.maxUnknownStreamReplies ?? DEFAULT_MAX_UNKNOWN_STREAM_REPLIES,
      now,
    );
    const maxEmpty = nonNegative(
      'maxEmptyDataFramesPerSecond',
      options.maxEmptyDataFramesPerSecond,
      DEFAULT_MAX_EMPTY_DATA_FRAMES_PER_SECOND,
    );
    this.#emptyAllowance = new SecondBudget(maxEmpty, now);
    const backlogLimit = positiveInteger('backlogLimit', options.backlogLimit, DEFAULT_BACKLOG_LIMIT);
    const graceMs = nonNegative('backlogGraceMs', options.backlogGraceMs, DEFAULT_BACKLOG_GRACE_MS);
    this.#backlog = new BacklogWatch(backlogLimit, graceMs, {
      buffered: () => this.#transport.bufferedAmount,
      changed: () => {
        if (this.#backlog.high) {
          this.#logger?.debug(
            { bufferedAmount: this.#transport.bufferedAmount, limit: backlogLimit },
            'the peer is not reading: pausing reads from it',
          );
        }
        this.#updateReading();
      },
      recovered: () => this.#pump(),
      expired: (buffered) =>
        this.#abort(
          'peer-not-reading',
          new MuxProtocolError(
            'MUX_ERR_PEER_NOT_READING',
            `${buffered} bytes unread by the peer for ${graceMs} ms: closing the session`,
          ),
        ),
    });
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#growthPool = windowGrowthPool(options);
    this.#host = this.#createHost();
  }

  /**
   * Sets the largest DATA payloads from now on (docs/protocol.md §1.11): `receive`, what this side accepts
   * (with it the message limit and, unless they were set explicitly, the window, the grant batch and the
   * unmetered allowance, so that a window covers the same bytes), and `send`, what the peer accepts (the
   * frames this side builds). Streams opened before keep theirs. Each is an integer from 32 768 to 1 MiB.
   */
  setDataPayloads(payloads: { receive: number; send: number }): void {
    this.#payload = payloadSettings(this.#options, payloads, DEFAULT_STREAM_HIGH_WATER_MARK);
  }

  /** Receive window granted per stream, in frames: 64 with 32 768-byte frames (docs/protocol.md §1.5). */
  get initialWindow(): number {
    return this.#payload.initialWindow;
  }

  /** Frames past the window tolerated from a peer known to meter. */
  get unmeteredAllowance(): number {
    return this.#payload.unmeteredAllowance;
  }

  /** Largest DATA payload this side accepts now, bytes (32 768 unless the peer learnt of more, §1.11). */
  get maxDataPayload(): number {
    return this.#payload.maxDataPayload;
  }

  /** Largest DATA payload this side sends now, bytes (32 768 unless the peer accepts more, §1.11). */
  get sendDataPayload(): number {
    return this.#payload.sendDataPayload;
  }

  /** Largest binary message accepted now, bytes. */
  get maxMessageSize(): number {
    return this.#payload.maxMessageSize;
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Why the engine closed, once it has. */
  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  /** Streams opened with `awaitingAnswer` that the peer has not sent anything for yet. */
  get pendingAnswers(): number {
    return this.#unanswered.size;
  }

  /** The window of the peer's first grant here, once it has granted: it meters (new streams' unmetered bound). */
  get peerWindow(): number | undefined {
    return this.#peerWindow;
  }

  /** Whether another stream may be opened (`maxStreams`). */
  get full(): boolean {
    return this.#streams.size >= this.#maxStreams;
  }

  /** The open stream with id `id`, if any. */
  getStream(id: string): MuxStream | undefined {
    return this.#streams.get(id);
  }

  /**
   * Creates stream `init.id` and enters it in the table. The caller has checked `full` and sends the
   * opening messages itself. A reused id is no longer "recently closed".
   */
  openStream(init: EngineStreamInit): MuxStream {
    this.#recentlyClosed.delete(init.id);
    const stream = new MuxStream({
      id: init.id,
      connect: init.connect,
      host: this.#host,
      dataFrameType: this.framing.dataFrameType,
      sendMetering: init.sendMetering,
      receiveMetering: init.receiveMetering,
      localEnd: init.localEnd,
      datagram: init.datagram === true,
      receiveWindow: this.#payload.initialWindow,
      grantBatch: this.#payload.grantBatch,
      maxDataPayload: this.#payload.sendDataPayload,
      budgetUnits: this.#payload.budgetUnits,
      highWaterMark: this.#payload.streamHighWaterMark,
      ...(this.#options.receiveBudget !== undefined ? { receiveBudget: this.#options.receiveBudget } : {}),
      ...streamWindowGrowth(this.#growthPool, this.#payload, this.#options, this.#now),
    });
    this.#streams.set(init.id, stream);
    this.#streamsOpened++;
    if (init.awaitingAnswer) this.#unanswered.add(stream);
    return stream;
  }

  /**
   * Sends the stream's initial credits as a grant (the first message of a stream that meters): its
   * receive window, or less under a receive budget.
   */
  sendInitialGrant(id: string): void {
    const credits = this.#streams.get(id)?.initialCredits ?? this.#payload.initialWindow;
    this.sendControl(this.framing.encodeGrant(id, credits));
  }

  /** Answers a stream the peer asked for and this side will not carry: remembers its id, sends its close. */
  refuse(id: string, reason: string): void {
    this.#recentlyClosed.add(id);
    this.sendControl(this.framing.encodeClose(id, reason));
  }

  /** Sends one non-DATA message now (grants, closes, pings are never held behind DATA). */
  sendControl(message: Uint8Array): void {
    if (this.#closed) return;
    this.#controlSent++;
    this.#transport.send(message);
    // DATA stops at the high-water mark; only answers to what the peer sends can queue past it.
    this.#backlog.queued();
  }

  /**
   * Feeds one binary message from the transport, or its parts (`partsLength` bytes: a DATA frame's payload
   * reaches its stream as these views, see data-parts.ts). Never throws on hostile input.
   */
  receive(message: Uint8Array | readonly Uint8Array[], partsLength?: number): void {
    if (this.#closed) return;
    const length =
      message instanceof Uint8Array ? message.length : (partsLength ?? joinParts(message).length);
    if (length === 0) return; // §1.3: an empty message is ignored
    if (!(message instanceof Uint8Array)) {
      const f = dataFrameParts(message, length, this.framing.dataFrameType, this.#payload.maxMessageSize);
      if (f === undefined) this.receive(joinParts(message, length));
      else this.#receiveData(f.id, f.payload, f.length);
    } else if (
      message[0] === this.framing.dataFrameType &&
      length >= DATA_HEADER_LENGTH &&
      length <= this.#payload.maxMessageSize
    ) {
      // Hot path: no result objects, no JSON.
      const buffer = toBuffer(message);
      this.#receiveData(streamIdFromBytes(buffer, 1), buffer.subarray(DATA_HEADER_LENGTH));
    } else {
      this.#dispatch(message, this.framing.decode(message, this.#payload.maxMessageSize));
    }
    // Safety net: if DATA waits although the transport has room (a missed drain), serve it now.
    if (this.#ready.size > 0 && !this.#pumping) this.#pump();
  }

  /** Call when the transport's buffer has drained (the WebSocket's socket emitted `'drain'`). */
  transportDrained(): void {
    this.#backlog.drained();
    this.#pump();
  }

  /**
   * Closes the engine: every stream delivers what it already received, then ends with `reason` as its
   * `closeReason`; DATA not yet sent is discarded, never carried over. Sends nothing. Idempotent.
   */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#unanswered.clear();
    this.#ready.clear();
    this.#streamsClosed += streams.length;
    for (const stream of streams) stream.remoteClosed(reason);
    this.#recentlyClosed.clear();
    this.#pausing.clear();
    this.#backlog.stop();
    this.#updateReading();
  }

  /** Closes the engine because the peer broke a limit, and tells the owner (`onAbort`). */
  #abort(reason: EngineAbortReason, error: MuxProtocolError): void {
    if (this.#closed) return;
    this.#logger?.warn({ code: error.code, reason }, error.message);
    this.close(reason);
    this.#options.onAbort?.(reason, error);
  }

  /** A snapshot of the counters. */
  counters(): StreamEngineCounters {
    return {
      streamsOpened: this.#streamsOpened,
      streamsClosed: this.#streamsClosed,
      dataFramesSent: this.#dataFramesSent,
      dataFramesReceived: this.#dataFramesReceived,
      bytesSent: this.#bytesSent,
      bytesReceived: this.#bytesReceived,
      controlMessagesSent: this.#controlSent,
      controlMessagesReceived: this.#controlReceived,
      protocolErrors: this.#protocolErrors,
      unknownStreamFrames: this.#unknownStreamFrames,
      emptyDataFrames: this.#emptyDataFrames,
      backlogPauses: this.#backlog.pauses,
      queuedStreams: this.#ready.size,
      transportPaused: this.#readingPaused,
      windowGrowthPeak: this.#growthPool?.peak ?? 0,
    };
  }

  /** Counts and reports a protocol error found by the owner (e.g. a duplicate open). */
  protocolError(error: MuxProtocolError): void {
    this.#protocolErrors++;
    this.#logger?.debug({ code: error.code, err: error.message }, 'protocol error');
    this.#options.onProtocolError?.(error);
  }

  /**
   * Warns about an ignored message: the first of its kind (`msg`), then at most one per 10 s with the
   * number ignored since (`suppressed`), so a peer sending junk cannot flood the log.
   */
  warnIgnored(fields: Record<string, unknown>, msg: string): void {
    if (this.#logger === undefined) return;
    const now = this.#now();
    const last = this.#ignoredWarnings.get(msg);
    if (last !== undefined && now - last.at < IGNORED_WARNING_INTERVAL_MS) {
      last.since++;
      return;
    }
    const suppressed = last?.since ?? 0;
    this.#ignoredWarnings.set(msg, { at: now, since: 0 });
    this.#logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }

  // ───────────────────────────── receiving ─────────────────────────────

  #receiveData(id: string, payload: Buffer | Buffer[], length = (payload as Buffer).length): void {
    this.#dataFramesReceived++;
    this.#bytesReceived += length;
    const stream = this.#streams.get(id);
    if (stream !== undefined) this.#unanswered.delete(stream);
    if (length === 0) {
      this.#emptyData();
      return;
    }
    if (stream !== undefined) {
      stream.receiveData(payload, length);
      return;
    }
    this.#unknownStreamFrames++;
    // §1.4: drop it and answer a close so the far side frees its state. At most one answer per id
    // (remembered below) and a per-second budget, so a flood of random ids cannot amplify.
    if (this.#recentlyClosed.has(id)) return;
    this.#recentlyClosed.add(id);
    if (!this.#unknownReplies.take()) return;
    this.#logger?.debug({ streamId: id }, 'DATA for an unknown stream: answering close');
    this.sendControl(this.framing.encodeClose(id, 'unknown'));
  }

  /**
   * An empty DATA frame: receivers ignore it (§1.3). It earns no grant and counts against no window, so
   * it could be sent forever for free: past `maxEmptyDataFramesPerSecond` the session is closed.
   */
  #emptyData(): void {
    this.#emptyDataFrames++;
    if (this.#emptyAllowance.take()) return;
    this.#abort(
      'empty-data-flood',
      new MuxProtocolError(
        'MUX_ERR_EMPTY_DATA_FLOOD',
        `more than ${this.#emptyAllowance.limit} empty DATA frames in one second: closing the session`,
      ),
    );
  }

  /** Pauses or resumes reading the transport: paused while a stream or the backlog needs it. */
  #updateReading(): void {
    const pause = !this.#closed && (this.#pausing.size > 0 || this.#backlog.high);
    if (pause === this.#readingPaused) return;
    this.#readingPaused = pause;
    if (pause) this.#options.pauseTransport?.();
    else this.#options.resumeTransport?.();
  }

  #dispatch(message: Uint8Array, event: FramingEvent): void {
    if (event.kind === 'error') {
      this.#oversizeData(message, event.error);
      this.protocolError(event.error);
      return;
    }
    if (event.kind === 'ignored') {
      if (event.control) this.#controlReceived++;
      if (event.warning !== undefined) this.warnIgnored(event.fields ?? {}, event.warning);
      return;
    }
    if (event.kind === 'data') {
      // DATA normally takes the fast path in receive(); kept so no valid frame is lost.
      this.#receiveData(event.id, toBuffer(event.payload));
      return;
    }
    this.#controlReceived++;
    const stream = this.#streams.get(event.id);
    // Any message about a stream answers its opening (`pendingAnswers`).
    if (stream !== undefined) this.#unanswered.delete(stream);
    switch (event.kind) {
      case 'close':
        // A double close, or one for an id we never had: nothing to do.
        if (stream === undefined) return;
        this.#forget(stream);
        stream.remoteClosed(event.reason);
        return;
      case 'grant':
        if (stream === undefined) return;
        // A peer's first grant on a stream is its whole window (later ones are batches).
        if (!stream.sendMetered) this.#peerWindow ??= Math.min(event.credits, MAX_CREDITS);
        stream.grant(event.credits);
        return;
      case 'pause':
        stream?.setPeerPaused(true);
        return;
      case 'resume':
        stream?.setPeerPaused(false);
        return;
      case 'message':
        this.#options.onMessage?.(event.message, stream);
        return;
    }
  }

  /** A DATA frame over the size limit: dropping it would silently corrupt its stream, so end that stream. */
  #oversizeData(message: Uint8Array, error: MuxProtocolError): void {
    if (
      error.code !== 'MUX_ERR_FRAME_TOO_LARGE' ||
      message[0] !== this.framing.dataFrameType ||
      message.length < DATA_HEADER_LENGTH
    ) {
      return;
    }
    const stream = this.#streams.get(streamIdFromBytes(message, 1));
    if (stream === undefined) return;
    this.#disconnect(stream, 'protocol_error');
    stream.fail(error);
  }

  // ───────────────────────────── sending ─────────────────────────────

  #disconnect(stream: MuxStream, reason: string): void {
    if (stream.detached) return;
    this.#forget(stream);
    this.sendControl(this.framing.encodeClose(stream.id, reason));
  }

  #forget(stream: MuxStream): void {
    stream.detach();
    this.#ready.delete(stream);
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    this.#unanswered.delete(stream);
    this.#streamsClosed++;
    this.#recentlyClosed.add(stream.id);
  }

  /**
   * Serves the ready queue round-robin, one DATA frame per turn, while the transport is below its
   * high-water mark; a stream that can send more goes to the back. When the transport is full, DATA
   * waits for `transportDrained()` (never dropped) and Node's backpressure holds the writers.
   * Re-entrant calls (a write callback that writes again) only enqueue.
   */
  #pump(): void {
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    try {
      const transport = this.#transport;
      const ready = this.#ready;
      while (ready.size > 0 && !this.#closed) {
        if (transport.bufferedAmount > this.#highWaterMark) break;
        // A short message's turn comes within two (the prompt lane, see TurnQueue).
        const stream = ready.next();
        // With many streams waiting, a turn carries less than the agreed frame size, so that a round over
        // them stays short (1 000 streams × 128 KiB: a 128 MB round): see LONG_ROUND_BYTES.
        const turn = turnPayload(ready.size + 1, this.#payload.sendDataPayload);
        if (stream.sendFrames(1, turn) && !stream.detached && !this.#closed) ready.requeue(stream);
        // The queues remember what they served (see ReadyQueue); a stream already forgotten must not stay.
        else if (stream.detached) ready.delete(stream);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #createHost(): StreamHost {
    const transport = this.#transport;
    return {
      schedule: (stream) => {
        if (this.#closed) return;
        this.#ready.schedule(stream);
        this.#pump();
      },
      sendData: (frame, payloadLength) => {
        if (this.#closed) return;
        this.#dataFramesSent++;
        this.#bytesSent += payloadLength;
        transport.send(frame);
      },
      sendDataParts:
        transport.sendData === undefined
          ? undefined
          : (header, payload, payloadLength, onWritten) => {
              if (this.#closed) {
                process.nextTick(onWritten);
                return;
              }
              this.#dataFramesSent++;
              this.#bytesSent += payloadLength;
              transport.sendData!(header, payload, payloadLength, onWritten);
            },
      sendGrant: (stream, credits) => this.sendControl(this.framing.encodeGrant(stream.id, credits)),
      sendPing: (stream) => {
        const ping = this.framing.encodePing(stream.id);
        if (ping !== undefined) this.sendControl(ping);
      },
      disconnect: (stream, reason) => this.#disconnect(stream, reason),
      forget: (stream) => this.#forget(stream),
      pauseTransport: (stream) => {
        if (this.#pausing.has(stream)) return;
        this.#pausing.add(stream);
        if (this.#pausing.size === 1) {
          this.#logger?.debug(
            { streamId: stream.id },
            'pausing the transport for a stream whose peer is not metered',
          );
          this.#updateReading();
        }
      },
      resumeTransport: (stream) => {
        if (!this.#pausing.delete(stream)) return;
        if (this.#pausing.size === 0) this.#updateReading();
      },
      countPastWindow: (_stream, frames) => {
        this.#pastWindow += frames;
        return frames <= 0 || this.#pastWindow <= this.#payload.unmeteredAllowance;
      },
      streamProtocolError: (stream, error) => {
        this.#disconnect(stream, 'protocol_error');
        this.protocolError(error);
        stream.fail(error);
      },
    };
  }
}
