import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { InvalidConfigError } from '../src/errors.js';
import {
  createFaultProxy,
  type FaultLink,
  type FaultProxy,
  type FaultProxyTarget,
} from '../src/testing/index.js';

vi.setConfig({ testTimeout: 15_000 });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Real-time sleep (only in tests that do not fake timers). */
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `cond` on the I/O loop (setImmediate is never faked here), with a real-time deadline. */
async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = process.hrtime.bigint() + BigInt(timeoutMs) * 1_000_000n;
  while (!cond()) {
    if (process.hrtime.bigint() > deadline) throw new Error('until() timed out');
    await new Promise<void>((r) => setImmediate(r));
  }
}

/** Let the event loop run `turns` rounds of I/O. */
async function spin(turns = 50): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Fake only the clocks the proxy schedules with, so socket I/O keeps running for real. */
const fakeClocks = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });

/** A socket end that records what it receives, whether it saw a FIN and which error it got. */
interface Peer {
  socket: Socket;
  data: () => Buffer;
  ended: boolean;
  error: NodeJS.ErrnoException | undefined;
  closed: Promise<void>;
}

function record(socket: Socket): Peer {
  const chunks: Buffer[] = [];
  const peer: Peer = {
    socket,
    data: () => Buffer.concat(chunks),
    ended: false,
    error: undefined,
    closed: new Promise((r) => socket.once('close', () => r())),
  };
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('end', () => {
    peer.ended = true;
  });
  socket.on('error', (err) => {
    peer.error = err;
  });
  return peer;
}

async function listen(server: Server): Promise<FaultProxyTarget> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { host: '127.0.0.1', port: (server.address() as AddressInfo).port };
}

