/**
 * Cells of the era compatibility matrix (docs/compatibility.md, "The eras side by side") that the other
 * suites do not cover: a token from the seed era's own installer (no `iss`/`aud`) on an unconfigured
 * node, and a backend holding only a static `nexus-proxy token` token against a node that challenges
 * every backend (`auth.backendEra: current`, what a current reference node does). The static-token
 * client here sends exactly what the seed-era Go client sends: the token as one text frame.
 */
import { once } from 'node:events';
import { createBackendClient, resolvePortMappings } from '@nexus-proxy/backend-client';
import {
  createTestPki,
  httpGet,
  startHttpService,
  startNode,
  TEST_SECRET,
  type StartNodeOptions,
  type TestNode,
  type TestPki,
} from '@nexus-proxy/test-harness';
import { SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { mintBackendToken } from '../../src/auth.js';

vi.setConfig({ testTimeout: 20_000 });

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(config: StartNodeOptions['config'] = {}): Promise<TestNode> {
  const n = await startNode({ pki, listeners: ['http'], config });
  cleanups.push(() => n.close());
  return n;
}

function staticTokenClient(n: TestNode, token: string, servicePort: number) {
  const client = createBackendClient({
    nodes: [n.hubUrl],
    token,
    tls: { ca: pki.ca.certPem },
    portMappings: resolvePortMappings({ [n.httpPort]: `127.0.0.1:${servicePort}` }),
    closeGraceMs: 0,
  });
  client.on('error', () => {});
  cleanups.push(() => client.close({ graceMs: 0 }));
  return client;
}

describe('era compatibility matrix: the cells without a suite of their own', () => {
  it('seed-era client with a token from the seed installer (no iss, no aud) → unconfigured Nexus node: seed era, serves', async () => {
    const n = await node();
    const service = await startHttpService('seed-installer');
    cleanups.push(() => service.close());
    // What the seed era's installer and docs mint: `hostnames` and `exp`, nothing else.
    const token = await new SignJWT({ hostnames: ['legacy.test'] })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(TEST_SECRET));
    const registered = once(n.nexus, 'backend-connected') as Promise<[{ era: string }]>;
    staticTokenClient(n, token, service.port).connect();
    const [event] = await registered;
    expect(event.era).toBe('seed');
    expect(await httpGet(n.httpPort, 'legacy.test')).toContain('served-by seed-installer');
    expect(n.events.authFailed).toEqual([]);
  });

  it('static nexus-proxy token → a node that challenges every backend: 1008 after the wait, reported', async () => {
    const n = await node({ auth: { backendEra: 'current' }, limits: { authTimeoutMs: 300 } });
    const service = await startHttpService('never');
    cleanups.push(() => service.close());
    const token = await mintBackendToken({ secret: TEST_SECRET, hostnames: ['static.test'] });
    const client = staticTokenClient(n, token, service.port);
    const ended = once(client, 'disconnected') as Promise<
      [{ reason: string; code: number; message: string }]
    >;
    client.connect();
    const [event] = await ended;
    expect(event).toMatchObject({
      reason: 'auth_rejected',
      code: 1008,
      message: 'handshake challenge not answered in time',
    });
    expect(n.events.authFailed.map((e) => e.reason)).toContain('handshake challenge not answered in time');
    expect(n.hub.sessions).toHaveLength(0);
  });
});
