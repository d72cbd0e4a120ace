import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { createBackendClient } from '@nexus-proxy/backend-client';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { mintBackendToken, createLocalTokenVerifier } from '../../src/auth.js';
import type { BackendSession } from '../../src/backend-session.js';
import type { CertificateAndKey } from '../../src/certificates.js';
import { BackendHub } from '../../src/hub.js';
import { HubTlsContext } from '../../src/hub-tls.js';
import { RoutingTable } from '../../src/routing-table.js';
import { createFaultProxy } from '../../src/testing/fault-proxy.js';
import {
  createTestPki,
  delay,
  HashingReader,
  MiB,
  type TestNode,
  onHttpRequest,
  pump,
  RandomSource,
  rawConnect,
  SplittingDuplex,
  type StartNodeOptions,
  sha256,
  startNode,
  startService,
  TEST_RECONNECT,
  TEST_SECRET,
  type TestService,
} from '@nexus-proxy/test-harness';

vi.setConfig({ testTimeout: 30_000 });

let pki: Awaited<ReturnType<typeof createTestPki>>;
let appCert: CertificateAndKey;
beforeAll(async () => {
  pki = await createTestPki();
  appCert = await pki.issue(['app.test']);
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(options: Omit<StartNodeOptions, 'pki'> = {}): Promise<TestNode> {
  const n = await startNode({ pki, listeners: ['http', 'tls'], ...options });
  cleanups.push(() => n.close());
  return n;
}

async function service(...args: Parameters<typeof startService>): Promise<TestService> {
  const s = await startService(...args);
  cleanups.push(() => s.close());
  return s;
}

const request = (path = '/') => `GET ${path} HTTP/1.1\r\nHost: app.test\r\n\r\n`;

/** Writes `body` in 64 KiB slices with backpressure, then ends the socket. */
async function send(socket: Socket, body: Buffer): Promise<void> {
  await pump(Readable.from(slices(body, 64 * 1024)), socket);
  socket.end();
}

function* slices(body: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < body.length; i += size) yield body.subarray(i, i + size);
}

describe('createNexus: data path (docs/reliability.md items 2–9)', () => {
  it('R2 one slow stream never blocks its siblings: 100 streams on one session, one end user stops reading', async () => {
    const n = await node();
    const body = randomBytes(1 * MiB);
    /** A sibling that reads at 4 MB/s, so it is surely still open when the round trips run. */
    const long = randomBytes(8 * MiB);
    // The stuck end user's download is far larger than every socket buffer on the way, so the windows fill.
    let stuckSource: RandomSource | undefined;
    const svc = await service((socket) =>
      onHttpRequest(socket, (head) => {
        if (head.startsWith('GET /long')) return void send(socket, long).catch(() => {});
        if (!head.startsWith('GET /stuck')) return void send(socket, body).catch(() => {});
        stuckSource = new RandomSource(64 * MiB);
        void pump(stuckSource, socket).then(
          () => socket.end(),
          () => {},
        );
      }),
    );
    const backend = await n.attachBackend({ hostnames: ['app.test'], service: svc.port });

    const clients = await Promise.all(Array.from({ length: 100 }, () => rawConnect(n.httpPort)));
    const readers = clients.map((c) => new HashingReader(c.socket));
    const stuck = readers[0]!;
    stuck.pause(); // never reads until the end of the test
    const started = Date.now();
    readers[1]!.throttle(4_000_000);
    for (const [i, c] of clients.entries())
      c.socket.write(request(i === 0 ? '/stuck' : i === 1 ? '/long' : '/'));
    // While the 99 are in flight, a control round trip on the stuck stream and on a sibling.
    const session = backend.client.sessions.get(n.hubUrl);
    const streamOf = (c: (typeof clients)[number]) => {
      const id = backend.streams.find((s) => s.clientIp === `127.0.0.1:${c.socket.localPort}`)?.id;
      return id === undefined ? undefined : session?.getStream(id);
    };
    /** ping_client → pong_client on one stream, ms (Infinity when no pong within 2 s). */
    const roundTrip = async (stream: NonNullable<ReturnType<typeof streamOf>>): Promise<number> => {
      const t0 = Date.now();
      const pong = once(stream, 'pong').then(() => Date.now() - t0);
      stream.ping();
      return Promise.race([pong, delay(2_000).then(() => Number.POSITIVE_INFINITY)]);
    };
    await vi.waitFor(
      () => {
        expect(streamOf(clients[0]!)).toBeDefined();
        expect(streamOf(clients[1]!)).toBeDefined();
        expect(readers.filter((r) => r.bytes > 0).length).toBeGreaterThan(3);
      },
      { timeout: 10_000 },
    );
    const [stuckRtt, siblingRtt] = await Promise.all([
      roundTrip(streamOf(clients[0]!)!),
      roundTrip(streamOf(clients[1]!)!),
    ]);
    expect(readers[1]!.bytes).toBeLessThan(long.length); // the sibling was mid-transfer
    readers[1]!.full();
    expect(stuckRtt).toBeLessThan(1_000);
    expect(siblingRtt).toBeLessThan(1_000);

    const digests = await Promise.all(readers.slice(2).map((r) => r.ended));
    const elapsed = Date.now() - started;
    expect(digests.every((d) => d === sha256(body))).toBe(true);
    expect(await readers[1]!.ended).toBe(sha256(long));
    expect(stuck.bytes).toBe(0);
    // The stuck stream is held by its credit window at the backend, not by buffering in the node.
    const stuckStream = streamOf(clients[0]!);
    expect(stuckStream?.sendMetered).toBe(true);
    expect(stuckStream?.sendWindow).toBe(0);
    // All 100 were streams of one backend session.
    expect(backend.streams).toHaveLength(100);
    expect(n.nexus.hub.sessions).toHaveLength(1);
    console.log(
      `R2: 98 × 1 MiB + 8 MiB in ${elapsed} ms beside a stuck reader; ping_client/pong_client ${stuckRtt} ms (stuck), ${siblingRtt} ms (sibling)`,
    );
    expect(elapsed).toBeLessThan(15_000);
    // The stuck stream lost nothing meanwhile: it reads all its 64 MiB once it resumes.
    stuck.full();
    expect(await stuck.ended).toBe(stuckSource!.digest());
    expect(stuck.bytes).toBe(64 * MiB);
    expect(n.events.backendDisconnected).toHaveLength(0);
  });

  it('R3 lost credit grant never deadlocks: 8 MiB through a 2-frame hub window with 5 ms injected delays (R4 no over-send)', async () => {
    // createNexus does not expose the mux tuning, so this drives the hub itself, as createNexus builds it.
    const routes = new RoutingTable<BackendSession>();
    const hub = new BackendHub({
      tls: new HubTlsContext(pki.hub),
      verifyToken: createLocalTokenVerifier({ secrets: [TEST_SECRET] }),
      routes,
      // Frames of the base protocol's 32 768 bytes (no larger frames offered, docs/protocol.md §1.11), so
      // that 8 MiB makes at least 256 of them.
      mux: { initialWindow: 2, grantBatch: 1, maxDataPayload: 32_768 },
    });
    const { port: hubPort } = await hub.listen('127.0.0.1');
    cleanups.push(() => hub.close());
    const proxy = await createFaultProxy({ target: { host: '127.0.0.1', port: hubPort } });
    cleanups.push(() => proxy.close());
    proxy.delay(5);

    const download = randomBytes(8 * MiB);
    const upload = randomBytes(8 * MiB);
    let uploadReader: HashingReader | undefined;
    const svc = await service((socket) => {
      uploadReader = new HashingReader(socket);
      void send(socket, download).catch(() => {});
    });
    const client = createBackendClient({
      nodes: [`wss://127.0.0.1:${proxy.port}/connect`],
      token: await mintBackendToken({ secret: TEST_SECRET, hostnames: ['app.test'] }),
      tls: { ca: pki.ca.certPem },
      connectHandler: () => netConnect({ host: '127.0.0.1', port: svc.port }),
      reconnect: TEST_RECONNECT,
      closeGraceMs: 0,
    });
    cleanups.push(() => client.close({ graceMs: 0 }));
    const registered = once(hub, 'backend-connected');
    client.connect();
    await registered;

    const stream = hub.openStream('app.test', { connPort: 80, clientIp: '127.0.0.1:1', isTls: false });
    expect(stream).toBeDefined();
    const reader = new HashingReader(stream!);
    const t0 = Date.now();
    stream!.write(upload);
    await vi.waitFor(() => expect(uploadReader).toBeDefined());
    const [down, up] = await Promise.all([reader.ended, uploadReader!.untilBytes(upload.length)]);
    expect(down).toBe(sha256(download));
    expect(up).toBe(sha256(upload));
    const stats = hub.sessions[0]!.mux.stats();
    console.log(`R3: 8 MiB each way through a 2-frame window and 5 ms delays in ${Date.now() - t0} ms`);
    // Every frame the backend sent was within the 2-frame window (a DATA frame past it is a protocol error).
    expect(stats.protocolErrors).toBe(0);
    expect(stats.dataFramesReceived).toBeGreaterThanOrEqual(256);
    expect(stats.controlMessagesSent).toBeGreaterThanOrEqual(250); // the grants, one per frame
    stream!.destroy();
  });

  it('R5 response lost on close: the service writes its last bytes and closes at once; the end user gets every byte, then FIN', async () => {
    const n = await node();
    const big = randomBytes(4 * MiB);
    const svc = await service((socket) =>
      onHttpRequest(socket, (head) => {
        const small = head.startsWith('GET /small');
        socket.write(small ? big.subarray(0, 1000) : big);
        socket.end(); // Connection: close, right after the last write
      }),
    );
    await n.attachBackend({ hostnames: ['app.test'], service: svc.port });
    const run = async (path: string, expected: Buffer) => {
      const c = await rawConnect(n.httpPort);
      const reader = new HashingReader(c.socket);
      c.socket.write(request(path));
      expect(await reader.ended).toBe(sha256(expected));
      expect(await c.closed).toEqual({ fin: true, error: undefined });
    };
    await Promise.all([
      run('/big', big),
      ...Array.from({ length: 20 }, () => run('/small', big.subarray(0, 1000))),
    ]);
    await vi.waitFor(() => expect(n.events.streamClose).toHaveLength(21));
    expect(new Set(n.events.streamClose.map((e) => e.reason))).toEqual(new Set(['completed']));
  });

  it('R5 in the other direction: the end user writes its last bytes and closes at once; the service gets every byte', async () => {
    const n = await node();
    const upload = randomBytes(4 * MiB);
    const head = Buffer.from(request('/upload'));
    const served: Promise<string>[] = [];
    const svc = await service((socket) => {
      const reader = new HashingReader(socket);
      served.push(
        reader.untilBytes(head.length + upload.length).then((digest) => {
          socket.end('stored'); // answers once everything arrived, then closes
          return digest;
        }),
      );
    });
    await n.attachBackend({ hostnames: ['app.test'], service: svc.port });
    const c = await rawConnect(n.httpPort);
    c.socket.write(head);
    c.socket.end(upload); // last bytes and FIN at once
    expect(await c.closed).toEqual({ fin: true, error: undefined });
    expect(c.received().toString()).toBe('stored');
    expect(served).toHaveLength(1);
    expect(await served[0]).toBe(sha256(Buffer.concat([head, upload])));
  });

  it('R6 half-close never kills the stream: an end user that shuts down its write side gets the whole response', async () => {
    const n = await node();
    const response = randomBytes(4 * MiB);
    const svc = await service((socket) =>
      onHttpRequest(socket, () => {
        // Respond a little later, well after the end user's FIN reached the node.
        setTimeout(() => void send(socket, response).catch(() => {}), 200);
      }),
    );
    await n.attachBackend({ hostnames: ['app.test'], service: svc.port });
    const c = await rawConnect(n.httpPort, { allowHalfOpen: true });
    const reader = new HashingReader(c.socket);
    c.socket.end(request('/half-close'));
    expect(await reader.ended).toBe(sha256(response));
    c.socket.destroy();
    await vi.waitFor(() => expect(n.events.streamClose).toHaveLength(1));
    expect(n.events.streamClose[0]).toMatchObject({ reason: 'completed', bytesDown: response.length });
  });

  it('R7 bytes that arrive together with EOF are delivered, both ways (50 exchanges)', async () => {
    const n = await node();
    const got: string[] = [];
    const svc = await service((socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => {
        chunks.push(c);
        const text = Buffer.concat(chunks).toString();
        if (text.endsWith('!')) {
          got.push(text);
          socket.end(`reply-to-${text.length}`); // bytes + FIN in one segment
        }
      });
    });
    await n.attachBackend({ hostnames: ['app.test'], service: svc.port });
    const replies = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const c = await rawConnect(n.httpPort, { allowHalfOpen: true });
        const req = `GET /${i} HTTP/1.1\r\nHost: app.test\r\n\r\n${'x'.repeat(i)}!`;
        c.socket.end(req); // bytes + FIN in one segment
        const end = await c.closed;
        return { req, reply: c.received().toString(), end };
      }),
    );
    for (const r of replies) {
      expect(r.reply).toBe(`reply-to-${r.req.length}`);
      expect(r.end.fin).toBe(true);
    }
    expect(got.sort()).toEqual(replies.map((r) => r.req).sort());
  });

  it('R8 prelude larger than one frame: a 40 KiB HTTP head is routed whole and the session survives', async () => {
    const n = await node();
    const heads: string[] = [];
    const svc = await service((socket) =>
      onHttpRequest(socket, (head) => {
        heads.push(head);
        socket.end('ok');
      }),
    );
    const backend = await n.attachBackend({ hostnames: ['app.test'], service: svc.port });
    const big = `GET /big HTTP/1.1\r\nHost: app.test\r\nX-Big: ${'b'.repeat(40 * 1024)}\r\n\r\n`;
    const c = await rawConnect(n.httpPort);
    c.socket.write(big);
    await c.closed;
    expect(c.received().toString()).toBe('ok');
    expect(heads[0]).toBe(big);
    // Same session still serving afterwards.
    const c2 = await rawConnect(n.httpPort);
    c2.socket.write(request('/after'));
    await c2.closed;
    expect(c2.received().toString()).toBe('ok');
    expect(n.nexus.hub.sessions.map((s) => s.id)).toEqual([backend.sessionId]);
    expect(n.events.backendDisconnected).toHaveLength(0);
    expect(n.events.streamOpen).toHaveLength(2);
  });

  it('R8 a ClientHello split over many TCP segments (5-byte writes, 1 ms apart) still routes', async () => {
    const n = await node();
    const svc = await service((s) => s.pipe(s), { tls: appCert });
    await n.attachBackend({ hostnames: ['app.test'], service: svc.port });
    const split = new SplittingDuplex(netConnect({ host: '127.0.0.1', port: n.tlsPort }), 5);
    const t = tlsConnect({ socket: split, servername: 'app.test', ca: pki.ca.certPem });
    await once(t, 'secureConnect');
    expect(t.authorized).toBe(true);
    t.write('hello');
    const [echo] = (await once(t, 'data')) as [Buffer];
    expect(echo.toString()).toBe('hello');
    t.destroy();
    expect(n.events.streamOpen.map((e) => [e.hostname, e.isTls])).toEqual([['app.test', true]]);
  });

  it('R9 idle timeout never kills an active download (idleTimeoutSeconds: 1, 3 s download), but closes an idle stream', async () => {
    const n = await node({ config: { idleTimeoutSeconds: 1 } });
    const piece = randomBytes(8 * 1024);
    const svc = await service((socket) =>
      onHttpRequest(socket, (head) => {
        if (!head.startsWith('GET /download')) return; // /idle: never answers
        let sent = 0;
        const timer = setInterval(() => {
          if (socket.destroyed) return clearInterval(timer);
          socket.write(piece);
          if (++sent === 30) {
            clearInterval(timer);
            socket.end();
          }
        }, 100);
      }),
    );
    await n.attachBackend({ hostnames: ['app.test'], service: svc.port });
    const download = await rawConnect(n.httpPort);
    const idle = await rawConnect(n.httpPort);
    const reader = new HashingReader(download.socket);
    const t0 = Date.now();
    download.socket.write(request('/download')); // no upstream byte after this one
    idle.socket.write(request('/idle'));
    const idleEnd = await idle.closed;
    const idleAfter = Date.now() - t0;
    await reader.ended;
    const downloadAfter = Date.now() - t0;
    expect(reader.bytes).toBe(30 * piece.length);
    expect(idle.received().length).toBe(0);
    expect(idleEnd.fin || idleEnd.error !== undefined).toBe(true);
    expect(idleAfter).toBeGreaterThanOrEqual(950);
    expect(idleAfter).toBeLessThan(2_500);
    expect(downloadAfter).toBeGreaterThanOrEqual(2_900);
    await vi.waitFor(() => expect(n.events.streamClose).toHaveLength(2));
    const byReason = Object.fromEntries(n.events.streamClose.map((e) => [e.reason, e]));
    expect(byReason['idle-timeout']?.bytesDown).toBe(0);
    expect(byReason.completed?.bytesDown).toBe(30 * piece.length);
  });
});
