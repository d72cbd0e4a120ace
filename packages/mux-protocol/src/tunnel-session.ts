/**
 * Tunnels multiplexed over one peer link (docs/protocol.md §2.2–§2.4): the {@link StreamEngine} with the
 * tunnel framing — DATA goes out as TUNNEL_DATA (`0x11`), grants as TUNNEL_CREDITS (`0x15`), the end of
 * a tunnel as TUNNEL_CLOSE (`0x12`) — so tunnels have the same credit accounting, backpressure, fair
 * scheduling, close handling and limits as the streams of a backend session. A tunnel whose end user is
 * slow (out of credits) never holds back the others, and no frame is ever dropped.
 *
 * Credits are opt-in per side (§2.4): each side grants its receive window with a `0x15` as the tunnel
 * opens and meters its own sending only from the first `0x15` it receives. The frames a peer sent before
 * our first grant reached it are tolerated (the stream then falls back to pausing the link while its
 * reader is full, as for a peer that never grants).
 */
import { EventEmitter } from 'node:events';
import type { ConnectMessage } from './control.js';
import { StreamEngine } from './engine.js';
import type { EngineAbortReason, StreamEngineTuning } from './engine-options.js';
import { MuxProtocolError } from './errors.js';
import { tunnelFraming } from './framing.js';
import { encodePeerMessage, type TunnelRequestMessage } from './peer.js';
import type { MuxStream } from './stream.js';
import { newStreamId } from './stream-id.js';
import type { MuxTransport } from './transport.js';

/** Most tunnels one link carries at once; further requests are answered with `0x12`. */
export const DEFAULT_MAX_TUNNELS_PER_LINK = 10_000;

/** The link a {@link TunnelSession} sends on (a WebSocket, adapted). */
export interface TunnelTransport extends Pick<MuxTransport, 'bufferedAmount' | 'sendData'> {
  /** Sends one binary message. The session never reuses `message` after the call. */
  sendBinary(message: Uint8Array): void;
  /** Sends one text message (`tunnel_request`). */
  sendText(text: string): void;
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
  /** `'udp'`: a UDP flow, one datagram per frame, without credits (§2.4). Default: `'tcp'`. */
  transport?: 'tcp' | 'udp';
}

/** Options of {@link TunnelSession}; the engine's limits and tuning are those of {@link StreamEngineTuning}. */
export interface TunnelSessionOptions extends StreamEngineTuning {
  transport: TunnelTransport;
  /** Most concurrent tunnels (both directions). Default: `10_000`. */
  maxTunnels?: number;
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
  /** Most bytes the tunnels had added to their windows at once (docs/protocol.md §1.5, "Windows that grow"). */
  windowGrowthPeak: number;
}

/** Events of {@link TunnelSession}. */
export interface TunnelSessionEvents {
  /** A malformed frame arrived; the link stays up. */
  'protocol-error': [error: MuxProtocolError];
  /**
   * The session closed itself because the peer broke a limit (`empty-data-flood`, `peer-not-reading`);
   * `'close'` follows. Close the link with a policy violation (WebSocket 1008) and `reason`.
   */
  abort: [reason: EngineAbortReason, error: MuxProtocolError];
  /** The session closed; every tunnel has ended. */
  close: [reason: string];
}

/**
 * The tunnels of one peer link. The owner feeds binary messages to {@link receive}, calls
 * {@link transportDrained} when the WebSocket drains, handles `tunnel_request` text messages with
 * {@link accept} or {@link refuse}, and calls {@link close} when the link ends.
 *
 * Tunnel streams are `Duplex`es (`MuxStream`). Both ends keep a tunnel open on a local `end()` (the end
 * user's FIN sends nothing, so the response keeps flowing); `disconnect()` sends `0x12` after the last
 * byte written; `destroy()` sends `0x12` at once. A `0x12` from the peer delivers what was received,
 * then EOF.
 */
