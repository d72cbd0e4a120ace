/**
 * The mesh through whole nodes: three `createNexus` nodes (A, B, C) configured like the reference
 * (`peerListenAddress`, `peers`, `peerAuthentication: { trustedDomainSuffixes, caFile }`), certificates
 * from a test CA with DNS names only, and a real backend client (`@nexus-proxy/backend-client`) attached to
 * C. End users connect to A (or B), which has no backend, and are tunnelled to C (docs/protocol.md §2).
 *
 * Peers are dialled by name (`wss://c.mesh.example.test:<port>/mesh`), as in production: the dialer
 * checks the listener's certificate against the URL's host (SNI + hostname verification). The `.test`
 * names are resolved to 127.0.0.1 by a resolver installed for this file only (nothing leaves loopback). A
 * node that dials a DNS-only certificate by IP address is refused by its own TLS check (tested below).
 *
 * Topology: C listens; A dials C; B dials A and C. B's certificate is serverAuth-only, like an ACME one,
 * and it presents it as its client certificate to A and C.
 */
import { createHash, createCipheriv, randomBytes, X509Certificate } from 'node:crypto';
import dns from 'node:dns';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type Server as HttpServer,
} from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import {
  type AddressInfo,
  connect as netConnect,
  createServer as createNetServer,
  type Server,
  type Socket,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import {
  type BackendClient,
  type StreamOpenEvent as BackendStreamOpenEvent,
  createBackendClient,
} from '@nexus-proxy/backend-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mintBackendToken } from '../../src/auth.js';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
} from '../../src/certificates.js';
import {
  createNexus,
  type Nexus,
  type NexusCloseOptions,
  type NexusEvents,
  type RouteMissEvent,
  type SniffFailedEvent,
  type StreamCloseEvent,
  type StreamOpenEvent,
} from '../../src/nexus.js';
import { type RawClient, rawConnect, recordingLogger, waitUntil } from '@nexus-proxy/test-harness';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 30_000 });

const SUFFIX = '.mesh.example.test';
const SECRET = 'nexus-mesh-test-secret-0123456789-abcdefghijkl';
/** Served by the backend behind C: TLS passthrough (its own certificate) and HTTP. */
const APP = 'app.example.test';
/** Served by the backend behind C: the transfer service. */
const BIG = 'big.example.test';
/** Served by the backend behind C: an echo service (long-lived tunnels); it closes after echoing `bye`. */
const ECHO = 'echo.example.test';
const MiB = 1024 * 1024;
/** Bytes per transfer, each way and each path (docs/reliability.md item 1, through a tunnel). */
const SIZE = 300 * MiB;
const CHUNK = 256 * 1024;
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

// ───────────────────────────── name resolution ─────────────────────────────

/** Names under {@link SUFFIX} the resolver answered, in order. */
const resolvedNames: string[] = [];
const realLookup = dns.lookup;

/** Resolves every name under {@link SUFFIX} to 127.0.0.1 (what DNS does for a real mesh); others as usual. */
function meshLookup(hostname: string, options: unknown, callback?: unknown): void {
  const cb = (typeof options === 'function' ? options : callback) as (
    err: Error | null,
    address: unknown,
    family?: number,
  ) => void;
  if (hostname.toLowerCase().endsWith(SUFFIX)) {
    resolvedNames.push(hostname);
    const all =
      typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true;
    process.nextTick(() =>
      all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4),
    );
    return;
  }
  const args = typeof options === 'function' ? [hostname, options] : [hostname, options, callback];
  (realLookup as (...a: unknown[]) => void).apply(dns, args);
}

// ───────────────────────────── PKI and files ─────────────────────────────

let dir: string;
let caFile: string;
let meshCa: CertificateAndKey;
let serviceCert: CertificateAndKey;
let serviceCa: CertificateAndKey;
const certs: Record<string, CertificateAndKey> = {};

/** A node certificate: DNS name only (no IP address), serverAuth + clientAuth unless `acmeLike`. */
function nodeCert(ca: CertificateAndKey, dnsName: string, acmeLike = false): Promise<CertificateAndKey> {
  return issueCertificate(ca, { dnsNames: [dnsName], serverAuth: true, clientAuth: !acmeLike });
}

// ───────────────────────────── nodes ─────────────────────────────

interface NodePorts {
  hub: number;
  peer: number;
  tls: number;
  http: number;
}

type EventOf<K extends keyof NexusEvents> = NexusEvents[K][0];

