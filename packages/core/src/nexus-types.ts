/**
 * The types of a node (`createNexus`, nexus.ts): its options, events, addresses and handle.
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { AcmeCertificateManager, AcmeFailedEvent, AcmeIssuedEvent } from './acme.js';
import type { BackendSession } from './backend-session.js';
import type { BandwidthScheduler } from './bandwidth-scheduler.js';
import type { NexusConfigInput, ResolvedNexusConfig } from './config.js';
import type { FleetRegistration, FleetRegistrationOptions } from './fleet-registration.js';
import type {
  AuthFailedEvent,
  BackendConnectedEvent,
  BackendDisconnectedEvent,
  BackendHub,
  BackendHubOptions,
  BackendRefusedEvent,
} from './hub.js';
import type { HubTlsContext, TlsCertificateInfo } from './hub-tls.js';
import type { Logger } from './logger.js';
import type { PeerMesh, PeerMeshEvents, PeerMeshOptions } from './mesh.js';
import type { MeshDiscovery } from './mesh-discovery.js';
import type { RouteMissEvent, StreamCloseEvent, StreamOpenEvent } from './node-dispatch.js';
import type { NexusReloadResult } from './node-reload.js';
import type { OutboundResolver } from './outbound-connect.js';
import type { RelayCloseEvent } from './relay-listener.js';
import type { RoutingTable } from './routing-table.js';
import type { RelayMode } from './sniff-connection.js';
import type { StunServer } from './stun-server.js';
import type { UdpRelay } from './udp-relay.js';

/** Options of {@link createNexus} besides the configuration itself. */
export interface CreateNexusOptions {
  /** pino-compatible logger. Default: no-op. */
  logger?: Logger;
  /**
   * Hub TLS material to use instead of the configuration's TLS mode (embedding, tests). When given, the
   * configuration's `tls` is not read.
   */
  tlsContext?: HubTlsContext;
  /** Extra options for the ACME manager (tests: `skipChallengeVerification`, polling backoff). */
  acme?: Partial<ConstructorParameters<typeof AcmeCertificateManager>[0]>;
  /** Mux engine tuning for backend sessions (receive window and grant batch in frames, buffer sizes in bytes). */
  mux?: BackendHubOptions['mux'];
  /** Extra options for the peer mesh (tests: reconnect delays, keepalive, extra CAs as PEM text). */
  mesh?: Partial<PeerMeshOptions>;
  /** Extra options for fleet registration (a private orchestrator's CA as PEM text, jitter source). */
  registration?: Pick<FleetRegistrationOptions, 'ca' | 'random'>;
  /** Name resolution of outbound connections (tests). Default: the system resolver. */
  outboundResolve?: OutboundResolver;
}

/** Payload of `sniff-failed`. */
export interface SniffFailedEvent extends RelayCloseEvent {
  port: number;
}

/** Typed events of a node. */
export interface NexusEvents {
  'backend-connected': [event: BackendConnectedEvent];
  'backend-disconnected': [event: BackendDisconnectedEvent];
  'auth-failed': [event: AuthFailedEvent];
  /** A backend turned away before its WebSocket opened (HTTP 503; `reason` names the hub cap). */
  'backend-refused': [event: BackendRefusedEvent];
  'stream-open': [event: StreamOpenEvent];
  'stream-close': [event: StreamCloseEvent];
  'route-miss': [event: RouteMissEvent];
  'sniff-failed': [event: SniffFailedEvent];
  /** ACME mode: a certificate was issued, the first one or a renewal. */
  'certificate-issued': [event: AcmeIssuedEvent];
  'certificate-failed': [event: AcmeFailedEvent];
  'peer-connected': PeerMeshEvents['peer-connected'];
  'peer-disconnected': PeerMeshEvents['peer-disconnected'];
  'routes-changed': PeerMeshEvents['routes-changed'];
  'peer-refused': PeerMeshEvents['peer-refused'];
}

/** Bound addresses, as `listen()` reports them. */
export interface NexusAddresses {
  hub: AddressInfo;
  /** The peer listener (`/mesh`), when the mesh accepts peers. */
  peer?: AddressInfo;
  listeners: Array<{ mode: RelayMode; port: number; address: AddressInfo }>;
  /** The STUN Binding server (UDP), when `stunPort` is set. */
  stun?: AddressInfo;
  /** The UDP relay ports, in the order of `udpRelayPorts`, when set. */
  udp?: AddressInfo[];
}

