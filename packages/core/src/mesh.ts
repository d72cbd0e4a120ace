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
import { DEFAULT_PEER_PORT, MESH_PATH, rejectUpgrade } from '@nexus-proxy/common';
import { DATA_HEADER_LENGTH, MAX_DATA_PAYLOAD, type MuxStream } from '@nexus-proxy/mux-protocol';
import { type WebSocket, WebSocketServer } from 'ws';
import { NexusError, NexusErrorCode } from './errors.js';
import type { HubTlsContext } from './hub-tls.js';
import { listenServer } from './listen.js';
import { type Logger, noopLogger } from './logger.js';
import {
  type MeshSettings,
  nonNegative,
  optionalNonNegative,
  type PeerKeepaliveOptions,
  type PeerLinkInfo,
  type PeerLinkSnapshot,
  type PeerMeshEvents,
  type PeerMeshOptions,
  type PeerTrustOptions,
  resolveMeshSettings,
  validatePeerUrls,
} from './mesh-options.js';
import { MeshAnnouncer } from './mesh-announce.js';
import { DialContextCache, dialPeerOnce, type LinkFingerprints, type openPeerSocket } from './mesh-dial.js';
import { MeshDialers } from './mesh-dialers.js';
import type { OnDemandLinkProvider } from './mesh-discovery-links.js';
import { DUPLICATE_LINK_REASON, LinkPairs } from './mesh-pairs.js';
import { type PeerMeshStats, PeerTraffic } from './mesh-stats.js';
import { acceptTunnel, type LocalStreamInit, openTunnel } from './mesh-tunnels.js';
import { PeerAuthenticator, type PeerAuthResult } from './peer-auth.js';
import { guardListener, handshakeTimeout, type ListenerGuardLimits } from './listener-guards.js';
import { PeerPolicy } from './peer-limits.js';
import { PeerLink, type PeerLinkDirection } from './peer-link.js';
import type { PeerLinksRoute, RoutingTable } from './routing-table.js';

