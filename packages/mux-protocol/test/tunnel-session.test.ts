import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  decodePeerMessage,
  decodeTunnelFrame,
  encodeTunnelFrame,
  type TunnelRequestMessage,
  TunnelSession,
  type TunnelTransport,
} from '../src/index.js';

interface Wire {
  binary: Uint8Array[];
  text: string[];
}

/** Two sessions joined by an in-memory, ordered, asynchronous link. */
function pair(options: { window?: number; batch?: number } = {}) {
  const wires: { a: Wire; b: Wire } = { a: { binary: [], text: [] }, b: { binary: [], text: [] } };
  const requests: TunnelRequestMessage[] = [];
  let onRequest: (req: TunnelRequestMessage) => void = () => {};
  const make = (side: 'a' | 'b', deliver: (m: Uint8Array | string) => void): TunnelTransport => ({
    sendBinary(message) {
      wires[side].binary.push(message);
      deliver(message);
    },
    sendText(text) {
      wires[side].text.push(text);
      deliver(text);
    },
    bufferedAmount: 0,
    pause() {},
    resume() {},
  });
  // One FIFO per direction, drained on setImmediate, keeps text and binary in order as a WebSocket does.
  const fifo = (receive: (m: Uint8Array | string) => void) => {
    const queue: (Uint8Array | string)[] = [];
    let scheduled = false;
    return (m: Uint8Array | string) => {
      queue.push(m);
      if (scheduled) return;
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        for (const item of queue.splice(0)) receive(item);
      });
    };
  };
  let b!: TunnelSession;
  const toB = fifo((m) => {
    if (typeof m === 'string') {
      const decoded = decodePeerMessage(m);
      if (decoded.ok && decoded.value.type === 'tunnel_request') {
        requests.push(decoded.value);
        onRequest(decoded.value);
      }
    } else b.receive(m);
  });
  let a!: TunnelSession;
  const toA = fifo((m) => {
    if (typeof m !== 'string') a.receive(m);
  });
  const sessionOptions = {
    ...(options.window !== undefined ? { initialWindow: options.window } : {}),
    ...(options.batch !== undefined ? { grantBatch: options.batch } : {}),
  };
  a = new TunnelSession({ transport: make('a', toB), ...sessionOptions });
  b = new TunnelSession({ transport: make('b', toA), ...sessionOptions });
  return {
    a,
    b,
    wires,
    requests,
    onRequest(fn: (req: TunnelRequestMessage) => void) {
      onRequest = fn;
    },
  };
}

function framesOf(wire: Wire, type: string, tunnelId?: string) {
  return wire.binary
    .map((m) => decodeTunnelFrame(m))
    .filter((r) => r.ok)
    .map((r) => (r as { ok: true; value: { type: string; tunnelId?: string } }).value)
    .filter((f) => f.type === type && (tunnelId === undefined || f.tunnelId === tunnelId));
}

