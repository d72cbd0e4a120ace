import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { MuxSession } from '@nexus-proxy/mux-protocol';
import {
  type BackendClientOptions,
  type ResolvedBackendClientOptions,
  resolveBackendClientOptions,
} from './client-options.js';
import { NodeConnection, type NodeConnectionEvents, type NodeStats } from './node-connection.js';
import { formatSocks5ListenAddr, Socks5Listener, type Socks5Stats } from './socks5-listener.js';

/** Snapshot returned by `BackendClient.stats()`. */
export interface BackendClientStats {
  /** One entry per hub address, in option order. */
  nodes: NodeStats[];
  /** Nodes with a live session. */
  connectedNodes: number;
  /** Open streams over all nodes. */
  streams: number;
  /** Bytes end users sent to local services (closed and open streams). */
  bytesIn: number;
  /** Bytes local services sent to end users. */
  bytesOut: number;
  /** The SOCKS5 listener's counters, when `socks5ListenAddr` is set. */
  socks5?: Socks5Stats;
}

/** Options of `BackendClient.close()`. */
export interface BackendClientCloseOptions {
  /** Override of `closeGraceMs` for this call, ms. */
  graceMs?: number;
}

/**
 * A device's attachment to one or more Nexus nodes. Events:
 * - `'connected'` `{ node }` — a session to `node` is up and authenticated as far as v1 can tell;
 * - `'disconnected'` `{ node, reason, code, message }` — that session ended (a reconnect is scheduled
 *   unless `close()` was called); `reason: 'auth_rejected'` / `code: 1008` means the token was refused;
 * - `'stream-open'` `{ node, id, hostname, clientIp, connPort, isTls }`;
 * - `'stream-close'` `{ node, id, reason, bytesIn, bytesOut }`;
 * - `'error'` `(err)` — a connection attempt failed (`SessionError`, `TokenError`). Emitted only while an
 *   `'error'` listener is attached (so a device without one does not crash on a flaky network); every
 *   failure is logged either way.
 */
export interface BackendClient extends EventEmitter<NodeConnectionEvents> {
  /** Opens one session per node and keeps them up; no-op when already started. */
  connect(): void;
  /** Stops reconnecting, lets streams finish (up to the grace), closes every session. */
  close(options?: BackendClientCloseOptions): Promise<void>;
  /** Live sessions by hub URL (only nodes currently connected). */
  readonly sessions: ReadonlyMap<string, MuxSession>;
  /** The validated options. */
  readonly options: ResolvedBackendClientOptions;
  /** Where the SOCKS5 listener (`socks5ListenAddr`) is bound, once it is (after `connect()`). */
  readonly socks5Address: AddressInfo | undefined;
  /** Counters and per-node state. */
  stats(): BackendClientStats;
  /**
   * Replaces the port mappings and health checks used for streams opened from now on, without touching
   * the sessions or open streams (what `nexus-backend` does on SIGHUP when only these changed). Throws
   * `InvalidOptionsError` (and changes nothing) when the new options are invalid.
   */
  updateStreamOptions(update: StreamOptionsUpdate): void;
}

/** What {@link BackendClient.updateStreamOptions} can change on a running client. */
export type StreamOptionsUpdate = Pick<BackendClientOptions, 'portMappings' | 'healthChecks'>;

class BackendClientImpl extends EventEmitter<NodeConnectionEvents> implements BackendClient {
  options: ResolvedBackendClientOptions;
  readonly #connections: NodeConnection[];
  readonly #socks5: Socks5Listener | undefined;
  #started = false;
  #closing: Promise<void> | undefined;

  constructor(options: ResolvedBackendClientOptions) {
    super();
    this.options = options;
    const emit = <K extends keyof NodeConnectionEvents>(event: K, ...args: NodeConnectionEvents[K]): void => {
      if (event === 'error' && this.listenerCount('error') === 0) return;
      // Events fire inside WebSocket and socket callbacks: a listener that throws must not crash the
      // device or leave a stream half set up. Its error is logged instead.
      try {
        (this.emit as (e: K, ...a: NodeConnectionEvents[K]) => boolean)(event, ...args);
      } catch (err) {
        options.logger.error({ err, event }, 'an event listener threw');
      }
    };
    this.#connections = options.nodes.map((node) => new NodeConnection(node, options, emit));
    const first = this.#connections[0]!;
    this.#socks5 =
      options.socks5ListenAddr === undefined
        ? undefined
        : // Only the first node carries outbound connections (as in the reference client).
          new Socks5Listener({
            listen: options.socks5ListenAddr,
            session: () => first.session,
            logger: options.logger,
          });
  }

  get socks5Address(): AddressInfo | undefined {
    return this.#socks5?.address;
  }

  get sessions(): ReadonlyMap<string, MuxSession> {
    const map = new Map<string, MuxSession>();
    for (const connection of this.#connections) {
      const session = connection.session;
      if (session !== undefined) map.set(connection.node, session);
    }
    return map;
  }

  connect(): void {
    if (this.#started || this.#closing !== undefined) return;
    this.#started = true;
    for (const connection of this.#connections) connection.start();
    void this.#socks5?.start();
  }

  close(options: BackendClientCloseOptions = {}): Promise<void> {
    const graceMs = options.graceMs ?? this.options.closeGraceMs;
    this.#closing ??= Promise.all([
      this.#socks5?.close(),
      ...this.#connections.map((c) => c.close(graceMs)),
    ]).then(() => undefined);
    return this.#closing;
  }

  updateStreamOptions(update: StreamOptionsUpdate): void {
    const { portMappings, healthChecks, connectHandler, socks5ListenAddr, ...rest } = this.options;
    const next = resolveBackendClientOptions({
      ...rest,
      nodes: [...rest.nodes],
      ...(socks5ListenAddr !== undefined
        ? { socks5ListenAddr: formatSocks5ListenAddr(socks5ListenAddr) }
        : {}),
      ...(connectHandler !== undefined ? { connectHandler } : {}),
      portMappings: 'portMappings' in update ? update.portMappings : portMappings,
      healthChecks: 'healthChecks' in update ? update.healthChecks : healthChecks,
    });
    this.options = next;
    for (const connection of this.#connections) connection.setOptions(next);
  }

  stats(): BackendClientStats {
    const nodes = this.#connections.map((c) => c.stats());
    let streams = 0;
    let bytesIn = 0;
    let bytesOut = 0;
    for (const n of nodes) {
      streams += n.streams;
      bytesIn += n.bytesIn;
      bytesOut += n.bytesOut;
    }
    const connectedNodes = nodes.filter((n) => n.state === 'connected').length;
    const socks5 = this.#socks5?.stats();
    return { nodes, connectedNodes, streams, bytesIn, bytesOut, ...(socks5 !== undefined ? { socks5 } : {}) };
  }
}

/**
 * Creates a backend client. Options are validated at once (throws `InvalidOptionsError` naming the
 * field); nothing connects until `connect()`.
 *
 * ```ts
 * const client = createBackendClient({
 *   nodes: ['wss://node.example.com:8443/connect'],
 *   token: () => fetchToken(),
 *   portMappings: resolvePortMappings({ 443: 'localhost:8443' }),
 * });
 * client.on('stream-open', (s) => console.log(s.hostname, s.clientIp));
 * client.connect();
 * process.once('SIGTERM', () => client.close());
 * ```
 */
export function createBackendClient(options: BackendClientOptions): BackendClient {
  return new BackendClientImpl(resolveBackendClientOptions(options));
}
