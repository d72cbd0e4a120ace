/**
 * Minimal mesh nodes for integration tests: RoutingTable + BackendHub + PeerMesh + TLS/HTTP relay
 * listeners, wired the way the node factory wires them, on loopback with certificates from a test CA.
 */
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ConnectMessage, MuxSession, type MuxStream } from '@nexus-proxy/mux-protocol';
import { WebSocket } from 'ws';
import { mintBackendToken, verifyBackendToken } from '../../src/auth.js';
import type { BackendSession } from '../../src/backend-session.js';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
} from '../../src/certificates.js';
import { BackendHub } from '../../src/hub.js';
import { HubTlsContext } from '../../src/hub-tls.js';
import type { LogFn, Logger } from '../../src/logger.js';
import { PeerMesh, type PeerMeshOptions } from '../../src/mesh.js';
import { NoRouteError } from '../../src/errors.js';
import { openRoute } from '../../src/node-dispatch.js';
import { relayMuxStream } from '../../src/relay.js';
import { createRelayListener, type RelayListener } from '../../src/relay-listener.js';
import { RoutingTable } from '../../src/routing-table.js';
import { createWsTransport } from '../../src/ws-transport.js';

export const SECRET = 'mesh-test-secret-0123456789-0123456789';
export const SUFFIX = '.mesh.example.com';

/** The test PKI: one CA for node certificates. */
export interface TestPki {
  ca: CertificateAndKey;
  /** A node certificate like ACME issues: serverAuth only, DNS `<name>.mesh.example.com`, IP 127.0.0.1. */
  nodeCert(name: string): Promise<CertificateAndKey>;
}

export async function createTestPki(): Promise<TestPki> {
  const ca = await createCertificateAuthority({ commonName: 'Mesh Test CA' });
  return {
    ca,
    nodeCert: (name) =>
      issueCertificate(ca, {
        dnsNames: [`${name}${SUFFIX}`],
        ipAddresses: ['127.0.0.1'],
        serverAuth: true,
        clientAuth: false,
      }),
  };
}

/** A logger that keeps warnings and errors (and prints nothing). */
export function captureLogger(lines: { level: string; msg: string; obj: object }[] = []): Logger & {
  lines: typeof lines;
} {
  const make = (bindings: object): Logger => {
    const at =
      (level: string): LogFn =>
      (obj: object | string, msg?: unknown): void => {
        if (level === 'debug') return;
        if (typeof obj === 'string') lines.push({ level, msg: obj, obj: bindings });
        else lines.push({ level, msg: typeof msg === 'string' ? msg : '', obj: { ...bindings, ...obj } });
      };
    return {
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      child: (b) => make({ ...bindings, ...b }),
    };
  };
  return Object.assign(make({}), { lines });
}

export interface MeshTestNode {
  name: string;
  routes: RoutingTable<BackendSession>;
  hub: BackendHub;
  mesh: PeerMesh;
  tls: HubTlsContext;
  hubPort: number;
  meshPort: number;
  tlsPort: number;
  httpPort: number;
  meshUrl: string;
  /** Routing outcomes of the relay listeners, e.g. `no-route`. */
  refusals: string[];
  close(): Promise<void>;
}

export interface StartNodeOptions {
  peers?: string[];
  mesh?: Partial<PeerMeshOptions>;
  /** Fixed peer listener port (restart tests). Default: any. */
  meshPort?: number;
  idleTimeoutMs?: number;
  logger?: Logger;
}

