import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type RelayStats, relayConnection } from '../../src/relay.js';
import { listenLocal, socketPair } from '@nexus-proxy/test-harness';

vi.setConfig({ testTimeout: 10_000 });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A local "service" reached over TCP: the relay's stream side. */
async function service(onConnection: (s: Socket) => void): Promise<number> {
  const srv: Server = createServer({ allowHalfOpen: true }, onConnection);
  const port = await listenLocal(srv);
  const sockets = new Set<Socket>();
  srv.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
  });
  return port;
}

/** End user ⇄ relay ⇄ service, all on loopback. */
async function relayTo(
  servicePort: number,
  idleTimeoutMs = 0,
  prelude?: Buffer,
  closeOnStreamEnd?: boolean,
  endGraceMs = 50, // short: relay-end-grace.test.ts covers the grace itself
) {
  const pair = await socketPair();
  cleanups.push(pair.close);
  const upstream = connect({ host: '127.0.0.1', port: servicePort, allowHalfOpen: true });
  await once(upstream, 'connect');
  let stats: RelayStats | undefined;
  const handle = relayConnection(pair.server, upstream, {
    idleTimeoutMs,
    prelude,
    closeOnStreamEnd,
    endGraceMs,
    onClose: (s) => {
      stats = s;
    },
  });
  const received: Buffer[] = [];
  pair.client.on('data', (c: Buffer) => received.push(c));
  pair.client.on('error', () => {});
  const clientEnded = new Promise<void>((r) => pair.client.once('end', () => r()));
  return { client: pair.client, handle, received, clientEnded, stats: () => stats };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('relayConnection', () => {
  it('writes the prelude first, relays both ways and counts bytes', async () => {
    const port = await service((s) => s.pipe(s)); // echo, half-close aware
    const r = await relayTo(port, 0, Buffer.from('hello '));
    r.client.end('world');
    await r.clientEnded;
    expect(Buffer.concat(r.received).toString()).toBe('hello world');
    const stats = await r.handle.done;
    expect(stats).toMatchObject({ reason: 'completed', bytesUp: 11, bytesDown: 11 });
    expect(r.stats()).toBe(stats);
  });

  it('propagates the end user half-close and still delivers the whole response', async () => {
    const body = randomBytes(2 * 1024 * 1024);
    const port = await service((s) => {
      const req: Buffer[] = [];
      s.on('data', (c: Buffer) => req.push(c));
      s.on('end', () => {
        // Respond only after the request side was closed (the FIN reached the service).
        expect(Buffer.concat(req).toString()).toBe('GET / HTTP/1.0\r\n\r\n');
        s.end(body);
      });
    });
    const r = await relayTo(port);
    r.client.end('GET / HTTP/1.0\r\n\r\n');
    await r.clientEnded;
    expect(sha(Buffer.concat(r.received))).toBe(sha(body));
    const stats = await r.handle.done;
    expect(stats.reason).toBe('completed');
    expect(stats.bytesDown).toBe(body.length);
  });

  it('delivers every byte before the FIN when the service writes and closes at once', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const port = await service((s) => {
      s.end(body);
      s.on('finish', () => s.destroy());
    });
    const r = await relayTo(port);
    await r.clientEnded;
    expect(sha(Buffer.concat(r.received))).toBe(sha(body));
    // The end user never closes its side: the relay still ends once the response is delivered.
    const stats = await r.handle.done;
    expect(stats).toMatchObject({ reason: 'completed', bytesDown: body.length });
  });

  it('relays a TCP half-close from the stream side when closeOnStreamEnd is false', async () => {
    const port = await service((s) => {
      const got: Buffer[] = [];
      s.on('data', (c: Buffer) => got.push(c));
      s.on('end', () => s.destroy());
      s.end('response-first');
      s.on('finish', () => {
        // The service half-closed; the end user keeps uploading and the service still receives it.
        s.once('end', () => expect(Buffer.concat(got).toString()).toBe('late-upload'));
      });
    });
    const r = await relayTo(port, 0, undefined, false);
    await r.clientEnded;
    expect(Buffer.concat(r.received).toString()).toBe('response-first');
    r.client.end('late-upload');
    const stats = await r.handle.done;
    expect(stats).toMatchObject({ reason: 'completed', bytesUp: 11 });
  });

  it('reports client-error and closes the stream when the end user resets', async () => {
    let serviceSocket: Socket | undefined;
    const port = await service((s) => {
      serviceSocket = s;
      s.on('error', () => {});
      s.resume();
    });
    const r = await relayTo(port);
    r.client.write('x');
    await new Promise((res) => setTimeout(res, 20));
    r.client.resetAndDestroy();
    const stats = await r.handle.done;
    expect(stats.reason).toBe('client-error');
    expect((stats.error as NodeJS.ErrnoException).code).toBe('ECONNRESET');
    // The service side sees the stream end.
    if (!serviceSocket!.readableEnded) await once(serviceSocket!, 'end');
  });

  it('closes both sides after the idle timeout when nothing flows', async () => {
    const port = await service(() => {});
    const t0 = Date.now(); // before the relay starts its idle timer
    const r = await relayTo(port, 100);
    const stats = await r.handle.done;
    expect(stats.reason).toBe('idle-timeout');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    // The end user gets a FIN (no bytes, no RST).
    await r.clientEnded;
    expect(r.received).toHaveLength(0);
  });

  it('close(reason) aborts both sides and records the reason', async () => {
    const port = await service(() => {});
    const r = await relayTo(port);
    r.handle.close('shutdown');
    const stats = await r.handle.done;
    expect(stats.reason).toBe('shutdown');
  });
});
