import { EventEmitter } from 'node:events';
import type {
  ConnectMessage,
  ControlMessage,
  OutboundConnectMessage,
  OutboundResultMessage,
} from './control.js';
import { StreamEngine } from './engine.js';
import {
  DEFAULT_MAX_STREAMS,
  type EngineAbortReason,
  type StreamEngineCounters,
  type StreamEngineTuning,
} from './engine-options.js';
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
  /**
   * Backend role: most `outbound_connect` requests waiting for their `outbound_result` at once; `openOutbound`
   * rejects past it. Default: `256`.
   */
  maxPendingOutbound?: number;
}

/** Default most outbound requests a backend session keeps waiting for their answer: 256. */
export const DEFAULT_MAX_PENDING_OUTBOUND = 256;

/** Options of {@link MuxSession.openOutbound}. */
export interface OpenOutboundOptions {
  /** Reject with `MUX_ERR_OUTBOUND_TIMEOUT` when no `outbound_result` arrives within this many ms. */
  timeoutMs: number;
  /** Gives up the request (the local client left): rejects with `MUX_ERR_CLOSED`. */
  signal?: AbortSignal;
}

/** A backend's `outbound_connect` waiting for its `outbound_result`. */
interface PendingOutbound {
  readonly targetAddr: string;
  resolve(stream: MuxStream): void;
  reject(error: MuxProtocolError): void;
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
   * Hub role: the backend asks for an outbound connection. Answer with `acceptOutbound` (once connected)
   * or `refuseOutbound`. Without a listener the request is refused at once.
   */
  'outbound-connect': [request: OutboundConnectMessage];
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
  /** Backend role: outbound requests by stream id, waiting for their `outbound_result`. */
  readonly #pendingOutbound = new Map<string, PendingOutbound>();
  readonly #maxPendingOutbound: number;
  readonly #maxStreams: number;

