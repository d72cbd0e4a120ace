/**
 * The stream engine's options, limits with their defaults, and counters (`StreamEngine`, engine.ts).
 */
import type { ConnectMessage, ControlMessage } from './control.js';
import { MAX_DATA_PAYLOAD } from './frame.js';
import type { MuxProtocolError } from './errors.js';
import type { StreamFraming } from './framing.js';
import type { ReceiveBudget } from './receive-budget.js';
import type { MuxStream } from './stream.js';
import type { LocalEndBehaviour, ReceiveMetering, SendMetering } from './stream-host.js';
import type { MuxLogger, MuxTransport } from './transport.js';

/** Most streams one session carries at once. */
export const DEFAULT_MAX_STREAMS = 10_000;
/** Transport bytes queued (`bufferedAmount`) above which DATA waits for `transportDrained()`: 1 MiB. */
export const DEFAULT_TRANSPORT_HIGH_WATER_MARK = 1024 * 1024;
/** Readable and writable high-water mark of each `MuxStream`, in bytes: 64 KiB. */
export const DEFAULT_STREAM_HIGH_WATER_MARK = 64 * 1024;
/**
 * Bytes a round of the ready queue may take (64 MiB): when the streams waiting would take more at the
 * agreed frame size, a turn carries less — this over the streams waiting, in whole TLS records of
 * {@link TURN_GRAIN} bytes, and never less than 32 768 bytes (docs/protocol.md §1.11). So with 128 KiB
 * frames agreed, up to 512 streams waiting take whole frames, 1 000 take turns of 64 KiB (a round of
 * 64 MB, not 128 MB: 0.4 s at 160 MB/s, ten turns per stream in a 4 s window), and 2 048 or more turns of
 * 32 KiB.
 */
export const LONG_ROUND_BYTES = 64 * 1024 * 1024;
/** A short turn is a whole number of these bytes (one full TLS record each). */
export const TURN_GRAIN = 16 * 1024;

/**
 * The payload of one turn at the transport while `waiting` streams are ready, with frames of `agreed`
 * bytes agreed: the agreed size while a round fits in {@link LONG_ROUND_BYTES}, else the round's share
 * of each stream in whole {@link TURN_GRAIN}s, at least 32 768 bytes.
 */
export function turnPayload(waiting: number, agreed: number): number {
  if (waiting * agreed <= LONG_ROUND_BYTES) return agreed;
  const share = Math.floor(LONG_ROUND_BYTES / waiting / TURN_GRAIN) * TURN_GRAIN;
  return Math.min(agreed, Math.max(MAX_DATA_PAYLOAD, share));
}
/** Most close answers to DATA for unknown stream ids per second (flood protection). */
export const DEFAULT_MAX_UNKNOWN_STREAM_REPLIES = 100;
/**
 * DATA frames past a stream's window that a peer known to meter may send before our first grant
 * reached it (one round trip of unmetered DATA, docs/protocol.md §1.5): 1024 frames (32 MiB).
 */
export const DEFAULT_UNMETERED_ALLOWANCE = 1024;
/** Most empty DATA frames a peer may send per second before the session is closed: 100. */
export const DEFAULT_MAX_EMPTY_DATA_FRAMES_PER_SECOND = 100;
/** Transport bytes queued (`bufferedAmount`) above which the engine stops reading from the peer: 4 MiB. */
export const DEFAULT_BACKLOG_LIMIT = 4 * 1024 * 1024;
/** How long the queue may stay above `backlogLimit` before the session is closed: 30 s. */
export const DEFAULT_BACKLOG_GRACE_MS = 30_000;

/**
 * The engine's limits and tuning, the same for every wire (`MuxSessionOptions` and
 * `TunnelSessionOptions` extend it).
 */
