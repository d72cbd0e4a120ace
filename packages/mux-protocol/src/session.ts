import { EventEmitter } from 'node:events';
import type { ConnectMessage, ControlMessage } from './control.js';
import { decodeBackendMessage } from './decode.js';
import { encodeControlMessage } from './encode.js';
import { MuxProtocolError } from './errors.js';
import { DEFAULT_GRANT_BATCH, DEFAULT_INITIAL_WINDOW, MAX_CREDITS } from './flow-window.js';
import { DATA_HEADER_LENGTH, FrameType, MAX_BACKEND_MESSAGE } from './frame.js';
import { MuxStream, ReceiveMode, type StreamHost } from './stream.js';
import { newStreamId, streamIdFromBytes } from './stream-id.js';

/** Most streams one session carries at once. */
export const DEFAULT_MAX_STREAMS = 10_000;
/** Transport bytes queued (`bufferedAmount`) above which DATA waits for `transportDrained()`: 1 MiB. */
export const DEFAULT_TRANSPORT_HIGH_WATER_MARK = 1024 * 1024;
/** Readable and writable high-water mark of each `MuxStream`, in bytes: 64 KiB. */
export const DEFAULT_STREAM_HIGH_WATER_MARK = 64 * 1024;
/**
 * Backend role: DATA frames past the window a metered hub may send (unmetered, before our first grant
 * reached it) before the stream falls back to pausing the transport: 1024 frames (32 MiB).
 */
export const DEFAULT_UNMETERED_ALLOWANCE = 1024;
/** Most `disconnect` answers to DATA for unknown stream ids per second (flood protection). */
export const DEFAULT_MAX_UNKNOWN_STREAM_REPLIES = 100;

/** Ids of closed streams remembered so that their late frames are dropped silently. */
const RECENTLY_CLOSED_CAPACITY = 4096;
/** After the first, warnings about ignored messages are logged at most once per this many ms (with a count). */
const IGNORED_WARNING_INTERVAL_MS = 10_000;

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
   * copy and an allocation per frame. The transport must not modify them, and must call `onWritten`
   * exactly once, never synchronously, when it no longer holds them (written to the socket, or dropped
   * because the transport is closed): the parts are views of the writer's buffers, which the writer may
   * reuse once its write completes. Without it, DATA goes through `send()` as one buffer.
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

/** Options of {@link MuxSession}. */
export interface MuxSessionOptions {
  /** `hub` opens streams (sends `connect`); `backend` accepts them (docs/protocol.md §1.4). */
  role: 'hub' | 'backend';
  /** The transport messages are sent on; incoming messages are fed with `receive()`. */
  transport: MuxTransport;
  /** Receive window this side grants per stream, in DATA frames. Default: `64`. */
  initialWindow?: number;
  /** Grant batch, in frames; at most `initialWindow`. Default: `8`. */
  grantBatch?: number;
  /** Most concurrent streams. Hub: `openStream` throws past it; backend: answers `disconnect`. Default: `10_000`. */
  maxStreams?: number;
  /** Transport `bufferedAmount`, in bytes, above which DATA waits for `transportDrained()`. Default: 1 MiB. */
  highWaterMark?: number;
  /** Readable/writable high-water mark of each stream, in bytes. Default: 64 KiB. */
  streamHighWaterMark?: number;
  /** Largest accepted message, in bytes. Default: `32_785` (docs/protocol.md §1.3). */
  maxMessageSize?: number;
  /**
   * Backend role: frames past our window that a metered hub may send before it has seen our first
   * grant (one round trip of unmetered DATA, docs/protocol.md §1.5); beyond it the stream pauses the
   * transport like a v1 stream. Default: `1024`.
   */
  unmeteredAllowance?: number;
  /** Most `disconnect` answers to DATA for unknown stream ids per second. Default: `100`. */
  maxUnknownStreamReplies?: number;
  /** Logger. Default: none. */
  logger?: MuxLogger;
  /** Stop reading the transport (e.g. `ws.pause()`): a legacy stream's reader is not keeping up. */
  pauseTransport?(): void;
  /** Resume reading the transport (e.g. `ws.resume()`). */
  resumeTransport?(): void;
  /** Clock for rate limits, in ms. Default: `Date.now`. */
  now?(): number;
}

