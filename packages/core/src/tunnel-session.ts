/**
 * Tunnels multiplexed over one peer link (docs/protocol.md §2.2–§2.4).
 *
 * Every tunnel is a `MuxStream` from `@nexus-proxy/mux-protocol` — the same engine that carries backend
 * streams, with its credit accounting, backpressure, half-close handling and write coalescing — hosted by
 * this session instead of a `MuxSession`: DATA goes out as TUNNEL_DATA (`0x11`), grants as
 * TUNNEL_CREDITS (`0x15`), the end of a tunnel as TUNNEL_CLOSE (`0x12`). The session schedules tunnels
 * round-robin, one frame per turn, onto the link while the WebSocket is below its high-water mark, so a
 * tunnel whose end user is slow (out of credits) never holds back the others (docs/reliability.md item 19)
 * and no frame is ever dropped (docs/protocol.md §8.2).
 *
 * Credits are opt-in per side (§2.4): each side grants its receive window with a `0x15` as the tunnel
 * opens and meters its own sending only from the first `0x15` it receives. The frames a peer sent before
 * our first grant reached it are tolerated (the stream then falls back to pausing the link while its
 * reader is full, as for a v1 peer that never grants).
 */
import { EventEmitter } from 'node:events';
import {
  type ConnectMessage,
  DATA_HEADER_LENGTH,
  DEFAULT_GRANT_BATCH,
  DEFAULT_INITIAL_WINDOW,
  DEFAULT_STREAM_HIGH_WATER_MARK,
  DEFAULT_TRANSPORT_HIGH_WATER_MARK,
  decodeTunnelFrame,
  encodePeerMessage,
  encodeTunnelFrame,
  FrameType,
  MAX_BACKEND_MESSAGE,
  MAX_CREDITS,
  MuxProtocolError,
  MuxStream,
  newStreamId,
  streamIdFromBytes,
  type TunnelRequestMessage,
} from '@nexus-proxy/mux-protocol';
import { type Logger, noopLogger } from './logger.js';

/** Most tunnels one link carries at once; further requests are answered with `0x12`. */
export const DEFAULT_MAX_TUNNELS_PER_LINK = 10_000;
/** Most `0x12` answers to frames for unknown tunnel ids per second (flood protection). */
const MAX_UNKNOWN_TUNNEL_REPLIES = 100;
/** Ids of ended tunnels remembered so that their late frames are dropped without an answer. */
const RECENTLY_CLOSED_CAPACITY = 4096;
/** `MuxStream`'s receive mode "lenient" (the peer meters only after our first grant reached it). */
const RECEIVE_MODE_LENIENT = 3;

/** The link a {@link TunnelSession} sends on (a WebSocket, adapted). */
export interface TunnelTransport {
  /** Sends one binary message. The session never reuses `message` after the call. */
  sendBinary(message: Uint8Array): void;
  /**
   * Optional: sends one TUNNEL_DATA frame as its 17-byte header and the payload's parts, without joining
   * them first; calls `onWritten` once (never synchronously) when it no longer holds them. Same contract
   * as `MuxTransport.sendData` of `@nexus-proxy/mux-protocol`. Absent: `sendBinary` of one buffer.
   */
  sendData?(
    header: Uint8Array,
    payload: readonly Uint8Array[],
    payloadLength: number,
    onWritten: () => void,
  ): void;
  /** Sends one text message (`tunnel_request`). */
  sendText(text: string): void;
  /** Bytes queued but not yet written to the kernel (WebSocket `bufferedAmount`). */
  readonly bufferedAmount: number;
  /** Stop reading the link: a tunnel whose peer does not meter has a full reader. */
  pause(): void;
  /** Resume reading the link. */
  resume(): void;
}

/** What the origin knows about the end user of a tunnel (copied into `tunnel_request`, §2.2). */
export interface TunnelInit {
  /** The origin node's relay port the end user connected to. */
  connPort: number;
  /** End user's address, `ip:port` (`[v6]:port`). */
  clientIp: string;
  /** The normalised hostname (route) the tunnel is for. */
  hostname: string;
  /** True when the end user's stream began with a TLS ClientHello. */
  isTls: boolean;
}

