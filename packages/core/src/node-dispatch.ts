/**
 * The node's dispatch: where a sniffed end-user connection goes. The routing table decides once
 * (`RoutingTable.resolve`: a local pool, peer links, or no route); {@link openRoute} opens a stream on
 * that answer (a backend stream from the hub, or a tunnel from the mesh); {@link NodeDispatch} reports
 * it (`stream-open`, `stream-close`, `route-miss`, all carrying the matched pattern where there is one)
 * and relays the end user through `relayMuxStream`.
 */
import type { Socket } from 'node:net';
import { LogRateLimit } from '@nexus-proxy/common';
import type { BackendSession } from './backend-session.js';
import { LimitError, NoRouteError, type NoRouteReason } from './errors.js';
import type { BackendHub, HubStreamInit } from './hub.js';
import type { Logger } from './logger.js';
import type { PeerMesh } from './mesh.js';
import { type MuxStreamLike, type RelayHandle, type RelayStats, relayMuxStream } from './relay.js';
import type { MeteredRelays } from './relay-bandwidth.js';
import type { UploadBudget } from './relay-uploads.js';
import type { RouteDecision, RoutingTable } from './routing-table.js';
import type { SniffedConnection } from './sniff-connection.js';

/** Payload of `stream-open`. */
export interface StreamOpenEvent {
  id: string;
  hostname: string;
  /** Relay port the end user connected to. */
  port: number;
  isTls: boolean;
  /** Where the stream went: `local` (a backend of this node) or `peer` (tunnelled to another node). */
  via: 'local' | 'peer';
  /** The routing table's pattern that matched: the hostname itself, or `*.suffix`. */
  route: string;
}

/** Payload of `stream-close`: one per relayed end-user connection. */
export interface StreamCloseEvent extends StreamOpenEvent {
  reason: string;
  /** Bytes from the end user (prelude included). */
  bytesUp: number;
  /** Bytes to the end user. */
  bytesDown: number;
  durationMs: number;
}

/** Payload of `route-miss`. */
export interface RouteMissEvent {
  hostname: string;
  port: number;
  isTls: boolean;
  /** Why: `no-route` (nobody serves the name), `invalid-hostname`, or `peers-unavailable`. */
  reason: NoRouteReason;
}

/** Refusal log lines (`connection refused: <reason>`) per reason and second; the rest are counted. */
export const REFUSAL_LOG_LINES_PER_SECOND = 10;
/** Longest routed name a refusal log line shows (an HTTP `Host` can be far longer than a DNS name). */
const MAX_LOGGED_HOST = 253;

/** A stream opened on a routing decision. */
export interface OpenedRoute {
  stream: MuxStreamLike & { id: string };
  via: StreamOpenEvent['via'];
  /** The routing table's pattern that matched. */
  route: string;
  /** The backend session the stream goes to (`via: 'local'`). */
  session?: BackendSession;
}

/**
 * Opens a stream on a routing decision: a local pool → a backend stream (`BackendHub.openRouted`), peer
 * links → a tunnel (`PeerMesh.openTunnel`). Throws `NoRouteError` when there is no route (or no mesh, or
 * no link took the tunnel) and `LimitError` when every backend of the pool is at its limits.
 */
export function openRoute(
  route: RouteDecision<BackendSession>,
  init: HubStreamInit,
  blocks: { hub: BackendHub; mesh: PeerMesh | undefined },
): OpenedRoute {
  switch (route.kind) {
    case 'local': {
      const { stream, session } = blocks.hub.openRouted(route, init);
      return { stream, session, via: 'local', route: route.pattern };
    }
    case 'peer': {
      const tunnel = blocks.mesh?.openTunnel(route, init);
      if (tunnel === undefined) throw new NoRouteError(route.hostname, 'peers-unavailable');
      return { stream: tunnel, via: 'peer', route: route.pattern };
    }
    default:
      throw new NoRouteError(route.hostname, route.reason);
  }
}

/** `ip:port` of an end user as backends get it (`[v6]:port`; IPv4-mapped addresses in their IPv4 form). */
export function formatClientIp(address: string | undefined, port: number | undefined): string {
  let ip = address ?? '';
  if (ip.startsWith('::ffff:') && ip.includes('.')) ip = ip.slice(7);
  const p = port ?? 0;
  return ip.includes(':') ? `[${ip}]:${p}` : `${ip}:${p}`;
}

/** What {@link NodeDispatch} reports. */
export interface NodeDispatchEvents {
  'stream-open': [event: StreamOpenEvent];
  'stream-close': [event: StreamCloseEvent];
  'route-miss': [event: RouteMissEvent];
}

/** Collaborators of {@link NodeDispatch}; read at each connection, so a reload or a late mesh applies. */
export interface NodeDispatchOptions {
  routes: RoutingTable<BackendSession>;
  hub: BackendHub;
  /** The mesh, once it runs. */
  mesh(): PeerMesh | undefined;
  /** Relay timeouts in force, ms. */
  timeouts(): { idleTimeoutMs: number; clientFinTimeoutMs: number; streamEndGraceMs: number };
  emit<K extends keyof NodeDispatchEvents>(event: K, ...args: NodeDispatchEvents[K]): void;
  /** The node's logger (`component: 'nexus'`). */
  log: Logger;
  /** The relays under the bandwidth cap (metered while it is set). Default: none, never metered. */
  meters?: MeteredRelays;
  /** The node's count of what streams hold of what end users sent (`limits.maxBufferedUploadBytes`). Default: none. */
  uploads?: UploadBudget;
}

