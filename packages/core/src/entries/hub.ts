/**
 * `@nexus-proxy/core/hub`: the backend hub (backends attach over `wss://…/connect` and multiplex end-user
 * streams), its TLS context, and the backend tokens it checks. Loads `ws` and `jose`, never `acme-client`
 * or the mesh. A hub routes with a `RoutingTable` from `@nexus-proxy/core/routing`.
 */
export type {
  BackendTokenAlgorithm,
  MintBackendTokenOptions,
  SeedTokenRoutes,
  TokenVerifier,
  VerifiedBackendToken,
  VerifiedTokenPayload,
  VerifyBackendTokenOptions,
} from '../auth.js';
export {
  createLocalTokenVerifier,
  mintBackendToken,
  seedTokenRoutes,
  verifyBackendToken,
  verifyTokenSignature,
} from '../auth.js';
export type { AuthorizerStatusOptions } from '../authorizer-status.js';
export {
  AUTHORIZER_STATUS_TIMEOUT_MS,
  checkAuthorizerStatus,
  createAuthorizerStatusCheck,
} from '../authorizer-status.js';
export type { BackendEraMode } from '../backend-era.js';
export { BACKEND_ERA_MODES, chooseBackendEra, DEFAULT_BACKEND_ERA_MODE } from '../backend-era.js';
export type { BackendEra, OutboundClaims, UdpRouteClaim } from '../backend-identity.js';
export { DEFAULT_MAINTENANCE_GRACE_SECONDS, DEFAULT_REAUTH_GRACE_SECONDS } from '../backend-reauth.js';
export type { ClaimPolicy, CurrentEraClaims } from '../current-claims.js';
export {
  CURRENT_ERA_AUDIENCE,
  CURRENT_ERA_ISSUER,
  checkHandshakeAge,
  claimSetMismatch,
  DEFAULT_CLAIM_POLICY,
  hasCurrentEraIssuer,
  parseCurrentClaims,
} from '../current-claims.js';
export type { ChallengeMessage } from '../hub-handshake.js';
export { CHALLENGE_NONCE_BYTES, createChallengeNonce, encodeChallenge } from '../hub-handshake.js';
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
export type { RemoteVerifier, RemoteVerifierOptions } from '../remote-verifier.js';
export {
  createRemoteVerifier,
  DEFAULT_REMOTE_VERIFIER_MAX_RESPONSE_BYTES,
  DEFAULT_REMOTE_VERIFIER_TIMEOUT_MS,
} from '../remote-verifier.js';
export type { WsTransport } from '../ws-transport.js';
export { createWsTransport } from '../ws-transport.js';
