/**
 * The hub side of one authenticated backend WebSocket: a `MuxSession` (role `hub`) over the socket, the
 * keepalive (docs/protocol.md §1.6), per-session limits, and one `'close'` event with a reason when it ends.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { DATA_HIGH_WATER_MARK, Keepalive, takeBinaryMessagesAsViews } from '@nexus-proxy/common';
import { countReceivedBytes } from '@nexus-proxy/common/relay-heap';
import {
  FrameType,
  type MuxProtocolError,
  MuxSession,
  type MuxSessionStats,
  type MuxStream,
  type OpenStreamInit,
  type StreamEngineTuning,
  WS_CLOSE_POLICY_VIOLATION,
} from '@nexus-proxy/mux-protocol';
import type { WebSocket } from 'ws';
import type { BackendIdentity } from './backend-identity.js';
import { LimitError, MAX_CLOSE_REASON_BYTES, truncateUtf8 } from './errors.js';
import { type Logger, noopLogger } from './logger.js';
import { createWsTransport, type WsTransport } from './ws-transport.js';

/** Default hub → backend ping interval: 54 000 ms (the reference hub, docs/protocol.md §1.6). */
export const DEFAULT_HUB_PING_INTERVAL_MS = 54_000;
/** Default silence after which a backend session is dead: 60 000 ms (docs/protocol.md §1.6). */
export const DEFAULT_HUB_DEAD_AFTER_MS = 60_000;
/** Default most open streams per backend session: 1 024. */
export const DEFAULT_MAX_STREAMS_PER_SESSION = 1_024;
/** Default most control (non-DATA) messages per second from one backend: 10 000; `0` = off. */
export const DEFAULT_MAX_CONTROL_MESSAGES_PER_SECOND = 10_000;

/** WebSocket close code 1001 "going away" (RFC 6455 §7.4.1): the node shuts down. */
const WS_CLOSE_GOING_AWAY = 1001;
/** WebSocket close code 1009 "message too big" (RFC 6455 §7.4.1). */
const WS_CLOSE_MESSAGE_TOO_BIG = 1009;
/**
 * Pongs queued but not yet written before further pings go unanswered: RFC 6455 §5.5.3 lets a pong
 * answer only the latest of several pings, and a backend that pings without reading must not make us
 * buffer pongs without bound.
 */
const MAX_PENDING_PONGS = 60;

/**
 * Why a session ended: `backend-closed` (the backend closed the WebSocket), `keepalive-timeout`,
 * `message-too-big` (a message over the size limit, close 1009), `control-rate` (control flood),
 * `ping-flood` (WebSocket pings past the same per-second budget, close 1008), `empty-data-flood` (empty
 * DATA frames past the engine's per-second budget, 1008), `peer-not-reading` (the backend left what the
 * hub sends unread past the engine's backlog limit and grace period, 1008), `transport-error`,
 * `shutdown`, or the reason given to {@link BackendSession.close}.
 */
export type BackendSessionCloseReason =
  | 'backend-closed'
  | 'keepalive-timeout'
  | 'message-too-big'
  | 'control-rate'
  | 'ping-flood'
  | 'empty-data-flood'
  | 'peer-not-reading'
  | 'transport-error'
  | 'shutdown'
  | (string & {});

/** Options of {@link BackendSession}. */
export interface BackendSessionOptions {
  /**
   * The authenticated WebSocket. The session answers its pings itself (flood-limited), so create it
   * with ws's `autoPong: false` (the hub does); with ws's default, pings get two pongs, which is harmless.
   */
  ws: WebSocket;
  /** The TCP/TLS socket under `ws` (for `'drain'`). Default: the WebSocket's own. */
  socket?: Duplex;
  /** Session id for logs and events. Default: a random UUID. */
  id?: string;
  /** Normalised patterns the backend serves (from its token). */
  hostnames: readonly string[];
  /** Pool weight, ≥ 1. Default: `1`. */
  weight?: number;
  /**
   * What authentication established (era, port/UDP/outbound claims). Default: a seed-era identity of
   * `hostnames` and `weight`.
   */
  identity?: BackendIdentity;
  /**
   * Receives the backend's text messages (current era: re-authentication answers, docs/protocol.md §1.10).
   * Default: none, they are ignored (seed era, §1.1).
   */
  onText?: (text: string) => void;
  /** The backend's address, for logs. */
  remoteAddress?: string;
  /** Most open streams; `openStream` throws `LimitError('maxStreamsPerSession')` past it. Default: `1_024`. */
  maxStreams?: number;
  /** WebSocket ping interval, ms. Default: `54_000`. */
  pingIntervalMs?: number;
  /** No message or pong for this long → the session is terminated, ms. Default: `60_000`. */
  deadAfterMs?: number;
  /**
   * Control messages plus WebSocket pings per second before the session is closed with 1008
   * (`control-rate`, or `ping-flood` when a ping went over); `0` = off. Default: `10_000`.
   */
  maxControlMessagesPerSecond?: number;
  /**
   * Largest message accepted, bytes; a larger one closes the session with 1009 (`message-too-big`).
   * Default: none besides the WebSocket's own `maxPayload`.
   */
  maxMessageBytes?: number;
  /**
   * Stream engine tuning and limits (window, batch, high-water marks, unmetered allowance, empty-DATA
   * budget, backlog limit and grace): see `StreamEngineTuning` of `@nexus-proxy/mux-protocol`.
   */
  mux?: Omit<StreamEngineTuning, 'logger' | 'now'>;
  /** Logger. Default: no-op. */
  logger?: Logger;
}