export interface StreamEngineTuning {
  /**
   * Largest DATA payload this side accepts, bytes, an integer from 32 768 to 1 MiB: more than 32 768 only
   * once the peer has learnt it (docs/protocol.md §1.11). It sets the defaults of `maxMessageSize`,
   * `initialWindow`, `grantBatch` and `unmeteredAllowance`, so that a window covers the same bytes
   * (`frameSizeTuning`). Default: `32_768`, the base protocol (docs/protocol.md §1.3).
   */
  maxDataPayload?: number;
  /**
   * Largest DATA payload this side sends, bytes: what the peer said it accepts (docs/protocol.md §1.11),
   * an integer from 32 768 to 1 MiB. It sets the default of `streamHighWaterMark`. Default: `32_768`.
   */
  sendDataPayload?: number;
  /**
   * Receive window granted per stream, in DATA frames. Default: 2 MiB in frames of `maxDataPayload`:
   * `64` with the base protocol's frames (docs/protocol.md §1.5).
   */
  initialWindow?: number;
  /**
   * Grants are returned in batches of this many delivered frames; at most `initialWindow`. Default:
   * 256 KiB in frames of `maxDataPayload`: `8` with the base protocol's frames.
   */
  grantBatch?: number;
  /** Transport `bufferedAmount`, in bytes, above which DATA waits for `transportDrained()`. Default: 1 MiB. */
  highWaterMark?: number;
  /**
   * Readable/writable high-water mark of each stream, in bytes. Default: 64 KiB, or two frames of
   * `sendDataPayload` when that is more (a frame in flight and the next gathering behind it).
   */
  streamHighWaterMark?: number;
  /**
   * Largest accepted message, in bytes. Default: `maxDataPayload` plus the 17-byte header: `32_785`
   * with the base protocol (docs/protocol.md §1.3).
   */
  maxMessageSize?: number;
  /** Most close answers to DATA for unknown stream ids per second. Default: `100`. */
  maxUnknownStreamReplies?: number;
  /**
   * Frames past a stream's window tolerated from a peer that meters only once our first grant reaches it
   * (a hub toward a backend; a peer node that has granted on the link); one more closes the stream
   * (`MUX_ERR_CREDIT_OVERRUN`). The same number bounds those frames across all streams of the session
   * (not yet granted back), so a peer cannot use the allowance of many streams at once. Default: 32 MiB
   * in frames of `maxDataPayload`: `1024` with the base protocol's frames.
   */
  unmeteredAllowance?: number;
  /**
   * Empty DATA frames accepted per second. They carry nothing, earn no grant and do not count against
   * any window; past this many in one second the session is closed (`empty-data-flood`). Default: `100`.
   */
  maxEmptyDataFramesPerSecond?: number;
  /**
   * Bytes queued on the transport (`bufferedAmount`) above which the engine stops reading from the peer
   * (it is not reading what we send, so nothing it sends may make us queue more). Default: 4 MiB.
   */
  backlogLimit?: number;
  /**
   * How long the queue may stay above `backlogLimit` before the session is closed (`peer-not-reading`),
   * in ms. Default: `30_000`.
   */
  backlogGraceMs?: number;
  /**
   * A budget shared by many sessions (a node's backend sessions): credits are granted only while it has
   * room, so DATA received and not yet delivered stays under it plus a small per-stream floor
   * (`ReceiveBudget`, docs/protocol.md §1.5); a stream may then start with less than `initialWindow`.
   * Default: none (each stream's window alone bounds it).
   */
  receiveBudget?: ReceiveBudget;
  /**
   * Receive windows that grow with the path's bandwidth-delay product (docs/protocol.md §1.5, "Windows that
   * grow"): a stream's window may double up to `maxWindowBytes` (default 16 MiB) while the windows of the
   * session's open streams add up to less than `poolBytes` (default 64 MiB). Only while the peer is a
   * Nexus end (it accepts frames larger than 32 768 bytes, §1.11) and `initialWindow` is not set. `false`:
   * windows stay `initialWindow`.
   */
  windowGrowth?: false | { maxWindowBytes?: number; poolBytes?: number };
  /** Logger (pino-compatible). Default: none. */
  logger?: MuxLogger;
  /** Clock for rate limits and round trips, in ms. Default: `Date.now`. */
  now?(): number;
}

