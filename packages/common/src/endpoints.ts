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
