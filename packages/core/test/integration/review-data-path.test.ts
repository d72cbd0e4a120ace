/**
 * Review findings on the data path: each test reproduces one bug found by reading the code.
 */
import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import {
  encodeControlMessage,
  encodeDataFrame,
  encodeTunnelFrame,
  FrameType,
  type MuxStream,
  normalizeStreamId,
} from '@nexus-proxy/mux-protocol';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ClientOptions, WebSocket, WebSocketServer } from 'ws';
import { mintBackendToken, verifyBackendToken } from '../../src/auth.js';
import type { BackendSession } from '../../src/backend-session.js';
import { type CertificateAndKey, createSelfSignedCertificate } from '../../src/certificates.js';
import { type BackendDisconnectedEvent, BackendHub, type BackendHubOptions } from '../../src/hub.js';
import { HubTlsContext } from '../../src/hub-tls.js';
import { PeerLink } from '../../src/peer-link.js';
import { RoutingTable } from '../../src/routing-table.js';

vi.setConfig({ testTimeout: 15_000 });

const SECRET = 'a-review-secret-that-is-long-enough-0123456789';
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
    authenticate: (token) => verifyBackendToken(token, { secrets: [SECRET] }),
    routes,
    ...overrides,
  });
  const { port } = await hub.listen('127.0.0.1', 0);
  cleanups.push(() => hub.close());
  return { hub, routes, port };
}

async function connectBackend(port: number, hostnames: string[]): Promise<WebSocket> {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/connect`, {
    ca: cert.certPem,
    servername: 'hub.test',
  } as ClientOptions);
  ws.on('error', () => {});
  cleanups.push(() => {
    if (ws.readyState !== WebSocket.CLOSED) {
      ws.terminate();
      return once(ws, 'close').then(() => undefined);
    }
  });
  await once(ws, 'open');
  ws.send(await mintBackendToken({ secret: SECRET, hostnames }));
  return ws;
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

describe('hub keepalive while the hub itself holds the backend transport paused', () => {
  it('does not terminate a v1 backend whose session the hub paused for a slow end user', async () => {
    const { hub, port } = await startHub({ keepalive: { hubPingIntervalMs: 50, hubDeadAfterMs: 300 } });
    const connected = once(hub, 'backend-connected');
    const ws = await connectBackend(port, ['v1.example.com']);
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

/** Just enough of a `ws` WebSocket for a PeerLink; while paused, the test delivers nothing (as ws). */
class FakeWebSocket extends EventEmitter {
  readyState = 1;
  bufferedAmount = 0;
  pings = 0;
  paused = false;
  send(_data: unknown, _options: { binary?: boolean }, cb?: () => void): void {
    cb?.();
  }
  ping(): void {
    this.pings++;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  close(code: number, reason: string): void {
    this.readyState = 3;
    this.emit('close', code, Buffer.from(reason));
  }
  terminate(): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.emit('close', 1006, Buffer.alloc(0));
  }
}

describe('peer link keepalive while the link itself holds reads paused', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('does not drop a link it paused for a slow tunnel reader, and still detects a dead one after', () => {
    vi.useFakeTimers();
    const ws = new FakeWebSocket();
    const link = new PeerLink(ws as unknown as WebSocket, {
      id: 'out-1',
      direction: 'outbound',
      peer: 'wss://b.mesh.example.com/mesh',
      keepaliveIntervalMs: 1_000,
      keepaliveTimeoutMs: 3_000,
    });
    const closes: string[] = [];
    link.on('close', (r) => closes.push(r));
    const tunnel = link.tunnels.open({
      connPort: 443,
      clientIp: '192.0.2.1:1234',
      hostname: 'app.example.com',
      isTls: true,
    })!;
    // A reference destination that never grants (§2.3 credits are opt-in) answers with 4 MiB; the end
    // user behind the tunnel does not read yet, so the link pauses its reads.
    for (let i = 0; i < 128; i++) {
      const frame = encodeTunnelFrame({
        type: 'tunnel-data',
        tunnelId: tunnel.id,
        payload: Buffer.alloc(32_768, i),
      });
      ws.emit('message', Buffer.from(frame), true);
    }
    expect(ws.paused).toBe(true);
    // Paused by us: the peer's pongs cannot be read, which is not the peer's fault.
    vi.advanceTimersByTime(10_000);
    expect(closes).toEqual([]);
    expect(link.closed).toBe(false);
    // The reader catches up: reads resume, and from then on a silent peer is detected again.
    let bytes = 0;
    for (let chunk = tunnel.read(); chunk !== null; chunk = tunnel.read()) bytes += (chunk as Buffer).length;
    expect(bytes).toBe(128 * 32_768);
    expect(ws.paused).toBe(false);
    vi.advanceTimersByTime(3_000);
    expect(closes).toEqual(['keepalive_timeout']);
  });
});

describe('peer link close reason', () => {
  it('fits a multi-byte reason into the 123-byte close frame instead of throwing', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())));
    await once(wss, 'listening');
    const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`);
    client.on('error', () => {});
    cleanups.push(() => client.terminate());
    const [[server]] = await Promise.all([accepted, once(client, 'open')]);
    const link = new PeerLink(server, { id: 'in-1', direction: 'inbound', peer: 'b.mesh.example.com' });
    const gotClose = new Promise<{ code: number; reason: Buffer }>((r) =>
      client.once('close', (code, reason) => r({ code, reason })),
    );
    // 100 × 'é' is 200 bytes of UTF-8 but only 100 UTF-16 units.
    expect(() => link.close('é'.repeat(100))).not.toThrow();
    const { code, reason } = await gotClose;
    expect(code).toBe(1001);
    expect(reason.length).toBeLessThanOrEqual(123);
    expect(reason.toString('utf8')).toBe('é'.repeat(61));
  });
});
