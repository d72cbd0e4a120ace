/**
 * Types of the node configuration: what a file or a caller writes (`*Input`, reference keys keep their
 * reference names and units) and what `resolveNexusConfig` returns (`Resolved*`, frozen, milliseconds).
 */
import type { BackendEraMode } from '../backend-era.js';
import type { ClaimPolicy } from '../current-claims.js';
import type { LogLevel } from '../logger.js';

/** A listen address: `":8443"`, `"0.0.0.0:8443"`, `"[::1]:8443"`, `"localhost:0"`, or a bare port. */
export type AddressInput = string | number;

/** One public relay listener. */
export interface ListenerInput {
  /** TCP port, 0–65535 (0 = any free port, for tests). */
  port: number;
  /** `tls` routes by SNI, `http` by Host. Default: `http` for port 80, `tls` otherwise. */
  mode?: 'tls' | 'http';
  /** Address to bind. Default: `bindHost`, else all interfaces. */
  host?: string;
}

/** Resource limits. All integers. */
export interface LimitsInput {
  /** Connections sniffing (reading ClientHello / HTTP head) at once, node-wide; more are closed. Default: `256`. */
  maxConcurrentSniffs?: number;
  /** First byte must arrive within, ms. Default: `15_000`. */
  sniffFirstByteTimeoutMs?: number;
  /**
   * First byte must arrive within this, ms, for a connection accepted while at least half of
   * `maxConcurrentSniffs` is in use (the smaller of the two applies). Default: `3_000`.
   */
  sniffFirstByteTimeoutBusyMs?: number;
  /** Each read extends the sniff deadline by, ms. Default: `5_000`. */
  sniffReadExtensionMs?: number;
  /** Hard cap on sniffing one connection, ms. Default: `30_000`. */
  sniffAbsoluteTimeoutMs?: number;
  /** Largest ClientHello, bytes. Default: `32_768`. */
  maxClientHelloBytes?: number;
  /** Largest HTTP request head, bytes. Default: `65_536`. */
  maxHttpHeadBytes?: number;
  /** Open streams per backend session. Default: `1_024`. */
  maxStreamsPerSession?: number;
  /** Backend sessions per node. Default: `10_000`. */
  maxSessions?: number;
  /**
   * Streams per backend session that the backend has not answered yet; further end users go to the other
   * backends of the pool, or are closed (`pending-limit`). Default: `1_024`.
   */
  maxPendingConnects?: number;
  /**
   * Connections (sniffing or relayed) per end-user address (IPv6: per /64) on the relay ports; `0` = off.
   * Default: `256`, so one address cannot hold all `maxStreamsPerSession` streams of a backend.
   */
  maxConnectionsPerIp?: number;
  /** A backend must send its token within, ms (docs/protocol.md §1.2). Default: `10_000`. */
  authTimeoutMs?: number;
  /** Largest WebSocket message accepted from a backend, bytes (≥ 32 785, docs/protocol.md §1.3). Default: `32_785`. */
  maxMessageBytes?: number;
  /** Control messages per second per backend session before it is closed; `0` = off. Default: `10_000`. */
  maxControlMessagesPerSecond?: number;
  /**
   * After an end user's FIN, close the relayed connection once no byte moved either way for this long, ms;
   * `0` = wait for the backend (or `idleTimeoutSeconds`). The v1 wire cannot pass a half-close to the
   * backend (docs/protocol.md §1.7), so without it a service that keeps its side open holds the stream forever
   * (HAProxy's `timeout client-fin`). Default: `30_000`.
   */
  clientFinTimeoutMs?: number;
  /**
   * When a stream ends from the backend side (its `disconnect`, or its session ended), the end user gets
   * every byte, then a FIN, and its connection is closed fully this long after, ms, or sooner at its own
   * FIN; what it sends meanwhile is read and discarded, so it is not answered with a reset
   * (docs/protocol.md §1.7). `0` = close at once. Default: `2_000`.
   */
  streamEndGraceMs?: number;
  /** Hub upgrades waiting for their token at once (they do not count against maxSessions). Default: `256`. */
  maxPendingAuth?: number;
  /** Hub upgrades waiting for their token from one address (IPv6: /64). Default: `16`. */
  maxPendingAuthPerAddress?: number;
  /** Backend sessions from one address (IPv6: /64). Default: `1_000`. */
  maxSessionsPerAddress?: number;
  /** Backend sessions one token may hold at once. Default: `100`. */
  maxSessionsPerToken?: number;
  /** Time a client has to finish its TLS handshake on the hub and peer listeners, ms. Default: `10_000`. */
  tlsHandshakeTimeoutMs?: number;
  /** Open connections on the hub listener, and on the peer listener. Default: `20_000`. */
  maxListenerConnections?: number;
  /** Routes kept from one peer announce (the first ones). Default: `10_000`. */
  maxPeerRoutes?: number;
  /**
   * Hostname patterns and route keys served by local backends, node-wide; a backend whose new ones would
   * take the node past it is refused. Default: `10_000` (what a peer keeps of one announce).
   */
  maxLocalRoutes?: number;
  /** Largest WebSocket message accepted on a peer link, bytes. Default: `1_048_576`. */
  maxPeerMessageBytes?: number;
  /**
   * DATA from backends granted and not yet delivered to end users, node-wide, bytes; each stream may
   * always have 2 frames (64 KiB) more. Default: `268_435_456` (256 MiB).
   */
  maxBufferedBytes?: number;
  /**
   * What end users (and outbound connections, tunnels at their destination) sent that streams to backends
   * hold before sending it, node-wide, bytes; past it end users' sockets read 16 KiB at a time and a relay's
   * stream holds at most that. Default: `134_217_728` (128 MiB).
   */
  maxBufferedUploadBytes?: number;
  /** STUN answers per second, node-wide (docs/edge.md "STUN"). Default: `10_000`. */
  stunMaxResponsesPerSecond?: number;
  /** STUN answers per second to one address (IPv6: one /64). Default: `50`. */
  stunMaxResponsesPerAddressPerSecond?: number;
}