/** A TCP server on loopback; `peers` holds its accepted sockets, recorded. */
async function tcpServer(onConnection?: (socket: Socket) => void) {
  const server = createServer({ allowHalfOpen: true });
  const peers: Peer[] = [];
  server.on('connection', (socket) => {
    peers.push(record(socket));
    onConnection?.(socket);
  });
  const target = await listen(server);
  cleanups.push(async () => {
    for (const p of peers) p.socket.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { server, target, peers };
}

/** An echo server that passes a FIN back after the last byte. */
const echoServer = () => tcpServer((s) => s.pipe(s));

async function proxyTo(target: FaultProxyTarget): Promise<FaultProxy> {
  const proxy = await createFaultProxy({ target });
  cleanups.push(() => proxy.close());
  return proxy;
}

/** Connect a recorded client through the proxy and wait until its link relays. */
async function client(proxy: FaultProxy, allowHalfOpen = false): Promise<Peer & { link: FaultLink }> {
  const linked = once(proxy, 'link') as Promise<[FaultLink]>;
  const socket = connect({ host: '127.0.0.1', port: proxy.port, allowHalfOpen });
  const peer = record(socket);
  cleanups.push(() => {
    socket.destroy();
  });
  const [[link]] = await Promise.all([linked, once(socket, 'connect')]);
  await until(() => link.state === 'open');
  return Object.assign(peer, { link });
}

describe('FaultProxy', () => {
  it('relays 50 MB both ways unchanged while transparent', async () => {
    const { target } = await echoServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy);
    const payload = randomBytes(50 * 1024 * 1024);
    const received = createHash('sha256');
    let count = 0;
    c.socket.removeAllListeners('data');
    c.socket.on('data', (chunk: Buffer) => {
      received.update(chunk);
      count += chunk.length;
    });
    c.socket.end(payload);
    await c.closed;
    expect(c.error).toBeUndefined();
    expect(count).toBe(payload.length);
    expect(received.digest('hex')).toBe(sha(payload));
    await c.link.closed;
    expect(c.link.bytesUp).toBe(payload.length);
    expect(c.link.bytesDown).toBe(payload.length);
    expect(proxy.stats()).toEqual({
      accepted: 1,
      refused: 0,
      active: 0,
      bytesUp: payload.length,
      bytesDown: payload.length,
    });
  });

  it('passes a half-close through: the client sends FIN and still receives the reply', async () => {
    const { target } = await tcpServer((s) =>
      s.on('end', () => {
        s.end('reply after your FIN');
      }),
    );
    const proxy = await proxyTo(target);
    const c = await client(proxy, true);
    c.socket.end('request');
    await until(() => c.ended);
    expect(c.data().toString()).toBe('reply after your FIN');
  });

  it('adds at least the delay to a round trip (real clock)', async () => {
    const { target } = await echoServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy);
    proxy.delay(60);
    const start = performance.now();
    c.socket.write('ping');
    await until(() => c.data().length === 4);
    expect(performance.now() - start).toBeGreaterThanOrEqual(120);
    expect(c.data().toString()).toBe('ping');
  });

  it('releases a delayed chunk exactly at its time and never ahead of an earlier one', async () => {
    fakeClocks();
    const { target, peers } = await tcpServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy);
    await until(() => peers.length === 1);
    proxy.delay(300, { direction: 'upstream' });
    c.socket.write('a');
    await until(() => c.link.bufferedUp === 1);
    proxy.delay(100, { direction: 'upstream' }); // 'b' would be due first: it must still follow 'a'
    c.socket.write('b');
    await until(() => c.link.bufferedUp === 2);

    vi.advanceTimersByTime(299);
    expect(c.link.bytesUp).toBe(0);
    // The other direction is not delayed.
    peers[0]!.socket.write('down');
    await until(() => c.data().toString() === 'down');

    vi.advanceTimersByTime(1);
    expect(c.link.bytesUp).toBe(2);
    await until(() => peers[0]!.data().toString() === 'ab');
  });

  it('stops reading a delayed source past its high-water mark', async () => {
    fakeClocks();
    const { target, peers } = await tcpServer();
    const proxy = await createFaultProxy({ target, highWaterMark: 64 * 1024 });
    cleanups.push(() => proxy.close());
    const c = await client(proxy);
    proxy.delay(1_000, { direction: 'upstream' });
    const payload = randomBytes(8 * 1024 * 1024);
    c.socket.write(payload);
    await until(() => c.link.bufferedUp >= 64 * 1024);
    await spin(200);
    // At most one socket read (≤ 64 KiB) past the mark.
    expect(c.link.bufferedUp).toBeLessThanOrEqual(128 * 1024);
    expect(c.link.bytesUp).toBe(0);
    // Each release lets one more mark's worth in, a second later.
    await until(() => {
      vi.advanceTimersByTime(1_000);
      return peers[0]!.data().length === payload.length;
    }, 10_000);
    expect(sha(peers[0]!.data())).toBe(sha(payload));
  });

  it('caps the rate with a token bucket (fake clock)', async () => {
    fakeClocks();
    const { target, peers } = await tcpServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy);
    proxy.throttle(10_000, { direction: 'upstream' }); // burst: 50 ms worth = 500 bytes
    const payload = randomBytes(5_000);
    c.socket.write(payload);
    await until(() => c.link.bytesUp + c.link.bufferedUp === payload.length);
    expect(c.link.bytesUp).toBe(500); // one full bucket at once

    vi.advanceTimersByTime(250);
    // 10 000 B/s × 0.25 s on top of the first bucket, within one burst.
    expect(c.link.bytesUp).toBeGreaterThanOrEqual(500 + 2_500 - 500);
    expect(c.link.bytesUp).toBeLessThanOrEqual(500 + 2_500 + 500);

    vi.advanceTimersByTime(250);
    expect(c.link.bytesUp).toBe(payload.length);
    await until(() => peers[0]?.data().length === payload.length);
    expect(sha(peers[0]!.data())).toBe(sha(payload));
  });

  it('throttles with the real clock too', async () => {
    const { target, peers } = await tcpServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy);
    proxy.throttle(200_000, { direction: 'upstream' }); // burst 10 000 bytes
    const payload = randomBytes(40_000);
    const start = performance.now();
    c.socket.write(payload);
    await until(() => peers[0]?.data().length === payload.length);
    const elapsed = performance.now() - start;
    // (40 000 − 10 000) bytes at 200 000 B/s = 150 ms.
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(2_000);
  });

  it('blackholes: no byte and no FIN reach the far end, the writer backpressures, heal delivers it all', async () => {
    const { target, peers } = await tcpServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy);
    c.socket.write('hello');
    await until(() => peers[0]?.data().toString() === 'hello');

    proxy.blackhole();
    const chunk = randomBytes(256 * 1024);
    const sent = createHash('sha256').update('hello');
    let written = 0;
    let stuck = false;
    while (written < 256 * 1024 * 1024) {
      written += chunk.length;
      sent.update(chunk);
      if (!c.socket.write(chunk)) {
        const ac = new AbortController();
        const drained = await Promise.race([
          once(c.socket, 'drain', { signal: ac.signal }).then(() => true),
          sleep(300).then(() => false),
        ]);
        ac.abort();
        if (!drained) {
          stuck = true;
          break;
        }
      }
    }
    expect(stuck).toBe(true);
    expect(c.socket.writableLength).toBeGreaterThan(0);
    // The proxy stopped reading: the backlog sits in the kernel buffers and the writer, not in the proxy.
    expect(c.link.bufferedUp).toBe(0);
    expect(written).toBeLessThan(128 * 1024 * 1024);
    c.socket.end();
    await sleep(300);
    const far = peers[0]!;
    expect(far.data().length).toBe(5);
    expect(far.ended).toBe(false);
    expect(far.error).toBeUndefined();
    expect(c.link.bytesUp).toBe(5);

    proxy.heal();
    await until(() => far.ended, 10_000);
    expect(far.data().length).toBe(5 + written);
    expect(sha(far.data())).toBe(sent.digest('hex'));
  });

  it('cuts with a FIN to both ends', async () => {
    const { target, peers } = await tcpServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy);
    await until(() => peers.length === 1);
    proxy.cut();
    await until(() => c.ended && peers[0]!.ended);
    expect(c.error).toBeUndefined();
    expect(peers[0]!.error).toBeUndefined();
    await c.link.closed;
    expect(c.link.state).toBe('closed');
    expect(proxy.links).toEqual([]);
  });

  it('cuts one direction only: the target sees EOF while the client still receives', async () => {
    const { target, peers } = await tcpServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy, true);
    await until(() => peers.length === 1);
    c.link.cut({ direction: 'upstream' });
    await until(() => peers[0]!.ended);
    peers[0]!.socket.end('still flowing');
    await until(() => c.ended);
    expect(c.data().toString()).toBe('still flowing');
  });

  it('resets: both ends get ECONNRESET', async () => {
    const { target, peers } = await tcpServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy);
    await until(() => peers.length === 1);
    proxy.reset();
    await until(() => c.error !== undefined && peers[0]!.error !== undefined);
    expect(c.error?.code).toBe('ECONNRESET');
    expect(peers[0]!.error?.code).toBe('ECONNRESET');
    await c.link.closed;
    expect(proxy.stats().active).toBe(0);
  });

  it('passes an RST from one end on to the other', async () => {
    const { target, peers } = await tcpServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy);
    await until(() => peers.length === 1);
    c.socket.resetAndDestroy();
    await until(() => peers[0]!.error !== undefined);
    expect(peers[0]!.error?.code).toBe('ECONNRESET');
  });

  it('holds an RST back while its direction is blackholed, and passes it on at heal', async () => {
    const { target, peers } = await tcpServer();
    const proxy = await proxyTo(target);
    const c = await client(proxy);
    await until(() => peers.length === 1);
    const far = peers[0]!;
    proxy.blackhole({ direction: 'upstream' });
    c.socket.resetAndDestroy();
    await c.closed;
    // The far end writes into the void until the proxy meets the RST, which it must not pass on.
    for (let i = 0; i < 50 && c.link.state === 'open'; i++) {
      far.socket.write('are you there?');
      await sleep(10);
    }
    expect(c.link.state).toBe('closing');
    await sleep(100);
    expect(far.error).toBeUndefined();
    expect(far.ended).toBe(false);
    proxy.heal();
    await until(() => far.error !== undefined);
    expect(far.error?.code).toBe('ECONNRESET');
  });

  it('refuses new connections while paused and accepts again after resume', async () => {
    const { target } = await echoServer();
    const proxy = await proxyTo(target);
    const existing = await client(proxy);
    const refused: number[] = [];
    proxy.on('refused', () => refused.push(1));

    proxy.pause();
    const rejected = record(connect({ host: '127.0.0.1', port: proxy.port }));
    await rejected.closed;
    expect(rejected.error?.code).toBe('ECONNRESET');
    expect(rejected.data().length).toBe(0);

    proxy.pause({ refuse: 'close' });
    const closed = record(connect({ host: '127.0.0.1', port: proxy.port }));
    await closed.closed;
    expect(closed.ended).toBe(true);

    // The link that was up before the pause still relays.
    existing.socket.write('still here');
    await until(() => existing.data().toString() === 'still here');

    proxy.resume();
    const fresh = await client(proxy);
    fresh.socket.write('back');
    await until(() => fresh.data().toString() === 'back');
    expect(refused.length).toBe(2);
    expect(proxy.stats()).toMatchObject({ accepted: 2, refused: 2, active: 2 });
  });

  it('applies a fault to one chosen link only', async () => {
    const { target } = await echoServer();
    const proxy = await proxyTo(target);
    const a = await client(proxy);
    const b = await client(proxy);
    expect(proxy.links.map((l) => l.id)).toEqual([1, 2]);
    const linkA = proxy.links.find((l) => l.clientPort === a.socket.localPort)!;
    expect(linkA).toBe(a.link);

    linkA.blackhole();
    a.socket.write('to a');
    b.socket.write('to b');
    await until(() => b.data().toString() === 'to b');
    await spin();
    expect(a.data().length).toBe(0);

    linkA.heal();
    await until(() => a.data().toString() === 'to a');
  });

  it('resets the client when the target refuses', async () => {
    const server = createServer();
    const target = await listen(server);
    await new Promise<void>((r) => server.close(() => r()));
    const proxy = await proxyTo(target);
    const linked = once(proxy, 'link') as Promise<[FaultLink]>;
    const c = record(connect({ host: '127.0.0.1', port: proxy.port }));
    const [link] = await linked;
    await c.closed;
    expect(c.error?.code).toBe('ECONNRESET');
    await link.closed;
    expect(proxy.links).toEqual([]);
  });

  it('relays new links to a new target after retarget()', async () => {
    const first = await tcpServer();
    const second = await tcpServer();
    const proxy = await proxyTo(first.target);
    await client(proxy);
    proxy.retarget(second.target);
    await client(proxy);
    await until(() => first.peers.length === 1 && second.peers.length === 1);
  });

  it('close() destroys every link and leaves no timer', async () => {
    fakeClocks();
    const { target, peers } = await tcpServer();
    const proxy = await createFaultProxy({ target });
    const c = await client(proxy);
    proxy.delay(10_000);
    c.socket.write('held');
    await until(() => c.link.bufferedUp === 4);
    expect(vi.getTimerCount()).toBe(1);
    const port = proxy.port;
    await proxy.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(proxy.links).toEqual([]);
    await c.closed;
    expect(peers[0]!.data().length).toBe(0);
    const refused = record(connect({ host: '127.0.0.1', port }));
    await refused.closed;
    expect(refused.error?.code).toBe('ECONNREFUSED');
  });

  it('rejects invalid fault parameters', async () => {
    const { target } = await tcpServer();
    const proxy = await proxyTo(target);
    expect(() => proxy.delay(-1)).toThrow(InvalidConfigError);
    expect(() => proxy.throttle(0)).toThrow(InvalidConfigError);
    expect(() => proxy.throttle(1_000, { burstBytes: 0.5 })).toThrow(InvalidConfigError);
    expect(() => createFaultProxy({ target: { host: '127.0.0.1', port: 0 } })).toThrow(InvalidConfigError);
  });
});

