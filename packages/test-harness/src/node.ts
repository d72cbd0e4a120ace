/**
 * A whole node on loopback: `createNexus` with hub TLS from the test CA (files mode), relay listeners on
 * 127.0.0.1:0, optionally a mesh (peer listener, trusted suffix, the test CA as peer CA), what the node
 * reports recorded as it happens, and real backend clients (`@nexus-proxy/backend-client`) attached to it.
 */
import {
  type BackendClient,
  type BackendClientOptions,
  type ConnectHandler,
  createBackendClient,
  type DisconnectedEvent,
  type KeepaliveOptions,
  type ReconnectOptions,
  type ResolvedPortMappings,
  resolvePortMappings,
  type StreamOpenEvent as ClientStreamOpenEvent,
} from '@nexus-proxy/backend-client';
import {
  type AuthFailedEvent,
  type BackendConnectedEvent,
  type BackendDisconnectedEvent,
  type BackendHub,
  type BackendSession,
  type CreateNexusOptions,
  createNexus,
  type Logger,
  mintBackendToken,
  type Nexus,
  type NexusAddresses,
  type NexusConfigInput,
  type PeerMesh,
  type PeerMeshOptions,
  type RouteMissEvent,
  type RoutingTable,
  resolveNexusConfig,
  type SniffFailedEvent,
  type StreamCloseEvent,
  type StreamOpenEvent,
} from '@nexus-proxy/core';
import { createTempDir, writeCertificateFiles } from './files.js';
import { MESH_SUFFIX, type TestPki } from './pki.js';

/** The JWT secret of every harness node. */
export const TEST_SECRET = 'node-harness-secret-that-is-long-enough-0123456789';

/** Fast reconnects for tests. */
export const TEST_RECONNECT: ReconnectOptions = { initialDelayMs: 50, maxDelayMs: 200, jitter: 0.25 };

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  pki: TestPki;
  /** Relay listeners on 127.0.0.1:0, in order. Default: `['tls', 'http']`. */
  listeners?: Array<'tls' | 'http'>;
  /** Extra configuration keys (merged over the harness defaults: hub on 127.0.0.1:`hubPort`, files TLS). */
  config?: Partial<NexusConfigInput>;
  /** Hub port (a restarted node keeps its port). Default: any. */
  hubPort?: number;
  logger?: Logger;
  /**
   * Makes the node a mesh node named `<name>.mesh.example.com`: its certificate (hub and peer links) is
   * `pki.nodeCert(name)`, it listens for peers on 127.0.0.1:`meshPort`, dials `peers`, trusts the test CA
   * for names under the mesh suffix, and uses short keepalive (1 s / 3 s) and reconnect delays.
   */
  name?: string;
  peers?: string[];
  /** Peer listener port (a restarted node keeps its port). Default: any. */
  meshPort?: number;
  /** Peer mesh options over the harness's (keepalive, reconnect, suffixes…). */
  mesh?: Partial<PeerMeshOptions>;
  /** Idle timeout of relayed streams and tunnels in ms (finer than the configuration's seconds). */
  idleTimeoutMs?: number;
  /** Name resolution of the node's outbound connections. Default: the system resolver. */
  outboundResolve?: CreateNexusOptions['outboundResolve'];
}

/** Options of {@link TestNode.attachBackend} (and {@link backendClient}). */
export interface AttachBackendOptions {
  /** Hostnames (and `*.suffix` wildcards) put in the token, besides the client's own `backend-N.harness.test`. */
  hostnames: string[];
  /** Token weight. Default: 1. */
  weight?: number;
  /** Where streams go: a port on 127.0.0.1 (the relay ports map to it), a handler, or mappings. */
  service?: number;
  /** Relay ports mapped to `service`. Default: every relay listener of the node. */
  relayPorts?: number[];
  connectHandler?: ConnectHandler;
  portMappings?: ResolvedPortMappings;
  /** Hub addresses to dial instead of the node's (e.g. a fault proxy in front of it). */
  nodes?: string[];
  /** Reconnect backoff. Default: {@link TEST_RECONNECT}. */
  reconnect?: ReconnectOptions;
  keepalive?: KeepaliveOptions;
  handshakeTimeoutMs?: number;
  /** The largest DATA payload the client offers (docs/protocol.md §1.11). Default: the client's. */
  maxDataPayload?: number;
  /** The backend client's logger. */
  logger?: BackendClientOptions['logger'];
  /** Wait until the node registered the session. Default: `true`. */
  waitRegistered?: boolean;
}

