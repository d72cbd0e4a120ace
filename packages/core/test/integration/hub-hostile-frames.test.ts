/**
 * docs/reliability.md item 22 (hostile frames from an authenticated backend) and the hub-side limits a public
 * node needs (message size, control rate, streams per session, sessions per node), through a whole node:
 * a raw `ws` backend authenticated with a real token next to a real backend client on the same node.
 */
import { randomUUID } from 'node:crypto';
import type { BackendClient } from '@nexus-proxy/backend-client';
import { encodeControlMessage, encodeDataFrame } from '@nexus-proxy/mux-protocol';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  createTestPki,
  rawConnect,
  httpGet,
  openHubSocket,
  type TestPki,
  type RawBackend,
  rawBackend,
  recordingLogger,
  delay,
  startHttpService,
  type StartNodeOptions,
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

/** A node with a raw backend for `raw.example.com` and a real client for `other.example.com`. */
async function setup(config: StartNodeOptions['config'] = {}, logger?: StartNodeOptions['logger']) {
  const node = await startNode({ pki, config, logger });
  cleanups.push(() => node.close());
  const service = await startHttpService('other');
  cleanups.push(() => service.close());
  const other = (await node.attachBackend({ hostnames: ['other.example.com'], service: service.port }))
    .client;
  cleanups.push(() => other.close({ graceMs: 0 }));
  const otherSession = node.events.backendConnected.at(-1)?.id;
  const raw = await attachRaw(node, ['raw.example.com']);
  const rawSession = node.events.backendConnected.at(-1)?.id;
  return { node, other, otherSession, raw, rawSession };
}

/** A raw backend, registered by the node before this resolves. */
async function attachRaw(node: TestNode, hostnames: string[]): Promise<RawBackend> {
  const before = node.events.backendConnected.length;
  const raw = await rawBackend(pki, node.hubPort, await token(hostnames));
  cleanups.push(() => {
    if (raw.ws.readyState !== WebSocket.CLOSED) raw.ws.terminate();
  });
  await waitUntil(() => node.events.backendConnected.length > before, 3_000, 'raw backend registered');
  return raw;
}

/** The raw backend answers a request through the node: its session serves. */
async function rawServes(node: TestNode): Promise<void> {
  expect(await httpGet(node.httpPort, 'raw.example.com')).toMatch(/^answer:[0-9a-f-]{36}\n$/);
}

/** The real backend client is untouched: same session, still serving. */
async function otherUntouched(node: TestNode, other: BackendClient, sessionId: string | undefined) {
  expect(await httpGet(node.httpPort, 'other.example.com')).toContain('served-by other');
  expect(node.events.backendDisconnected.filter((e) => e.id === sessionId)).toHaveLength(0);
  expect(other.stats().nodes[0]?.sessionsOpened).toBe(1);
}

const control = (object: unknown) => Buffer.from(`\x02${JSON.stringify(object)}`);