  constructor(options: MuxSessionOptions) {
    super();
    if (options.role !== 'hub' && options.role !== 'backend')
      throw new TypeError('role must be hub or backend');
    this.role = options.role;
    const logger = options.logger;
    this.#logger = logger?.child ? logger.child({ component: 'mux-session', role: this.role }) : logger;
    this.#maxPendingOutbound = options.maxPendingOutbound ?? DEFAULT_MAX_PENDING_OUTBOUND;
    this.#maxStreams = options.maxStreams ?? DEFAULT_MAX_STREAMS;
    this.#engine = new StreamEngine({
      ...options,
      framing: backendFraming,
      logger: this.#logger,
      onMessage: (message, stream) => this.#onMessage(message, stream),
      onProtocolError: (error) => this.emit('protocol-error', error),
      onAbort: (reason, error) => {
        this.#failPendingOutbound(reason);
        this.emit('abort', reason, error);
        this.emit('close', reason);
      },
    });
  }

  /** Streams open now. */
  get streamCount(): number {
    return this.#engine.streamCount;
  }

  /** Largest DATA payload accepted, bytes (`maxDataPayload`, docs/protocol.md §1.11). */
  get maxDataPayload(): number {
    return this.#engine.maxDataPayload;
  }

  /** Largest DATA payload sent, bytes (`sendDataPayload`, docs/protocol.md §1.11). */
  get sendDataPayload(): number {
    return this.#engine.sendDataPayload;
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
    this.#assertRoom();
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
    const stream = this.#openHubStream(connect, 'keep-open');
    // Under a receive budget the stream may start with less than the window.
    connect.credits = stream.initialCredits;
    engine.sendControl(encodeControlMessage(connect));
    return stream;
  }

  /**
   * Hub role: the outbound connection the backend asked for with `outbound_connect` (`id`) is up: opens
   * its stream and sends `outbound_result{success:true, credits}` before any DATA of it, granting this
   * side's receive window as `connect` does (docs/protocol.md §1.4, §1.5). `target` is kept as the
   * stream's `hostname` (for logs). The remote side closing ends the stream with `disconnect{normal}` after
   * its last byte. Throws `MUX_ERR_CLOSED`, `MUX_ERR_TOO_MANY_STREAMS`, or `MUX_ERR_INVALID_CONTROL` when a
   * stream `id` is open already.
   */
  acceptOutbound(id: string, target: string): MuxStream {
    if (this.role !== 'hub') throw new TypeError('acceptOutbound is for the hub role');
    this.#assertRoom();
    if (this.#engine.getStream(id) !== undefined)
      throw new MuxProtocolError('MUX_ERR_INVALID_CONTROL', `stream ${id} is open already`);
    const connect: ConnectMessage = {
      event: 'connect',
      client_id: id,
      conn_port: 0,
      client_ip: '',
      hostname: target,
      is_tls: false,
    };
    const stream = this.#openHubStream(connect, 'close');
    const result: OutboundResultMessage = {
      event: 'outbound_result',
      client_id: id,
      success: true,
      credits: stream.initialCredits,
    };
    this.#engine.sendControl(encodeControlMessage(result));
    return stream;
  }

  /** Hub role: answers `outbound_connect` `id` with `outbound_result{success:false, reason}`. */
  refuseOutbound(id: string, reason: string): void {
    if (this.role !== 'hub') throw new TypeError('refuseOutbound is for the hub role');
    const result: OutboundResultMessage = { event: 'outbound_result', client_id: id, success: false, reason };
    this.#engine.sendControl(encodeControlMessage(result));
  }

  /**
   * Backend role: asks the hub for an outbound TCP connection to `targetAddr` (`host:port`, `[v6]:port`)
   * with `outbound_connect`, and resolves with its stream once `outbound_result` says it is up (this side
   * then meters with the hub's credits and sends its own grant first, as for `connect`). Rejects with
   * `MUX_ERR_OUTBOUND_REFUSED` (the hub's reason as message), `MUX_ERR_OUTBOUND_TIMEOUT`, `MUX_ERR_CLOSED`
   * (session closed, or `signal` aborted) or `MUX_ERR_TOO_MANY_STREAMS` (streams plus pending requests at
   * `maxStreams`, or `maxPendingOutbound` requests waiting). A success that comes after the request was
   * given up is answered with `disconnect`, so the hub closes the connection.
   */
  openOutbound(targetAddr: string, options: OpenOutboundOptions): Promise<MuxStream> {
    if (this.role !== 'backend') throw new TypeError('openOutbound is for the backend role');
    const engine = this.#engine;
    if (engine.closed) return Promise.reject(new MuxProtocolError('MUX_ERR_CLOSED', 'the session is closed'));
    const pending = this.#pendingOutbound;
    if (pending.size >= this.#maxPendingOutbound || engine.streamCount + pending.size >= this.#maxStreams) {
      return Promise.reject(
        new MuxProtocolError('MUX_ERR_TOO_MANY_STREAMS', 'too many streams and outbound requests'),
      );
    }
    if (options.signal?.aborted) {
      return Promise.reject(new MuxProtocolError('MUX_ERR_CLOSED', 'the outbound request was cancelled'));
    }
    const id = newStreamId();
    return new Promise<MuxStream>((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        pending.delete(id);
      };
      const onAbort = () => {
        settle();
        reject(new MuxProtocolError('MUX_ERR_CLOSED', 'the outbound request was cancelled'));
      };
      const timer = setTimeout(() => {
        settle();
        reject(
          new MuxProtocolError(
            'MUX_ERR_OUTBOUND_TIMEOUT',
            `no outbound_result within ${options.timeoutMs} ms`,
          ),
        );
      }, options.timeoutMs);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      pending.set(id, {
        targetAddr,
        resolve: (stream) => {
          settle();
          resolve(stream);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      });
      const request: OutboundConnectMessage = {
        event: 'outbound_connect',
        client_id: id,
        target_addr: targetAddr,
      };
      engine.sendControl(encodeControlMessage(request));
    });
  }

  /** Backend role: `outbound_connect` requests waiting for their answer. */
  get pendingOutbound(): number {
    return this.#pendingOutbound.size;
  }

  #assertRoom(): void {
    const engine = this.#engine;
    if (engine.closed) throw new MuxProtocolError('MUX_ERR_CLOSED', 'the session is closed');
    if (engine.full) {
      throw new MuxProtocolError(
        'MUX_ERR_TOO_MANY_STREAMS',
        `session already carries ${engine.streamCount} streams`,
      );
    }
  }

  /** Hub role: a stream the hub opens (`connect`) or accepts (`outbound_result`), metered as §1.5 says. */
  #openHubStream(connect: ConnectMessage, localEnd: 'close' | 'keep-open'): MuxStream {
    const engine = this.#engine;
    // The hub sends unmetered until the backend's first grant: a v1 backend never grants (§1.5). Once
    // this backend has granted on an earlier stream it is known to grant on every stream, so the wait
    // for this stream's grant is bounded by the window it granted before.
    const peerWindow = engine.peerWindow;
    // A UDP flow is never metered by the backend's credits (§1.5): the reference's backend grants once
    // and never again for UDP, and a datagram that cannot be sent is dropped, never waited for.
    const datagram = connect.transport === 'udp';
    const sendMetering: SendMetering = datagram
      ? { mode: 'unmetered' }
      : peerWindow === undefined
        ? { mode: 'on-first-grant' }
        : { mode: 'on-first-grant', unmeteredLimit: peerWindow };
    return engine.openStream({
      id: connect.client_id,
      connect,
      datagram,
      sendMetering,
      // A backend that granted before meters from the connect on, so a frame past the window is an
      // over-send even before this stream's first grant; otherwise it may be a v1 backend (probing).
      receiveMetering: peerWindow === undefined ? { mode: 'probing' } : { mode: 'strict' },
      // `keep-open`: the end user half-closed, the response must still flow (see LocalEndBehaviour).
      // `close`: an outbound target closed, its response is complete.
      localEnd,
      awaitingAnswer: true,
    });
  }

  /**
   * Feeds one binary message from the transport, or its parts (`length` bytes in all: a DATA frame's
   * payload reaches its stream as these views, not joined). Never throws on hostile input.
   */
  receive(message: Uint8Array | readonly Uint8Array[], length?: number): void {
    this.#engine.receive(message, length);
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
    this.#failPendingOutbound(reason);
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
      case 'outbound_connect':
        this.#receiveOutboundConnect(message);
        return;
      case 'outbound_result':
        this.#receiveOutboundResult(message);
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
    const stream = this.#openBackendStream(connect);
    this.emit('stream', stream, connect);
  }

  /** Backend role: a stream the hub opened (`connect`) or accepted (`outbound_result`), metered as §1.5 says. */
  #openBackendStream(connect: ConnectMessage): MuxStream {
    const engine = this.#engine;
    const id = connect.client_id;
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
      // A UDP flow: one datagram per frame; sending drops when the hub's credits run out (§1.5).
      datagram: connect.transport === 'udp',
      sendMetering: metered ? { mode: 'metered', credits } : { mode: 'unmetered' },
      receiveMetering,
      // The local service closed: its response is complete, so `end()` sends `disconnect{normal}`.
      localEnd: 'close',
      awaitingAnswer: false,
    });
    // Our window, before any DATA of ours (same ordered lane), so the hub can meter from here on.
    if (metered) engine.sendInitialGrant(id);
    return stream;
  }

  #receiveOutboundConnect(request: OutboundConnectMessage): void {
    if (this.role !== 'hub') {
      this.#engine.warnIgnored(
        { streamId: request.client_id },
        'ignoring outbound_connect sent to a backend',
      );
      return;
    }
    if (this.listenerCount('outbound-connect') === 0) {
      this.refuseOutbound(request.client_id, 'outbound connections disabled on this proxy');
      return;
    }
    this.emit('outbound-connect', request);
  }

  #receiveOutboundResult(result: OutboundResultMessage): void {
    const id = result.client_id;
    const engine = this.#engine;
    if (this.role !== 'backend') {
      engine.warnIgnored({ streamId: id }, 'ignoring outbound_result sent to a hub');
      return;
    }
    const pending = this.#pendingOutbound.get(id);
    if (pending === undefined) {
      // Given up (timeout, the local client left) or never asked: a success holds a connection open
      // on the hub, so close it; a failure needs no answer.
      if (result.success && engine.getStream(id) === undefined) engine.refuse(id, 'unknown');
      else engine.warnIgnored({ streamId: id }, 'ignoring outbound_result for no pending request');
      return;
    }
    if (!result.success) {
      pending.reject(
        new MuxProtocolError('MUX_ERR_OUTBOUND_REFUSED', result.reason ?? 'outbound connection refused'),
      );
      return;
    }
    if (engine.full) {
      engine.refuse(id, 'too_many_streams');
      pending.reject(new MuxProtocolError('MUX_ERR_TOO_MANY_STREAMS', 'too many streams'));
      return;
    }
    const connect: ConnectMessage = {
      event: 'connect',
      client_id: id,
      conn_port: 0,
      client_ip: '',
      hostname: pending.targetAddr,
      is_tls: false,
    };
    if (result.credits !== undefined) connect.credits = result.credits;
    const stream = this.#openBackendStream(connect);
    pending.resolve(stream);
  }

  /** Rejects every outbound request still waiting: the session is gone. */
  #failPendingOutbound(reason: string): void {
    for (const pending of [...this.#pendingOutbound.values()]) {
      pending.reject(new MuxProtocolError('MUX_ERR_CLOSED', `the session closed (${reason})`));
    }
  }
}
