/**
 * docs/reliability.md items 20 (hostile sniffing input) and 21 (slowloris), and the relay-side limits a public
 * node needs (concurrent sniffs, connections per source IP, ClientHello / HTTP head caps), through the
 * relay listeners of a whole node (`createNexus`) with a real backend client behind it. Sniff deadlines are
 * configured short (hundreds of ms) so the deadline behaviour runs on the real clock.
 */
import { createHash, randomBytes } from 'node:crypto';
import { resolvePortMappings } from '@nexus-proxy/backend-client';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SniffFailedEvent } from '../../src/nexus.js';
import {
  clientHello,
  type RawClient,
  rawConnect,
  type Extension,
  httpGet,
  type TestPki,
  createTestPki,
  delay,
  startHttpService,
  type StartNodeOptions,
  startNode,
  startRecordingService,
  type TestNode,
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

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** The `sniff-failed` event for `user` (matched by its source port), once reported. */
async function failureOf(node: TestNode, user: RawClient, timeoutMs = 3_000): Promise<SniffFailedEvent> {
  const port = user.localPort;
  await waitUntil(
    () => node.events.sniffFailed.some((e) => e.remotePort === port),
    timeoutMs,
    `sniff-failed of :${port}`,
  );
  return node.events.sniffFailed.find((e) => e.remotePort === port) as SniffFailedEvent;
}

/** Sends `bytes` (and a FIN when `end`), then expects the node to close the connection writing nothing. */
async function expectClosed(node: TestNode, port: number, bytes: Uint8Array, end = false) {
  const user = await rawConnect(port);
  user.socket.write(bytes);
  if (end) user.socket.end();
  const event = await failureOf(node, user);
  await user.closed;
  expect(user.received().length).toBe(0);
  return event;
}

/**
 * Sends `bytes` and expects the backend's service to receive exactly them as its connection `index`.
 * (v1 streams carry no half-close to the backend, docs/protocol.md §1.7, so the end user just goes away.)
 */
async function expectRouted(
  recorder: { received: Buffer[][] },
  port: number,
  bytes: Uint8Array,
  index: number,
): Promise<void> {
  const user = await rawConnect(port);
  user.socket.write(bytes);
  const got = () => Buffer.concat(recorder.received[index] ?? []);
  await waitUntil(() => got().length >= bytes.length, 3_000, 'routed bytes');
  expect(sha(got())).toBe(sha(bytes));
  expect(user.received().length).toBe(0);
  user.socket.destroy();
}

async function nodeWithBackend(config: StartNodeOptions['config'] = {}) {
  const node = await startNode({
    pki,
    config: {
      limits: { sniffFirstByteTimeoutMs: 600, sniffReadExtensionMs: 400, sniffAbsoluteTimeoutMs: 1_200 },
      ...config,
    },
  });
  cleanups.push(() => node.close());
  const http = await startHttpService('good');
  cleanups.push(() => http.close());
  const recorder = await startRecordingService();
  cleanups.push(() => recorder.close());
  const client = (
    await node.attachBackend({
      hostnames: ['good.example.com'],
      // TLS streams go to the recorder (to compare bytes), HTTP ones to the web service.
      portMappings: resolvePortMappings({
        [node.tlsPort]: `127.0.0.1:${recorder.port}`,
        [node.httpPort]: `127.0.0.1:${http.port}`,
      }),
    })
  ).client;
  cleanups.push(() => client.close({ graceMs: 0 }));
  return { node, recorder };
}

/** Many zero-length extensions (4 bytes each on the wire). */
const emptyExtensions = (n: number): Extension[] =>
  Array.from({ length: n }, (_, i) => ({ type: 0x1000 + i, data: new Uint8Array(0) }));
/**
 * A valid ClientHello of about 100 KiB: extensions are capped at 64 KiB by their 16-bit length, so 20 000
 * cipher suites (40 KB) make up the rest.
 */
const hello100KiB = () => clientHello('good.example.com', padding(60 * 1024), 20_000);
/** `total` bytes of padding (RFC 7685) split into extensions of at most 16 KiB. */
const padding = (total: number): Extension[] =>
  Array.from({ length: Math.ceil(total / 16_384) }, (_, i) => ({
    type: 0x2000 + i,
    data: new Uint8Array(Math.min(16_384, total - i * 16_384)),
  }));

describe('R20 sniffing', () => {
  it('closes hostile TLS openings with a clear reason and never answers; a good client still routes', async () => {
    const { node, recorder } = await nodeWithBackend();
    const port = node.tlsPort;
    const good = clientHello('good.example.com');

    // Random bytes that are not a handshake record.
    const random = randomBytes(1_024);
    random[0] = 0x47;
    expect(await expectClosed(node, port, random)).toMatchObject({
      reason: 'not-tls',
      bytesRead: 1_024,
      port,
    });

    // Random bytes behind a handshake record header: some verdict, never a crash, never an answer.
    for (let i = 0; i < 20; i++) {
      const bytes = Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), randomBytes(200 + i * 37)]);
      const e = await expectClosed(node, port, bytes, true);
      expect(['not-tls', 'too-large', 'client-closed']).toContain(e.reason);
    }

    // A truncated ClientHello: EOF while sniffing, or the sniff deadline when the client just waits.
    expect(await expectClosed(node, port, good.subarray(0, 60), true)).toMatchObject({
      reason: 'client-closed',
    });
    const waited = await expectClosed(node, port, good.subarray(0, 60));
    expect(waited.reason).toBe('sniff-timeout');

    // Lengths that point past the buffer: the extensions block, the SNI list, the handshake itself.
    const extLen = Buffer.from(good);
    extLen.writeUInt16BE(0xffff, 86);
    expect(await expectClosed(node, port, extLen)).toMatchObject({ reason: 'not-tls' });
    const sniLen = Buffer.from(good);
    sniLen.writeUInt16BE(0xfff0, 92);
    expect(await expectClosed(node, port, sniLen)).toMatchObject({ reason: 'not-tls' });
    const hsLen = Buffer.from(good);
    hsLen.writeUIntBE(0xffffff, 6, 3);
    expect(await expectClosed(node, port, hsLen)).toMatchObject({ reason: 'too-large' });

    // SNI of length 0 and SNI that is not ASCII: no valid name to route by (docs/protocol.md §4.1).
    expect(await expectClosed(node, port, clientHello(''))).toMatchObject({ reason: 'no-sni' });
    expect(await expectClosed(node, port, clientHello('bücher.example.com'))).toMatchObject({
      reason: 'no-sni',
    });
    expect(
      await expectClosed(node, port, clientHello(new Uint8Array([0xff, 0xfe, 0x2e, 0x63]))),
    ).toMatchObject({
      reason: 'no-sni',
    });

    // 10 000 extensions (40 KiB) and a 100 KiB ClientHello are over the 32 KiB cap.
    const manyExt = clientHello('good.example.com', emptyExtensions(10_000));
    expect(await expectClosed(node, port, manyExt)).toMatchObject({ reason: 'too-large' });
    const huge = hello100KiB();
    expect(await expectClosed(node, port, huge)).toMatchObject({ reason: 'too-large' });

    // The node still routes a good ClientHello, byte for byte.
    await expectRouted(recorder, port, good, 0);
    expect(node.nexus.hub.sessions).toHaveLength(1);
  });

  it('routes a 10 000-extension and a 100 KiB ClientHello when the cap allows them, byte for byte', async () => {
    const { node, recorder } = await nodeWithBackend({
      limits: {
        maxClientHelloBytes: 128 * 1024,
        sniffFirstByteTimeoutMs: 2_000,
        sniffReadExtensionMs: 2_000,
        sniffAbsoluteTimeoutMs: 5_000,
      },
    });
    const inputs = [clientHello('good.example.com', emptyExtensions(10_000)), hello100KiB()];
    for (const [i, bytes] of inputs.entries()) await expectRouted(recorder, node.tlsPort, bytes, i);
    expect(node.events.sniffFailed).toHaveLength(0);
  });

  it('closes hostile HTTP heads with a clear reason, routes Host with a port, and misses an IPv6 literal', async () => {
    const { node } = await nodeWithBackend();
    const port = node.httpPort;
    const head = (lines: string[]) =>
      Buffer.from(`GET / HTTP/1.1\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`);

    const random = randomBytes(2_048);
    random[0] = 0x00;
    expect(await expectClosed(node, port, random)).toMatchObject({ reason: 'not-http' });
    // A 1 MB head: closed once past the 64 KiB cap, long before the megabyte is read.
    const big = Buffer.concat([
      Buffer.from('GET / HTTP/1.1\r\nHost: good.example.com\r\n'),
      Buffer.alloc(1 << 20, 'a'),
    ]);
    const tooLarge = await expectClosed(node, port, big);
    expect(tooLarge.reason).toBe('too-large');
    expect(tooLarge.bytesRead).toBeLessThan(1 << 20);
    expect(await expectClosed(node, port, head(['User-Agent: x']))).toMatchObject({
      reason: 'bad-host',
      detail: 'missing-host',
    });
    expect(
      await expectClosed(node, port, head(['Host: good.example.com', 'Host: evil.example.com'])),
    ).toMatchObject({ reason: 'bad-host', detail: 'duplicate-host' });

    // Host with a port routes by the name; an IPv6 literal is a valid Host that no backend serves.
    expect(await httpGet(port, 'good.example.com:8080')).toContain('served-by good');
    const v6 = await expectClosed(node, port, head(['Host: [::1]:8080']));
    expect(v6).toMatchObject({ reason: 'no-route', hostname: '[::1]' });
    expect(node.events.routeMiss.at(-1)).toMatchObject({ hostname: '[::1]', isTls: false });

    expect(await httpGet(port, 'good.example.com')).toContain('served-by good');
    expect(node.nexus.hub.sessions).toHaveLength(1);
  });
});

