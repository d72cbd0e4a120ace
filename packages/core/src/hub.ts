/**
 * The backend hub (docs/protocol.md §1): a `wss://…/connect` endpoint where backends dial in, authenticate with
 * a JWT as their first message, and then carry end-user streams over a multiplexed WebSocket.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { DATA_PAYLOAD_HEADER, HUB_PATH, rejectUpgrade } from '@nexus-proxy/common';
import {
  checkOfferedDataPayload,
  DATA_HEADER_LENGTH,
  DEFAULT_MAX_BUFFERED_BYTES,
  MAX_BACKEND_MESSAGE,
  MAX_DATA_PAYLOAD,
  type MuxStream,
  NEXUS_DATA_PAYLOAD,
  parseOfferedDataPayload,
  peerDataPayload,
  ReceiveBudget,
  WS_CLOSE_POLICY_VIOLATION,
} from '@nexus-proxy/mux-protocol';
import { type WebSocket, WebSocketServer } from 'ws';
import {
  BackendSession,
  DEFAULT_HUB_DEAD_AFTER_MS,
  DEFAULT_HUB_PING_INTERVAL_MS,
  DEFAULT_MAX_CONTROL_MESSAGES_PER_SECOND,
  DEFAULT_MAX_STREAMS_PER_SESSION,
} from './backend-session.js';
import { DEFAULT_MAX_TOKEN_BYTES } from './auth.js';
import { DEFAULT_BACKEND_ERA_MODE } from './backend-era.js';
import { type BackendIdentity, routePatterns } from './backend-identity.js';
import { createAuthorizerStatusCheck } from './authorizer-status.js';
import { BackendReauth, DEFAULT_MAINTENANCE_GRACE_SECONDS } from './backend-reauth.js';
import { type ClaimPolicy, type CurrentEraClaims, DEFAULT_CLAIM_POLICY } from './current-claims.js';
import { LimitError, NexusError, NexusErrorCode, TlsError } from './errors.js';
import { addressGroup } from './address-group.js';
import { type HandshakeOutcome, runBackendHandshake } from './hub-handshake.js';
import {
  type BackendHubOptions,
  type BackendHubStats,
  DEFAULT_AUTH_TIMEOUT_MS,
  DEFAULT_HUB_CLOSE_GRACE_MS,
  DEFAULT_MAX_PENDING_CONNECTS,
  type HubStreamInit,
} from './hub-options.js';

export { DEFAULT_MAX_SESSIONS } from './listener-guards.js';
export type {
  AuthFailedEvent,
  BackendConnectedEvent,
  BackendDisconnectedEvent,
  BackendHubEvents,
  BackendRefusedEvent,
} from './hub-events.js';
import type { BackendHubEvents } from './hub-events.js';
import { HubTlsContext } from './hub-tls.js';
import {
  type AdmissionRefusal,
  DEFAULT_MAX_SESSIONS,
  guardListener,
  HubAdmission,
  handshakeTimeout,
  REFUSAL_LIMIT,
} from './listener-guards.js';
import { listenServer } from './listen.js';
import { type Logger, noopLogger } from './logger.js';
import { OutboundStreams } from './outbound-streams.js';
import { DEFAULT_MAX_LOCAL_ROUTES, type LocalPoolRoute, type RoutingTable } from './routing-table.js';

export type { BackendEra, BackendIdentity, OutboundClaims, UdpRouteClaim } from './backend-identity.js';
export {
  type BackendHubKeepalive,
  type BackendHubLimits,
  type BackendHubOptions,
  type BackendHubStats,
  DEFAULT_AUTH_TIMEOUT_MS,
  DEFAULT_HUB_CLOSE_GRACE_MS,
  DEFAULT_MAX_PENDING_CONNECTS,
  type HubStreamInit,
} from './hub-options.js';

/**
 * The backend hub. Construct, then `listen()` (its own HTTPS server) or feed upgrades from your own server
 * through `handleUpgrade()`. Match events for metrics: `backend-connected`, `backend-disconnected`,
 * `auth-failed`, `backend-refused`.
 */
