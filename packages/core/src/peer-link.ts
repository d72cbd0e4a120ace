/**
 * One peer link (docs/protocol.md §2): a WebSocket between two nodes, whichever side dialled. It decodes the
 * text messages (`announce`, `tunnel_request`), hands binary frames to its {@link TunnelSession}, keeps
 * the announce bookkeeping of the far side, and runs a keepalive on both ends — the reference peer links
 * have no read deadline, so a silently dead peer would keep its routes forever (docs/protocol.md §2.5,
 * docs/reliability.md item 13).
 */
import { EventEmitter } from 'node:events';
import {
  createWsBinarySender,
  DATA_HIGH_WATER_MARK,
  Keepalive,
  takeBinaryMessagesAsViews,
} from '@nexus-proxy/common';
import { countReceivedBytes } from '@nexus-proxy/common/relay-heap';
import {
  type AnnounceMessage,
  decodePeerMessage,
  encodePeerMessage,
  type PeerCapabilities,
  type RouteSyncMessage,
  type TunnelRequestMessage,
  MAX_DATA_PAYLOAD,
  peerDataPayload,
  TunnelSession,
  type TunnelSessionOptions,
} from '@nexus-proxy/mux-protocol';
import { WebSocket } from 'ws';
import { MAX_CLOSE_REASON_BYTES, truncateUtf8 } from './errors.js';
import { type Logger, noopLogger } from './logger.js';
import { type PeerMessageType, type PeerTraffic, textMessageType } from './mesh-stats.js';

/** Interval between WebSocket pings on a peer link: `10_000` ms. */
export const DEFAULT_PEER_KEEPALIVE_INTERVAL = 10_000;
/** A link with no message and no pong for this long is dead: `30_000` ms. */
export const DEFAULT_PEER_KEEPALIVE_TIMEOUT = 30_000;

/** Which side opened the link. */
export type PeerLinkDirection = 'inbound' | 'outbound';

/** Why a link ended. */
export type PeerLinkCloseReason =
  | 'keepalive_timeout'
  | 'closed_by_peer'
  | 'connection_lost'
  | 'shutdown'
  | 'protocol_error'
  | (string & {});

/** Options of {@link PeerLink}. */
export interface PeerLinkOptions {
  /** Link id, unique within the node (the routing table's peer key). */
  id: string;
  direction: PeerLinkDirection;
  /** Who is on the other end: the matched certificate name (inbound) or the dialled URL (outbound). */
  peer: string;
  /** Ping interval, ms; `0` = no pings. Default: `10_000`. */
  keepaliveIntervalMs?: number;
  /** Dead-link deadline, ms; `0` = none. Default: `30_000`. */
  keepaliveTimeoutMs?: number;
  /** Options of the link's tunnel session (its transport is this link). */
  tunnels?: Omit<TunnelSessionOptions, 'transport' | 'logger' | 'maxDataPayload' | 'sendDataPayload'>;
  /**
   * The largest TUNNEL_DATA payload this node accepts, said in its first announce, bytes
   * (docs/protocol.md §2.6, §1.11); it applies once the peer's first announce says what the peer accepts
   * (the peer is a Nexus node that read it). Default: `32_768`.
   */
  maxDataPayload?: number;
  /** Logger. Default: no-op. */
  logger?: Logger;
  /** Counters of messages and bytes in and out, shared by the mesh's links. Default: none. */
  traffic?: PeerTraffic;
  /**
   * SHA-256 fingerprints of the certificates of this link's TLS handshake: the one this node presented
   * and the peer's. With the peer's epoch they identify the pair of nodes (one link per pair). Default: none.
   */
  localFingerprint?: string;
  remoteFingerprint?: string;
}

/** Events of {@link PeerLink}. */
export interface PeerLinkEvents {
  /** An announce with a version newer than the last one seen on this link. */
  announce: [message: AnnounceMessage];
  /** The peer asks this node to carry a tunnel. */
  'tunnel-request': [message: TunnelRequestMessage];
  /** A route delta, a part of a route state, or a resync request (docs/protocol.md §2.6). */
  'route-sync': [message: RouteSyncMessage];
  /** The link ended (once); its tunnels have been closed. */
  close: [reason: PeerLinkCloseReason];
}

/** A peer link over one open WebSocket. */
export class PeerLink extends EventEmitter<PeerLinkEvents> {
  readonly id: string;
  readonly direction: PeerLinkDirection;
  /** The matched certificate name (inbound) or the dialled URL (outbound). */
  readonly peer: string;
  /** The link's tunnels. */
  readonly tunnels: TunnelSession;
  /** When the link was established (ms since the epoch). */
  readonly openedAt = Date.now();
  /** Version of the last announce accepted on this link; `undefined` before the first. */
  lastAnnounceVersion: number | undefined;
  /** Announces ignored because their version was not newer. */
  staleAnnounces = 0;
  /** Fingerprints of this node's and the peer's certificate on this link (see {@link PeerLinkOptions}). */
  readonly localFingerprint: string | undefined;
  readonly remoteFingerprint: string | undefined;
  /** The largest TUNNEL_DATA payload this node accepts on the link (`max_data_payload`, §2.6). */
  readonly offeredDataPayload: number;