/** Options of {@link StreamEngine}. */
export interface StreamEngineOptions extends StreamEngineTuning {
  /** The wire's framing: {@link backendFraming} or {@link tunnelFraming}. */
  framing: StreamFraming;
  /** The transport frames are sent on; incoming messages are fed with `receive()`. */
  transport: MuxTransport;
  /** Most concurrent streams (`full`). Default: `10_000`. */
  maxStreams?: number;
  /** Stop reading the transport (e.g. `ws.pause()`): a stream whose peer is not metered has a full reader. */
  pauseTransport?(): void;
  /** Resume reading the transport (e.g. `ws.resume()`). */
  resumeTransport?(): void;
  /** A framing-specific message (backend sessions: `connect`, `ping_client`, `pong_client`). */
  onMessage?(message: ControlMessage, stream: MuxStream | undefined): void;
  /** A message broke the protocol (the session keeps running; the owner decides). */
  onProtocolError?(error: MuxProtocolError): void;
  /**
   * The engine closed itself because the peer broke a limit: `reason` is `empty-data-flood` or
   * `peer-not-reading`. The owner closes the transport (e.g. WebSocket close 1008 with `reason`).
   */
  onAbort?(reason: EngineAbortReason, error: MuxProtocolError): void;
}

/** Why an engine closed itself. */
export type EngineAbortReason = 'empty-data-flood' | 'peer-not-reading';

/** How the engine creates one stream (`openStream`). */
export interface EngineStreamInit {
  id: string;
  /** The `connect` that opens it (tunnels: the `tunnel_request` fields in that shape). */
  connect: ConnectMessage;
  sendMetering: SendMetering;
  receiveMetering: ReceiveMetering;
  localEnd: LocalEndBehaviour;
  /** A datagram stream (see `MuxStreamInit.datagram`). Default: `false`. */
  datagram?: boolean;
  /**
   * This side opened the stream and waits for the peer's first frame about it (a hub's `connect`): it
   * counts in `pendingAnswers` until then.
   */
  awaitingAnswer: boolean;
}

/** Counters of one engine. */
export interface StreamEngineCounters {
  /** Streams ever opened (by either side). */
  streamsOpened: number;
  /** Streams whose id has been released. */
  streamsClosed: number;
  /** DATA frames and payload bytes sent / received. */
  dataFramesSent: number;
  dataFramesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Non-DATA messages sent / received. */
  controlMessagesSent: number;
  controlMessagesReceived: number;
  /** Protocol errors seen (malformed messages, overruns). */
  protocolErrors: number;
  /** DATA frames for stream ids this engine does not know (dropped). */
  unknownStreamFrames: number;
  /** Empty DATA frames received (ignored). */
  emptyDataFrames: number;
  /** Times reading the peer was paused because it did not read what we sent (`backlogLimit`). */
  backlogPauses: number;
  /** Streams waiting for their turn at the transport. */
  queuedStreams: number;
  /** Whether reading the transport is paused (a stream whose peer is not metered, or the backlog). */
  transportPaused: boolean;
  /** Most bytes the streams had added to their windows at once (docs/protocol.md §1.5, "Windows that grow"). */
  windowGrowthPeak: number;
}

/** `value`, or `fallback` when absent; throws `RangeError` unless a positive integer. */
export function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}

/** `value`, or `fallback` when absent; throws `RangeError` when negative or NaN. */
export function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(value >= 0)) throw new RangeError(`${name} must be ≥ 0`);
  return value;
}

/** Ids of closed streams remembered so that their late frames are dropped silently. */
export const RECENTLY_CLOSED_CAPACITY = 4096;
/** After the first, warnings about ignored messages are logged at most once per this many ms (with a count). */
export const IGNORED_WARNING_INTERVAL_MS = 10_000;
