/**
 * Attack 8: what a token holder may claim. A token signed with the node's secret is trusted for the names
 * it lists, with three limits and choices checked here on a whole node: no wildcard directly under a
 * public suffix (`*.co.uk`, `*.github.io`: Public Suffix List), `exp` checked when present and required
 * only with `auth.requireExp`, and two tokens claiming one hostname share its pool by weight.
 */
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mintBackendToken } from '../../src/auth.js';
import { SignJWT } from 'jose';
import {
  createTestPki,
  httpGet,
  type TestNode,
  onHttpRequest,
  startNode,
  startService,
  TEST_SECRET,
  type TestPki,
} from '@nexus-proxy/test-harness';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(config: Parameters<typeof startNode>[0]['config'] = {}): Promise<TestNode> {
  const n = await startNode({ pki, listeners: ['http'], config });
  cleanups.push(() => n.close());
  return n;
}

/** An HTTP service answering `served-by <label>`. */
async function httpService(label: string): Promise<number> {
  const service = await startService((socket) =>
    onHttpRequest(socket, () => {
      const body = `served-by ${label}`;
      socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
    }),
  );
  cleanups.push(() => service.close());
  return service.port;
}

/** A token with `claims`, signed with the node's secret. */
const sign = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(TEST_SECRET));

/** Presents `token` to the hub on a raw WebSocket; resolves with the close code and reason. */
async function present(n: TestNode, token: string): Promise<{ code: number; reason: string }> {
  const ws = new WebSocket(n.hubUrl, { ca: pki.ca.certPem });
  ws.on('error', () => {});
  await once(ws, 'open');
  ws.send(token);
  const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
  return { code, reason: reason.toString() };
}

describe('attack: a token claims names under a public suffix', () => {
  it('drops *.co.uk and *.github.io from a token, keeps its other names, and routes nothing under them', async () => {
    const n = await node();
    // Signed directly: mintBackendToken refuses such names.
    const token = await sign({
      hostnames: ['*.co.uk', '*.github.io', 'shop.example.co.uk', '*.example.co.uk'],
    });
    const ws = new WebSocket(n.hubUrl, { ca: pki.ca.certPem });
    ws.on('error', () => {});
    cleanups.push(() => {
      ws.terminate();
    });
    await once(ws, 'open');
    const connected = once(n.nexus, 'backend-connected');
    ws.send(token);
    const [event] = (await connected) as [{ hostnames: string[] }];
    expect(event.hostnames).toEqual(['shop.example.co.uk', '*.example.co.uk']);
    expect(n.nexus.routes.lookup('a.example.co.uk')?.kind).toBe('local');
    // Another company's name under the public suffix stays unrouted.
    expect(await httpGet(n.httpPort, 'bank.co.uk')).toBe('');
    expect(await httpGet(n.httpPort, 'someone.github.io')).toBe('');
    expect(n.events.routeMiss.map((e) => e.hostname)).toEqual(['bank.co.uk', 'someone.github.io']);
  });

  it('refuses a token whose only claim is a public-suffix wildcard (1008 no valid hostnames)', async () => {
    const n = await node();
    const token = await sign({ hostnames: ['*.co.uk'] });
    expect(await present(n, token)).toEqual({ code: 1008, reason: 'no valid hostnames' });
    await expect(mintBackendToken({ secret: TEST_SECRET, hostnames: ['*.co.uk'] })).rejects.toThrow(
      /not a valid hostname or wildcard/,
    );
  });
});

describe('choice: exp', () => {
  it('accepts a token without exp by default (reference tokens have none) and refuses an expired one', async () => {
    const n = await node();
    const noExp = await mintBackendToken({ secret: TEST_SECRET, hostnames: ['a.example.com'] });
    const stillOpen = new WebSocket(n.hubUrl, { ca: pki.ca.certPem });
    stillOpen.on('error', () => {});
    cleanups.push(() => {
      stillOpen.terminate();
    });
    await once(stillOpen, 'open');
    const connected = once(n.nexus, 'backend-connected');
    stillOpen.send(noExp);
    await connected;
    const expired = await mintBackendToken({
      secret: TEST_SECRET,
      hostnames: ['a.example.com'],
      ttlSeconds: 60,
      now: () => Date.now() - 3_600_000,
    });
    expect(await present(n, expired)).toEqual({ code: 1008, reason: 'token expired' });
  });

  it('with auth.requireExp, refuses a token without exp', async () => {
    const n = await node({ auth: { requireExp: true } });
    const noExp = await mintBackendToken({ secret: TEST_SECRET, hostnames: ['a.example.com'] });
    expect(await present(n, noExp)).toEqual({ code: 1008, reason: 'token has no expiry' });
  });
});

describe('choice: two tokens claim one hostname', () => {
  it('both backends serve it, sharing the pool by weight (1 : 3)', async () => {
    const n = await node();
    await n.attachBackend({
      hostnames: ['shared.example.com'],
      weight: 1,
      service: await httpService('one'),
    });
    await n.attachBackend({
      hostnames: ['shared.example.com'],
      weight: 3,
      service: await httpService('three'),
    });
    const counts = { one: 0, three: 0 };
    for (let i = 0; i < 40; i++) {
      const answer = await httpGet(n.httpPort, 'shared.example.com');
      if (answer.includes('served-by one')) counts.one++;
      else if (answer.includes('served-by three')) counts.three++;
    }
    expect(counts).toEqual({ one: 10, three: 30 });
  });
});
