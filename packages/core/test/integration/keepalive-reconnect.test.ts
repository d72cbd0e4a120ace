/**
 * docs/reliability.md items 13 (silent dead peer) and 14 (reconnect storm), through a whole node: `createNexus`,
 * real backend clients over wss, and the fault proxy between them. Keepalive deadlines are configured short
 * (hundreds of ms) instead of faking the clock: TLS, WebSockets and jittered backoff all run on real time.
 * The peer-link case of item 13 is in `mesh.test.ts` ("detects a black-holed link by keepalive").
 */
import { connect } from 'node:net';
import type { BackendClient, DisconnectedEvent } from '@nexus-proxy/backend-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BackendConnectedEvent, BackendDisconnectedEvent } from '../../src/hub.js';
import { createFaultProxy } from '../../src/testing/index.js';
import {
  attachClient,
  createPki,
  httpGet,
  makeClient,
  type Pki,
  startHttpService,
  startNode,
  type TestNode,
  waitUntil,
} from './_reliability-helpers.js';

let pki: Pki;
beforeAll(async () => {
  pki = await createPki();
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
    const node = await startNode(pki, {
      keepalive: { hubPingIntervalMs: HUB_PING, hubDeadAfterMs: HUB_DEAD },
    });
    cleanups.push(() => node.close());
    const service = await startHttpService('silent');
    cleanups.push(() => service.close());
    const proxy = await createFaultProxy({ target: { host: '127.0.0.1', port: node.hubPort } });
    cleanups.push(() => proxy.close());
    const client = await attachClient(pki, node, {
      hostnames: ['silent.example.com'],
      service: service.port,
      nodes: [`wss://127.0.0.1:${proxy.port}/connect`],
      keepalive: { intervalMs: 150, timeoutMs: CLIENT_TIMEOUT },
      handshakeTimeoutMs: 400,
      reconnect: { initialDelayMs: 100, maxDelayMs: 200, jitter: 0.2 },
    });
    cleanups.push(() => client.close({ graceMs: 0 }));
    expect(await httpGet(node.httpPort, 'silent.example.com')).toContain('served-by silent');
    const firstSession = node.events.connected.at(-1)?.id;

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

describe('R14 reconnect storm', () => {
  it('100 backends reconnect to a restarted node spread out by jitter, and the node accepts them all', async () => {
    const COUNT = 100;
    const INITIAL = 1_000;
    const JITTER = 0.5;
    let node: TestNode = await startNode(pki);
    const hubPort = node.hubPort;
    cleanups.push(() => node.close());
    const service = await startHttpService('storm');
    cleanups.push(() => service.close());
    const clients: BackendClient[] = [];
    cleanups.push(async () => {
      await Promise.all(clients.map((c) => c.close({ graceMs: 0 })));
    });
    for (let i = 0; i < COUNT; i++) {
      const c = await makeClient(pki, node, {
        hostnames: [`storm-${i}.example.com`, 'storm.example.com'],
        // The restarted node's relay ports differ: dial the service whatever the port.
        connectHandler: () => connect(service.port, '127.0.0.1'),
        reconnect: { initialDelayMs: INITIAL, maxDelayMs: 4 * INITIAL, jitter: JITTER },
      });
      clients.push(c);
    }
    for (const c of clients) c.connect();
    await waitUntil(() => node.nexus.hub.sessions.length === COUNT, 20_000, '100 sessions');

    // Restart: close the node (sessions end with 1001), start a new one on the same hub port.
    const t0 = Date.now();
    await node.close();
    node = await startNode(pki, {}, hubPort);
    const times: number[] = [];
    node.nexus.on('backend-connected', () => times.push(Date.now() - t0));
    await waitUntil(() => node.nexus.hub.sessions.length === COUNT, 20_000, '100 sessions after restart');

    expect(node.events.authFailed).toHaveLength(0);
    expect(new Set(node.nexus.hub.sessions.flatMap((s) => s.hostnames)).size).toBe(COUNT + 1);
    expect(node.nexus.routes.localPool('storm.example.com')?.size).toBe(COUNT);
    // Attempt 0 waits INITIAL · (1 ± JITTER): [500, 1500] ms after the close was seen.
    times.sort((a, b) => a - b);
    const first = times[0] ?? 0;
    const last = times.at(-1) ?? 0;
    expect(first).toBeGreaterThanOrEqual(INITIAL * (1 - JITTER) - 100);
    // Not one burst: the reconnects span most of the jitter window (uniform over 1 000 ms) …
    expect(last - first).toBeGreaterThanOrEqual(INITIAL * JITTER);
    // … and no 100 ms slice holds half of them (a burst would put all 100 in one).
    const buckets = new Map<number, number>();
    for (const t of times) buckets.set(Math.floor(t / 100), (buckets.get(Math.floor(t / 100)) ?? 0) + 1);
    expect(Math.max(...buckets.values())).toBeLessThanOrEqual(COUNT / 2);
    // The restarted node serves them: a request for one of the backends goes through.
    expect(await httpGet(node.httpPort, 'storm-7.example.com')).toContain('served-by storm');
  });
});