export class BackendHub<L = string> extends EventEmitter<BackendHubEvents> {
  /** The routing table sessions are registered in. */
  readonly routes: RoutingTable<BackendSession, L>;
  /** Serves the backends' outbound connections; `stats()` and `sessionStats()` for metrics. */
  readonly outbound: OutboundStreams;
  readonly #options: BackendHubOptions<L>;
  readonly #log: Logger;
  /** Upgrades new backends; replaced when its `maxPayload` changes (open sockets keep their limit). */
  #wss: WebSocketServer;
  #wssMaxPayload: number;
  readonly #sessions = new Set<BackendSession>();
  readonly #pending = new Set<WebSocket>();
  /** Upgrades waiting for their token per address, sessions per address and per token. */
  readonly #admission = new HubAdmission();
  /** DATA granted to backends and not yet delivered, across every session (`limits.maxBufferedBytes`). */
  readonly #receiveBudget = new ReceiveBudget(DEFAULT_MAX_BUFFERED_BYTES);
  /** Upgraded sockets, so close() can cut them after the grace period (http no longer tracks them). */
  readonly #sockets = new Set<Duplex>();
  #server: HttpsServer | undefined;
  #detachTls: (() => void) | undefined;
  /** The certificate the hub serves, when swappable: its outbound HTTPS requests present it. */
  #servedTls: HubTlsContext | undefined;
  /** The default authorizer status check (docs/protocol.md §1.10), with the served certificate. */
  #authorizerStatus: ((uri: string) => Promise<boolean>) | undefined;
  #closing = false;
  /** Sessions already warned about for reaching `maxPendingConnects` (one warning each). */
  readonly #pendingWarned = new WeakSet<BackendSession>();

  constructor(options: BackendHubOptions<L>) {
    super();
    this.#options = options;
    this.routes = options.routes;
    this.#log = (options.logger ?? noopLogger).child({ component: 'hub' });
    this.outbound = new OutboundStreams({ ...options.outbound, logger: options.logger ?? noopLogger });
    this.#wssMaxPayload = this.#maxPayload;
    this.#wss = createWss(this.#wssMaxPayload, this.#onHeaders);
  }

