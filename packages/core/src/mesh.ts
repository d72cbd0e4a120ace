/**
 * The mesh (PROTOCOL.md §2): nodes peer over mutually authenticated WebSockets, announce the routes their
 * local backends serve, and tunnel end-user streams to the node that has the backend.
 *
 * `PeerMesh` owns the peer listener (`/mesh`, its own port or a shared https server through
 * `handleUpgrade`), one dialer per configured peer URL, every link, the announce bookkeeping, the peer
 * routes in the node's routing table, and tunnel open (origin) / accept (destination).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket, TlsOptions } from 'node:tls';
import type { MuxStream, TunnelRequestMessage } from '@nexus-proxy/mux-protocol';
import { normalizeHostname } from '@nexus-proxy/sni';
import { WebSocket, WebSocketServer } from 'ws';
import { InvalidConfigError } from './errors.js';
import type { HubTlsContext } from './hub-tls.js';
import { type Logger, noopLogger } from './logger.js';
import { PeerAuthenticator } from './peer-auth.js';
import { PeerLink, type PeerLinkCloseReason, type PeerLinkDirection } from './peer-link.js';
import { relayConnection } from './relay.js';
import type { RoutingTable } from './routing-table.js';
import type { TunnelSessionStats } from './tunnel-session.js';

/** Path of the peer WebSocket endpoint (PROTOCOL.md §2.1). */
export const MESH_PATH = '/mesh';
/** Port of the reference peer listener (`peerListenAddress: ":8444"`). */
export const DEFAULT_PEER_LISTEN_PORT = 8444;
/** First reconnect delay of a peer dialer: `1_000` ms. */
export const DEFAULT_PEER_RECONNECT_INITIAL_DELAY = 1_000;
/** Largest reconnect delay of a peer dialer (before jitter): `60_000` ms. */
export const DEFAULT_PEER_RECONNECT_MAX_DELAY = 60_000;
/** Relative reconnect jitter: `0.25` (±25 %, PROTOCOL.md §1.6). */
export const DEFAULT_PEER_RECONNECT_JITTER = 0.25;
/** Time allowed for a dial (TCP + TLS + WebSocket handshake): `10_000` ms. */
export const DEFAULT_PEER_CONNECT_TIMEOUT = 10_000;
/** Largest WebSocket message accepted on a peer link: 4 MiB (a large announce; frames are ≤ 32 785 B). */
const MAX_PEER_WS_PAYLOAD = 4 * 1024 * 1024;
/** A link that stayed up this long resets its dialer's backoff, in ms. */
const BACKOFF_RESET_AFTER_MS = 10_000;
/** Close reason of an outbound link whose peer URL was removed by {@link PeerMesh.setPeers}. */
export const PEER_REMOVED_REASON = 'peer_removed';

/** What the destination knows about a tunnelled end user (the local stream's `connect` fields). */
export interface LocalStreamInit {
  /** The origin node's relay port the end user connected to. */
  connPort: number;
  /** End user's `ip:port`. */
  clientIp: string;
  /** True when the stream began with a TLS ClientHello. */
  isTls: boolean;
}

/** Options of {@link PeerMesh.openTunnel}. */
export interface OpenTunnelInit extends LocalStreamInit {
  /**
   * Links to try, in order (e.g. `PeerRoute.linkIds` from a lookup already made). Default: the links a
   * fresh `routes.lookup(hostname)` returns when it is a peer route.
   */
  linkIds?: readonly string[];
}

/** Reconnect backoff of the peer dialers. */
export interface PeerReconnectOptions {
  /** First delay, ms. Default: `1_000`. */
  initialDelayMs?: number;
  /** Largest delay before jitter, ms. Default: `60_000`. */
  maxDelayMs?: number;
  /** Growth per failed attempt. Default: `2`. */
  factor?: number;
  /** Relative jitter in [0, 1). Default: `0.25`. */
  jitter?: number;
}