/** Options of {@link TunnelSession}. */
export interface TunnelSessionOptions {
  transport: TunnelTransport;
  /** Receive window granted per tunnel, in frames. Default: `64` (docs/protocol.md §2.4, §1.5). */
  initialWindow?: number;
  /** Grants are returned in batches of this many delivered frames. Default: `8`. */
  grantBatch?: number;
  /** Most concurrent tunnels (both directions). Default: `10_000`. */
  maxTunnels?: number;
  /** `bufferedAmount`, in bytes, above which TUNNEL_DATA waits for `transportDrained()`. Default: 1 MiB. */
  highWaterMark?: number;
  /** Readable/writable high-water mark of each tunnel stream, in bytes. Default: 64 KiB. */
  streamHighWaterMark?: number;
  /** Logger. Default: no-op. */
  logger?: Logger;
  /** Clock for rate limits, in ms. Default: `Date.now`. */
  now?: () => number;
}

/** Counters of one session. */
export interface TunnelSessionStats {
  /** Tunnels open now. */
  tunnels: number;
  /** Tunnels opened by this side (origin). */
  opened: number;
  /** Tunnels accepted from the peer (destination). */
  accepted: number;
  /** Requests answered with `0x12` at once (no local backend, limits). */
  refused: number;
  /** Tunnels waiting for their turn at the link. */
  queued: number;
  /** TUNNEL_DATA frames and payload bytes sent / received. */
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Malformed frames received. */
  protocolErrors: number;
}

/** Events of {@link TunnelSession}. */
export interface TunnelSessionEvents {
  /** A malformed frame arrived; the link stays up. */
  'protocol-error': [error: MuxProtocolError];
  /** The session closed; every tunnel has ended. */
  close: [reason: string];
}

/**
 * The `MuxStream` members a stream host drives. They are internal to `@nexus-proxy/mux-protocol`
 * (hidden from its type declarations) and stable within one release; core pins that release.
 */
interface HostedStream extends MuxStream {
  sendFrames(maxFrames: number): boolean;
  grant(credits: number): void;
  setPeerPaused(paused: boolean): void;
  receiveData(payload: Buffer): void;
  remoteClosed(reason: string): void;
  pausingTransport: boolean;
  detached: boolean;
}

interface HostedStreamInit {
  id: string;
  connect: ConnectMessage;
  role: 'hub' | 'backend';
  host: object;
  sendCredits: number | undefined;
  assumedWindow: number | undefined;
  unmeteredAllowance: number;
  receiveMode: number;
  receiveCredits: number;
  grantBatch: number;
  highWaterMark: number;
  dataFrameType: number;
}

const TunnelStream = MuxStream as unknown as new (init: HostedStreamInit) => HostedStream;

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}

/**
 * The tunnels of one peer link. The owner feeds binary messages to {@link receive}, calls
 * {@link transportDrained} when the WebSocket drains, handles `tunnel_request` text messages with
 * {@link accept} or {@link refuse}, and calls {@link close} when the link ends.
 *
 * Tunnel streams are `Duplex`es (`MuxStream`). Both ends use "hub" close semantics: `end()` (the end
 * user's FIN) sends nothing, so the response keeps flowing; `disconnect()` sends `0x12` after the last
 * byte written; `destroy()` sends `0x12` at once. A `0x12` from the peer delivers what was received,
 * then EOF.
 */
export class TunnelSession extends EventEmitter<TunnelSessionEvents> {
  readonly #transport: TunnelTransport;
  readonly #initialWindow: number;
  readonly #grantBatch: number;
  readonly #maxTunnels: number;
  readonly #highWaterMark: number;
  readonly #streamHighWaterMark: number;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #host: object;

  readonly #tunnels = new Map<string, HostedStream>();
  readonly #recentlyClosed = new Map<string, true>();
  /** Tunnels with DATA waiting, in turn order (Set iteration order is insertion order). */
  readonly #ready = new Set<HostedStream>();
  #pumping = false;
  #pausing = 0;
  #closed = false;
  /**
   * The window the peer granted in its first `0x15` on this link: once known, new tunnels send at most
   * that many frames before their own first grant arrives (the peer meters, so it would count them).
   */
  #peerWindow: number | undefined;
  #unknownWindowStart = 0;
  #unknownReplies = 0;

  #opened = 0;
  #accepted = 0;
  #refused = 0;
  #framesSent = 0;
  #framesReceived = 0;
  #bytesSent = 0;
  #bytesReceived = 0;
  #protocolErrors = 0;

