/**
 * Node configuration: the reference server keys (docs/protocol.md §6.1), unchanged, plus Nexus's own keys, one
 * file per section (listeners, hub TLS, auth, mesh, limits, keepalive, admin). `resolveNexusConfig(input)`
 * validates a parsed document (YAML or an object literal), applies defaults and returns a frozen
 * {@link ResolvedNexusConfig} with camelCase names, milliseconds and parsed addresses. Every error is an
 * {@link InvalidConfigError} naming the field path (`listeners[2].port`).
 */
export { normalizePeerUrl, parseListenAddress } from './address.js';
export * from './defaults.js';
export { resolveNexusConfig } from './resolve.js';
export { nexusConfigJsonSchema } from './schema.js';
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
  ResolvedBackendClaims,
  ResolvedKeepalive,
  ResolvedLimits,
  ResolvedMeshDiscovery,
  ResolvedNatsDiscovery,
  ResolvedNexusConfig,
  ResolvedOutbound,
  ResolvedRegistration,
  ResolvedRemoteVerifier,
  ResolvedStun,
  ResolvedUdpRelay,
  ResolveNexusConfigOptions,
} from './types.js';
