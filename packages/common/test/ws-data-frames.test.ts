/**
 * The splitter in front of ws's Receiver must not change what a WebSocket receives: for any stream of
 * frames (binary, text, control, fragmented, masked or not, malformed, oversize) cut into any reads, the
 * messages, pings, pongs, closes and errors are those ws alone yields for the same bytes; only the final
 * binary messages arrive as views instead of joined.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { takeBinaryMessagesAsViews, WsFrameSplitter } from '../src/ws-data-frames.js';

type Event = string;

/** ws's own frame parser (exported by ws, not declared by its types). */
const { Receiver } = createRequire(import.meta.url)('ws') as {
  Receiver: new (options?: {
    isServer?: boolean;
    maxPayload?: number;
    allowSynchronousEvents?: boolean;
  }) => Writable & { write(chunk: Buffer): boolean };
};

/** One RFC 6455 frame, as bytes (mask key drawn here when masked). */
interface FrameSpec {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

function encodeFrame(frame: FrameSpec): Buffer {
  const length = frame.payload.length;
  const lengthBytes = length < 126 ? 0 : length < 65_536 ? 2 : 8;
  const head = Buffer.alloc(2 + lengthBytes + (frame.masked ? 4 : 0));
  head[0] = (frame.fin ? 0x80 : 0) | (frame.rsv << 4) | frame.opcode;
  head[1] = (frame.masked ? 0x80 : 0) | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) head.writeUInt16BE(length, 2);
  if (lengthBytes === 8) head.writeBigUInt64BE(BigInt(length), 2);
  if (!frame.masked) return Buffer.concat([head, frame.payload]);
  const key = randomBytes(4);
  key.copy(head, head.length - 4);
  const body = Buffer.from(frame.payload);
  for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ key[i & 3]!;
  return Buffer.concat([head, body]);
}

function describeEvent(kind: string, data: Buffer | string = ''): Event {
  const bytes = typeof data === 'string' ? data : data.toString('hex');
  return `${kind}:${bytes}`;
}

/** Feeds `chunks` to a fresh Receiver, alone or behind a splitter, and returns what came out. */
async function receive(
  chunks: readonly Buffer[],
  options: { isServer: boolean; maxPayload: number; allowSynchronousEvents?: boolean },
  split: boolean,
): Promise<{ events: Event[]; views: number }> {
  const receiver = new Receiver(options);
  const events: Event[] = [];
  let views = 0;
  receiver.on('message', (data: Buffer, isBinary: boolean) =>
    events.push(describeEvent(isBinary ? 'binary' : 'text', data)),
  );
  receiver.on('ping', (data: Buffer) => events.push(describeEvent('ping', data)));
  receiver.on('pong', (data: Buffer) => events.push(describeEvent('pong', data)));
  receiver.on('conclude', (code: number, reason: Buffer) =>
    events.push(describeEvent(`close ${code}`, reason)),
  );
  receiver.on('error', (err: Error & { code?: string }) => {
    const status = Object.getOwnPropertySymbols(err)
      .map((s) => (err as unknown as Record<symbol, unknown>)[s])
      .join();
    events.push(`error:${err.code} ${status} ${err.message}`);
  });
  const splitter = split
    ? new WsFrameSplitter({
        receiver,
        isServer: options.isServer,
        maxLength: options.maxPayload,
        onBinary: (parts, length) => {
          views++;
          expect(parts.reduce((n, p) => n + p.length, 0)).toBe(length);
          events.push(describeEvent('binary', Buffer.concat(parts)));
        },
      })
    : undefined;
  for (const chunk of chunks) {
    // Each side gets its own copy: both unmask in place.
    const copy = Buffer.from(chunk);
    if (splitter !== undefined) splitter.write(copy);
    else if (!receiver.writableEnded && receiver.errored == null) receiver.write(copy);
  }
  // ws reports errors on the next tick, and deferred events one per turn of the event loop.
  do await new Promise((resolve) => setImmediate(resolve));
  while (receiver.writableLength > 0 && receiver.errored == null);
  await new Promise((resolve) => setImmediate(resolve));
  return { events, views };
}

