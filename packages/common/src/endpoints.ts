/**
 * Where the node's WebSocket endpoints are, for the node that serves them and for whoever dials them
 * (the backend client, a peer node). docs/protocol.md describes both endpoints.
 */

/** Path of the hub's WebSocket endpoint, which backends dial. */
export const HUB_PATH = '/connect';
/** Port of the hub when an address names none (the reference `backendListenAddress` is `:8443`). */
export const DEFAULT_HUB_PORT = 8443;
/** Path of the peer (mesh) WebSocket endpoint, which other nodes dial. */
export const MESH_PATH = '/mesh';
/** Port of the peer listener, and of a peer URL that names none (the reference `peerListenAddress` is `:8444`). */
export const DEFAULT_PEER_PORT = 8444;
/**
 * HTTP header of the hub's WebSocket upgrade in which a Nexus backend client offers, and a Nexus hub
 * answers, the largest DATA payload each side sends and accepts (docs/protocol.md §1.11). The reference
 * ignores it; without it, payloads stay at 32 768 bytes.
 */
export const DATA_PAYLOAD_HEADER = 'nexus-max-data-payload';
