import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createNetServer, connect as netConnect, type Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { MuxSession, type MuxStream } from '@nexus-proxy/mux-protocol';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ClientOptions, WebSocket } from 'ws';
import { mintBackendToken, createLocalTokenVerifier } from '../../src/auth.js';
import type { BackendSession } from '../../src/backend-session.js';
import { type CertificateAndKey, createSelfSignedCertificate } from '../../src/certificates.js';
import { LimitError } from '../../src/errors.js';
import { BackendHub } from '../../src/hub.js';
import { HubTlsContext } from '../../src/hub-tls.js';
import { type RelayStats, relayConnection } from '../../src/relay.js';
import { createRelayListener, type RelayCloseEvent } from '../../src/relay-listener.js';
import { RoutingTable } from '../../src/routing-table.js';
import { SniffBudget } from '../../src/sniff-connection.js';
import { createWsTransport } from '../../src/ws-transport.js';

vi.setConfig({ testTimeout: 15_000 });

const SECRET = 'an-end-to-end-secret-that-is-long-enough-42';
let hubCert: CertificateAndKey;
let appCert: CertificateAndKey;
beforeAll(async () => {
  [hubCert, appCert] = await Promise.all([
    createSelfSignedCertificate({ dnsNames: ['hub.test'] }),
    createSelfSignedCertificate({ dnsNames: ['app.example.com'] }),
  ]);
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Node wiring as createNexus does it: relay listener → hub → relay. */
async function startNode(mode: 'tls' | 'http') {
  const routes = new RoutingTable<BackendSession>();
  const hub = new BackendHub({
    tls: new HubTlsContext(hubCert),
    verifyToken: createLocalTokenVerifier({ secrets: [SECRET] }),
    routes,
  });
  const { port: hubPort } = await hub.listen('127.0.0.1');
  cleanups.push(() => hub.close());
  const relayStats: RelayStats[] = [];
  const closes: RelayCloseEvent[] = [];
  let relayPort = 0;
  const listener = createRelayListener({
    host: '127.0.0.1',
    mode,
    budget: new SniffBudget(16),
    onRouted(socket, sniffed) {
      let stream: MuxStream | undefined;
      try {
        stream = hub.openStream(sniffed.hostname, {
          connPort: relayPort,
          clientIp: `${socket.remoteAddress}:${socket.remotePort}`,
          isTls: sniffed.isTls,
        });
      } catch (err) {
        if (LimitError.is(err)) return 'stream-limit';
        throw err;
      }
      if (stream === undefined) return 'no-route';
      relayConnection(socket, stream, { prelude: sniffed.prelude, onClose: (s) => relayStats.push(s) });
    },
    onClose: (e) => closes.push(e),
  });
  relayPort = (await listener.listen()).port;
  cleanups.push(() => listener.close());
  return { hub, routes, hubPort, relayPort, relayStats, closes };
}

/** A minimal backend: MuxSession role 'backend' over ws, each stream piped to a local TCP service. */
async function startBackend(hubPort: number, hostnames: string[], servicePort: number) {
  const ws = new WebSocket(`wss://127.0.0.1:${hubPort}/connect`, {
    ca: hubCert.certPem,
    servername: 'hub.test',
  } as ClientOptions);
  ws.on('error', () => {});
  await once(ws, 'open');
  const transport = createWsTransport(ws);
  const mux = new MuxSession({
    role: 'backend',
    transport,
    pauseTransport: () => transport.pause(),
    resumeTransport: () => transport.resume(),
  });
  transport.onDrain(() => mux.transportDrained());
  ws.on('message', (data: Buffer, isBinary) => isBinary && mux.receive(data));
  ws.on('close', () => mux.close('transport_closed'));
  const connects: unknown[] = [];
  mux.on('stream', (stream, connect) => {
    connects.push(connect);
    const local = netConnect({ host: '127.0.0.1', port: servicePort, allowHalfOpen: true });
    relayConnection(local, stream, { closeOnStreamEnd: true });
  });
  ws.send(await mintBackendToken({ secret: SECRET, hostnames }));
  cleanups.push(() => {
    ws.terminate();
  });
  return { ws, mux, connects };
}

async function serviceOn(server: import('node:net').Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as import('node:net').AddressInfo).port;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('end to end: end user → relay listener → hub → backend → local service', () => {
  it('completes a real TLS handshake with the backend service and echoes 5 MB', async () => {
    const node = await startNode('tls');
    // The backend's local service terminates TLS: the node never does.
    const servicePort = await serviceOn(
      createTlsServer({ cert: appCert.certPem, key: appCert.keyPem }, (s) => s.pipe(s)),
    );
    const connected = once(node.hub, 'backend-connected');
    const backend = await startBackend(node.hubPort, ['app.example.com'], servicePort);
    await connected;

    const client = tlsConnect({
      host: '127.0.0.1',
      port: node.relayPort,
      servername: 'app.example.com',
      ca: appCert.certPem,
    });
    await once(client, 'secureConnect');
    expect(client.authorized).toBe(true);
    const payload = randomBytes(5 * 1024 * 1024);
    const chunks: Buffer[] = [];
    let got = 0;
    const all = new Promise<void>((resolve) =>
      client.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (got >= payload.length) resolve();
      }),
    );
    client.write(payload);
    await all;
    expect(sha(Buffer.concat(chunks))).toBe(sha(payload));
    expect(backend.connects[0]).toMatchObject({
      hostname: 'app.example.com',
      is_tls: true,
      conn_port: node.relayPort,
      client_ip: `127.0.0.1:${client.localPort}`,
    });
    client.end();
    await once(client, 'close');
    await vi.waitFor(() => expect(node.relayStats).toHaveLength(1));
    expect(node.relayStats[0]?.reason).toBe('completed');
  });

  it('relays a 40 KiB HTTP head (prelude over one frame), a half-close, and the full response', async () => {
    const node = await startNode('http');
    const response = randomBytes(1024 * 1024);
    let head = Buffer.alloc(0);
    const servicePort = await serviceOn(
      createNetServer({ allowHalfOpen: true }, (s) => {
        s.on('data', (c: Buffer) => {
          head = Buffer.concat([head, c]);
          // The v1 wire carries no half-close (docs/protocol.md §1.7): respond once the head is complete.
          if (head.subarray(-4).toString() === '\r\n\r\n') s.end(response);
        });
      }),
    );
    const connected = once(node.hub, 'backend-connected');
    await startBackend(node.hubPort, ['*.example.com'], servicePort);
    await connected;

    const request = Buffer.from(
      `GET / HTTP/1.1\r\nHost: api.example.com\r\nX-Big: ${'b'.repeat(40 * 1024)}\r\nConnection: close\r\n\r\n`,
    );
    const client = netConnect({ host: '127.0.0.1', port: node.relayPort, allowHalfOpen: true });
    await once(client, 'connect');
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    client.end(request);
    await once(client, 'end');
    expect(sha(Buffer.concat(chunks))).toBe(sha(response));
    expect(sha(head)).toBe(sha(request));
  });

  it('closes the end user with no-route and without a byte when no backend serves the name', async () => {
    const node = await startNode('tls');
    const client = tlsConnect({ host: '127.0.0.1', port: node.relayPort, servername: 'nobody.example.com' });
    const errored = once(client, 'error');
    let received = 0;
    client.on('data', (c: Buffer) => (received += c.length));
    const [err] = (await errored) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNRESET');
    expect(received).toBe(0);
    await vi.waitFor(() => expect(node.closes.map((c) => c.reason)).toEqual(['no-route']));
  });

  it('ends the end user after delivered bytes when the backend session dies', async () => {
    const node = await startNode('http');
    let serviceSocket: Socket | undefined;
    const servicePort = await serviceOn(
      createNetServer({ allowHalfOpen: true }, (s) => {
        serviceSocket = s;
        s.write('HTTP/1.1 200 OK\r\n\r\npartial');
      }),
    );
    const connected = once(node.hub, 'backend-connected');
    const backend = await startBackend(node.hubPort, ['app.example.com'], servicePort);
    await connected;
    const client = netConnect({ host: '127.0.0.1', port: node.relayPort });
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    client.write('GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
    await vi.waitFor(() => expect(Buffer.concat(chunks).toString()).toContain('partial'));
    expect(serviceSocket).toBeDefined();
    backend.ws.terminate();
    await once(client, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('HTTP/1.1 200 OK\r\n\r\npartial');
    await vi.waitFor(() => expect(node.routes.hasLocal('app.example.com')).toBe(false));
  });
});