/** Cuts `bytes` at the given offsets (any order, duplicates allowed). */
function cut(bytes: Buffer, offsets: readonly number[]): Buffer[] {
  const points = [...new Set(offsets.map((o) => o % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    if (p > from) chunks.push(bytes.subarray(from, p));
    from = Math.max(from, p);
  }
  if (from < bytes.length) chunks.push(bytes.subarray(from));
  return chunks;
}

const MAX_PAYLOAD = 3000;

/** Frames a sender might write, well-formed or not, for a receiver on side `isServer`. */
function frameArbitrary(isServer: boolean, wellFormed: boolean): fc.Arbitrary<FrameSpec[]> {
  const payload = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
  const masked = fc.constant(isServer);
  const binary = fc.record({
    fin: fc.constant(true),
    rsv: fc.constant(0),
    opcode: fc.constant(2),
    masked,
    payload: fc.oneof({ weight: 4, arbitrary: payload(400) }, { weight: 1, arbitrary: payload(MAX_PAYLOAD) }),
  });
  const text = fc.record({
    fin: fc.constant(true),
    rsv: fc.constant(0),
    opcode: fc.constant(1),
    masked,
    payload: fc.oneof(
      { weight: 5, arbitrary: fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)) },
      { weight: wellFormed ? 0 : 1, arbitrary: fc.constant(Buffer.from([0xc3, 0x28])) },
    ),
  });
  const control = fc.record({
    fin: fc.constant(true),
    rsv: fc.constant(0),
    opcode: fc.constantFrom(9, 10),
    masked,
    payload: payload(125),
  });
  const close = fc
    .tuple(
      fc.constantFrom(...(wellFormed ? [1000, 1001, 1011, 4000] : [1000, 1001, 1011, 4000, 999])),
      fc.string({ maxLength: 20 }),
      masked,
    )
    .map(([code, reason, m]): FrameSpec => {
      const body = Buffer.alloc(2 + Buffer.byteLength(reason));
      body.writeUInt16BE(code, 0);
      body.write(reason, 2);
      return { fin: true, rsv: 0, opcode: 8, masked: m, payload: body };
    });
  const fragmented = fc
    .tuple(fc.constantFrom(1, 2), fc.array(payload(300), { minLength: 2, maxLength: 4 }), fc.array(control))
    .map(([opcode, parts, pings]) => {
      const frames: FrameSpec[] = [];
      parts.forEach((p, i) => {
        frames.push({
          fin: i === parts.length - 1,
          rsv: 0,
          opcode: i === 0 ? opcode : 0,
          masked: isServer,
          payload: opcode === 1 ? Buffer.from(p.toString('hex')) : p,
        });
        if (i < pings.length && i < parts.length - 1) frames.push(pings[i]!);
      });
      return frames;
    });
  const malformed = fc.oneof(
    fc.record({
      fin: fc.boolean(),
      rsv: fc.integer({ min: 1, max: 7 }),
      opcode: fc.constant(2),
      masked,
      payload: payload(10),
    }),
    fc.record({
      fin: fc.constant(true),
      rsv: fc.constant(0),
      opcode: fc.constantFrom(0, 3, 7, 11, 15),
      masked,
      payload: payload(10),
    }),
    fc.record({
      fin: fc.constant(true),
      rsv: fc.constant(0),
      opcode: fc.constant(2),
      masked: fc.constant(!isServer),
      payload: payload(10),
    }),
    fc.record({
      fin: fc.constant(false),
      rsv: fc.constant(0),
      opcode: fc.constant(9),
      masked,
      payload: payload(10),
    }),
    fc.record({
      fin: fc.constant(true),
      rsv: fc.constant(0),
      opcode: fc.constant(9),
      masked,
      payload: fc.constant(Buffer.alloc(126)),
    }),
    fc.record({
      fin: fc.constant(true),
      rsv: fc.constant(0),
      opcode: fc.constant(2),
      masked,
      payload: fc.constant(Buffer.alloc(MAX_PAYLOAD + 1)),
    }),
  );
  const one = fc.oneof(
    { weight: 12, arbitrary: binary.map((f) => [f]) },
    { weight: 2, arbitrary: text.map((f) => [f]) },
    { weight: 2, arbitrary: control.map((f) => [f]) },
    { weight: 2, arbitrary: fragmented },
    { weight: 1, arbitrary: close.map((f) => [f]) },
    { weight: wellFormed ? 0 : 1, arbitrary: malformed.map((f) => [f]) },
    // A fragmented message left open: what follows is a continuation, a control frame, or an error.
    {
      weight: wellFormed ? 0 : 1,
      arbitrary: fc
        .record({
          fin: fc.constant(false),
          rsv: fc.constant(0),
          opcode: fc.constantFrom(0, 1, 2),
          masked,
          payload: payload(20),
        })
        .map((f) => [f]),
    },
  );
  return fc.array(one, { maxLength: 12 }).map((groups) => groups.flat());
}