/** Options of {@link PeerMesh}. */
export interface PeerMeshOptions {
  /** The node's routing table: local patterns are announced, peer routes are written into it. */
  routes: RoutingTable<unknown, string>;
  /** The hub certificate: served by the peer listener and presented as client certificate when dialling. */
  tls: HubTlsContext;
  /** `peerAuthentication.trustedDomainSuffixes`; at least one. See `PeerAuthenticatorOptions`. */
  trustedDomainSuffixes: readonly string[];
  /** Extra trusted CAs, PEM (the contents of `peerAuthentication.caFile`). Default: none. */
  ca?: string | readonly string[];
  /** Also trust Node's bundled root CAs. Default: `true`. */
  systemCa?: boolean;
  /** Peer URLs to dial, `wss://host:port/mesh`. Default: none. */
  peers?: readonly string[];
  /**
   * Destination side: opens a stream to a local backend for a tunnel (the hub's `openStream`). Returning
   * `undefined` (no local backend) answers the tunnel with `0x12` at once. Never consults peers: tunnels
   * are one hop. Default: none (every tunnel is refused).
   */
  openLocalStream?: (hostname: string, init: LocalStreamInit) => Duplex | undefined;
  /** Idle timeout of tunnels relayed to local backends, ms; `0` = off. Default: `0`. */
  idleTimeoutMs?: number;
  /** Ping interval on every link, ms. Default: `10_000`. */
  keepaliveIntervalMs?: number;
  /** A link silent for this long is dropped, ms. Default: `30_000`. */
  keepaliveTimeoutMs?: number;
  /** Dialer backoff. */
  reconnect?: PeerReconnectOptions;
  /** Time allowed for one dial, ms. Default: `10_000`. */
  connectTimeoutMs?: number;
  /** Tunnel receive window per tunnel, frames. Default: `64`. */
  tunnelWindow?: number;
  /** Tunnel grant batch, frames. Default: `8`. */
  tunnelGrantBatch?: number;
  /** Most tunnels per link. Default: `10_000`. */
  maxTunnelsPerLink?: number;
  /** Link `bufferedAmount` above which TUNNEL_DATA waits, bytes. Default: 1 MiB. */
  linkHighWaterMark?: number;
  /** Logger; a child with `component: 'mesh'` is used. Default: no-op. */
  logger?: Logger;
  /** Random source for backoff jitter, [0, 1). Default: `Math.random`. */
  random?: () => number;
}

/** What {@link PeerMesh.setTrust} replaces: who may join through the peer listener. */
export interface PeerTrustOptions {
  /** `peerAuthentication.trustedDomainSuffixes`; at least one. See `PeerAuthenticatorOptions`. */
  trustedDomainSuffixes: readonly string[];
  /** Extra trusted CAs, PEM (the contents of `peerAuthentication.caFile`). Default: none. */
  ca?: string | readonly string[];
}

/** What {@link PeerMesh.setKeepalive} replaces; an omitted field keeps its value. */
export interface PeerKeepaliveOptions {
  /** Ping interval on every link, ms; `0` = no pings. */
  keepaliveIntervalMs?: number;
  /** A link silent for this long is dropped, ms; `0` = never. */
  keepaliveTimeoutMs?: number;
}

/** A link as reported by events and {@link PeerMesh.links}. */
export interface PeerLinkInfo {
  /** The routing table's key for this link. */
  linkId: string;
  /** Matched certificate name (inbound) or dialled URL (outbound). */
  peer: string;
  direction: PeerLinkDirection;
}

/** A snapshot of one link. */
export interface PeerLinkSnapshot extends PeerLinkInfo {
  /** When the link was established (ms since the epoch). */
  openedAt: number;
  /** Version of the last accepted announce, if any. */
  lastAnnounceVersion: number | undefined;
  /** Routes learned on this link, sorted. */
  routes: string[];
  /** Tunnel counters. */
  tunnels: TunnelSessionStats;
}

