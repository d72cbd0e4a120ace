/**
 * Attack: one address holding the whole sniff budget. With default settings (a budget of 256, no
 * per-address connection limit), hundreds of TCP connections from one address that never send a byte
 * used to hold every sniff slot for 15 s each, and a real TLS user from elsewhere was reset at once. The
 * budget is now shared between addresses (a newcomer takes the oldest slot of the address holding the
 * most), and connections arriving while half the budget is in use get 3 s for their first byte.
 */
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestPki,
  type TestNode,
  startNode,
  startService,
  type TestPki,
  type TestService,
} from '@nexus-proxy/test-harness';

const ATTACKER = '127.0.0.2';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Opens `n` TCP connections from `localAddress` that send nothing, in batches (the listen backlog). */
async function idleSockets(port: number, n: number, localAddress: string): Promise<Socket[]> {
  const sockets: Socket[] = [];
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
  });
  for (let i = 0; i < n; i += 100) {
    const batch = Array.from({ length: Math.min(100, n - i) }, () => {
      const s = netConnect({ host: '127.0.0.1', port, localAddress });
      s.on('error', () => {});
      sockets.push(s);
      return once(s, 'connect');
    });
    await Promise.all(batch);
  }
  return sockets;
}

/** A real TLS client from 127.0.0.1: handshake through the node with the service, one echo. */
async function tlsUser(port: number): Promise<{ ms: number; echoed: string }> {
  const started = Date.now();
  const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'app.test', ca: pki.ca.certPem });
  socket.on('error', () => {});
  try {
    await once(socket, 'secureConnect');
    socket.write('ping');
    const [data] = (await once(socket, 'data')) as [Buffer];
    return { ms: Date.now() - started, echoed: data.toString() };
  } finally {
    socket.destroy();
  }
}

async function nodeWithTlsService(): Promise<{ node: TestNode; service: TestService }> {
  const service = await startService((s) => s.on('data', (d) => s.write(d)), {
    tls: await pki.issue(['app.test']),
  });
  // Default limits: nothing about sniffing is configured.
  const node = await startNode({ pki, listeners: ['tls'] });
  cleanups.push(
    () => service.close(),
    () => node.close(),
  );
  await node.attachBackend({ hostnames: ['app.test'], service: service.port });
  return { node, service };
}

describe('attack: one address holds the sniff budget (default settings)', () => {
  it('serves real TLS users from another address while 127.0.0.2 holds 400 idle sockets', async () => {
    const { node } = await nodeWithTlsService();
    const attackStarted = Date.now();
    const attacker = await idleSockets(node.tlsPort, 400, ATTACKER);
    // The 144 beyond 256 are refused at once (by default one address holds at most 256 connections, and
    // never more than the whole budget).
    const failures = () => node.events.sniffFailed;
    const refused = (e: { reason: string }) => e.reason === 'ip-limit' || e.reason === 'over-budget';
    await expect.poll(() => failures().filter(refused).length).toBe(144);
    expect(attacker.filter((s) => !s.destroyed).length).toBeGreaterThanOrEqual(256);

    // 20 real users, one after the other: each is routed end to end within a second.
    const served: number[] = [];
    for (let i = 0; i < 20; i++) {
      const user = await tlsUser(node.tlsPort);
      expect(user.echoed).toBe('ping');
      served.push(user.ms);
    }
    expect(Math.max(...served)).toBeLessThan(1_000);
    // The first took the slot of an idle attacker socket (the budget was full); the others found it free
    // again. No user was refused or evicted.
    const evicted = failures().filter((e) => e.reason === 'evicted');
    expect(evicted.length).toBeGreaterThanOrEqual(1);
    expect(new Set(evicted.map((e) => e.remoteAddress))).toEqual(new Set([ATTACKER]));
    expect(node.events.streamOpen.length).toBe(20);
    expect(failures().filter((e) => e.remoteAddress !== ATTACKER)).toEqual([]);

    // The attacker's sockets that arrived while the budget was busy had 3 s, not 15 s, for a first byte.
    await expect
      .poll(() => failures().filter((e) => e.reason === 'sniff-timeout').length, { timeout: 6_000 })
      .toBeGreaterThanOrEqual(100);
    expect(Date.now() - attackStarted).toBeLessThan(15_000);
    console.info(
      `sniff budget: 20 TLS users served in max ${Math.max(...served)} ms (median ${served.sort((a, b) => a - b)[10]} ms) while ${ATTACKER} held 256 idle sockets`,
    );
  });

  it('a stream of new connections from the attacker cannot take slots back from real users', async () => {
    const { node } = await nodeWithTlsService();
    await idleSockets(node.tlsPort, 256, ATTACKER);
    // A real user holds a slot (connected, ClientHello not yet sent)...
    const user = netConnect({ host: '127.0.0.1', port: node.tlsPort });
    user.on('error', () => {});
    cleanups.push(() => {
      user.destroy();
    });
    await once(user, 'connect');
    await expect.poll(() => node.events.sniffFailed.filter((e) => e.reason === 'evicted').length).toBe(1);
    // ...while the attacker opens 100 more: all refused, none evicts the user.
    await idleSockets(node.tlsPort, 100, ATTACKER);
    await expect
      .poll(() => node.events.sniffFailed.filter((e) => e.reason === 'over-budget').length)
      .toBe(100);
    expect(user.destroyed).toBe(false);
    expect(node.events.sniffFailed.some((e) => e.remoteAddress === '127.0.0.1')).toBe(false);
  });
});