describe('WsFrameSplitter', () => {
  for (const [isServer, allowSynchronousEvents] of [
    [false, true],
    [true, true],
    [false, false],
  ] as const) {
    let viewsSeen = 0;
    it(`yields what ws alone yields for any frames cut into any reads (${isServer ? 'server, masked' : 'client'}${allowSynchronousEvents ? '' : ', events deferred'})`, async () => {
      await fc.assert(
        fc.asyncProperty(
          // Deferred events (not what ws does by default): once ws refuses a frame, what it still emits
          // depends on how the bytes were cut into writes (Node's Writable goes on with the writes
          // queued behind the failed one): there the property is the order of well-formed streams.
          frameArbitrary(isServer, !allowSynchronousEvents),
          fc.array(fc.nat(), { maxLength: 40 }),
          async (frames, offsets) => {
            const bytes = Buffer.concat(frames.map(encodeFrame));
            const chunks = cut(bytes, offsets);
            const options = { isServer, maxPayload: MAX_PAYLOAD, allowSynchronousEvents };
            const alone = await receive(chunks, options, false);
            const split = await receive(chunks, options, true);
            expect(split.events).toEqual(alone.events);
            viewsSeen += split.views;
          },
        ),
        { numRuns: 300 },
      );
      // The property held with the splitter actually taking frames.
      expect(viewsSeen).toBeGreaterThan(allowSynchronousEvents ? 100 : 20);
    });
  }

  it('hands final binary frames over as views of the reads, unmasked in place, without a join', async () => {
    const payload = randomBytes(40_000);
    const bytes = encodeFrame({ fin: true, rsv: 0, opcode: 2, masked: true, payload });
    // Each read in a buffer of its own, as a TLS socket delivers them.
    const chunks = cut(bytes, [16_384, 32_768]).map((c) => {
      const own = Buffer.alloc(c.length);
      c.copy(own);
      return own;
    });
    const received: Buffer[][] = [];
    const splitter = new WsFrameSplitter({
      receiver: new Receiver({ isServer: true, maxPayload: 100_000 }),
      isServer: true,
      maxLength: 100_000,
      onBinary: (parts) => received.push(parts),
    });
    for (const chunk of chunks) expect(splitter.write(chunk)).toBe(true);
    expect(received).toHaveLength(1);
    const parts = received[0]!;
    expect(parts).toHaveLength(3);
    // Each part is a view of the read it came in (the same memory), not a copy.
    for (const [i, part] of parts.entries()) expect(part.buffer).toBe(chunks[i]!.buffer);
    expect(Buffer.concat(parts).equals(payload)).toBe(true);
  });

  it('leaves oversize frames to ws, which refuses them with its own error and close code', async () => {
    const bytes = encodeFrame({ fin: true, rsv: 0, opcode: 2, masked: false, payload: Buffer.alloc(70_000) });
    const { events, views } = await receive(
      cut(bytes, [5, 100]),
      { isServer: false, maxPayload: 65_536 },
      true,
    );
    expect(views).toBe(0);
    expect(events).toEqual(['error:WS_ERR_UNSUPPORTED_MESSAGE_LENGTH 1009 Max payload size exceeded']);
  });

  it('leaves binary frames to ws while accept says no, and takes them once it says yes', () => {
    const receiver = new Receiver({ maxPayload: 1000 });
    const events: string[] = [];
    let accepting = false;
    receiver.on('message', (data: Buffer, isBinary: boolean) => {
      events.push(`ws ${isBinary ? 'binary' : 'text'} ${data}`);
      // The handshake's last message starts the session: from the next frame on, views.
      if (String(data) === 'go') accepting = true;
    });
    const splitter = new WsFrameSplitter({
      receiver,
      isServer: false,
      maxLength: 1000,
      onBinary: (parts) => events.push(`views ${Buffer.concat(parts)}`),
      accept: () => accepting,
    });
    const frame = (opcode: number, text: string) =>
      encodeFrame({ fin: true, rsv: 0, opcode, masked: false, payload: Buffer.from(text) });
    // What follows in the same read goes to ws with it (one write), in order; the next reads are views.
    splitter.write(Buffer.concat([frame(2, 'a'), frame(1, 'go'), frame(2, 'b')]));
    splitter.write(Buffer.concat([frame(2, 'c'), frame(2, 'd')]));
    expect(events).toEqual(['ws binary a', 'ws text go', 'ws binary b', 'views c', 'views d']);
  });

  it('takes 64-bit lengths up to the limit as views', async () => {
    const payload = randomBytes(70_000);
    const bytes = encodeFrame({ fin: true, rsv: 0, opcode: 2, masked: false, payload });
    const { events, views } = await receive(
      cut(bytes, [1, 3, 9, 30_000]),
      { isServer: false, maxPayload: 70_000 },
      true,
    );
    expect(views).toBe(1);
    expect(events).toEqual([describeEvent('binary', payload)]);
  });

  it('copies a part shorter than 1 KiB instead of keeping its whole read alive', () => {
    const payload = randomBytes(20_000);
    const bytes = encodeFrame({ fin: true, rsv: 0, opcode: 2, masked: false, payload });
    // The frame's last 10 bytes come at the start of a 16 KiB read.
    const cuts = [bytes.length - 10];
    const reads = cut(bytes, cuts).map((c) => {
      const own = Buffer.alloc(Math.max(16_384, c.length));
      c.copy(own);
      return own.subarray(0, c.length);
    });
    const received: Buffer[][] = [];
    const splitter = new WsFrameSplitter({
      receiver: new Receiver({ maxPayload: 100_000 }),
      isServer: false,
      maxLength: 100_000,
      onBinary: (parts) => received.push(parts),
    });
    for (const read of reads) splitter.write(read);
    const parts = received[0]!;
    expect(parts.map((p) => p.length)).toEqual([20_000 - 10, 10]);
    expect(parts[0]!.buffer).toBe(reads[0]!.buffer);
    expect(parts[1]!.buffer).not.toBe(reads[1]!.buffer);
    expect(Buffer.concat(parts).equals(payload)).toBe(true);
  });

  it.each([false, true])('bounds the views of one frame dribbled in tiny reads (masked: %s)', (isServer) => {
    const payload = randomBytes(500);
    const received: Buffer[][] = [];
    const splitter = new WsFrameSplitter({
      receiver: new Receiver({ isServer, maxPayload: 1000 }),
      isServer,
      maxLength: 1000,
      onBinary: (parts) => received.push(parts),
    });
    for (const dribble of [1, 3]) {
      const bytes = encodeFrame({ fin: true, rsv: 0, opcode: 2, masked: isServer, payload });
      for (let i = 0; i < bytes.length; i += dribble)
        splitter.write(Buffer.from(bytes.subarray(i, i + dribble)));
    }
    expect(received).toHaveLength(2);
    for (const parts of received) {
      // One buffer: the first reads joined, the rest copied in after them.
      expect(parts).toHaveLength(1);
      expect(parts[0]!.equals(payload)).toBe(true);
    }
  });

  it('passes on ws backpressure: false when ws wants the socket paused, true for its own frames', () => {
    const receiver = new Receiver({ maxPayload: 100_000 });
    const written: number[] = [];
    const splitter = new WsFrameSplitter({
      receiver,
      // ws asking for a pause after every write.
      pass: (chunk) => {
        written.push(chunk.length);
        receiver.write(chunk);
        return false;
      },
      isServer: false,
      maxLength: 100_000,
      onBinary: () => {},
    });
    const text = encodeFrame({
      fin: true,
      rsv: 0,
      opcode: 1,
      masked: false,
      payload: Buffer.alloc(20_000, 0x61),
    });
    expect(splitter.write(text)).toBe(false);
    expect(written).toEqual([text.length]);
    const binary = encodeFrame({
      fin: true,
      rsv: 0,
      opcode: 2,
      masked: false,
      payload: Buffer.alloc(20_000),
    });
    expect(splitter.write(binary)).toBe(true);
    expect(written).toEqual([text.length]);
  });
});