  readonly #ws: WebSocket;
  readonly #log: Logger;
  readonly #keepalive: Keepalive;
  readonly #traffic: PeerTraffic | undefined;
  /** Set while a tunnel whose peer does not meter holds the link's reads paused (backpressure). */
  #readsPaused = false;
  #closeReason: PeerLinkCloseReason | undefined;
  #closed = false;

  constructor(ws: WebSocket, options: PeerLinkOptions) {
    super();
    this.id = options.id;
    this.direction = options.direction;
    this.peer = options.peer;
    this.localFingerprint = options.localFingerprint;
    this.remoteFingerprint = options.remoteFingerprint;
    this.offeredDataPayload = options.maxDataPayload ?? MAX_DATA_PAYLOAD;
    this.#ws = ws;
    const traffic = options.traffic;
    this.#traffic = traffic;
    this.#log = (options.logger ?? noopLogger).child({ link: options.id, peer: options.peer });
    this.#keepalive = new Keepalive(
      {
        intervalMs: options.keepaliveIntervalMs ?? DEFAULT_PEER_KEEPALIVE_INTERVAL,
        timeoutMs: options.keepaliveTimeoutMs ?? DEFAULT_PEER_KEEPALIVE_TIMEOUT,
      },
      {
        ping: () => {
          if (ws.readyState === WebSocket.OPEN) ws.ping();
        },
        onTimeout: (silentForMs) => {
          this.#log.warn({ silentForMs }, 'peer went silent: dropping the link');
          this.terminate('keepalive_timeout');
        },
        // Silence while we hold reads paused is ours, not the peer's (its pongs wait unread).
        suspended: () => this.#readsPaused,
      },
    );
    const onSent = (): void => {
      if (ws.bufferedAmount <= DATA_HIGH_WATER_MARK) this.tunnels.transportDrained();
    };
    const sender = createWsBinarySender(ws, { onSent });
    this.tunnels = new TunnelSession({
      // TUNNEL_DATA waits until the frame before it has left: each goes to the TLS socket as one buffer.
      highWaterMark: DATA_HIGH_WATER_MARK,
      ...options.tunnels,
      logger: this.#log,
      transport: {
        sendBinary: (message) => {
          traffic?.sent('tunnel_frame', message.length);
          sender.send(message);
        },
        sendData: (header, payload, payloadLength, onWritten) => {
          traffic?.sent('tunnel_frame', header.length + payloadLength);
          sender.sendData(header, payload, payloadLength, onWritten);
        },
        sendText: (text) => {
          if (ws.readyState !== WebSocket.OPEN) return;
          traffic?.sent('tunnel_request', Buffer.byteLength(text));
          ws.send(text, { binary: false });
        },
        get bufferedAmount() {
          return ws.bufferedAmount;
        },
        pause: () => {
          this.#readsPaused = true;
          ws.pause();
        },
        resume: () => {
          // The peer's pongs sat unread while we held reads paused: count it alive from here.
          this.#readsPaused = false;
          this.#keepalive.markAlive();
          ws.resume();
        },
      },
    });
    this.tunnels.on('protocol-error', (err) =>
      this.#log.warn({ code: err.code, err: err.message }, 'bad frame from peer'),
    );
    // The tunnel engine closed itself on a limit (a flood, or the peer not reading): a policy close.
    this.tunnels.on('abort', (reason) => this.close(reason, 1008));

