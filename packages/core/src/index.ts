// The public surface of @nexus-proxy/core: the blocks that can also be imported alone
// (@nexus-proxy/core/routing, /hub, /mesh), and the node built from them.
export * from './entries/hub.js';
export * from './entries/mesh.js';
export * from './entries/routing.js';

// ACME (acme-client is loaded on the first order, never at import)
export type {
  AcmeCertificateManagerEvents,
  AcmeCertificateManagerOptions,
  AcmeFailedEvent,
  AcmeIssuedEvent,
  AcmeProblem,
  AcmeScheduledEvent,
  AcmeStatus,
} from './acme.js';
export { AcmeCertificateManager } from './acme.js';
// Certificates
export type { CertificateAndKey, CertificateAuthorityOptions, CertificateOptions } from './certificates.js';
export { createCertificateAuthority, createSelfSignedCertificate, issueCertificate } from './certificates.js';
// Configuration
export type {
  AddressInput,
  AuthInput,
  HubTlsConfig,
  KeepaliveInput,
  LimitsInput,
  ListenAddress,
  ListenerInput,
  NexusConfigInput,
  RelayPortForm,
  RelayListenerConfig,
  ResolvedAuth,
  ResolvedKeepalive,
  ResolvedLimits,
  ResolvedNexusConfig,
  ResolvedOutbound,
  ResolvedRegistration,
  ResolvedRemoteVerifier,
  ResolvedStun,
  ResolvedUdpRelay,
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
  parseListenAddress,
  resolveNexusConfig,
} from './config.js';
export { AcmeError, OutboundRefusedError } from './errors.js';
export type { ParseConfigOptions } from './load-config.js';
export { loadConfig, parseConfig } from './load-config.js';
export type { HubTlsFiles } from './config-files.js';
export { loadHubTlsFiles, readConfiguredFile, readHubTlsMaterial } from './config-files.js';
export { listenFailureMessage, listenServer } from './listen.js';
// The node
export type {
  CreateNexusOptions,
  Nexus,
  NexusAddresses,
  NexusCloseOptions,
  NexusEvents,
  NexusReloadResult,
  RouteMissEvent,
  SniffFailedEvent,
  StreamCloseEvent,
  StreamOpenEvent,
} from './nexus.js';
export { createNexus, DEFAULT_CLOSE_GRACE_MS } from './nexus.js';
export type { OpenedRoute } from './node-dispatch.js';
export { openRoute } from './node-dispatch.js';
export type { BandwidthKey, BandwidthOwner } from './relay-bandwidth.js';
export { backendBandwidthKey, tunnelBandwidthKey } from './relay-bandwidth.js';
export type {
  BandwidthAccountStats,
  BandwidthSchedulerOptions,
  BandwidthStats,
  BandwidthWaiter,
} from './bandwidth-scheduler.js';
export {
  BandwidthAccount,
  BandwidthScheduler,
  DEFAULT_BANDWIDTH_BURST_MS,
  DEFAULT_BANDWIDTH_TICK_MS,
  MAX_TOTAL_BANDWIDTH_MBPS,
} from './bandwidth-scheduler.js';
// Relaying and listeners
export type { MuxStreamLike, RelayEndReason, RelayHandle, RelayOptions, RelayStats } from './relay.js';
export { relayConnection, relayMuxStream } from './relay.js';
export {
  DEFAULT_MAX_BUFFERED_UPLOAD_BYTES,
  UPLOAD_READ_MIN,
  UploadBudget,
  UploadForward,
} from './relay-uploads.js';
export type {
  RelayCloseEvent,
  RelayCloseReason,
  RelayListener,
  RelayListenerLimits,
  RelayListenerOptions,
} from './relay-listener.js';
export { createRelayListener } from './relay-listener.js';
export type {
  RelayMode,
  SniffCloseReason,
  SniffedConnection,
  SniffLimits,
  SniffOptions,
  SniffResult,
} from './sniff-connection.js';
export { SniffBudget, sniffConnection } from './sniff-connection.js';
// Fleet registration
export type {
  FleetRegistrationEvents,
  FleetRegistrationOptions,
  FleetRegistrationStats,
  RegistrationClientCertificate,
  RegistrationFailureEvent,
  RegistrationState,
  RegistrationSuccessEvent,
} from './fleet-registration.js';
export { FleetRegistration, REGISTRATION_BACKOFF } from './fleet-registration.js';
// Outbound connections (SOCKS5 egress): the node's checks, the address policy, the guarded dial
export type {
  OutboundCheckFailure,
  OutboundCheckResult,
  OutboundConnectRequest,
  OutboundNodeSettings,
  OutboundTarget,
} from './outbound-checks.js';
export {
  checkOutboundConnect,
  MAX_OUTBOUND_TARGET_LENGTH,
  outboundNodeSettings,
} from './outbound-checks.js';
export type {
  OutboundConnectOptions,
  OutboundRefusal,
  OutboundResolver,
} from './outbound-connect.js';
export { connectOutbound } from './outbound-connect.js';
export type { OutboundRefusalReason, OutboundVerdict } from './outbound-policy.js';
export type {
  OutboundFailure,
  OutboundSettings,
  OutboundStats,
  OutboundStreamsOptions,
} from './outbound-streams.js';
export { OUTBOUND_DISABLED, OutboundStreams } from './outbound-streams.js';
export { OUTBOUND_REFUSAL_REASONS, OutboundAddressPolicy } from './outbound-policy.js';
// STUN
export type { StunParseResult, StunBindingRequest, StunDropReason } from './stun-message.js';
export {
  bindingRequest,
  bindingSuccess,
  parseStunRequest,
  STUN_MAGIC_COOKIE,
  xorMappedAddress,
} from './stun-message.js';
export type {
  StunRateLimits,
  StunServerDropReason,
  StunServerOptions,
  StunServerStats,
} from './stun-server.js';
export { STUN_MAX_REQUEST_BYTES, StunServer } from './stun-server.js';
export type {
  UdpDropReason,
  UdpFlowEndReason,
  UdpFlowsByTarget,
  UdpPortStats,
  UdpRelayOptions,
} from './udp-relay.js';
export { UdpRelay } from './udp-relay.js';
export { type DatagramRelayStats, type DatagramStream, relayDatagrams } from './datagram-relay.js';