/** Keepalive. All in ms. */
export interface KeepaliveInput {
  /** Hub → backend WebSocket ping interval. Default: `54_000`. */
  hubPingIntervalMs?: number;
  /** A backend session silent this long is dead. Default: `60_000`. */
  hubDeadAfterMs?: number;
  /** Peer link ping interval. Default: `54_000`. */
  peerPingIntervalMs?: number;
  /** A peer link silent this long is dead. Default: `60_000`. */
  peerDeadAfterMs?: number;
}

/** Backend-token checks (docs/protocol.md §5.3). */
export interface AuthInput {
  /** Refuse tokens without `exp`. Default: `false`. */
  requireExp?: boolean;
  /** Required `iss`. Default: not checked. */
  issuer?: string;
  /** Required `aud` (one of). Default: not checked. */
  audience?: string | string[];
  /** Clock skew allowed on `exp`/`nbf`/`iat`, seconds. Default: `30`. */
  clockToleranceSeconds?: number;
  /** Most hostnames one token may list. Default: `1_000`. */
  maxHostnames?: number;
  /** Longest token, bytes (the first WebSocket message may be this large). Default: `65_536`. */
  maxTokenBytes?: number;
  /**
   * Which protocol era backends speak (docs/protocol.md §1.9): `auto` decides per connection from the
   * first token; `seed` never challenges; `current` challenges every backend. Default: `auto`.
   */
  backendEra?: 'auto' | 'seed' | 'current';
}

/** A relay port with its mode, `"8080/http"` or `"8443/tls"` (an entry of `relayPorts`). */
export type RelayPortForm = `${number}/http` | `${number}/tls`;