/** Events of {@link PeerMesh}. */
export interface PeerMeshEvents {
  /** A link was established (either direction). */
  'peer-connected': [info: PeerLinkInfo];
  /** A link ended; its routes are already gone and its tunnels closed. */
  'peer-disconnected': [info: PeerLinkInfo & { reason: PeerLinkCloseReason }];
  /** The routes learned on a link changed (an announce, or the link died: `hostnames` is empty). */
  'routes-changed': [change: PeerLinkInfo & { hostnames: string[]; version: number | undefined }];
  /** A peer was refused at the listener (before any message was read). */
  'peer-refused': [event: { remoteAddress: string | undefined; reason: string }];
}

interface ResolvedReconnect {
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  jitter: number;
}

/** One configured peer URL, dialled until the mesh closes or `setPeers` removes it. */
class PeerDialer {
  readonly url: string;
  attempt = 0;
  link: PeerLink | undefined;
  ws: WebSocket | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Set when the URL was removed: the dialer never dials again. */
  stopped = false;

  constructor(url: string) {
    this.url = url;
  }
}

/**
 * The peer mesh of one node. Construct it, then `listen()` (own port) or route `/mesh` upgrades of a
 * shared https server to `handleUpgrade()`, and `start()` the dialers. `close()` ends everything.
 */
