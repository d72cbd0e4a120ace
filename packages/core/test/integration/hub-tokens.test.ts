/**
 * docs/reliability.md item 23 (hostile backend tokens), through the real hub of a whole node over wss: each
 * token is sent as the first message of a raw WebSocket and must be refused with close 1008 and a clear
 * reason (plus an `auth-failed` event), or accepted. The "token after 11 s" case uses a short
 * `limits.authTimeoutMs` (300 ms) instead of faking the clock under real TLS sockets.
 */
import { generateKeyPair, SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  createTestPki,
  httpGet,
  type TestPki,
  type RawBackend,
  rawBackend,
  TEST_SECRET,
  delay,
  type StartNodeOptions,
  startNode,
  type TestNode,
  token,
  waitUntil,
} from '@nexus-proxy/test-harness';

let pki: TestPki;
let node: TestNode;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(config: StartNodeOptions['config'] = {}) {
  node = await startNode({ pki, config });
  cleanups.push(() => node.close());
  return node;
}

async function connect(tokenText: string | undefined): Promise<RawBackend> {
  const raw = await rawBackend(pki, node.hubPort, tokenText);
  cleanups.push(() => {
    if (raw.ws.readyState !== WebSocket.CLOSED) raw.ws.terminate();
  });
  return raw;
}

/** Sends `tokenText` and expects close 1008 with `reason`, an `auth-failed` event, and no session. */
async function expectRefused(tokenText: string, reason: string): Promise<void> {
  const failures = node.events.authFailed.length;
  const raw = await connect(tokenText);
  const timeout = delay(3_000).then(() => ({ code: 0, reason: 'still open after 3 s' }));
  expect(await Promise.race([raw.closed, timeout])).toEqual({ code: 1008, reason });
  await waitUntil(() => node.events.authFailed.length > failures, 2_000, 'auth-failed event');
  expect(node.events.authFailed.at(-1)).toMatchObject({ reason, remoteAddress: '127.0.0.1' });
  expect(node.nexus.hub.sessions).toHaveLength(0);
}

