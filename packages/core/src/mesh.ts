/**
 * The mesh (docs/protocol.md §2): nodes peer over mutually authenticated WebSockets, announce the routes their
 * local backends serve, and tunnel end-user streams to the node that has the backend.
 *
 * `PeerMesh` owns the peer listener (`/mesh`, its own port or a shared https server through
 * `handleUpgrade`), one dialer per configured peer URL, every link, the announce bookkeeping, the peer
 * routes in the node's routing table, and tunnel open (origin) / accept (destination). Its options and
 * events are in `mesh-options.ts`, both ends of a tunnel in `mesh-tunnels.ts`.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket, TlsOptions } from 'node:tls';
import { type BackoffSettings, DEFAULT_PEER_PORT, MESH_PATH, rejectUpgrade } from '@nexus-proxy/common';
import type { MuxStream } from '@nexus-proxy/mux-protocol';
import { type WebSocket, WebSocketServer } from 'ws';
import { NexusError, NexusErrorCode } from './errors.js';
import type { HubTlsContext } from './hub-tls.js';
import { listenServer } from './listen.js';
import { type Logger, noopLogger } from './logger.js';
import {
  BACKOFF_RESET_AFTER_MS,
  type MeshSettings,
  nonNegative,
  optionalNonNegative,
  PEER_REMOVED_REASON,
  type PeerKeepaliveOptions,
  type PeerLinkInfo,
  type PeerLinkSnapshot,
  type PeerMeshEvents,
  type PeerMeshOptions,
  type PeerTrustOptions,
  resolveMeshSettings,
  validatePeerUrls,
} from './mesh-options.js';
import { DialContextCache, DialLimiter, dialPeerOnce, openPeerSocket, PeerDialer } from './mesh-dial.js';
import type { OnDemandLinkProvider } from './mesh-discovery-links.js';
import { type PeerMeshStats, PeerTraffic } from './mesh-stats.js';
import { acceptTunnel, type LocalStreamInit, openTunnel } from './mesh-tunnels.js';
import { PeerAuthenticator, type PeerAuthResult } from './peer-auth.js';
import { guardListener, handshakeTimeout, type ListenerGuardLimits } from './listener-guards.js';
import { PeerPolicy } from './peer-limits.js';
import { PeerLink, type PeerLinkDirection } from './peer-link.js';
import type { PeerLinksRoute, RoutingTable } from './routing-table.js';

export { DEFAULT_PEER_INITIAL_DIAL_JITTER, DEFAULT_PEER_MAX_CONCURRENT_DIALS } from './mesh-dial.js';
export type { PeerMeshStats, PeerMessageType, PeerTrafficCounts } from './mesh-stats.js';
export {
  DEFAULT_PEER_ANNOUNCE_COALESCE,
  DEFAULT_PEER_CONNECT_TIMEOUT,
  DEFAULT_PEER_RECONNECT_INITIAL_DELAY,
  DEFAULT_PEER_RECONNECT_JITTER,
  DEFAULT_PEER_RECONNECT_MAX_DELAY,
  PEER_REMOVED_REASON,
} from './mesh-options.js';
export type {
  PeerKeepaliveOptions,
  PeerLinkInfo,
  PeerLinkSnapshot,
  PeerMeshEvents,
  PeerMeshOptions,
  PeerReconnectOptions,
  PeerTrustOptions,
} from './mesh-options.js';
export type { LocalStreamInit, OpenLocalStream } from './mesh-tunnels.js';

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
  readonly #reconnect: BackoffSettings;
  readonly #connectTimeoutMs: number;
  readonly #tunnelOptions: MeshSettings['tunnelOptions'];
  readonly #random: () => number;
  /** Bounds on what peers may announce and ask (docs/security.md). */
  readonly #policy: PeerPolicy;
  /** Handshake timeout and connection cap of the dedicated peer listener. */
  readonly #guard: ListenerGuardLimits;
  readonly #links = new Map<string, PeerLink>();
  /** One per configured URL (a URL listed twice gets two links); `setPeers()` adds and removes them. */
  #dialers: PeerDialer[];
  #server: HttpsServer | undefined;
  #detachTls: (() => void) | undefined;
  #unsubscribeRoutes: (() => void) | undefined;
  #version = 0;
  readonly #announceCoalesceMs: number;
  /** Set while local route changes wait to be announced (one announce per link when it fires). */
  #announceTimer: NodeJS.Timeout | undefined;
  readonly #initialDialJitterMs: number;
  readonly #dialContexts = new DialContextCache();
  readonly #dialLimiter: DialLimiter;
  readonly #traffic = new PeerTraffic();
  #announcesApplied = 0;
  #announceApplyMs = 0;
  #announceApplyMaxMs = 0;
  /** Links a discovery engine opens on demand (docs/mesh.md "Discovery on NATS"); `openTunnel` uses them. */
  onDemand: OnDemandLinkProvider | undefined;
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
    const settings = resolveMeshSettings(options);
    this.#reconnect = settings.reconnect;
    this.#connectTimeoutMs = settings.connectTimeoutMs;
    this.#tunnelOptions = settings.tunnelOptions;
    this.#random = options.random ?? Math.random;
    this.#announceCoalesceMs = settings.announceCoalesceMs;
    this.#initialDialJitterMs = settings.initialDialJitterMs;
    this.#dialLimiter = new DialLimiter(settings.maxConcurrentDials);
    this.#dialers = validatePeerUrls(options.peers ?? []).map(
      (url) => new PeerDialer(url, this.#reconnect, this.#random),
    );
    this.#policy = new PeerPolicy(options);
    this.#guard = {
      ...(options.tlsHandshakeTimeoutMs !== undefined
        ? { tlsHandshakeTimeoutMs: options.tlsHandshakeTimeoutMs }
        : {}),
      ...(options.maxListenerConnections !== undefined
        ? { maxListenerConnections: options.maxListenerConnections }
        : {}),
    };
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: this.#policy.maxMessageBytes,
      clientTracking: false,
    });
    this.#unsubscribeRoutes = this.#routes.subscribeLocalPatterns(() => this.notifyLocalRoutesChanged());
  }

  /**
   * The current announce version (incremented on every local route change and every new link, at once;
   * the announce carrying it may wait for the coalescing window).
   */
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
      const dialer = new PeerDialer(url, this.#reconnect, this.#random);
      this.#dialers.push(dialer);
      this.#log.info({ url }, 'peer added');
      if (this.#started) this.#dialLimited(dialer);
    }
  }

  /**
   * Replaces the trusted suffixes and CAs. New upgrades on the listener and new dials use them; links
   * already established stay (docs/protocol.md §2.1 authenticates a link once, at its handshake). Throws
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
    if (this.#closed) return Promise.reject(new NexusError(NexusErrorCode.Closed, 'the mesh is closed'));
    if (this.#server !== undefined)
      return Promise.reject(new NexusError(NexusErrorCode.Listen, 'the peer listener is already running'));
    const server = createHttpsServer({
      ...this.#tls.serverOptions(),
      ...PeerMesh.serverTlsOptions(),
      ...handshakeTimeout(this.#guard),
    });
    guardListener(server, this.#guard);
    this.#server = server;
    this.#detachTls = this.#tls.attach(server);
    server.on('request', (_req, res) => {
      res.writeHead(404, { connection: 'close' }).end();
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!this.handleUpgrade(req, socket, head)) rejectUpgrade(socket, 404, 'Not Found');
    });
    server.on('tlsClientError', (err) => this.#log.debug({ err: err.message }, 'peer TLS handshake failed'));
    return listenServer(
      server,
      options.port ?? DEFAULT_PEER_PORT,
      options.host,
      this.#log,
      'peer listener',
      'peerListenAddress',
    );
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
    if (typeof tlsSocket.getPeerCertificate !== 'function') {
      this.#upgradeVerified(req, socket, head, remoteAddress, { ok: false, reason: 'not a TLS connection' });
      return true;
    }
    // Path validation is asynchronous (WebCrypto signatures); nothing is read from the socket meanwhile.
    void this.#auth
      .verify(tlsSocket)
      .then((result) => this.#upgradeVerified(req, socket, head, remoteAddress, result));
    return true;
  }

  #upgradeVerified(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    remoteAddress: string | undefined,
    result: PeerAuthResult,
  ): void {
    if (this.#closed || socket.destroyed) {
      socket.destroy();
      return;
    }
    if (!result.ok) {
      // docs/reliability.md item 24: refused before any message is read.
      this.#log.warn({ remoteAddress, reason: result.reason }, 'refusing peer');
      rejectUpgrade(socket, 403, 'Forbidden');
      this.emit('peer-refused', { remoteAddress, reason: result.reason });
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.#closed) {
        ws.terminate();
        return;
      }
      this.#log.info({ remoteAddress, name: result.name }, 'peer accepted');
      this.#addLink(ws, 'inbound', result.name);
    });
  }

  /** Starts dialling every configured peer (idempotent). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    // Spread over the jitter window and bounded in concurrency: no handshake storm at start.
    for (const dialer of this.#dialers) {
      const delay = Math.floor(this.#random() * this.#initialDialJitterMs);
      if (delay === 0) {
        this.#dialLimited(dialer);
        continue;
      }
      dialer.timer = setTimeout(() => {
        dialer.timer = undefined;
        this.#dialLimited(dialer);
      }, delay);
      dialer.timer.unref?.();
    }
  }

  /**
   * Records a local route change with a new version and announces the local patterns to every link once
   * the coalescing window (`announceCoalesceMs`) closes: a burst of changes makes one announce per link.
   * Called automatically when the routing table reports local pattern changes; call it yourself if yours
   * cannot.
   */
  notifyLocalRoutesChanged(): void {
    if (this.#closed) return;
    ++this.#version;
    if (this.#announceTimer !== undefined) return;
    this.#announceTimer = setTimeout(() => {
      this.#announceTimer = undefined;
      this.#announce();
    }, this.#announceCoalesceMs);
    this.#announceTimer.unref?.();
  }

  /** Counters of the mesh: traffic by type, announce apply time, routes per link, dials. */
  stats(): PeerMeshStats {
    return {
      links: this.#links.size,
      routesPerLink: [...this.#links.values()].map((link) => ({
        linkId: link.id,
        peer: link.peer,
        routes: this.#routes.peerRouteCount(link.id),
      })),
      in: structuredClone(this.#traffic.in),
      out: structuredClone(this.#traffic.out),
      announcesApplied: this.#announcesApplied,
      announceApplyMs: this.#announceApplyMs,
      announceApplyMaxMs: this.#announceApplyMaxMs,
      dialContextsCreated: this.#dialContexts.created,
      dialsInFlight: this.#dialLimiter.inFlight,
      dialsInFlightPeak: this.#dialLimiter.peak,
    };
  }

  #announce(): void {
    if (this.#closed) return;
    const version = this.#version;
    const hostnames = this.#routes.localPatterns();
    this.#log.debug(
      { version, routes: hostnames.length, links: this.#links.size },
      'announcing local routes',
    );
    for (const link of this.#links.values()) link.sendAnnounce(version, hostnames);
  }

  /**
   * Origin: opens a tunnel on a routing decision (`RoutingTable.resolve` answered with peer links),
   * trying its links in their rotation order. Returns the tunnel (relay the end user with
   * `relayMuxStream`, the sniffed prelude first), or `undefined` when none of the links is open or takes
   * it. If the destination has no backend after all, it closes the tunnel at once and the stream ends
   * (EOF) without data.
   */
  openTunnel(route: PeerLinksRoute<string>, init: LocalStreamInit): MuxStream | undefined {
    if (this.#closed) return undefined;
    const links = { get: (id: string) => this.#links.get(id) ?? this.onDemand?.linkFor(id) };
    return openTunnel(links, route, init, this.#log);
  }

  /**
   * Discovery (docs/mesh.md "Discovery on NATS"): dials `url` once, no redial, and checks the listener's
   * certificate like an inbound peer's (the URL came from a shared store). `undefined` on failure.
   */
  dialOnce(url: string): Promise<PeerLink | undefined> {
    return dialPeerOnce(validatePeerUrls([url])[0] as string, {
      limiter: this.#dialLimiter,
      options: () => (this.#closed ? undefined : this.#dialOptions()),
      verify: (socket) => this.#auth.verify(socket),
      adopt: (ws, target) => (this.#closed ? undefined : this.#addLink(ws, 'outbound', target)),
      log: this.#log,
    });
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
    if (this.#announceTimer !== undefined) clearTimeout(this.#announceTimer);
    this.#announceTimer = undefined;
    this.#dialLimiter.clear();
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
      traffic: this.#traffic,
    });
    this.#links.set(id, link);
    const info = infoOf(link);
    link.on('announce', (message) => {
      if (this.#closed) return;
      const started = performance.now();
      const kept = this.#policy.routesFrom(link.peer, message.hostnames);
      if (kept.refused > 0 || kept.truncated > 0) {
        this.#log.warn(
          { ...info, refused: kept.refused, truncated: kept.truncated, limit: this.#policy.maxRoutes },
          'peer announced routes it may not have: dropped',
        );
      }
      this.#routes.setPeerRoutes(id, kept.accepted);
      const tookMs = performance.now() - started;
      this.#announcesApplied++;
      this.#announceApplyMs += tookMs;
      this.#announceApplyMaxMs = Math.max(this.#announceApplyMaxMs, tookMs);
      const hostnames = this.#routes.peerPatterns(id);
      this.#log.info({ ...info, version: message.version, routes: hostnames.length }, 'peer routes updated');
      this.emit('routes-changed', { ...info, hostnames, version: message.version });
    });
    link.on('tunnel-request', (request) =>
      acceptTunnel(link, request, {
        openLocalStream: this.#closed ? undefined : this.#openLocalStream,
        check: (r) => this.#policy.checkTunnel(r),
        idleTimeoutMs: this.#idleTimeoutMs,
        log: this.#log,
      }),
    );
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

  /** Dials once a slot of the concurrency bound is free. */
  #dialLimited(dialer: PeerDialer): void {
    this.#dialLimiter.run((release) => {
      if (this.#closed || dialer.stopped) release();
      else this.#dial(dialer, release);
    });
  }

  #dialOptions(): Parameters<typeof openPeerSocket>[1] {
    return {
      // One context per trust configuration (the certificate and the CAs), not one per dial.
      secureContext: this.#dialContexts.get(this.#tls.material, this.#auth),
      maxPayload: this.#policy.maxMessageBytes,
      handshakeTimeout: this.#connectTimeoutMs,
    };
  }

  #dial(dialer: PeerDialer, release: () => void): void {
    dialer.ws = openPeerSocket(dialer.url, this.#dialOptions(), release, {
      opened: (ws) => {
        if (this.#closed || dialer.stopped) {
          ws.terminate();
          return;
        }
        const link = this.#addLink(ws, 'outbound', dialer.url);
        dialer.link = link;
        link.once('close', () => {
          dialer.link = undefined;
          dialer.ws = undefined;
          if (Date.now() - link.openedAt >= BACKOFF_RESET_AFTER_MS) dialer.backoff.reset();
          this.#scheduleDial(dialer);
        });
      },
      failed: (err) => {
        if (this.#closed || dialer.stopped) return;
        dialer.ws = undefined;
        this.#log.warn({ url: dialer.url, err: err?.message }, 'cannot reach peer');
        this.#scheduleDial(dialer);
      },
    });
  }

  #scheduleDial(dialer: PeerDialer): void {
    if (this.#closed || dialer.stopped || dialer.timer !== undefined) return;
    const delay = dialer.backoff.next();
    this.#log.debug({ url: dialer.url, delayMs: delay, attempt: dialer.backoff.attempt }, 'redialling peer');
    dialer.timer = setTimeout(() => {
      dialer.timer = undefined;
      this.#dialLimited(dialer);
    }, delay);
    dialer.timer.unref?.();
  }
}

function infoOf(link: PeerLink): PeerLinkInfo {
  return { linkId: link.id, peer: link.peer, direction: link.direction };
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