/** Events of {@link BackendSession}. */
export interface BackendSessionEvents {
  /** The session ended; every stream has been ended. Emitted once. */
  close: [reason: BackendSessionCloseReason];
}

/** Snapshot of a backend session. */
export interface BackendSessionStats extends MuxSessionStats {
  id: string;
  hostnames: readonly string[];
  weight: number;
  remoteAddress: string | undefined;
  /** ms since the epoch. */
  connectedAt: number;
}

/** One authenticated backend, as the hub sees it. */
export class BackendSession extends EventEmitter<BackendSessionEvents> {
  /** Session id. */
  readonly id: string;
  /** Patterns served, as registered in the routing table. */
  readonly hostnames: readonly string[];
  /** Pool weight. */
  readonly weight: number;
  /**
   * What authentication established: `era`, and for current-era backends `tcpPorts`, `udpRoutes`,
   * `outbound` (validated claims, docs/protocol.md §5.6).
   */
  readonly identity: Readonly<BackendIdentity>;
  /** The backend's address. */
  readonly remoteAddress: string | undefined;
  /** When the session was authenticated, ms since the epoch. */
  readonly connectedAt = Date.now();
  /** The mux engine. */
  readonly mux: MuxSession;

  readonly #ws: WebSocket;
  readonly #transport: WsTransport;
  readonly #log: Logger;
  readonly #maxStreams: number;
  readonly #keepalive: Keepalive;
  readonly #maxControlPerSecond: number;
  readonly #maxMessageBytes: number;
  readonly #offDrain: () => void;
  readonly #onText: ((text: string) => void) | undefined;
  /** Pongs handed to the WebSocket and not yet written. */
  #pendingPongs = 0;
  /** Set while the mux engine holds the WebSocket's reads paused (backpressure). */
  #readsPaused = false;
  #controlWindowStart = 0;
  #controlCount = 0;
  #closeReason: BackendSessionCloseReason | undefined;
  /** A reason learnt from a WebSocket error, used when the close follows. */
  #closeReasonHint: BackendSessionCloseReason | undefined;