/** The configuration document. Reference keys keep their reference names and units. */
export interface NexusConfigInput {
  /** (reference) Hub listen address. Default: `":8443"`. */
  backendListenAddress?: AddressInput;
  /** (reference) Peer listen address; used when `peerAuthentication.trustedDomainSuffixes` is set. Default: `":8444"`. */
  peerListenAddress?: AddressInput;
  /**
   * (reference) Public relay ports; 80 = HTTP, others TLS; `"8080/http"` / `"8443/tls"` names the mode.
   * Ignored when `listeners` is set. Default: `[443, 80]`.
   */
  relayPorts?: Array<number | RelayPortForm>;
  /** (reference) Idle timeout of relayed connections, seconds; both directions count; `0` = off. Default: `900`. */
  idleTimeoutSeconds?: number;
  /** (reference) Backend JWT HMAC secret. This or `backendsJWTSecrets` is required. */
  backendsJWTSecret?: string;
  /** (reference) Peer node URLs, `wss://peer:8444/mesh` (or `peer:8444`). Default: `[]`. */
  peers?: string[];
  /** (reference) Peer mTLS settings. */
  peerAuthentication?: {
    /** (reference) Accepted peer certificate name suffixes (label-boundary match). */
    trustedDomainSuffixes?: string[];
    /**
     * Extra CA bundle (PEM file) peer certificates may chain to, besides Node's roots, the OS trust store
     * and `NODE_EXTRA_CA_CERTS`. Default: none.
     */
    caFile?: string;
    /**
     * Per peer (its certificate name, or the host of its URL): the hostnames and `.suffixes` it may
     * announce; routes outside are dropped. Default: any.
     */
    allowedRoutes?: Record<string, string[]>;
  };
  /** Relay ports a peer's tunnel may name (`conn_port`). Default: any. */
  peerTunnelPorts?: number[];
  /** Route discovery on NATS JetStream key-value (docs/mesh.md "Discovery on NATS"). Default: off. */
  meshDiscovery?: {
    nats: {
      /** NATS servers: `nats://host:port`, `tls://host:port` or `host:port`. */
      servers: string[];
      /** Key-value bucket shared by the mesh's nodes (created when missing). */
      bucket: string;
      /** A NATS `.creds` file or a file holding a token. Default: none. */
      credentialsFile?: string;
      /** Liveness TTL, seconds (1–3600). Default: `15`. */
      ttlSeconds?: number;
      /** Idle time after which a link opened on demand closes, seconds. Default: `60`. */
      linkIdleSeconds?: number;
      /** The peer URL other nodes dial for this node. Default: derived (see docs/mesh.md). */
      peerUrl?: string;
    };
  };
  /** (reference) Hub certificate chain, PEM file (manual TLS). */
  hubTlsCertFile?: string;
  /** (reference) Hub private key, PEM file (manual TLS). */
  hubTlsKeyFile?: string;
  /** (reference) Public hostname of this node; enables automatic TLS (ACME). */
  hubPublicHostname?: string;
  /** (reference) ACME account/certificate cache directory. Default: `acme_certs`. */
  acmeCacheDir?: string;
  /** (reference, later versions) Sniff deadlines in seconds; `0` = default. Prefer `limits`. */
  peekTimeouts?: { firstByteSeconds?: number; idleExtensionSeconds?: number; absoluteMaxSeconds?: number };
  /** (reference, later versions) Concurrent sniffs; `0` = default, `-1` = unbounded. Prefer `limits`. */
  maxConcurrentPeeks?: number;
  /**
   * (reference, later versions) UDP port of the STUN Binding server; `0` = off. Must not be one of
   * `udpRelayPorts`. Binds `bindHost`. Default: `0`.
   */
  stunPort?: number;
  /** (reference, later versions) Public UDP relay ports (route `udp:<port>`). Binds `bindHost`. Default: `[]`. */
  udpRelayPorts?: number[];
  /** (reference, later versions) UDP flows tracked at once; LRU eviction past it. Default: `200_000`. */
  udpMaxFlows?: number;
  /** (reference, later versions) Largest relayed UDP datagram, bytes (1–32 768). Default: `2048`. */
  udpMaxDatagramBytes?: number;
  /**
   * (reference, later versions) Cap on what the node sends toward backends and end users together,
   * Mbit/s, shared fairly across backends (docs/edge.md "Bandwidth fair share"); `0` = unlimited.
   * Default: `0`.
   */
  totalBandwidthMbps?: number;
  /**
   * (reference, later versions) `https://` URL of the orchestrator the node registers with and sends
   * heartbeats to. Default: none.
   */
  registrationURL?: string;
  /** (reference, later versions) Region name sent with every registration. Default: none. */
  region?: string;
  /** (reference, current era) TCP ports current-era tokens may claim; empty = none. Default: `[]`. */
  allowedTCPPortClaims?: number[];
  /** (reference, current era) UDP ports current-era tokens may claim; empty = none. Default: `[]`. */
  allowedUDPPortClaims?: number[];
  /** (reference, current era) Idle timeout of a claimed UDP route naming none, seconds. Default: `30`. */
  udpFlowIdleTimeoutDefaultSeconds?: number;
  /** (reference, current era) Shortest claimed UDP idle timeout, seconds. Default: `5`. */
  udpFlowIdleTimeoutMinSeconds?: number;
  /** (reference, current era) Longest claimed UDP idle timeout, seconds. Default: `300`. */
  udpFlowIdleTimeoutMaxSeconds?: number;
  /** (reference, current era) Whether tokens may claim `outbound_allowed`. Default: `false`. */
  allowOutbound?: boolean;
  /** (reference, current era) Ports `allowed_outbound_ports` may list; empty = any. Default: `[]`. */
  allowedOutboundPorts?: number[];
  /** (reference, current era) Re-authentication deferral cap when a token names none, seconds. Default: `1800`. */
  maintenanceGraceDefaultSeconds?: number;
  /** (reference, later versions) Outbound connections per backend; `0` = 100, `-1` = no limit of its own. */
  maxOutboundConnsPerBackend?: number;
  /** (reference, later versions) Outbound dial timeout, seconds; `0` = 10. */
  outboundDialTimeoutSeconds?: number;
  /** (reference, later versions) Outbound idle timeout, seconds; `0` = never. Default: `900`. */
  outboundIdleTimeoutSeconds?: number;
  /**
   * Networks (CIDR or one address) outbound connections may reach although the address policy refuses
   * them (loopback, private, link-local, CGNAT, multicast, cloud metadata…). Default: `[]`.
   */
  allowedOutboundNetworks?: string[];