export class TunnelSession extends EventEmitter<TunnelSessionEvents> {
  readonly #transport: TunnelTransport;
  readonly #engine: StreamEngine;
  #opened = 0;
  #accepted = 0;
  #refused = 0;

  constructor(options: TunnelSessionOptions) {
    super();
    const transport = options.transport;
    this.#transport = transport;
    const engineTransport: MuxTransport = {
      send: (message) => transport.sendBinary(message),
      get bufferedAmount() {
        return transport.bufferedAmount;
      },
    };
    if (transport.sendData !== undefined) engineTransport.sendData = transport.sendData.bind(transport);
    this.#engine = new StreamEngine({
      ...options,
      framing: tunnelFraming,
      transport: engineTransport,
      maxStreams: options.maxTunnels ?? DEFAULT_MAX_TUNNELS_PER_LINK,
      pauseTransport: () => transport.pause(),
      resumeTransport: () => transport.resume(),
      onProtocolError: (error) => this.emit('protocol-error', error),
      onAbort: (reason, error) => {
        this.emit('abort', reason, error);
        this.emit('close', reason);
      },
    });
  }

  /** Tunnels open now. */
  get tunnelCount(): number {
    return this.#engine.streamCount;
  }

  /** Whether {@link close} has been called. */
  get closed(): boolean {
    return this.#engine.closed;
  }

  /** Largest TUNNEL_DATA payload accepted now, bytes (docs/protocol.md §1.11). */
  get maxDataPayload(): number {
    return this.#engine.maxDataPayload;
  }

  /** Largest TUNNEL_DATA payload sent now, bytes (docs/protocol.md §1.11). */
  get sendDataPayload(): number {
    return this.#engine.sendDataPayload;
  }

  /**
   * Sets the largest TUNNEL_DATA payloads from now on: `receive`, what this node told the peer it accepts,
   * and `send`, what the peer told it accepts, in their first announces (docs/protocol.md §2.6, §1.11),
   * which arrive before any tunnel. The window of tunnels opened from now on covers the same bytes in
   * fewer, larger frames.
   */
  setDataPayloads(payloads: { receive: number; send: number }): void {
    this.#engine.setDataPayloads(payloads);
  }

  /** The open tunnel with id `id`, if any. */
  getTunnel(id: string): MuxStream | undefined {
    return this.#engine.getStream(id);
  }

  /**
   * Origin: opens a tunnel. Sends `tunnel_request` and then this side's window (`0x15`), in that order
   * on the link, before any TUNNEL_DATA. Write the prelude as the stream's first write. Returns
   * `undefined` when the session is closed or carries `maxTunnels` tunnels.
   */
  open(init: TunnelInit): MuxStream | undefined {
    const engine = this.#engine;
    if (engine.closed || engine.full) return undefined;
    const request: TunnelRequestMessage = {
      type: 'tunnel_request',
      client_id: newStreamId(),
      conn_port: init.connPort,
      client_ip: init.clientIp,
      hostname: init.hostname,
      is_tls: init.isTls,
      transport: init.transport ?? 'tcp',
    };
    const stream = this.#create(request);
    this.#opened++;
    this.#transport.sendText(encodePeerMessage(request));
    if (!stream.datagram) engine.sendInitialGrant(stream.id);
    return stream;
  }

  /**
   * Destination: accepts a `tunnel_request` and grants this side's window. Returns `undefined` (and
   * answers `0x12`) when the id is already in use, the session is closed or full.
   */
  accept(request: TunnelRequestMessage): MuxStream | undefined {
    const id = request.client_id;
    const engine = this.#engine;
    if (engine.closed) return undefined;
    if (engine.getStream(id) !== undefined) {
      engine.protocolError(
        new MuxProtocolError('MUX_ERR_INVALID_PEER_MESSAGE', `duplicate tunnel_request for tunnel ${id}`),
      );
      return undefined;
    }
    if (engine.full) {
      engine.warnIgnored(
        { tunnelId: id, maxTunnels: engine.streamCount },
        'refusing tunnel: too many tunnels',
      );
      this.refuse(id);
      return undefined;
    }
    const stream = this.#create(request);
    this.#accepted++;
    if (!stream.datagram) engine.sendInitialGrant(id);
    return stream;
  }

  /**
   * Destination: answers a `tunnel_request` it cannot serve with `0x12` at once, so the origin closes
   * its end user instead of streaming into the void (docs/protocol.md §2.4).
   */
  refuse(tunnelId: string): void {
    this.#refused++;
    this.#engine.refuse(tunnelId, 'refused');
  }

  /**
   * Feeds one binary message from the link, or its parts (`length` bytes in all: a TUNNEL_DATA frame's
   * payload reaches its stream as these views, not joined). Never throws on hostile input.
   */
  receive(message: Uint8Array | readonly Uint8Array[], length?: number): void {
    this.#engine.receive(message, length);
  }

  /** Call when the link's send buffer has drained. */
  transportDrained(): void {
    this.#engine.transportDrained();
  }

  /**
   * Ends every tunnel: each delivers what it already received, then EOF (end users get a FIN, like the
   * streams of a dead backend session, docs/protocol.md §1.7). Sends nothing. Idempotent.
   */
  close(reason = 'link_closed'): void {
    if (this.#engine.closed) return;
    this.#engine.close(reason);
    this.emit('close', reason);
  }

  /** A snapshot of the counters. */
  stats(): TunnelSessionStats {
    const counters = this.#engine.counters();
    return {
      tunnels: this.#engine.streamCount,
      opened: this.#opened,
      accepted: this.#accepted,
      refused: this.#refused,
      queued: counters.queuedStreams,
      framesSent: counters.dataFramesSent,
      framesReceived: counters.dataFramesReceived,
      bytesSent: counters.bytesSent,
      bytesReceived: counters.bytesReceived,
      protocolErrors: counters.protocolErrors,
      windowGrowthPeak: counters.windowGrowthPeak,
    };
  }

  #create(request: TunnelRequestMessage): MuxStream {
    const connect: ConnectMessage = {
      event: 'connect',
      client_id: request.client_id,
      conn_port: request.conn_port,
      client_ip: request.client_ip,
      hostname: request.hostname,
      is_tls: request.is_tls,
    };
    if (request.transport === 'udp') {
      // §2.4: UDP tunnels carry no credits either way; a datagram that cannot be sent is dropped, and
      // one received is delivered or dropped at once, so it never pauses the link.
      connect.transport = 'udp';
      return this.#engine.openStream({
        id: request.client_id,
        connect,
        datagram: true,
        sendMetering: { mode: 'unmetered' },
        receiveMetering: { mode: 'unmetered' },
        localEnd: 'keep-open',
        awaitingAnswer: false,
      });
    }
    const peerWindow = this.#engine.peerWindow;
    return this.#engine.openStream({
      id: request.client_id,
      connect,
      // Unmetered until the peer's first 0x15 (§2.4: credits are opt-in per side); that grant counts
      // from the tunnel's first frame (§1.5). Once the peer has granted on this link, it meters: the
      // frames sent before this tunnel's own grant arrives are bounded by the window it granted then.
      sendMetering:
        peerWindow === undefined
          ? { mode: 'on-first-grant' }
          : { mode: 'on-first-grant', unmeteredLimit: peerWindow },
      // A peer known to meter (it granted on this link) may send unmetered only until our first grant
      // reaches it: past the allowance it over-sends and the tunnel is closed. A peer that does not
      // meter (or not yet) is bounded by pausing the link while the reader is full.
      receiveMetering:
        peerWindow === undefined
          ? { mode: 'lenient', overrunAllowance: 0, onOverrun: 'pause-transport' }
          : { mode: 'lenient', overrunAllowance: this.#engine.unmeteredAllowance, onOverrun: 'close' },
      localEnd: 'keep-open',
      awaitingAnswer: false,
    });
  }
}