  constructor(options: BackendSessionOptions) {
    super();
    this.id = options.id ?? randomUUID();
    this.hostnames = Object.freeze([...options.hostnames]);
    this.weight = options.weight ?? 1;
    this.identity = Object.freeze({
      era: 'seed' as const,
      ...options.identity,
      hostnames: this.hostnames,
      weight: this.weight,
    });
    this.#onText = options.onText;
    this.remoteAddress = options.remoteAddress;
    this.#ws = options.ws;
    this.#maxStreams = options.maxStreams ?? DEFAULT_MAX_STREAMS_PER_SESSION;
    this.#maxControlPerSecond =
      options.maxControlMessagesPerSecond ?? DEFAULT_MAX_CONTROL_MESSAGES_PER_SECOND;
    this.#maxMessageBytes = options.maxMessageBytes ?? Number.POSITIVE_INFINITY;
    const baseLog = options.logger ?? noopLogger;
    this.#log = baseLog.child({ component: 'backend-session', sessionId: this.id });
    this.#transport = createWsTransport(this.#ws, options.socket);
    const transport = this.#transport;
    this.mux = new MuxSession({
      role: 'hub',
      transport,
      maxStreams: this.#maxStreams,
      // DATA waits until the frame before it has left: each goes to the TLS socket as one buffer.
      highWaterMark: DATA_HIGH_WATER_MARK,
      ...options.mux,
      // The engine adds its own `component`: give it a logger without ours, so no key appears twice.
      logger: baseLog.child({ sessionId: this.id }),
      pauseTransport: () => {
        this.#readsPaused = true;
        transport.pause();
      },
      resumeTransport: () => {
        // While we did not read, the backend's pongs sat unread: count it alive from here (§1.6).
        this.#readsPaused = false;
        this.#keepalive.markAlive();
        transport.resume();
      },
    });
    this.#offDrain = transport.onDrain(() => this.mux.transportDrained());
    this.mux.on('protocol-error', this.#onProtocolError);
    // The engine closed itself on a limit (a flood, or the backend not reading): a policy close.
    this.mux.on('abort', this.#onAbort);

    const ws = this.#ws;
    ws.on('message', this.#onMessage);
    // Final binary messages (DATA) straight out of the TLS reads, as views; ws delivers the rest.
    takeBinaryMessagesAsViews(ws, this.#onBinary);
    ws.on('pong', this.#onAlive);
    ws.on('ping', this.#onPing);
    ws.on('close', this.#onWsClose);
    ws.on('error', this.#onWsError);

    this.#keepalive = new Keepalive(
      {
        intervalMs: options.pingIntervalMs ?? DEFAULT_HUB_PING_INTERVAL_MS,
        timeoutMs: options.deadAfterMs ?? DEFAULT_HUB_DEAD_AFTER_MS,
      },
      {
        ping: () => {
          if (ws.readyState === ws.OPEN) ws.ping();
        },
        onTimeout: (silentMs) => {
          this.#log.warn({ silentMs }, 'backend session silent: terminating');
          this.terminate('keepalive-timeout');
        },
        // Reads paused by us (a legacy stream's end user is slow) hide the backend's pongs: that silence
        // is ours, not the backend's, so it is not counted.
        suspended: () => this.#readsPaused,
      },
    );
    this.#keepalive.start();
  }

  /** Open streams. */
  get streamCount(): number {
    return this.mux.streamCount;
  }

  /**
   * Streams opened toward the backend that it has not answered yet (no message for them since their
   * `connect`): see `MuxSession.pendingConnects`.
   */
  get pendingConnects(): number {
    return this.mux.pendingConnects;
  }

  /** Whether the session has ended (or is ending). */
  get closed(): boolean {
    return this.#closeReason !== undefined;
  }

  /** Why the session ended, once it has. */
  get closeReason(): BackendSessionCloseReason | undefined {
    return this.#closeReason;
  }

  /**
   * Open a stream to the backend (sends `connect`). Write the prelude first. Throws
   * `LimitError('maxStreamsPerSession')` when the session is full and `NexusError` `NEXUS_ERR_CLOSED`-like
   * `MuxProtocolError` once it has closed.
   */
  openStream(init: OpenStreamInit): MuxStream {
    if (this.mux.streamCount >= this.#maxStreams) {
      throw new LimitError(
        'maxStreamsPerSession',
        `backend session already carries ${this.#maxStreams} streams`,
      );
    }
    return this.mux.openStream(init);
  }

  /**
   * End the session: sends a close frame (`code`, `reason` truncated to 123 bytes), ends every stream (end
   * users get what was already delivered, then FIN) and emits `'close'`. Idempotent.
   */
  close(reason: BackendSessionCloseReason = 'shutdown', code = WS_CLOSE_GOING_AWAY): void {
    if (this.#closeReason !== undefined) return;
    const ws = this.#ws;
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) {
      // A transport paused for backpressure would never read the backend's answering close frame.
      if (ws.readyState === ws.OPEN) ws.resume();
      ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
    }
    this.#finish(reason);
  }

  /** End the session without a close handshake (dead peer). */
  terminate(reason: BackendSessionCloseReason): void {
    if (this.#closeReason !== undefined) return;
    this.#ws.terminate();
    this.#finish(reason);
  }

  /**
   * Send a text message (a current-era challenge, docs/protocol.md §1.10). It goes to the socket at once,
   * ahead of stream data the engine still holds. A no-op once the WebSocket is not open.
   */
  sendText(text: string): void {
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.send(text, { binary: false }, noop);
  }

  /** @internal Feed a message received before the session was attached (the hub's auth phase). */
  deliver(message: Buffer, isBinary: boolean): void {
    if (this.#closeReason === undefined) this.#onMessage(message, isBinary);
  }

  /** A snapshot for metrics. */
  stats(): BackendSessionStats {
    return {
      ...this.mux.stats(),
      id: this.id,
      hostnames: this.hostnames,
      weight: this.weight,
      remoteAddress: this.remoteAddress,
      connectedAt: this.connectedAt,
    };
  }

  readonly #onAlive = (): void => {
    this.#keepalive.markAlive();
  };

  /** Counts one control message or ping in the per-second budget; true when it goes over. */
  #overControlBudget(now: number): boolean {
    if (this.#maxControlPerSecond <= 0) return false;
    if (now - this.#controlWindowStart >= 1000) {
      this.#controlWindowStart = now;
      this.#controlCount = 0;
    }
    return ++this.#controlCount > this.#maxControlPerSecond;
  }

  readonly #onPing = (data: Buffer): void => {
    const now = Date.now();
    this.#keepalive.markAlive(now);
    if (this.#overControlBudget(now)) {
      this.#log.warn({ limit: this.#maxControlPerSecond }, 'ping flood: closing the session');
      this.close('ping-flood', WS_CLOSE_POLICY_VIOLATION);
      return;
    }
    if (this.#pendingPongs >= MAX_PENDING_PONGS || this.#ws.readyState !== this.#ws.OPEN) return;
    this.#pendingPongs++;
    this.#ws.pong(data, false, this.#onPongWritten);
  };

  readonly #onPongWritten = (): void => {
    this.#pendingPongs--;
  };

  readonly #onMessage = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void => {
    const now = Date.now();
    this.#keepalive.markAlive(now);
    const message = Buffer.isBuffer(data)
      ? data
      : Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.from(data);
    if (isBinary) {
      this.#onBinary([message], message.length, now);
      return;
    }
    if (this.#overSizeLimit(message.length)) return;
    // §1.1: everything multiplexed is binary; text frames carry only current-era re-authentication.
    // They count against the control budget like any control message.
    if (this.#overControlBudget(now)) {
      this.#log.warn({ limit: this.#maxControlPerSecond }, 'text message flood: closing the session');
      this.close('control-rate', WS_CLOSE_POLICY_VIOLATION);
      return;
    }
    if (this.#onText !== undefined) this.#onText(message.toString('utf8'));
    else this.#log.debug('ignoring a text message from the backend');
  };

  /**
   * §1.3: the reference hub kills a session on a message over its limit (the WebSocket's own cap may be
   * higher: it also admits the larger token message). Closes the session when `length` is over it.
   */
  #overSizeLimit(length: number): boolean {
    if (length <= this.#maxMessageBytes) return false;
    this.#log.warn({ bytes: length, limit: this.#maxMessageBytes }, 'message too big: closing the session');
    this.close('message-too-big', WS_CLOSE_MESSAGE_TOO_BIG);
    return true;
  }

  /** A binary message, whole (from ws) or as the views of the TLS reads it came in. */
  readonly #onBinary = (parts: Buffer[], length: number, now = Date.now()): void => {
    if (this.#closeReason !== undefined) return;
    this.#keepalive.markAlive(now);
    if (this.#overSizeLimit(length)) return;
    if (this.#maxControlPerSecond > 0 && length > 0 && parts[0]![0] !== FrameType.Data) {
      if (this.#overControlBudget(now)) {
        this.#log.warn({ limit: this.#maxControlPerSecond }, 'control message flood: closing the session');
        this.close('control-rate', WS_CLOSE_POLICY_VIOLATION);
        return;
      }
    }
    // The TLS reads the message came in are buffers outside the JS heap (relay-heap).
    countReceivedBytes(length);
    this.mux.receive(parts, length);
  };

  readonly #onProtocolError = (error: MuxProtocolError): void => {
    // Session-level errors leave the session running (a malformed message is dropped, docs/protocol.md §1.3);
    // ws already rejects oversize messages with 1009 before they reach the engine.
    this.#log.warn({ code: error.code, err: error.message }, 'protocol error from backend');
  };

  readonly #onAbort = (reason: BackendSessionCloseReason): void => {
    this.close(reason, WS_CLOSE_POLICY_VIOLATION);
  };

  readonly #onWsClose = (code: number): void => {
    this.#finish(code === 1009 ? 'message-too-big' : 'backend-closed');
  };

  readonly #onWsError = (err: Error): void => {
    const code = (err as { code?: string }).code;
    this.#log.warn({ err: err.message, code }, 'backend WebSocket error');
    if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.#closeReasonHint = 'message-too-big';
  };

  #finish(reason: BackendSessionCloseReason): void {
    if (this.#closeReason !== undefined) return;
    const final = this.#closeReasonHint ?? reason;
    this.#closeReason = final;
    this.#keepalive.stop();
    this.#offDrain();
    const ws = this.#ws;
    ws.off('message', this.#onMessage);
    ws.off('pong', this.#onAlive);
    ws.off('ping', this.#onPing);
    ws.off('close', this.#onWsClose);
    // Keep an error listener: a late socket error must not crash the process.
    ws.off('error', this.#onWsError);
    ws.on('error', noop);
    this.mux.off('protocol-error', this.#onProtocolError);
    this.mux.off('abort', this.#onAbort);
    // §1.7: every stream ends; each end user gets what was already delivered, then FIN.
    this.mux.close(final);
    this.#log.info({ reason: final }, 'backend session closed');
    this.emit('close', final);
  }
}

function noop(): void {}
