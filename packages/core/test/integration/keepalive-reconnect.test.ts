/**
 * docs/reliability.md items 13 (silent dead peer) and 14 (reconnect storm), through a whole node: `createNexus`,
 * real backend clients over wss, and the fault proxy between them. Keepalive deadlines are configured short
 * (hundreds of ms) instead of faking the clock: TLS, WebSockets and jittered backoff all run on real time.
 * The reconnect storm does not judge the spread by when sessions arrive (100 clients share one event
 * loop): it reads the delay each client's backoff drew and checks that the client waited exactly that.
 * The peer-link case of item 13 is in `mesh.test.ts` ("detects a black-holed link by keepalive").
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { BackendClient, Logger as BackendLogger, DisconnectedEvent } from '@nexus-proxy/backend-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BackendConnectedEvent, BackendDisconnectedEvent } from '../../src/hub.js';
import { createFaultProxy } from '../../src/testing/index.js';
import {
  createTestPki,
  type RawClient,
  rawConnect,
  httpGet,
  backendClient,
  type TestPki,
  startHttpService,
  startNode,
  startService,
  type TestNode,
  waitUntil,
} from '@nexus-proxy/test-harness';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('R13 silent dead peer', () => {
  it('hub and backend both detect a black-holed link by keepalive; the backend reconnects after heal', async () => {
    const HUB_PING = 100;
    const HUB_DEAD = 500;
    const CLIENT_TIMEOUT = 900;
    const node = await startNode({
      pki,
      config: {
        keepalive: { hubPingIntervalMs: HUB_PING, hubDeadAfterMs: HUB_DEAD },
      },
    });
    cleanups.push(() => node.close());
    const service = await startHttpService('silent');
    cleanups.push(() => service.close());
    const proxy = await createFaultProxy({ target: { host: '127.0.0.1', port: node.hubPort } });
    cleanups.push(() => proxy.close());
    const client = (
      await node.attachBackend({
        hostnames: ['silent.example.com'],
        service: service.port,
        nodes: [`wss://127.0.0.1:${proxy.port}/connect`],
        keepalive: { intervalMs: 150, timeoutMs: CLIENT_TIMEOUT },
        handshakeTimeoutMs: 400,
        reconnect: { initialDelayMs: 100, maxDelayMs: 200, jitter: 0.2 },
      })
    ).client;
    cleanups.push(() => client.close({ graceMs: 0 }));
    expect(await httpGet(node.httpPort, 'silent.example.com')).toContain('served-by silent');
    const firstSession = node.events.backendConnected.at(-1)?.id;

    const clientDown = new Promise<{ e: DisconnectedEvent; at: number }>((resolve) =>
      client.once('disconnected', (e) => resolve({ e, at: Date.now() })),
    );
    const hubDown = new Promise<{ e: BackendDisconnectedEvent; at: number }>((resolve) =>
      node.nexus.once('backend-disconnected', (e) => resolve({ e, at: Date.now() })),
    );
    // No byte, no FIN, no RST in either direction from now on, for this link and every later one.
    const t0 = Date.now();
    proxy.blackhole();

    const hub = await hubDown;
    expect(hub.e).toMatchObject({ id: firstSession, reason: 'keepalive-timeout' });
    // Detected by the deadline: not before the silence could have reached it, not long after it.
    expect(hub.at - t0).toBeGreaterThanOrEqual(HUB_DEAD - HUB_PING - 50);
    expect(hub.at - t0).toBeLessThan(HUB_DEAD + 400);
    // The backend left the pool at once: a new end user is closed with no-route, no byte written.
    expect(node.nexus.routes.hasLocal('silent.example.com')).toBe(false);
    expect(await httpGet(node.httpPort, 'silent.example.com')).toBe('');
    expect(node.events.routeMiss.at(-1)?.hostname).toBe('silent.example.com');

    const backend = await clientDown;
    expect(backend.e.reason).toBe('keepalive_timeout');
    expect(backend.at - t0).toBeGreaterThanOrEqual(CLIENT_TIMEOUT - 150 - 50);
    expect(backend.at - t0).toBeLessThan(CLIENT_TIMEOUT + 500);

    // Reconnect attempts through the black hole fail (handshake timeout) and keep retrying with backoff.
    await waitUntil(() => proxy.stats().accepted >= 3, 5_000, 'reconnect attempts');
    expect(node.nexus.hub.sessions).toHaveLength(0);

    const back = new Promise<BackendConnectedEvent>((resolve) =>
      node.nexus.once('backend-connected', resolve),
    );
    proxy.heal();
    const again = await back;
    expect(again.id).not.toBe(firstSession);
    expect(again.hostnames).toContain('silent.example.com');
    expect(await httpGet(node.httpPort, 'silent.example.com')).toContain('served-by silent');
    expect(node.nexus.hub.sessions).toHaveLength(1);
  });
});

describe('R13 silent dead peer with streams open', () => {
  it('closes every stream of a black-holed session within the keepalive deadline, at the node and at the backend', async () => {
    const HUB_PING = 100;
    const HUB_DEAD = 500;
    const CLIENT_TIMEOUT = 900;
    const STREAMS = 6;
    const node = await startNode({
      pki,
      config: {
        keepalive: { hubPingIntervalMs: HUB_PING, hubDeadAfterMs: HUB_DEAD },
      },
    });
    cleanups.push(() => node.close());
    // Half the streams download (the service writes 1 KiB every 10 ms), half sit idle after their request.
    const written: Buffer[][] = [];
    const serviceSockets: Socket[] = [];
    const service = await startService((socket) => {
      serviceSockets.push(socket);
      const sent: Buffer[] = [];
      written.push(sent);
      socket.once('data', (c: Buffer) => {
        if (!c.toString('latin1').startsWith('GET /stream')) return;
        const timer = setInterval(() => {
          if (!socket.writable) return clearInterval(timer);
          const piece = randomBytes(1024);
          sent.push(piece);
          socket.write(piece);
        }, 10);
        socket.once('close', () => clearInterval(timer));
      });
    });
    cleanups.push(() => service.close());
    const proxy = await createFaultProxy({ target: { host: '127.0.0.1', port: node.hubPort } });
    cleanups.push(() => proxy.close());
    const client = (
      await node.attachBackend({
        hostnames: ['silent.example.com'],
        service: service.port,
        nodes: [`wss://127.0.0.1:${proxy.port}/connect`],
        keepalive: { intervalMs: 150, timeoutMs: CLIENT_TIMEOUT },
        handshakeTimeoutMs: 400,
        reconnect: { initialDelayMs: 5_000, maxDelayMs: 5_000, jitter: 0 },
      })
    ).client;
    cleanups.push(() => client.close({ graceMs: 0 }));
    const clientCloses: Array<{ reason: string; at: number }> = [];
    client.on('stream-close', (e) => clientCloses.push({ reason: e.reason, at: Date.now() }));

    const users: RawClient[] = [];
    for (let i = 0; i < STREAMS; i++) {
      const user = await rawConnect(node.httpPort);
      user.socket.write(
        `GET /${i % 2 === 0 ? 'stream' : 'idle'} HTTP/1.1\r\nHost: silent.example.com\r\n\r\n`,
      );
      users.push(user);
    }
    await waitUntil(() => serviceSockets.length === STREAMS, 3_000, 'streams at the service');
    await waitUntil(
      () => users.every((u, i) => i % 2 === 1 || u.received().length > 4096),
      3_000,
      'downloads flowing',
    );
    expect(node.nexus.hub.stats().streams).toBe(STREAMS);
    expect(client.stats().streams).toBe(STREAMS);

    // From now on no byte, FIN or RST crosses the backend's link, in either direction.
    const t0 = Date.now();
    proxy.blackhole();
    const ends = await Promise.all(users.map(async (u) => ({ ...(await u.closed), at: u.closedAt ?? 0 })));
    // The node: every end user closed once the hub's keepalive deadline passed, none before it could.
    for (const end of ends) {
      expect(end.at - t0).toBeGreaterThanOrEqual(HUB_DEAD - HUB_PING - 50);
      expect(end.at - t0).toBeLessThan(HUB_DEAD + 400);
    }
    expect(node.events.backendDisconnected.at(-1)?.reason).toBe('keepalive-timeout');
    await waitUntil(() => node.events.streamClose.length === STREAMS, 1_000, 'stream-close events');
    for (const e of node.events.streamClose) expect(e.reason).not.toBe('completed');
    expect(node.nexus.hub.stats().streams).toBe(0);
    expect(node.nexus.activeStreams).toBe(0);
    // What each end user got is an uncorrupted prefix of what its service wrote.
    for (const [i, u] of users.entries()) {
      const got = u.received();
      const sent = Buffer.concat(written[i] ?? []);
      expect(sent.subarray(0, got.length).equals(got)).toBe(true);
    }

    // The backend: its own deadline ends the session, every stream with it, and the service sockets are let go.
    await waitUntil(() => clientCloses.length === STREAMS, CLIENT_TIMEOUT + 1_000, 'client stream closes');
    for (const c of clientCloses) {
      expect(c.reason).toBe('session_ended');
      expect(c.at - t0).toBeGreaterThanOrEqual(CLIENT_TIMEOUT - 150 - 50);
      expect(c.at - t0).toBeLessThan(CLIENT_TIMEOUT + 500);
    }
    expect(client.stats().streams).toBe(0);
    // The backend closed its side of every local connection (the service sees EOF or a reset).
    await waitUntil(
      () => serviceSockets.every((s) => s.readableEnded || s.destroyed),
      1_000,
      'service connections ended',
    );
  });
});

/** One reconnect a backend client scheduled: the delay its backoff chose (jitter applied), and when. */
interface ScheduledReconnect {
  attempt: number;
  delayMs: number;
  at: number;
}