export class PeerMesh extends EventEmitter<PeerMeshEvents> {
  readonly #routes: RoutingTable<unknown, string>;
  readonly #tls: HubTlsContext;
  /** Replaced by `setTrust()`; every upgrade and every dial reads the current one. */
  #auth: PeerAuthenticator;
  readonly #systemCa: boolean | undefined;
  readonly #log: Logger;
  readonly #wss: WebSocketServer;
  readonly #openLocalStream: PeerMeshOptions['openLocalStream'];
  #idleTimeoutMs: number;
  #keepaliveIntervalMs: number | undefined;
  #keepaliveTimeoutMs: number | undefined;
  readonly #reconnect: ResolvedReconnect;
  readonly #connectTimeoutMs: number;
  readonly #tunnelOptions: {
    initialWindow?: number;
    grantBatch?: number;
    maxTunnels?: number;
    highWaterMark?: number;
  };
  readonly #random: () => number;
  readonly #links = new Map<string, PeerLink>();
  /** One per configured URL (a URL listed twice gets two links); `setPeers()` adds and removes them. */
  #dialers: PeerDialer[];
  #server: HttpsServer | undefined;
  #detachTls: (() => void) | undefined;
  #unsubscribeRoutes: (() => void) | undefined;
  #version = 0;
  #started = false;
  #closed = false;

  /** Throws `InvalidConfigError` for an invalid peer URL, suffix or option. */
  constructor(options: PeerMeshOptions) {
    super();
    this.#routes = options.routes;
    this.#tls = options.tls;
    this.#log = (options.logger ?? noopLogger).child({ component: 'mesh' });
    this.#systemCa = options.systemCa;
    this.#auth = this.#authenticator(options);
    this.#openLocalStream = options.openLocalStream;
    this.#idleTimeoutMs = nonNegative('idleTimeoutMs', options.idleTimeoutMs, 0);
    this.#keepaliveIntervalMs = options.keepaliveIntervalMs;
    this.#keepaliveTimeoutMs = options.keepaliveTimeoutMs;
    const r = options.reconnect ?? {};
    this.#reconnect = {
      initialDelayMs: nonNegative(
        'reconnect.initialDelayMs',
        r.initialDelayMs,
        DEFAULT_PEER_RECONNECT_INITIAL_DELAY,
      ),
      maxDelayMs: nonNegative('reconnect.maxDelayMs', r.maxDelayMs, DEFAULT_PEER_RECONNECT_MAX_DELAY),
      factor: Math.max(1, nonNegative('reconnect.factor', r.factor, 2)),
      jitter: nonNegative('reconnect.jitter', r.jitter, DEFAULT_PEER_RECONNECT_JITTER),
    };
    if (this.#reconnect.jitter >= 1) throw new InvalidConfigError('reconnect.jitter', 'must be in [0, 1)');
    this.#connectTimeoutMs = nonNegative(
      'connectTimeoutMs',
      options.connectTimeoutMs,
      DEFAULT_PEER_CONNECT_TIMEOUT,
    );
    this.#tunnelOptions = {
      ...(options.tunnelWindow !== undefined ? { initialWindow: options.tunnelWindow } : {}),
      ...(options.tunnelGrantBatch !== undefined ? { grantBatch: options.tunnelGrantBatch } : {}),
      ...(options.maxTunnelsPerLink !== undefined ? { maxTunnels: options.maxTunnelsPerLink } : {}),
      ...(options.linkHighWaterMark !== undefined ? { highWaterMark: options.linkHighWaterMark } : {}),
    };
    this.#random = options.random ?? Math.random;
    this.#dialers = validatePeerUrls(options.peers ?? []).map((url) => new PeerDialer(url));
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: MAX_PEER_WS_PAYLOAD,
      clientTracking: false,
    });
    this.#unsubscribeRoutes = this.#routes.subscribeLocalPatterns(() => this.notifyLocalRoutesChanged());
  }

  /** The current announce version (incremented on every local route change and every new link). */
  get version(): number {
    return this.#version;
  }

  /** The normalised trusted domain suffixes. */
  get trustedDomainSuffixes(): readonly string[] {
    return this.#auth.trustedDomainSuffixes;
  }

  /** Open links right now. */
  get linkCount(): number {
    return this.#links.size;
  }

  /** The peer URLs dialled, normalised, in the order they were added. */
  get peers(): readonly string[] {
    return this.#dialers.map((d) => d.url);
  }

  /**
   * Replaces the peer URLs to dial. New URLs are dialled at once (once `start()` ran); removed ones stop
   * dialling and their outbound link, if any, closes (reason `peer_removed`: its routes go, its tunnels
   * end); URLs in both lists keep their dialer and link untouched (a URL listed n times keeps n). Inbound
   * links are not affected: the far side's certificate name says nothing about the URL we had for it.
   * Throws `InvalidConfigError` (nothing changed) for an invalid URL.
   */
  setPeers(urls: readonly string[]): void {
    const wanted = validatePeerUrls(urls);
    if (this.#closed) return;
    const kept: PeerDialer[] = [];
    for (const dialer of this.#dialers) {
      const i = wanted.indexOf(dialer.url);
      if (i === -1) {
        this.#stopDialer(dialer);
      } else {
        wanted.splice(i, 1);
        kept.push(dialer);
      }
    }
    this.#dialers = kept;
    for (const url of wanted) {
      const dialer = new PeerDialer(url);
      this.#dialers.push(dialer);
      this.#log.info({ url }, 'peer added');
      if (this.#started) this.#dial(dialer);
    }
  }

  /**
   * Replaces the trusted suffixes and CAs. New upgrades on the listener and new dials use them; links
   * already established stay (PROTOCOL.md §2.1 authenticates a link once, at its handshake). Throws
   * `InvalidConfigError` or `TlsError` (nothing changed) like the constructor.
   */
  setTrust(trust: PeerTrustOptions): void {
    this.#auth = this.#authenticator(trust);
    this.#log.info({ trustedDomainSuffixes: this.#auth.trustedDomainSuffixes }, 'peer trust replaced');
  }

  /**
   * Replaces the keepalive of every link, the open ones included (their ping timer restarts with the new
   * interval; silence already counted toward the deadline still counts). Throws `InvalidConfigError`
   * (nothing changed) for a negative or non-finite value.
   */
  setKeepalive(keepalive: PeerKeepaliveOptions): void {
    const interval = optionalNonNegative('keepaliveIntervalMs', keepalive.keepaliveIntervalMs);
    const timeout = optionalNonNegative('keepaliveTimeoutMs', keepalive.keepaliveTimeoutMs);
    if (interval !== undefined) this.#keepaliveIntervalMs = interval;
    if (timeout !== undefined) this.#keepaliveTimeoutMs = timeout;
    for (const link of this.#links.values()) {
      link.setKeepalive({
        ...(this.#keepaliveIntervalMs !== undefined ? { intervalMs: this.#keepaliveIntervalMs } : {}),
        ...(this.#keepaliveTimeoutMs !== undefined ? { timeoutMs: this.#keepaliveTimeoutMs } : {}),
      });
    }
  }

  /** Replaces the idle timeout of tunnels relayed to local backends, ms (`0` = off), for new tunnels. */
  setIdleTimeout(idleTimeoutMs: number): void {
    this.#idleTimeoutMs = nonNegative('idleTimeoutMs', idleTimeoutMs, 0);
  }

  /**
   * TLS server options a shared https server needs so that `handleUpgrade` can authenticate peers:
   * ask for a client certificate, but let the mesh decide (backends on `/connect` send none).
   */
  static serverTlsOptions(): Pick<TlsOptions, 'requestCert' | 'rejectUnauthorized'> {
    return { requestCert: true, rejectUnauthorized: false };
  }

  /**
   * Starts a dedicated peer listener (`peerListenAddress`) on `port` (default 8444; `0` picks one):
   * https with the hub certificate, `/mesh` only, everything else 404. Resolves with the bound address.
   */
  listen(options: { port?: number; host?: string } = {}): Promise<AddressInfo> {
    if (this.#closed) return Promise.reject(new Error('the mesh is closed'));
    if (this.#server !== undefined) return Promise.reject(new Error('the peer listener is already running'));
    const server = createHttpsServer({ ...this.#tls.serverOptions(), ...PeerMesh.serverTlsOptions() });
    this.#server = server;
    this.#detachTls = this.#tls.attach(server);
    server.on('request', (_req, res) => {
      res.writeHead(404, { connection: 'close' }).end();
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!this.handleUpgrade(req, socket, head)) rejectUpgrade(socket, 404, 'Not Found');
    });
    server.on('tlsClientError', (err) => this.#log.debug({ err: err.message }, 'peer TLS handshake failed'));
    return new Promise<AddressInfo>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? DEFAULT_PEER_LISTEN_PORT, options.host, () => {
        server.off('error', reject);
        server.on('error', (err) => this.#log.error({ err: err.message }, 'peer listener error'));
        const address = server.address() as AddressInfo;
        this.#log.info({ address: address.address, port: address.port }, 'peer listener listening');
        resolve(address);
      });
    });
  }

  /** The dedicated listener's address, if `listen()` was called. */
  address(): AddressInfo | undefined {
    const a = this.#server?.address();
    return a !== null && typeof a === 'object' ? a : undefined;
  }

  /**
   * Handles an HTTP upgrade from any https server ("bring your own server"). Returns `false`, touching
   * nothing, when the path is not `/mesh`. Otherwise the request is handled: the client certificate is
   * checked before the WebSocket exists (refused with 403 and a log line), then the link starts. The
   * server must request client certificates ({@link PeerMesh.serverTlsOptions}).
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (pathOf(req.url) !== MESH_PATH) return false;
    const remoteAddress = (socket as { remoteAddress?: string }).remoteAddress;
    if (this.#closed) {
      rejectUpgrade(socket, 503, 'Service Unavailable');
      return true;
    }
    const tlsSocket = socket as TLSSocket;
    const result =
      typeof tlsSocket.getPeerX509Certificate === 'function'
        ? this.#auth.verify(tlsSocket)
        : ({ ok: false, reason: 'not a TLS connection' } as const);
    if (!result.ok) {
      // RELIABILITY.md item 24: refused before any message is read.
      this.#log.warn({ remoteAddress, reason: result.reason }, 'refusing peer');
      rejectUpgrade(socket, 403, 'Forbidden');
      this.emit('peer-refused', { remoteAddress, reason: result.reason });
      return true;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.#closed) {
        ws.terminate();
        return;
      }
      this.#log.info({ remoteAddress, name: result.name }, 'peer accepted');
      this.#addLink(ws, 'inbound', result.name);
    });
    return true;
  }

  /** Starts dialling every configured peer (idempotent). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    for (const dialer of this.#dialers) this.#dial(dialer);
  }

  /**
   * Announces the current local patterns to every link with a new version. Called automatically when
   * the routing table reports local pattern changes; call it yourself if yours cannot.
   */
  notifyLocalRoutesChanged(): void {
    if (this.#closed) return;
    const version = ++this.#version;
    const hostnames = this.#routes.localPatterns();
    this.#log.debug(
      { version, routes: hostnames.length, links: this.#links.size },
      'announcing local routes',
    );
    for (const link of this.#links.values()) link.sendAnnounce(version, hostnames);
  }

  /**
   * Origin: opens a tunnel for `hostname` to a peer announcing it (round robin among those peers).
   * Returns the tunnel as a `Duplex` (write the prelude first, then relay the end user with
   * `relayConnection`), or `undefined` when no open link announces the route. If the destination has no
   * backend after all, it closes the tunnel at once and the stream ends (EOF) without data.
   */
  openTunnel(hostname: string, init: OpenTunnelInit): MuxStream | undefined {
    if (this.#closed) return undefined;
    const host = normalizeHostname(hostname);
    if (host === undefined) return undefined;
    let linkIds = init.linkIds;
    if (linkIds === undefined) {
      const route = this.#routes.lookup(host);
      if (route?.kind !== 'peer') return undefined;
      linkIds = route.linkIds;
    }
    for (const id of linkIds) {
      const link = this.#links.get(id);
      if (link === undefined || link.closed) continue;
      const stream = link.tunnels.open({
        connPort: init.connPort,
        clientIp: init.clientIp,
        hostname: host,
        isTls: init.isTls,
      });
      if (stream !== undefined) {
        this.#log.debug({ hostname: host, linkId: id, tunnelId: stream.id }, 'tunnel opened');
        return stream;
      }
    }
    return undefined;
  }

  /** A snapshot of every open link. */
  links(): PeerLinkSnapshot[] {
    return [...this.#links.values()].map((link) => ({
      ...infoOf(link),
      openedAt: link.openedAt,
      lastAnnounceVersion: link.lastAnnounceVersion,
      routes: this.#routes.peerPatterns(link.id),
      tunnels: link.tunnels.stats(),
    }));
  }

  /** @internal The link with this id (tests). */
  getLink(id: string): PeerLink | undefined {
    return this.#links.get(id);
  }

  /**
   * Stops the dialers and the listener, closes every link (their routes disappear, their tunnels end).
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribeRoutes?.();
    for (const dialer of this.#dialers) {
      if (dialer.timer !== undefined) clearTimeout(dialer.timer);
      dialer.timer = undefined;
      if (dialer.ws !== undefined && dialer.link === undefined) dialer.ws.terminate();
    }
    for (const link of [...this.#links.values()]) link.close('shutdown');
    this.#wss.close();
    const server = this.#server;
    this.#server = undefined;
    this.#detachTls?.();
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
    }
  }

  // ───────────────────────────── links ─────────────────────────────

  #addLink(ws: WebSocket, direction: PeerLinkDirection, peer: string): PeerLink {
    const id = `${direction === 'inbound' ? 'in' : 'out'}-${randomBytes(6).toString('hex')}`;
    const link = new PeerLink(ws, {
      id,
      direction,
      peer,
      ...(this.#keepaliveIntervalMs !== undefined ? { keepaliveIntervalMs: this.#keepaliveIntervalMs } : {}),
      ...(this.#keepaliveTimeoutMs !== undefined ? { keepaliveTimeoutMs: this.#keepaliveTimeoutMs } : {}),
      tunnels: this.#tunnelOptions,
      logger: this.#log,
    });
    this.#links.set(id, link);
    const info = infoOf(link);
    link.on('announce', (message) => {
      if (this.#closed) return;
      this.#routes.setPeerRoutes(id, message.hostnames);
      const hostnames = this.#routes.peerPatterns(id);
      this.#log.info({ ...info, version: message.version, routes: hostnames.length }, 'peer routes updated');
      this.emit('routes-changed', { ...info, hostnames, version: message.version });
    });
    link.on('tunnel-request', (request) => this.#onTunnelRequest(link, request));
    link.once('close', (reason) => {
      this.#links.delete(id);
      // §2.2: every route learned on a dead link goes at once, wildcards included.
      const had = this.#routes.peerPatterns(id).length > 0;
      this.#routes.removePeer(id);
      this.#log.info({ ...info, reason }, 'peer link closed');
      if (had) this.emit('routes-changed', { ...info, hostnames: [], version: link.lastAnnounceVersion });
      this.emit('peer-disconnected', { ...info, reason });
    });
    // §2.2: a full-state announce on every new link, with a new version.
    link.sendAnnounce(++this.#version, this.#routes.localPatterns());
    this.#log.info(info, 'peer link established');
    this.emit('peer-connected', info);
    return link;
  }

  /**
   * Destination side of a tunnel: relay it to a local backend, or answer `0x12` at once. Only local
   * backends are asked — a tunnel is never forwarded to a third node (one hop, §2.3).
   */
  #onTunnelRequest(link: PeerLink, request: TunnelRequestMessage): void {
    const host = normalizeHostname(request.hostname);
    let local: Duplex | undefined;
    if (host !== undefined && this.#openLocalStream !== undefined && !this.#closed) {
      try {
        local = this.#openLocalStream(host, {
          connPort: request.conn_port,
          clientIp: request.client_ip,
          isTls: request.is_tls,
        });
      } catch (err) {
        this.#log.error({ err, hostname: host }, 'openLocalStream threw');
        local = undefined;
      }
    }
    if (local === undefined) {
      // RELIABILITY.md item 16: the reference ignores the request and the origin streams into the void.
      this.#log.info(
        { linkId: link.id, tunnelId: request.client_id, hostname: request.hostname },
        'no local backend for tunnel: closing it',
      );
      link.tunnels.refuse(request.client_id);
      return;
    }
    const tunnel = link.tunnels.accept(request);
    if (tunnel === undefined) {
      local.destroy();
      return;
    }
    const localStream = local;
    // Both directions close through a graceful disconnect that flushes what was written first:
    // the backend finished → 0x12 after the last byte; the origin closed → disconnect the backend stream.
    localStream.once('end', () => tunnel.disconnect('normal'));
    tunnel.once('end', () => {
      const disconnect = (localStream as { disconnect?: (reason?: string) => void }).disconnect;
      if (typeof disconnect === 'function') disconnect.call(localStream, 'normal');
    });
    relayConnection(tunnel, localStream, {
      idleTimeoutMs: this.#idleTimeoutMs,
      onClose: (stats) =>
        this.#log.debug(
          { linkId: link.id, tunnelId: tunnel.id, hostname: host, ...stats, error: stats.error?.message },
          'tunnel relay ended',
        ),
    });
  }

  // ───────────────────────────── dialers ─────────────────────────────

  #authenticator(trust: PeerTrustOptions): PeerAuthenticator {
    return new PeerAuthenticator({
      trustedDomainSuffixes: trust.trustedDomainSuffixes,
      ...(trust.ca !== undefined ? { ca: trust.ca } : {}),
      ...(this.#systemCa !== undefined ? { systemCa: this.#systemCa } : {}),
    });
  }

  /** A removed peer: no more dials, and its outbound link (or the dial in flight) ends. */
  #stopDialer(dialer: PeerDialer): void {
    dialer.stopped = true;
    if (dialer.timer !== undefined) clearTimeout(dialer.timer);
    dialer.timer = undefined;
    this.#log.info({ url: dialer.url, linked: dialer.link !== undefined }, 'peer removed');
    if (dialer.link !== undefined) dialer.link.close(PEER_REMOVED_REASON);
    else dialer.ws?.terminate();
  }

  #dial(dialer: PeerDialer): void {
    if (this.#closed || dialer.stopped) return;
    const material = this.#tls.material;
    const ca = this.#auth.caPem();
    const ws = new WebSocket(dialer.url, {
      cert: material.certPem,
      key: material.keyPem,
      ...(ca !== undefined ? { ca } : {}),
      perMessageDeflate: false,
      maxPayload: MAX_PEER_WS_PAYLOAD,
      handshakeTimeout: this.#connectTimeoutMs,
      followRedirects: false,
    });
    dialer.ws = ws;
    let lastError: Error | undefined;
    let opened = false;
    ws.on('error', (err) => {
      lastError = err;
    });
    ws.once('open', () => {
      opened = true;
      if (this.#closed || dialer.stopped) {
        ws.terminate();
        return;
      }
      const link = this.#addLink(ws, 'outbound', dialer.url);
      dialer.link = link;
      link.once('close', () => {
        dialer.link = undefined;
        dialer.ws = undefined;
        if (Date.now() - link.openedAt >= BACKOFF_RESET_AFTER_MS) dialer.attempt = 0;
        this.#scheduleDial(dialer);
      });
    });
    ws.once('unexpected-response', (_req, res) => {
      lastError = new Error(`peer answered HTTP ${res.statusCode}`);
      ws.terminate();
    });
    ws.once('close', () => {
      if (opened || this.#closed || dialer.stopped) return; // a link's own close handler reconnects
      dialer.ws = undefined;
      this.#log.warn({ url: dialer.url, err: lastError?.message }, 'cannot reach peer');
      this.#scheduleDial(dialer);
    });
  }

  #scheduleDial(dialer: PeerDialer): void {
    if (this.#closed || dialer.stopped || dialer.timer !== undefined) return;
    const delay = backoffDelay(dialer.attempt, this.#reconnect, this.#random);
    if (dialer.attempt < 1_000) dialer.attempt++;
    this.#log.debug({ url: dialer.url, delayMs: delay, attempt: dialer.attempt }, 'redialling peer');
    dialer.timer = setTimeout(() => {
      dialer.timer = undefined;
      this.#dial(dialer);
    }, delay);
    dialer.timer.unref?.();
  }
}

/**
 * Reconnect delay for attempt `attempt` (0-based): `min(max, initial · factor^attempt)` scaled by a
 * uniform factor in [1 − jitter, 1 + jitter], so nodes that lost the same peer do not redial in step.
 */
export function backoffDelay(
  attempt: number,
  options: ResolvedReconnect,
  random: () => number = Math.random,
): number {
  const base = Math.min(options.maxDelayMs, options.initialDelayMs * options.factor ** Math.max(0, attempt));
  return Math.max(0, Math.round(base * (1 + options.jitter * (2 * random() - 1))));
}

function infoOf(link: PeerLink): PeerLinkInfo {
  return { linkId: link.id, peer: link.peer, direction: link.direction };
}

function nonNegative(path: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidConfigError(path, 'must be a number ≥ 0');
  }
  return value;
}

function optionalNonNegative(path: string, value: number | undefined): number | undefined {
  return value === undefined ? undefined : nonNegative(path, value, 0);
}

/** Validates and normalises peer URLs (duplicates kept: each is one link). */
function validatePeerUrls(urls: readonly string[]): string[] {
  return urls.map((url, i) => validatePeerUrl(url, i));
}

function validatePeerUrl(url: string, index: number): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidConfigError(`peers[${index}]`, 'must be a URL such as wss://peer.example.com:8444/mesh');
  }
  if (parsed.protocol !== 'wss:')
    throw new InvalidConfigError(`peers[${index}]`, 'must use wss:// (mutual TLS)');
  return parsed.toString();
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function rejectUpgrade(socket: Duplex, status: number, text: string): void {
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }
  const timer = setTimeout(() => socket.destroy(), 1_000);
  timer.unref?.();
  socket.once('close', () => clearTimeout(timer));
}