/** What `openStream` needs to build the `connect` message (docs/protocol.md §1.4). */
export interface OpenStreamInit {
  /** The node's relay port the end user connected to. */
  connPort: number;
  /** End user's address, `ip:port` (`[v6]:port`). */
  clientIp: string;
  /** Normalised hostname the stream is for. */
  hostname: string;
  /** True when the stream began with a TLS ClientHello. */
  isTls: boolean;
  /** Default: `'tcp'` (sent as absent). */
  transport?: 'tcp' | 'udp';
}

/** Snapshot of a session's counters. */
export interface MuxSessionStats {
  role: 'hub' | 'backend';
  /** Streams open now. */
  streams: number;
  /** Hub role: open streams the backend has not sent anything for yet (see `MuxSession.pendingConnects`). */
  pendingConnects: number;
  /** Streams ever opened (hub) or accepted (backend). */
  streamsOpened: number;
  /** Streams whose id has been released. */
  streamsClosed: number;
  /** DATA frames and payload bytes sent / received. */
  dataFramesSent: number;
  dataFramesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Control messages sent / received. */
  controlMessagesSent: number;
  controlMessagesReceived: number;
  /** Protocol errors seen (malformed messages, overruns). */
  protocolErrors: number;
  /** DATA frames for stream ids this session does not know (dropped). */
  unknownStreamFrames: number;
  /** Streams waiting for their turn at the transport. */
  queuedStreams: number;
  /** Whether reading the transport is paused for a legacy stream. */
  transportPaused: boolean;
  closed: boolean;
}

/** Events of {@link MuxSession}. */
export interface MuxSessionEvents {
  /** Backend role: a new stream from a `connect`. Set up the local side and pipe. */
  stream: [stream: MuxStream, connect: ConnectMessage];
  /**
   * A message broke the protocol. Session-level codes (`MUX_ERR_FRAME_TOO_LARGE`,
   * `MUX_ERR_MALFORMED_FRAME`, `MUX_ERR_INVALID_CONTROL`, …) leave the session running: the owner decides
   * whether to close it (the reference hub does for oversize messages). `MUX_ERR_CREDIT_OVERRUN` concerns
   * one stream, which has already been disconnected.
   */
  'protocol-error': [error: MuxProtocolError];
  /** The session closed; every stream has ended. */
  close: [reason: string];
}

/** A Buffer view of `bytes` (no copy), so pushed chunks are Buffers. */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}

/**
 * The multiplexing engine of one backend session (docs/protocol.md §1), run by the hub (role `hub`) and by
 * the backend client (role `backend`) over one WebSocket. It owns the stream table, the credit flow
 * control (§1.5), the fair scheduling of DATA onto the transport, and the close semantics (§1.7).
 *
 * The owner feeds every binary message to `receive()`, calls `transportDrained()` when the transport's
 * socket drains, and `close()` when the transport closes. `receive()` keeps views into `message` (no
 * copy): the caller must not reuse that memory (ws never does).
 */
export class MuxSession extends EventEmitter<MuxSessionEvents> {
  readonly role: 'hub' | 'backend';
  readonly #transport: MuxTransport;
  readonly #initialWindow: number;
  readonly #grantBatch: number;
  readonly #maxStreams: number;
  readonly #highWaterMark: number;
  readonly #streamHighWaterMark: number;
  readonly #maxMessageSize: number;
  readonly #maxUnknownReplies: number;
  readonly #unmeteredAllowance: number;
  /** Hub role: the window the backend granted on its first stream, once it has granted at all. */
  #peerWindow: number | undefined;
  readonly #logger: MuxLogger | undefined;
  readonly #pauseTransport: (() => void) | undefined;
  readonly #resumeTransport: (() => void) | undefined;
  readonly #now: () => number;
  readonly #host: StreamHost;

  readonly #streams = new Map<string, MuxStream>();
  /** Insertion-ordered, bounded: ids whose late frames are dropped without an answer. */
  readonly #recentlyClosed = new Map<string, true>();
  #closed = false;
  #closeReason: string | undefined;

  // Ready queue: streams with DATA waiting for a turn, served round-robin one frame per turn.
  #readyHead: MuxStream | null = null;
  #readyTail: MuxStream | null = null;
  #readyCount = 0;
  #pumping = false;

