import { once } from 'node:events';
import { createBackendClient, resolvePortMappings } from '@nexus-proxy/backend-client';
import {
  createTestPki,
  httpGet,
  recordingLogger,
  startNode,
  startService,
  TEST_SECRET,
  type StartNodeOptions,
  type TestNode,
  type TestPki,
  type TestService,
} from '@nexus-proxy/test-harness';
import { SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type CurrentEraBackend,
  type CurrentEraBackendOptions,
  connectCurrentEraBackend,
  signCurrentToken,
} from '../helpers/current-era-backend.js';

vi.setConfig({ testTimeout: 20_000 });

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(options: Omit<StartNodeOptions, 'pki'> = {}): Promise<TestNode> {
  const n = await startNode({ pki, listeners: ['http'], ...options });
  cleanups.push(() => n.close());
  return n;
}

/** An HTTP-ish service answering every request with `label`. */
async function labelService(label: string): Promise<TestService> {
  const s = await startService((socket) => {
    socket.once('data', () => socket.end(`HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n${label}`));
  });
  cleanups.push(() => s.close());
  return s;
}

async function currentBackend(
  n: TestNode,
  o: Omit<CurrentEraBackendOptions, 'hubPort' | 'ca' | 'secret'>,
): Promise<CurrentEraBackend> {
  const b = await connectCurrentEraBackend({
    hubPort: n.hubPort,
    ca: pki.ca.certPem,
    secret: TEST_SECRET,
    ...o,
  });
  cleanups.push(() => b.close());
  return b;
}

/** Resolves with the node's next registration of a session serving `hostname`. */
function registration(n: TestNode, hostname: string) {
  return new Promise<{ id: string }>((resolve) => {
    const on = (e: { id: string; hostnames: readonly string[] }) => {
      if (!e.hostnames.includes(hostname)) return;
      n.nexus.off('backend-connected', on);
      resolve(e);
    };
    n.nexus.on('backend-connected', on);
  });
}

