/**
 * Attack: hub and peer listener caps. Unauthenticated upgrades used to count against `maxSessions`
 * (10 000), so about 1 000 upgrades per second that never sent a token locked every real backend out;
 * nothing bounded handshakes, connections, or the sessions of one address or one token. Now: a separate
 * pending-auth budget (256, 16 per address), per-address and per-token session caps, a TLS handshake
 * timeout and a connection cap on the hub and peer listeners.
 */
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import {
  createTestPki,
  startNode,
  TEST_SECRET,
  type TestNode,
  type TestPki,
} from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { type CurrentClaimsInput, connectCurrentEraBackend } from '../helpers/current-era-backend.js';

const ATTACKER = '127.0.0.2';
/** These backends serve no stream: they only register. */
const noStreams = (): never => {
  throw new Error('no stream expected');
};

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

/** A WebSocket upgrade to the hub from `localAddress`; resolves `open` or the HTTP status. */
async function upgrade(
  n: TestNode,
  localAddress = '127.0.0.1',
): Promise<{ ws: WebSocket; result: number | 'open' }> {
  const ws = new WebSocket(n.hubUrl, { ca: pki.ca.certPem, localAddress });
  ws.on('error', () => {});
  cleanups.push(() => {
    ws.terminate();
  });
  const result = await new Promise<number | 'open'>((resolve) => {
    ws.once('open', () => resolve('open'));
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
  });
  return { ws, result };
}

describe('attack: unauthenticated upgrades lock real backends out (default settings)', () => {
  it('one address holding 100 upgrades without a token is capped at 16; a real backend still registers', async () => {
    const n = await node();
    const refused: string[] = [];
    n.hub.on('backend-refused', (e) => refused.push(e.reason));
    const attempts = await Promise.all(Array.from({ length: 100 }, () => upgrade(n, ATTACKER)));
    const opened = attempts.filter((a) => a.result === 'open').length;
    expect(opened).toBe(16);
    expect(attempts.filter((a) => a.result === 503).length).toBe(84);
    expect(new Set(refused)).toEqual(new Set(['address-pending-limit']));
    expect(n.hub.stats().authenticating).toBe(16);
    const started = Date.now();
    const backend = await n.attachBackend({ hostnames: ['real.example.com'], connectHandler: noStreams });
    expect(backend.sessionId).toBeDefined();
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('upgrades waiting for their token do not count against maxSessions', async () => {
    const n = await node({ limits: { maxSessions: 2 } });
    const waiting = await Promise.all(Array.from({ length: 10 }, () => upgrade(n, ATTACKER)));
    expect(waiting.every((w) => w.result === 'open')).toBe(true);
    await n.attachBackend({ hostnames: ['one.example.com'], connectHandler: noStreams });
    await n.attachBackend({ hostnames: ['two.example.com'], connectHandler: noStreams });
    expect(n.hub.sessions.length).toBe(2);
    // The third authenticated session is over maxSessions.
    expect((await upgrade(n)).result).toBe(503);
  });
});

describe('attack: sessions of one address or one token', () => {
  it('caps sessions per address (maxSessionsPerAddress) and per token (maxSessionsPerToken)', async () => {
    const n = await node({ limits: { maxSessionsPerAddress: 3, maxSessionsPerToken: 2 } });
    const refused: string[] = [];
    n.hub.on('backend-refused', (e) => refused.push(e.reason));
    const token = await n.token(['t.example.com']);
    const closes: Array<{ code: number; reason: string }> = [];
    for (let i = 0; i < 3; i++) {
      const { ws, result } = await upgrade(n);
      expect(result).toBe('open');
      ws.on('close', (code, reason) => closes.push({ code, reason: reason.toString() }));
      const registered = once(n.nexus, 'backend-connected');
      ws.send(token);
      if (i < 2) await registered;
    }
    await expect.poll(() => closes).toEqual([{ code: 1008, reason: 'too many sessions for this token' }]);
    expect(n.hub.sessions.length).toBe(2);
    await n.attachBackend({ hostnames: ['other.example.com'], connectHandler: noStreams });
    // Three sessions from 127.0.0.1 now: the next upgrade from it is refused, one from elsewhere is not.
    expect((await upgrade(n)).result).toBe(503);
    expect((await upgrade(n, ATTACKER)).result).toBe('open');
    expect(refused).toEqual(['address-session-limit']);
  });
});

describe('attack: a current-era backend minting a fresh token for every session', () => {
  it('caps sessions per backend identity (iss, sub, hostname and port sets), not per stage-0 token', async () => {
    const n = await node({ limits: { maxSessionsPerToken: 2 } });
    const attach = async (claims: CurrentClaimsInput) => {
      const b = await connectCurrentEraBackend({
        hubPort: n.hubPort,
        ca: pki.ca.certPem,
        secret: TEST_SECRET,
        claims,
      });
      cleanups.push(() => b.close());
      return b;
    };
    const registered = () => new Promise((resolve) => n.nexus.once('backend-connected', resolve));
    // Every token differs (its own `jti`); the hostname set is the same in any order.
    for (const [i, hostnames] of [
      ['a.example.com', 'b.example.com'],
      ['b.example.com', 'a.example.com'],
    ].entries()) {
      const up = registered();
      await attach({ sub: 'device-1', jti: `session-${i}`, hostnames, tcp_ports: [] });
      await up;
    }
    const third = await attach({
      sub: 'device-1',
      jti: 'session-2',
      hostnames: ['a.example.com', 'b.example.com'],
    });
    expect(await third.closed).toEqual({ code: 1008, reason: 'too many sessions for this backend identity' });
    expect(n.hub.sessions.length).toBe(2);
    // Another identity (another `sub`, or another hostname set) has its own count.
    for (const claims of [
      { sub: 'device-2', hostnames: ['a.example.com', 'b.example.com'] },
      { sub: 'device-1', hostnames: ['a.example.com'] },
    ]) {
      const up = registered();
      await attach(claims);
      await up;
    }
    expect(n.hub.sessions.length).toBe(4);
  });
});

describe('attack: idle TLS connections and connection floods on the hub', () => {
  it('closes a connection that does not finish its TLS handshake within tlsHandshakeTimeoutMs', async () => {
    const n = await node({ limits: { tlsHandshakeTimeoutMs: 500 } });
    const socket = netConnect({ host: '127.0.0.1', port: n.hubPort });
    socket.on('error', () => {});
    const started = Date.now();
    await once(socket, 'connect');
    await once(socket, 'close');
    const ms = Date.now() - started;
    expect(ms).toBeGreaterThanOrEqual(400);
    expect(ms).toBeLessThan(5_000);
  });

  it('holds at most maxListenerConnections connections', async () => {
    const n = await node({ limits: { maxListenerConnections: 5 } });
    const sockets = Array.from({ length: 8 }, () => {
      const s = netConnect({ host: '127.0.0.1', port: n.hubPort });
      s.on('error', () => {});
      cleanups.push(() => {
        s.destroy();
      });
      return s;
    });
    await Promise.all(sockets.map((s) => once(s, 'connect')));
    await expect.poll(() => sockets.filter((s) => s.destroyed || s.readableEnded).length).toBe(3);
  });
});
