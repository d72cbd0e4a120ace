/**
 * Hub limits through a whole node over wss: a ping flood gets a policy close (1008 `ping-flood`), pings
 * are still answered below the budget and before authentication, a backend over `maxSessions` gets an
 * event (`backend-refused`), and the token message may be up to `auth.maxTokenBytes` while later messages
 * stay at `maxMessageBytes`.
 */
import { once } from 'node:events';
import { SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { verifyBackendToken } from '../../src/auth.js';
import type { BackendRefusedEvent } from '../../src/hub.js';
import {
  createTestPki,
  type LogLine,
  openHubSocket,
  type TestPki,
  type RawBackend,
  rawBackend,
  recordingLogger,
  TEST_SECRET,
  type StartNodeOptions,
  startNode,
  type TestNode,
  token,
  waitUntil,
  wsClosed,
} from '@nexus-proxy/test-harness';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(config: StartNodeOptions['config'] = {}, lines?: LogLine[]): Promise<TestNode> {
  const node = await startNode({
    pki,
    config,
    logger: lines === undefined ? undefined : recordingLogger(lines),
  });
  cleanups.push(() => node.close());
  return node;
}

async function raw(node: TestNode, tokenText: string | undefined): Promise<RawBackend> {
  const backend = await rawBackend(pki, node.hubPort, tokenText);
  cleanups.push(() => {
    if (backend.ws.readyState !== WebSocket.CLOSED) backend.ws.terminate();
  });
  return backend;
}

async function registered(node: TestNode, tokenText: string): Promise<RawBackend> {
  const before = node.events.backendConnected.length;
  const backend = await raw(node, tokenText);
  await waitUntil(() => node.events.backendConnected.length > before, 3_000, 'backend registered');
  return backend;
}

function pongs(ws: WebSocket): () => number {
  let n = 0;
  ws.on('pong', () => n++);
  return () => n;
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `h${i}.example.com`);
const hs256 = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(TEST_SECRET));

describe('ping flood (docs/reliability.md item 22)', () => {
  it('answers pings under the budget and closes a flood with 1008 ping-flood', async () => {
    const lines: LogLine[] = [];
    const node = await start({ limits: { maxControlMessagesPerSecond: 200 } }, lines);
    const backend = await registered(node, await token(['ping.example.com']));
    const seen = pongs(backend.ws);
    for (let i = 0; i < 50; i++) backend.ws.ping();
    await waitUntil(() => seen() === 50, 3_000, 'fifty pongs');
    expect(backend.ws.readyState).toBe(WebSocket.OPEN);

    for (let i = 0; i < 1_000; i++) backend.ws.ping();
    expect(await backend.closed).toEqual({ code: 1008, reason: 'ping-flood' });
    await waitUntil(() => node.events.backendDisconnected.length === 1, 3_000, 'backend-disconnected');
    expect(node.events.backendDisconnected[0]?.reason).toBe('ping-flood');
    expect(node.nexus.routes.hasLocal('ping.example.com')).toBe(false);
    expect(lines.some((l) => l.level === 'warn' && l.msg.includes('ping flood'))).toBe(true);
  });

  it('answers pings sent before the token, and refuses a ping flood before authentication', async () => {
    const node = await start();
    const early = openHubSocket(pki, node.hubPort);
    cleanups.push(() => early.terminate());
    await once(early, 'open');
    const seen = pongs(early);
    for (let i = 0; i < 5; i++) early.ping();
    await waitUntil(() => seen() === 5, 3_000, 'pongs before the token');
    early.send(await token(['early.example.com']));
    await waitUntil(() => node.nexus.routes.hasLocal('early.example.com'), 3_000, 'registration');

    const flooder = openHubSocket(pki, node.hubPort);
    cleanups.push(() => flooder.terminate());
    await once(flooder, 'open');
    const closed = wsClosed(flooder);
    for (let i = 0; i < 500; i++) flooder.ping();
    expect(await closed).toEqual({ code: 1008, reason: 'too many messages before authentication' });
    await waitUntil(() => node.events.authFailed.length === 1, 2_000, 'auth-failed');
  });
});

describe('maxSessions', () => {
  it('emits backend-refused (HTTP 503) for a backend over the limit', async () => {
    const node = await start({ limits: { maxSessions: 1 } });
    const refused: BackendRefusedEvent[] = [];
    node.nexus.on('backend-refused', (e) => refused.push(e));
    await registered(node, await token(['one.example.com']));

    const second = openHubSocket(pki, node.hubPort);
    cleanups.push(() => second.terminate());
    const [, response] = (await once(second, 'unexpected-response')) as [unknown, { statusCode: number }];
    expect(response.statusCode).toBe(503);
    expect(refused).toEqual([{ reason: 'max-sessions', remoteAddress: '127.0.0.1' }]);
    expect(node.nexus.hub.sessions).toHaveLength(1);
  });
});