describe('R21 slowloris', () => {
  /**
   * Opens `n` connections that each send one byte of a ClientHello every `everyMs`, from the moment each
   * one is connected. Opened in batches: a burst of 1 000 SYNs would overflow the listen backlog and be
   * retried a second later.
   */
  async function slowloris(port: number, n: number, everyMs: number, localAddress?: string) {
    const hello = clientHello('good.example.com');
    const users: Array<RawClient & { openedFrom: number; openedBy: number }> = [];
    const timers = new Set<NodeJS.Timeout>();
    cleanups.push(() => {
      for (const t of timers) clearTimeout(t);
      for (const u of users) u.socket.destroy();
    });
    const drip = (u: RawClient, sent: number): void => {
      if (u.socket.destroyed || sent >= hello.length) return;
      u.socket.write(hello.subarray(sent, sent + 1));
      const t = setTimeout(() => {
        timers.delete(t);
        drip(u, sent + 1);
      }, everyMs);
      timers.add(t);
    };
    for (let i = 0; i < n; i += 200) {
      const openedFrom = Date.now();
      const batch = await Promise.all(
        Array.from({ length: Math.min(200, n - i) }, () => rawConnect(port, { localAddress: localAddress })),
      );
      const openedBy = Date.now();
      for (const u of batch) {
        users.push(Object.assign(u, { openedFrom, openedBy }));
        drip(u, 0);
      }
    }
    return users;
  }

  it('closes 1 000 dripping connections at the sniff deadline, the excess over the budget at once', async () => {
    const ABSOLUTE = 5_000; // long enough to open 1 000 connections first, even on a loaded machine
    const { node } = await nodeWithBackend({
      limits: {
        maxConcurrentSniffs: 256,
        // All from one address: the per-address cap (256 by default) is off so the budget is what refuses.
        maxConnectionsPerIp: 0,
        sniffFirstByteTimeoutMs: 800,
        sniffReadExtensionMs: 500,
        sniffAbsoluteTimeoutMs: ABSOLUTE,
      },
    });
    const t0 = Date.now();
    // One byte every 300 ms: each read extends the deadline by 500 ms, so only the absolute one ends them.
    const users = await slowloris(node.tlsPort, 1_000, 300);
    expect(Date.now() - t0).toBeLessThan(ABSOLUTE - 500); // all open before the first deadline
    await Promise.all(users.map((u) => u.closed));
    const reasons = new Map<string, number>();
    for (const e of node.events.sniffFailed) reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
    expect(Object.fromEntries(reasons)).toEqual({ 'over-budget': 744, 'sniff-timeout': 256 });
    const byPort = new Map(node.events.sniffFailed.map((e) => [e.remotePort, e]));
    for (const u of users) {
      expect(u.received().length).toBe(0);
      const event = byPort.get(u.localPort);
      const closedAt = u.closedAt ?? 0;
      if (event?.reason === 'sniff-timeout') {
        expect(closedAt - u.openedFrom).toBeGreaterThanOrEqual(ABSOLUTE - 20);
        expect(event.bytesRead).toBeGreaterThan(3); // it did drip: the read extensions were not enough
      } else {
        expect(closedAt - u.openedBy).toBeLessThan(ABSOLUTE / 2); // over the budget: at once, not at a deadline
      }
    }
    expect(Date.now() - t0).toBeLessThan(2 * ABSOLUTE);
    // Every slot was given back: a real user gets through at once.
    expect(await httpGet(node.httpPort, 'good.example.com')).toContain('served-by good');
  });

  it('with the default limits, real users from another address are served on both relay modes while 1 000 dripping connections from one address hold what they can', async () => {
    // Every limit at its default (concurrent-sniff budget shared between addresses, sniff deadlines of
    // 15 s / 30 s): what a node gets when its operator never read the limits page.
    const { node, recorder } = await nodeWithBackend({ limits: {} });
    const users = await slowloris(node.tlsPort, 1_000, 300, '127.0.0.2');
    // The attack goes on for all of the check: no default deadline is reached within it.
    const hello = clientHello('good.example.com');
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      expect(await httpGet(node.httpPort, 'good.example.com')).toContain('served-by good');
      await expectRouted(recorder, node.tlsPort, hello, i);
      expect(Date.now() - started).toBeLessThan(1_000);
      await delay(300);
    }
    expect(users.filter((u) => !u.socket.destroyed).length).toBeGreaterThan(0);
    // Only the attacker was ever turned away, and never got a byte.
    expect(node.events.sniffFailed.filter((e) => e.remoteAddress !== '127.0.0.2')).toEqual([]);
    for (const u of users) expect(u.received().length).toBe(0);
  });

  it('with a per-IP limit, a real user gets through while 1 000 dripping connections from one address wait', async () => {
    const { node } = await nodeWithBackend({
      limits: {
        maxConcurrentSniffs: 256,
        maxConnectionsPerIp: 200,
        sniffFirstByteTimeoutMs: 800,
        sniffReadExtensionMs: 500,
        sniffAbsoluteTimeoutMs: 2_500,
      },
    });
    const users = await slowloris(node.tlsPort, 1_000, 300, '127.0.0.2');
    await waitUntil(() => node.events.sniffFailed.length >= 800, 3_000, 'ip-limit closes');
    expect(new Set(node.events.sniffFailed.map((e) => `${e.reason} ${e.remoteAddress}`))).toEqual(
      new Set(['ip-limit 127.0.0.2']),
    );
    // Meanwhile (200 still sniffing from 127.0.0.2) a user from 127.0.0.1 is routed and answered.
    const open = users.filter((u) => !u.socket.destroyed).length;
    expect(open).toBe(200);
    const started = Date.now();
    expect(await httpGet(node.httpPort, 'good.example.com')).toContain('served-by good');
    expect(Date.now() - started).toBeLessThan(500);
    expect(users.filter((u) => !u.socket.destroyed).length).toBeGreaterThan(0);
    await Promise.all(users.map((u) => u.closed));
    const timeouts = node.events.sniffFailed.filter((e) => e.reason === 'sniff-timeout').length;
    expect(timeouts).toBe(200);
  });
});
