/**
 * `createNexus(config)`: wires the building blocks of a node — routing table, hub, relay listeners, hub TLS
 * (files or ACME) — and returns a handle. Where a sniffed connection goes is `node-dispatch.ts`'s business.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { answerAcmeChallenge } from './_acme-challenge.js';
import { AcmeCertificateManager } from './acme.js';
import { createLocalTokenVerifier, type TokenVerifier } from './auth.js';
import type { BackendSession } from './backend-session.js';
import {
  type NexusConfigInput,
  type ResolvedKeepalive,
  type ResolvedLimits,
  type ResolvedNexusConfig,
  resolveNexusConfig,
} from './config.js';
import { BandwidthScheduler } from './bandwidth-scheduler.js';
import { MeteredRelays } from './relay-bandwidth.js';
import { UploadBudget } from './relay-uploads.js';
import { AuthError, TlsError } from './errors.js';
import { BackendHub } from './hub.js';
import { loadHubTlsFiles } from './config-files.js';
import { readPeerCaFile } from './peer-trust.js';
import type { HubTlsContext } from './hub-tls.js';
import { noopLogger } from './logger.js';
import { PeerMesh, type PeerMeshOptions } from './mesh.js';
import type { MeshDiscovery } from './mesh-discovery.js';
import { startMeshDiscovery } from './mesh-discovery-nats.js';
import { type RelayListener, createRelayListener } from './relay-listener.js';
import { NodeDispatch } from './node-dispatch.js';
import { RoutingTable } from './routing-table.js';
import { carryOutReload, type Mutable, type NexusReloadResult, type PeerTrustState } from './node-reload.js';
import { planReload } from './reload-plan.js';
import { createRemoteVerifier } from './remote-verifier.js';
import { type RelayMode, SniffBudget, type SniffedConnection } from './sniff-connection.js';
import { FleetRegistration } from './fleet-registration.js';
import { portRouteKey } from './route-key.js';
import { StunServer } from './stun-server.js';
import { outboundNodeSettings } from './outbound-checks.js';
import { UdpRelay } from './udp-relay.js';

/** Default time `close()` lets relayed streams finish before cutting them, ms. */
export const DEFAULT_CLOSE_GRACE_MS = 10_000;

export type { RouteMissEvent, StreamCloseEvent, StreamOpenEvent } from './node-dispatch.js';
export type { NexusReloadResult } from './node-reload.js';
export type {
  CreateNexusOptions,
  Nexus,
  NexusAddresses,
  NexusCloseOptions,
  NexusEvents,
  SniffFailedEvent,
} from './nexus-types.js';
import type {
  CreateNexusOptions,
  Nexus,
  NexusAddresses,
  NexusCloseOptions,
  NexusEvents,
} from './nexus-types.js';

/**
 * Creates a node from a configuration (reference keys or resolved, see docs/configuration.md). Nothing
 * listens until `listen()`.
 */