describe('token and message sizes', () => {
  it('reads a token larger than maxMessageBytes, then holds later messages to maxMessageBytes (1009)', async () => {
    const node = await start();
    // 1 500 names: ~40 KB, over the 32 785-byte message cap, under the 64 KiB token cap.
    const big = await hs256({ hostnames: names(1_500) });
    expect(big.length).toBeGreaterThan(32_785);
    expect(big.length).toBeLessThan(65_536);
    const refusedForNames = await raw(node, big);
    expect(await refusedForNames.closed).toEqual({ code: 1008, reason: 'too many hostnames' });

    const backend = await registered(node, await hs256({ hostnames: names(1_000) }));
    backend.send(Buffer.alloc(32_785, 0x7f)); // exactly the cap (an unknown frame type: ignored)
    const seen = pongs(backend.ws);
    backend.ws.ping();
    await waitUntil(() => seen() === 1, 2_000, 'a pong after the full-size message');
    backend.send(Buffer.alloc(40_000, 0x7f)); // under the WebSocket's cap (64 KiB), over ours
    expect(await backend.closed).toEqual({ code: 1009, reason: 'message-too-big' });
    await waitUntil(() => node.events.backendDisconnected.length === 1, 2_000, 'backend-disconnected');
    expect(node.events.backendDisconnected[0]?.reason).toBe('message-too-big');
  });

  it('refuses with 1008 token too large a token over maxTokenBytes, whatever its size', async () => {
    const node = await start({ auth: { maxTokenBytes: 40_000 } });
    // Over maxTokenBytes but within the WebSocket's cap: refused by the hub before it is parsed.
    const a = await raw(node, 'x'.repeat(40_001));
    expect(await a.closed).toEqual({ code: 1008, reason: 'token too large' });
    // Over the WebSocket's cap (max(32 785, 40 000)): ws stops reading it, still a policy close.
    const b = await raw(node, 'x'.repeat(300_000));
    expect(await b.closed).toEqual({ code: 1008, reason: 'token too large' });
    await waitUntil(() => node.events.authFailed.length === 2, 2_000, 'two auth-failed events');
    expect(node.events.authFailed.map((e) => e.reason)).toEqual(['token too large', 'token too large']);
    // A message after the token over the WebSocket's cap is still 1009.
    const c = await raw(node, await token(['c.example.com']));
    c.send(Buffer.alloc(50_000, 0x7f));
    expect((await c.closed).code).toBe(1009);
  });
});

describe('hostname claims', () => {
  it('drops claimed names whose labels start or end with a hyphen (RFC 1123 §2.1)', async () => {
    const claims = {
      hostnames: ['-x-.example.com', 'x-.example.com', '*.-x.example.com', 'ok-1.example.com'],
    };
    const verified = await verifyBackendToken(await hs256(claims), { secrets: [TEST_SECRET] });
    expect(verified.hostnames).toEqual(['ok-1.example.com']);
    expect(verified.ignoredHostnames).toEqual(['-x-.example.com', 'x-.example.com', '*.-x.example.com']);

    const node = await start();
    const refused = await raw(node, await hs256({ hostnames: ['-x-.example.com'] }));
    expect(await refused.closed).toEqual({ code: 1008, reason: 'no valid hostnames' });
  });
});

describe('routes per node (limits.maxLocalRoutes, docs/mesh.md "Limits")', () => {
  it('refuses a backend whose new names would take the node past the cap, and counts shared names once', async () => {
    const lines: LogLine[] = [];
    const node = await start({ limits: { maxLocalRoutes: 5 } }, lines);
    await registered(node, await token(['a.example.com', 'b.example.com', '*.w.example.com']));
    // Two more names, one of them already served: 4 patterns, within the cap.
    await registered(node, await token(['a.example.com', 'c.example.com']));
    expect(node.routes.localPatternCount).toBe(4);
    // Two new names would make 6: refused with a policy close, nothing registered.
    const over = await raw(node, await token(['d.example.com', 'e.example.com']));
    expect(await over.closed).toEqual({ code: 1008, reason: 'too many routes on this node' });
    expect(node.routes.localPatternCount).toBe(4);
    expect(node.routes.resolve('d.example.com').kind).toBe('none');
    expect(lines.some((l) => l.level === 'warn' && l.msg === 'too many routes on this node')).toBe(true);
    // Exactly at the cap is fine.
    await registered(node, await token(['d.example.com']));
    expect(node.routes.localPatternCount).toBe(5);
  });
});