  /** Several backend JWT secrets, for rotation; combined with `backendsJWTSecret`. */
  backendsJWTSecrets?: string[];
  /** Public relay listeners; overrides `relayPorts`. */
  listeners?: ListenerInput[];
  /** Address the relay ports bind to. Default: all interfaces. */
  bindHost?: string;
  /** ACME directory URL, or `letsencrypt` / `letsencrypt-staging`. Default: Let's Encrypt production. */
  acmeDirectoryUrl?: string;
  /** ACME account contact e-mail. Default: none. */
  acmeEmail?: string;
  /** CA bundle (PEM file) to trust for the ACME directory (private CAs, tests). */
  acmeCaFile?: string;
  /** Backend-token checks. */
  auth?: AuthInput;
  /**
   * (reference) HTTPS endpoint that checks backend tokens (docs/protocol.md §5.5); with it,
   * `backendsJWTSecret` becomes optional (the fallback when the verifier is unavailable). Default: off.
   */
  remoteVerifierURL?: string;
  /** (reference, early current era) Time for one exchange with the verifier, seconds, 1–60. Default: `10`. */
  remoteVerifierTimeoutSeconds?: number;
  /** CA bundle (PEM file) trusted for the verifier's certificate. Default: Node's roots. */
  remoteVerifierCaFile?: string;
  /** Resource limits. */
  limits?: LimitsInput;
  /** Keepalive. */
  keepalive?: KeepaliveInput;
  /** `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent`. Default: `info`. */
  logLevel?: string;
  /**
   * Admin HTTP endpoint (health, metrics): an address or `{ address, token?, tokenFile? }`; an address
   * without a host binds 127.0.0.1. `token` (or the file holding it) is the bearer token `/metrics` and
   * `/status` require. Default: off.
   */
  admin?: AddressInput | { address?: AddressInput; token?: string; tokenFile?: string };
}

// ---------------------------------------------------------------------------------------------------------
// Resolved

/** A parsed listen address. `host` undefined = all interfaces. */
export interface ListenAddress {
  readonly host: string | undefined;
  readonly port: number;
}

/** A public relay listener. */
export interface RelayListenerConfig extends ListenAddress {
  readonly mode: 'tls' | 'http';
}

/** How the hub (and peer) endpoint gets its certificate. */
export type HubTlsConfig =
  | { readonly mode: 'files'; readonly certFile: string; readonly keyFile: string }
  | {
      readonly mode: 'acme';
      /** Normalised public hostname. */
      readonly hostname: string;
      readonly cacheDir: string;
      readonly directoryUrl: string;
      readonly email: string | undefined;
      readonly caFile: string | undefined;
    };