describe('R22 frames', () => {
  it('survives malformed and unexpected frames: each is dropped, the session keeps serving', async () => {
    const { node, other, otherSession, raw, rawSession } = await setup();
    await rawServes(node);
    const id = randomUUID();
    const hostile: Array<Uint8Array | string> = [
      Buffer.from([0x01, 1, 2, 3]), // truncated DATA (< 17 bytes)
      Buffer.from([0x01]),
      Buffer.alloc(0), // empty message
      Buffer.from([0x7f, 1, 2, 3]), // unknown frame type
      Buffer.from('\x02{"event":"disconnect","client_id":'), // invalid JSON
      Buffer.from('\x02[1,2,3]'),
      Buffer.from('\x02"just a string"'),
      Buffer.from([0x02, 0xff, 0xfe, 0x00]),
      control({ event: 'outbound_connect', client_id: id, host: 'example.org:25' }), // unknown events
      control({ event: '', client_id: id }),
      control({ client_id: id }),
      control({ event: 'disconnect', client_id: 123 }), // wrong field types
      control({ event: 'disconnect', client_id: id, reason: { nested: [1, { deep: true }] } }),
      control({ event: 'resume_stream', client_id: id, credits: 'lots' }),
      control({ event: 'resume_stream', client_id: id, credits: -1 }),
      control({ event: 'resume_stream', client_id: id, credits: 1e308 }),
      control({ event: 'connect', client_id: id, conn_port: '443', is_tls: 'yes' }),
      control({ event: 'ping_client', client_id: 'not-a-uuid' }),
      control({ event: 'pause_stream', client_id: id, reason: '\u0000\u202e\ud83d\ude00'.repeat(100) }),
      'a text frame after the token',
    ];
    for (const m of hostile) raw.send(m);
    await rawServes(node);

    // DATA for streams the hub does not know: dropped, answered with one disconnect each.
    const unknown = Array.from({ length: 20 }, () => randomUUID());
    for (const u of unknown) raw.send(encodeDataFrame(u, Buffer.from('stray bytes')));
    raw.send(encodeDataFrame(randomUUID(), Buffer.alloc(32_768, 7))); // full-size frame: 32 785 bytes
    await waitUntil(
      () => unknown.every((u) => raw.controls.some((c) => c.event === 'disconnect' && c.client_id === u)),
      3_000,
      'disconnect answers',
    );
    expect(raw.controls.find((c) => c.client_id === unknown[0])).toMatchObject({ reason: 'unknown' });

    // A flood of connects (meaningless from a backend), under the control-rate limit, and a burst of
    // WebSocket pings under ws's pending-pong cap (60).
    for (let i = 0; i < 2_000; i++) {
      raw.send(
        encodeControlMessage({
          event: 'connect',
          client_id: randomUUID(),
          conn_port: 443,
          client_ip: '203.0.113.9:1',
          hostname: 'other.example.com',
          is_tls: true,
        }),
      );
    }
    let pongs = 0;
    raw.ws.on('pong', () => pongs++);
    for (let i = 0; i < 50; i++) raw.ws.ping();
    await waitUntil(() => pongs === 50, 3_000, 'pongs');

    await rawServes(node);
    expect(raw.ws.readyState).toBe(WebSocket.OPEN);
    expect(node.events.backendDisconnected.filter((e) => e.id === rawSession)).toHaveLength(0);
    // The connects opened nothing on the hub: only real end users make streams.
    expect(node.nexus.hub.stats().streams).toBe(0);
    await otherUntouched(node, other, otherSession);
  });

  it('closes a session that sends a message over 32 785 bytes with 1009; the other backend keeps serving', async () => {
    const { node, other, otherSession, raw, rawSession } = await setup();
    raw.send(encodeDataFrame(randomUUID(), Buffer.alloc(32_768))); // exactly the cap: fine
    await rawServes(node);
    raw.send(Buffer.alloc(32_786, 0x01));
    expect(await raw.closed).toMatchObject({ code: 1009 });
    await waitUntil(
      () => node.events.backendDisconnected.some((e) => e.id === rawSession),
      3_000,
      'disconnect event',
    );
    expect(node.events.backendDisconnected.find((e) => e.id === rawSession)?.reason).toBe('message-too-big');
    expect(node.nexus.routes.hasLocal('raw.example.com')).toBe(false);
    expect(await httpGet(node.httpPort, 'raw.example.com')).toBe('');
    await otherUntouched(node, other, otherSession);
  });

  it('ends a session that floods WebSocket pings with 1008 ping-flood; the other backend keeps serving', async () => {
    const { node, other, otherSession, raw, rawSession } = await setup({
      limits: { maxControlMessagesPerSecond: 500 },
    });
    // Pings count against the same per-second budget as control messages.
    for (let i = 0; i < 2_000; i++) raw.ws.ping();
    expect(await raw.closed).toEqual({ code: 1008, reason: 'ping-flood' });
    await waitUntil(
      () => node.events.backendDisconnected.some((e) => e.id === rawSession),
      3_000,
      'disconnect event',
    );
    expect(node.events.backendDisconnected.find((e) => e.id === rawSession)?.reason).toBe('ping-flood');
    expect(node.nexus.routes.hasLocal('raw.example.com')).toBe(false);
    await otherUntouched(node, other, otherSession);
  });

  it('closes a session that floods control messages past the rate limit with 1008 control-rate', async () => {
    const { node, other, otherSession, raw, rawSession } = await setup({
      limits: { maxControlMessagesPerSecond: 500 },
    });
    // 400 in a burst is under the limit.
    const ping = (u: string) => encodeControlMessage({ event: 'ping_client', client_id: u });
    for (let i = 0; i < 400; i++) raw.send(ping(randomUUID()));
    await rawServes(node);
    await delay(1_000); // a new one-second window
    for (let i = 0; i < 2_000; i++) raw.send(ping(randomUUID()));
    expect(await raw.closed).toEqual({ code: 1008, reason: 'control-rate' });
    await waitUntil(
      () => node.events.backendDisconnected.some((e) => e.id === rawSession),
      3_000,
      'disconnect event',
    );
    expect(node.events.backendDisconnected.find((e) => e.id === rawSession)?.reason).toBe('control-rate');
    expect(node.nexus.routes.hasLocal('raw.example.com')).toBe(false);
    await otherUntouched(node, other, otherSession);
  });
});

describe('hub limits of a public node', () => {
  it('maxStreamsPerSession: the stream past the limit is closed with stream-limit, the others stay', async () => {
    const { node, raw } = await setup({ limits: { maxStreamsPerSession: 4 } });
    raw.answer = false; // keep every stream open
    const users = [];
    for (let i = 0; i < 4; i++) {
      const u = await rawConnect(node.httpPort);
      u.socket.write('GET / HTTP/1.1\r\nHost: raw.example.com\r\n\r\n');
      users.push(u);
    }
    await waitUntil(
      () => raw.controls.filter((c) => c.event === 'connect').length === 4,
      3_000,
      '4 connects',
    );
    const fifth = await rawConnect(node.httpPort);
    fifth.socket.write('GET / HTTP/1.1\r\nHost: raw.example.com\r\n\r\n');
    await fifth.closed;
    expect(fifth.received().length).toBe(0);
    expect(node.events.sniffFailed.at(-1)).toMatchObject({
      reason: 'stream-limit',
      hostname: 'raw.example.com',
    });
    expect(node.nexus.hub.stats().streams).toBe(4);
    expect(users.every((u) => !u.socket.destroyed)).toBe(true);
    expect(raw.controls.filter((c) => c.event === 'connect')).toHaveLength(4);
    // A reset releases the streams (a FIN alone would be a half-close that waits for the backend's answer).
    for (const u of users) u.socket.resetAndDestroy();
    await waitUntil(() => node.nexus.hub.stats().streams === 0, 3_000, 'streams released');
  });

  it('maxSessions: the upgrade past the limit gets HTTP 503 and a warning; sessions in place keep serving', async () => {
    const logger = recordingLogger();
    const { node, other, otherSession } = await setup({ limits: { maxSessions: 3 } }, logger);
    await attachRaw(node, ['third.example.com']);
    expect(node.nexus.hub.sessions).toHaveLength(3);
    const ws = openHubSocket(pki, node.hubPort);
    const status = await new Promise<number>((resolve) => {
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      ws.once('open', () => resolve(101));
    });
    expect(status).toBe(503);
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('maxSessions'))).toBe(true);
    expect(node.nexus.hub.sessions).toHaveLength(3);
    await rawServes(node);
    await otherUntouched(node, other, otherSession);
  });
});