describe('FaultProxy with WebSockets', () => {
  async function wsThroughProxy() {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    const serverSockets: WebSocket[] = [];
    wss.on('connection', (ws) => {
      serverSockets.push(ws);
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
    cleanups.push(async () => {
      for (const ws of serverSockets) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    });
    const proxy = await proxyTo({ host: '127.0.0.1', port: (wss.address() as AddressInfo).port });
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/`);
    cleanups.push(() => ws.terminate());
    await once(ws, 'open');
    await until(() => serverSockets.length === 1);
    return { proxy, ws, server: serverSockets[0]! };
  }

  it('carries messages and ping/pong', async () => {
    const { ws } = await wsThroughProxy();
    const payload = randomBytes(200_000);
    ws.send(payload);
    const [echo] = (await once(ws, 'message')) as [Buffer];
    expect(sha(echo)).toBe(sha(payload));
    ws.ping();
    await once(ws, 'pong');
  });

  it('stops the pongs of a blackholed client, and the server no longer hears it', async () => {
    const { proxy, ws, server } = await wsThroughProxy();
    let pongs = 0;
    let serverPings = 0;
    ws.on('pong', () => pongs++);
    server.on('ping', () => serverPings++);
    ws.ping();
    await until(() => pongs === 1);

    // Replies lost: the server still gets the ping, the client never sees the pong.
    proxy.blackhole({ direction: 'downstream' });
    ws.ping();
    await until(() => serverPings === 2);
    await sleep(200);
    expect(pongs).toBe(1);

    // Both ways: the peer has vanished; not even the ping arrives, and no close either.
    proxy.blackhole();
    ws.ping();
    await sleep(200);
    expect(serverPings).toBe(2);
    expect(pongs).toBe(1);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(server.readyState).toBe(WebSocket.OPEN);

    // Healing delivers what was held, in order.
    proxy.heal();
    await until(() => serverPings === 3 && pongs === 3);
  });
});