/** Waits (polling, up to 10 s) until `condition` holds: no fixed sleep before a positive assertion. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function readAll(stream: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('TunnelSession', () => {
  it('sends tunnel_request with the end user fields, then a 0x15 window, before any data', async () => {
    const { a, wires, requests, onRequest, b } = pair();
    onRequest((req) => b.accept(req));
    const t = a.open({
      connPort: 443,
      clientIp: '198.51.100.7:50123',
      hostname: 'app.example.com',
      isTls: true,
    })!;
    t.write('hello');
    await until(
      () => requests.length > 0 && framesOf(wires.b, 'tunnel-credits', t.id).length > 0,
      'request and window',
    );
    expect(requests[0]).toEqual({
      type: 'tunnel_request',
      client_id: t.id,
      conn_port: 443,
      client_ip: '198.51.100.7:50123',
      hostname: 'app.example.com',
      is_tls: true,
      transport: 'tcp',
    });
    const first = decodeTunnelFrame(wires.a.binary[0]!);
    expect(first).toEqual({ ok: true, value: { type: 'tunnel-credits', tunnelId: t.id, credits: 64 } });
    expect(wires.a.binary[1]![0]).toBe(0x11);
    expect(framesOf(wires.b, 'tunnel-credits', t.id)[0]).toMatchObject({ credits: 64 });
  });

  it('carries bytes both ways, keeps the response flowing after the origin half-closes, and closes with 0x12', async () => {
    const { a, b, onRequest, wires } = pair();
    let dest: Duplex | undefined;
    onRequest((req) => {
      dest = b.accept(req);
    });
    const t = a.open({ connPort: 80, clientIp: '127.0.0.1:1', hostname: 'h.example.com', isTls: false })!;
    const request = randomBytes(100_000);
    t.end(request); // the end user's request then FIN: nothing is sent for the FIN
    const response = randomBytes(3_000_000);
    await until(() => dest !== undefined, 'the request');
    const got = Buffer.alloc(request.length);
    let n = 0;
    dest!.on('data', (c: Buffer) => {
      c.copy(got, n);
      n += c.length;
    });
    dest!.write(response);
    (dest as unknown as { disconnect(): void }).disconnect();
    const received = await readAll(t);
    expect(createHash('sha256').update(received).digest('hex')).toBe(
      createHash('sha256').update(response).digest('hex'),
    );
    expect(got.equals(request)).toBe(true);
    expect(framesOf(wires.a, 'tunnel-close')).toHaveLength(0);
    expect(framesOf(wires.b, 'tunnel-close', t.id)).toHaveLength(1);
    expect(a.tunnelCount).toBe(0);
    expect(b.tunnelCount).toBe(0);
  });

  it('answers a refused request with 0x12 at once and the origin stream ends without data', async () => {
    const { a, b, onRequest, wires } = pair();
    onRequest((req) => b.refuse(req.client_id));
    const t = a.open({ connPort: 443, clientIp: '127.0.0.1:1', hostname: 'none.example.com', isTls: true })!;
    t.write(Buffer.alloc(1000));
    const data = await readAll(t);
    expect(data.length).toBe(0);
    expect(t.closeReason).toBe('peer_closed');
    expect(framesOf(wires.b, 'tunnel-close', t.id)).toHaveLength(1);
    // The frames the origin sent before the close arrived are dropped without a second answer.
    await new Promise((r) => setTimeout(r, 10));
    expect(framesOf(wires.b, 'tunnel-close')).toHaveLength(1);
    expect(b.stats().refused).toBe(1);
  });

  it('never sends past the window granted, and a stalled tunnel does not hold back another', async () => {
    const { a, b, onRequest, wires } = pair({ window: 16, batch: 4 });
    const accepted: Duplex[] = [];
    onRequest((req) => {
      accepted.push(b.accept(req)!);
    });
    // A first tunnel teaches the origin that this peer meters (its window); until then a new tunnel sends
    // unmetered up to its first 0x15 (§2.4: credits are opt-in).
    const warm = a.open({ connPort: 443, clientIp: '127.0.0.1:9', hostname: 'w.example.com', isTls: true })!;
    await until(() => framesOf(wires.b, 'tunnel-credits', warm.id).length > 0, 'the first window');
    warm.destroy();
    accepted.length = 0;
    const stalled = a.open({
      connPort: 443,
      clientIp: '127.0.0.1:1',
      hostname: 's.example.com',
      isTls: true,
    })!;
    const moving = a.open({
      connPort: 443,
      clientIp: '127.0.0.1:2',
      hostname: 'm.example.com',
      isTls: true,
    })!;
    const big = randomBytes(8 * 1024 * 1024);
    stalled.write(big); // its reader never reads
    const payload = randomBytes(4 * 1024 * 1024);
    moving.end(payload);
    await until(() => accepted.length === 2, 'both requests');
    const [stalledDest, movingDest] = accepted as [Duplex, Duplex];
    stalledDest.pause();
    const got: Buffer[] = [];
    movingDest.on('data', (c: Buffer) => got.push(c));
    await until(() => Buffer.concat(got).length >= payload.length, 'the moving tunnel');
    expect(Buffer.concat(got).equals(payload)).toBe(true);
    // The stalled tunnel has sent its whole window by now (it started first and nothing reads it).
    await until(() => stalled.sendWindow === 0, 'the stalled window spent');
    // Receiver-side bound: the stalled tunnel got exactly its window, no more.
    const stalledFrames = wires.a.binary.filter(
      (m) =>
        m[0] === 0x11 &&
        decodeTunnelFrame(m).ok &&
        (decodeTunnelFrame(m) as { ok: true; value: { tunnelId: string } }).value.tunnelId === stalled.id,
    );
    expect(stalledFrames.length).toBe(16);
    expect(stalled.sendWindow).toBe(0);
    // Reading again returns credits in 0x15 frames, batched, and the transfer completes.
    const before = framesOf(wires.b, 'tunnel-credits', stalled.id).length;
    const sink = createHash('sha256');
    let received = 0;
    stalledDest.on('data', (c: Buffer) => {
      sink.update(c);
      received += c.length;
    });
    stalledDest.resume();
    await until(() => received >= big.length, 'the stalled tunnel');
    expect(sink.digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
    const grants = framesOf(wires.b, 'tunnel-credits', stalled.id).slice(before) as unknown as {
      credits: number;
    }[];
    expect(grants.length).toBeGreaterThan(10);
    for (const g of grants) expect(g.credits).toBeGreaterThanOrEqual(4);
  });

  it('answers TUNNEL_DATA for an unknown tunnel with one 0x12 and ignores malformed frames', async () => {
    const { b, wires } = pair();
    const errors: unknown[] = [];
    b.on('protocol-error', (e) => errors.push(e));
    const id = '0b5d1c1e-7f6a-4d2b-9c3e-123456789abc';
    b.receive(encodeTunnelFrame({ type: 'tunnel-data', tunnelId: id, payload: Buffer.from('x') }));
    b.receive(encodeTunnelFrame({ type: 'tunnel-data', tunnelId: id, payload: Buffer.from('y') }));
    b.receive(Buffer.from([0x12, 1, 2]));
    b.receive(Buffer.from([0x7f, 1, 2, 3]));
    b.receive(Buffer.alloc(0));
    expect(framesOf(wires.b, 'tunnel-close', id)).toHaveLength(1);
    expect(errors).toHaveLength(1);
    expect(b.stats().protocolErrors).toBe(1);
  });

  it('ends every tunnel with EOF when the link closes, after the bytes already received', async () => {
    const { a, b, onRequest } = pair();
    let dest: Duplex | undefined;
    onRequest((req) => {
      dest = b.accept(req);
      dest!.write('partial response');
    });
    const t = a.open({ connPort: 443, clientIp: '127.0.0.1:1', hostname: 'x.example.com', isTls: true })!;
    await until(() => t.readableLength > 0, 'the partial response');
    const closed = once(a, 'close');
    a.close('link_closed');
    await closed;
    expect((await readAll(t)).toString()).toBe('partial response');
    expect(t.closeReason).toBe('link_closed');
    expect(a.open({ connPort: 1, clientIp: '', hostname: 'x.example.com', isTls: false })).toBeUndefined();
  });

  it('holds its sending while the peer sent TUNNEL_PAUSE and resumes on TUNNEL_RESUME', async () => {
    const { a, b, onRequest } = pair();
    let dest: Duplex | undefined;
    onRequest((req) => {
      dest = b.accept(req);
    });
    const t = a.open({ connPort: 443, clientIp: '127.0.0.1:1', hostname: 'p.example.com', isTls: true })!;
    await until(() => dest !== undefined, 'the request');
    a.receive(encodeTunnelFrame({ type: 'tunnel-pause', tunnelId: t.id }));
    const sentBefore = a.stats().framesSent;
    t.write(Buffer.alloc(100_000));
    await new Promise((r) => setTimeout(r, 10));
    expect(a.stats().framesSent).toBe(sentBefore);
    a.receive(encodeTunnelFrame({ type: 'tunnel-resume', tunnelId: t.id }));
    const got: Buffer[] = [];
    dest!.on('data', (c: Buffer) => got.push(c));
    await until(() => Buffer.concat(got).length >= 100_000, 'the held bytes');
    expect(Buffer.concat(got).length).toBe(100_000);
  });

  it('refuses tunnels beyond maxTunnels with 0x12', async () => {
    const wire: Uint8Array[] = [];
    const s = new TunnelSession({
      maxTunnels: 1,
      transport: {
        sendBinary: (m) => wire.push(m),
        sendText() {},
        bufferedAmount: 0,
        pause() {},
        resume() {},
      },
    });
    const req = (id: string): TunnelRequestMessage => ({
      type: 'tunnel_request',
      client_id: id,
      conn_port: 1,
      client_ip: '',
      hostname: 'a.example.com',
      is_tls: false,
    });
    expect(s.accept(req('00000000-0000-4000-8000-000000000001'))).toBeDefined();
    expect(s.accept(req('00000000-0000-4000-8000-000000000002'))).toBeUndefined();
    expect(decodeTunnelFrame(wire.at(-1)!)).toMatchObject({ ok: true, value: { type: 'tunnel-close' } });
  });
});
