// Errors

// TLS and ACME
export type {
  AcmeCertificateManagerEvents,
  AcmeCertificateManagerOptions,
  AcmeFailedEvent,
  AcmeIssuedEvent,
  AcmeProblem,
  AcmeScheduledEvent,
  AcmeStatus,
  AcmeTimers,
  ResolvedAcmeCertificateManagerOptions,
} from './acme.js';
export {
  ACME_DIRECTORY_SHORTCUTS,
  AcmeCertificateManager,
  DEFAULT_ACME_BACKOFF_ATTEMPTS,
  DEFAULT_ACME_BACKOFF_MAX,
  DEFAULT_ACME_BACKOFF_MIN,
  DEFAULT_ACME_CACHE_DIR,
  DEFAULT_ACME_RENEW_BEFORE_FRACTION,
  DEFAULT_ACME_REQUEST_TIMEOUT,
  DEFAULT_ACME_RETRY_MAX,
  DEFAULT_ACME_RETRY_MIN,
  LETSENCRYPT_DIRECTORY_URL,
  LETSENCRYPT_STAGING_DIRECTORY_URL,
  resolveAcmeCertificateManagerOptions,
  resolveAcmeDirectoryUrl,
  TEMPORARY_CERTIFICATE_VALIDITY_DAYS,
} from './acme.js';
// Auth
export type {
  BackendTokenAlgorithm,
  MintBackendTokenOptions,
  VerifiedBackendToken,
  VerifyBackendTokenOptions,
} from './auth.js';
export {
  BACKEND_TOKEN_ALGORITHMS,
  DEFAULT_CLOCK_TOLERANCE_SEC,
  DEFAULT_MAX_TOKEN_BYTES,
  DEFAULT_MAX_TOKEN_HOSTNAMES,
  DEFAULT_TOKEN_AUDIENCE,
  DEFAULT_TOKEN_ISSUER,
  mintBackendToken,
  verifyBackendToken,
} from './auth.js';
export type {
  BackendSessionCloseReason,
  BackendSessionEvents,
  BackendSessionOptions,
  BackendSessionStats,
} from './backend-session.js';
export {
  BackendSession,
  DEFAULT_HUB_DEAD_AFTER_MS,
  DEFAULT_HUB_PING_INTERVAL_MS,
  DEFAULT_MAX_CONTROL_MESSAGES_PER_SECOND,
  DEFAULT_MAX_STREAMS_PER_SESSION,
} from './backend-session.js';
export type { CertificateAndKey, CertificateAuthorityOptions, CertificateOptions } from './certificates.js';
export {
  createCertificateAuthority,
  createSelfSignedCertificate,
  DEFAULT_CA_VALIDITY_DAYS,
  DEFAULT_CERTIFICATE_VALIDITY_DAYS,
  issueCertificate,
} from './certificates.js';
// Config
export type {
  AddressInput,
  AuthInput,
  HubTlsConfig,
  KeepaliveInput,
  LimitsInput,
  ListenAddress,
  ListenerInput,
  NexusConfigInput,
  RelayListenerConfig,
  ResolvedAuth,
  ResolvedKeepalive,
  ResolvedLimits,
  ResolvedNexusConfig,
  ResolveNexusConfigOptions,
} from './config.js';
export {
  DEFAULT_AUTH,
  DEFAULT_BACKEND_LISTEN_ADDRESS,
  DEFAULT_IDLE_TIMEOUT_SECONDS,
  DEFAULT_KEEPALIVE,
  DEFAULT_LIMITS,
  DEFAULT_LOG_LEVEL,
  DEFAULT_PEER_LISTEN_ADDRESS,
  DEFAULT_RELAY_PORTS,
  HTTP_RELAY_PORT,
  MIN_SECRET_BYTES,
  nexusConfigJsonSchema,
  normalizePeerUrl,
  parseListenAddress,
  resolveNexusConfig,
} from './config.js';
export type { NexusErrorOptions, NoRouteReason } from './errors.js';
export {
  AcmeError,
  AuthError,
  InvalidConfigError,
  LimitError,
  MAX_CLOSE_REASON_BYTES,
  NexusError,
  NexusErrorCode,
  NoRouteError,
  TlsError,
} from './errors.js';
// Hub
export type {
  AuthFailedEvent,
  BackendConnectedEvent,
  BackendDisconnectedEvent,
  BackendHubEvents,
  BackendHubKeepalive,
  BackendHubLimits,
  BackendHubOptions,
  BackendHubStats,
  BackendIdentity,
  HubStreamInit,
} from './hub.js';
export { BackendHub, DEFAULT_AUTH_TIMEOUT_MS, DEFAULT_MAX_SESSIONS } from './hub.js';
export type { BackendRefusedEvent } from './hub.js';
export { DEFAULT_MAX_PENDING_CONNECTS } from './hub.js';
export type { HubTlsContextEvents, HubTlsContextOptions, TlsCertificateInfo } from './hub-tls.js';
export { certificateInfo, HubTlsContext } from './hub-tls.js';
export type { ParseConfigOptions } from './load-config.js';
export { loadConfig, parseConfig } from './load-config.js';
// Logging
export type { LogFn, Logger, LogLevel } from './logger.js';
export { noopLogger } from './logger.js';
// Endpoints (the hub's `/connect`, the mesh's `/mesh`)
export { DEFAULT_PEER_PORT, HUB_PATH, MESH_PATH } from '@nexus-proxy/common';
// Mesh
export type {
  LocalStreamInit,
  OpenLocalStream,
  PeerLinkInfo,
  PeerLinkSnapshot,
  PeerMeshEvents,
  PeerMeshOptions,
  PeerReconnectOptions,
} from './mesh.js';
export {
  DEFAULT_PEER_CONNECT_TIMEOUT,
  DEFAULT_PEER_RECONNECT_INITIAL_DELAY,
  DEFAULT_PEER_RECONNECT_JITTER,
  DEFAULT_PEER_RECONNECT_MAX_DELAY,
  PeerMesh,
} from './mesh.js';
export type { PeerKeepaliveOptions, PeerTrustOptions } from './mesh.js';
export { PEER_REMOVED_REASON } from './mesh.js';
export type { PeerAuthenticatorOptions, PeerAuthResult } from './peer-auth.js';
export {
  certificateNames,
  MAX_PEER_CHAIN_LENGTH,
  matchesTrustedSuffix,
  normalizeTrustedSuffix,
  PeerAuthenticator,
  parsePemBundle,
  readPeerCaFile,
  verifyCertificateChain,
} from './peer-auth.js';
export type { PeerLinkCloseReason, PeerLinkDirection, PeerLinkEvents, PeerLinkOptions } from './peer-link.js';
export { DEFAULT_PEER_KEEPALIVE_INTERVAL, DEFAULT_PEER_KEEPALIVE_TIMEOUT, PeerLink } from './peer-link.js';
export type {
  TunnelInit,
  TunnelSessionEvents,
  TunnelSessionOptions,
  TunnelSessionStats,
  TunnelTransport,
} from '@nexus-proxy/mux-protocol';
export { DEFAULT_MAX_TUNNELS_PER_LINK, TunnelSession } from '@nexus-proxy/mux-protocol';
// Node
export type {
  CreateNexusOptions,
  Nexus,
  NexusAddresses,
  NexusCloseOptions,
  NexusEvents,
  RouteMissEvent,
  SniffFailedEvent,
  StreamCloseEvent,
  StreamOpenEvent,
} from './nexus.js';
export { createNexus, DEFAULT_CLOSE_GRACE_MS } from './nexus.js';
export type { OpenedRoute } from './node-dispatch.js';
export { openRoute } from './node-dispatch.js';
export type { NexusReloadResult } from './nexus.js';
export type { MuxStreamLike, RelayEndReason, RelayHandle, RelayOptions, RelayStats } from './relay.js';
export { DEFAULT_RELAY_IDLE_TIMEOUT_MS, relayConnection, relayMuxStream } from './relay.js';
// Listeners
export type {
  RelayCloseEvent,
  RelayCloseReason,
  RelayListener,
  RelayListenerLimits,
  RelayListenerOptions,
} from './relay-listener.js';
export { createRelayListener } from './relay-listener.js';
// Routing
export type {
  LocalPoolRoute,
  LocalRoute,
  LocalRouteInit,
  NoRoute,
  PeerLinksRoute,
  PeerRoute,
  PeerRouteSummary,
  Route,
  RouteDecision,
  RouteMatch,
  RoutingTableOptions,
  RoutingTableStats,
} from './routing-table.js';
export { RoutingTable } from './routing-table.js';
export type {
  RelayMode,
  ResolvedSniffLimits,
  SniffCloseReason,
  SniffedConnection,
  SniffLimits,
  SniffOptions,
  SniffResult,
} from './sniff-connection.js';
export {
  DEFAULT_MAX_CLIENT_HELLO_BYTES,
  DEFAULT_MAX_CONCURRENT_SNIFFS,
  DEFAULT_MAX_HTTP_HEAD_BYTES,
  DEFAULT_SNIFF_ABSOLUTE_TIMEOUT_MS,
  DEFAULT_SNIFF_FIRST_BYTE_TIMEOUT_MS,
  DEFAULT_SNIFF_READ_EXTENSION_MS,
  resolveSniffLimits,
  SniffBudget,
  sniffConnection,
} from './sniff-connection.js';
export type { WeightedMemberStats, WeightedRoundRobinStats } from './weighted-round-robin.js';
export { DEFAULT_WEIGHT, MAX_WEIGHT, normalizeWeight, WeightedRoundRobin } from './weighted-round-robin.js';
export type { WsTransport } from './ws-transport.js';
export { createWsTransport } from './ws-transport.js';