describe('BackendHub: the current era beside the seed era', () => {
  it('serves a seed-era backend client and a current-era backend on one node at the same time', async () => {
    const n = await node();
    const seedService = await labelService('seed-era');
    const currentService = await labelService('current-era');
    const seed = await n.attachBackend({ hostnames: ['seed.test'], service: seedService.port });
    cleanups.push(() => seed.close());
    const registered = registration(n, 'current.test');
    const current = await currentBackend(n, {
      claims: { hostnames: ['current.test'] },
      servicePort: currentService.port,
    });
    await registered;

    // Golden: the challenge is exactly {"type":"handshake_challenge","nonce":<43 base64url chars>}.
    const text = await current.firstChallengeText;
    expect(text).toMatch(/^\{"type":"handshake_challenge","nonce":"[A-Za-z0-9_-]{43}"\}$/);
    expect(Buffer.from(JSON.parse(text).nonce, 'base64url')).toHaveLength(32);

    expect(n.events.backendConnected.map((e) => e.era).sort()).toEqual(['current', 'seed']);
    const eras = Object.fromEntries(
      n.hub.sessions.map((s) => [s.hostnames.find((h) => !h.startsWith('backend-')), s.identity.era]),
    );
    expect(eras).toEqual({ 'seed.test': 'seed', 'current.test': 'current' });
    for (let i = 0; i < 3; i++) {
      expect(await httpGet(n.httpPort, 'seed.test')).toContain('seed-era');
      expect(await httpGet(n.httpPort, 'current.test')).toContain('current-era');
    }
    // The seed-era client never saw a text message; the current-era one only its challenge.
    expect(current.challenges.map((c) => c.type)).toEqual(['handshake_challenge']);
    expect(n.events.authFailed).toEqual([]);
  });

  it('serves the Nexus backend client in both eras on one node, re-authenticating the current-era one every second', async () => {
    const log = recordingLogger([], 'debug');
    const n = await node({ logger: log });
    const seedService = await labelService('client-seed');
    const currentService = await labelService('client-current');
    const seed = await n.attachBackend({ hostnames: ['client-seed.test'], service: seedService.port });
    cleanups.push(() => seed.close());
    const registered = registration(n, 'client-current.test');
    const client = createBackendClient({
      nodes: [n.hubUrl],
      tokenProvider: { hmacSecret: TEST_SECRET, reauthIntervalSeconds: 1 },
      backend: { name: 'current-client', hostnames: ['client-current.test'] },
      tls: { ca: pki.ca.certPem },
      portMappings: resolvePortMappings({ [n.httpPort]: `127.0.0.1:${currentService.port}` }),
      closeGraceMs: 0,
    });
    client.on('error', () => {});
    cleanups.push(() => client.close({ graceMs: 0 }));
    client.connect();
    const { id } = await registered;
    expect(n.hub.sessions.find((s) => s.id === id)?.identity.era).toBe('current');
    expect(await httpGet(n.httpPort, 'client-current.test')).toContain('client-current');
    expect(await httpGet(n.httpPort, 'client-seed.test')).toContain('client-seed');
    const rounds = () =>
      log.lines.filter((l) => l.msg === 'backend re-authenticated' && l.fields.sessionId === id);
    await vi.waitFor(() => expect(rounds().length).toBeGreaterThanOrEqual(2), {
      timeout: 6_000,
      interval: 50,
    });
    expect(await httpGet(n.httpPort, 'client-current.test')).toContain('client-current');
    expect(n.hub.sessions.map((s) => s.id)).toContain(id);
    expect(n.events.backendDisconnected).toEqual([]);
    expect(n.events.authFailed).toEqual([]);
  });

  it('carries validated port claims on the identity of a current-era session', async () => {
    const n = await node({ config: { allowedTCPPortClaims: [2222, 2223], allowedUDPPortClaims: [5000] } });
    const registered = registration(n, 'ports.test');
    await currentBackend(n, {
      claims: {
        hostnames: ['ports.test'],
        tcp_ports: [2223, 2222, 2223],
        udp_routes: [{ port: 5000, flow_idle_timeout_seconds: 1 }],
        weight: 3,
      },
    });
    const { id } = await registered;
    const session = n.hub.sessions.find((s) => s.id === id);
    expect(session?.identity).toMatchObject({
      era: 'current',
      tcpPorts: [2222, 2223],
      udpRoutes: [{ port: 5000, flowIdleTimeoutSeconds: 5 }],
      outbound: { allowed: false, ports: [] },
      weight: 3,
    });
  });

  describe('closes a failed handshake with 1008 and a clear reason', () => {
    const cases: Array<{
      name: string;
      reason: string;
      config?: StartNodeOptions['config'];
      backend: Omit<CurrentEraBackendOptions, 'hubPort' | 'ca' | 'secret'>;
    }> = [
      {
        name: 'a wrong nonce',
        reason: 'session nonce mismatch',
        backend: {
          claims: { hostnames: ['a.test'] },
          stage1: (c) => ({ ...c, session_nonce: 'not-the-nonce' }),
        },
      },
      {
        name: 'a changed hostname set',
        reason: 'hostnames differ from the handshake token',
        backend: {
          claims: { hostnames: ['a.test'] },
          stage1: (c) => ({ ...c, hostnames: ['a.test', 'b.test'] }),
        },
      },
      {
        name: 'a changed port set',
        reason: 'tcp port claims differ from the handshake token',
        config: { allowedTCPPortClaims: [2222, 2223] },
        backend: {
          claims: { hostnames: ['a.test'], tcp_ports: [2222] },
          stage1: (c) => ({ ...c, tcp_ports: [2222, 2223] }),
        },
      },
      {
        name: 'a weight change',
        reason: 'weight differs from the handshake token',
        backend: { claims: { hostnames: ['a.test'], weight: 2 }, stage1: (c) => ({ ...c, weight: 3 }) },
      },
      {
        name: 'a late stage-1 answer',
        reason: 'handshake challenge not answered in time',
        config: { limits: { authTimeoutMs: 300 } },
        backend: { claims: { hostnames: ['a.test'] }, stage1DelayMs: 800 },
      },
      {
        name: 'a binary stage-0 frame',
        reason: 'expected a text frame for the stage-0 token',
        backend: { claims: { hostnames: ['a.test'] }, binaryStage0: true },
      },
      {
        name: 'a stage-0 token older than handshake_max_age_seconds',
        reason: 'handshake token older than handshake_max_age_seconds',
        backend: {
          claims: { hostnames: ['a.test'], handshake_max_age_seconds: 60 },
          stage0IssuedAt: Math.floor(Date.now() / 1000) - 120,
        },
      },
      {
        name: 'a tcp port claim the node does not allow',
        reason: 'tcp port claims are disabled (allowedTCPPortClaims is empty)',
        backend: { claims: { hostnames: ['a.test'], tcp_ports: [22] } },
      },
    ];
    for (const c of cases) {
      it(`on ${c.name}`, async () => {
        const n = await node(c.config === undefined ? {} : { config: c.config });
        const b = await currentBackend(n, c.backend);
        expect(await b.closed).toEqual({ code: 1008, reason: c.reason });
        expect(n.events.authFailed.map((e) => e.reason)).toEqual([c.reason]);
        expect(n.hub.sessions).toHaveLength(0);
      });
    }
  });

  it('counts a backend waiting for its stage-1 token as authenticating, then as a session', async () => {
    const n = await node();
    const registered = registration(n, 'slow.test');
    const b = await currentBackend(n, { claims: { hostnames: ['slow.test'] }, stage1DelayMs: 600 });
    await b.firstChallengeText;
    expect(n.hub.stats()).toMatchObject({ sessions: 0, authenticating: 1 });
    await registered;
    expect(n.hub.stats()).toMatchObject({ sessions: 1, authenticating: 0 });
  });

  it('refuses a binary stage-1 frame', async () => {
    const n = await node();
    const stage0 = await signCurrentToken(TEST_SECRET, { hostnames: ['a.test'] });
    const ws = await openRaw(n);
    const challenge = once(ws, 'message');
    ws.send(stage0);
    await challenge;
    ws.send(Buffer.from(stage0));
    expect(await wsClosed(ws)).toEqual({ code: 1008, reason: 'expected a text frame for the stage-1 token' });
  });

  it('closes a current-era session that floods text messages with 1008 control-rate', async () => {
    const n = await node({ config: { limits: { maxControlMessagesPerSecond: 100 } } });
    const registered = registration(n, 'chatty.test');
    const b = await currentBackend(n, { claims: { hostnames: ['chatty.test'] } });
    await registered;
    for (let i = 0; i < 500; i++) b.ws.send('not a re-authentication answer');
    expect(await b.closed).toEqual({ code: 1008, reason: 'control-rate' });
    await vi.waitFor(() =>
      expect(n.events.backendDisconnected.map((e) => e.reason)).toEqual(['control-rate']),
    );
  });

  it('refuses tokens without iss or aud when auth.backendEra is current, and challenges a minted token', async () => {
    const n = await node({ config: { auth: { backendEra: 'current' } } });
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(TEST_SECRET));
    for (const [claims, reason] of [
      [{ hostnames: ['a.test'] }, 'invalid token issuer'],
      [{ hostnames: ['a.test'], iss: 'authorizer' }, 'invalid token audience'],
    ] as const) {
      const ws = await openRaw(n);
      ws.send(await sign(claims));
      expect(await wsClosed(ws)).toEqual({ code: 1008, reason });
    }
    // A `nexus-proxy token` token (legacy `hostname`, iss/aud) is challenged in forced-current mode.
    const ws = await openRaw(n);
    const challenge = once(ws, 'message');
    ws.send(await n.token(['a.test']));
    const [data, isBinary] = (await challenge) as [Buffer, boolean];
    expect(isBinary).toBe(false);
    expect(JSON.parse(data.toString()).type).toBe('handshake_challenge');
  });

  it('never challenges when auth.backendEra is seed: a current-era token registers at once', async () => {
    const n = await node({ config: { auth: { backendEra: 'seed' } } });
    const service = await labelService('forced-seed');
    const registered = registration(n, 'plain.test');
    const b = await currentBackend(n, { claims: { hostnames: ['plain.test'] }, servicePort: service.port });
    await registered;
    expect(await httpGet(n.httpPort, 'plain.test')).toContain('forced-seed');
    expect(b.challenges).toEqual([]);
    expect(n.hub.sessions[0]?.identity.era).toBe('seed');
  });
});

async function openRaw(n: Pick<TestNode, 'hubPort'>) {
  const { WebSocket } = await import('ws');
  const ws = new WebSocket(`wss://127.0.0.1:${n.hubPort}/connect`, { ca: pki.ca.certPem });
  ws.on('error', () => {});
  cleanups.push(() => ws.terminate());
  await once(ws, 'open');
  return ws;
}

function wsClosed(ws: { once(event: 'close', l: (code: number, reason: Buffer) => void): unknown }) {
  return new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
}