interface MeshNode {
  name: string;
  nexus: Nexus;
  ports: NodePorts;
  /** Its peer URL, by name. */
  url: string;
  log: ReturnType<typeof recordingLogger>;
  events: {
    streamOpen: StreamOpenEvent[];
    streamClose: StreamCloseEvent[];
    routeMiss: RouteMissEvent[];
    sniffFailed: SniffFailedEvent[];
    peerConnected: EventOf<'peer-connected'>[];
    peerDisconnected: EventOf<'peer-disconnected'>[];
    routesChanged: EventOf<'routes-changed'>[];
    peerRefused: EventOf<'peer-refused'>[];
  };
  close(options?: NexusCloseOptions): Promise<void>;
}

interface StartOptions {
  cert: CertificateAndKey;
  peers?: string[];
  /** Fixed ports (a restart). Default: any. */
  ports?: NodePorts;
}

let fileCount = 0;

async function startMeshNode(name: string, options: StartOptions): Promise<MeshNode> {
  const certFile = join(dir, `${name}-${++fileCount}.pem`);
  const keyFile = join(dir, `${name}-${fileCount}-key.pem`);
  writeFileSync(certFile, options.cert.certPem);
  writeFileSync(keyFile, options.cert.keyPem);
  const log = recordingLogger([], 'info');
  const p = options.ports;
  const nexus = createNexus(
    {
      backendListenAddress: `127.0.0.1:${p?.hub ?? 0}`,
      peerListenAddress: `127.0.0.1:${p?.peer ?? 0}`,
      backendsJWTSecret: SECRET,
      hubTlsCertFile: certFile,
      hubTlsKeyFile: keyFile,
      listeners: [
        { port: p?.tls ?? 0, mode: 'tls', host: '127.0.0.1' },
        { port: p?.http ?? 0, mode: 'http', host: '127.0.0.1' },
      ],
      peers: options.peers ?? [],
      peerAuthentication: { trustedDomainSuffixes: [SUFFIX], caFile },
      // Far longer than anything measured here: a link that goes away is noticed by its close, not by
      // the keepalive deadline.
      keepalive: { peerPingIntervalMs: 5_000, peerDeadAfterMs: 20_000 },
    },
    { logger: log, mesh: { reconnect: { initialDelayMs: 50, maxDelayMs: 250 } } },
  );
  const events: MeshNode['events'] = {
    streamOpen: [],
    streamClose: [],
    routeMiss: [],
    sniffFailed: [],
    peerConnected: [],
    peerDisconnected: [],
    routesChanged: [],
    peerRefused: [],
  };
  nexus.on('stream-open', (e) => events.streamOpen.push(e));
  nexus.on('stream-close', (e) => events.streamClose.push(e));
  nexus.on('route-miss', (e) => events.routeMiss.push(e));
  nexus.on('sniff-failed', (e) => events.sniffFailed.push(e));
  nexus.on('peer-connected', (e) => events.peerConnected.push(e));
  nexus.on('peer-disconnected', (e) => events.peerDisconnected.push(e));
  nexus.on('routes-changed', (e) => events.routesChanged.push(e));
  nexus.on('peer-refused', (e) => events.peerRefused.push(e));
  const addresses = await nexus.listen();
  const portOf = (mode: 'tls' | 'http') =>
    addresses.listeners.find((l) => l.mode === mode)?.address.port ?? -1;
  const ports: NodePorts = {
    hub: addresses.hub.port,
    peer: addresses.peer?.port ?? -1,
    tls: portOf('tls'),
    http: portOf('http'),
  };
  const node: MeshNode = {
    name,
    nexus,
    ports,
    url: `wss://${name}${SUFFIX}:${ports.peer}/mesh`,
    log,
    events,
    close: (closeOptions) => nexus.close(closeOptions),
  };
  cleanups.push(() => nexus.close({ graceMs: 0 }));
  return node;
}

/** Resolves with the next event `name` of `node` that `match` accepts. */
function nextEvent<K extends keyof NexusEvents>(
  node: MeshNode,
  name: K,
  match: (e: EventOf<K>) => boolean = () => true,
): Promise<EventOf<K>> {
  return new Promise((resolve) => {
    const on = (...args: NexusEvents[K]): void => {
      const e = args[0] as EventOf<K>;
      if (!match(e)) return;
      (node.nexus.off as (n: K, l: (...a: NexusEvents[K]) => void) => void)(name, on);
      resolve(e);
    };
    (node.nexus.on as (n: K, l: (...a: NexusEvents[K]) => void) => void)(name, on);
  });
}

