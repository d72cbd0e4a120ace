import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type BackendClient, createBackendClient } from '../../src/backend-client.js';
import type { BackendClientOptions } from '../../src/client-options.js';
import type { DisconnectedEvent, StreamCloseEvent } from '../../src/node-connection.js';
import { resolvePortMappings } from '../../src/port-mappings.js';
import { closedPort, startLocalService, waitFor } from './helpers.js';
import { MuxHub, makeCertificate, TestHub } from './test-hub.js';

const cert = makeCertificate();
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  vi.useRealTimers();
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function startHub(options: { autoPong?: boolean } = {}): Promise<TestHub> {
  const hub = await TestHub.start(cert, options);
  cleanups.push(() => hub.close());
  return hub;
}

function client(hub: { url: string }, options: Partial<BackendClientOptions>): BackendClient {
  const c = createBackendClient({
    nodes: [hub.url],
    token: 'token',
    tls: { ca: cert.cert },
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    closeGraceMs: 0,
    ...options,
  } as BackendClientOptions);
  cleanups.push(() => c.close());
  return c;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('BackendClient session lifecycle', () => {
  it('drops a black-holed hub after the keepalive timeout and reconnects', async () => {
    const hub = await startHub({ autoPong: false }); // answers no ping, sends nothing
    const c = client(hub, {
      portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }),
      keepalive: { intervalMs: 40, timeoutMs: 150 },
    });
    const disconnected = once(c, 'disconnected');
    const started = Date.now();
    c.connect();
    const first = await hub.connection(0);
    await first.token;
    const [event] = (await disconnected) as [DisconnectedEvent];
    const elapsed = Date.now() - started;
    expect(event).toMatchObject({ reason: 'keepalive_timeout', code: 1006 });
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(2_000);
    await hub.connection(1); // and it came back
  });

  it('keeps a quiet session whose hub answers pings', async () => {
    const hub = await startHub();
    const c = client(hub, {
      portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }),
      keepalive: { intervalMs: 30, timeoutMs: 100 },
    });
    const disconnects: unknown[] = [];
    c.on('disconnected', (e) => disconnects.push(e));
    c.connect();
    await (await hub.connection(0)).token;
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(disconnects).toEqual([]);
    expect(hub.connections).toHaveLength(1);
  });

  it('waits out the jittered exponential backoff between attempts (fake timers)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const port = await closedPort();
    let attempts = 0;
    const c = client(
      { url: `wss://127.0.0.1:${port}/connect` },
      {
        token: () => {
          attempts++;
          return 'token';
        },
        reconnect: { initialDelayMs: 1_000, maxDelayMs: 4_000, factor: 2, jitter: 0 },
        portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }),
      },
    );
    c.on('error', () => {});
    const expectedDelays = [1_000, 2_000, 4_000, 4_000];
    let failed = once(c, 'error');
    c.connect();
    for (const delay of expectedDelays) {
      await failed;
      const before = attempts;
      failed = once(c, 'error');
      vi.advanceTimersByTime(delay - 1);
      expect(attempts).toBe(before);
      vi.advanceTimersByTime(1);
      expect(attempts).toBe(before + 1);
    }
    await failed;
  });

  it('pauses a v1 session behind a stalled local service without losing bytes or the session', async () => {
    const hub = await startHub();
    const received: Buffer[] = [];
    let gotAll!: () => void;
    const all = new Promise<void>((resolve) => {
      gotAll = resolve;
    });
    const total = 16 * 1024 * 1024;
    let count = 0;
    const service = await startLocalService((socket) => {
      socket.pause(); // stall well past the keepalive timeout
      setTimeout(() => {
        socket.on('data', (chunk: Buffer) => {
          received.push(chunk);
          count += chunk.length;
          if (count >= total) gotAll();
        });
        socket.resume();
      }, 2_500); // > 64 pings at 30 ms: a ws hub would drop a client that kept pinging while paused
    });
    cleanups.push(() => service.close());
    const c = client(hub, {
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
      // Pings every 30 ms (more than 64 during the stall); a generous deadline so a loaded machine does not
      // turn scheduling delays into a keepalive failure.
      keepalive: { intervalMs: 30, timeoutMs: 1_000 },
    });
    const disconnects: unknown[] = [];
    c.on('disconnected', (e) => disconnects.push(e));
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream(); // no credits: a v1 hub, backpressure by pausing the WebSocket
    const upload = randomBytes(total);
    for (let offset = 0; offset < total; offset += 32_768)
      stream.write(upload.subarray(offset, offset + 32_768));
    await all;
    expect(sha256(Buffer.concat(received))).toBe(sha256(upload));
    expect(disconnects).toEqual([]);
  }, 40_000);

  it('closes an idle stream with reason timeout when pong_client does not come', async () => {
    const hub = await startHub();
    const service = await startLocalService((socket) => socket.resume());
    cleanups.push(() => service.close());
    const c = client(hub, {
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
      healthChecks: { enabled: true, inactivityTimeoutMs: 100, pongTimeoutMs: 100 },
    });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    conn.answerPings = false;
    const closed = once(c, 'stream-close');
    const stream = conn.openStream();
    stream.write('hello');
    const [event] = (await closed) as [StreamCloseEvent];
    expect(event).toMatchObject({ id: stream.id, reason: 'timeout', bytesIn: 5 });
    expect((await stream.disconnected()).reason).toBe('timeout');
    expect(stream.timeline).toEqual(['ping_client', 'disconnect']);
    await waitFor(() => service.sockets[0]?.destroyed === true || service.sockets[0]?.readableEnded === true);
  });

  it('keeps an idle stream whose hub answers pong_client', async () => {
    const hub = await startHub();
    const service = await startLocalService((socket) => socket.resume());
    cleanups.push(() => service.close());
    const c = client(hub, {
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
      healthChecks: { enabled: true, inactivityTimeoutMs: 60, pongTimeoutMs: 60 },
    });
    const closes: unknown[] = [];
    c.on('stream-close', (e) => closes.push(e));
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream();
    stream.write('hello');
    await waitFor(
      () => stream.controls.filter((m) => m.event === 'ping_client').length >= 3,
      3_000,
      'three pings',
    );
    expect(closes).toEqual([]);
    expect(stream.controls.every((m) => m.event === 'ping_client')).toBe(true);
  });

  it('close() lets an in-flight response finish, then closes the session with 1000', async () => {
    const hub = await startHub();
    const body = randomBytes(100_000);
    const service = await startLocalService((socket) => {
      socket.once('data', () => setTimeout(() => socket.end(body), 100));
    });
    cleanups.push(() => service.close());
    const c = client(hub, { portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }) });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const wsClosed = once(conn.ws, 'close');
    const stream = conn.openStream();
    stream.write('GET / HTTP/1.1\r\n\r\n');
    await waitFor(() => service.sockets.length === 1);
    await c.close({ graceMs: 3_000 });
    expect((await stream.disconnected()).reason).toBe('normal');
    expect(sha256(stream.data)).toBe(sha256(body));
    const [code] = await wsClosed;
    expect(code).toBe(1000);
    expect(c.stats().nodes[0]!.state).toBe('closed');
  });

  it('close() cuts streams that outlive the grace with reason shutdown', async () => {
    const hub = await startHub();
    const service = await startLocalService((socket) => socket.resume()); // reads, never answers
    cleanups.push(() => service.close());
    const c = client(hub, { portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }) });
    const closes: StreamCloseEvent[] = [];
    c.on('stream-close', (e) => closes.push(e));
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream();
    stream.write('hello');
    await waitFor(() => service.sockets.length === 1);
    const started = Date.now();
    await c.close({ graceMs: 150 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(closes).toMatchObject([{ id: stream.id, reason: 'shutdown' }]);
    await waitFor(() => service.sockets[0]!.destroyed || service.sockets[0]!.readableEnded);
  });

  it('close() leaves no socket or timer behind', async () => {
    const hub = await startHub();
    const service = await startLocalService((socket) => socket.pipe(socket));
    cleanups.push(() => service.close());
    const count = (): Record<string, number> => {
      const counts: Record<string, number> = {};
      for (const type of process.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
      return counts;
    };
    // A baseline without the leftovers of earlier tests: the timer count has held still for 100 ms.
    let before = count();
    for (let i = 0; i < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const now = count();
      const stable = (now.Timeout ?? 0) === (before.Timeout ?? 0);
      before = now;
      if (stable) break;
    }
    const c = createBackendClient({
      nodes: [hub.url],
      token: 'token',
      tls: { ca: cert.cert },
      portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }),
      healthChecks: { enabled: true },
    });
    c.connect();
    const conn = await hub.connection();
    await conn.token;
    const stream = conn.openStream();
    stream.write('ping');
    await stream.waitBytes(4);
    const during = count();
    expect((during.Timeout ?? 0) - (before.Timeout ?? 0)).toBeGreaterThanOrEqual(3); // keepalive + health
    await c.close({ graceMs: 50 });
    await conn.closed;
    for (const s of service.sockets) s.destroy();
    await waitFor(
      () => {
        const after = count();
        return (
          (after.Timeout ?? 0) <= (before.Timeout ?? 0) &&
          (after.TCPSocketWrap ?? 0) <= (before.TCPSocketWrap ?? 0) &&
          (after.TLSWrap ?? 0) <= (before.TLSWrap ?? 0)
        );
      },
      2_000,
      'resources to return to the baseline',
    );
  });

  it('calling close() before connect() or twice resolves without connecting', async () => {
    const hub = await startHub();
    const c = client(hub, { portMappings: resolvePortMappings({ 443: '127.0.0.1:1' }) });
    await Promise.all([c.close(), c.close()]);
    c.connect();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(hub.connections).toHaveLength(0);
  });
});

describe('BackendClient against the MuxSession hub engine', () => {
  it('moves 4 MiB each way through one credit-metered stream intact', async () => {
    const muxHub = await MuxHub.start(cert);
    cleanups.push(() => muxHub.close());
    const service = await startLocalService((socket) => socket.pipe(socket));
    cleanups.push(() => service.close());
    const c = client(muxHub, { portMappings: resolvePortMappings({ 443: `127.0.0.1:${service.port}` }) });
    c.connect();
    const session = await muxHub.session();
    expect(muxHub.tokens).toEqual(['token']);
    const stream = session.openStream({
      connPort: 443,
      clientIp: '192.0.2.1:1234',
      hostname: 'app.example.com',
      isTls: true,
    });
    const upload = randomBytes(4 * 1024 * 1024);
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    let received = 0;
    const done = new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= upload.length) resolve();
      });
    });
    stream.end(upload);
    await done;
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(upload));
    stream.disconnect();
  });
});