  /** Current `maxSessions` (read live, see `BackendHubOptions.limits`). */
  get #maxSessions(): number {
    return this.#options.limits?.maxSessions ?? DEFAULT_MAX_SESSIONS;
  }

  get #maxMessageBytes(): number {
    return this.#options.limits?.maxMessageBytes ?? MAX_BACKEND_MESSAGE;
  }

  get #maxTokenBytes(): number {
    return this.#options.auth?.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
  }

  /** The largest DATA payload the hub accepts from a backend that knows of it (§1.11), read live. */
  get #offeredDataPayload(): number {
    return checkOfferedDataPayload(this.#options.mux?.maxDataPayload ?? NEXUS_DATA_PAYLOAD);
  }

  /**
   * The WebSocket's cap: the token message may be larger than the later ones, and a backend that learnt
   * what the hub accepts sends larger messages; each session enforces its own limit.
   */
  get #maxPayload(): number {
    return Math.max(
      this.#maxMessageBytes,
      this.#maxTokenBytes,
      DATA_HEADER_LENGTH + this.#offeredDataPayload,
    );
  }

  /** The HTTPS server, once `listen()` created it. */
  get server(): HttpsServer | undefined {
    return this.#server;
  }

  /** Authenticated sessions. */
  get sessions(): readonly BackendSession[] {
    return [...this.#sessions];
  }

  /** A snapshot for metrics. */
  stats(): BackendHubStats {
    let streams = 0;
    for (const s of this.#sessions) streams += s.streamCount;
    return { sessions: this.#sessions.size, authenticating: this.#pending.size, streams };
  }

  /**
   * Start the hub's HTTPS server on `host:port` (port `0` picks one), with `tls` (default: the `tls`
   * option). This is the only place a hub server is made: `createNexus` calls it too. `/connect`
   * upgrades; a plain request there gets 426, other paths 404. Resolves with the bound address; rejects
   * with `TlsError` without TLS material, `NexusError` `NEXUS_ERR_LISTEN` when already listening or the
   * address cannot be bound.
   */
  listen(host?: string, port = 0, tls = this.#options.tls): Promise<AddressInfo> {
    if (tls === undefined) return Promise.reject(new TlsError('BackendHub: `tls` is required to listen'));
    if (this.#server !== undefined)
      return Promise.reject(new NexusError(NexusErrorCode.Listen, 'BackendHub: already listening'));
    const guard = handshakeTimeout(this.#options.limits);
    const server =
      tls instanceof HubTlsContext
        ? createHttpsServer({ ...tls.serverOptions(), ...guard })
        : createHttpsServer({ ...tls, ...guard });
    guardListener(server, this.#options.limits);
    if (tls instanceof HubTlsContext) {
      this.#detachTls = tls.attach(server);
      this.#servedTls = tls;
    }
    this.#server = server;
    server.on('request', this.#onRequest);
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.handleUpgrade(req, socket, head),
    );
    server.on('tlsClientError', (err) => this.#log.debug({ err: err.message }, 'TLS handshake failed'));
    return listenServer(server, port, host, this.#log, 'hub', 'backendListenAddress');
  }

  /**
   * Take over an HTTP upgrade request ("bring your own server"). Paths other than `/connect` get 404; over
   * `maxSessions`, 503.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', noop);
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== HUB_PATH) {
      rejectUpgrade(socket, 404, 'Not Found');
      return;
    }
    const remoteAddress = req.socket.remoteAddress;
    const group = addressGroup(remoteAddress);
    const refusal = this.#closing ? undefined : this.#admissionRefusal(group);
    if (this.#closing || refusal !== undefined) {
      rejectUpgrade(socket, 503, 'Service Unavailable');
      if (refusal !== undefined) {
        this.#log.warn(
          { reason: refusal, remoteAddress },
          `${REFUSAL_LIMIT[refusal]} reached: refusing a backend`,
        );
        this.emit('backend-refused', { reason: refusal, remoteAddress });
      }
      return;
    }
    const maxPayload = this.#maxPayload;
    if (maxPayload !== this.#wssMaxPayload) {
      // ws fixes maxPayload per server; a new one applies the new limit to new backends only.
      this.#wssMaxPayload = maxPayload;
      this.#wss = createWss(maxPayload, this.#onHeaders);
    }
    // §1.11: a backend that says what it accepts gets the hub's own limit in the 101 response, and each
    // sends the other at most what it accepts; one that says nothing (the reference) gets 32 768 bytes.
    const offered = req.headers[DATA_PAYLOAD_HEADER];
    const payloads =
      offered === undefined
        ? { receive: MAX_DATA_PAYLOAD, send: MAX_DATA_PAYLOAD }
        : {
            receive: this.#offeredDataPayload,
            send: peerDataPayload(parseOfferedDataPayload(offered)),
          };
    if (offered !== undefined) this.#answers.set(req, payloads.receive);
    this.#wss.handleUpgrade(req, socket, head, (ws) =>
      this.#authenticate(ws, socket, remoteAddress, group, payloads),
    );
  }

  /** The limits to answer in the upgrade responses being written (docs/protocol.md §1.11). */
  readonly #answers = new WeakMap<IncomingMessage, number>();

  readonly #onHeaders = (headers: string[], req: IncomingMessage): void => {
    const answer = this.#answers.get(req);
    if (answer !== undefined) headers.push(`${DATA_PAYLOAD_HEADER}: ${answer}`);
  };

  /** Which cap refuses a new upgrade from address group `group`, if any (limits read live). */
  #admissionRefusal(group: string): AdmissionRefusal | undefined {
    return this.#admission.refusal(this.#options.limits, this.#sessions.size, this.#pending.size, group);
  }

  /**
   * Open a stream for `hostname` on a local backend picked by weighted round robin: the routing table's
   * decision, then {@link BackendHub.openRouted}. Returns `undefined` when no local backend serves it
   * (peer routes are not this block's business).
   */
  openStream(hostname: string, init: HubStreamInit): MuxStream | undefined {
    const route = this.routes.resolve(hostname);
    return route.kind === 'local' ? this.openRouted(route, init).stream : undefined;
  }

  /**
   * Open a stream on a backend of the pool a routing decision chose, picked by weighted round robin; the
   * session picked comes with it (its bandwidth account, docs/edge.md). A backend at
   * `maxStreamsPerSession` open streams or `maxPendingConnects` unanswered ones is skipped; when every
   * backend of the pool is, throws `LimitError('maxStreamsPerSession')` (close with `stream-limit`) or
   * `LimitError('maxPendingConnects')` (close with `pending-limit`).
   */
  openRouted(
    route: LocalPoolRoute<BackendSession>,
    init: HubStreamInit,
  ): { stream: MuxStream; session: BackendSession } {
    const { pool, hostname } = route;
    const tries = Math.max(1, pool.size);
    const maxPending = this.#options.limits?.maxPendingConnects ?? DEFAULT_MAX_PENDING_CONNECTS;
    let session: BackendSession | undefined = pool.pick();
    let limitError: unknown;
    const tried = new Set<BackendSession>();
    for (let i = 0; i < tries && session !== undefined; i++) {
      if (!tried.has(session)) {
        tried.add(session);
        if (session.pendingConnects >= maxPending) {
          limitError = this.#pendingLimit(session, maxPending);
        } else {
          try {
            return { stream: session.openStream({ hostname, ...init }), session };
          } catch (err) {
            if (!LimitError.is(err) && !session.closed) throw err;
            limitError = err;
          }
        }
      }
      session = pool.pick();
    }
    throw LimitError.is(limitError) ? limitError : new LimitError('maxStreamsPerSession');
  }

  /** The error for a session at `maxPendingConnects`; warns once per session (a stuck backend). */
  #pendingLimit(session: BackendSession, limit: number): LimitError {
    if (!this.#pendingWarned.has(session)) {
      this.#pendingWarned.add(session);
      this.#log.warn(
        { sessionId: session.id, limit, remoteAddress: session.remoteAddress },
        'backend leaves maxPendingConnects streams unanswered: no new streams for it until it answers',
      );
    }
    return new LimitError('maxPendingConnects', `backend session has ${limit} streams it has not answered`);
  }

  /**
   * Stop accepting backends and end every session (close 1001 `shutdown`; their streams end). Sockets still
   * open after a short grace are cut. Resolves once every socket is closed and the server stopped.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    for (const ws of this.#pending) ws.close(1001, 'shutdown');
    for (const s of this.#sessions) s.close('shutdown');
    this.#detachTls?.();
    const sockets = [...this.#sockets];
    const grace = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, DEFAULT_HUB_CLOSE_GRACE_MS);
    await Promise.all(
      sockets.map((s) => (s.destroyed ? undefined : new Promise<void>((r) => s.once('close', () => r())))),
    );
    clearTimeout(grace);
    const server = this.#server;
    if (server === undefined || !server.listening) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '').split('?', 1)[0];
    const status = path === HUB_PATH ? 426 : 404;
    res.writeHead(status, { 'content-type': 'text/plain', connection: 'close' });
    res.end(status === 426 ? 'Upgrade Required\n' : 'Not Found\n');
  };

  #authenticate(
    ws: WebSocket,
    socket: Duplex,
    remoteAddress: string | undefined,
    group: string,
    payloads: DataPayloads,
  ): void {
    this.#pending.add(ws);
    const releasePending = this.#admission.pendingByAddress.take(group, Number.MAX_SAFE_INTEGER);
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    const { limits, auth } = this.#options;
    const log = this.#log.child({ remoteAddress });
    runBackendHandshake(
      ws,
      {
        verifyToken: this.#options.verifyToken,
        era: auth?.backendEra ?? DEFAULT_BACKEND_ERA_MODE,
        claims: this.#claimPolicy,
        authTimeoutMs: limits?.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS,
        maxTokenBytes: this.#maxTokenBytes,
        maxMessageBytes: this.#maxMessageBytes,
      },
      {
        settled: () => {
          this.#pending.delete(ws);
          releasePending?.();
        },
        failed: (reason) => {
          this.#log.info({ reason, remoteAddress }, 'backend authentication failed');
          this.emit('auth-failed', { reason, remoteAddress });
        },
        left: () => this.#log.debug({ remoteAddress }, 'backend left before authenticating'),
        accepted: (outcome) => this.#accept(ws, socket, outcome, remoteAddress, group, payloads),
      },
      log,
    );
  }

  /** A verified backend: the last admission checks, then its session. */
  #accept(
    ws: WebSocket,
    socket: Duplex,
    outcome: HandshakeOutcome,
    remoteAddress: string | undefined,
    group: string,
    payloads: DataPayloads,
  ): void {
    if (this.#closing) {
      outcome.refuse('shutdown');
      return;
    }
    // The node's routes are bounded too (docs/mesh.md "Limits"): what a peer keeps of one announce.
    const patterns = routePatterns(outcome.identity);
    const limit = this.#options.limits?.maxLocalRoutes ?? DEFAULT_MAX_LOCAL_ROUTES;
    if (this.routes.localPatternCount + this.routes.countNewLocal(patterns) > limit) {
      this.#log.warn({ patterns: patterns.length, limit, remoteAddress }, 'too many routes on this node');
      outcome.refuse('too many routes on this node');
      return;
    }
    // One token (current era: one backend identity), many sessions: capped, so one leaked token or
    // secret cannot fill the hub.
    const perToken = this.#admission.perToken(this.#options.limits);
    const releaseToken = this.#admission.sessionsByToken.take(outcome.tokenKey, perToken);
    if (releaseToken === undefined) {
      outcome.refuse(
        outcome.identity.era === 'current'
          ? 'too many sessions for this backend identity'
          : 'too many sessions for this token',
      );
      return;
    }
    const session = this.#attach(ws, socket, outcome, remoteAddress, patterns, payloads);
    const releaseAddress = this.#admission.sessionsByAddress.take(group, Number.MAX_SAFE_INTEGER);
    session.once('close', () => {
      releaseToken();
      releaseAddress?.();
    });
    for (const [message, binary] of outcome.early) session.deliver(message, binary);
    ws.resume();
  }

  /** The claim policy in force (read live). */
  get #claimPolicy(): ClaimPolicy {
    return this.#options.claims ?? DEFAULT_CLAIM_POLICY;
  }

  #attach(
    ws: WebSocket,
    socket: Duplex,
    { identity, current }: { identity: BackendIdentity; current: CurrentEraClaims | undefined },
    remoteAddress: string | undefined,
    patterns: string[],
    payloads: DataPayloads,
  ): BackendSession {
    const { limits, keepalive } = this.#options;
    // Read live: a reload's budget applies once the next session connects.
    this.#receiveBudget.resize(limits?.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES);
    let reauth: BackendReauth | undefined;
    const session: BackendSession = new BackendSession({
      ws,
      socket,
      hostnames: identity.hostnames,
      weight: identity.weight ?? 1,
      identity,
      ...(current !== undefined ? { onText: (text: string) => reauth?.handleText(text) } : {}),
      remoteAddress,
      maxStreams: limits?.maxStreamsPerSession ?? DEFAULT_MAX_STREAMS_PER_SESSION,
      maxMessageBytes: Math.max(this.#maxMessageBytes, DATA_HEADER_LENGTH + payloads.receive),
      maxControlMessagesPerSecond:
        limits?.maxControlMessagesPerSecond ?? DEFAULT_MAX_CONTROL_MESSAGES_PER_SECOND,
      pingIntervalMs: keepalive?.hubPingIntervalMs ?? DEFAULT_HUB_PING_INTERVAL_MS,
      deadAfterMs: keepalive?.hubDeadAfterMs ?? DEFAULT_HUB_DEAD_AFTER_MS,
      // §1.11: what each side accepts (32 768 both ways with the reference).
      mux: {
        receiveBudget: this.#receiveBudget,
        ...this.#options.mux,
        maxDataPayload: payloads.receive,
        sendDataPayload: payloads.send,
      },
      // Not the hub's child: the session sets its own `component` (a second one would repeat the key).
      logger: this.#options.logger,
    });
    if (current !== undefined) reauth = this.#startReauth(session, current);
    this.outbound.attach(session);
    this.#sessions.add(session);
    // The whole set at once: one local-pattern notification (one announce), not one per name.
    const { registered, invalid } = this.routes.addLocalMany(patterns, session, session.weight);
    for (const pattern of invalid)
      this.#log.warn({ pattern, sessionId: session.id }, 'ignoring an invalid hostname pattern');
    session.once('close', (reason) => {
      reauth?.stop();
      // §1.7: the backend leaves every pool at once.
      this.routes.removeTarget(session);
      this.#sessions.delete(session);
      this.emit('backend-disconnected', { id: session.id, reason, hostnames: session.hostnames });
    });
    this.#log.info(
      {
        sessionId: session.id,
        hostnames: registered,
        weight: session.weight,
        era: session.identity.era,
        remoteAddress,
      },
      'backend connected',
    );
    this.emit('backend-connected', {
      id: session.id,
      hostnames: session.hostnames,
      weight: session.weight,
      remoteAddress,
      era: session.identity.era ?? 'seed',
    });
    return session;
  }

  /** The default authorizer status check (docs/protocol.md §1.10), presenting the served certificate. */
  #defaultStatusCheck(): (uri: string) => Promise<boolean> {
    const ca = this.#options.reauth?.authorizerStatusCa;
    this.#authorizerStatus ??= createAuthorizerStatusCheck({
      clientCertificate: () => this.#servedTls?.material,
      ...(ca !== undefined ? { ca } : {}),
    });
    return this.#authorizerStatus;
  }

  /** Current era: the session's re-authentication loop (docs/protocol.md §1.10). */
  #startReauth(session: BackendSession, claims: CurrentEraClaims): BackendReauth {
    const reauth = new BackendReauth({
      claims,
      verifyToken: this.#options.verifyToken,
      policy: this.#claimPolicy,
      maintenanceGraceDefaultSeconds:
        this.#options.reauth?.maintenanceGraceDefaultSeconds ?? DEFAULT_MAINTENANCE_GRACE_SECONDS,
      sendText: (text) => session.sendText(text),
      fail: (reason) => session.close(reason, WS_CLOSE_POLICY_VIOLATION),
      checkStatus: this.#options.reauth?.checkStatus ?? this.#defaultStatusCheck(),
      logger: this.#log.child({ sessionId: session.id }),
    });
    reauth.start();
    return reauth;
  }
}

/** The largest DATA payloads of one session: what the hub accepts, and what it sends (§1.11). */
interface DataPayloads {
  receive: number;
  send: number;
}

function createWss(
  maxPayload: number,
  onHeaders: (headers: string[], req: IncomingMessage) => void,
): WebSocketServer {
  const wss = new WebSocketServer({
    noServer: true,
    // §1.3: the reference hub kills a session on any message over 32 785 bytes; ws answers 1009. The
    // cap may be higher to admit the token; sessions enforce `maxMessageBytes` themselves.
    maxPayload,
    perMessageDeflate: false, // §1.1
    clientTracking: false,
    // Sessions answer pings themselves, so that a ping flood gets a policy close (BackendSession).
    autoPong: false,
  });
  wss.on('headers', onHeaders);
  return wss;
}

function noop(): void {}
