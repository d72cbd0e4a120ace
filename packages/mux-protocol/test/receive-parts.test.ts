/**
 * Messages received as parts (views of a transport's reads, as the WebSocket links deliver DATA frames):
 * the whole pair suite with every message cut at random points, the DATA header included; a stream gets
 * the payload as those views, not joined; every receive check (credit overrun, unknown ids, the size
 * limit, empty DATA) applies to parts as to a whole message.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dataFrameParts } from '../src/data-parts.js';
import { encodeControlMessage, encodeDataFrame } from '../src/index.js';
import { createFakeSession } from './suites/fake-transport.js';
import { type CreatePair, createMemoryPair, runSessionSuite } from './suites/session.suite.js';

/** A small deterministic generator (the suite must be reproducible). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1_664_525 + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

/** `message` cut at up to four random points, as views; the cuts favour the 17-byte DATA header. */
function cut(message: Uint8Array, next: () => number): Uint8Array[] {
  const points = new Set<number>();
  const n = Math.floor(next() * 5);
  for (let i = 0; i < n; i++) {
    const limit = next() < 0.5 ? Math.min(20, message.length) : message.length;
    points.add(1 + Math.floor(next() * Math.max(1, limit - 1)));
  }
  const sorted = [...points].filter((p) => p < message.length).sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const p of sorted) {
    parts.push(message.subarray(from, p));
    from = p;
  }
  parts.push(message.subarray(from));
  return parts;
}

/** The in-memory pair, each session fed every message as random parts. */
const createReceivePartsPair: CreatePair = async (options) => {
  const pair = await createMemoryPair(options);
  let seed = 1;
  for (const session of [pair.hub, pair.backend]) {
    const receive = session.receive.bind(session);
    const next = random(seed++);
    session.receive = (message, length) => {
      if (!(message instanceof Uint8Array)) return receive(message, length);
      receive(cut(message, next), message.length);
    };
  }
  return pair;
};

runSessionSuite('a transport that delivers every message as parts', createReceivePartsPair);

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };

/** A DATA frame of `payload` for stream `id`, cut into parts at `cuts`, each in a buffer of its own. */
function dataParts(id: string, payload: Buffer, cuts: number[]): Buffer[] {
  const frame = Buffer.concat([Buffer.from(encodeDataFrame(id, Buffer.alloc(0))), payload]);
  const parts: Buffer[] = [];
  let from = 0;
  for (const p of [...cuts, frame.length]) {
    const own = Buffer.alloc(p - from);
    frame.copy(own, 0, from, p);
    parts.push(own);
    from = p;
  }
  return parts;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('DATA received as parts', () => {
  it('reaches the stream as the views it came in, the header copied only where it straddles two parts', async () => {
    const { session } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const payload = randomBytes(30_000);
    // The header straddles the first two parts; the payload spans three.
    const parts = dataParts(stream.id, payload, [9, 16_384, 20_000]);
    session.receive(parts, 17 + payload.length);
    await tick();
    expect(Buffer.concat(chunks).equals(payload)).toBe(true);
    expect(chunks).toHaveLength(3);
    // The same memory as the parts: no copy of the payload.
    for (const [i, chunk] of chunks.entries()) expect(chunk.buffer).toBe(parts[i + 1]!.buffer);
    expect(session.stats()).toMatchObject({ dataFramesReceived: 1, bytesReceived: payload.length });
    session.close();
  });

  it('splits the header from the payload inside one part, and refuses what is no DATA within the limit', () => {
    const framed = Buffer.concat([Buffer.from([1]), Buffer.alloc(16, 7), Buffer.from('abc')]);
    const parsed = dataFrameParts([framed.subarray(0, 18), framed.subarray(18)], framed.length, 1, 1000)!;
    expect(parsed.payload.map((p) => p.toString())).toEqual(['a', 'bc']);
    expect(parsed.length).toBe(3);
    expect(dataFrameParts([framed], framed.length, 0x11, 1000)).toBeUndefined();
    expect(dataFrameParts([framed], framed.length, 1, framed.length - 1)).toBeUndefined();
    expect(dataFrameParts([framed.subarray(0, 10)], 10, 1, 1000)).toBeUndefined();
  });

  it('keeps the credit window: a frame in parts past it fails the stream as an overrun', async () => {
    const { session, control, controls, clear } = createFakeSession({
      role: 'hub',
      initialWindow: 4,
      grantBatch: 2,
    });
    const errors: string[] = [];
    session.on('protocol-error', (e) => errors.push(e.code));
    const stream = session.openStream(OPEN);
    const streamErrors: Error[] = [];
    stream.on('error', (e) => streamErrors.push(e));
    control({ event: 'resume_stream', client_id: stream.id, credits: 64 });
    clear();
    // Nobody reads the stream, so no credit comes back: the fifth frame is one too many.
    for (let i = 0; i < 5; i++)
      session.receive(dataParts(stream.id, Buffer.alloc(32_768, i), [5, 16_000]), 32_785);
    expect(errors).toEqual(['MUX_ERR_CREDIT_OVERRUN']);
    expect(controls()).toEqual([{ event: 'disconnect', client_id: stream.id, reason: 'protocol_error' }]);
    await tick();
    expect((streamErrors[0] as { code?: string }).code).toBe('MUX_ERR_CREDIT_OVERRUN');
  });

  it('answers DATA in parts for an unknown stream with one close, and counts an empty one', () => {
    const { session, controls } = createFakeSession({ role: 'hub' });
    const ghost = '0f1e2d3c-4b5a-4968-8776-655443322110';
    session.receive(dataParts(ghost, Buffer.alloc(10), [3, 12]), 27);
    session.receive(dataParts(ghost, Buffer.alloc(10), [20]), 27);
    expect(controls()).toEqual([{ event: 'disconnect', client_id: ghost, reason: 'unknown' }]);
    session.receive(dataParts(ghost, Buffer.alloc(0), [4]), 17);
    expect(session.stats()).toMatchObject({ emptyDataFrames: 1, unknownStreamFrames: 2 });
    session.close();
  });

  it('applies the message size limit to parts: an oversize DATA frame fails its stream', async () => {
    const { session } = createFakeSession({ role: 'hub' });
    const errors: string[] = [];
    session.on('protocol-error', (e) => errors.push(e.code));
    const stream = session.openStream(OPEN);
    const streamErrors: Error[] = [];
    stream.on('error', (e) => streamErrors.push(e));
    session.receive(dataParts(stream.id, Buffer.alloc(32_769), [100, 16_000]), 17 + 32_769);
    expect(errors).toEqual(['MUX_ERR_FRAME_TOO_LARGE']);
    await tick();
    expect((streamErrors[0] as { code?: string }).code).toBe('MUX_ERR_FRAME_TOO_LARGE');
  });

  it('joins a control message that came in parts', () => {
    const { session } = createFakeSession({ role: 'hub' });
    const stream = session.openStream(OPEN);
    const message = Buffer.from(
      encodeControlMessage({ event: 'resume_stream', client_id: stream.id, credits: 5 }),
    );
    session.receive([message.subarray(0, 5), message.subarray(5, 30), message.subarray(30)], message.length);
    expect(session.stats().controlMessagesReceived).toBe(1);
    expect(stream.sendWindow).toBeGreaterThanOrEqual(5);
    session.close();
  });
});
