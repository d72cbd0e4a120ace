import { EventEmitter } from 'node:events';
import type { ConnectMessage, ControlMessage } from './control.js';
import { StreamEngine } from './engine.js';
import type { EngineAbortReason, StreamEngineCounters, StreamEngineTuning } from './engine-options.js';
import { encodeControlMessage } from './encode.js';
import { MuxProtocolError } from './errors.js';
import { backendFraming, idOnlyControlFrame } from './framing.js';
import type { MuxStream } from './stream.js';
import type { ReceiveMetering, SendMetering } from './stream-host.js';
import { newStreamId } from './stream-id.js';
import type { MuxLogger, MuxTransport } from './transport.js';

/** Options of {@link MuxSession}; the engine's limits and tuning are those of {@link StreamEngineTuning}. */
export interface MuxSessionOptions extends StreamEngineTuning {
  /** `hub` opens streams (sends `connect`); `backend` accepts them (docs/protocol.md §1.4). */
  role: 'hub' | 'backend';
  /** The transport messages are sent on; incoming messages are fed with `receive()`. */
  transport: MuxTransport;
  /** Most concurrent streams. Hub: `openStream` throws past it; backend: answers `disconnect`. Default: `10_000`. */
  maxStreams?: number;
  /** Stop reading the transport (e.g. `ws.pause()`): a legacy stream's reader is not keeping up. */
  pauseTransport?(): void;
  /** Resume reading the transport (e.g. `ws.resume()`). */
  resumeTransport?(): void;
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
export interface MuxSessionStats extends StreamEngineCounters {
  role: 'hub' | 'backend';
  /** Streams open now. */
  streams: number;
  /** Hub role: open streams the backend has not sent anything for yet (see `MuxSession.pendingConnects`). */
  pendingConnects: number;
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
  /**
   * The session closed itself because the peer broke a limit (`empty-data-flood`, `peer-not-reading`);
   * `'close'` follows. Close the transport with a policy violation (WebSocket 1008) and `reason`.
   */
  abort: [reason: EngineAbortReason, error: MuxProtocolError];
  /** The session closed; every stream has ended. */
  close: [reason: string];
}

/**
 * One backend session (docs/protocol.md §1), run by the hub (role `hub`) and by the backend client (role
 * `backend`) over one WebSocket: the {@link StreamEngine} with the backend framing (`0x01` DATA, `0x02`
 * JSON control) plus what only this wire has — `connect`, `ping_client`/`pong_client`, and the roles'
 * metering and close semantics (§1.5, §1.7).
 *
 * The owner feeds every binary message to `receive()`, calls `transportDrained()` when the transport's
 * socket drains, and `close()` when the transport closes. `receive()` keeps views into `message` (no
 * copy): the caller must not reuse that memory (ws never does).
 */
export class MuxSession extends EventEmitter<MuxSessionEvents> {
  readonly role: 'hub' | 'backend';
  readonly #engine: StreamEngine;
  readonly #logger: MuxLogger | undefined;