/** Options of {@link Nexus.close}. */
export interface NexusCloseOptions {
  /** Time relayed streams get to finish before they are cut, ms. Default: `10_000`. */
  graceMs?: number;
}

/** A node. */
export interface Nexus extends EventEmitter<NexusEvents> {
  /** The configuration in force: the one given to `createNexus`, or the last one given to `reload()`. */
  readonly config: ResolvedNexusConfig;
  /** The backend hub (sessions, `openStream`, `handleUpgrade`). */
  readonly hub: BackendHub;
  /** The routing table (local backends). */
  readonly routes: RoutingTable<BackendSession>;
  /** The ACME manager, in automatic-TLS mode. */
  readonly acme: AcmeCertificateManager | undefined;
  /** The peer mesh, once `listen()` started it (when `peers` or trusted suffixes are configured). */
  readonly mesh: PeerMesh | undefined;
  /** The hub's TLS context, once `listen()` loaded it. */
  readonly tlsContext: HubTlsContext | undefined;
  /** The STUN Binding server, when `stunPort` is set (`stats()` for its counters). */
  readonly stun: StunServer | undefined;
  /** The UDP relay, when `udpRelayPorts` is set (`stats()`, `flowsByTarget()`). */
  readonly udp: UdpRelay | undefined;
  /** Fleet registration, once `listen()` started it (when `registrationURL` is set). */
  readonly registration: FleetRegistration | undefined;
  /**
   * The bandwidth cap's scheduler (`totalBandwidthMbps`; `stats()` for bytes and throttled time per
   * backend). Other senders (UDP datagrams) charge their backend's account here: `account(id, group)`,
   * then `tryCharge(bytes)` per datagram. Unlimited when the cap is `0`.
   */
  readonly bandwidth: BandwidthScheduler;
  /** Route discovery (`meshDiscovery`), once `listen()` started it: `status()` says whether it is degraded. */
  readonly discovery: MeshDiscovery | undefined;
  /** Start every listener. Resolves with the bound addresses. */
  listen(): Promise<NexusAddresses>;
  /** Graceful stop: stop accepting, let relayed streams finish (up to `graceMs`), then end backend sessions. */
  close(options?: NexusCloseOptions): Promise<void>;
  /**
   * Sniff and route a socket accepted by your own server, as if it had arrived on relay port `port` in
   * `mode`. Create the socket with `allowHalfOpen: true`.
   */
  handleConnection(socket: Socket, options: { port: number; mode: RelayMode }): void;
  /** Hand an HTTP upgrade request of your own HTTPS server to the hub (`/connect`). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Relayed streams right now. */
  readonly activeStreams: number;
  /**
   * What the streams to backends hold of what end users (outbound connections, tunnels) sent them, node-wide
   * (`limits.maxBufferedUploadBytes`): bytes now and the bound.
   */
  readonly bufferedUploads: { bytes: number; max: number };
  /** The hub's current certificate. */
  certificateInfo(): TlsCertificateInfo | undefined;
  /**
   * Applies a new configuration without dropping anything open: backend secrets and token checks, the
   * limits and keepalive settings (for new connections, sessions and peer links; open peer links get the
   * new keepalive too), the idle timeout (new streams and tunnels), in files TLS mode the certificate
   * files (re-read even when their paths are unchanged; new handshakes get the new certificate) and, when
   * the node runs a mesh, its peers (new ones are dialled, removed ones stop and their outbound links
   * close), trusted suffixes and CA file (re-read like the certificate files; new peer handshakes use
   * them, established links stay). Bound addresses and the TLS mode are reported in `restartRequired`,
   * and so are mesh settings on a node started without a mesh. Rejects — and changes nothing — when the
   * configuration is invalid (`InvalidConfigError`) or a certificate or CA file cannot be loaded
   * (`TlsError`).
   */
  reload(config: NexusConfigInput | ResolvedNexusConfig): Promise<NexusReloadResult>;
}
