/**
 * The contract between a {@link MuxStream} and the engine that hosts it (a `StreamEngine`, under a
 * backend `MuxSession` or a peer `TunnelSession`). Like the `sendFrame` a yamux stream receives in its
 * init, the host is passed to the stream when it is created, and is the stream's only way to reach the
 * wire: the stream holds no reference to any session.
 *
 * The host drives the stream through the methods documented "host side" on `MuxStream` (`sendFrames`,
 * `grant`, `setPeerPaused`, `receiveData`, `remoteClosed`, `fail`, `detach`); everything else on a
 * stream is the ordinary `Duplex` its owner uses.
 */
import type { WindowGrowth } from './window-tuning.js';
import type { ConnectMessage } from './control.js';
import type { MuxProtocolError } from './errors.js';
import type { ReceiveBudget } from './receive-budget.js';
import type { MuxStream } from './stream.js';

/** What a stream needs from its host. Implemented by `StreamEngine`; tests may implement it directly. */
export interface StreamHost {
  /** The stream has DATA ready (or got credits): give it a turn at the transport (`sendFrames`). */
  schedule(stream: MuxStream): void;
  /** Sends one DATA frame (header and payload in one buffer) now; `payloadLength` is for the counters. */
  sendData(frame: Uint8Array, payloadLength: number): void;
  /**
   * Optional: sends one DATA frame as its header (the stream's own, constant: never modified) and the
   * payload's parts, without joining them (see `MuxTransport.sendData`). `onWritten` runs once, never
   * synchronously, when the host no longer holds the parts. Absent: the stream uses `sendData`.
   */
  sendDataParts?(
    header: Uint8Array,
    payload: Uint8Array[],
    payloadLength: number,
    onWritten: () => void,
  ): void;
  /** Sends a credit grant of `credits` frames for the stream, in the host's framing. */
  sendGrant(stream: MuxStream, credits: number): void;
  /** Sends a liveness ping for the stream, if the framing has one (backend sessions: `ping_client`). */
  sendPing(stream: MuxStream): void;
  /** Sends the close of the stream (unless the session is closed) and forgets its id. */
  disconnect(stream: MuxStream, reason: string): void;
  /** Forgets the stream's id without sending anything (a close already crossed the wire). */
  forget(stream: MuxStream): void;
  /**
   * The stream's readable buffer is full and its peer is not bounded by credits: stop reading the
   * transport until {@link resumeTransport}. Idempotent per stream.
   */
  pauseTransport(stream: MuxStream): void;
  /** The stream no longer needs the transport paused. Idempotent; a no-op for a stream that never paused it. */
  resumeTransport(stream: MuxStream): void;
  /**
   * A `lenient` stream received `frames` more frames past its window (negative: granted back, or the
   * stream ended). Returns false when the host's budget across all its streams is exceeded: the stream
   * then closes itself as an over-send.
   */
  countPastWindow(stream: MuxStream, frames: number): boolean;
  /** The peer broke the protocol on this stream only (e.g. a credit overrun): close it and report. */
  streamProtocolError(stream: MuxStream, error: MuxProtocolError): void;
}

/**
 * How a stream meters what it sends (docs/protocol.md §1.5).
 * - `metered`: the peer granted `credits` up front (a backend receiving `connect.credits`).
 * - `unmetered`: the peer does not meter and later grants are ignored (a backend under a v1 hub whose
 *   `connect` carried no credits: starting to meter on a stray grant could stall the stream).
 * - `on-first-grant`: unmetered until the peer's first grant, which is a window counted from the stream's
 *   first frame (frames already sent are spent out of it); `unmeteredLimit` bounds the frames sent before
 *   it (hub and tunnels, once the peer is known to grant). Without a limit, sending is unbounded until then.
 */
export type SendMetering =
  | { readonly mode: 'metered'; readonly credits: number }
  | { readonly mode: 'unmetered' }
  | { readonly mode: 'on-first-grant'; readonly unmeteredLimit?: number };