/** A backend client attached to a harness node. */
export interface TestBackend {
  client: BackendClient;
  /** Streams the client opened, in order. */
  streams: ClientStreamOpenEvent[];
  /** Sessions that ended, in order. */
  disconnects: DisconnectedEvent[];
  /** The name only this client serves (`backend-N.harness.test`). */
  tag: string;
  /** The hub's session id of the latest registration (set once registered). */
  sessionId: string | undefined;
  /** Resolves on the next `backend-connected` of the node for this client. */
  nextRegistration(): Promise<BackendConnectedEvent>;
  close(): Promise<void>;
}

/** What a node reported, in order. */
export interface NodeEvents {
  streamOpen: StreamOpenEvent[];
  streamClose: StreamCloseEvent[];
  routeMiss: RouteMissEvent[];
  sniffFailed: SniffFailedEvent[];
  backendConnected: BackendConnectedEvent[];
  backendDisconnected: BackendDisconnectedEvent[];
  authFailed: AuthFailedEvent[];
}

/** A running harness node. */
export interface TestNode {
  /** The mesh name (`a` for `a.mesh.example.com`), or `''` for a node without a mesh. */
  name: string;
  nexus: Nexus;
  addresses: NexusAddresses;
  hubUrl: string;
  hubPort: number;
  /** Port of the first TLS / HTTP listener (-1 without one). */
  tlsPort: number;
  httpPort: number;
  /** Peer listener port and URL (mesh nodes; -1 / `''` otherwise). */
  meshPort: number;
  meshUrl: string;
  /** The node's parts (`nexus.hub`, `nexus.routes`, and `nexus.mesh`, which throws without a mesh). */
  readonly hub: BackendHub;
  readonly routes: RoutingTable<BackendSession>;
  readonly mesh: PeerMesh;
  events: NodeEvents;
  /** A token for `hostnames` signed with the node's secret. */
  token(hostnames: string[], weight?: number): Promise<string>;
  /** Attaches a backend client (connected, and by default registered). */
  attachBackend(options: AttachBackendOptions): Promise<TestBackend>;
  /** Closes every backend client, then the node (grace 0), then removes its files. */
  close(): Promise<void>;
}

/** A token for `hostnames` signed with {@link TEST_SECRET}. */
export function token(hostnames: string[], weight?: number): Promise<string> {
  return mintBackendToken({ secret: TEST_SECRET, hostnames, ...(weight !== undefined ? { weight } : {}) });
}

