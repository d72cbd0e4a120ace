import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as netConnect } from 'node:net';
import {
  createTestPki,
  startNode,
  startService,
  TEST_SECRET,
  type TestNode,
  type TestPki,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createLocalTokenVerifier } from '../../src/auth.js';
import { checkAuthorizerStatus } from '../../src/authorizer-status.js';
import type { BackendSession } from '../../src/backend-session.js';
import { BackendHub } from '../../src/hub.js';
import { HubTlsContext } from '../../src/hub-tls.js';
import { RoutingTable } from '../../src/routing-table.js';
import {
  type CurrentEraBackend,
  type CurrentEraBackendOptions,
  connectCurrentEraBackend,
} from '../helpers/current-era-backend.js';

vi.setConfig({ testTimeout: 30_000 });

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(): Promise<TestNode> {
  const n = await startNode({ pki, listeners: ['http'] });
  cleanups.push(() => n.close());
  return n;
}

async function currentBackend(
  hubPort: number,
  o: Omit<CurrentEraBackendOptions, 'hubPort' | 'ca' | 'secret'>,
): Promise<CurrentEraBackend> {
  const b = await connectCurrentEraBackend({ hubPort, ca: pki.ca.certPem, secret: TEST_SECRET, ...o });
  cleanups.push(() => b.close());
  return b;
}

describe('BackendHub: current-era re-authentication', () => {
  it('re-authenticates every second under a bulk transfer both ways without losing a byte', async () => {
    const n = await node();
    // An echo service: what the end user sends comes back.
    const echo = await startService((socket) => socket.pipe(socket));
    cleanups.push(() => echo.close());
    const registered = once(n.nexus, 'backend-connected');
    const backend = await currentBackend(n.hubPort, {
      claims: { hostnames: ['bulk.test'], reauth_interval_seconds: 1, reauth_grace_seconds: 5 },
      servicePort: echo.port,
    });
    const [{ id }] = (await registered) as [{ id: string }];

    const user = netConnect(n.httpPort, '127.0.0.1');
    await once(user, 'connect');
    const sent = createHash('sha256');
    const received = createHash('sha256');
    let receivedBytes = 0;
    user.on('data', (chunk: Buffer) => {
      received.update(chunk);
      receivedBytes += chunk.length;
    });
    const head = Buffer.from('POST /bulk HTTP/1.1\r\nHost: bulk.test\r\n\r\n');
    sent.update(head);
    user.write(head);
    // Send for 3.5 s (three re-authentication rounds) at up to 16 MiB/s, respecting backpressure.
    let sentBytes = head.length;
    const start = Date.now();
    while (Date.now() - start < 3_500) {
      const chunk = randomBytes(32 * 1024);
      sent.update(chunk);
      sentBytes += chunk.length;
      if (!user.write(chunk)) await once(user, 'drain');
      const ahead = sentBytes / (16 * 1024) - (Date.now() - start);
      if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
    }
    // Every byte comes back (the end of the echo is not what this test is about).
    await vi.waitFor(() => expect(receivedBytes).toBe(sentBytes), { timeout: 15_000, interval: 20 });
    user.destroy();
    expect(received.digest('hex')).toBe(sent.digest('hex'));
    expect(backend.reauthAnswers).toBeGreaterThanOrEqual(2);
    expect(n.hub.sessions.map((s) => s.id)).toEqual([id]);
    expect(n.events.backendDisconnected).toEqual([]);
  });

  it('closes the session with 1008 when a re-authentication answer comes after reauth_grace_seconds', async () => {
    const n = await node();
    const registered = once(n.nexus, 'backend-connected');
    const backend = await currentBackend(n.hubPort, {
      claims: { hostnames: ['late.test'], reauth_interval_seconds: 1, reauth_grace_seconds: 1 },
      reauthDelayMs: () => 1_500,
    });
    await registered;
    expect(await backend.closed).toEqual({ code: 1008, reason: 're-authentication timed out' });
    await vi.waitFor(() =>
      expect(n.events.backendDisconnected.map((e) => e.reason)).toEqual(['re-authentication timed out']),
    );
    expect(n.routes.hasLocal('late.test')).toBe(false);
  });

  it('closes the session when a re-authentication answer changes the hostname set', async () => {
    const n = await node();
    const registered = once(n.nexus, 'backend-connected');
    const backend = await currentBackend(n.hubPort, {
      claims: { hostnames: ['set.test'], reauth_interval_seconds: 1 },
      reauth: (c) => ({ ...c, hostnames: ['set.test', 'more.test'] }),
    });
    await registered;
    expect(await backend.closed).toEqual({ code: 1008, reason: 'hostnames differ from the registered set' });
  });

  it('polls authorizer_status_uri over HTTPS: defers while it answers 503, challenges once the cap is spent, and at once when it answers 200', async () => {
    let status = 503;
    const polls: number[] = [];
    const authorizer = createHttpsServer({ cert: pki.hub.certPem, key: pki.hub.keyPem }, (req, res) => {
      polls.push(Date.now());
      res.writeHead(req.url === '/status' ? status : 404).end();
    });
    authorizer.listen(0, '127.0.0.1');
    await once(authorizer, 'listening');
    cleanups.push(() => new Promise<void>((r) => authorizer.close(() => r())));
    const statusUri = `https://127.0.0.1:${(authorizer.address() as AddressInfo).port}/status`;

    const routes = new RoutingTable<BackendSession>();
    const hub = new BackendHub({
      tls: new HubTlsContext(pki.hub),
      verifyToken: createLocalTokenVerifier({ secrets: [TEST_SECRET] }),
      routes,
      reauth: { checkStatus: (uri) => checkAuthorizerStatus(uri, { ca: pki.ca.certPem }) },
    });
    const { port } = await hub.listen('127.0.0.1');
    cleanups.push(() => hub.close());
    const registered = once(hub, 'backend-connected');
    const backend = await currentBackend(port, {
      claims: {
        hostnames: ['status.test'],
        reauth_interval_seconds: 1,
        maintenance_grace_cap_seconds: 2,
        authorizer_status_uri: statusUri,
      },
    });
    await registered;
    const t0 = Date.now();
    await vi.waitFor(
      () => expect(backend.challenges.filter((c) => c.type === 'reauth_challenge')).toHaveLength(1),
      {
        timeout: 6_000,
        interval: 20,
      },
    );
    const firstChallengeAt = Date.now();
    // 1 s interval (plus jitter), then 2 s of deferral while the authorizer answered 503.
    expect(firstChallengeAt - t0).toBeGreaterThanOrEqual(2_900);
    expect(polls.length).toBeGreaterThanOrEqual(3);
    expect(hub.sessions).toHaveLength(1);

    status = 200;
    const pollsBefore = polls.length;
    await vi.waitFor(
      () => expect(backend.challenges.filter((c) => c.type === 'reauth_challenge')).toHaveLength(2),
      {
        timeout: 4_000,
        interval: 20,
      },
    );
    // One healthy poll, then the challenge without deferral.
    expect(polls.length).toBe(pollsBefore + 1);
    expect(Date.now() - (polls.at(-1) ?? 0)).toBeLessThan(1_000);
    await vi.waitFor(() => expect(backend.reauthAnswers).toBe(2));
    expect(hub.sessions).toHaveLength(1);
  });
});