// ───────────────────────────── services and the backend ─────────────────────────────

const cleanups: Array<() => Promise<void> | void> = [];
const ports = { tlsService: 0, httpService: 0, echo: 0, big: 0 };

/** Listens on 127.0.0.1:0 and registers the server (and its sockets) for cleanup. */
async function listen(server: Server | HttpServer): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  );
  return (server.address() as AddressInfo).port;
}

/** A keystream (AES-256-CTR over zeros): every chunk differs, so loss or reordering changes the hash. */
function keystream(): (n: number) => Buffer {
  const cipher = createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16));
  const zeros = Buffer.alloc(CHUNK);
  return (n) => cipher.update(zeros.subarray(0, n));
}

/** Digests of what the transfer service sent, by tag. */
const sentDigests = new Map<string, string>();

/**
 * The transfer service: `GET /down/<n>/<tag>` sends n keystream bytes and closes (their SHA-256 goes to
 * {@link sentDigests}); `PUT /up/<n>/<tag>` reads n bytes after the head and answers their SHA-256.
 */
function transferService(): Server {
  return createNetServer((socket) => {
    socket.on('error', () => {});
    let head = Buffer.alloc(0);
    const onHead = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onHead);
      const [method, path = ''] = head.subarray(0, end).toString('latin1').split(' ');
      const [, , size, tag = ''] = path.split('/');
      const n = Number(size);
      const rest = head.subarray(end + 4);
      const hash = createHash('sha256');
      if (method === 'GET') {
        const next = keystream();
        let left = n;
        const pump = (): void => {
          while (left > 0) {
            const chunk = next(Math.min(CHUNK, left));
            left -= chunk.length;
            hash.update(chunk);
            if (!socket.write(chunk)) {
              socket.once('drain', pump);
              return;
            }
          }
          sentDigests.set(tag, hash.digest('hex'));
          socket.end();
        };
        pump();
        return;
      }
      let got = 0;
      const onData = (d: Buffer): void => {
        hash.update(d);
        got += d.length;
        if (got >= n) {
          socket.off('data', onData);
          socket.end(hash.digest('hex'));
        }
      };
      socket.on('data', onData);
      if (rest.length > 0) onData(rest);
    };
    socket.on('data', onHead);
  });
}

interface Backend {
  client: BackendClient;
  streams: BackendStreamOpenEvent[];
}

/** A real backend client attached to `node`'s hub, serving APP, BIG and ECHO from the local services. */
async function attachBackend(node: MeshNode): Promise<Backend> {
  const client = createBackendClient({
    nodes: [`wss://127.0.0.1:${node.ports.hub}/connect`],
    token: await mintBackendToken({ secret: SECRET, hostnames: [APP, BIG, ECHO] }),
    // The hub serves C's DNS-only certificate: the client checks it by name.
    tls: { ca: meshCa.certPem, servername: `${node.name}${SUFFIX}` },
    connectHandler: (request) => {
      const port =
        request.hostname === BIG
          ? ports.big
          : request.hostname === ECHO
            ? ports.echo
            : request.isTls
              ? ports.tlsService
              : ports.httpService;
      return netConnect(port, '127.0.0.1');
    },
    reconnect: { initialDelayMs: 50, maxDelayMs: 250, jitter: 0.25 },
    closeGraceMs: 0,
  });
  client.on('error', () => {});
  const streams: BackendStreamOpenEvent[] = [];
  client.on('stream-open', (e) => streams.push(e));
  const registered = once(node.nexus, 'backend-connected');
  client.connect();
  await registered;
  cleanups.push(() => client.close({ graceMs: 0 }));
  return { client, streams };
}

// ───────────────────────────── end users ─────────────────────────────

interface Reply {
  status: number | undefined;
  body: string;
  /** The end user's own port (what the backend must see in `client_ip`). */
  localPort: number;
  /** The certificate the end user saw (HTTPS). */
  certificate?: X509Certificate | undefined;
}

/** HTTPS through a relay port: SNI `APP`, trusting only the service's CA. */
function httpsGet(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        servername: APP,
        ca: serviceCa.certPem,
        agent: false,
        headers: { host: APP, connection: 'close' },
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const certificate = socket.getPeerX509Certificate();
        const localPort = socket.localPort ?? -1;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode, body, localPort, certificate }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** HTTP through a relay port, routed by `Host`. */
