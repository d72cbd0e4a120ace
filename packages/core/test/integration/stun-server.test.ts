/**
 * The STUN Binding server on real UDP sockets (docs/edge.md "STUN"): a node `dgram` client over IPv4 and
 * IPv6 and coturn's `turnutils_stunclient` get their own address and port back; hostile datagrams are
 * dropped and counted; the answer rates hold, node-wide and per address; a node with `stunPort` runs it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { promisify } from 'node:util';
import { createTestPki, startNode, type TestPki } from '@nexus-proxy/test-harness';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { bindingRequest } from '../../src/stun-message.js';
import { StunServer, type StunServerStats } from '../../src/stun-server.js';
import { decodeAnswer, decodeXorMapped } from '../helpers/stun.js';

const run = promisify(execFile);
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

const LIMITS = { stunMaxResponsesPerSecond: 10_000, stunMaxResponsesPerAddressPerSecond: 1_000 };

async function server(
  options: Partial<ConstructorParameters<typeof StunServer>[0]> = {},
): Promise<{ stun: StunServer; port: number }> {
  const stun = new StunServer({ port: 0, limits: LIMITS, ...options });
  const { port } = await stun.listen();
  cleanups.push(() => stun.close());
  return { stun, port };
}

async function client(type: 'udp4' | 'udp6', host: string): Promise<dgram.Socket> {
  const socket = dgram.createSocket(type);
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  return socket;
}

/** Sends `datagram` and resolves with the first answer, or `undefined` after `waitMs`. */
function exchange(
  socket: dgram.Socket,
  port: number,
  host: string,
  datagram: Buffer,
  waitMs = 2_000,
): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('message', onMessage);
      resolve(undefined);
    }, waitMs);
    const onMessage = (msg: Buffer) => {
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve(msg);
    };
    socket.on('message', onMessage);
    socket.send(datagram, port, host);
  });
}

/** Polls until `check` holds (counters update when a send completes). */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const totalDropped = (s: StunServerStats) => Object.values(s.dropped).reduce((a, b) => a + b, 0);