export async function startNode(
  pki: TestPki,
  name: string,
  options: StartNodeOptions = {},
): Promise<MeshTestNode> {
  const cert = await pki.nodeCert(name);
  const tls = new HubTlsContext(cert);
  const routes = new RoutingTable<BackendSession>();
  const hub = new BackendHub({
    tls,
    authenticate: (token) => verifyBackendToken(token, { secrets: [SECRET] }),
    routes,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const { port: hubPort } = await hub.listen('127.0.0.1', 0);
  const mesh = new PeerMesh({
    routes,
    tls,
    trustedDomainSuffixes: [SUFFIX],
    ca: pki.ca.certPem,
    systemCa: false,
    peers: options.peers ?? [],
    openLocalStream: (hostname, init) => hub.openStream(hostname, init),
    idleTimeoutMs: options.idleTimeoutMs ?? 0,
    keepaliveIntervalMs: 1_000,
    keepaliveTimeoutMs: 3_000,
    reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    ...(options.logger ? { logger: options.logger } : {}),
    ...options.mesh,
  });
  const { port: meshPort } = await mesh.listen({ port: options.meshPort ?? 0, host: '127.0.0.1' });
  mesh.start();
  const refusals: string[] = [];
  const onRouted =
    (listener: () => RelayListener | undefined) =>
    (socket: Socket, sniffed: { hostname: string; isTls: boolean; prelude: Buffer }): string | undefined => {
      const connPort = listener()?.address()?.port ?? 0;
      const clientIp = `${socket.remoteAddress}:${socket.remotePort}`;
      const init = { connPort, clientIp, isTls: sniffed.isTls };
      let stream: Duplex;
      try {
        stream = openRoute(routes.resolve(sniffed.hostname), init, { hub, mesh }).stream;
      } catch (err) {
        if (!NoRouteError.is(err)) throw err;
        refusals.push('no-route');
        return 'no-route';
      }
      relayMuxStream(socket, stream, {
        prelude: sniffed.prelude,
        idleTimeoutMs: options.idleTimeoutMs ?? 0,
      });
      return undefined;
    };
  let tlsListener: RelayListener | undefined;
  let httpListener: RelayListener | undefined;
  tlsListener = createRelayListener({
    mode: 'tls',
    host: '127.0.0.1',
    port: 0,
    onRouted: onRouted(() => tlsListener),
  });
  httpListener = createRelayListener({
    mode: 'http',
    host: '127.0.0.1',
    port: 0,
    onRouted: onRouted(() => httpListener),
  });
  const { port: tlsPort } = await tlsListener.listen();
  const { port: httpPort } = await httpListener.listen();
  return {
    name,
    routes,
    hub,
    mesh,
    tls,
    hubPort,
    meshPort,
    tlsPort,
    httpPort,
    meshUrl: `wss://127.0.0.1:${meshPort}/mesh`,
    refusals,
    async close() {
      await tlsListener?.close();
      await httpListener?.close();
      await mesh.close();
      await hub.close();
    },
  };
}

/** A backend attached to a node's hub that relays every stream to a local TCP service. */
export interface TestBackend {
  /** The `connect` messages received, in order. */
  connects: ConnectMessage[];
  ws: WebSocket;
  close(): Promise<void>;
}

export async function attachBackend(
  pki: TestPki,
  node: MeshTestNode,
  hostnames: string[],
  servicePort: number,
): Promise<TestBackend> {
  const ws = new WebSocket(`wss://127.0.0.1:${node.hubPort}/connect`, { ca: pki.ca.certPem });
  ws.on('error', () => {});
  await once(ws, 'open');
  const connected = once(node.hub, 'backend-connected');
  ws.send(await mintBackendToken({ secret: SECRET, hostnames }));
  const transport = createWsTransport(ws);
  const mux = new MuxSession({
    role: 'backend',
    transport,
    pauseTransport: () => transport.pause(),
    resumeTransport: () => transport.resume(),
  });
  transport.onDrain(() => mux.transportDrained());
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) mux.receive(data);
  });
  ws.on('close', () => mux.close('transport_closed'));
  const connects: ConnectMessage[] = [];
  mux.on('stream', (stream: MuxStream, connect: ConnectMessage) => {
    connects.push(connect);
    const socket = netConnect(servicePort, '127.0.0.1');
    socket.on('error', () => stream.destroy());
    stream.on('error', () => socket.destroy());
    stream.pipe(socket);
    socket.pipe(stream);
  });
  await connected;
  return {
    connects,
    ws,
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      const closed = once(ws, 'close');
      ws.close();
      await closed;
    },
  };
}

/** Polls `condition` every 5 ms until it holds or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