function httpGet(port: number, host: string, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, agent: false, headers: { host, connection: 'close' } },
      (res) => {
        const localPort = res.socket.localPort ?? -1;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode, body, localPort }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** An end user holding a tunnel open: an HTTP head for ECHO, echoed back by the service. */
async function echoUser(port: number): Promise<RawClient> {
  const user = await rawConnect(port);
  cleanups.push(() => {
    user.socket.destroy();
  });
  user.socket.write(`GET /hold HTTP/1.1\r\nHost: ${ECHO}\r\n\r\n`);
  await waitUntil(() => user.received().includes('GET /hold'), 5_000, 'the echo through the tunnel');
  return user;
}

async function download(port: number, tag: string): Promise<{ ok: boolean; seconds: number }> {
  const started = process.hrtime.bigint();
  const socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(`GET /down/${SIZE}/${tag} HTTP/1.1\r\nHost: ${BIG}\r\n\r\n`);
  const hash = createHash('sha256');
  let bytes = 0;
  socket.on('data', (d: Buffer) => {
    hash.update(d);
    bytes += d.length;
  });
  await once(socket, 'close');
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { ok: bytes === SIZE && hash.digest('hex') === sentDigests.get(tag), seconds };
}

async function upload(port: number): Promise<{ ok: boolean; seconds: number }> {
  const started = process.hrtime.bigint();
  const socket = netConnect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {});
  socket.write(`PUT /up/${SIZE}/x HTTP/1.1\r\nHost: ${BIG}\r\n\r\n`);
  const next = keystream();
  const hash = createHash('sha256');
  const reply: Buffer[] = [];
  socket.on('data', (d: Buffer) => reply.push(d));
  const closed = once(socket, 'close');
  let left = SIZE;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      while (left > 0) {
        const chunk = next(Math.min(CHUNK, left));
        left -= chunk.length;
        hash.update(chunk);
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
      resolve();
    };
    pump();
  });
  // Half-close after the upload: the digest must still come back (docs/reliability.md item 6).
  socket.end();
  await closed;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { ok: Buffer.concat(reply).toString() === hash.digest('hex'), seconds };
}

// ───────────────────────────── the mesh ─────────────────────────────

let a: MeshNode;
let b: MeshNode;
let c: MeshNode;
let backend: Backend;

const linkOf = (from: MeshNode, peer: string) => from.nexus.mesh?.links().find((l) => l.peer === peer);
const routeKind = (node: MeshNode, hostname: string) => node.nexus.routes.lookup(hostname)?.kind;

