import { once } from 'node:events';
import { createServer as createHttpServer, get as httpGet } from 'node:http';
import {
  type AddressInfo,
  connect as netConnect,
  createServer as createNetServer,
  type Server,
  type Socket,
} from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  createSelfSignedCertificate,
  issueCertificate,
} from '../../src/certificates.js';
import { createFaultProxy } from '../../src/testing/fault-proxy.js';
import {
  attachMuxBackend,
  recordingLogger,
  createTestPki,
  type StartNodeOptions,
  startNode,
  type TestNode,
  type TestPki,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { portsToBind } from '@nexus-proxy/test-harness/ports';

vi.setConfig({ testTimeout: 20_000 });

let pki: TestPki;
let serviceCa: CertificateAndKey;
let serviceCert: CertificateAndKey;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  pki = await createTestPki();
  serviceCa = await createCertificateAuthority({ commonName: 'Service CA' });
  serviceCert = await issueCertificate(serviceCa, { dnsNames: ['app.example.com', '*.apps.example.com'] });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(name: string, options: Omit<StartNodeOptions, 'pki' | 'name'> = {}): Promise<TestNode> {
  const n = await startNode({ pki, name, ...options });
  cleanups.push(() => n.close());
  return n;
}

async function listen(server: Server): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  );
  return (server.address() as AddressInfo).port;
}

/** A TLS service with its own certificate that echoes and reports who connected. */
async function tlsEchoService(): Promise<number> {
  const server = createTlsServer({ cert: serviceCert.certPem, key: serviceCert.keyPem }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  return listen(server);
}

/** A plain TCP service that sends `bytes` bytes to every connection, in 64 KiB writes, then closes. */
async function sourceService(bytes: number): Promise<number> {
  const server = createNetServer((s) => {
    s.on('error', () => {});
    let left = bytes;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!s.write(chunk.subarray(0, n))) {
          s.once('drain', pump);
          return;
        }
      }
      s.end();
    };
    pump();
  });
  return listen(server);
}

/** A full mesh A ← B, A ← C, B ← C (the later node dials the earlier ones). */
async function threeNodes(extra: Omit<StartNodeOptions, 'pki' | 'name'> = {}) {
  const a = await node('a', extra);
  const b = await node('b', { ...extra, peers: [a.meshUrl] });
  const c = await node('c', { ...extra, peers: [a.meshUrl, b.meshUrl] });
  await waitUntil(
    () => a.mesh.linkCount === 2 && b.mesh.linkCount === 2 && c.mesh.linkCount === 2,
    5_000,
    'the mesh',
  );
  return { a, b, c };
}

function linkTo(from: TestNode, peerName: string) {
  return from.mesh.links().find((l) => l.peer === `${peerName}.mesh.example.com`);
}

function peerRouteOf(n: TestNode, hostname: string) {
  const r = n.routes.lookup(hostname);
  return r?.kind === 'peer' ? r : undefined;
}

function tlsClient(port: number, servername: string) {
  const socket = tlsConnect({ host: '127.0.0.1', port, servername, ca: serviceCa.certPem });
  socket.on('error', () => {});
  cleanups.push(() => {
    socket.destroy();
  });
  return socket;
}

