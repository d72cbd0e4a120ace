/**
 * A stream that ends from the backend side reaches the end user as every byte, then a FIN, and the
 * connection is closed fully only after a grace period (or at the end user's own FIN), so request bytes
 * the end user still has in flight are read instead of being answered with a reset (docs/protocol.md
 * §1.7, `limits.streamEndGraceMs`). Real sockets on loopback: the relay alone, then a whole node with a
 * backend client whose service answers and closes at once.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import {
  createTestPki,
  listenLocal,
  onHttpRequest,
  rawConnect,
  type RawClient,
  sha256,
  socketPair,
  startNode,
  startService,
  type TestNode,
  type TestPki,
  type TestService,
  waitUntil,
} from '@nexus-proxy/test-harness';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type RelayStats, relayConnection } from '../../src/relay.js';

vi.setConfig({ testTimeout: 20_000 });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A TCP service that writes `body` and ends its side at once, like `Connection: close`. */
async function closingService(body: Buffer): Promise<number> {
  const sockets = new Set<Socket>();
  const srv: Server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.resume(); // reads what the end user sends, so its own close is never a reset
    s.end(body);
    s.on('end', () => s.destroy());
  });
  const port = await listenLocal(srv);
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  });
  return port;
}

interface EndUserRecord {
  received: Buffer[];
  /** `Date.now()` at the FIN. */
  endedAt: number | undefined;
  errors: string[];
  closed: Promise<void>;
}

/**
 * Keeps writing small "request" chunks every 5 ms until `lateMs` after the FIN it gets (a pipelining
 * client whose next request is in flight when the response ends), recording what happens.
 */
function keepWriting(socket: Socket, lateMs: number): EndUserRecord {
  const record: EndUserRecord = {
    received: [],
    endedAt: undefined,
    errors: [],
    closed: new Promise((r) => socket.once('close', () => r())),
  };
  socket.on('data', (c: Buffer) => record.received.push(c));
  socket.on('error', (err: NodeJS.ErrnoException) => record.errors.push(err.code ?? err.message));
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable) return;
    if (record.endedAt !== undefined && Date.now() - record.endedAt > lateMs) {
      clearInterval(timer);
      return;
    }
    socket.write(Buffer.alloc(512, 0x61));
  }, 5);
  socket.on('end', () => {
    record.endedAt = Date.now();
  });
  socket.once('close', () => clearInterval(timer));
  cleanups.push(() => clearInterval(timer));
  return record;
}

async function relayWithGrace(body: Buffer, endGraceMs: number) {
  const port = await closingService(body);
  const pair = await socketPair();
  cleanups.push(pair.close);
  const upstream = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await once(upstream, 'connect');
  const user = keepWriting(pair.client, 150);
  let closedAt: number | undefined;
  const handle = relayConnection(pair.server, upstream, {
    endGraceMs,
    onClose: () => {
      closedAt = Date.now();
    },
  });
  return { user, handle, client: pair.client, server: pair.server, closedAt: () => closedAt };
}