  constructor(options: TunnelSessionOptions) {
    super();
    this.#transport = options.transport;
    this.#initialWindow = positiveInteger('initialWindow', options.initialWindow, DEFAULT_INITIAL_WINDOW);
    if (this.#initialWindow > MAX_CREDITS) throw new RangeError('initialWindow must be ≤ 2^20');
    this.#grantBatch = positiveInteger('grantBatch', options.grantBatch, DEFAULT_GRANT_BATCH);
    if (this.#grantBatch > this.#initialWindow) throw new RangeError('grantBatch must be ≤ initialWindow');
    this.#maxTunnels = positiveInteger('maxTunnels', options.maxTunnels, DEFAULT_MAX_TUNNELS_PER_LINK);
    this.#highWaterMark = options.highWaterMark ?? DEFAULT_TRANSPORT_HIGH_WATER_MARK;
    this.#streamHighWaterMark = positiveInteger(
      'streamHighWaterMark',
      options.streamHighWaterMark,
      DEFAULT_STREAM_HIGH_WATER_MARK,
    );
    this.#log = options.logger ?? noopLogger;
    this.#now = options.now ?? Date.now;
    this.#host = this.#createHost();
  }

  /** Tunnels open now. */
  get tunnelCount(): number {
    return this.#tunnels.size;
  }

  /** Whether {@link close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The open tunnel with id `id`, if any. */
  getTunnel(id: string): MuxStream | undefined {
    return this.#tunnels.get(id);
  }

  /**
   * Origin: opens a tunnel. Sends `tunnel_request` and then this side's window (`0x15`), in that order
   * on the link, before any TUNNEL_DATA. Write the prelude as the stream's first write. Returns
   * `undefined` when the session is closed or carries `maxTunnels` tunnels.
   */
  open(init: TunnelInit): MuxStream | undefined {
    if (this.#closed || this.#tunnels.size >= this.#maxTunnels) return undefined;
    const request: TunnelRequestMessage = {
      type: 'tunnel_request',
      client_id: newStreamId(),
      conn_port: init.connPort,
      client_ip: init.clientIp,
      hostname: init.hostname,
      is_tls: init.isTls,
      transport: 'tcp',
    };
    const stream = this.#create(request);
    this.#opened++;
    this.#transport.sendText(encodePeerMessage(request));
    this.#sendControl(
      encodeTunnelFrame({ type: 'tunnel-credits', tunnelId: stream.id, credits: this.#initialWindow }),
    );
    return stream;
  }

  /**
   * Destination: accepts a `tunnel_request` and grants this side's window. Returns `undefined` (and
   * answers `0x12`) when the id is already in use, the session is closed or full.
   */
  accept(request: TunnelRequestMessage): MuxStream | undefined {
    const id = request.client_id;
    if (this.#closed) return undefined;
    if (this.#tunnels.has(id)) {
      this.#protocolError(
        new MuxProtocolError('MUX_ERR_INVALID_PEER_MESSAGE', `duplicate tunnel_request for tunnel ${id}`),
      );
      return undefined;
    }
    if (this.#tunnels.size >= this.#maxTunnels) {
      this.#log.warn({ tunnelId: id, maxTunnels: this.#maxTunnels }, 'refusing tunnel: too many tunnels');
      this.refuse(id);
      return undefined;
    }
    this.#recentlyClosed.delete(id);
    const stream = this.#create(request);
    this.#accepted++;
    this.#sendControl(
      encodeTunnelFrame({ type: 'tunnel-credits', tunnelId: id, credits: this.#initialWindow }),
    );
    return stream;
  }

  /**
   * Destination: answers a `tunnel_request` it cannot serve with `0x12` at once, so the origin closes
   * its end user instead of streaming into the void (docs/protocol.md §2.4, docs/reliability.md item 16).
   */
  refuse(tunnelId: string): void {
    this.#refused++;
    this.#rememberClosed(tunnelId);
    this.#sendControl(encodeTunnelFrame({ type: 'tunnel-close', tunnelId }));
  }

  /** Feeds one binary message from the link. Never throws on hostile input. */
  receive(message: Uint8Array): void {
    if (this.#closed) return;
    const length = message.length;
    if (length === 0) return;
    if (
      message[0] === FrameType.TunnelData &&
      length >= DATA_HEADER_LENGTH &&
      length <= MAX_BACKEND_MESSAGE
    ) {
      const buffer = toBuffer(message);
      this.#receiveData(streamIdFromBytes(buffer, 1), buffer.subarray(DATA_HEADER_LENGTH));
    } else {
      this.#receiveOther(message);
    }
    if (this.#ready.size > 0 && !this.#pumping) this.#pump();
  }

  /** Call when the link's send buffer has drained. */
  transportDrained(): void {
    this.#pump();
  }

  /**
   * Ends every tunnel: each delivers what it already received, then EOF (end users get a FIN, like the
   * streams of a dead backend session, docs/protocol.md §1.7). Sends nothing. Idempotent.
   */
  close(reason = 'link_closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    const tunnels = [...this.#tunnels.values()];
    this.#tunnels.clear();
    this.#ready.clear();
    for (const stream of tunnels) {
      stream.detached = true;
      stream.remoteClosed(reason);
    }
    this.#recentlyClosed.clear();
    if (this.#pausing > 0) {
      this.#pausing = 0;
      this.#transport.resume();
    }
    this.emit('close', reason);
  }

  /** A snapshot of the counters. */
  stats(): TunnelSessionStats {
    return {
      tunnels: this.#tunnels.size,
      opened: this.#opened,
      accepted: this.#accepted,
      refused: this.#refused,
      queued: this.#ready.size,
      framesSent: this.#framesSent,
      framesReceived: this.#framesReceived,
      bytesSent: this.#bytesSent,
      bytesReceived: this.#bytesReceived,
      protocolErrors: this.#protocolErrors,
    };
  }

  // ───────────────────────────── internals ─────────────────────────────

  #create(request: TunnelRequestMessage): HostedStream {
    const connect: ConnectMessage = {
      event: 'connect',
      client_id: request.client_id,
      conn_port: request.conn_port,
      client_ip: request.client_ip,
      hostname: request.hostname,
      is_tls: request.is_tls,
    };
    const stream = new TunnelStream({
      id: request.client_id,
      connect,
      // "hub" close semantics on both ends: see the class comment.
      role: 'hub',
      host: this.#host,
      // Unmetered until the peer's first 0x15 (§2.4: credits are opt-in per side); that grant counts
      // from the tunnel's first frame, like a backend's first grant (§1.5).
      sendCredits: undefined,
      assumedWindow: this.#peerWindow,
      // A peer that does not meter (or not yet) is bounded by pausing the link while the reader is full.
      unmeteredAllowance: 0,
      receiveMode: RECEIVE_MODE_LENIENT,
      receiveCredits: this.#initialWindow,
      grantBatch: this.#grantBatch,
      highWaterMark: this.#streamHighWaterMark,
      dataFrameType: FrameType.TunnelData,
    });
    this.#tunnels.set(stream.id, stream);
    return stream;
  }

  #receiveData(id: string, payload: Buffer): void {
    this.#framesReceived++;
    this.#bytesReceived += payload.length;
    const stream = this.#tunnels.get(id);
    if (stream !== undefined) {
      stream.receiveData(payload);
      return;
    }
    this.#unknownTunnel(id, payload.length === 0);
  }

  /** TUNNEL_DATA for an id we do not know: answer `0x12` once, so the far side frees its state. */
  #unknownTunnel(id: string, silent: boolean): void {
    if (silent || this.#recentlyClosed.has(id)) return;
    this.#rememberClosed(id);
    const now = this.#now();
    if (now - this.#unknownWindowStart >= 1000) {
      this.#unknownWindowStart = now;
      this.#unknownReplies = 0;
    }
    if (this.#unknownReplies >= MAX_UNKNOWN_TUNNEL_REPLIES) return;
    this.#unknownReplies++;
    this.#log.debug({ tunnelId: id }, 'TUNNEL_DATA for an unknown tunnel: answering close');
    this.#sendControl(encodeTunnelFrame({ type: 'tunnel-close', tunnelId: id }));
  }

  #receiveOther(message: Uint8Array): void {
    const result = decodeTunnelFrame(message);
    if (!result.ok) {
      if (
        result.error.code === 'MUX_ERR_FRAME_TOO_LARGE' &&
        message[0] === FrameType.TunnelData &&
        message.length >= DATA_HEADER_LENGTH
      ) {
        // Dropping the frame would silently corrupt the tunnel: end that tunnel instead.
        const stream = this.#tunnels.get(streamIdFromBytes(message, 1));
        if (stream !== undefined) {
          this.#disconnect(stream);
          stream.destroy(result.error);
        }
      }
      this.#protocolError(result.error);
      return;
    }
    const frame = result.value;
    switch (frame.type) {
      case 'tunnel-data':
        this.#receiveData(frame.tunnelId, toBuffer(frame.payload));
        return;
      case 'tunnel-close': {
        const stream = this.#tunnels.get(frame.tunnelId);
        if (stream === undefined) return; // double close, or a refusal of a tunnel already gone
        this.#forget(stream);
        stream.remoteClosed('peer_closed');
        return;
      }
      case 'tunnel-credits': {
        const stream = this.#tunnels.get(frame.tunnelId);
        if (frame.credits > 0) {
          // A peer's first grant on a tunnel is its whole window (later ones are batches); remember the first.
          this.#peerWindow ??= Math.min(frame.credits, MAX_CREDITS);
          stream?.grant(frame.credits);
        }
        return;
      }
      case 'tunnel-pause':
        this.#tunnels.get(frame.tunnelId)?.setPeerPaused(true);
        return;
      case 'tunnel-resume':
        this.#tunnels.get(frame.tunnelId)?.setPeerPaused(false);
        return;
      case 'unknown':
        this.#log.warn({ frameType: frame.frameType }, 'ignoring peer message with unknown frame type');
        return;
      default:
        return;
    }
  }

  #protocolError(error: MuxProtocolError): void {
    this.#protocolErrors++;
    this.#log.debug({ code: error.code, err: error.message }, 'peer protocol error');
    this.emit('protocol-error', error);
  }

  #sendControl(message: Uint8Array): void {
    if (this.#closed) return;
    this.#transport.sendBinary(message);
  }

  #disconnect(stream: HostedStream): void {
    if (stream.detached) return;
    stream.detached = true;
    this.#forget(stream);
    this.#sendControl(encodeTunnelFrame({ type: 'tunnel-close', tunnelId: stream.id }));
  }

  #forget(stream: HostedStream): void {
    stream.detached = true;
    this.#ready.delete(stream);
    if (this.#tunnels.get(stream.id) !== stream) return;
    this.#tunnels.delete(stream.id);
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

  /**
   * Serves ready tunnels round-robin, one frame per turn, while the link is below its high-water mark
   * (never dropping: a full link holds DATA until `transportDrained()`, and Node's backpressure holds the
   * writers). Re-entrant calls (a write callback that writes again) only enqueue.
   */
  #pump(): void {
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    try {
      const ready = this.#ready;
      while (ready.size > 0 && !this.#closed) {
        if (this.#transport.bufferedAmount > this.#highWaterMark) break;
        const stream = ready.values().next().value as HostedStream;
        ready.delete(stream);
        if (stream.sendFrames(1) && !stream.detached) ready.add(stream);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #createHost(): object {
    return {
      schedule: (stream: HostedStream) => {
        if (this.#closed) return;
        this.#ready.add(stream);
        this.#pump();
      },
      sendData: (frame: Uint8Array, payloadLength: number) => {
        if (this.#closed) return;
        this.#framesSent++;
        this.#bytesSent += payloadLength;
        this.#transport.sendBinary(frame);
      },
      sendDataParts:
        this.#transport.sendData === undefined
          ? undefined
          : (header: Uint8Array, payload: Uint8Array[], payloadLength: number, onWritten: () => void) => {
              if (this.#closed) {
                process.nextTick(onWritten);
                return;
              }
              this.#framesSent++;
              this.#bytesSent += payloadLength;
              this.#transport.sendData!(header, payload, payloadLength, onWritten);
            },
      sendGrant: (stream: HostedStream, credits: number) => {
        this.#sendControl(encodeTunnelFrame({ type: 'tunnel-credits', tunnelId: stream.id, credits }));
      },
      // Backend-session control messages (`ping_client`) have no tunnel equivalent.
      sendControl: () => {},
      disconnect: (stream: HostedStream) => this.#disconnect(stream),
      forget: (stream: HostedStream) => this.#forget(stream),
      pauseTransport: (stream: HostedStream) => {
        if (stream.pausingTransport) return;
        stream.pausingTransport = true;
        if (++this.#pausing === 1) {
          this.#log.debug({ tunnelId: stream.id }, 'pausing the link for a tunnel whose peer does not meter');
          this.#transport.pause();
        }
      },
      resumeTransport: (stream: HostedStream) => {
        if (!stream.pausingTransport) return;
        stream.pausingTransport = false;
        if (this.#pausing > 0 && --this.#pausing === 0) this.#transport.resume();
      },
      streamProtocolError: (stream: HostedStream, error: MuxProtocolError) => {
        this.#disconnect(stream);
        this.#protocolError(error);
        stream.destroy(error);
      },
    };
  }
}