describe('takeBinaryMessagesAsViews over TLS', () => {
  let dir: string | undefined;
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** A self-signed certificate for 127.0.0.1, made by openssl in a temporary directory. */
  function certificate(): { key: Buffer; cert: Buffer } {
    dir = mkdtempSync(join(tmpdir(), 'ws-data-frames-'));
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-subj',
        '/CN=127.0.0.1',
        '-days',
        '1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(key), cert: readFileSync(cert) };
  }

  async function tlsPair(maxPayload: number): Promise<{ client: WebSocket; server: WebSocket }> {
    const { key, cert } = certificate();
    const https = createServer({ key, cert });
    const wss = new WebSocketServer({ server: https, perMessageDeflate: false, maxPayload });
    https.listen(0, '127.0.0.1');
    await once(https, 'listening');
    const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
    const client = new WebSocket(`wss://127.0.0.1:${(https.address() as AddressInfo).port}`, {
      ca: cert,
      perMessageDeflate: false,
      maxPayload,
    });
    await once(client, 'open');
    const [server] = await accepted;
    closers.push(async () => {
      client.terminate();
      server.terminate();
      await new Promise<void>((resolve) => wss.close(() => https.close(() => resolve())));
    });
    return { client, server };
  }

  /** Everything `ws` receives, views and ws's own events, in the order they arrive. */
  function record(ws: WebSocket): { events: string[]; views: number[] } {
    const events: string[] = [];
    const views: number[] = [];
    const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 12);
    expect(
      takeBinaryMessagesAsViews(ws, (parts, length) => {
        views.push(parts.length);
        events.push(`binary ${length} ${digest(Buffer.concat(parts))}`);
      }),
    ).toBe(true);
    ws.on('message', (data: Buffer, isBinary) =>
      events.push(isBinary ? `binary ${data.length} ${digest(data)}` : `text ${data}`),
    );
    ws.on('ping', (data: Buffer) => events.push(`ping ${data}`));
    return { events, views };
  }

  for (const side of ['server', 'client'] as const) {
    it(`keeps every message and its order, large binary ones as views of the TLS reads (${side} side)`, async () => {
      const pair = await tlsPair(256 * 1024);
      const receiver = pair[side];
      const sender = side === 'server' ? pair.client : pair.server;
      const got = record(receiver);
      const expected: string[] = [];
      const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 12);
      const sizes = [131_089, 0, 17, 70_000, 131_089, 200_000];
      for (const [i, size] of sizes.entries()) {
        const message = randomBytes(size);
        sender.send(message);
        expected.push(`binary ${size} ${digest(message)}`);
        if (i === 1) {
          sender.send('between', { binary: false });
          expected.push('text between');
          sender.ping('p');
          expected.push('ping p');
        }
        if (i === 3) {
          // A fragmented binary message: ws assembles it and emits it as 'message'.
          const a = randomBytes(40_000);
          const b = randomBytes(30_000);
          sender.send(a, { fin: false });
          sender.send(b, { fin: true });
          expected.push(`binary 70000 ${digest(Buffer.concat([a, b]))}`);
        }
      }
      sender.send('last', { binary: false });
      expected.push('text last');
      while (got.events.length < expected.length) await once(receiver, 'message').catch(() => {});
      expect(got.events).toEqual(expected);
      // 128 KiB messages come in several TLS reads (16 KiB of plaintext each) and were not joined.
      expect(Math.max(...got.views)).toBeGreaterThan(4);
    });
  }

  it("refuses a message over maxPayload with ws's own close code 1009", async () => {
    const { client, server } = await tlsPair(100_000);
    record(server);
    const errors: string[] = [];
    server.on('error', (err: Error & { code?: string }) => errors.push(err.code ?? ''));
    const closed = once(client, 'close');
    client.send(randomBytes(100_001));
    const [code] = await closed;
    expect(code).toBe(1009);
    expect(errors).toEqual(['WS_ERR_UNSUPPORTED_MESSAGE_LENGTH']);
  });
});
