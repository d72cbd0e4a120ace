/**
 * `Nexus.reload()` for the settings that used to need a restart: the mesh's peers, trusted suffixes, CA
 * file and keepalive, the hub's `maxSessions` / `authTimeoutMs` / `maxMessageBytes`, and the relay
 * listeners' `maxConnectionsPerIp` / `maxConcurrentSniffs`. Whole nodes on loopback, certificates from a
 * test CA (DNS name under the node's domain plus IP 127.0.0.1, so peers are dialled by address).
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BackendClient, createBackendClient } from '@nexus-proxy/backend-client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ClientOptions, WebSocket } from 'ws';
import { mintBackendToken } from '../../src/auth.js';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  issueCertificate,
} from '../../src/certificates.js';
import type { NexusConfigInput } from '../../src/config.js';
import { PEER_REMOVED_REASON } from '../../src/mesh.js';
import { createNexus, type Nexus, type NexusEvents, type SniffFailedEvent } from '../../src/nexus.js';
import { waitUntil } from '@nexus-proxy/test-harness';

vi.setConfig({ testTimeout: 20_000, hookTimeout: 20_000 });

const SECRET = 'reload-mesh-secret-0123456789-0123456789';
/** Served by the backend behind B. */
const APP = 'app.test';
/** Reconnect delays of every dialer: a removed peer would be redialled many times within a test. */
const RECONNECT = { initialDelayMs: 20, maxDelayMs: 50, jitter: 0 };

let dir: string;
let ca: CertificateAndKey;
let otherCa: CertificateAndKey;
let service: HttpServer;
let servicePort: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nexus-reload-mesh-'));
  ca = await createCertificateAuthority({ commonName: 'Reload Mesh CA' });
  otherCa = await createCertificateAuthority({ commonName: 'Another CA' });
  service = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 11, connection: 'close' });
    res.end('served by b');
  });
  await new Promise<void>((r) => service.listen(0, '127.0.0.1', r));
  servicePort = (service.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((r) => service.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

const nodes: Nexus[] = [];
const clients: BackendClient[] = [];
const sockets: Array<{ destroy(): void }> = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const c of clients.splice(0)) await c.close({ graceMs: 0 });
  for (const n of nodes.splice(0)) await n.close({ graceMs: 0 });
});

interface TestNode {
  n: Nexus;
  /** The node's configuration with `extra` on top (what a reload would read from the file). */
  config(extra?: Partial<NexusConfigInput>): NexusConfigInput;
  hubPort: number;
  httpPort: number;
  peerUrl: string;
  /** Its peer CA file (rewrite it, then reload). */
  caFile: string;
}

/** A node named `<name>.<domain>` trusting `.mesh.test` and `.other.test` peers of the test CA. */
async function startNode(
  name: string,
  { domain = 'mesh.test', extra = {} }: { domain?: string; extra?: Partial<NexusConfigInput> } = {},
): Promise<TestNode> {
  const cert = await issueCertificate(ca, {
    dnsNames: [`${name}.${domain}`],
    ipAddresses: ['127.0.0.1'],
    serverAuth: true,
    clientAuth: true,
  });
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const caFile = join(dir, `${name}-ca.pem`);
  writeFileSync(certFile, cert.certPem);
  writeFileSync(keyFile, cert.keyPem);
  writeFileSync(caFile, ca.certPem);
  const config = (more: Partial<NexusConfigInput> = {}): NexusConfigInput => ({
    backendListenAddress: '127.0.0.1:0',
    peerListenAddress: '127.0.0.1:0',
    listeners: [{ port: 0, mode: 'http', host: '127.0.0.1' }],
    backendsJWTSecrets: [SECRET],
    hubTlsCertFile: certFile,
    hubTlsKeyFile: keyFile,
    peerAuthentication: { trustedDomainSuffixes: ['.mesh.test', '.other.test'], caFile },
    ...extra,
    ...more,
  });
  const n = createNexus(config(), { mesh: { systemCa: false, reconnect: RECONNECT } });
  nodes.push(n);
  const addresses = await n.listen();
  return {
    n,
    config,
    hubPort: addresses.hub.port,
    httpPort: addresses.listeners[0]!.address.port,
    peerUrl: `wss://127.0.0.1:${addresses.peer!.port}/mesh`,
    caFile,
  };
}

