import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 8_000 });

import {
  createRelayListener,
  type RelayCloseEvent,
  type RelayListener,
  type RelayListenerOptions,
} from '../../src/relay-listener.js';
import { SniffBudget, type SniffedConnection } from '../../src/sniff-connection.js';
import { rawConnect, socketPair, TapDuplex, waitUntil } from '@nexus-proxy/test-harness';

interface Harness {
  listener: RelayListener;
  port: number;
  routed: { socket: Socket; sniffed: SniffedConnection }[];
  closes: RelayCloseEvent[];
  nextRouted(): Promise<{ socket: Socket; sniffed: SniffedConnection }>;
  nextClose(): Promise<RelayCloseEvent>;
}

const open: RelayListener[] = [];
const routedSockets: Socket[] = [];

afterEach(async () => {
  for (const s of routedSockets.splice(0)) s.destroy();
  await Promise.all(open.splice(0).map((l) => l.close()));
});

async function start(
  opts: Partial<RelayListenerOptions> & Pick<RelayListenerOptions, 'mode'>,
  onRouted?: RelayListenerOptions['onRouted'],
): Promise<Harness> {
  const routed: Harness['routed'] = [];
  const closes: RelayCloseEvent[] = [];
  let routedWaiters: ((r: Harness['routed'][number]) => void)[] = [];
  let closeWaiters: ((e: RelayCloseEvent) => void)[] = [];
  let routedSeen = 0;
  let closeSeen = 0;
  const listener = createRelayListener({
    host: '127.0.0.1',
    port: 0,
    ...opts,
    onRouted(socket, sniffed) {
      routedSockets.push(socket);
      routed.push({ socket, sniffed });
      const w = routedWaiters;
      routedWaiters = [];
      for (const f of w) f({ socket, sniffed });
      return onRouted?.(socket, sniffed);
    },
    onClose(e) {
      closes.push(e);
      const w = closeWaiters;
      closeWaiters = [];
      for (const f of w) f(e);
    },
  });
  open.push(listener);
  const { port } = await listener.listen();
  return {
    listener,
    port,
    routed,
    closes,
    nextRouted() {
      const i = routedSeen++;
      if (routed[i]) return Promise.resolve(routed[i]);
      return new Promise((r) => routedWaiters.push(() => r(routed[i]!)));
    },
    nextClose() {
      const i = closeSeen++;
      if (closes[i]) return Promise.resolve(closes[i]);
      return new Promise((r) => {
        const wait = () => (closes[i] ? r(closes[i]) : closeWaiters.push(wait));
        wait();
      });
    },
  };
}

function httpHead(host: string, extraHeaderBytes = 0): Buffer {
  const filler = extraHeaderBytes > 0 ? `X-Filler: ${'a'.repeat(extraHeaderBytes)}\r\n` : '';
  return Buffer.from(`GET /path?q=1 HTTP/1.1\r\nHost: ${host}\r\n${filler}Accept: */*\r\n\r\n`);
}

