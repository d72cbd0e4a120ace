import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import {
  encodeControlMessage,
  encodeDataFrame,
  FrameType,
  MuxSession,
  type MuxStream,
  normalizeStreamId,
} from '@nexus-proxy/mux-protocol';
import { SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ClientOptions, WebSocket } from 'ws';
import { mintBackendToken, createLocalTokenVerifier } from '../../src/auth.js';
import type { BackendSession } from '../../src/backend-session.js';
import { type CertificateAndKey, createSelfSignedCertificate } from '../../src/certificates.js';
import { AuthError, LimitError } from '../../src/errors.js';
import { type BackendDisconnectedEvent, BackendHub, type BackendHubOptions } from '../../src/hub.js';
import { HubTlsContext } from '../../src/hub-tls.js';
import { RoutingTable } from '../../src/routing-table.js';
import { createWsTransport } from '../../src/ws-transport.js';

vi.setConfig({ testTimeout: 10_000 });

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
let cert: CertificateAndKey;
beforeAll(async () => {
  cert = await createSelfSignedCertificate({ dnsNames: ['hub.test'] });
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startHub(overrides: Partial<BackendHubOptions> = {}) {
  const routes = new RoutingTable<BackendSession>();
  const hub = new BackendHub({
    tls: new HubTlsContext(cert),
    verifyToken: createLocalTokenVerifier({ secrets: [SECRET] }),
    routes,
    ...overrides,
  });
  const { port } = await hub.listen('127.0.0.1', 0);
  cleanups.push(() => hub.close());
  return { hub, routes, port };
}

function openWs(port: number, path = '/connect'): WebSocket {
  const ws = new WebSocket(`wss://127.0.0.1:${port}${path}`, {
    ca: cert.certPem,
    servername: 'hub.test',
  } as ClientOptions);
  ws.on('error', () => {});
  let refused = false;
  ws.on('unexpected-response', (_req, res) => {
    refused = true;
    res.resume();
  });
  cleanups.push(() => {
    if (!refused && ws.readyState !== WebSocket.CLOSED) {
      ws.terminate();
      return once(ws, 'close').then(() => undefined);
    }
  });
  return ws;
}

async function connectBackend(port: number, token: string | Buffer): Promise<WebSocket> {
  const ws = openWs(port);
  await once(ws, 'open');
  ws.send(token);
  return ws;
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve({ code: 1006, reason: '' });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

const token = (hostnames: string[], weight?: number) =>
  mintBackendToken({ secret: SECRET, hostnames, weight });

/** A minimal backend: a MuxSession (role backend) over the client WebSocket. */
function backendMux(ws: WebSocket, onStream: (stream: MuxStream) => void): MuxSession {
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
  mux.on('stream', (stream) => onStream(stream));
  return mux;
}

/** Reads a Readable to its end and returns the SHA-256 of what it delivered, and its length. */
async function drain(stream: MuxStream): Promise<{ sha: string; length: number }> {
  const hash = createHash('sha256');
  let length = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    length += (chunk as Buffer).length;
  }
  return { sha: hash.digest('hex'), length };
}

describe('BackendHub authentication', () => {
  it('registers a backend with a good token in every pool it claims, with its weight', async () => {
    const { hub, routes, port } = await startHub();
    const connected = once(hub, 'backend-connected');
    await connectBackend(port, await token(['app.example.com', '*.apps.example.com'], 3));
    const [ev] = await connected;
    expect(ev).toMatchObject({ hostnames: ['app.example.com', '*.apps.example.com'], weight: 3 });
    expect(ev.remoteAddress).toBe('127.0.0.1');
    expect(routes.hasLocal('app.example.com')).toBe(true);
    expect(routes.hasLocal('x.apps.example.com')).toBe(true);
    expect(routes.localPool('app.example.com')?.stats().members[0]?.weight).toBe(3);
    expect(hub.sessions).toHaveLength(1);
  });

  it('accepts the token in a binary frame', async () => {
    const { hub, routes, port } = await startHub();
    const connected = once(hub, 'backend-connected');
    await connectBackend(port, Buffer.from(await token(['bin.example.com'])));
    await connected;
    expect(routes.hasLocal('bin.example.com')).toBe(true);
  });

  it.each([
    [
      'a wrong key',
      () =>
        mintBackendToken({ secret: 'another-secret-that-is-long-enough-xyz', hostnames: ['a.example.com'] }),
    ],
    [
      'alg none',
      async () =>
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"hostnames":["a.example.com"]}').toString('base64url')}.`,
    ],
    [
      'an expired token',
      () =>
        new SignJWT({ hostnames: ['a.example.com'] })
          .setProtectedHeader({ alg: 'HS256' })
          .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
          .sign(new TextEncoder().encode(SECRET)),
    ],
    ['garbage', async () => 'not a token'],
  ])('closes with 1008 and a reason for %s', async (_name, make) => {
    const { hub, routes, port } = await startHub();
    const failed = once(hub, 'auth-failed');
    const ws = await connectBackend(port, await make());
    const { code, reason } = await closed(ws);
    expect(code).toBe(1008);
    expect(reason.length).toBeGreaterThan(0);
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(123);
    const [ev] = await failed;
    expect(ev.reason).toBe(reason);
    expect(routes.localPatterns()).toEqual([]);
  });

  it('truncates a long close reason to 123 bytes without splitting a character', async () => {
    const { port } = await startHub({
      verifyToken: async () => {
        const err = new AuthError('x');
        Object.defineProperty(err, 'reason', { value: 'é'.repeat(200) });
        throw err;
      },
    });
    const ws = await connectBackend(port, 'whatever');
    const { code, reason } = await closed(ws);
    expect(code).toBe(1008);
    expect(reason).toBe('é'.repeat(61));
  });

  it('closes a backend that sends no token within authTimeoutMs', async () => {
    const { hub, port } = await startHub({ limits: { authTimeoutMs: 150 } });
    const failed = once(hub, 'auth-failed');
    const t0 = Date.now(); // before the hub starts its token timer
    const ws = openWs(port);
    await once(ws, 'open');
    const { code, reason } = await closed(ws);
    expect(code).toBe(1008);
    expect(reason).toBe('authentication timeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
    expect((await failed)[0].reason).toBe('authentication timeout');
  });

  it('answers 404 on other paths and 426 to a plain request on /connect', async () => {
    const { port } = await startHub();
    const ws = openWs(port, '/other');
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(res.statusCode).toBe(404);
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port, path: '/connect', ca: cert.certPem, servername: 'hub.test' },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(426);
  });

  it('refuses upgrades beyond maxSessions with 503', async () => {
    const { hub, port } = await startHub({ limits: { maxSessions: 1 } });
    const connected = once(hub, 'backend-connected');
    await connectBackend(port, await token(['one.example.com']));
    await connected;
    const ws = openWs(port);
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(res.statusCode).toBe(503);
  });
});

describe('BackendHub sessions', () => {
  it('closes a session that sends an oversize message (1009) and leaves the others untouched', async () => {
    const { hub, routes, port } = await startHub();
    const c1 = once(hub, 'backend-connected');
    const good = await connectBackend(port, await token(['shared.example.com']));
    await c1;
    const c2 = once(hub, 'backend-connected');
    const bad = await connectBackend(port, await token(['shared.example.com', 'bad.example.com']));
    const [badEv] = await c2;
    const gone = new Promise<BackendDisconnectedEvent>((r) => hub.once('backend-disconnected', r));
    bad.send(Buffer.alloc(32_786, 1));
    const { code } = await closed(bad);
    expect(code).toBe(1009);
    const ev = await gone;
    expect(ev).toMatchObject({ id: badEv.id, reason: 'message-too-big' });
    expect(routes.hasLocal('bad.example.com')).toBe(false);
    expect(routes.localPool('shared.example.com')?.size).toBe(1);
    expect(good.readyState).toBe(WebSocket.OPEN);
    // The remaining backend still gets streams.
    const streams: MuxStream[] = [];
    backendMux(good, (s) => streams.push(s));
    const stream = hub.openStream('shared.example.com', {
      connPort: 443,
      clientIp: '192.0.2.1:5000',
      isTls: true,
    });
    expect(stream).toBeDefined();
    await vi.waitFor(() => expect(streams).toHaveLength(1));
    expect(streams[0]?.connect).toMatchObject({
      hostname: 'shared.example.com',
      conn_port: 443,
      is_tls: true,
    });
    stream?.destroy();
  });

  it('terminates a session whose backend stops answering pings', async () => {
    const { hub, routes, port } = await startHub({
      keepalive: { hubPingIntervalMs: 50, hubDeadAfterMs: 250 },
    });
    const connected = once(hub, 'backend-connected');
    const ws = await connectBackend(port, await token(['dead.example.com']));
    await connected;
    // Stay alive for a while: pongs keep the session up past the deadline.
    await new Promise((r) => setTimeout(r, 400));
    expect(routes.hasLocal('dead.example.com')).toBe(true);
    // Black-hole: the client stops reading, so it answers no ping.
    const t0 = Date.now();
    (ws as unknown as { _socket: Socket })._socket.pause();
    const [ev] = (await once(hub, 'backend-disconnected')) as [BackendDisconnectedEvent];
    expect(ev.reason).toBe('keepalive-timeout');
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(routes.hasLocal('dead.example.com')).toBe(false);
  });

  it('closes a session that floods control messages with 1008 (control-rate)', async () => {
    const { hub, routes, port } = await startHub({ limits: { maxControlMessagesPerSecond: 5 } });
    const connected = once(hub, 'backend-connected');
    const ws = await connectBackend(port, await token(['flood.example.com']));
    await connected;
    const gone = new Promise<BackendDisconnectedEvent>((r) => hub.once('backend-disconnected', r));
    const ping = Buffer.from(
      `\x02{"event":"ping_client","client_id":"${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}"}`,
    );
    for (let i = 0; i < 10; i++) ws.send(ping);
    const { code, reason } = await closed(ws);
    expect(code).toBe(1008);
    expect(reason).toBe('control-rate');
    expect((await gone).reason).toBe('control-rate');
    expect(routes.hasLocal('flood.example.com')).toBe(false);
  });

  it('returns undefined on a route miss and throws LimitError past maxStreamsPerSession', async () => {
    const { hub, port } = await startHub({ limits: { maxStreamsPerSession: 1 } });
    const connected = once(hub, 'backend-connected');
    const ws = await connectBackend(port, await token(['limited.example.com']));
    await connected;
    backendMux(ws, () => {});
    expect(
      hub.openStream('nobody.example.com', { connPort: 443, clientIp: '1.2.3.4:1', isTls: true }),
    ).toBeUndefined();
    const first = hub.openStream('limited.example.com', {
      connPort: 443,
      clientIp: '1.2.3.4:1',
      isTls: true,
    });
    expect(first).toBeDefined();
    expect(() =>
      hub.openStream('limited.example.com', { connPort: 443, clientIp: '1.2.3.4:2', isTls: true }),
    ).toThrow(LimitError);
    first?.destroy();
  });

  it('spreads streams over the pool by weight', async () => {
    const { hub, port } = await startHub();
    const counts = [0, 0];
    for (const [i, w] of [1, 3].entries()) {
      const connected = once(hub, 'backend-connected');
      const ws = await connectBackend(port, await token(['pool.example.com'], w));
      await connected;
      backendMux(ws, (s) => {
        counts[i]!++;
        s.destroy();
      });
    }
    for (let i = 0; i < 8; i++)
      hub.openStream('pool.example.com', { connPort: 80, clientIp: '1.2.3.4:1', isTls: false });
    await vi.waitFor(() => expect(counts[0]! + counts[1]!).toBe(8));
    expect(counts).toEqual([2, 6]);
  });

  it('ends every stream of a session when the backend goes away, after the delivered bytes', async () => {
    const { hub, routes, port } = await startHub();
    const connected = once(hub, 'backend-connected');
    const ws = await connectBackend(port, await token(['gone.example.com']));
    await connected;
    backendMux(ws, (s) => {
      s.write('partial response');
      // The backend dies right after writing.
      setImmediate(() => ws.terminate());
    });
    const stream = hub.openStream('gone.example.com', { connPort: 80, clientIp: '1.2.3.4:1', isTls: false })!;
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    await once(stream, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('partial response');
    await vi.waitFor(() => expect(routes.hasLocal('gone.example.com')).toBe(false));
    expect(hub.sessions).toHaveLength(0);
  });

  it('close() ends sessions with 1001 and stops listening', async () => {
    const routes = new RoutingTable<BackendSession>();
    const hub = new BackendHub({
      tls: { cert: cert.certPem, key: cert.keyPem },
      verifyToken: createLocalTokenVerifier({ secrets: [SECRET] }),
      routes,
    });
    const { port } = await hub.listen('127.0.0.1');
    const connected = once(hub, 'backend-connected');
    const ws = await connectBackend(port, await token(['bye.example.com']));
    await connected;
    const wsClosed = closed(ws);
    await hub.close();
    expect((await wsClosed).code).toBe(1001);
    expect(routes.localPatterns()).toEqual([]);
    const refused = netConnect({ host: '127.0.0.1', port });
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');
  });
});

describe('hub keepalive while the hub itself holds the backend transport paused', () => {
  it('does not terminate a v1 backend whose session the hub paused for a slow end user', async () => {
    const { hub, port } = await startHub({ keepalive: { hubPingIntervalMs: 50, hubDeadAfterMs: 300 } });
    const connected = once(hub, 'backend-connected');
    const ws = await connectBackend(port, await token(['v1.example.com']));
    await connected;
    const disconnects: BackendDisconnectedEvent[] = [];
    hub.on('backend-disconnected', (e) => disconnects.push(e));

    // A v1 backend: it ignores `connect.credits`, never grants, and answers with 4 MiB unmetered.
    const payload = Buffer.alloc(32_768);
    const expected = createHash('sha256');
    const frames = 128;
    for (let i = 0; i < frames; i++) {
      payload.fill(i & 0xff);
      expected.update(payload);
    }
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary || data[0] !== FrameType.Control) return;
      const message = JSON.parse(data.subarray(1).toString('utf8')) as { event: string; client_id: string };
      if (message.event !== 'connect') return;
      const id = normalizeStreamId(message.client_id)!;
      for (let i = 0; i < frames; i++) ws.send(encodeDataFrame(id, Buffer.alloc(32_768, i & 0xff)));
      ws.send(encodeControlMessage({ event: 'disconnect', client_id: id, reason: 'normal' }));
    });

    const stream = hub.openStream('v1.example.com', {
      connPort: 443,
      clientIp: '192.0.2.7:4000',
      isTls: true,
    });
    expect(stream).toBeDefined();
    // The end user does not read for three dead-after periods: the hub pauses the WebSocket (§1.5).
    await vi.waitFor(() => expect(hub.sessions[0]?.stats().transportPaused).toBe(true), { timeout: 5_000 });
    await new Promise((r) => setTimeout(r, 1_000));
    // A slow end user is not a dead backend: the session (and every other stream on it) must survive.
    expect(disconnects).toEqual([]);
    expect(hub.sessions).toHaveLength(1);
    // And once the end user reads, every byte arrives.
    const got = await drain(stream!);
    expect(got.length).toBe(frames * 32_768);
    expect(got.sha).toBe(expected.digest('hex'));
  });
});