/** Resolved {@link LimitsInput}. */
export interface ResolvedLimits {
  readonly maxConcurrentSniffs: number;
  readonly sniffFirstByteTimeoutMs: number;
  readonly sniffFirstByteTimeoutBusyMs: number;
  readonly sniffReadExtensionMs: number;
  readonly sniffAbsoluteTimeoutMs: number;
  readonly maxClientHelloBytes: number;
  readonly maxHttpHeadBytes: number;
  readonly maxStreamsPerSession: number;
  readonly maxSessions: number;
  readonly maxPendingConnects: number;
  readonly maxConnectionsPerIp: number;
  readonly authTimeoutMs: number;
  readonly maxMessageBytes: number;
  readonly maxControlMessagesPerSecond: number;
  readonly clientFinTimeoutMs: number;
  readonly streamEndGraceMs: number;
  readonly maxPendingAuth: number;
  readonly maxPendingAuthPerAddress: number;
  readonly maxSessionsPerAddress: number;
  readonly maxSessionsPerToken: number;
  readonly tlsHandshakeTimeoutMs: number;
  readonly maxListenerConnections: number;
  readonly maxPeerRoutes: number;
  readonly maxLocalRoutes: number;
  readonly maxPeerMessageBytes: number;
  readonly maxBufferedBytes: number;
  readonly maxBufferedUploadBytes: number;
  readonly stunMaxResponsesPerSecond: number;
  readonly stunMaxResponsesPerAddressPerSecond: number;
}

/** Outbound connections (SOCKS5 egress); `allowOutbound` and its ports are in `backendClaims`. */
export interface ResolvedOutbound {
  /** Outbound connections (open and being dialled) per backend. */
  readonly maxConnsPerBackend: number;
  readonly dialTimeoutMs: number;
  /** `0` = never. */
  readonly idleTimeoutMs: number;
  /** Networks the address policy lets through, normalised (`10.0.0.0/8`). */
  readonly allowedNetworks: readonly string[];
}

/** The orchestrator the node registers with. */
export interface ResolvedRegistration {
  /** The endpoint, normalised (`https://…`). */
  readonly url: string;
  /** Sent as `region`; `undefined` = left out. */
  readonly region: string | undefined;
}

/** The STUN Binding server's address. */
export interface ResolvedStun {
  /** UDP port (1–65535). */
  readonly port: number;
  /** Address to bind; `undefined` = every interface, IPv4 and IPv6. */
  readonly host: string | undefined;
}

/** The UDP relay (docs/edge.md "UDP relay"). */
export interface ResolvedUdpRelay {
  /** `udpRelayPorts` as written (`0` = any free port). */
  readonly ports: readonly number[];
  /** Address to bind (`bindHost`); `undefined` = every interface, IPv4 and IPv6. */
  readonly host: string | undefined;
  /** `udpMaxFlows`: flows tracked at once, node-wide. */
  readonly maxFlows: number;
  /** `udpMaxDatagramBytes`: larger datagrams are dropped. */
  readonly maxDatagramBytes: number;
}

/** Resolved {@link KeepaliveInput}. */
export interface ResolvedKeepalive {
  readonly hubPingIntervalMs: number;
  readonly hubDeadAfterMs: number;
  readonly peerPingIntervalMs: number;
  readonly peerDeadAfterMs: number;
}

/** Resolved {@link AuthInput}; the shape `verifyBackendToken` takes (plus `secrets`). */
export interface ResolvedAuth {
  readonly requireExp: boolean;
  readonly issuer: string | undefined;
  readonly audience: readonly string[] | undefined;
  readonly clockToleranceSec: number;
  readonly maxHostnames: number;
  readonly maxTokenBytes: number;
  /** Era rule (docs/protocol.md §1.9): `auto`, or one era for every backend. */
  readonly backendEra: BackendEraMode;
}

/**
 * What current-era tokens may claim (docs/protocol.md §5.6: the hub's `ClaimPolicy` without
 * `maxHostnames`, which is `auth.maxHostnames`), and the re-authentication maintenance cap.
 */
export interface ResolvedBackendClaims extends Omit<ClaimPolicy, 'maxHostnames'> {
  /** Re-authentication deferral cap when a token names none, seconds (docs/protocol.md §1.10). */
  readonly maintenanceGraceDefaultSeconds: number;
}

/** The remote token verifier (docs/protocol.md §5.5). */
export interface ResolvedRemoteVerifier {
  /** `https:` URL. */
  readonly url: string;
  readonly timeoutMs: number;
  /** Resolved path; `undefined` = Node's roots. */
  readonly caFile: string | undefined;
}