describe('createRelayListener (tls)', () => {
  it('routes a real ClientHello by SNI and the prelude equals the bytes the client sent', async () => {
    const h = await start({ mode: 'tls' });
    const raw = (await rawConnect(h.port)).socket;
    const tap = new TapDuplex(raw);
    const client = tlsConnect({
      socket: tap,
      servername: 'App.Example.com',
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    client.on('error', () => {});
    const { sniffed, socket } = await h.nextRouted();
    expect(sniffed.hostname).toBe('app.example.com');
    expect(sniffed.isTls).toBe(true);
    expect(sniffed.alpn).toEqual(['h2', 'http/1.1']);
    expect(sniffed.ech).toBe(false);
    expect(Buffer.compare(sniffed.prelude, Buffer.concat(tap.sent))).toBe(0);
    // The routed socket is handed over paused with no data listener left behind.
    expect(socket.isPaused()).toBe(true);
    expect(socket.listenerCount('data')).toBe(0);
    expect(tap.received.length).toBe(0);
    client.destroy();
  });

  it('keeps bytes that arrived after the ClientHello in the prelude and loses none afterwards', async () => {
    // Capture a real ClientHello first, then replay it with trailing bytes in the same write.
    const cap = await start({ mode: 'tls' });
    const tap = new TapDuplex((await rawConnect(cap.port)).socket);
    const c = tlsConnect({ socket: tap, servername: 'a.example.com' });
    c.on('error', () => {});
    await cap.nextRouted();
    const hello = Buffer.concat(tap.sent);
    c.destroy();

    const h = await start({ mode: 'tls' });
    const client = await rawConnect(h.port);
    const extra = Buffer.from('early-bytes');
    client.socket.write(Buffer.concat([hello, extra]));
    const { sniffed, socket } = await h.nextRouted();
    expect(sniffed.hostname).toBe('a.example.com');
    expect(Buffer.compare(sniffed.prelude, Buffer.concat([hello, extra]))).toBe(0);
    // Bytes sent later are still readable from the paused socket.
    client.socket.end('later');
    const rest: Buffer[] = [];
    socket.on('data', (d: Buffer) => rest.push(d));
    socket.resume();
    await once(socket, 'end');
    expect(Buffer.concat(rest).toString()).toBe('later');
  });

  it('routes a ClientHello split into one-byte TCP writes', async () => {
    const cap = await start({ mode: 'tls' });
    const tap = new TapDuplex((await rawConnect(cap.port)).socket);
    const c = tlsConnect({ socket: tap, servername: 'split.example.com' });
    c.on('error', () => {});
    await cap.nextRouted();
    const hello = Buffer.concat(tap.sent);
    c.destroy();

    const h = await start({ mode: 'tls' });
    const client = await rawConnect(h.port);
    client.socket.setNoDelay(true);
    const routed = h.nextRouted();
    for (let i = 0; i < hello.length; i += 97) {
      client.socket.write(hello.subarray(i, i + 97));
      await new Promise((r) => setImmediate(r));
    }
    const { sniffed } = await routed;
    expect(sniffed.hostname).toBe('split.example.com');
    expect(sniffed.prelude.length).toBe(hello.length);
  });

  it('closes a ClientHello without SNI and the client receives 0 bytes', async () => {
    const h = await start({ mode: 'tls' });
    const raw = (await rawConnect(h.port)).socket;
    const tap = new TapDuplex(raw);
    // Node sends no SNI when connecting to an IP literal without `servername`.
    const client = tlsConnect({ socket: tap, host: '127.0.0.1', rejectUnauthorized: false });
    client.on('error', () => {});
    const ev = await h.nextClose();
    expect(ev.reason).toBe('no-sni');
    await once(raw, 'close');
    expect(Buffer.concat(tap.received).length).toBe(0);
    expect(h.routed).toHaveLength(0);
  });

  it('closes a plain-text connection on a TLS port without answering', async () => {
    const h = await start({ mode: 'tls' });
    const client = await rawConnect(h.port);
    client.socket.write(httpHead('a.example.com'));
    const ev = await h.nextClose();
    expect(ev.reason).toBe('not-tls');
    expect(ev.detail).toBe('not-handshake-record');
    await client.closed;
    expect(client.received().length).toBe(0);
  });

  it('closes with no-route when onRouted returns that reason, writing nothing', async () => {
    const h = await start({ mode: 'http' }, () => 'no-route');
    const client = await rawConnect(h.port);
    client.socket.write(httpHead('nobody.example.com'));
    const ev = await h.nextClose();
    expect(ev).toMatchObject({
      reason: 'no-route',
      hostname: 'nobody.example.com',
      remoteAddress: '127.0.0.1',
    });
    await client.closed;
    expect(client.received().length).toBe(0);
  });
});

describe('createRelayListener (http)', () => {
  it('routes by Host with the port stripped and keeps the body bytes in the prelude', async () => {
    const h = await start({ mode: 'http' });
    const client = await rawConnect(h.port);
    const req = Buffer.concat([
      Buffer.from('POST /upload HTTP/1.1\r\nHost: Api.Example.com:8080\r\nContent-Length: 4\r\n\r\n'),
      Buffer.from('body'),
    ]);
    client.socket.write(req);
    const { sniffed } = await h.nextRouted();
    expect(sniffed).toMatchObject({
      hostname: 'api.example.com',
      isTls: false,
      method: 'POST',
      path: '/upload',
    });
    expect(Buffer.compare(sniffed.prelude, req)).toBe(0);
  });

  it('routes a 40 KiB request head', async () => {
    const h = await start({ mode: 'http' });
    const client = await rawConnect(h.port);
    const head = httpHead('big.example.com', 40 * 1024);
    client.socket.write(head);
    const { sniffed } = await h.nextRouted();
    expect(sniffed.hostname).toBe('big.example.com');
    expect(sniffed.prelude.length).toBe(head.length);
  });

  it('closes a 1 MB request head as too-large without answering', async () => {
    const h = await start({ mode: 'http' });
    const client = await rawConnect(h.port);
    client.socket.write(httpHead('big.example.com', 1024 * 1024));
    const ev = await h.nextClose();
    expect(ev.reason).toBe('too-large');
    expect(ev.bytesRead).toBeLessThanOrEqual(64 * 1024 + 65_536);
    await client.closed;
    expect(client.received().length).toBe(0);
  });

  it('closes a head with two Host headers as bad-host', async () => {
    const h = await start({ mode: 'http' });
    const client = await rawConnect(h.port);
    client.socket.write('GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n');
    const ev = await h.nextClose();
    expect(ev).toMatchObject({ reason: 'bad-host', detail: 'duplicate-host' });
    await client.closed;
    expect(client.received().length).toBe(0);
  });

  it('closes a client that half-closes before its head is complete', async () => {
    const h = await start({ mode: 'http' });
    const client = await rawConnect(h.port);
    client.socket.end('GET / HTTP/1.1\r\n');
    const ev = await h.nextClose();
    expect(ev.reason).toBe('client-closed');
    await client.closed;
    expect(client.received().length).toBe(0);
  });
});

describe('createRelayListener deadlines and budgets', () => {
  it('closes a connection that sends nothing at the first-byte deadline', async () => {
    const h = await start({ mode: 'tls', limits: { sniffFirstByteTimeoutMs: 100 } });
    const t0 = Date.now();
    const client = await rawConnect(h.port);
    const ev = await h.nextClose();
    expect(ev.reason).toBe('sniff-timeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    await client.closed;
    expect(client.received().length).toBe(0);
  });

  it('closes a slowloris client at the absolute deadline although every read extends the deadline', async () => {
    const h = await start({
      mode: 'http',
      limits: { sniffFirstByteTimeoutMs: 1_000, sniffReadExtensionMs: 200, sniffAbsoluteTimeoutMs: 400 },
    });
    const client = await rawConnect(h.port);
    const t0 = Date.now();
    const drip = setInterval(() => client.socket.write('G'), 50);
    try {
      const ev = await h.nextClose();
      expect(ev.reason).toBe('sniff-timeout');
      const elapsed = Date.now() - t0;
      expect(elapsed).toBeGreaterThanOrEqual(350);
      expect(elapsed).toBeLessThan(1_000);
    } finally {
      clearInterval(drip);
    }
    await client.closed;
    expect(client.received().length).toBe(0);
  });

  it('closes connections over the sniff budget at once while a real client still gets through', async () => {
    const budget = new SniffBudget(4);
    // Two listeners share the node's budget.
    const a = await start({ mode: 'http', budget, limits: { sniffFirstByteTimeoutMs: 30_000 } });
    const b = await start({ mode: 'http', budget, limits: { sniffFirstByteTimeoutMs: 30_000 } });
    const slow = [];
    for (let i = 0; i < 3; i++) slow.push(await rawConnect(i % 2 === 0 ? a.port : b.port));
    await waitUntil(() => budget.active === 3);

    // A real client still fits in the last slot and is routed; it leaves the budget once routed.
    const real = await rawConnect(b.port);
    real.socket.write(httpHead('real.example.com'));
    const { sniffed } = await b.nextRouted();
    expect(sniffed.hostname).toBe('real.example.com');
    expect(budget.active).toBe(3);

    slow.push(await rawConnect(a.port));
    await waitUntil(() => budget.active === 4);
    const t0 = Date.now();
    const over = await rawConnect(a.port);
    await over.closed;
    expect(Date.now() - t0).toBeLessThan(1_000);
    expect(over.received().length).toBe(0);
    expect(a.closes.map((e) => e.reason)).toContain('over-budget');

    // Closing sniffing connections frees their slots.
    for (const s of slow) s.socket.destroy();
    await waitUntil(() => budget.active === 0);
    const again = await rawConnect(a.port);
    again.socket.write(httpHead('again.example.com'));
    expect((await a.nextRouted()).sniffed.hostname).toBe('again.example.com');
  });

  it('enforces the per-IP connection limit', async () => {
    const h = await start({ mode: 'http', limits: { maxConnectionsPerIp: 2 } });
    const c1 = await rawConnect(h.port);
    const c2 = await rawConnect(h.port);
    await waitUntil(() => h.listener.sniffing === 2);
    const c3 = await rawConnect(h.port);
    const ev = await h.nextClose();
    expect(ev.reason).toBe('ip-limit');
    await c3.closed;
    expect(c3.received().length).toBe(0);
    c1.socket.destroy();
    await h.nextClose();
    const c4 = await rawConnect(h.port);
    c4.socket.write(httpHead('ok.example.com'));
    expect((await h.nextRouted()).sniffed.hostname).toBe('ok.example.com');
    c2.socket.destroy();
  });

  it('destroys sniffing connections with reason shutdown on close()', async () => {
    const h = await start({ mode: 'tls' });
    const client = await rawConnect(h.port);
    await waitUntil(() => h.listener.sniffing === 1);
    await h.listener.close();
    const ev = await h.nextClose();
    expect(ev.reason).toBe('shutdown');
    await client.closed;
    expect(client.received().length).toBe(0);
  });

  it('sniffs a socket handed in through handleConnection', async () => {
    const routed: SniffedConnection[] = [];
    const listener = createRelayListener({ mode: 'http', onRouted: (_s, sn) => void routed.push(sn) });
    open.push(listener);
    const pair = await socketPair();
    listener.handleConnection(pair.server);
    pair.client.write(httpHead('byo.example.com'));
    await waitUntil(() => routed.length === 1);
    expect(routed[0]?.hostname).toBe('byo.example.com');
    await pair.close();
  });
});

// A routed socket handed to an asynchronous `onRouted` must have an `'error'` listener while the callee
// awaits: an end user's reset in that window would otherwise crash the process.
describe('relay listener with an asynchronous onRouted', () => {
  it('survives an end-user reset while onRouted is still deciding', async () => {
    let release!: () => void;
    const decided = new Promise<void>((r) => {
      release = r;
    });
    let routedSocket: Socket | undefined;
    const routed = new Promise<void>((resolveRouted) => {
      const listener = createRelayListener({
        host: '127.0.0.1',
        port: 0,
        mode: 'http',
        async onRouted(socket) {
          routedSocket = socket;
          resolveRouted();
          await decided;
          return 'no-route';
        },
      });
      open.push(listener);
    });
    const { port } = await open[0]!.listen();
    const client = connect({ host: '127.0.0.1', port });
    client.on('error', () => {});
    await once(client, 'connect');
    client.write('GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n');
    await routed;
    // The end user resets the connection while the owner is still deciding.
    const closed = new Promise<void>((r) => routedSocket!.once('close', () => r()));
    client.resetAndDestroy();
    await closed;
    release();
    await new Promise((r) => setTimeout(r, 50));
    expect(routedSocket!.destroyed).toBe(true);
  });
});