const secretKey = new TextEncoder().encode(TEST_SECRET);
const now = () => Math.floor(Date.now() / 1000);
const hs256 = (claims: Record<string, unknown>, key: Uint8Array = secretKey) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(key);
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('R23 tokens', () => {
  it('refuses alg none, RS256, ES256 and a wrong key with 1008', async () => {
    await start();
    const claims = { hostnames: ['app.example.com'] };
    await expectRefused(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`, 'unsupported token algorithm');
    for (const alg of ['RS256', 'ES256'] as const) {
      const { privateKey } = await generateKeyPair(alg);
      const signed = await new SignJWT(claims).setProtectedHeader({ alg }).sign(privateKey);
      await expectRefused(signed, 'unsupported token algorithm');
    }
    // An HS256 token whose header claims none, but signed: still not accepted.
    const forged = (await hs256(claims)).split('.');
    await expectRefused(`${b64({ alg: 'none' })}.${forged[1]}.${forged[2]}`, 'unsupported token algorithm');
    await expectRefused(
      await hs256(claims, new TextEncoder().encode(`${TEST_SECRET}-but-another`)),
      'invalid token signature',
    );
    await expectRefused('not a jwt at all', 'malformed token');
  });

  it('refuses expired and not-yet-valid tokens, and tokens without a usable hostname', async () => {
    await start();
    await expectRefused(await hs256({ hostnames: ['app.example.com'], exp: now() - 3_600 }), 'token expired');
    await expectRefused(
      await hs256({ hostnames: ['app.example.com'], nbf: now() + 3_600 }),
      'token not yet valid',
    );
    await expectRefused(await hs256({ hostnames: [] }), 'no valid hostnames');
    await expectRefused(await hs256({}), 'no valid hostnames');
    await expectRefused(await hs256({ hostnames: ['*.com'] }), 'no valid hostnames');
    await expectRefused(
      await hs256({ hostnames: ['*', '..', 'bad host', 42, { a: 1 }] }),
      'no valid hostnames',
    );
    await expectRefused(await hs256({ hostnames: 'app.example.com' }), 'invalid token claims');
    // Within the clock tolerance (30 s) an expired token still passes.
    const raw = await connect(await hs256({ hostnames: ['late.example.com'], exp: now() - 5 }));
    await waitUntil(() => node.nexus.routes.hasLocal('late.example.com'), 2_000, 'registration');
    expect(raw.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('refuses more hostnames than auth.maxHostnames with 1008 and accepts exactly the cap', async () => {
    await start({ auth: { maxHostnames: 100 } });
    const names = (n: number) => Array.from({ length: n }, (_, i) => `h${i}.example.com`);
    await expectRefused(await hs256({ hostnames: names(101) }), 'too many hostnames');
    // Exactly the cap is accepted.
    await connect(await hs256({ hostnames: names(100) }));
    await waitUntil(() => node.nexus.routes.hasLocal('h99.example.com'), 2_000, 'registration');
    expect(node.nexus.hub.sessions[0]?.hostnames).toHaveLength(100);
  });

  it('refuses a token longer than maxTokenBytes with 1008, also a 10 000-hostname one, before parsing it', async () => {
    await start();
    const names = (n: number) => Array.from({ length: n }, (_, i) => `h${i}.example.com`);
    // 10 000 names: ~250 KB, over the default 64 KiB token cap and larger than any WebSocket message
    // the hub reads: refused unread, with 1008 like every other refused token.
    await expectRefused(await hs256({ hostnames: names(10_000) }), 'token too large');
    // 1 000 names (the default maxHostnames), ~27 KB: fits the default token cap.
    await connect(await hs256({ hostnames: names(1_000) }));
    await waitUntil(() => node.nexus.routes.hasLocal('h999.example.com'), 2_000, 'registration');
  });

  it('refuses a token over a smaller maxTokenBytes with 1008, and too many hostnames once a token is read', async () => {
    await start({ auth: { maxTokenBytes: 16_384 } });
    const names = (n: number) => Array.from({ length: n }, (_, i) => `h${i}.example.com`);
    // ~900 names: 22 KB, under the 32 785-byte message cap but over the 16 KiB token cap.
    await expectRefused(await hs256({ hostnames: names(900) }), 'token too large');
    await node.close();
    // With room for it, the 10 000-hostname token is read and refused for its hostnames.
    await start({ auth: { maxTokenBytes: 1 << 20 } });
    await expectRefused(await hs256({ hostnames: names(10_000) }), 'too many hostnames');
  });

  it('accepts a hostname another backend holds: both share the pool', async () => {
    await start();
    const a = await connect(await token(['shared.example.com', 'a.example.com']));
    const b = await connect(await token(['shared.example.com', 'b.example.com']));
    await waitUntil(() => node.nexus.hub.sessions.length === 2, 2_000, 'two sessions');
    expect(node.nexus.routes.localPool('shared.example.com')?.size).toBe(2);
    for (let i = 0; i < 6; i++)
      expect(await httpGet(node.httpPort, 'shared.example.com')).toMatch(/^answer:/);
    const connects = (r: RawBackend) => r.controls.filter((c) => c.event === 'connect').length;
    expect(connects(a)).toBe(3);
    expect(connects(b)).toBe(3);
  });

  it('closes a backend that sends its token after authTimeoutMs with 1008 authentication timeout', async () => {
    await start({ limits: { authTimeoutMs: 300 } });
    const opened = Date.now();
    const raw = await connect(undefined);
    const late = delay(500).then(async () => raw.send(await token(['late.example.com'])));
    const closed = await raw.closed;
    expect(closed).toEqual({ code: 1008, reason: 'authentication timeout' });
    expect(Date.now() - opened).toBeGreaterThanOrEqual(280);
    expect(Date.now() - opened).toBeLessThan(1_000);
    await late;
    expect(node.events.authFailed.at(-1)?.reason).toBe('authentication timeout');
    expect(node.nexus.routes.hasLocal('late.example.com')).toBe(false);
    // A prompt backend on the same node is accepted.
    await connect(await token(['prompt.example.com']));
    await waitUntil(() => node.nexus.routes.hasLocal('prompt.example.com'), 2_000, 'registration');
  });
});