/** Attaches a backend serving `hostname` (relayed to the HTTP service) to a node's hub. */
async function attachBackend(node: TestNode, hostname: string): Promise<void> {
  const client = createBackendClient({
    nodes: [`wss://127.0.0.1:${node.hubPort}/connect`],
    token: await mintBackendToken({ secret: SECRET, hostnames: [hostname] }),
    tls: { ca: ca.certPem },
    connectHandler: () => netConnect(servicePort, '127.0.0.1'),
    reconnect: { initialDelayMs: 5_000, maxDelayMs: 5_000, jitter: 0 },
    closeGraceMs: 0,
  });
  client.on('error', () => {});
  clients.push(client);
  const registered = once(node.n, 'backend-connected');
  client.connect();
  await registered;
}

/** One HTTP request through a relay port; resolves with everything received (`''` when closed unanswered). */
function httpThrough(port: number, host: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1');
    sockets.push(socket);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
    socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  });
}

/** A connection that sends nothing, so it stays sniffing. */
async function silentConnection(port: number): Promise<Socket> {
  const socket = netConnect(port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

function nextEvent<K extends keyof NexusEvents>(n: Nexus, name: K): Promise<NexusEvents[K][0]> {
  return new Promise((resolve) => n.once(name, ((e: NexusEvents[K][0]) => resolve(e)) as never));
}

/** A backend WebSocket to a node's hub (nothing sent yet). */
function hubSocket(node: TestNode): WebSocket {
  const ws = new WebSocket(`wss://127.0.0.1:${node.hubPort}/connect`, {
    ca: ca.certPem,
  } as ClientOptions);
  ws.on('error', () => {});
  sockets.push({ destroy: () => ws.terminate() });
  return ws;
}

function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
}

describe('Nexus.reload: peers', () => {
  it('adds a peer: the link forms and its routes carry traffic', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    await attachBackend(b, APP);
    expect(await httpThrough(a.httpPort, APP)).toBe(''); // no route on A yet

    const learned = new Promise<void>((resolve) => {
      const onRoutes: (e: NexusEvents['routes-changed'][0]) => void = (e) => {
        if (!e.hostnames.includes(APP)) return;
        a.n.off('routes-changed', onRoutes);
        resolve();
      };
      a.n.on('routes-changed', onRoutes);
    });
    expect(await a.n.reload(a.config({ peers: [b.peerUrl] }))).toEqual({
      applied: ['peers'],
      restartRequired: [],
    });
    await learned;
    expect(await httpThrough(a.httpPort, APP)).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*served by b$/);
    expect(a.n.mesh?.links().map((l) => [l.direction, l.peer])).toEqual([['outbound', b.peerUrl]]);
    expect(a.n.config.peers).toEqual([b.peerUrl]);
  });

  it('removes a peer: its link closes, its routes go, and it is not redialled', async () => {
    const b = await startNode('b');
    await attachBackend(b, APP);
    const a = await startNode('a', { extra: { peers: [b.peerUrl] } });
    await waitUntil(() => a.n.routes.lookup(APP)?.kind === 'peer', 5_000, 'the peer route on A');
    expect(await httpThrough(a.httpPort, APP)).toMatch(/served by b$/);
    let linksOnB = 0;
    b.n.on('peer-connected', () => linksOnB++);

    const gone = nextEvent(a.n, 'peer-disconnected');
    const routesGone = nextEvent(a.n, 'routes-changed');
    const result = await a.n.reload(a.config({ peers: [] }));
    expect(result).toEqual({ applied: ['peers'], restartRequired: [] });
    expect((await gone).reason).toBe(PEER_REMOVED_REASON);
    expect((await routesGone).hostnames).toEqual([]);
    expect(a.n.routes.lookup(APP)).toBeUndefined();
    expect(await httpThrough(a.httpPort, APP)).toBe('');
    await waitUntil(() => b.n.mesh?.linkCount === 0, 5_000, 'B to see the link close');
    // Ten reconnect delays later, nobody has dialled B again.
    await new Promise((r) => setTimeout(r, 10 * RECONNECT.maxDelayMs));
    expect(linksOnB).toBe(0);
    expect(a.n.mesh?.linkCount).toBe(0);
    expect(a.n.mesh?.peers).toEqual([]);
  });

  it('keeps the links of peers that stay listed', async () => {
    const b = await startNode('b');
    const c = await startNode('c');
    const a = await startNode('a', { extra: { peers: [b.peerUrl] } });
    await waitUntil(() => a.n.mesh?.linkCount === 1, 5_000, 'the A–B link');
    const [before] = a.n.mesh?.links() ?? [];
    const toC = nextEvent(c.n, 'peer-connected');
    await a.n.reload(a.config({ peers: [c.peerUrl, b.peerUrl] }));
    await toC;
    await waitUntil(() => a.n.mesh?.linkCount === 2, 5_000, 'the A–C link');
    expect(a.n.mesh?.links().find((l) => l.peer === b.peerUrl)?.linkId).toBe(before?.linkId);
  });
});