/**
 * A backend-client logger that keeps only the client's "reconnecting after backoff" lines: each carries the
 * delay that client's backoff chose for that attempt (`delayMs`, jitter applied) and the attempt count.
 */
function reconnectRecorder(scheduled: ScheduledReconnect[]): BackendLogger {
  const noop = (): void => {};
  const logger: BackendLogger = {
    trace: noop,
    info: noop,
    warn: noop,
    error: noop,
    debug: (fields: unknown, msg?: unknown) => {
      if (msg !== 'reconnecting after backoff' || typeof fields !== 'object' || fields === null) return;
      const { delayMs, attempt } = fields as { delayMs: number; attempt: number };
      scheduled.push({ attempt, delayMs, at: Date.now() });
    },
    child: () => logger,
    isLevelEnabled: (level) => level !== 'trace',
  };
  return logger;
}

describe('R14 reconnect storm', () => {
  it('100 backends reconnect to a restarted node, each after the jittered delay it drew, and the node accepts them all', async () => {
    const COUNT = 100;
    const INITIAL = 1_000;
    const JITTER = 0.5;
    let node: TestNode = await startNode({ pki });
    const hubPort = node.hubPort;
    cleanups.push(() => node.close());
    const service = await startHttpService('storm');
    cleanups.push(() => service.close());
    const clients: BackendClient[] = [];
    cleanups.push(async () => {
      await Promise.all(clients.map((c) => c.close({ graceMs: 0 })));
    });
    const scheduled: ScheduledReconnect[][] = [];
    const lost: number[] = [];
    for (let i = 0; i < COUNT; i++) {
      scheduled.push([]);
      const c = await backendClient(pki, node, {
        hostnames: [`storm-${i}.example.com`, 'storm.example.com'],
        // The restarted node's relay ports differ: dial the service whatever the port.
        connectHandler: () => connect(service.port, '127.0.0.1'),
        reconnect: { initialDelayMs: INITIAL, maxDelayMs: 4 * INITIAL, jitter: JITTER },
        logger: reconnectRecorder(scheduled[i]!),
      });
      c.on('disconnected', () => {
        lost[i] = Date.now();
      });
      clients.push(c);
    }
    for (const c of clients) c.connect();
    await waitUntil(() => node.nexus.hub.sessions.length === COUNT, 20_000, '100 sessions');
    expect(scheduled.flat()).toHaveLength(0); // every first connection succeeded: no backoff yet

    // Restart: close the node (sessions end with 1001), start a new one on the same hub port.
    await node.close();
    node = await startNode({ pki, hubPort });
    const registeredAt = new Map<number, number>();
    node.nexus.on('backend-connected', (e) => {
      const name = e.hostnames.find((h) => /^storm-\d+\./.test(h));
      if (name !== undefined) registeredAt.set(Number(/^storm-(\d+)\./.exec(name)?.[1]), Date.now());
    });
    await waitUntil(() => node.nexus.hub.sessions.length === COUNT, 20_000, '100 sessions after restart');

    expect(node.events.authFailed).toHaveLength(0);
    expect(new Set(node.nexus.hub.sessions.flatMap((s) => s.hostnames)).size).toBe(COUNT + 1);
    expect(node.nexus.routes.localPool('storm.example.com')?.size).toBe(COUNT);

    // Each client drew its own delay for attempt 0 and reconnected at that attempt (no failure, no retry):
    // INITIAL · (1 ± JITTER), i.e. within [500, 1500] ms.
    const delays: number[] = [];
    for (let i = 0; i < COUNT; i++) {
      const mine = scheduled[i]!;
      expect(mine, `client ${i}`).toHaveLength(1);
      const { attempt, delayMs, at } = mine[0]!;
      expect(attempt, `client ${i}`).toBe(1); // the attempt counter after drawing attempt 0's delay
      expect(delayMs, `client ${i}`).toBeGreaterThanOrEqual(INITIAL * (1 - JITTER));
      expect(delayMs, `client ${i}`).toBeLessThanOrEqual(INITIAL * (1 + JITTER));
      // It applied that delay: its session came back no earlier than the delay after it saw the close
      // (the timer is armed in the same tick as 'disconnected'), and not much later (one handshake).
      expect(Math.abs(at - lost[i]!), `client ${i}`).toBeLessThan(50);
      const waited = registeredAt.get(i)! - lost[i]!;
      expect(waited, `client ${i}`).toBeGreaterThanOrEqual(delayMs - 5);
      expect(waited, `client ${i}`).toBeLessThan(delayMs + 5_000);
      delays.push(delayMs);
    }
    // The delays the clients drew are spread over the whole jitter window, not one value or one burst:
    // each tenth of the window holds at most a quarter of them (uniform: ~10 each), both ends are reached.
    const tenths = new Array<number>(10).fill(0);
    for (const d of delays) {
      const k = Math.min(9, Math.floor((d - INITIAL * (1 - JITTER)) / ((2 * JITTER * INITIAL) / 10)));
      tenths[k] = (tenths[k] ?? 0) + 1;
    }
    console.log(`R14: delays drawn per 100 ms of the jitter window: ${tenths.join(' ')}`);
    expect(Math.max(...tenths)).toBeLessThanOrEqual(COUNT / 4);
    expect(Math.min(...delays)).toBeLessThan(INITIAL * (1 - JITTER) + 100);
    expect(Math.max(...delays)).toBeGreaterThan(INITIAL * (1 + JITTER) - 100);
    expect(new Set(delays).size).toBeGreaterThan(COUNT * 0.8);
    // The restarted node serves them: a request for one of the backends goes through.
    expect(await httpGet(node.httpPort, 'storm-7.example.com')).toContain('served-by storm');
  });
});