beforeAll(async () => {
  (dns as { lookup: unknown }).lookup = meshLookup;
  dir = mkdtempSync(join(tmpdir(), 'nexus-mesh-test-'));
  meshCa = await createCertificateAuthority({ commonName: 'Mesh Operator Test CA' });
  caFile = join(dir, 'mesh-ca.pem');
  writeFileSync(caFile, meshCa.certPem);
  serviceCa = await createCertificateAuthority({ commonName: 'Device Test CA' });
  serviceCert = await issueCertificate(serviceCa, { dnsNames: [APP] });
  certs.a = await nodeCert(meshCa, `a${SUFFIX}`);
  certs.b = await nodeCert(meshCa, `b${SUFFIX}`, true);
  certs.c = await nodeCert(meshCa, `c${SUFFIX}`);

  ports.tlsService = await listen(
    createHttpsServer({ cert: serviceCert.certPem, key: serviceCert.keyPem }, (req, res) =>
      res.end(`tls ${req.headers.host} ${req.url}`),
    ),
  );
  ports.httpService = await listen(
    createHttpServer((req, res) => res.end(`http ${req.headers.host} ${req.url}`)),
  );
  ports.echo = await listen(
    createNetServer((s) => {
      s.on('error', () => {});
      s.on('data', (d: Buffer) => {
        s.write(d);
        if (d.includes('bye')) s.end();
      });
    }),
  );
  ports.big = await listen(transferService());

  c = await startMeshNode('c', { cert: certs.c });
  a = await startMeshNode('a', { cert: certs.a, peers: [c.url] });
  b = await startMeshNode('b', { cert: certs.b, peers: [a.url, c.url] });
  await waitUntil(
    () => [a, b, c].every((n) => n.nexus.mesh?.linkCount === 2),
    10_000,
    'the mesh (two links at every node)',
  );
  backend = await attachBackend(c);
  await waitUntil(
    () => routeKind(a, APP) === 'peer' && routeKind(b, APP) === 'peer',
    5_000,
    'A and B to learn C routes',
  );
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  (dns as { lookup: unknown }).lookup = realLookup;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('createNexus with peers: three whole nodes on loopback', () => {
  it('forms the mesh by name with DNS-only certificates, a serverAuth-only one included', () => {
    // B's certificate is what ACME issues: serverAuth only. A and C accepted it as a client certificate.
    expect(new X509Certificate(certs.b!.certPem).keyUsage).toEqual([OID_SERVER_AUTH]);
    expect(new X509Certificate(certs.a!.certPem).keyUsage).toEqual([OID_SERVER_AUTH, OID_CLIENT_AUTH]);
    expect(new X509Certificate(certs.a!.certPem).subjectAltName).toBe(`DNS:a${SUFFIX}`);
    expect(linkOf(a, `b${SUFFIX}`)?.direction).toBe('inbound');
    expect(linkOf(c, `b${SUFFIX}`)?.direction).toBe('inbound');
    expect(linkOf(c, `a${SUFFIX}`)?.direction).toBe('inbound');
    expect(linkOf(a, c.url)?.direction).toBe('outbound');
    expect(linkOf(b, a.url)?.direction).toBe('outbound');
    expect(linkOf(b, c.url)?.direction).toBe('outbound');
    // The dialers resolved the peers' names (and so checked their certificates against those names).
    expect(new Set(resolvedNames)).toEqual(new Set([`a${SUFFIX}`, `c${SUFFIX}`]));
    // Events of the mesh are the node's events; listen() reported the peer listener.
    expect(a.events.peerConnected.map((e) => e.direction).sort()).toEqual(['inbound', 'outbound']);
    expect(a.ports.peer).toBeGreaterThan(0);
    expect(a.events.peerRefused).toEqual([]);
    expect(c.events.peerRefused).toEqual([]);
    // A learned C's routes on its link to C, and nothing from B (B has no backend).
    const fromC = linkOf(a, c.url);
    expect(fromC?.routes).toEqual([APP, BIG, ECHO].sort());
    expect(linkOf(a, `b${SUFFIX}`)?.routes).toEqual([]);
    expect(a.events.routesChanged.some((e) => e.linkId === fromC?.linkId && e.hostnames.includes(APP))).toBe(
      true,
    );
  });

  it('carries an end user at A to the backend behind C: TLS passthrough and HTTP by Host', async () => {
    const openedBefore = a.events.streamOpen.length;
    const https = await httpsGet(a.ports.tls, '/secure?x=1');
    expect(https).toMatchObject({ status: 200, body: `tls ${APP} /secure?x=1` });
    // End to end: the end user saw the device's own certificate, never a node's.
    expect(https.certificate?.fingerprint256).toBe(new X509Certificate(serviceCert.certPem).fingerprint256);

    const http = await httpGet(a.ports.http, APP, '/plain');
    expect(http).toMatchObject({ status: 200, body: `http ${APP} /plain` });

    // A routed both to its peer; its events say so.
    const opened = a.events.streamOpen.slice(openedBefore);
    expect(opened).toEqual([
      expect.objectContaining({ hostname: APP, port: a.ports.tls, isTls: true, via: 'peer', route: APP }),
      expect.objectContaining({ hostname: APP, port: a.ports.http, isTls: false, via: 'peer', route: APP }),
    ]);
    await waitUntil(
      () => a.events.streamClose.some((e) => e.id === opened[1]?.id),
      5_000,
      'the HTTP stream to close',
    );
    expect(a.events.streamClose.find((e) => e.id === opened[1]?.id)).toMatchObject({
      via: 'peer',
      route: APP,
    });
    expect(a.nexus.hub.stats().streams).toBe(0);

    // docs/reliability.md item 18: the backend behind C sees A's end user and A's relay port.
    expect(backend.streams.find((s) => s.clientIp === `127.0.0.1:${https.localPort}`)).toMatchObject({
      hostname: APP,
      connPort: a.ports.tls,
      isTls: true,
    });
    expect(backend.streams.find((s) => s.clientIp === `127.0.0.1:${http.localPort}`)).toMatchObject({
      hostname: APP,
      connPort: a.ports.http,
      isTls: false,
    });

    // Through B (the serverAuth-only node, which dialled C itself), and directly at C.
    const viaB = await httpGet(b.ports.http, APP, '/via-b');
    expect(viaB.body).toBe(`http ${APP} /via-b`);
    expect(backend.streams.find((s) => s.clientIp === `127.0.0.1:${viaB.localPort}`)?.connPort).toBe(
      b.ports.http,
    );
    expect(b.events.streamOpen.at(-1)).toMatchObject({ via: 'peer', port: b.ports.http });
    const atC = await httpGet(c.ports.http, APP, '/at-c');
    expect(atC.body).toBe(`http ${APP} /at-c`);
    expect(c.events.streamOpen.at(-1)).toMatchObject({ via: 'local', port: c.ports.http, route: APP });
  });

  it('moves 300 MiB each way through the tunnel byte for byte (SHA-256), measured against direct', async () => {
    const tunnelDown = await download(a.ports.http, 'tunnel');
    const directDown = await download(c.ports.http, 'direct');
    const tunnelUp = await upload(a.ports.http);
    const directUp = await upload(c.ports.http);
    expect({
      tunnelDown: tunnelDown.ok,
      directDown: directDown.ok,
      tunnelUp: tunnelUp.ok,
      directUp: directUp.ok,
    }).toEqual({ tunnelDown: true, directDown: true, tunnelUp: true, directUp: true });
    const mbps = (r: { seconds: number }) => (SIZE / 1e6 / r.seconds).toFixed(0);
    console.log(
      `nexus mesh, 300 MiB through a real backend client: download via A→C tunnel ${mbps(tunnelDown)} MB/s, ` +
        `direct at C ${mbps(directDown)} MB/s; upload via tunnel ${mbps(tunnelUp)} MB/s, direct ${mbps(directUp)} MB/s`,
    );
    const bigStreams = a.events.streamOpen.filter((e) => e.hostname === BIG);
    expect(bigStreams.map((e) => e.via)).toEqual(['peer', 'peer']);
    // Every tunnel ended and was released on both sides.
    await waitUntil(
      () => [a, c].every((n) => n.nexus.mesh?.links().every((l) => l.tunnels.tunnels === 0)),
      5_000,
      'tunnels to be released',
    );
    // 1.2 GB moved in all: allow for a loaded machine (the throughput itself is measured by `npm run bench`).
  }, 180_000);

  it('stops routing to C within one announce when the backend leaves: new end users at A get no-route', async () => {
    const link = linkOf(a, c.url);
    const versionBefore = link?.lastAnnounceVersion ?? -1;
    expect(versionBefore).toBeGreaterThan(0);
    const changed = nextEvent(a, 'routes-changed', (e) => e.linkId === link?.linkId);
    await backend.client.close({ graceMs: 0 });
    // The first announce after the backend left already carries no route (full state, one announce).
    const change = await changed;
    expect(change.hostnames).toEqual([]);
    expect(change.version).toBe(versionBefore + 1);
    expect(a.nexus.routes.lookup(APP)).toBeUndefined();
    expect(a.nexus.routes.lookup(ECHO)).toBeUndefined();

    const user = await rawConnect(a.ports.http);
    user.socket.write(`GET / HTTP/1.1\r\nHost: ${APP}\r\n\r\n`);
    await user.closed;
    expect(user.received().length).toBe(0);
    await waitUntil(
      () => a.events.sniffFailed.some((e) => e.reason === 'no-route'),
      5_000,
      'the no-route close',
    );
    expect(a.events.sniffFailed.find((e) => e.reason === 'no-route')).toMatchObject({
      hostname: APP,
      port: a.ports.http,
    });
    expect(a.events.routeMiss).toContainEqual({
      hostname: APP,
      port: a.ports.http,
      isTls: false,
      reason: 'no-route',
    });

    // A backend comes back for the rest of the suite.
    backend = await attachBackend(c);
    await waitUntil(() => routeKind(a, APP) === 'peer', 5_000, 'A to learn the route again');
  });

  it('drops C at once when C closes: routes gone, tunnelled end users closed, and C closes without hanging', async () => {
    const users = await Promise.all([1, 2, 3].map(() => echoUser(a.ports.http)));
    const tunnelled = a.events.streamOpen.filter((e) => e.hostname === ECHO);
    expect(tunnelled.map((e) => e.via)).toEqual(['peer', 'peer', 'peer']);
    expect(c.nexus.mesh?.links().reduce((n, l) => n + l.tunnels.tunnels, 0)).toBe(3);

    const link = linkOf(a, c.url);
    let routeWhenDisconnected: unknown = 'not yet';
    const disconnected = nextEvent(a, 'peer-disconnected', (e) => {
      if (e.linkId !== link?.linkId) return false;
      routeWhenDisconnected = a.nexus.routes.lookup(APP);
      return true;
    });
    const gone = nextEvent(a, 'routes-changed', (e) => e.linkId === link?.linkId);
    const started = Date.now();
    // Default grace (10 s): C has no end user of its own, only tunnels, so nothing holds it.
    const closing = c.close();
    const change = await gone;
    const droppedAfterMs = Date.now() - started;
    expect(change.hostnames).toEqual([]);
    expect(routeKind(a, APP)).toBeUndefined();
    expect((await disconnected).reason).toBe('closed_by_peer');
    expect(routeWhenDisconnected).toBeUndefined();
    // The link's close told A, not the keepalive deadline (20 s).
    expect(droppedAfterMs).toBeLessThan(5_000);

    // The end users' tunnels ended with the link: each end user is closed.
    await Promise.all(users.map((u) => u.closed));
    await waitUntil(
      () => tunnelled.every((o) => a.events.streamClose.some((e) => e.id === o.id)),
      5_000,
      'stream-close at A',
    );
    const closes = tunnelled.map((o) => a.events.streamClose.find((e) => e.id === o.id));
    expect(closes.map((e) => e?.via)).toEqual(['peer', 'peer', 'peer']);
    await closing;
    const closedAfterMs = Date.now() - started;
    expect(closedAfterMs).toBeLessThan(5_000);
    expect(a.nexus.activeStreams).toBe(0);
    console.log(
      `C closed with 3 active tunnels: A dropped its routes after ${droppedAfterMs} ms, close() took ${closedAfterMs} ms; ` +
        `A's streams closed with ${closes.map((e) => e?.reason).join(', ')}`,
    );
    expect(a.nexus.mesh?.linkCount).toBe(1); // B only
  });

  it('re-forms the mesh when C restarts on the same ports, and routing works again', async () => {
    const connectedBefore = a.events.peerConnected.length;
    const again = nextEvent(a, 'peer-connected', (e) => e.peer === c.url && e.direction === 'outbound');
    const old = c;
    c = await startMeshNode('c', { cert: certs.c!, ports: old.ports });
    expect(c.ports).toEqual(old.ports);
    expect(c.url).toBe(old.url);
    await again; // A's dialer redialled C
    expect(a.events.peerConnected.length).toBe(connectedBefore + 1);
    await waitUntil(() => c.nexus.mesh?.linkCount === 2, 5_000, 'A and B to redial C');
    // The backend client redials C's hub by itself; C announces; A routes again.
    await waitUntil(() => routeKind(c, APP) === 'local', 10_000, 'the backend to re-register at C');
    await waitUntil(() => routeKind(a, APP) === 'peer', 5_000, 'A to learn C routes again');
    const before = a.events.streamOpen.length;
    const reply = await httpsGet(a.ports.tls, '/after-restart');
    expect(reply).toMatchObject({ status: 200, body: `tls ${APP} /after-restart` });
    expect(a.events.streamOpen.slice(before)).toEqual([
      expect.objectContaining({ hostname: APP, via: 'peer' }),
    ]);
  });

  it('refuses peers whose certificate is outside the trusted suffixes or from another CA', async () => {
    const refusedBefore = a.events.peerRefused.length;
    const linksBefore = a.nexus.mesh?.linkCount;
    // `mesh.example.test` ends this name, but not at a label boundary.
    const outside = await startMeshNode('evil', {
      cert: await nodeCert(meshCa, 'node-d.evilmesh.example.test'),
      peers: [a.url],
    });
    const rogueCa = await createCertificateAuthority({ commonName: 'Rogue CA' });
    const rogue = await startMeshNode('rogue', {
      cert: await nodeCert(rogueCa, `e${SUFFIX}`),
      peers: [a.url],
    });
    await waitUntil(
      () =>
        a.events.peerRefused.slice(refusedBefore).some((e) => e.reason.includes('evilmesh')) &&
        a.events.peerRefused.slice(refusedBefore).some((e) => e.reason === 'untrusted certificate chain'),
      5_000,
      'A to refuse both',
    );
    expect(a.events.peerRefused.slice(refusedBefore).find((e) => e.reason.includes('evilmesh'))).toEqual({
      remoteAddress: '127.0.0.1',
      reason: 'certificate names ["node-d.evilmesh.example.test"] match no trusted domain suffix',
    });
    expect(a.log.lines.some((l) => l.level === 'warn' && l.msg === 'refusing peer')).toBe(true);
    expect(outside.nexus.mesh?.linkCount).toBe(0);
    expect(rogue.nexus.mesh?.linkCount).toBe(0);
    expect(a.nexus.mesh?.linkCount).toBe(linksBefore);
    // The refused dialers keep trying, with backoff, and say so.
    await waitUntil(
      () =>
        [outside, rogue].every((n) =>
          n.log.lines.some((l) => l.level === 'warn' && l.msg === 'cannot reach peer'),
        ),
      5_000,
      'the refused dialers to report',
    );
    await outside.close({ graceMs: 0 });
    await rogue.close({ graceMs: 0 });
  });

  it('verifies the listener when dialling: an IP address URL does not match a DNS-only certificate', async () => {
    const refusedBefore = a.events.peerRefused.length;
    const connectedBefore = a.events.peerConnected.length;
    const byIp = await startMeshNode('f', {
      cert: await nodeCert(meshCa, `f${SUFFIX}`),
      peers: [`wss://127.0.0.1:${a.ports.peer}/mesh`],
    });
    await waitUntil(
      () => byIp.log.lines.filter((l) => l.msg === 'cannot reach peer').length >= 2,
      5_000,
      'the dialer to fail (twice)',
    );
    const failure = byIp.log.lines.find((l) => l.msg === 'cannot reach peer');
    expect(String((failure?.fields as { err?: string } | undefined)?.err)).toContain(
      "IP: 127.0.0.1 is not in the cert's list",
    );
    expect(byIp.nexus.mesh?.linkCount).toBe(0);
    // The TLS handshake ended before any HTTP: A saw neither a link nor a refusal.
    expect(a.events.peerConnected.length).toBe(connectedBefore);
    // (A dial of the previous test still in flight when its node closed may be refused meanwhile.)
    const refusedSince = a.events.peerRefused.slice(refusedBefore);
    expect(refusedSince.filter((e) => !/evilmesh|untrusted certificate chain/.test(e.reason))).toEqual([]);
    await byIp.close({ graceMs: 0 });
  });

  it('closes a node with active tunnels gracefully: finishing streams complete, the rest are cut at the grace', async () => {
    const finishing = await echoUser(a.ports.http);
    const idle = await echoUser(a.ports.http);
    await waitUntil(
      () => (c.nexus.mesh?.links().reduce((n, l) => n + l.tunnels.tunnels, 0) ?? 0) === 2,
      5_000,
      'two tunnels at C',
    );
    const cLinkToA = linkOf(c, `a${SUFFIX}`);
    const aGone = nextEvent(c, 'peer-disconnected', (e) => e.linkId === cLinkToA?.linkId);
    const started = Date.now();
    const closing = a.close({ graceMs: 1_000 });
    // During the grace the tunnel still carries data both ways, and a stream that finishes completes:
    // the service answers, closes, and the end user gets every byte, then FIN.
    finishing.socket.write('one more line, bye');
    expect((await finishing.closed).fin).toBe(true);
    expect(finishing.received().toString()).toContain('one more line, bye');
    const finishedAfterMs = Date.now() - started;
    await closing;
    const tookMs = Date.now() - started;
    expect(tookMs).toBeGreaterThanOrEqual(900);
    expect(tookMs).toBeLessThan(5_000);
    await idle.closed;
    const [finishingOpen, idleOpen] = a.events.streamOpen.filter((e) => e.hostname === ECHO).slice(-2);
    const closeOf = (open: StreamOpenEvent | undefined) =>
      a.events.streamClose.find((e) => e.id === open?.id);
    expect(closeOf(finishingOpen)).toMatchObject({ via: 'peer', reason: 'completed' });
    expect(closeOf(idleOpen)).toMatchObject({ via: 'peer', reason: 'shutdown' });
    // C saw A leave and released everything: tunnels and the backend's streams.
    expect((await aGone).reason).toBe('closed_by_peer');
    await waitUntil(
      () => c.nexus.mesh?.links().every((l) => l.tunnels.tunnels === 0) === true,
      5_000,
      'C to release tunnels',
    );
    await waitUntil(() => backend.client.stats().streams === 0, 5_000, 'the backend streams to end');
    console.log(
      `A closed with 2 active tunnels (grace 1000 ms) in ${tookMs} ms; one finished after ${finishedAfterMs} ms`,
    );
  });
});