describe('Nexus.reload: peer trust', () => {
  it('refuses a new peer outside tightened suffixes while the existing link stays', async () => {
    const a = await startNode('a');
    const connected = nextEvent(a.n, 'peer-connected');
    const b = await startNode('b', { domain: 'other.test' });
    await attachBackend(b, APP);
    await b.n.reload(b.config({ peers: [a.peerUrl] }));
    expect((await connected).peer).toBe('b.other.test');
    await waitUntil(() => a.n.routes.lookup(APP)?.kind === 'peer', 5_000, 'the peer route on A');

    const result = await a.n.reload(
      a.config({ peerAuthentication: { trustedDomainSuffixes: ['.mesh.test'], caFile: a.caFile } }),
    );
    expect(result).toEqual({ applied: ['peerAuthentication.trustedDomainSuffixes'], restartRequired: [] });
    expect(a.n.mesh?.trustedDomainSuffixes).toEqual(['mesh.test']);

    const refused = nextEvent(a.n, 'peer-refused');
    await startNode('c', { domain: 'other.test', extra: { peers: [a.peerUrl] } });
    expect((await refused).reason).toMatch(/match no trusted domain suffix/);
    // The link B made before the change still carries routes and traffic.
    expect(a.n.mesh?.links().map((l) => l.peer)).toEqual(['b.other.test']);
    expect(await httpThrough(a.httpPort, APP)).toMatch(/served by b$/);
  });

  it('re-reads the CA file: a peer of a CA no longer trusted is refused, the existing link stays', async () => {
    const a = await startNode('a');
    const connected = nextEvent(a.n, 'peer-connected');
    await startNode('b', { extra: { peers: [a.peerUrl] } });
    await connected;

    writeFileSync(a.caFile, otherCa.certPem); // same path, new contents
    expect(await a.n.reload(a.config())).toEqual({
      applied: ['peerAuthentication.caFile'],
      restartRequired: [],
    });
    const refused = nextEvent(a.n, 'peer-refused');
    await startNode('c', { extra: { peers: [a.peerUrl] } });
    expect((await refused).reason).toBe('untrusted certificate chain');
    expect(a.n.mesh?.links().map((l) => l.peer)).toEqual(['b.mesh.test']);
  });

  it('rejects an unreadable CA file and changes nothing', async () => {
    const a = await startNode('a');
    const missing = join(dir, 'missing-ca.pem');
    await expect(
      a.n.reload(
        a.config({
          backendsJWTSecrets: ['another-secret-0123456789-0123456789-0123'],
          peerAuthentication: { trustedDomainSuffixes: ['.mesh.test'], caFile: missing },
        }),
      ),
    ).rejects.toMatchObject({ code: 'NEXUS_ERR_TLS' });
    expect(a.n.config.backendsJWTSecrets).toEqual([SECRET]);
    expect(a.n.mesh?.trustedDomainSuffixes).toEqual(['mesh.test', 'other.test']);
  });

  it('applies peer keepalive to the open links, and the idle timeout', async () => {
    const b = await startNode('b');
    const a = await startNode('a', { extra: { peers: [b.peerUrl] } });
    await waitUntil(() => a.n.mesh?.linkCount === 1 && b.n.mesh?.linkCount === 1, 5_000, 'the A–B link');
    // Both nodes ping every 54 s by default: any ping within the next seconds comes from the new setting.
    const ping = vi.spyOn(WebSocket.prototype, 'ping');
    try {
      const result = await a.n.reload(
        a.config({
          peers: [b.peerUrl],
          keepalive: { peerPingIntervalMs: 100, peerDeadAfterMs: 1_000 },
          idleTimeoutSeconds: 30,
        }),
      );
      expect(result).toEqual({
        applied: ['idleTimeoutSeconds', 'keepalive.peerPingIntervalMs', 'keepalive.peerDeadAfterMs'],
        restartRequired: [],
      });
      await waitUntil(() => ping.mock.calls.length >= 3, 3_000, 'pings at the new interval');
    } finally {
      ping.mockRestore();
    }
    expect(a.n.mesh?.linkCount).toBe(1);
  });
});