/**
 * How a stream accounts for the DATA frames its peer sends (docs/protocol.md §1.5).
 * - `unmetered`: the peer does not meter; backpressure pauses the whole transport, no grants are sent.
 * - `probing` (hub): the connect offered credits but the backend has not granted yet, so it may be a v1
 *   backend that ignores them. Frames are counted and grants accumulated but not sent; the first grant
 *   from the backend proves it meters (→ `strict`), more frames than the window prove it does not
 *   (→ `unmetered`).
 * - `strict`: the peer meters from the stream's start, so the count is exact and a frame beyond the
 *   window is an overrun (`MUX_ERR_CREDIT_OVERRUN`, the stream is closed).
 * - `lenient`: the peer meters only once our first grant reaches it and may send unmetered until then,
 *   so the count can legitimately go negative by the frames of that round trip, up to
 *   `overrunAllowance`. Those frames are never an error and do not pause the transport (one stalled
 *   stream must not block the others). Past the allowance, `onOverrun` decides: `close` (an over-send:
 *   `MUX_ERR_CREDIT_OVERRUN`) or `pause-transport` (the peer may not meter at all, as a v1 peer).
 */
export type ReceiveMetering =
  | { readonly mode: 'unmetered' }
  | { readonly mode: 'probing' }
  | { readonly mode: 'strict' }
  | {
      readonly mode: 'lenient';
      readonly overrunAllowance: number;
      readonly onOverrun: 'close' | 'pause-transport';
    };

/**
 * What a local `end()` of the writable side sends (docs/protocol.md §1.4, §1.7). The v1 wire has no
 * half-close: a close ends both directions.
 * - `close`: the local side is done (a backend's local service closed, so its response is complete):
 *   send the close after the last DATA.
 * - `keep-open`: the end user half-closed after its request; closing now would drop the response, so
 *   nothing is sent and the stream stays open to receive until the peer closes, or until the owner calls
 *   `disconnect()` (end user fully closed) or `destroy()` (error).
 */
export type LocalEndBehaviour = 'close' | 'keep-open';

/** Everything a host passes to a new stream. */
export interface MuxStreamInit {
  /** Stream id (lowercase UUID string, the wire `client_id`). */
  id: string;
  /** The `connect` (or, for tunnels, the `tunnel_request` fields) that opened the stream. */
  connect: ConnectMessage;
  host: StreamHost;
  /** First byte of the DATA frames this stream sends (`0x01` backend sessions, `0x11` tunnels). */
  dataFrameType: number;
  sendMetering: SendMetering;
  receiveMetering: ReceiveMetering;
  localEnd: LocalEndBehaviour;
  /** Receive window granted to the peer when the stream opened, in frames. */
  receiveWindow: number;
  /** Grants are sent in batches of this many delivered frames (at most `receiveWindow`). */
  grantBatch: number;
  /** Readable and writable high-water mark of the Duplex, in bytes. */
  highWaterMark: number;
  /** Largest DATA payload the stream sends (what the peer accepts), bytes. Default: `32_768` (§1.11). */
  maxDataPayload?: number;
  /** Units of `receiveBudget` one received frame takes (32 768 bytes each). Default: `1`. */
  budgetUnits?: number;
  /**
   * A datagram stream (`transport: "udp"`, docs/protocol.md §1.5): each write is one DATA frame, never
   * split or joined with another, and each frame received is delivered (or dropped when the reader is full)
   * on arrival, so it never pauses the transport. Default: `false`.
   */
  datagram?: boolean;
  /**
   * Lets the receive window grow with the path's bandwidth-delay product (docs/protocol.md §1.5, "Windows
   * that grow"): between two Nexus ends only. Absent: the window stays `receiveWindow`.
   */
  windowGrowth?: WindowGrowth;
  /**
   * The node-wide budget the stream's grants come out of (a hub's backend sessions). Absent: the
   * window alone bounds what the peer may send. Ignored by an `unmetered` receive side.
   */
  receiveBudget?: ReceiveBudget;
}
