/**
 * `@nexus-proxy/core/mesh`: the peer mesh (mutual-TLS links between nodes, route announces, tunnels to the
 * node that has the backend). Loads `ws`, never `jose`, `acme-client` or the hub. A mesh shares a
 * `RoutingTable` (`@nexus-proxy/core/routing`) and a `HubTlsContext` (exported here too) with its node.
 * `PeerAuthenticator` is the mesh's trust decision on its own: is this certificate chain a peer's?
 */
export { InvalidConfigError, NexusError, NexusErrorCode } from '../errors.js';
export { HubTlsContext } from '../hub-tls.js';
export type { LogFn, Logger, LogLevel } from '../logger.js';
export { noopLogger } from '../logger.js';
export type {
  LocalStreamInit,
  OpenLocalStream,
  PeerKeepaliveOptions,
  PeerLinkInfo,
  PeerLinkSnapshot,
  PeerMeshEvents,
  PeerMeshOptions,
  PeerMeshStats,
  PeerMessageType,
  PeerReconnectOptions,
  PeerTrafficCounts,
  PeerTrustOptions,
} from '../mesh.js';
export { DEFAULT_PEER_PORT, MESH_PATH } from '@nexus-proxy/common';
export { PeerMesh } from '../mesh.js';
export type { MeshDiscovery, MeshDiscoveryStatus } from '../mesh-discovery.js';
export type { OnDemandLinkProvider } from '../mesh-discovery-links.js';
export type { PeerAuthenticatorOptions, PeerAuthResult } from '../peer-auth.js';
export { PeerAuthenticator, readPeerCaFile } from '../peer-auth.js';
export type { PeerLink, PeerLinkCloseReason, PeerLinkDirection } from '../peer-link.js';