describe('Nexus.reload: hub limits', () => {
  it('refuses further backends with 503 once maxSessions is lowered, and accepts them once raised', async () => {
    const a = await startNode('a');
    await attachBackend(a, 'one.test');
    expect(await a.n.reload(a.config({ limits: { maxSessions: 1 } }))).toEqual({
      applied: ['limits.maxSessions'],
      restartRequired: [],
    });
    const ws = hubSocket(a);
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(res.statusCode).toBe(503);
    expect(a.n.hub.sessions).toHaveLength(1); // nothing open is cut

    await a.n.reload(a.config({ limits: { maxSessions: 2 } }));
    await attachBackend(a, 'two.test');
    expect(a.n.hub.sessions).toHaveLength(2);
  });

  it('applies authTimeoutMs and maxMessageBytes to new backends', async () => {
    const a = await startNode('a');
    // After the token (which may be larger, up to auth.maxTokenBytes), 40 000 bytes is over the default
    // maxMessageBytes (32 785): closed with 1009.
    const token = await mintBackendToken({ secret: SECRET, hostnames: ['big.example.com'] });
    const big = Buffer.alloc(40_000, 0x7f); // an unknown frame type, ignored once read
    const first = hubSocket(a);
    await once(first, 'open');
    const firstClosed = closeOf(first);
    first.send(token);
    first.send(big);
    expect((await firstClosed).code).toBe(1009);

    const result = await a.n.reload(a.config({ limits: { maxMessageBytes: 65_536, authTimeoutMs: 200 } }));
    expect(result.applied.sort()).toEqual(['limits.authTimeoutMs', 'limits.maxMessageBytes']);
    // Now it is read (and ignored): the session stays.
    const second = hubSocket(a);
    await once(second, 'open');
    second.send(token);
    second.send(big);
    await waitUntil(() => a.n.hub.sessions.length === 1, 5_000, 'the second backend registered');
    second.ping();
    await once(second, 'pong');
    expect(second.readyState).toBe(WebSocket.OPEN);
    // A backend that sends nothing is closed after the new 200 ms, not the default 10 s.
    const silent = hubSocket(a);
    await once(silent, 'open');
    const started = Date.now();
    expect(await closeOf(silent)).toEqual({ code: 1008, reason: 'authentication timeout' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe('Nexus.reload: relay limits', () => {
  it('changes maxConnectionsPerIp and maxConcurrentSniffs for new connections', async () => {
    const a = await startNode('a');
    const failures: SniffFailedEvent[] = [];
    a.n.on('sniff-failed', (e) => failures.push(e));

    expect((await a.n.reload(a.config({ limits: { maxConnectionsPerIp: 1 } }))).applied).toEqual([
      'limits.maxConnectionsPerIp',
    ]);
    await silentConnection(a.httpPort); // holds the one allowed connection (and one sniff slot)
    await silentConnection(a.httpPort);
    await waitUntil(() => failures.length === 1, 5_000, 'the per-IP refusal');
    expect(failures[0]?.reason).toBe('ip-limit');

    // Per-IP limit off, one sniff at a time: the silent connection holds the only slot.
    const result = await a.n.reload(a.config({ limits: { maxConnectionsPerIp: 0, maxConcurrentSniffs: 1 } }));
    expect(result.applied.sort()).toEqual(['limits.maxConcurrentSniffs', 'limits.maxConnectionsPerIp']);
    await silentConnection(a.httpPort);
    await waitUntil(() => failures.length === 2, 5_000, 'the over-budget refusal');
    expect(failures[1]?.reason).toBe('over-budget');

    // Two slots: a new connection is sniffed (and, with no route, closed as such).
    await a.n.reload(a.config({ limits: { maxConnectionsPerIp: 0, maxConcurrentSniffs: 2 } }));
    expect(await httpThrough(a.httpPort, 'nowhere.test')).toBe('');
    await waitUntil(() => failures.length === 3, 5_000, 'the route miss');
    expect(failures[2]?.reason).toBe('no-route');
  });
});
