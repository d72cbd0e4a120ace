/**
 * `limits.maxPendingConnects` through a whole node: a raw backend that authenticates and then never
 * answers a `connect` holds at most that many streams; the next end user goes to another backend of the
 * pool, or is closed with `pending-limit` (a log line and a `sniff-failed` event), never a crash. The
 * limit is live-reloadable, and a stream stops counting once the backend answers it or it closes.
 */
import { encodeControlMessage } from '@nexus-proxy/mux-protocol';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ResolvedNexusConfig } from '../../src/config.js';
import {
  createTestPki,
  type RawClient,
  rawConnect,
  type LogLine,
  type TestPki,
  type RawBackend,
  rawBackend,
  recordingLogger,
  startHttpService,
  startNode,
  type TestNode,
  token,
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

async function start(maxPendingConnects: number, lines: LogLine[] = []): Promise<TestNode> {
  const node = await startNode({
    pki,
    config: { limits: { maxPendingConnects } },
    logger: recordingLogger(lines),
  });
  cleanups.push(() => node.close());
  return node;
}

/** A raw backend for `hostnames` that never answers a connect, registered before this resolves. */
async function stuckBackend(node: TestNode, hostnames: string[]): Promise<RawBackend> {
  const before = node.events.backendConnected.length;
  const raw = await rawBackend(pki, node.hubPort, await token(hostnames));
  raw.answer = false;
  cleanups.push(() => {
    if (raw.ws.readyState !== WebSocket.CLOSED) raw.ws.terminate();
  });
  await waitUntil(() => node.events.backendConnected.length > before, 3_000, 'backend registered');
  return raw;
}

/** An end user that sent an HTTP request for `host` and waits for the answer. */
async function request(node: TestNode, host: string): Promise<RawClient> {
  const user = await rawConnect(node.httpPort);
  cleanups.push(() => {
    user.socket.destroy();
  });
  user.socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  return user;
}

const connects = (raw: RawBackend) => raw.controls.filter((c) => c.event === 'connect');

describe('limits.maxPendingConnects', () => {
  it('closes the end user over the limit with pending-limit; an answer or a close frees a slot', async () => {
    const lines: LogLine[] = [];
    const node = await start(3, lines);
    const raw = await stuckBackend(node, ['stuck.example.com']);
    const users: RawClient[] = [];
    for (let i = 0; i < 3; i++) users.push(await request(node, 'stuck.example.com'));
    await waitUntil(() => connects(raw).length === 3, 3_000, 'three connects');
    const session = node.nexus.hub.sessions[0]!;
    expect(session.pendingConnects).toBe(3);
    expect(session.stats().pendingConnects).toBe(3);

    // The fourth: closed at once, without a byte, with the reason in the event and a warning logged.
    const fourth = await request(node, 'stuck.example.com');
    await fourth.closed;
    expect(fourth.received().length).toBe(0);
    await waitUntil(() => node.events.sniffFailed.length === 1, 2_000, 'sniff-failed');
    expect(node.events.sniffFailed[0]).toMatchObject({
      reason: 'pending-limit',
      hostname: 'stuck.example.com',
    });
    expect(connects(raw)).toHaveLength(3);
    const warning = lines.find((l) => l.level === 'warn' && l.msg.includes('maxPendingConnects'));
    expect(warning?.fields).toMatchObject({ sessionId: session.id, limit: 3 });
    // One warning per stuck session, not one per refused end user.
    await (await request(node, 'stuck.example.com')).closed;
    expect(lines.filter((l) => l.level === 'warn' && l.msg.includes('maxPendingConnects'))).toHaveLength(1);

    // Any message for a stream answers it (here a grant): one slot frees up.
    const firstId = String(connects(raw)[0]!.client_id);
    raw.send(encodeControlMessage({ event: 'resume_stream', client_id: firstId, credits: 64 }));
    await waitUntil(() => session.pendingConnects === 2, 2_000, 'the answered stream no longer pending');
    await request(node, 'stuck.example.com');
    await waitUntil(() => connects(raw).length === 4, 2_000, 'a fourth connect');
    expect(session.pendingConnects).toBe(3);

    // An end user who gives up (a reset: a FIN alone is a half-close, which keeps the stream open for
    // the response) frees its slot too: the hub disconnects the stream.
    users[1]!.socket.resetAndDestroy();
    await waitUntil(() => session.pendingConnects === 2, 2_000, 'the abandoned stream no longer pending');
    expect(session.streamCount).toBe(3);
    expect(node.nexus.hub.sessions).toEqual([session]); // the session itself is untouched
  });

  it('sends the end users a stuck backend cannot take to a healthy one of the pool', async () => {
    const node = await start(3);
    const raw = await stuckBackend(node, ['pool.example.com']);
    const service = await startHttpService('healthy');
    cleanups.push(() => service.close());
    const healthy = (await node.attachBackend({ hostnames: ['pool.example.com'], service: service.port }))
      .client;
    cleanups.push(() => healthy.close({ graceMs: 0 }));

    const users: RawClient[] = [];
    for (let i = 0; i < 10; i++) users.push(await request(node, 'pool.example.com'));
    const served = () => users.filter((u) => u.received().toString('latin1').includes('served-by healthy'));
    await waitUntil(() => served().length === 7, 5_000, 'seven answers from the healthy backend');
    expect(connects(raw)).toHaveLength(3);
    expect(node.events.sniffFailed.filter((e) => e.reason === 'pending-limit')).toHaveLength(0);
  });

  it('is live: a reload raises the limit for the next end users', async () => {
    const node = await start(1);
    const raw = await stuckBackend(node, ['live.example.com']);
    await request(node, 'live.example.com');
    await waitUntil(() => connects(raw).length === 1, 2_000, 'one connect');
    await (await request(node, 'live.example.com')).closed;
    expect(node.events.sniffFailed.at(-1)?.reason).toBe('pending-limit');

    const current = node.nexus.config;
    const next: ResolvedNexusConfig = Object.freeze({
      ...current,
      limits: Object.freeze({ ...current.limits, maxPendingConnects: 3 }),
    });
    const result = await node.nexus.reload(next);
    expect(result.applied).toEqual(['limits.maxPendingConnects']);
    expect(result.restartRequired).toEqual([]);
    await request(node, 'live.example.com');
    await request(node, 'live.example.com');
    await waitUntil(() => connects(raw).length === 3, 2_000, 'three connects');
    await (await request(node, 'live.example.com')).closed;
    expect(node.events.sniffFailed.filter((e) => e.reason === 'pending-limit')).toHaveLength(2);
  });
});
