/**
 * `@nexus-proxy/core/hub`: the backend hub (backends attach over `wss://…/connect` and multiplex end-user
 * streams), its TLS context, and the backend tokens it checks. Loads `ws` and `jose`, never `acme-client`
 * or the mesh. A hub routes with a `RoutingTable` from `@nexus-proxy/core/routing`.
 */
export type {
  BackendTokenAlgorithm,
  MintBackendTokenOptions,
  VerifiedBackendToken,
  VerifyBackendTokenOptions,
} from '../auth.js';
export { mintBackendToken, verifyBackendToken } from '../auth.js';
export type { BackendSession, BackendSessionCloseReason, BackendSessionStats } from '../backend-session.js';
export { AuthError, LimitError, NexusError, NexusErrorCode, TlsError } from '../errors.js';
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
  BackendRefusedEvent,
  HubStreamInit,
} from '../hub.js';
export { HUB_PATH } from '@nexus-proxy/common';
export { BackendHub } from '../hub.js';
export type { HubTlsContextEvents, HubTlsContextOptions, TlsCertificateInfo } from '../hub-tls.js';
export { certificateInfo, HubTlsContext } from '../hub-tls.js';
export type { LogFn, Logger, LogLevel } from '../logger.js';
export { noopLogger } from '../logger.js';
export type { RemoteVerifier, RemoteVerifierOptions, TokenVerifier } from '../remote-verifier.js';
export {
  createRemoteVerifier,
  DEFAULT_REMOTE_VERIFIER_MAX_RESPONSE_BYTES,
  DEFAULT_REMOTE_VERIFIER_TIMEOUT_MS,
} from '../remote-verifier.js';
export type { WsTransport } from '../ws-transport.js';
export { createWsTransport } from '../ws-transport.js';