  #pausingStreams = 0;
  #unknownWindowStart = 0;
  #unknownReplies = 0;
  /** Hub role: streams in `#streams` whose `answered` is false. */
  #pendingConnects = 0;
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

  constructor(options: MuxSessionOptions) {
    super();
    if (options.role !== 'hub' && options.role !== 'backend')
      throw new TypeError('role must be hub or backend');
    this.role = options.role;
    this.#transport = options.transport;
    this.#initialWindow = positiveInteger('initialWindow', options.initialWindow, DEFAULT_INITIAL_WINDOW);
    if (this.#initialWindow > MAX_CREDITS) throw new RangeError('initialWindow must be ≤ 2^20');
    this.#grantBatch = positiveInteger('grantBatch', options.grantBatch, DEFAULT_GRANT_BATCH);
    // A batch larger than the window would never be reached: the peer would stall (a lost grant).
    if (this.#grantBatch > this.#initialWindow) throw new RangeError('grantBatch must be ≤ initialWindow');
    this.#maxStreams = positiveInteger('maxStreams', options.maxStreams, DEFAULT_MAX_STREAMS);
    this.#highWaterMark = options.highWaterMark ?? DEFAULT_TRANSPORT_HIGH_WATER_MARK;
    if (!(this.#highWaterMark >= 0)) throw new RangeError('highWaterMark must be ≥ 0');
    this.#streamHighWaterMark = positiveInteger(
      'streamHighWaterMark',
      options.streamHighWaterMark,
      DEFAULT_STREAM_HIGH_WATER_MARK,
    );
    this.#maxMessageSize = positiveInteger('maxMessageSize', options.maxMessageSize, MAX_BACKEND_MESSAGE);
    this.#maxUnknownReplies = options.maxUnknownStreamReplies ?? DEFAULT_MAX_UNKNOWN_STREAM_REPLIES;
    this.#unmeteredAllowance = options.unmeteredAllowance ?? DEFAULT_UNMETERED_ALLOWANCE;
    if (!(this.#unmeteredAllowance >= 0)) throw new RangeError('unmeteredAllowance must be ≥ 0');
    const logger = options.logger;
    this.#logger = logger?.child ? logger.child({ component: 'mux-session', role: this.role }) : logger;
    this.#pauseTransport = options.pauseTransport;
    this.#resumeTransport = options.resumeTransport;
    this.#now = options.now ?? Date.now;
    this.#host = this.#createHost();
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.#streams.size;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Hub role: open streams whose backend has not sent anything for them yet — no DATA, grant, pause,
   * ping, pong or disconnect since their `connect` (each stream's `answered` flag). A backend that
   * accepts connects but never answers them makes this grow; the owner may stop opening streams on it.
   */
  get pendingConnects(): number {
    return this.#pendingConnects;
  }

  /** The open stream with id `id`, if any. */
  getStream(id: string): MuxStream | undefined {
    return this.#streams.get(id);
  }

  /**
   * Hub role: opens a stream and sends its `connect`, granting this side's receive window up front
   * (`credits: initialWindow`, docs/protocol.md §1.5). Write the prelude as the stream's first write.
   * Throws `MuxProtocolError` `MUX_ERR_CLOSED` after `close()` and `MUX_ERR_TOO_MANY_STREAMS` when
   * `maxStreams` streams are open.
   */
  openStream(init: OpenStreamInit): MuxStream {
    if (this.role !== 'hub') throw new TypeError('openStream is for the hub role');
    if (this.#closed) throw new MuxProtocolError('MUX_ERR_CLOSED', 'the session is closed');
    if (this.#streams.size >= this.#maxStreams) {
      throw new MuxProtocolError(
        'MUX_ERR_TOO_MANY_STREAMS',
        `session already carries ${this.#maxStreams} streams`,
      );
    }
    const connect: ConnectMessage = {
      event: 'connect',
      client_id: newStreamId(),
      conn_port: init.connPort,
      client_ip: init.clientIp,
      hostname: init.hostname,
      is_tls: init.isTls,
      credits: this.#initialWindow,
    };
    if (init.transport !== undefined && init.transport !== 'tcp') connect.transport = init.transport;
    const message = encodeControlMessage(connect);
    const stream = new MuxStream({
      id: connect.client_id,
      connect,
      role: 'hub',
      host: this.#host,
      // The hub sends unmetered until the backend's first grant: a v1 backend never grants (§1.5).
      // Once this backend has granted on an earlier stream it is known to grant on every stream, so
      // the wait for this stream's grant is bounded by the window it granted before.
      sendCredits: undefined,
      assumedWindow: this.#peerWindow,
      unmeteredAllowance: this.#unmeteredAllowance,
      receiveMode: ReceiveMode.Probing,
      receiveCredits: this.#initialWindow,
      grantBatch: this.#grantBatch,
      highWaterMark: this.#streamHighWaterMark,
    });
    this.#streams.set(stream.id, stream);
    this.#streamsOpened++;
    this.#pendingConnects++;
    this.#sendControl(message);
    return stream;
  }

  /** Feeds one binary message from the transport. Never throws on hostile input. */
  receive(message: Uint8Array): void {
    if (this.#closed) return;
    const length = message.length;
    if (length === 0) return; // §1.3: an empty message is ignored
    if (message[0] === FrameType.Data && length >= DATA_HEADER_LENGTH && length <= this.#maxMessageSize) {
      // Hot path: no result objects, no JSON.
      const buffer = toBuffer(message);
      this.#receiveData(streamIdFromBytes(buffer, 1), buffer.subarray(DATA_HEADER_LENGTH));
    } else {
      this.#receiveOther(message);
    }
    // Safety net: if DATA waits although the transport has room (a missed drain), serve it now.
    if (this.#readyHead !== null && !this.#pumping) this.#pump();
  }

  /** Call when the transport's buffer has drained (the WebSocket's socket emitted `'drain'`). */
  transportDrained(): void {
    this.#pump();
  }

  /**
   * Closes the session: every stream delivers what it already received, then ends with `reason` as its
   * `closeReason`; DATA not yet sent is discarded, never carried over (a new transport needs a new
   * session). Sends nothing. Idempotent.
   */
  close(reason = 'session_ended'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#pendingConnects = 0;
    this.#streamsClosed += streams.length;
    for (const stream of streams) stream.remoteClosed(reason);
    let s = this.#readyHead;
    while (s !== null) {
      const next = s.nextReady;
      s.nextReady = null;
      s.queued = false;
      s = next;
    }
    this.#readyHead = this.#readyTail = null;
    this.#readyCount = 0;
    this.#recentlyClosed.clear();
    this.emit('close', reason);
  }

  /** Why the session closed, once it has. */
  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  /** A snapshot of the session's counters. */
  stats(): MuxSessionStats {
    return {
      role: this.role,
      streams: this.#streams.size,
      pendingConnects: this.#pendingConnects,
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
      queuedStreams: this.#readyCount,
      transportPaused: this.#pausingStreams > 0,
      closed: this.#closed,
    };
  }

  // ───────────────────────────── receiving ─────────────────────────────

  #receiveData(id: string, payload: Buffer): void {
    this.#dataFramesReceived++;
    this.#bytesReceived += payload.length;
    const stream = this.#streams.get(id);
    if (stream !== undefined) {
      if (!stream.answered) this.#answered(stream);
      stream.receiveData(payload);
      return;
    }
    this.#unknownStreamFrames++;
    // §1.4: drop it and answer `disconnect` so the far side frees its state. At most one answer per
    // id (remembered below) and a per-second budget, so a flood of random ids cannot amplify.
    if (payload.length === 0 || this.#recentlyClosed.has(id)) return;
    this.#rememberClosed(id);
    const now = this.#now();
    if (now - this.#unknownWindowStart >= 1000) {
      this.#unknownWindowStart = now;
      this.#unknownReplies = 0;
    }
    if (this.#unknownReplies >= this.#maxUnknownReplies) return;
    this.#unknownReplies++;
    this.#logger?.debug({ streamId: id }, 'DATA for an unknown stream: answering disconnect');
    this.#sendControl(encodeControlMessage({ event: 'disconnect', client_id: id, reason: 'unknown' }));
  }

  #receiveOther(message: Uint8Array): void {
    const result = decodeBackendMessage(message, { maxMessageSize: this.#maxMessageSize });
    if (!result.ok) {
      const error = result.error;
      if (
        error.code === 'MUX_ERR_FRAME_TOO_LARGE' &&
        message[0] === FrameType.Data &&
        message.length >= DATA_HEADER_LENGTH
      ) {
        // Dropping the frame would silently corrupt its stream: end that stream instead.
        const stream = this.#streams.get(streamIdFromBytes(message, 1));
        if (stream !== undefined) {
          this.#disconnect(stream, 'protocol_error');
          stream.fail(error);
        }
      }
      this.#protocolError(error);
      return;
    }
    const value = result.value;
    switch (value.type) {
      case 'control':
        this.#controlReceived++;
        this.#receiveControl(value.message);
        return;
      case 'data': // DATA normally takes the fast path in receive(); kept so no valid frame is lost
        this.#receiveData(value.streamId, toBuffer(value.payload));
        return;
      case 'unknown-control':
        this.#controlReceived++;
        this.#warnIgnored({ event: value.message.event }, 'ignoring unknown control event');
        return;
      case 'unknown':
        this.#warnIgnored({ frameType: value.frameType }, 'ignoring message with unknown frame type');
        return;
      default:
        return;
    }
  }

  #receiveControl(message: ControlMessage): void {
    const id = message.client_id;
    if (this.role === 'hub') {
      // Any message for a stream answers its connect (`pendingConnects`).
      const known = this.#streams.get(id);
      if (known !== undefined && !known.answered) this.#answered(known);
    }
    switch (message.event) {
      case 'connect':
        this.#receiveConnect(message);
        return;
      case 'disconnect': {
        const stream = this.#streams.get(id);
        // Double disconnect, or one for an id we never had: nothing to do.
        if (stream === undefined) return;
        this.#forget(stream);
        stream.remoteClosed(message.reason ?? 'normal');
        return;
      }
      case 'resume_stream': {
        const stream = this.#streams.get(id);
        if (stream === undefined) return;
        if (message.credits !== undefined && message.credits > 0) {
          if (this.role === 'hub' && !stream.sendMetered) this.#peerWindow ??= message.credits;
          stream.grant(message.credits);
        } else {
          stream.setPeerPaused(false);
        }
        return;
      }
      case 'pause_stream':
        this.#streams.get(id)?.setPeerPaused(true);
        return;
      case 'ping_client':
        // Answered only while this side knows the stream (§1.4).
        if (this.#streams.has(id))
          this.#sendControl(encodeControlMessage({ event: 'pong_client', client_id: id }));
        return;
      case 'pong_client':
        this.#streams.get(id)?.emit('pong');
        return;
      default:
        return;
    }
  }

  #receiveConnect(connect: ConnectMessage): void {
    const id = connect.client_id;
    if (this.role !== 'backend') {
      this.#warnIgnored({ streamId: id }, 'ignoring connect sent to a hub');
      return;
    }
    if (this.#streams.has(id)) {
      this.#protocolError(
        new MuxProtocolError('MUX_ERR_INVALID_CONTROL', `duplicate connect for stream ${id}`),
      );
      return;
    }
    this.#recentlyClosed.delete(id);
    if (this.#streams.size >= this.#maxStreams || this.listenerCount('stream') === 0) {
      const reason = this.#streams.size >= this.#maxStreams ? 'too_many_streams' : 'local_error';
      this.#logger?.warn({ streamId: id, reason }, 'refusing stream');
      this.#rememberClosed(id);
      this.#sendControl(encodeControlMessage({ event: 'disconnect', client_id: id, reason }));
      return;
    }
    // §1.5: a connect carrying credits says the hub meters; only then do we meter and grant.
    const credits = connect.credits ?? 0;
    const metered = credits > 0;
    const stream = new MuxStream({
      id,
      connect,
      role: 'backend',
      host: this.#host,
      sendCredits: metered ? credits : undefined,
      assumedWindow: undefined,
      unmeteredAllowance: this.#unmeteredAllowance,
      receiveMode: metered ? ReceiveMode.Lenient : ReceiveMode.Legacy,
      receiveCredits: this.#initialWindow,
      grantBatch: this.#grantBatch,
      highWaterMark: this.#streamHighWaterMark,
    });
    this.#streams.set(id, stream);
    this.#streamsOpened++;
    if (metered) {
      // Our window, before any DATA of ours (same ordered lane), so the hub can meter from here on.
      this.#sendControl(
        encodeControlMessage({ event: 'resume_stream', client_id: id, credits: this.#initialWindow }),
      );
    }
    this.emit('stream', stream, connect);
  }

  /** Hub role: the backend has sent something for `stream`; it no longer counts as a pending connect. */
  #answered(stream: MuxStream): void {
    stream.answered = true;
    this.#pendingConnects--;
  }

  /**
   * Warns about an ignored message: the first of its kind (`msg`) in the session, then at most one per
   * 10 s with the number ignored since (`suppressed`), so a peer sending junk cannot flood the log.
   */
  #warnIgnored(fields: Record<string, unknown>, msg: string): void {
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

  #protocolError(error: MuxProtocolError): void {
    this.#protocolErrors++;
    this.#logger?.debug({ code: error.code, err: error.message }, 'protocol error');
    this.emit('protocol-error', error);
  }

  // ───────────────────────────── sending ─────────────────────────────

  #sendControl(message: Uint8Array): void {
    if (this.#closed) return;
    this.#controlSent++;
    this.#transport.send(message);
  }

  #disconnect(stream: MuxStream, reason: string): void {
    if (stream.detached) return;
    stream.detached = true;
    this.#forget(stream);
    this.#sendControl(encodeControlMessage({ event: 'disconnect', client_id: stream.id, reason }));
  }

  #forget(stream: MuxStream): void {
    stream.detached = true;
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    if (!stream.answered) this.#answered(stream);
    this.#streamsClosed++;
    this.#rememberClosed(stream.id);
  }

  #rememberClosed(id: string): void {
    const closed = this.#recentlyClosed;
    if (closed.size >= RECENTLY_CLOSED_CAPACITY) {
      const oldest = closed.keys().next();
      if (!oldest.done) closed.delete(oldest.value);
    }
    closed.set(id, true);
  }

  #schedule(stream: MuxStream): void {
    if (this.#closed) return;
    if (!stream.queued) this.#enqueue(stream);
    this.#pump();
  }

  #enqueue(stream: MuxStream): void {
    stream.queued = true;
    stream.nextReady = null;
    if (this.#readyTail === null) this.#readyHead = stream;
    else this.#readyTail.nextReady = stream;
    this.#readyTail = stream;
    this.#readyCount++;
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
      const highWaterMark = this.#highWaterMark;
      let stream = this.#readyHead;
      while (stream !== null && !this.#closed) {
        if (transport.bufferedAmount > highWaterMark) break;
        this.#readyHead = stream.nextReady;
        if (this.#readyHead === null) this.#readyTail = null;
        stream.nextReady = null;
        stream.queued = false;
        this.#readyCount--;
        if (stream.sendFrames(1) && !stream.queued && !this.#closed) this.#enqueue(stream);
        stream = this.#readyHead;
      }
    } finally {
      this.#pumping = false;
    }
  }

  #createHost(): StreamHost {
    return {
      schedule: (stream) => this.#schedule(stream),
      sendData: (frame, payloadLength) => {
        if (this.#closed) return;
        this.#dataFramesSent++;
        this.#bytesSent += payloadLength;
        this.#transport.send(frame);
      },
      sendDataParts:
        this.#transport.sendData === undefined
          ? undefined
          : (header, payload, payloadLength, onWritten) => {
              if (this.#closed) {
                process.nextTick(onWritten);
                return;
              }
              this.#dataFramesSent++;
              this.#bytesSent += payloadLength;
              this.#transport.sendData!(header, payload, payloadLength, onWritten);
            },
      sendControl: (message) => this.#sendControl(message),
      disconnect: (stream, reason) => this.#disconnect(stream, reason),
      forget: (stream) => this.#forget(stream),
      pauseTransport: (stream) => {
        if (stream.pausingTransport) return;
        stream.pausingTransport = true;
        if (++this.#pausingStreams === 1) {
          this.#logger?.debug({ streamId: stream.id }, 'pausing the transport for a legacy stream');
          this.#pauseTransport?.();
        }
      },
      resumeTransport: (stream) => {
        if (!stream.pausingTransport) return;
        stream.pausingTransport = false;
        if (--this.#pausingStreams === 0) this.#resumeTransport?.();
      },
      streamProtocolError: (stream, error) => {
        this.#disconnect(stream, 'protocol_error');
        this.#protocolError(error);
        stream.fail(error);
      },
    };
  }
}
