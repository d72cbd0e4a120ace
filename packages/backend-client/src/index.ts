// Client
export {
  type BackendClient,
  type BackendClientCloseOptions,
  type BackendClientStats,
  createBackendClient,
} from './backend-client.js';
export { Backoff, type BackoffSettings, computeBackoffDelay } from '@nexus-proxy/common';
export {
  type BackendClientOptions,
  type BackendClientTlsOptions,
  type ConnectHandler,
  DEFAULT_CLOSE_GRACE,
  DEFAULT_DIAL_TIMEOUT,
  DEFAULT_HANDSHAKE_TIMEOUT,
  DEFAULT_HEALTH_INACTIVITY_TIMEOUT,
  DEFAULT_HEALTH_PONG_TIMEOUT,
  DEFAULT_KEEPALIVE_INTERVAL,
  DEFAULT_KEEPALIVE_TIMEOUT,
  DEFAULT_RECONNECT_FACTOR,
  DEFAULT_RECONNECT_INITIAL_DELAY,
  DEFAULT_RECONNECT_JITTER,
  DEFAULT_RECONNECT_MAX_DELAY,
  DEFAULT_RECONNECT_RESET_AFTER,
  DEFAULT_UDP_IDLE_TIMEOUT,
  DEFAULT_UDP_MAX_SOCKETS,
  type HealthCheckOptions,
  type KeepaliveOptions,
  type ReconnectOptions,
  type ResolvedBackendClientOptions,
  resolveBackendClientOptions,
  type StreamRequest,
  type UdpTargetOptions,
} from './client-options.js';
// Outbound connections: the local SOCKS5 listener
export {
  DEFAULT_SOCKS5_MAX_CONNECTIONS,
  DEFAULT_SOCKS5_MAX_HANDSHAKES,
  SOCKS5_HANDSHAKE_TIMEOUT_MS,
  SOCKS5_RESULT_TIMEOUT_MS,
  type Socks5ListenAddress,
  type Socks5Stats,
  socks5ReplyFor,
} from './socks5-listener.js';
export { Socks5Reply, type Socks5Request } from './socks5-handshake.js';
export type { UdpTargetStats } from './udp-targets.js';
// Current era: token providers, attested handshake
export {
  type AttestationContext,
  type Challenge,
  DEFAULT_CHALLENGE_TIMEOUT,
  parseChallenge,
  type TokenIdentity,
} from './attestation.js';
export {
  type BackendIdentity,
  DEFAULT_TOKEN_TIMEOUT,
  resolveBackendIdentity,
  type TokenProviderOption,
} from './attestation-options.js';
export {
  type CommandTokenProviderOptions,
  commandEnvironment,
  createCommandTokenProvider,
  DEFAULT_COMMAND_TIMEOUT_SECONDS,
  MAX_COMMAND_OUTPUT,
  parseCommandOutput,
} from './command-token-provider.js';
export {
  createHmacTokenProvider,
  DEFAULT_TOKEN_TTL_SECONDS,
  type HmacTokenProviderOptions,
  hmacTokenClaims,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
} from './hmac-token-provider.js';
export {
  type IssuedToken,
  issueToken,
  MAX_TOKEN_LENGTH,
  type TokenProvider,
  type TokenRequest,
  type TokenStage,
  type UdpRouteClaim,
} from './token-provider.js';
// Config
export type {
  BackendClientConfigInput,
  BackendConfigInput,
  DurationInput,
  ParseBackendClientConfigOptions,
  ResolveBackendClientConfigOptions,
  ResolvedBackendClientConfig,
  ResolvedBackendConfig,
} from './config.js';
export {
  backendClientConfigJsonSchema,
  DEFAULT_HEALTH_CHECK_INACTIVITY_TIMEOUT_SECONDS,
  DEFAULT_HEALTH_CHECK_PONG_TIMEOUT_SECONDS,
  loadBackendClientConfig,
  parseBackendClientConfig,
  parseDuration,
  resolveBackendClientConfig,
} from './config.js';
// Errors
export {
  BackendClientError,
  type BackendClientErrorCode,
  DialError,
  HandshakeError,
  InvalidOptionsError,
  NoMappingError,
  SessionError,
  Socks5Error,
  TokenCommandError,
  type TokenCommandFailure,
  TokenError,
} from './errors.js';
// Client: local dialling, logger, hub addresses, events
export { type DialLocalOptions, type DialTarget, dialLocal } from './local-dial.js';
export { HELD_BYTES_MAX, heldReads, installedChunks, setHeldReadsMax } from './local-reads.js';
export { type LogFn, type Logger, noopLogger } from '@nexus-proxy/common';
export { DEFAULT_HUB_PORT, HUB_PATH } from '@nexus-proxy/common';
export { normalizeNodeAddress } from './node-address.js';
export { RELAY_HEAP_FLAG, tuneHeapForRelaying } from './relay-heap.js';
export type {
  ConnectedEvent,
  DisconnectedEvent,
  NodeConnectionEvents,
  NodeConnectionState,
  NodeStats,
  ReauthEvent,
  SessionEndReason,
  StreamCloseEvent,
  StreamOpenEvent,
} from './node-connection.js';
// Port mappings
export type {
  HostPort,
  HostTargetInput,
  PortMappingInput,
  PortMappingsInput,
  ResolvedPortMapping,
  ProxyProtocolInput,
  ResolvedPortMappings,
} from './port-mappings.js';
export {
  HTTP_FALLBACK_PORT,
  parseHostPort,
  resolvePortMappings,
  resolveStreamTarget,
  resolveTarget,
  type StreamTarget,
  TLS_FALLBACK_PORT,
} from './port-mappings.js';
// PROXY protocol
export {
  type BuildProxyHeaderOptions,
  buildProxyHeader,
  PROXY_PROTOCOL_V2_SIGNATURE,
  PROXY_PROTOCOL_VERSIONS,
  type ParsedClientAddress,
  type ProxyProtocolVersion,
  parseClientAddress,
} from './proxy-protocol.js';