describe('PeerMesh (three nodes on loopback)', () => {
  it('forms the mesh, announces routes with versions, and removes them when the backend leaves', async () => {
    const { a, b, c } = await threeNodes();
    const service = await tlsEchoService();
    const backend = await attachMuxBackend(pki, c, ['app.example.com', '*.apps.example.com'], service);
    await waitUntil(() => peerRouteOf(a, 'app.example.com') !== undefined, 5_000, 'A to learn C routes');
    await waitUntil(
      () => peerRouteOf(b, 'x.apps.example.com') !== undefined,
      5_000,
      'B to learn the wildcard',
    );
    const fromC = linkTo(a, 'c')!;
    expect(fromC).toMatchObject({ direction: 'inbound', routes: ['*.apps.example.com', 'app.example.com'] });
    const versionBefore = fromC.lastAnnounceVersion!;
    expect(versionBefore).toBeGreaterThan(0);
    // Peer routes are never re-announced: B does not offer C's routes to A.
    expect(a.mesh.links().find((l) => l.peer === 'b.mesh.example.com')?.routes).toEqual([]);

    const changed = new Promise<{ hostnames: string[]; version: number | undefined }>((resolve) =>
      a.mesh.on('routes-changed', (e) => {
        if (e.linkId === fromC.linkId) resolve(e);
      }),
    );
    await backend.close();
    const change = await changed;
    // One announce later A routes nothing there any more, wildcard included.
    expect(change.hostnames).toEqual([]);
    expect(change.version).toBeGreaterThan(versionBefore);
    expect(a.routes.lookup('app.example.com')).toBeUndefined();
    expect(a.routes.lookup('x.apps.example.com')).toBeUndefined();
  });

  it('tunnels TLS passthrough end to end: the end user sees the backend service certificate', async () => {
    const { a, c } = await threeNodes();
    const backend = await attachMuxBackend(pki, c, ['app.example.com'], await tlsEchoService());
    await waitUntil(() => peerRouteOf(a, 'app.example.com') !== undefined, 5_000, 'route at A');
    const client = tlsClient(a.tlsPort, 'app.example.com');
    await once(client, 'secureConnect');
    expect(client.authorized).toBe(true);
    expect(client.getPeerX509Certificate()?.fingerprint256).toBe(
      new (await import('node:crypto')).X509Certificate(serviceCert.certPem).fingerprint256,
    );
    client.write('ping through the mesh');
    const [echo] = await once(client, 'data');
    expect(echo.toString()).toBe('ping through the mesh');
    // docs/reliability.md item 18: the backend behind C sees A's end user and A's relay port.
    expect(backend.connects).toHaveLength(1);
    expect(backend.connects[0]).toMatchObject({
      client_ip: `127.0.0.1:${client.localPort}`,
      conn_port: a.tlsPort,
      hostname: 'app.example.com',
      is_tls: true,
    });
    expect(a.hub.stats().streams).toBe(0);
    client.end();
  });

  it('tunnels HTTP routed by Host, with a half-closed request', async () => {
    const { a, c } = await threeNodes();
    const server = createHttpServer((req, res) => {
      res.setHeader('connection', 'close');
      res.end(JSON.stringify({ host: req.headers.host, url: req.url }));
    });
    const backend = await attachMuxBackend(pki, c, ['web.example.com'], await listen(server));
    await waitUntil(() => peerRouteOf(a, 'web.example.com') !== undefined, 5_000, 'route at A');
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpGet(
        {
          host: '127.0.0.1',
          port: a.httpPort,
          path: '/hello?x=1',
          headers: { host: 'web.example.com' },
          agent: false,
        },
        (res) => {
          let data = '';
          res.on('data', (d) => {
            data += d;
          });
          res.on('end', () => resolve(data));
        },
      );
      req.on('error', reject);
    });
    expect(JSON.parse(body)).toEqual({ host: 'web.example.com', url: '/hello?x=1' });
    expect(backend.connects[0]).toMatchObject({ conn_port: a.httpPort, hostname: 'web.example.com' });
    expect(backend.connects[0]?.is_tls ?? false).toBe(false);
  });

  it('drops every route of a dead link at once and closes its tunnels; the dialer re-forms the link', async () => {
    const { a, c } = await threeNodes();
    await attachMuxBackend(
      pki,
      c,
      ['app.example.com', '*.apps.example.com'],
      await sourceService(1024 * 1024 * 1024),
    );
    await waitUntil(() => peerRouteOf(a, 'x.apps.example.com') !== undefined, 5_000, 'route at A');
    // An end user at A in the middle of a download from C.
    const client = netConnect(a.httpPort, '127.0.0.1');
    client.on('error', () => {});
    cleanups.push(() => {
      client.destroy();
    });
    client.write('GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
    await once(client, 'data');
    const clientClosed = once(client, 'close');
    const fromC = linkTo(a, 'c')!;
    let routesAtDisconnect: unknown;
    a.mesh.once('peer-disconnected', (e) => {
      routesAtDisconnect = {
        exact: a.routes.lookup('app.example.com'),
        wild: a.routes.lookup('x.apps.example.com'),
      };
      expect(e.linkId).toBe(fromC.linkId);
    });
    // C drops its link to A without a close handshake.
    const cSide = c.mesh.links().find((l) => l.peer === a.meshUrl)!;
    c.mesh.getLink(cSide.linkId)!.terminate();
    await clientClosed;
    expect(routesAtDisconnect).toEqual({ exact: undefined, wild: undefined });
    // C redials A (backoff 50 ms) and announces again.
    await waitUntil(() => peerRouteOf(a, 'app.example.com') !== undefined, 5_000, 'the link to come back');
    expect(linkTo(a, 'c')!.linkId).not.toBe(fromC.linkId);
  });

  it('closes the end user at once when the destination has no backend, and never forwards a tunnel (one hop)', async () => {
    const { a, b, c } = await threeNodes();
    // B serves only-b.example.com; C knows it as a peer route, A is told (wrongly) that C serves it and
    // that C serves ghost.example.com, which nobody serves.
    const bBackend = await attachMuxBackend(pki, b, ['only-b.example.com'], await tlsEchoService());
    await waitUntil(() => peerRouteOf(c, 'only-b.example.com') !== undefined, 5_000, 'C to learn B route');
    const fromC = linkTo(a, 'c')!;
    for (const host of ['ghost.example.com', 'only-b.example.com']) {
      a.routes.removePeer(linkTo(a, 'b')!.linkId);
      a.routes.setPeerRoutes(fromC.linkId, [host]);
      const client = netConnect(a.httpPort, '127.0.0.1');
      client.on('error', () => {});
      const started = Date.now();
      client.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      const chunks: Buffer[] = [];
      client.on('data', (d) => chunks.push(d));
      await once(client, 'close');
      // docs/reliability.md item 16: closed at once, not after an idle timeout.
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(Buffer.concat(chunks).length).toBe(0);
    }
    expect(bBackend.connects).toHaveLength(0);
    const cFromA = c.mesh.links().find((l) => l.peer === a.meshUrl)!;
    expect(cFromA.tunnels.refused).toBe(2);
  });

  it('refuses peers whose certificate is outside the suffixes, self-signed, evilmesh, or missing', async () => {
    const logger = recordingLogger([], 'info');
    const a = await node('a', { logger });
    const refused: string[] = [];
    a.mesh.on('peer-refused', (e) => refused.push(e.reason));
    const otherCa = await createCertificateAuthority({ commonName: 'Other CA' });
    const certs: Record<string, CertificateAndKey | undefined> = {
      outside: await issueCertificate(pki.ca, { dnsNames: ['node.other.example.org'] }),
      evilmesh: await issueCertificate(pki.ca, { dnsNames: ['evilmesh.example.com'] }),
      parent: await issueCertificate(pki.ca, { dnsNames: ['example.com'] }),
      selfSigned: await createSelfSignedCertificate({ dnsNames: ['x.mesh.example.com'], clientAuth: true }),
      otherCa: await issueCertificate(otherCa, { dnsNames: ['x.mesh.example.com'], clientAuth: true }),
      none: undefined,
    };
    for (const [name, cert] of Object.entries(certs)) {
      const ws = new WebSocket(a.meshUrl, {
        ca: pki.ca.certPem,
        ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}),
      });
      ws.on('error', () => {});
      const [, res] = await once(ws, 'unexpected-response');
      expect({ name, status: res.statusCode }).toEqual({ name, status: 403 });
      ws.terminate();
    }
    expect(refused).toEqual([
      'certificate names ["node.other.example.org"] match no trusted domain suffix',
      'certificate names ["evilmesh.example.com"] match no trusted domain suffix',
      'certificate names ["example.com"] match no trusted domain suffix',
      'self-signed certificate',
      'untrusted certificate chain',
      'no client certificate',
    ]);
    expect(logger.lines.filter((l) => l.level === 'warn' && l.msg === 'refusing peer')).toHaveLength(6);
    expect(a.mesh.linkCount).toBe(0);
  });

  it('accepts a certificate for the suffix itself (a leading dot is not significant)', async () => {
    const a = await node('a', { mesh: { trustedDomainSuffixes: ['.mesh.example.com'] } });
    const bare = await issueCertificate(pki.ca, { dnsNames: ['mesh.example.com'], clientAuth: true });
    const ws = new WebSocket(a.meshUrl, { ca: pki.ca.certPem, cert: bare.certPem, key: bare.keyPem });
    ws.on('error', () => {});
    cleanups.push(() => ws.terminate());
    await once(ws, 'open');
    const [msg] = await once(ws, 'message');
    expect(JSON.parse(msg.toString())).toMatchObject({ type: 'announce', version: 1 });
  });

  it('carries tunnels on two links between the same pair, round robin', async () => {
    const a = await node('a');
    // Listing A twice gives two independent links between the same pair (docs/protocol.md §2.1: legal). The
    // configuration drops a repeated peer, so the list goes to the mesh directly.
    const b2 = await node('b2', { mesh: { peers: [a.meshUrl, a.meshUrl] } });
    await waitUntil(() => b2.mesh.linkCount === 2 && a.mesh.linkCount === 2, 5_000, 'two links B2–A');
    await attachMuxBackend(pki, b2, ['app.example.com'], await tlsEchoService());
    await waitUntil(
      () => (peerRouteOf(a, 'app.example.com')?.linkIds.length ?? 0) === 2,
      5_000,
      'both links to announce',
    );
    for (let i = 0; i < 4; i++) {
      const client = tlsClient(a.tlsPort, 'app.example.com');
      await once(client, 'secureConnect');
      client.write(`hello ${i}`);
      const [echo] = await once(client, 'data');
      expect(echo.toString()).toBe(`hello ${i}`);
      client.end();
    }
    const opened = a.mesh
      .links()
      .filter((l) => l.peer === 'b2.mesh.example.com')
      .map((l) => l.tunnels.opened);
    expect(opened).toEqual([2, 2]);
  });

  it('re-forms the mesh when a node restarts on the same port', async () => {
    // Below the ephemeral range: a port that `listen(0)` handed out could be taken by another socket
    // between the close and the restart.
    const [meshPort] = await portsToBind(1);
    let a = await node('a', { meshPort });
    const c = await node('c', { peers: [a.meshUrl] });
    await attachMuxBackend(pki, c, ['app.example.com'], await tlsEchoService());
    await waitUntil(() => peerRouteOf(a, 'app.example.com') !== undefined, 5_000, 'route at A');
    await a.close();
    await waitUntil(() => c.mesh.linkCount === 0, 5_000, 'C to notice');
    a = await node('a', { meshPort });
    await waitUntil(() => peerRouteOf(a, 'app.example.com') !== undefined, 5_000, 'route at restarted A');
    const client = tlsClient(a.tlsPort, 'app.example.com');
    await once(client, 'secureConnect');
    client.write('after restart');
    const [echo] = await once(client, 'data');
    expect(echo.toString()).toBe('after restart');
  });

  it('detects a black-holed link by keepalive and drops its routes (docs/reliability.md item 13)', async () => {
    const a = await node('a', { mesh: { keepaliveIntervalMs: 100, keepaliveTimeoutMs: 400 } });
    const proxy = await createFaultProxy({ target: { host: '127.0.0.1', port: a.meshPort } });
    cleanups.push(() => proxy.close());
    const c = await node('c', {
      peers: [`wss://127.0.0.1:${proxy.port}/mesh`],
      mesh: { keepaliveIntervalMs: 100, keepaliveTimeoutMs: 400 },
    });
    await attachMuxBackend(pki, c, ['*.apps.example.com'], await tlsEchoService());
    await waitUntil(() => peerRouteOf(a, 'x.apps.example.com') !== undefined, 5_000, 'route at A');
    const disconnected = once(a.mesh, 'peer-disconnected');
    const started = Date.now();
    proxy.blackhole();
    const [event] = await disconnected;
    expect(event.reason).toBe('keepalive_timeout');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(a.routes.lookup('x.apps.example.com')).toBeUndefined();
  });

  it('applies the idle timeout to tunnelled streams at the destination, counting both directions', async () => {
    const a = await node('a');
    const c = await node('c', { peers: [a.meshUrl], idleTimeoutMs: 250 });
    const total = 48 * 1024 * 1024;
    await attachMuxBackend(pki, c, ['app.example.com'], await tlsEchoService());
    await attachMuxBackend(pki, c, ['big.example.com'], await sourceService(total));
    await waitUntil(() => peerRouteOf(a, 'big.example.com') !== undefined, 5_000, 'routes at A');
    // A download that outlasts the timeout with no upstream bytes is not idle (docs/reliability.md item 9).
    const download = netConnect(a.httpPort, '127.0.0.1');
    download.on('error', () => {});
    cleanups.push(() => {
      download.destroy();
    });
    let received = 0;
    const started = Date.now();
    download.on('data', (d: Buffer) => {
      received += d.length;
    });
    download.write('GET / HTTP/1.1\r\nHost: big.example.com\r\n\r\n');
    await once(download, 'end');
    expect(received).toBe(total);
    expect(Date.now() - started).toBeGreaterThan(250);
    // A silent end user is closed by C's relay, through the tunnel.
    const idle = tlsClient(a.tlsPort, 'app.example.com');
    await once(idle, 'secureConnect');
    const idleSince = Date.now();
    await once(idle, 'close');
    expect(Date.now() - idleSince).toBeGreaterThanOrEqual(200);
    expect(Date.now() - idleSince).toBeLessThan(2_000);
  });

  it('keeps other tunnels on the link flowing while one end user stops reading (docs/reliability.md item 19)', async () => {
    const { a, c } = await threeNodes();
    const total = 64 * 1024 * 1024;
    await attachMuxBackend(pki, c, ['big.example.com'], await sourceService(total));
    await waitUntil(() => peerRouteOf(a, 'big.example.com') !== undefined, 5_000, 'route at A');
    const open = (): Socket => {
      const s = netConnect(a.httpPort, '127.0.0.1');
      s.on('error', () => {});
      cleanups.push(() => {
        s.destroy();
      });
      s.write('GET / HTTP/1.1\r\nHost: big.example.com\r\n\r\n');
      return s;
    };
    const slow = open();
    await once(slow, 'data');
    slow.pause(); // this end user stops reading
    await new Promise((r) => setTimeout(r, 300));
    const fast = open();
    let received = 0;
    fast.on('data', (d: Buffer) => {
      received += d.length;
    });
    const started = Date.now();
    await once(fast, 'end');
    const seconds = (Date.now() - started) / 1000;
    expect(received).toBe(total);
    // The stalled tunnel holds at most its credit window at A (64 frames of 32 KiB), plus socket buffers.
    // Credits bound what the stalled tunnel pulled over the link: its window (64 × 32 KiB), A's stream and
    // socket buffers, and the kernel buffers of the paused end user — far from the 64 MiB it was offered.
    const link = a.mesh.links().find((l) => l.peer === 'c.mesh.example.com')!;
    expect(link.tunnels.tunnels).toBe(1);
    const stalledBytes = link.tunnels.bytesReceived - received;
    expect(stalledBytes).toBeLessThan(16 * 1024 * 1024);
    console.log(
      `mesh: 64 MiB through a tunnel next to a stalled one in ${seconds.toFixed(2)} s (${(((total / seconds) * 8) / 1e9).toFixed(2)} Gbit/s); the stalled tunnel holds ${(stalledBytes / 1048576).toFixed(1)} MiB`,
    );
    slow.destroy();
  });
});