describe('relayConnection end grace', () => {
  it('FIN after every byte, then reads what the end user still sends, then closes after the grace', async () => {
    const body = randomBytes(2 * 1024 * 1024 + 11);
    const r = await relayWithGrace(body, 400);
    const stats: RelayStats = await r.handle.done;
    expect(r.user.endedAt).toBeDefined();
    expect(sha256(Buffer.concat(r.user.received))).toBe(sha256(body));
    // The end user kept writing for 150 ms after the FIN: read and discarded, never reset.
    expect(r.user.errors).toEqual([]);
    expect(stats.reason).toBe('completed');
    expect(stats.bytesDown).toBe(body.length);
    // Fully closed only after the grace (timer granularity allowed).
    expect(r.closedAt()! - r.user.endedAt!).toBeGreaterThanOrEqual(350);
    expect(r.server.destroyed).toBe(true);
    // Once closed, the end user's next writes are refused by the kernel: the socket is gone.
    await vi.waitFor(
      () => {
        if (!r.client.destroyed) r.client.write('after the grace');
        expect(r.user.errors.length).toBeGreaterThan(0);
      },
      { timeout: 5_000, interval: 20 },
    );
    expect(r.user.errors[0]).toMatch(/ECONNRESET|EPIPE/);
  });

  it('closes at the end user’s own FIN without waiting for the rest of the grace', async () => {
    const body = randomBytes(256 * 1024);
    const port = await closingService(body);
    const pair = await socketPair();
    cleanups.push(pair.close);
    const upstream = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    await once(upstream, 'connect');
    const received: Buffer[] = [];
    pair.client.on('data', (c: Buffer) => received.push(c));
    const errors: string[] = [];
    pair.client.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
    pair.client.once('end', () => pair.client.end()); // a polite client answers the FIN with its own
    const started = Date.now();
    const handle = relayConnection(pair.server, upstream, { endGraceMs: 10_000 });
    const stats = await handle.done;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(stats.reason).toBe('completed');
    expect(sha256(Buffer.concat(received))).toBe(sha256(body));
    expect(errors).toEqual([]);
  });

  it('without a grace (0) the end user’s late bytes are answered with a reset', async () => {
    const r = await relayWithGrace(randomBytes(64 * 1024), 0);
    await r.handle.done;
    // What the grace prevents: the bytes the end user sends after the FIN meet a closed socket, and the
    // reset that answers them can even discard the response the end user has not read yet.
    await r.user.closed;
    expect(r.user.errors[0]).toMatch(/ECONNRESET|EPIPE/);
  });
});

describe('a node relays a backend’s end as FIN + grace', () => {
  let pki: TestPki;
  let node: TestNode;
  let service: TestService;
  const body = randomBytes(3 * 1024 * 1024 + 5);
  const GRACE_MS = 500;

  beforeAll(async () => {
    pki = await createTestPki();
    // The service answers the request head with the whole body and closes: the backend client sends
    // the last DATA, then `disconnect{reason:"normal"}`.
    service = await startService((socket) =>
      onHttpRequest(socket, () => {
        socket.resume(); // later request bytes are read (and ignored)
        socket.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n'), body]));
      }),
    );
    node = await startNode({ pki, listeners: ['http'], config: { limits: { streamEndGraceMs: GRACE_MS } } });
    await node.attachBackend({ hostnames: ['grace.example.com'], service: service.port });
  });

  afterAll(async () => {
    await node?.close();
    await service?.close();
  });

  async function request(client: RawClient): Promise<EndUserRecord> {
    const record = keepWriting(client.socket, 200);
    client.socket.write('GET / HTTP/1.1\r\nHost: grace.example.com\r\n\r\n');
    return record;
  }

  it('every byte (SHA-256), a FIN and no reset while the end user keeps sending; closed after the grace', async () => {
    const client = await rawConnect(node.httpPort, { allowHalfOpen: true });
    const closesBefore = node.events.streamClose.length;
    const record = await request(client);
    await waitUntil(() => node.events.streamClose.length > closesBefore, 10_000, 'the stream closed');
    const closedAt = Date.now();
    const response = client.received();
    const headEnd = response.indexOf('\r\n\r\n') + 4;
    expect(headEnd).toBeGreaterThan(4);
    expect(sha256(response.subarray(headEnd))).toBe(sha256(body));
    expect(record.endedAt).toBeDefined();
    expect(record.errors).toEqual([]);
    expect(closedAt - record.endedAt!).toBeGreaterThanOrEqual(GRACE_MS - 50);
    expect(node.events.streamClose.at(-1)).toMatchObject({ reason: 'completed' });
    client.socket.destroy();
  });

  it('closes at once when the end user answers the FIN with its own', async () => {
    const client = await rawConnect(node.httpPort, { allowHalfOpen: false }); // FIN answered by Node
    const closesBefore = node.events.streamClose.length;
    client.socket.write('GET / HTTP/1.1\r\nHost: grace.example.com\r\n\r\n');
    const closed = await client.closed;
    expect(closed).toEqual({ fin: true, error: undefined });
    const response = client.received();
    expect(sha256(response.subarray(response.indexOf('\r\n\r\n') + 4))).toBe(sha256(body));
    await waitUntil(() => node.events.streamClose.length > closesBefore, 2_000, 'the stream closed');
  });
});