  constructor(options: MuxSessionOptions) {
    super();
    if (options.role !== 'hub' && options.role !== 'backend')
      throw new TypeError('role must be hub or backend');
    this.role = options.role;
    const logger = options.logger;
    this.#logger = logger?.child ? logger.child({ component: 'mux-session', role: this.role }) : logger;
    this.#engine = new StreamEngine({
      ...options,
      framing: backendFraming,
      logger: this.#logger,
      onMessage: (message, stream) => this.#onMessage(message, stream),
      onProtocolError: (error) => this.emit('protocol-error', error),
      onAbort: (reason, error) => {
        this.emit('abort', reason, error);
        this.emit('close', reason);
      },
    });
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.#engine.streamCount;
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#engine.closed;
  }

  /**
   * Hub role: open streams whose backend has not sent anything for them yet — no DATA, grant, pause,
   * ping, pong or disconnect since their `connect`. A backend that accepts connects but never answers
   * them makes this grow; the owner may stop opening streams on it.
   */
  get pendingConnects(): number {
    return this.#engine.pendingAnswers;
  }

  /** The open stream with id `id`, if any. */
  getStream(id: string): MuxStream | undefined {
    return this.#engine.getStream(id);
  }

  /**
   * Hub role: opens a stream and sends its `connect`, granting this side's receive window up front
   * (`credits: initialWindow`, docs/protocol.md §1.5). Write the prelude as the stream's first write.
   * Throws `MuxProtocolError` `MUX_ERR_CLOSED` after `close()` and `MUX_ERR_TOO_MANY_STREAMS` when
   * `maxStreams` streams are open.
   */
  openStream(init: OpenStreamInit): MuxStream {
    if (this.role !== 'hub') throw new TypeError('openStream is for the hub role');
    const engine = this.#engine;
    if (engine.closed) throw new MuxProtocolError('MUX_ERR_CLOSED', 'the session is closed');
    if (engine.full) {
      throw new MuxProtocolError(
        'MUX_ERR_TOO_MANY_STREAMS',
        `session already carries ${engine.streamCount} streams`,
      );
    }
    const connect: ConnectMessage = {
      event: 'connect',
      client_id: newStreamId(),
      conn_port: init.connPort,
      client_ip: init.clientIp,
      hostname: init.hostname,
      is_tls: init.isTls,
      credits: engine.initialWindow,
    };
    if (init.transport !== undefined && init.transport !== 'tcp') connect.transport = init.transport;
    // The hub sends unmetered until the backend's first grant: a v1 backend never grants (§1.5). Once
    // this backend has granted on an earlier stream it is known to grant on every stream, so the wait
    // for this stream's grant is bounded by the window it granted before.
    const peerWindow = engine.peerWindow;
    const sendMetering: SendMetering =
      peerWindow === undefined
        ? { mode: 'on-first-grant' }
        : { mode: 'on-first-grant', unmeteredLimit: peerWindow };
    const stream = engine.openStream({
      id: connect.client_id,
      connect,
      sendMetering,
      // A backend that granted before meters from the connect on, so a frame past the window is an
      // over-send even before this stream's first grant; otherwise it may be a v1 backend (probing).
      receiveMetering: peerWindow === undefined ? { mode: 'probing' } : { mode: 'strict' },
      // The end user half-closed: the response must still flow (see LocalEndBehaviour).
      localEnd: 'keep-open',
      awaitingAnswer: true,
    });
    // Under a receive budget the stream may start with less than the window.
    connect.credits = stream.initialCredits;
    engine.sendControl(encodeControlMessage(connect));
    return stream;
  }

  /** Feeds one binary message from the transport. Never throws on hostile input. */
  receive(message: Uint8Array): void {
    this.#engine.receive(message);
  }

  /** Call when the transport's buffer has drained (the WebSocket's socket emitted `'drain'`). */
  transportDrained(): void {
    this.#engine.transportDrained();
  }

  /**
   * Closes the session: every stream delivers what it already received, then ends with `reason` as its
   * `closeReason`; DATA not yet sent is discarded, never carried over (a new transport needs a new
   * session). Sends nothing. Idempotent.
   */
  close(reason = 'session_ended'): void {
    if (this.#engine.closed) return;
    this.#engine.close(reason);
    this.emit('close', reason);
  }

  /** Why the session closed, once it has. */
  get closeReason(): string | undefined {
    return this.#engine.closeReason;
  }

  /** A snapshot of the session's counters. */
  stats(): MuxSessionStats {
    const engine = this.#engine;
    return {
      role: this.role,
      streams: engine.streamCount,
      pendingConnects: engine.pendingAnswers,
      ...engine.counters(),
      closed: engine.closed,
    };
  }

  #onMessage(message: ControlMessage, stream: MuxStream | undefined): void {
    switch (message.event) {
      case 'connect':
        this.#receiveConnect(message);
        return;
      case 'ping_client':
        // Answered only while this side knows the stream (§1.4).
        if (stream !== undefined) this.#engine.sendControl(idOnlyControlFrame('pong_client', stream.id));
        return;
      case 'pong_client':
        stream?.emit('pong');
        return;
      default:
        return;
    }
  }

  #receiveConnect(connect: ConnectMessage): void {
    const id = connect.client_id;
    const engine = this.#engine;
    if (this.role !== 'backend') {
      engine.warnIgnored({ streamId: id }, 'ignoring connect sent to a hub');
      return;
    }
    if (engine.getStream(id) !== undefined) {
      engine.protocolError(
        new MuxProtocolError('MUX_ERR_INVALID_CONTROL', `duplicate connect for stream ${id}`),
      );
      return;
    }
    if (engine.full || this.listenerCount('stream') === 0) {
      const reason = engine.full ? 'too_many_streams' : 'local_error';
      this.#logger?.warn({ streamId: id, reason }, 'refusing stream');
      engine.refuse(id, reason);
      return;
    }
    // §1.5: a connect carrying credits says the hub meters; only then do we meter and grant.
    const credits = connect.credits ?? 0;
    const metered = credits > 0;
    const receiveMetering: ReceiveMetering = metered
      ? // The hub meters only once our first grant reaches it (see ReceiveMetering `lenient`); past the
        // allowance it is an over-send and the stream is closed.
        { mode: 'lenient', overrunAllowance: engine.unmeteredAllowance, onOverrun: 'close' }
      : { mode: 'unmetered' };
    const stream = engine.openStream({
      id,
      connect,
      sendMetering: metered ? { mode: 'metered', credits } : { mode: 'unmetered' },
      receiveMetering,
      // The local service closed: its response is complete, so `end()` sends `disconnect{normal}`.
      localEnd: 'close',
      awaitingAnswer: false,
    });
    // Our window, before any DATA of ours (same ordered lane), so the hub can meter from here on.
    if (metered) engine.sendInitialGrant(id);
    this.emit('stream', stream, connect);
  }
}