describe('STUN Binding server', () => {
  it.each([
    ['IPv4', 'udp4', '127.0.0.1'],
    ['IPv6', 'udp6', '::1'],
  ] as const)('answers a node dgram client over %s with its own address and port', async (_n, type, host) => {
    const { stun, port } = await server();
    const socket = await client(type, host);
    const id = randomBytes(12);
    const msg = await exchange(socket, port, host, bindingRequest(id));
    expect(msg).toBeDefined();
    const answer = decodeAnswer(msg!);
    expect(answer.type).toBe(0x0101);
    expect(answer.transactionId).toEqual(id);
    expect(answer.fingerprintOk).toBe(true);
    const mapped = decodeXorMapped(answer.attributes[0]!.value, id);
    const expected = host === '::1' ? '0:0:0:0:0:0:0:1' : host;
    expect(mapped).toEqual({ address: expected, port: socket.address().port });
    await until(() => stun.stats().responses === 1, 'the response count');
  });

  it('coturn’s turnutils_stunclient reads its mapped address from the answer (IPv4 and IPv6)', async () => {
    const { stun, port } = await server();
    for (const host of ['127.0.0.1', '::1']) {
      const { stdout } = await run('turnutils_stunclient', ['-p', String(port), host], { timeout: 10_000 });
      // It prints "IPv4. UDP reflexive addr: 127.0.0.1:40123" ("::1:40123" for IPv6).
      const match = /UDP reflexive addr: (.+):(\d+)\s*$/m.exec(stdout);
      expect(match, stdout).not.toBeNull();
      expect(match?.[1]).toBe(host);
      expect(Number(match?.[2])).toBeGreaterThan(0);
    }
    await until(() => stun.stats().responses >= 2, 'both answers');
    expect(totalDropped(stun.stats())).toBe(0);
  });

  it('answers a request with an unknown comprehension-required attribute with 420', async () => {
    const { stun, port } = await server();
    const socket = await client('udp4', '127.0.0.1');
    const id = randomBytes(12);
    const req = Buffer.concat([
      bindingRequest(id, { fingerprint: false }),
      Buffer.from([0, 3, 0, 4, 0, 0, 0, 6]),
    ]);
    req.writeUInt16BE(8, 2);
    const answer = decodeAnswer((await exchange(socket, port, '127.0.0.1', req))!);
    expect(answer.type).toBe(0x0111);
    expect(answer.attributes.find((a) => a.type === 0x000a)?.value.readUInt16BE(0)).toBe(0x0003);
    await until(() => stun.stats().errorResponses === 1, 'the error response count');
  });

  it('drops and counts hostile datagrams, and still answers the next good one', async () => {
    const { stun, port } = await server();
    const socket = await client('udp4', '127.0.0.1');
    const response = bindingRequest(randomBytes(12), { fingerprint: false });
    response.writeUInt16BE(0x0101, 0);
    const badFingerprint = bindingRequest(randomBytes(12));
    badFingerprint.writeUInt32BE(1, badFingerprint.length - 4);
    const hostile = [
      Buffer.alloc(0),
      Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n'),
      randomBytes(19),
      response,
      badFingerprint,
      Buffer.alloc(4_000),
    ];
    for (const d of hostile) socket.send(d, port, '127.0.0.1');
    const id = randomBytes(12);
    const answer = await exchange(socket, port, '127.0.0.1', bindingRequest(id));
    expect(decodeAnswer(answer!).transactionId).toEqual(id);
    await until(() => stun.stats().received === hostile.length + 1, 'every datagram');
    const { dropped, responses } = stun.stats();
    expect(responses).toBe(1);
    expect(dropped).toMatchObject({
      malformed: 2,
      'not-stun': 1,
      'not-binding-request': 1,
      'bad-attribute': 1,
      oversize: 1,
    });
  });

  it('caps answers per address and node-wide per second; a new second refills both', async () => {
    // Only Date is faked: the rate windows read the clock, the sockets keep their real timers.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
    const { stun, port } = await server({
      limits: { stunMaxResponsesPerSecond: 5, stunMaxResponsesPerAddressPerSecond: 3 },
    });
    const a = await client('udp4', '127.0.0.1');
    const b = await client('udp6', '::1');
    const answered = { a: 0, b: 0 };
    a.on('message', () => answered.a++);
    b.on('message', () => answered.b++);
    for (let i = 0; i < 10; i++) a.send(bindingRequest(randomBytes(12)), port, '127.0.0.1');
    await until(() => stun.stats().received === 10, 'the first burst');
    for (let i = 0; i < 10; i++) b.send(bindingRequest(randomBytes(12)), port, '::1');
    await until(() => stun.stats().received === 20, 'the second burst');
    await until(() => answered.a + answered.b === 5, 'the answers');
    expect(answered).toEqual({ a: 3, b: 2 });
    expect(stun.stats().dropped).toMatchObject({ 'address-rate-limited': 7, 'rate-limited': 8 });
    vi.setSystemTime(new Date('2026-01-01T00:00:01Z'));
    expect(await exchange(a, port, '127.0.0.1', bindingRequest(randomBytes(12)))).toBeDefined();
  });

  it('refuses new addresses once the window tracks its maximum', async () => {
    const { stun, port } = await server({ maxTrackedAddresses: 1 });
    const a = await client('udp4', '127.0.0.1');
    const b = await client('udp6', '::1');
    expect(await exchange(a, port, '127.0.0.1', bindingRequest(randomBytes(12)))).toBeDefined();
    expect(await exchange(b, port, '::1', bindingRequest(randomBytes(12)), 300)).toBeUndefined();
    expect(stun.stats().dropped['address-rate-limited']).toBe(1);
  });

  it('a busy port is a NEXUS_ERR_LISTEN error', async () => {
    const { port } = await server({ host: '127.0.0.1' });
    const second = new StunServer({ port, host: '127.0.0.1', limits: LIMITS });
    await expect(second.listen()).rejects.toMatchObject({ code: 'NEXUS_ERR_LISTEN' });
  });
});

describe('a node with stunPort', () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await createTestPki();
  });

  it('runs the STUN server on it, and closes it with the node', async () => {
    // A free UDP port: bound once, released, then given to the node.
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    const stunPort = probe.address().port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const node = await startNode({ pki, listeners: ['tls'], config: { stunPort, bindHost: '127.0.0.1' } });
    let closed = false;
    cleanups.push(() => (closed ? undefined : node.close()));
    expect(node.nexus.config.stun).toEqual({ port: stunPort, host: '127.0.0.1' });
    const socket = await client('udp4', '127.0.0.1');
    const id = randomBytes(12);
    const answer = await exchange(socket, stunPort, '127.0.0.1', bindingRequest(id));
    expect(decodeXorMapped(decodeAnswer(answer!).attributes[0]!.value, id).port).toBe(socket.address().port);
    expect(node.nexus.stun?.stats().received).toBe(1);
    await node.close();
    closed = true;
    expect(node.nexus.stun?.address()).toBeUndefined();
    expect(
      await exchange(socket, stunPort, '127.0.0.1', bindingRequest(randomBytes(12)), 300),
    ).toBeUndefined();
  });
});