/** Starts a node on loopback with files-mode hub TLS from `pki`. */
export async function startNode(options: StartNodeOptions): Promise<TestNode> {
  const files = createTempDir('nexus-harness-');
  const name = options.name ?? '';
  const meshed = options.name !== undefined;
  const cert = meshed ? await options.pki.nodeCert(name) : options.pki.hub;
  const { certFile, keyFile } = writeCertificateFiles(files, cert);
  const modes = options.listeners ?? ['tls', 'http'];
  const input: NexusConfigInput = {
    backendListenAddress: `127.0.0.1:${options.hubPort ?? 0}`,
    backendsJWTSecret: TEST_SECRET,
    hubTlsCertFile: certFile,
    hubTlsKeyFile: keyFile,
    listeners: modes.map((mode) => ({ port: 0, mode, host: '127.0.0.1' })),
    ...(meshed
      ? {
          peerListenAddress: `127.0.0.1:${options.meshPort ?? 0}`,
          peers: options.peers ?? [],
          peerAuthentication: {
            trustedDomainSuffixes: [MESH_SUFFIX],
            caFile: files.write('mesh-ca.pem', options.pki.ca.certPem),
          },
        }
      : {}),
    ...options.config,
  };
  const config =
    options.idleTimeoutMs === undefined
      ? input
      : Object.freeze({ ...resolveNexusConfig(input), idleTimeoutMs: options.idleTimeoutMs });
  const nexusOptions: CreateNexusOptions = {
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
    ...(options.outboundResolve !== undefined ? { outboundResolve: options.outboundResolve } : {}),
    ...(meshed
      ? {
          mesh: {
            systemCa: false,
            keepaliveIntervalMs: 1_000,
            keepaliveTimeoutMs: 3_000,
            reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
            ...options.mesh,
          },
        }
      : {}),
  };
  const nexus = createNexus(config, nexusOptions);
  const events: NodeEvents = {
    streamOpen: [],
    streamClose: [],
    routeMiss: [],
    sniffFailed: [],
    backendConnected: [],
    backendDisconnected: [],
    authFailed: [],
  };
  nexus.on('stream-open', (e) => events.streamOpen.push(e));
  nexus.on('stream-close', (e) => events.streamClose.push(e));
  nexus.on('route-miss', (e) => events.routeMiss.push(e));
  nexus.on('sniff-failed', (e) => events.sniffFailed.push(e));
  nexus.on('backend-connected', (e) => events.backendConnected.push(e));
  nexus.on('backend-disconnected', (e) => events.backendDisconnected.push(e));
  nexus.on('auth-failed', (e) => events.authFailed.push(e));
  let addresses: NexusAddresses;
  try {
    addresses = await nexus.listen();
  } catch (err) {
    await nexus.close({ graceMs: 0 });
    files.remove();
    throw err;
  }
  const hubPort = addresses.hub.port;
  const hubUrl = `wss://127.0.0.1:${hubPort}/connect`;
  const portOf = (mode: 'tls' | 'http') =>
    addresses.listeners.find((l) => l.mode === mode)?.address.port ?? -1;
  const meshPort = addresses.peer?.port ?? -1;
  const backends: TestBackend[] = [];
  let backendCount = 0;

  const node: TestNode = {
    name,
    nexus,
    addresses,
    hubUrl,
    hubPort,
    tlsPort: portOf('tls'),
    httpPort: portOf('http'),
    meshPort,
    meshUrl: meshPort === -1 ? '' : `wss://127.0.0.1:${meshPort}/mesh`,
    get hub() {
      return nexus.hub;
    },
    get routes() {
      return nexus.routes;
    },
    get mesh() {
      const mesh = nexus.mesh;
      if (mesh === undefined) throw new Error('this harness node runs no mesh (start it with a name)');
      return mesh;
    },
    events,
    token: (hostnames, weight) =>
      mintBackendToken({ secret: TEST_SECRET, hostnames, ...(weight !== undefined ? { weight } : {}) }),
    async attachBackend(o) {
      const tag = `backend-${++backendCount}.harness.test`;
      const client = await backendClient(options.pki, node, { ...o, hostnames: [...o.hostnames, tag] });
      let waiters: Array<(e: BackendConnectedEvent) => void> = [];
      const backend: TestBackend = {
        client,
        streams: [],
        disconnects: [],
        tag,
        sessionId: undefined,
        nextRegistration: () => new Promise((resolve) => waiters.push(resolve)),
        close: () => client.close({ graceMs: 0 }),
      };
      client.on('stream-open', (e) => backend.streams.push(e));
      client.on('disconnected', (e) => backend.disconnects.push(e));
      // The hub acknowledges nothing in v1: each client's token also lists a name of its own
      // (`backend-N.harness.test`), so the node's registrations can be told apart.
      nexus.on('backend-connected', (e) => {
        if (!e.hostnames.includes(tag)) return;
        backend.sessionId = e.id;
        const w = waiters;
        waiters = [];
        for (const resolve of w) resolve(e);
      });
      backends.push(backend);
      const registered = backend.nextRegistration();
      client.connect();
      if (o.waitRegistered ?? true) await registered;
      return backend;
    },
    close() {
      closed ??= (async () => {
        await Promise.all(backends.map((b) => b.close()));
        await nexus.close({ graceMs: 0 });
        files.remove();
      })();
      return closed;
    },
  };
  let closed: Promise<void> | undefined;
  return node;
}

/**
 * A backend client for `node` (not connected, not closed by the node): a token for `o.hostnames` signed
 * with {@link TEST_SECRET}, the test CA trusted, fast reconnects, no close grace.
 */
export async function backendClient(
  pki: TestPki,
  node: Pick<TestNode, 'hubUrl' | 'addresses'>,
  o: AttachBackendOptions,
): Promise<BackendClient> {
  const ports = o.relayPorts ?? node.addresses.listeners.map((l) => l.address.port);
  const portMappings =
    o.portMappings ??
    (o.service !== undefined
      ? resolvePortMappings(Object.fromEntries(ports.map((p) => [p, `127.0.0.1:${o.service}`] as const)))
      : undefined);
  const options: BackendClientOptions = {
    nodes: o.nodes ?? [node.hubUrl],
    token: await token(o.hostnames, o.weight),
    tls: { ca: pki.ca.certPem },
    reconnect: o.reconnect ?? TEST_RECONNECT,
    closeGraceMs: 0,
    ...(portMappings !== undefined ? { portMappings } : {}),
    ...(o.connectHandler !== undefined ? { connectHandler: o.connectHandler } : {}),
    ...(o.keepalive !== undefined ? { keepalive: o.keepalive } : {}),
    ...(o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: o.handshakeTimeoutMs } : {}),
    ...(o.maxDataPayload !== undefined ? { maxDataPayload: o.maxDataPayload } : {}),
    ...(o.logger !== undefined ? { logger: o.logger } : {}),
  };
  const client = createBackendClient(options);
  client.on('error', () => {});
  return client;
}