export { DEFAULT_PEER_INITIAL_DIAL_JITTER, DEFAULT_PEER_MAX_CONCURRENT_DIALS } from './mesh-dial.js';
export type { RouteSyncMode, RouteSyncStats } from './mesh-announce.js';
export { DUPLICATE_LINK_REASON } from './mesh-pairs.js';
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
  readonly #uploads: PeerMeshOptions['uploads'];
  #idleTimeoutMs: number;
  #keepaliveIntervalMs: number | undefined;
  #keepaliveTimeoutMs: number | undefined;
  readonly #tunnelOptions: MeshSettings['tunnelOptions'];
  readonly #tunnelMaxDataPayload: number;
  readonly #connectTimeoutMs: number;
  /** Bounds on what peers may announce and ask (docs/security.md). */
  readonly #policy: PeerPolicy;
  /** Handshake timeout and connection cap of the dedicated peer listener. */
  readonly #guard: ListenerGuardLimits;
  readonly #links = new Map<string, PeerLink>();
  /** One dialer per configured URL (a URL listed twice gets two links); `setPeers()` adds and removes them. */
  readonly #dialers: MeshDialers;
  #server: HttpsServer | undefined;
  #detachTls: (() => void) | undefined;
  #unsubscribeRoutes: (() => void) | undefined;
  /** Announces, route deltas and the routes learned from peers (`mesh-announce.ts`). */
  readonly #announcer: MeshAnnouncer;
  /** One link per pair of Nexus nodes (`mesh-pairs.ts`). */
  readonly #pairs: LinkPairs;
  #duplicateLinksClosed = 0;
  /** Peer certificates checked, by the validation that decided (docs/mesh.md "Listener and authentication"). */
  readonly #certificateChecks = { direct: 0, full: 0 };
  readonly #dialContexts = new DialContextCache();
  readonly #traffic = new PeerTraffic();
  /** Links a discovery engine opens on demand (docs/mesh.md "Discovery on NATS"); `openTunnel` uses them. */
  onDemand: OnDemandLinkProvider | undefined;
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
    this.#uploads = options.uploads;
    this.#idleTimeoutMs = nonNegative('idleTimeoutMs', options.idleTimeoutMs, 0);
    this.#keepaliveIntervalMs = options.keepaliveIntervalMs;
    this.#keepaliveTimeoutMs = options.keepaliveTimeoutMs;
    const settings = resolveMeshSettings(options);
    this.#tunnelOptions = settings.tunnelOptions;
    this.#connectTimeoutMs = settings.connectTimeoutMs;
    this.#policy = new PeerPolicy(options);
    // A TUNNEL_DATA message must fit the link's own message limit (the WebSocket's maxPayload).
    this.#tunnelMaxDataPayload = Math.max(
      MAX_DATA_PAYLOAD,
      Math.min(settings.tunnelMaxDataPayload, this.#policy.maxMessageBytes - DATA_HEADER_LENGTH),
    );
    this.#dialers = new MeshDialers({
      urls: validatePeerUrls(options.peers ?? []),
      reconnect: settings.reconnect,
      random: options.random ?? Math.random,
      maxConcurrentDials: settings.maxConcurrentDials,
      initialDialJitterMs: settings.initialDialJitterMs,
      log: this.#log,
      dialOptions: () => this.#dialOptions(),
      closed: () => this.#closed,
      opened: (ws, url, fingerprints) => this.#addLink(ws, 'outbound', url, fingerprints),
    });
    this.#announcer = new MeshAnnouncer({
      routes: this.#routes,
      policy: this.#policy,
      coalesceMs: settings.announceCoalesceMs,
      deltas: options.routeDeltas ?? true,
      log: this.#log,
      routesChanged: (change) => this.emit('routes-changed', change),
      nexusPeer: (link, caps) => this.#pairUp(link, caps.epoch),
    });
    this.#pairs = new LinkPairs(this.#announcer.epoch);
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
    this.#unsubscribeRoutes = this.#routes.subscribeLocalChanges((change) => {
      if (!this.#closed) this.#announcer.localChanged(change);
    });
  }

  /**
   * The current announce version (incremented on every local route change and every new link, at once;
   * the announce carrying it may wait for the coalescing window).
   */
  get version(): number {
    return this.#announcer.version;
  }

  /** This mesh's epoch (random per instance): the scope of its route-delta sequence numbers. */
  get epoch(): string {
    return this.#announcer.epoch;
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
    return this.#dialers.urls;
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
    if (!this.#closed) this.#dialers.set(wanted);
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
    void this.#verifyPeer(tlsSocket).then((result) =>
      this.#upgradeVerified(req, socket, head, remoteAddress, result),
    );
    return true;
  }

  /** The peer check of a listener's client or a discovered listener, counted by the validation that decided. */
  async #verifyPeer(socket: TLSSocket): Promise<PeerAuthResult> {
    const result = await this.#auth.verify(socket);
    if (result.checkedBy !== undefined) this.#certificateChecks[result.checkedBy]++;
    return result;
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
      const local = (socket as TLSSocket).getCertificate?.();
      this.#addLink(ws, 'inbound', result.name, {
        remoteFingerprint: result.fingerprint256,
        ...(local && 'fingerprint256' in local ? { localFingerprint: local.fingerprint256 } : {}),
      });
    });
  }

  /** Starts dialling every configured peer (idempotent). */
  start(): void {
    if (!this.#closed) this.#dialers.start();
  }

  /**
   * Records a local route change with a new version and sends the local patterns to every link once the
   * coalescing window (`announceCoalesceMs`) closes: a full-state announce to full-state peers, the whole
   * table (`route_state`) to Nexus peers. The routing table's own changes are announced without this (as
   * deltas to Nexus peers); call it when yours cannot tell what changed.
   */
  notifyLocalRoutesChanged(): void {
    if (!this.#closed) this.#announcer.notify();
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
      announcesApplied: this.#announcer.announcesApplied,
      announceApplyMs: this.#announcer.announceApplyMs,
      announceApplyMaxMs: this.#announcer.announceApplyMaxMs,
      routeSync: { ...this.#announcer.stats },
      duplicateLinksClosed: this.#duplicateLinksClosed,
      dialContextsCreated: this.#dialContexts.created,
      dialsInFlight: this.#dialers.inFlight,
      dialsInFlightPeak: this.#dialers.peak,
      dialFailures: this.#dialers.failed,
      dialTimeouts: this.#dialers.timedOut,
      certificateChecks: { ...this.#certificateChecks },
    };
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
      limiter: this.#dialers.limiter,
      options: () => (this.#closed ? undefined : this.#dialOptions()),
      verify: (socket) => this.#verifyPeer(socket),
      adopt: (ws, target, fingerprints) =>
        this.#closed ? undefined : this.#addLink(ws, 'outbound', target, fingerprints),
      log: this.#log,
    });
  }

  /** A snapshot of every open link. */
  links(): PeerLinkSnapshot[] {
    return [...this.#links.values()].map((link) => ({
      ...infoOf(link),
      openedAt: link.openedAt,
      lastAnnounceVersion: link.lastAnnounceVersion,
      routeSync: this.#announcer.modeOf(link.id) ?? 'pending',
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
    this.#announcer.close();
    this.#dialers.close();
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

  #addLink(
    ws: WebSocket,
    direction: PeerLinkDirection,
    peer: string,
    fingerprints: LinkFingerprints,
  ): PeerLink {
    const id = `${direction === 'inbound' ? 'in' : 'out'}-${randomBytes(6).toString('hex')}`;
    const link = new PeerLink(ws, {
      id,
      direction,
      peer,
      ...(this.#keepaliveIntervalMs !== undefined ? { keepaliveIntervalMs: this.#keepaliveIntervalMs } : {}),
      ...(this.#keepaliveTimeoutMs !== undefined ? { keepaliveTimeoutMs: this.#keepaliveTimeoutMs } : {}),
      tunnels: this.#tunnelOptions,
      maxDataPayload: this.#tunnelMaxDataPayload,
      logger: this.#log,
      traffic: this.#traffic,
      ...fingerprints,
    });
    this.#links.set(id, link);
    const info = infoOf(link);
    link.on('tunnel-request', (request) =>
      acceptTunnel(link, request, {
        openLocalStream: this.#closed ? undefined : this.#openLocalStream,
        check: (r) => this.#policy.checkTunnel(r),
        idleTimeoutMs: this.#idleTimeoutMs,
        uploads: this.#uploads,
        log: this.#log,
      }),
    );
    link.once('close', (reason) => {
      this.#links.delete(id);
      // §2.2: every route learned on a dead link goes at once, wildcards included.
      const had = this.#routes.peerRouteCount(id) > 0;
      this.#routes.removePeer(id);
      this.#log.info({ ...info, reason }, 'peer link closed');
      if (had) this.emit('routes-changed', { ...info, hostnames: [], version: link.lastAnnounceVersion });
      this.emit('peer-disconnected', { ...info, reason });
    });
    // §2.2, §2.6: a full-state announce on every new link, with a new version and our capabilities.
    this.#announcer.attach(link, info);
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

  /**
   * A Nexus peer's capabilities arrived on `link`: if it completes a pair with a link in the other
   * direction and this node gives its own up, the outbound link closes and its dialer waits for the kept
   * link to end before it dials again (no flapping).
   */
  #pairUp(link: PeerLink, peerEpoch: string): void {
    const decision = this.#pairs.add(link, peerEpoch);
    // Only a configured peer's link is given up: one opened on demand closes when idle on its own.
    if (decision === undefined || !this.#dialers.park(decision.close, decision.keep)) return;
    this.#duplicateLinksClosed++;
    this.#log.info(
      { linkId: decision.close.id, peer: decision.close.peer, kept: decision.keep.id },
      'one link per pair: closing ours, the peer dialled us too',
    );
    decision.close.close(DUPLICATE_LINK_REASON, 1000);
  }

  #dialOptions(): Parameters<typeof openPeerSocket>[1] {
    return {
      // One context per trust configuration (the certificate and the CAs), not one per dial.
      secureContext: this.#dialContexts.get(this.#tls.material, this.#auth),
      maxPayload: this.#policy.maxMessageBytes,
      handshakeTimeout: this.#connectTimeoutMs,
    };
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
