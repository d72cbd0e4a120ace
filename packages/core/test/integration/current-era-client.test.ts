/**
 * The Nexus backend client in the current era attached to a Nexus node: the attested handshake with each
 * built-in token provider (HMAC, command), then re-authentication every second under a bulk transfer
 * both ways, without losing a byte and without a second session.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BackendClient,
  type BackendClientOptions,
  createBackendClient,
  resolvePortMappings,
} from '@nexus-proxy/backend-client';
import {
  createTestPki,
  startNode,
  startService,
  TEST_RECONNECT,
  TEST_SECRET,
  type TestNode,
  type TestPki,
} from '@nexus-proxy/test-harness';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 30_000 });

let pki: TestPki;
let dir: string;
beforeAll(async () => {
  pki = await createTestPki();
  dir = await mkdtemp(join(tmpdir(), 'nexus-current-era-client-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A node with one HTTP listener and an echo service behind a current-era client of `options`. */
async function attach(
  host: string,
  options: Pick<BackendClientOptions, 'tokenProvider'>,
): Promise<{ node: TestNode; client: BackendClient }> {
  const node = await startNode({ pki, listeners: ['http'] });
  cleanups.push(() => node.close());
  const echo = await startService((socket) => socket.pipe(socket));
  cleanups.push(() => echo.close());
  const registered = once(node.nexus, 'backend-connected');
  const client = createBackendClient({
    nodes: [node.hubUrl],
    ...options,
    backend: { name: 'device-7', hostnames: [host] },
    tls: { ca: pki.ca.certPem },
    reconnect: TEST_RECONNECT,
    closeGraceMs: 0,
    portMappings: resolvePortMappings({ [node.httpPort]: `127.0.0.1:${echo.port}` }),
  });
  cleanups.push(() => client.close());
  client.connect();
  await registered;
  return { node, client };
}

/**
 * An end user streams random bytes to the echo service at up to 16 MiB/s (respecting backpressure) until
 * it has sent at least `minBytes` and `until()` holds, and reads them back; resolves with both digests and
 * the byte counts. Ending on a condition, not on a clock, keeps a slow machine from failing the test.
 */
async function bulkEcho(node: TestNode, host: string, minBytes: number, until: () => boolean) {
  const user = netConnect(node.httpPort, '127.0.0.1');
  await once(user, 'connect');
  const sent = createHash('sha256');
  const received = createHash('sha256');
  let receivedBytes = 0;
  user.on('data', (chunk: Buffer) => {
    received.update(chunk);
    receivedBytes += chunk.length;
  });
  const head = Buffer.from(`POST /bulk HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  sent.update(head);
  user.write(head);
  let sentBytes = head.length;
  const start = Date.now();
  while (sentBytes < minBytes || !until()) {
    const chunk = randomBytes(32 * 1024);
    sent.update(chunk);
    sentBytes += chunk.length;
    if (!user.write(chunk)) await once(user, 'drain');
    const ahead = sentBytes / (16 * 1024) - (Date.now() - start);
    if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
  }
  await vi.waitFor(() => expect(receivedBytes).toBe(sentBytes), { timeout: 15_000, interval: 20 });
  user.destroy();
  return { sentBytes, sent: sent.digest('hex'), received: received.digest('hex') };
}

describe('backend client (current era) on a Nexus node', () => {
  it('HMAC provider: re-authenticates every second under a bulk transfer both ways, no byte lost', async () => {
    const { node, client } = await attach('hmac.test', {
      tokenProvider: { hmacSecret: TEST_SECRET, reauthIntervalSeconds: 1, reauthGraceSeconds: 5 },
    });
    // Two re-authentications happen while the transfer runs: it goes on until the second one.
    const result = await bulkEcho(
      node,
      'hmac.test',
      16 * 1024 * 1024,
      () => client.stats().nodes[0]!.reauths >= 2,
    );
    expect(result.sentBytes).toBeGreaterThanOrEqual(16 * 1024 * 1024);
    expect(result.received).toBe(result.sent);
    const stats = client.stats().nodes[0]!;
    expect(stats.reauths).toBeGreaterThanOrEqual(2);
    expect(stats.sessionsOpened).toBe(1);
    expect(node.events.backendDisconnected).toEqual([]);
  });

  it('command provider: a program signs every stage; re-authentication every second under a bulk transfer', async () => {
    const attestor = join(dir, 'attestor.mjs');
    // HS256 over the claims the client asks for, with node:crypto only; the reauth interval is the
    // attestor's policy, as an authorizer's would be.
    await writeFile(
      attestor,
      `import { createHmac } from 'node:crypto';
       const e = process.env;
       const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
       const now = Math.floor(Date.now() / 1000);
       const claims = { hostnames: e.NEXUS_HOSTNAMES.split(','), weight: Number(e.NEXUS_WEIGHT),
         ...(e.NEXUS_SESSION_NONCE ? { session_nonce: e.NEXUS_SESSION_NONCE } : {}),
         reauth_interval_seconds: 1, reauth_grace_seconds: 5,
         iss: 'authorizer', sub: e.NEXUS_BACKEND_NAME, aud: ['nexus'], exp: now + 30, iat: now };
       const body = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64(claims);
       console.log(body + '.' + createHmac('sha256', e.ATTESTOR_SECRET).update(body).digest('base64url'));`,
    );
    const { node, client } = await attach('command.test', {
      tokenProvider: { command: process.execPath, args: [attestor], env: { ATTESTOR_SECRET: TEST_SECRET } },
    });
    const result = await bulkEcho(
      node,
      'command.test',
      16 * 1024 * 1024,
      () => client.stats().nodes[0]!.reauths >= 2,
    );
    expect(result.received).toBe(result.sent);
    const stats = client.stats().nodes[0]!;
    expect(stats.reauths).toBeGreaterThanOrEqual(2);
    expect(stats.sessionsOpened).toBe(1);
    expect(node.events.backendDisconnected).toEqual([]);
  });
});