    /** A binary message, whole (from ws) or as the views of the TLS reads it came in. */
    const onBinary = (parts: Buffer[], length: number): void => {
      this.#keepalive.markAlive();
      traffic?.received('tunnel_frame', length);
      // The TLS reads the message came in are buffers outside the JS heap (relay-heap).
      countReceivedBytes(length);
      this.tunnels.receive(parts, length);
    };
    ws.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.isBuffer(data)
          ? data
          : Buffer.from(data);
      if (isBinary) onBinary([bytes], bytes.length);
      else {
        this.#keepalive.markAlive();
        this.#onText(bytes.toString('utf8'), bytes.length);
      }
    });
    // Final binary messages (TUNNEL_DATA) straight out of the TLS reads, as views; ws delivers the rest.
    takeBinaryMessagesAsViews(ws, onBinary);
    ws.on('pong', () => this.#keepalive.markAlive());
    ws.on('ping', () => this.#keepalive.markAlive());
    ws.on('error', (err) => this.#log.debug({ err: err.message }, 'peer link error'));
    ws.once('close', (code, reason) => this.#onClose(code, reason.toString()));
    this.#keepalive.start();
  }

  /** Whether the link has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Why the link ended, once it has. */
  get closeReason(): PeerLinkCloseReason | undefined {
    return this.#closeReason;
  }

  /**
   * Sends a full-state announce (docs/protocol.md §2.2), with this node's capabilities on a link's first
   * (§2.6). `text` is the encoded message when the caller already has it (it measured it).
   */
  sendAnnounce(version: number, hostnames: readonly string[], nexus?: PeerCapabilities, text?: string): void {
    this.#sendText(
      'announce',
      text ??
        encodePeerMessage({
          type: 'announce',
          version,
          hostnames: [...hostnames],
          ...(nexus ? { nexus } : {}),
        }),
    );
  }

  /** Sends a route-sync message (docs/protocol.md §2.6); `text` as for {@link PeerLink.sendAnnounce}. */
  sendRouteSync(message: RouteSyncMessage, text?: string): void {
    this.#sendText(message.type, text ?? encodePeerMessage(message));
  }

  #sendText(type: PeerMessageType, text: string): void {
    if (this.#closed || this.#ws.readyState !== WebSocket.OPEN) return;
    this.#traffic?.sent(type, Buffer.byteLength(text));
    this.#ws.send(text, { binary: false });
  }

  /** Closes the link with a close frame; its tunnels end at once. */
  close(reason: PeerLinkCloseReason = 'shutdown', code = 1001): void {
    this.#closeReason ??= reason;
    this.#finish();
    if (this.#ws.readyState === WebSocket.OPEN || this.#ws.readyState === WebSocket.CONNECTING) {
      this.#ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
      // A peer that never answers the close frame must not hold the socket.
      const timer = setTimeout(() => this.#ws.terminate(), 2_000);
      timer.unref?.();
      this.#ws.once('close', () => clearTimeout(timer));
    }
  }

  /** Drops the link without a close handshake (a dead peer). */
  terminate(reason: PeerLinkCloseReason = 'connection_lost'): void {
    this.#closeReason ??= reason;
    this.#finish();
    this.#ws.terminate();
  }

  /**
   * Replaces the keepalive (ms; `0` turns pings or the deadline off; an omitted field is kept). The ping
   * timer restarts with the new interval; silence already counted toward the deadline still counts.
   */
  setKeepalive(keepalive: { intervalMs?: number; timeoutMs?: number }): void {
    this.#keepalive.setTiming(keepalive);
  }

  #onText(text: string, bytes: number): void {
    const result = decodePeerMessage(text);
    this.#traffic?.received(result.ok ? textMessageType(result.value.type) : 'other', bytes);
    if (!result.ok) {
      this.#log.warn(
        { code: result.error.code, err: result.error.message },
        'ignoring malformed peer message',
      );
      return;
    }
    const message = result.value;
    switch (message.type) {
      case 'announce':
        // §2.2: an announce whose version is not newer than the last one on this link is stale.
        if (this.lastAnnounceVersion !== undefined && message.version <= this.lastAnnounceVersion) {
          this.staleAnnounces++;
          this.#log.debug(
            { version: message.version, last: this.lastAnnounceVersion },
            'ignoring stale announce',
          );
          return;
        }
        // §2.6: the peer's first message, before any tunnel: every tunnel uses the limits set here.
        if (this.lastAnnounceVersion === undefined) this.#learnDataPayload(message);
        this.lastAnnounceVersion = message.version;
        this.emit('announce', message);
        return;
      case 'tunnel_request':
        this.emit('tunnel-request', message);
        return;
      case 'route_delta':
      case 'route_state':
      case 'route_resync':
        this.emit('route-sync', message);
        return;
      default:
        this.#log.warn({ type: message.messageType }, 'ignoring peer message of unknown type');
    }
  }

  /**
   * The peer's first announce says what it accepts (§1.11): tunnels send it at most that, and accept what
   * this node said in its own first announce, which the peer has read.
   */
  #learnDataPayload(message: AnnounceMessage): void {
    const offered = message.nexus?.max_data_payload;
    if (offered === undefined) return;
    const payloads = { receive: this.offeredDataPayload, send: peerDataPayload(offered) };
    this.tunnels.setDataPayloads(payloads);
    this.#log.debug(payloads, 'tunnel payload limits learnt from the peer');
  }

  #onClose(code: number, reason: string): void {
    this.#closeReason ??= code === 1006 ? 'connection_lost' : 'closed_by_peer';
    this.#log.debug({ code, reason }, 'peer link socket closed');
    this.#finish();
  }

  /** Ends the tunnels and reports the close, once, whichever way the link ended. */
  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#keepalive.stop();
    const reason = this.#closeReason ?? 'connection_lost';
    this.tunnels.close(reason);
    this.emit('close', reason);
  }
}