/** The resolved `meshDiscovery.nats`. */
export interface ResolvedNatsDiscovery {
  readonly servers: readonly string[];
  readonly bucket: string;
  /** Resolved path; `undefined` = no credentials. */
  readonly credentialsFile: string | undefined;
  readonly ttlMs: number;
  readonly linkIdleMs: number;
  /** `undefined` = derived at start (see the key's description). */
  readonly peerUrl: string | undefined;
}

/** The resolved discovery section; `undefined` when off. */
export interface ResolvedMeshDiscovery {
  readonly nats: ResolvedNatsDiscovery;
}

/** The validated configuration. Frozen. */
export interface ResolvedNexusConfig {
  /** Hub listen address. */
  readonly backendListen: ListenAddress;
  /** Peer listen address; `undefined` when no peer could be accepted (no trusted suffixes). */
  readonly peerListen: ListenAddress | undefined;
  /** Public relay listeners. */
  readonly listeners: readonly RelayListenerConfig[];
  /** Idle timeout of relayed connections, ms; `0` = off. */
  readonly idleTimeoutMs: number;
  /**
   * Backend JWT secrets, de-duplicated; tokens are minted with the first. Empty only with a remote
   * verifier (which then has no local fallback).
   */
  readonly backendsJWTSecrets: readonly string[];
  /** The remote token verifier; `undefined` = tokens are checked with the secrets only. */
  readonly remoteVerifier: ResolvedRemoteVerifier | undefined;
  /** Peer URLs, normalised to `wss://host:port/mesh`. */
  readonly peers: readonly string[];
  readonly peerAuthentication: {
    /** Normalised, without a leading dot; a name matches when equal to one or ending in `.` + one. */
    readonly trustedDomainSuffixes: readonly string[];
    readonly caFile: string | undefined;
    /** Per-peer allow-lists of announced routes; `undefined` = none. */
    readonly allowedRoutes: Readonly<Record<string, readonly string[]>> | undefined;
  };
  /** Relay ports a peer's tunnel may name; `undefined` = any (see docs/security.md). */
  readonly peerTunnelPorts: readonly number[] | undefined;
  /** Route discovery; `undefined` = off (the mesh is the configured peers only). */
  readonly meshDiscovery: ResolvedMeshDiscovery | undefined;
  readonly tls: HubTlsConfig;
  readonly auth: ResolvedAuth;
  /** What current-era tokens may claim (reference keys `allowedTCPPortClaims`, `allowOutbound`, …). */
  readonly backendClaims: ResolvedBackendClaims;
  readonly limits: ResolvedLimits;
  readonly keepalive: ResolvedKeepalive;
  readonly logLevel: LogLevel | 'silent';
  /** Admin endpoint; `undefined` = off; `host` `undefined` = 127.0.0.1. */
  readonly admin: ListenAddress | undefined;
  /** `admin.token` / `admin.tokenFile` (resolved path): the admin bearer token; both `undefined` = none. */
  readonly adminToken: { readonly token: string | undefined; readonly tokenFile: string | undefined };
  /** The STUN Binding server; `undefined` = off. */
  readonly stun: ResolvedStun | undefined;
  /** The UDP relay; `undefined` = off (`udpRelayPorts` empty). */
  readonly udp: ResolvedUdpRelay | undefined;
  /** Fleet registration; `undefined` = off. */
  readonly registration: ResolvedRegistration | undefined;
  /** Outbound connections (SOCKS5 egress) and their address policy. */
  readonly outbound: ResolvedOutbound;
  /** The bandwidth cap, Mbit/s (`totalBandwidthMbps`); `0` = unlimited. */
  readonly totalBandwidthMbps: number;
  /** Non-fatal problems (short secret, ignored reference keys…), one sentence each. Log them. */
  readonly warnings: readonly string[];
}

/** Options of {@link resolveNexusConfig}. */
export interface ResolveNexusConfigOptions {
  /** Directory relative file paths (cert, key, CA files, ACME cache) are resolved against. Default: kept as written. */
  baseDir?: string;
}

/** What every section resolver gets besides its parsed keys. @internal */
export interface ResolveContext {
  /** Directory relative file paths are resolved against. */
  readonly baseDir: string | undefined;
  /** Non-fatal problems, in the order they are found. */
  readonly warnings: string[];
  /** The document as written (for "was this key given?" questions). */
  readonly doc: Readonly<Record<string, unknown>>;
}