export function createNexus(
  config: NexusConfigInput | ResolvedNexusConfig,
  options: CreateNexusOptions = {},
): Nexus {
  const resolved: ResolvedNexusConfig = isResolved(config) ? config : resolveNexusConfig(config);
  const log = (options.logger ?? noopLogger).child({ component: 'nexus' });
  for (const warning of resolved.warnings) log.warn(warning);

  const emitter = new EventEmitter<NexusEvents>();
  // Events are emitted from socket and WebSocket callbacks (and between opening a stream and relaying
  // it): an observer that throws must not cost an end user its connection, leak a backend stream or
  // crash the process. Its error is logged instead.
  const emitUnguarded = emitter.emit.bind(emitter) as (event: string, ...args: unknown[]) => boolean;
  (emitter as { emit: (event: string, ...args: unknown[]) => boolean }).emit = (event, ...args) => {
    try {
      return emitUnguarded(event, ...args);
    } catch (err) {
      log.error({ err, event }, 'an event listener threw');
      return true;
    }
  };
  const routes = new RoutingTable<BackendSession>();
  /** The configuration in force; `reload()` replaces it. Read at use, so live settings follow it. */
  let current = resolved;
  // The hub and the relay listeners keep these objects and read them for each new session or
  // connection; `reload()` updates the live fields in place.
  const liveLimits: Mutable<ResolvedLimits> = { ...resolved.limits };
  const liveKeepalive: Mutable<ResolvedKeepalive> = { ...resolved.keepalive };
  const localTokens: TokenVerifier = (token) =>
    createLocalTokenVerifier({ ...current.auth, secrets: current.backendsJWTSecrets })(token);
  // docs/protocol.md §5.5: a configured verifier checks every token, presenting the hub certificate in
  // force; the secrets (while there are any) check tokens when it is unavailable.
  const verifierConfig = resolved.remoteVerifier;
  const remoteTokens =
    verifierConfig === undefined
      ? undefined
      : createRemoteVerifier({
          url: verifierConfig.url,
          timeoutMs: verifierConfig.timeoutMs,
          ...(verifierConfig.caFile !== undefined ? { caFile: verifierConfig.caFile } : {}),
          clientCertificate: () => tlsContext?.material,
          fallback: (token) =>
            current.backendsJWTSecrets.length > 0
              ? localTokens(token)
              : Promise.reject(new AuthError('token verifier unavailable')),
          logger: options.logger,
        });
  // Relays (end users', outbound connections) are metered only while a cap is set (`totalBandwidthMbps`,
  // docs/edge.md "Bandwidth fair share").
  const bandwidth = new BandwidthScheduler({ totalBandwidthMbps: resolved.totalBandwidthMbps });
  const meters = new MeteredRelays(bandwidth);
  // What streams to backends hold of what end users sent, node-wide (`limits.maxBufferedUploadBytes`).
  const uploads = new UploadBudget(resolved.limits.maxBufferedUploadBytes);
  const { readSize } = uploads;
  const hub = new BackendHub({
    routes,
    // The one place tokens are verified (every era, every stage).
    verifyToken: remoteTokens?.verify ?? localTokens,
    limits: liveLimits,
    keepalive: liveKeepalive,
    // Read live: a reload's `auth.maxTokenBytes` applies to the next upgrade.
    auth: {
      get maxTokenBytes() {
        return current.auth.maxTokenBytes;
      },
      get backendEra() {
        return current.auth.backendEra;
      },
    },
    // Read live, like `auth`: a reload's claim policy applies to the next connection or session.
    get claims() {
      return { ...current.backendClaims, maxHostnames: current.auth.maxHostnames };
    },
    get reauth() {
      return { maintenanceGraceDefaultSeconds: current.backendClaims.maintenanceGraceDefaultSeconds };
    },
    mux: options.mux,
    // Read live: a reload's outbound settings apply to the next outbound_connect.
    outbound: {
      settings: () => ({
        node: outboundNodeSettings(current),
        allowedNetworks: current.outbound.allowedNetworks,
        dialTimeoutMs: current.outbound.dialTimeoutMs,
        idleTimeoutMs: current.outbound.idleTimeoutMs,
      }),
      ...(options.outboundResolve !== undefined ? { resolve: options.outboundResolve } : {}),
      meters,
      uploads,
    },
    logger: options.logger,
  });
  hub.on('backend-connected', (e) => emitter.emit('backend-connected', e));
  hub.on('backend-disconnected', (e) => emitter.emit('backend-disconnected', e));
  hub.on('auth-failed', (e) => emitter.emit('auth-failed', e));
  hub.on('backend-refused', (e) => emitter.emit('backend-refused', e));

  const acmeConfig =
    options.tlsContext === undefined && resolved.tls.mode === 'acme' ? resolved.tls : undefined;
  const acme =
    acmeConfig === undefined
      ? undefined
      : new AcmeCertificateManager({
          hostname: acmeConfig.hostname,
          directoryUrl: acmeConfig.directoryUrl,
          email: acmeConfig.email,
          caFile: acmeConfig.caFile,
          cacheDir: acmeConfig.cacheDir,
          logger: options.logger,
          ...options.acme,
        });
  acme?.on('issued', (e) => emitter.emit('certificate-issued', e));
  // A renewal is an issuance too: `certificate-issued` reports both (counters of issued certificates).
  acme?.on('renewed', (e) => emitter.emit('certificate-issued', e));
  acme?.on('failed', (e) => emitter.emit('certificate-failed', e));

  let tlsContext: HubTlsContext | undefined = options.tlsContext;
  let mesh: PeerMesh | undefined;
  let registration: FleetRegistration | undefined;
  let discovery: MeshDiscovery | undefined;
  /**
   * The mesh's trust in force (what `setTrust` got last, to restore when a later reload step fails) and
   * `peerAuthentication.caFile` as last loaded (to tell whether a reload read a changed file).
   */
  const peerTrust: PeerTrustState = { trust: undefined, caPem: undefined };
  const meshWanted = resolved.peerListen !== undefined || resolved.peers.length > 0;
  let closing: Promise<void> | undefined;
  const budget = new SniffBudget(resolved.limits.maxConcurrentSniffs);
  // Reads the live limits for every datagram, so a reload changes its rates at once.
  const stun =
    resolved.stun === undefined
      ? undefined
      : new StunServer({ ...resolved.stun, limits: liveLimits, logger: options.logger });
  const udp =
    resolved.udp === undefined
      ? undefined
      : new UdpRelay({
          ...resolved.udp,
          routes,
          hub,
          mesh: () => mesh,
          claims: () => current.backendClaims,
          bandwidth,
          logger: options.logger,
        });
  const dispatcher = new NodeDispatch({
    routes,
    hub,
    meters,
    uploads,
    mesh: () => mesh,
    timeouts: () => ({
      idleTimeoutMs: current.idleTimeoutMs,
      clientFinTimeoutMs: current.limits.clientFinTimeoutMs,
      streamEndGraceMs: current.limits.streamEndGraceMs,
    }),
    emit: (event, ...args) => (emitter.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args),
    log,
  });

  /** The TCP claim of relay port `port` while a backend (or a peer) serves it (docs/edge.md "TCP port claims"). */
  const portClaim = (port: () => number) => (): string | undefined => {
    const key = portRouteKey('tcp', port());
    return routes.has(key) ? key : undefined;
  };

  const onRouted = (
    port: number,
    socket: Socket,
    sniffed: SniffedConnection,
  ): string | undefined | Promise<string | undefined> => {
    if (closing !== undefined) return 'shutdown';
    // The ACME block answers HTTP-01 challenges for the node's own name before anything is routed.
    if (acme !== undefined && answerAcmeChallenge(acme, socket, sniffed, log)) return undefined;
    return dispatcher.dispatch(port, socket, sniffed);
  };

  const listeners: Array<{ config: (typeof resolved.listeners)[number]; listener: RelayListener }> =
    resolved.listeners.map((lc) => {
      const listener: RelayListener = createRelayListener({
        port: lc.port,
        host: lc.host,
        mode: lc.mode,
        limits: liveLimits,
        budget,
        readSize,
        logger: options.logger,
        portClaim: portClaim(() => lc.port || (listener.address()?.port ?? 0)),
        // conn_port is the configured relay port; with port 0 (tests), the one bound.
        onRouted: (socket, sniffed) => onRouted(lc.port || (socket.localPort ?? 0), socket, sniffed),
        // The bound port, as `stream-open` and `route-miss` report it (the configured one may be 0).
        onClose: (event) =>
          emitter.emit('sniff-failed', { ...event, port: listener.address()?.port ?? lc.port }),
      });
      return { config: lc, listener };
    });
  // handleConnection for ports the configuration does not list gets its own sniff-only listener.
  const adHoc = new Map<string, RelayListener>();

  const loadTls = async (): Promise<HubTlsContext> => {
    if (tlsContext !== undefined) return tlsContext;
    if (acme !== undefined) {
      tlsContext = await acme.start();
    } else if (current.tls.mode === 'files') {
      tlsContext = await loadHubTlsFiles(current.tls, options.logger);
    }
    if (tlsContext === undefined) throw new TlsError('no hub TLS configured');
    return tlsContext;
  };

  /** Files-mode hub TLS that this node loaded itself (not one given in `options.tlsContext`). */
  const ownsFileTls = options.tlsContext === undefined && resolved.tls.mode === 'files';

  const reload = async (next: NexusConfigInput | ResolvedNexusConfig): Promise<NexusReloadResult> => {
    const incoming = isResolved(next) ? next : resolveNexusConfig(next);
    const actions = planReload(current, incoming, {
      ownsFileTls,
      tlsLoaded: tlsContext !== undefined,
      meshWanted,
      meshRunning: mesh !== undefined,
      meshFixed: {
        idleTimeoutMs: options.mesh?.idleTimeoutMs !== undefined,
        keepaliveIntervalMs: options.mesh?.keepaliveIntervalMs !== undefined,
        keepaliveTimeoutMs: options.mesh?.keepaliveTimeoutMs !== undefined,
      },
    });
    const { applied, restartRequired } = await carryOutReload(actions, {
      tlsContext,
      mesh,
      peerTrust,
      meshOverrides: options.mesh,
      liveLimits,
      liveKeepalive,
      budget,
      setBandwidth: (mbps) => {
        const wasCapped = bandwidth.enabled;
        bandwidth.setCap(mbps);
        // A new value of a cap applies as it is; only setting or lifting it changes which relays are metered.
        if (bandwidth.enabled !== wasCapped) meters.rebind();
      },
    });
    current = incoming;
    uploads.max = incoming.limits.maxBufferedUploadBytes;
    for (const warning of incoming.warnings) log.warn(warning);
    log.info({ applied, restartRequired }, 'configuration reloaded');
    return { applied, restartRequired };
  };

  // Getters go through defineProperties: Object.assign would copy their value at creation time.
  Object.defineProperties(emitter, {
    config: { get: () => current, enumerable: true },
    tlsContext: { get: () => tlsContext, enumerable: true },
    mesh: { get: () => mesh, enumerable: true },
    activeStreams: { get: () => dispatcher.activeStreams, enumerable: true },
    bufferedUploads: {
      get: () => ({ bytes: uploads.held, max: uploads.max }),
      enumerable: true,
    },
    stun: { value: stun, enumerable: true },
    bandwidth: { value: bandwidth, enumerable: true },
    udp: { value: udp, enumerable: true },
    registration: { get: () => registration, enumerable: true },
    discovery: { get: () => discovery, enumerable: true },
  });
  // defineProperties, not Object.assign: assign would read the getters once and freeze their values.
  const handle = {
    reload,
    hub,
    routes,
    acme,
    certificateInfo: () => tlsContext?.info(),
    handleUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      hub.handleUpgrade(req, socket, head),
    handleConnection(socket: Socket, opts: { port: number; mode: RelayMode }) {
      const configured = listeners.find((l) => l.config.port === opts.port && l.config.mode === opts.mode);
      let listener = configured?.listener;
      if (listener === undefined) {
        const key = `${opts.mode}:${opts.port}`;
        listener = adHoc.get(key);
        if (listener === undefined) {
          listener = createRelayListener({
            port: opts.port,
            mode: opts.mode,
            limits: liveLimits,
            budget,
            readSize,
            logger: options.logger,
            portClaim: portClaim(() => opts.port),
            onRouted: (s, sniffed) => onRouted(opts.port, s, sniffed),
            onClose: (event) => emitter.emit('sniff-failed', { ...event, port: opts.port }),
          });
          adHoc.set(key, listener);
        }
      }
      listener.handleConnection(socket);
    },
    async listen(): Promise<NexusAddresses> {
      // Every file first (a missing certificate fails before any port is bound), except in ACME mode,
      // where the HTTP relay listener must be up to answer the challenge before there is a certificate.
      const peerCaFile = meshWanted ? current.peerAuthentication.caFile : undefined;
      const peerCaPem =
        peerCaFile === undefined ? undefined : await readPeerCaFile(peerCaFile, 'peerAuthentication.caFile');
      if (acme === undefined) await loadTls();
      const bound = [];
      for (const { config: lc, listener } of listeners) {
        bound.push({ mode: lc.mode, port: lc.port, address: await listener.listen() });
      }
      const udpAddresses = await udp?.listen();
      const stunAddress = await stun?.listen();
      const context = await loadTls();
      // The hub's own server (the only place one is made), with the context loaded above.
      const hubAddress = await hub.listen(resolved.backendListen.host, resolved.backendListen.port, context);
      let peerAddress: AddressInfo | undefined;
      if (meshWanted) {
        // The configuration in force: a reload before listen() is honoured.
        peerTrust.caPem = peerCaPem;
        const meshOptions: PeerMeshOptions = {
          routes,
          tls: context,
          trustedDomainSuffixes: current.peerAuthentication.trustedDomainSuffixes,
          ca: peerTrust.caPem,
          peers: current.peers,
          openLocalStream: (hostname, init) => hub.openStream(hostname, init),
          uploads,
          idleTimeoutMs: current.idleTimeoutMs,
          keepaliveIntervalMs: current.keepalive.peerPingIntervalMs,
          keepaliveTimeoutMs: current.keepalive.peerDeadAfterMs,
          maxPeerRoutes: current.limits.maxPeerRoutes,
          maxPeerMessageBytes: current.limits.maxPeerMessageBytes,
          tlsHandshakeTimeoutMs: current.limits.tlsHandshakeTimeoutMs,
          maxListenerConnections: current.limits.maxListenerConnections,
          ...(current.peerAuthentication.allowedRoutes !== undefined
            ? { peerAllowedRoutes: current.peerAuthentication.allowedRoutes }
            : {}),
          ...tunnelPortsOf(current),
          logger: options.logger,
          ...options.mesh,
        };
        mesh = new PeerMesh(meshOptions);
        peerTrust.trust = {
          trustedDomainSuffixes: meshOptions.trustedDomainSuffixes,
          ...(meshOptions.ca !== undefined ? { ca: meshOptions.ca } : {}),
        };
        mesh.on('peer-connected', (e) => emitter.emit('peer-connected', e));
        mesh.on('peer-disconnected', (e) => emitter.emit('peer-disconnected', e));
        mesh.on('routes-changed', (e) => emitter.emit('routes-changed', e));
        mesh.on('peer-refused', (e) => emitter.emit('peer-refused', e));
        if (resolved.peerListen !== undefined) {
          // The address stays the one of start-up (restart-only, see reload()).
          peerAddress = await mesh.listen({ port: resolved.peerListen.port, host: resolved.peerListen.host });
        }
        mesh.start();
        discovery = await startMeshDiscovery(
          current,
          { mesh, routes, peer: peerAddress },
          context,
          options.logger,
        );
      }
      if (resolved.registration !== undefined && closing === undefined) {
        registration = new FleetRegistration({
          url: resolved.registration.url,
          region: resolved.registration.region,
          // The port backends dial: the configured one (the bound one when the configuration says 0).
          backendPort: resolved.backendListen.port || hubAddress.port,
          stunPort: stunAddress?.port,
          // The hub certificate in force at each attempt (ACME renewals and file reloads apply).
          clientCertificate: () => tlsContext?.material,
          logger: options.logger,
          ...options.registration,
        });
        registration.start();
      }
      log.info(
        {
          peer: peerAddress === undefined ? undefined : `${peerAddress.address}:${peerAddress.port}`,
          hub: `${hubAddress.address}:${hubAddress.port}`,
          listeners: bound.map((b) => `${b.mode}:${b.address.address}:${b.address.port}`),
          stun: stunAddress === undefined ? undefined : `${stunAddress.address}:${stunAddress.port}`,
          udp: udpAddresses?.map((a) => `${a.address}:${a.port}`),
        },
        'nexus listening',
      );
      return {
        hub: hubAddress,
        peer: peerAddress,
        listeners: bound,
        ...(stunAddress === undefined ? {} : { stun: stunAddress }),
        ...(udpAddresses === undefined ? {} : { udp: udpAddresses }),
      };
    },
    close(closeOptions: NexusCloseOptions = {}): Promise<void> {
      closing ??= (async () => {
        const graceMs = closeOptions.graceMs ?? DEFAULT_CLOSE_GRACE_MS;
        // 0. Stop heartbeats first, so the orchestrator starts counting this node out while it drains.
        registration?.stop();
        // 1. Stop accepting end users (sniffing connections are dropped with reason `shutdown`).
        await Promise.all([
          stun?.close(),
          udp?.close(),
          ...listeners.map((l) => l.listener.close()),
          ...[...adHoc.values()].map((l) => l.close()),
        ]);
        // 2. Let relayed streams finish, up to the grace period.
        await dispatcher.drain(graceMs);
        // 3. Leave the mesh, end backend sessions and stop the hub server.
        await discovery?.close();
        await mesh?.close();
        await hub.close();
        bandwidth.close();
        remoteTokens?.close();
        await acme?.close();
        log.info('nexus closed');
      })();
      return closing;
    },
  };
  return Object.defineProperties(emitter, Object.getOwnPropertyDescriptors(handle)) as unknown as Nexus;
}

function isResolved(config: NexusConfigInput | ResolvedNexusConfig): config is ResolvedNexusConfig {
  return (config as ResolvedNexusConfig).backendListen !== undefined && Object.isFrozen(config);
}

/**
 * The relay ports a peer's tunnel may name: `peerTunnelPorts` when configured, else any (a node does not
 * know the relay ports of its peers, which may differ from its own).
 */
function tunnelPortsOf(config: ResolvedNexusConfig): { tunnelPorts?: number[] } {
  return config.peerTunnelPorts === undefined ? {} : { tunnelPorts: [...config.peerTunnelPorts] };
}