/**
 * Routes and relays the sniffed connections of a node, and keeps the relays running so that `close()`
 * can drain them.
 */
export class NodeDispatch {
  readonly #options: NodeDispatchOptions;
  readonly #relays = new Set<RelayHandle>();
  /** Bounds the `connection refused` lines; what it holds back is logged as one count per reason. */
  readonly #refusalLog: LogRateLimit;

  constructor(options: NodeDispatchOptions) {
    this.#options = options;
    this.#refusalLog = new LogRateLimit({
      perWindow: REFUSAL_LOG_LINES_PER_SECOND,
      windowMs: 1_000,
      onSuppressed: (reason, suppressed) =>
        options.log.info({ reason, suppressed }, `connections refused: ${reason} (lines suppressed)`),
    });
  }

  /** Relayed streams right now. */
  get activeStreams(): number {
    return this.#relays.size;
  }

  /**
   * Routes `socket` (arrived on relay port `port`) and relays it. Returns `undefined` once the socket is
   * relayed, else the reason the relay listener closes it with: `no-route` (also reported as
   * `route-miss`), `stream-limit`, `pending-limit` or `stream-error`. A peer route to a discovered node
   * with no link yet answers with a promise: the link is opened on demand first (docs/mesh.md
   * "Discovery on NATS"), then the route is tried once more.
   */
  dispatch(
    port: number,
    socket: Socket,
    sniffed: SniffedConnection,
  ): string | undefined | Promise<string | undefined> {
    return this.#dispatch(port, socket, sniffed, this.#options.routes.resolve(sniffed.hostname), true);
  }

  #dispatch(
    port: number,
    socket: Socket,
    sniffed: SniffedConnection,
    decision: RouteDecision<BackendSession>,
    mayLink: boolean,
  ): string | undefined | Promise<string | undefined> {
    const { hub, emit, log } = this.#options;
    const init: HubStreamInit = {
      connPort: port,
      clientIp: formatClientIp(socket.remoteAddress, socket.remotePort),
      isTls: sniffed.isTls,
    };
    let opened: OpenedRoute;
    const mesh = this.#options.mesh();
    try {
      opened = openRoute(decision, init, { hub, mesh });
    } catch (err) {
      const linking =
        mayLink && decision.kind === 'peer' && NoRouteError.is(err)
          ? mesh?.onDemand?.connect(decision)
          : undefined;
      if (linking !== undefined) {
        return linking.then(() =>
          socket.destroyed ? 'client-closed' : this.#dispatch(port, socket, sniffed, decision, false),
        );
      }
      if (NoRouteError.is(err)) {
        this.#refused(port, sniffed, err.reason);
        return 'no-route';
      }
      if (LimitError.is(err)) return err.limit === 'maxPendingConnects' ? 'pending-limit' : 'stream-limit';
      log.error({ err, host: sniffed.hostname }, 'opening a stream failed');
      return 'stream-error';
    }
    const open: StreamOpenEvent = {
      id: opened.stream.id,
      hostname: sniffed.hostname,
      port,
      isTls: sniffed.isTls,
      via: opened.via,
      route: opened.route,
    };
    emit('stream-open', open);
    const timeouts = this.#options.timeouts();
    const meters = this.#options.meters;
    // Charged to the backend session, or for a tunnel (at this, its origin node) to the route.
    const owner = opened.session ?? opened.route;
    const handle = relayMuxStream(socket, opened.stream, {
      idleTimeoutMs: timeouts.idleTimeoutMs,
      clientFinTimeoutMs: timeouts.clientFinTimeoutMs,
      endGraceMs: timeouts.streamEndGraceMs,
      prelude: sniffed.prelude,
      bandwidth: meters?.account(owner),
      uploads: this.#options.uploads,
      onClose: (stats: RelayStats) => {
        this.#relays.delete(handle);
        meters?.delete(handle);
        const { reason, bytesUp, bytesDown, durationMs } = stats;
        log.info(
          { id: open.id, host: open.hostname, port, reason, bytesUp, bytesDown, durationMs },
          'stream closed',
        );
        emit('stream-close', { ...open, reason, bytesUp, bytesDown, durationMs });
      },
    });
    this.#relays.add(handle);
    meters?.add(handle, owner);
    return undefined;
  }

  /**
   * Reports a connection closed for want of a route: the `route-miss` event, and one info line naming the
   * routed name and the reason, never the end user's address (rate-limited per reason).
   */
  #refused(port: number, sniffed: SniffedConnection, reason: NoRouteReason): void {
    this.#options.emit('route-miss', { hostname: sniffed.hostname, port, isTls: sniffed.isTls, reason });
    if (!this.#refusalLog.admit(reason)) return;
    const host =
      sniffed.hostname.length > MAX_LOGGED_HOST
        ? `${sniffed.hostname.slice(0, MAX_LOGGED_HOST)}…`
        : sniffed.hostname;
    this.#options.log.info({ host, reason, port }, `connection refused: ${reason}`);
  }

  /**
   * Lets the relayed streams finish for up to `graceMs`, then cuts the rest (reason `shutdown`); logs the
   * count of refusal lines held back so far.
   */
  async drain(graceMs: number): Promise<void> {
    this.#refusalLog.flush();
    if (this.#relays.size === 0) return;
    this.#options.log.info({ streams: this.#relays.size, graceMs }, 'draining relayed streams');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.#relays].map((r) => r.done)),
      new Promise<void>((r) => {
        timer = setTimeout(r, graceMs);
      }),
    ]);
    clearTimeout(timer);
    for (const r of this.#relays) r.close('shutdown');
  }
}
