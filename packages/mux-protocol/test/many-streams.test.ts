/**
 * Many streams over one session: the engine's pump does the same work per DATA frame however many streams
 * wait for a turn, and under the node-wide receive budget the grants a hub sends stay batches however
 * many streams share the budget (before, a budget split over 1 000 streams meant one grant per DATA
 * frame: credits deferred by the budget were handed out a frame or two at a time).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  backendFraming,
  DATA_HEADER_LENGTH,
  decodeBackendMessage,
  MAX_DATA_PAYLOAD,
  MuxStream,
  ReceiveBudget,
  StreamEngine,
} from '../src/index.js';
import { LONG_ROUND_BYTES, TURN_GRAIN, turnPayload } from '../src/engine-options.js';
import { readExactly, type SessionPair, sha256, writeAll } from './suites/session.suite.js';
import { createWebSocketPair } from './suites/ws-pair.js';

const OPEN = { connPort: 443, clientIp: '203.0.113.7:50000', hostname: 'app.example.com', isTls: true };

describe('many streams sharing a receive budget', () => {
  const pairs: SessionPair[] = [];
  afterEach(async () => {
    await Promise.all(pairs.splice(0).map((pair) => pair.close()));
  });

  it('grants in batches when the budget leaves each stream a few frames, and delivers every byte', async () => {
    const streams = 100;
    // 8 frames per stream beyond its floor: the share 256 MiB leaves each of 1 000 streams.
    const budget = new ReceiveBudget(streams * 8 * MAX_DATA_PAYLOAD);
    const grants = new Map<number, number>();
    let grantMessages = 0;
    const pair = await createWebSocketPair({
      hub: { receiveBudget: budget },
      observe: (from, message) => {
        if (from !== 'hub') return;
        const decoded = decodeBackendMessage(message);
        if (!decoded.ok || decoded.value.type !== 'control') return;
        const control = decoded.value.message;
        if (control.event !== 'resume_stream') return;
        grantMessages++;
        const credits = control.credits ?? 0;
        grants.set(credits, (grants.get(credits) ?? 0) + 1);
      },
    });
    pairs.push(pair);
    const perStream = 64 * MAX_DATA_PAYLOAD;
    const opened: { hubSide: MuxStream; backendSide: MuxStream }[] = [];
    for (let i = 0; i < streams; i++) {
      const accepted = new Promise<MuxStream>((resolve) => pair.backend.once('stream', resolve));
      const hubSide = pair.hub.openStream(OPEN);
      opened.push({ hubSide, backendSide: await accepted });
    }
    const data = randomBytes(perStream);
    const before = pair.hub.stats();
    const [got] = await Promise.all([
      Promise.all(opened.map((s) => readExactly(s.hubSide, perStream))),
      Promise.all(opened.map((s) => writeAll(s.backendSide, data))),
    ]);
    for (const g of got) expect(sha256(g)).toBe(sha256(data));
    const after = pair.hub.stats();
    const frames = after.dataFramesReceived - before.dataFramesReceived;
    console.log(
      `grants ${grantMessages} for ${frames} frames`,
      [...grants.entries()].sort((a, b) => a[0] - b[0]),
    );
    expect(frames).toBeGreaterThanOrEqual(streams * 64);
    // Before: one grant of one credit per frame (1.0). Now about one per 5 frames.
    expect(grantMessages / frames).toBeLessThan(0.25);
  }, 60_000);
});

/**
 * An engine on a transport that stays full until released, with `streams` streams each holding `bytes`
 * to send (so all wait in the ready queue), and what it did once released: the DATA payload sizes sent
 * in order, the reads of the transport's `bufferedAmount`, and the streams visited (`sendFrames` calls).
 */
/** Opens a stream on `engine` with 64 credits to send and writes `bytes` to it. */
function openWriting(engine: StreamEngine, bytes: number): MuxStream {
  const id = randomUUID();
  const stream = engine.openStream({
    id,
    connect: {
      event: 'connect',
      client_id: id,
      conn_port: 443,
      client_ip: '',
      hostname: 'a',
      is_tls: true,
    },
    sendMetering: { mode: 'metered', credits: 64 },
    receiveMetering: { mode: 'unmetered' },
    localEnd: 'keep-open',
    awaitingAnswer: false,
  });
  stream.write(Buffer.alloc(bytes));
  return stream;
}

async function drainReadyStreams(streams: number, bytes: number, sendDataPayload = MAX_DATA_PAYLOAD) {
  let full = true;
  let reads = 0;
  const sizes: number[] = [];
  /** The stream of each frame, in the order sent (its 16-byte id, hex). */
  const ids: string[] = [];
  const engine = new StreamEngine({
    framing: backendFraming,
    sendDataPayload,
    transport: {
      send: (message) => {
        sizes.push(message.length - DATA_HEADER_LENGTH);
        ids.push(Buffer.from(message.subarray(1, DATA_HEADER_LENGTH)).toString('hex'));
      },
      get bufferedAmount() {
        reads++;
        return full ? Number.POSITIVE_INFINITY : 0;
      },
    },
  });
  for (let i = 0; i < streams; i++) openWriting(engine, bytes);
  const visits = vi.spyOn(MuxStream.prototype, 'sendFrames');
  reads = 0;
  full = false;
  engine.transportDrained();
  await new Promise((resolve) => setImmediate(resolve));
  const result = { sizes, ids, reads, visits: visits.mock.calls.length };
  visits.mockRestore();
  engine.close('test');
  return result;
}

describe('the engine pump with many streams ready', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('visits one stream and reads the transport once per DATA frame, for 10 or 5 000 streams', async () => {
    // Two frames' worth per stream: every stream takes two turns.
    const few = await drainReadyStreams(10, 2 * MAX_DATA_PAYLOAD);
    const many = await drainReadyStreams(5_000, 2 * MAX_DATA_PAYLOAD);
    expect(few.sizes.length).toBe(2 * 10);
    expect(many.sizes.length).toBe(2 * 5_000);
    // One turn per frame (round robin, one frame per turn): nothing iterates over the waiting streams.
    expect(few.visits / few.sizes.length).toBe(1);
    expect(many.visits / many.sizes.length).toBe(1);
    expect(many.reads / many.sizes.length).toBe(few.reads / few.sizes.length);
    expect(many.reads / many.sizes.length).toBeLessThanOrEqual(1);
  });
});

describe('turns with many streams ready and larger frames agreed', () => {
  const large = 4 * MAX_DATA_PAYLOAD;

  it('turnPayload: the agreed size while a round fits in LONG_ROUND_BYTES, else the share in whole TLS records, at least 32 768 bytes', () => {
    expect(LONG_ROUND_BYTES / large).toBe(512);
    expect(turnPayload(1, large)).toBe(large);
    expect(turnPayload(512, large)).toBe(large);
    expect(turnPayload(513, large)).toBe(7 * TURN_GRAIN);
    expect(turnPayload(1000, large)).toBe(4 * TURN_GRAIN);
    expect(turnPayload(2048, large)).toBe(MAX_DATA_PAYLOAD);
    expect(turnPayload(10_000, large)).toBe(MAX_DATA_PAYLOAD);
    // The base protocol's frames are never cut further.
    expect(turnPayload(10_000, MAX_DATA_PAYLOAD)).toBe(MAX_DATA_PAYLOAD);
    expect(turnPayload(1000, MAX_DATA_PAYLOAD)).toBe(MAX_DATA_PAYLOAD);
  });

  it('keeps the agreed frame size while a round stays short, and shorter turns when it would not', async () => {
    // 200 streams × 128 KiB: a 25 MiB round, within LONG_ROUND_BYTES.
    const few = (await drainReadyStreams(200, 2 * large, large)).sizes;
    expect(few.every((size) => size === large)).toBe(true);
    expect(few.length).toBe(200 * 2);
    // 1 000 streams × 128 KiB would be a 125 MiB round: the first round is of 64 KiB turns; later ones
    // grow as streams finish, in whole TLS records, up to the agreed size.
    const drained = await drainReadyStreams(1000, 2 * large, large);
    const many = drained.sizes;
    expect(many.slice(0, 1000).every((size) => size === 4 * TURN_GRAIN)).toBe(true);
    // Fairness kept: while all 1 000 stay ready (4 turns of 64 KiB each for 256 KiB), every round of
    // 1 000 frames serves each stream exactly once, in the same order.
    const firstRound = drained.ids.slice(0, 1000);
    expect(new Set(firstRound).size).toBe(1000);
    for (let round = 1; round < 4; round++) {
      expect(drained.ids.slice(round * 1000, (round + 1) * 1000)).toEqual(firstRound);
    }
    expect(many.every((size) => size % TURN_GRAIN === 0 && size >= 4 * TURN_GRAIN && size <= large)).toBe(
      true,
    );
    expect(many.reduce((a, b) => a + b, 0)).toBe(1000 * 2 * large);
    // 3 000 streams: turns of one base-protocol frame.
    const most = (await drainReadyStreams(3000, large, large)).sizes;
    expect(most.slice(0, 3000).every((size) => size === MAX_DATA_PAYLOAD)).toBe(true);
    expect(most.reduce((a, b) => a + b, 0)).toBe(3000 * large);
  });
});

describe('the engine pump: short messages among bulk streams', () => {
  /** An engine whose transport is full until `drain()`, recording the stream of each DATA frame sent. */
  function blockedEngine() {
    let full = true;
    const sent: { id: string; size: number }[] = [];
    const engine = new StreamEngine({
      framing: backendFraming,
      sendDataPayload: 4 * MAX_DATA_PAYLOAD,
      transport: {
        send: (message) =>
          sent.push({
            id: Buffer.from(message.subarray(1, DATA_HEADER_LENGTH)).toString('hex'),
            size: message.length - DATA_HEADER_LENGTH,
          }),
        get bufferedAmount() {
          return full ? Number.POSITIVE_INFINITY : 0;
        },
      },
    });
    const streams = new Map<string, MuxStream>();
    const open = (bytes: number): string => {
      const stream = openWriting(engine, bytes);
      const id = stream.id.replaceAll('-', '');
      streams.set(id, stream);
      return id;
    };
    const write = (id: string, bytes: number): void => {
      streams.get(id)!.write(Buffer.alloc(bytes));
    };
    const drain = async (): Promise<void> => {
      full = false;
      engine.transportDrained();
      await new Promise((resolve) => setImmediate(resolve));
      engine.close('test');
    };
    return { open, write, drain, sent };
  }

  it('sends a short message within two turns, not after the round of bulk streams before it', async () => {
    const { open, drain, sent } = blockedEngine();
    for (let i = 0; i < 200; i++) open(4 * 4 * MAX_DATA_PAYLOAD);
    const answer = open(1024);
    await drain();
    // The round-robin alone sent it after one turn of each of the 200 bulk streams (index 200).
    expect(sent.findIndex((frame) => frame.id === answer)).toBeLessThanOrEqual(1);
    expect(sent.filter((frame) => frame.id === answer).map((frame) => frame.size)).toEqual([1024]);
    expect(sent.reduce((sum, frame) => sum + frame.size, 0)).toBe(200 * 16 * MAX_DATA_PAYLOAD + 1024);
  });

  it('keeps every other turn for the round while short messages keep coming', async () => {
    const { open, drain, sent } = blockedEngine();
    const bulk = new Set(Array.from({ length: 50 }, () => open(4 * 4 * MAX_DATA_PAYLOAD)));
    const short = new Set(Array.from({ length: 150 }, () => open(2048)));
    await drain();
    // Turns alternate while both lanes wait: the 150 short messages take at most every other turn, and
    // the bulk streams are never held for more than one of them in a row.
    const first = sent.slice(0, 300);
    let inARow = 0;
    for (const frame of first) {
      inARow = short.has(frame.id) ? inARow + 1 : 0;
      expect(inARow).toBeLessThanOrEqual(1);
    }
    expect(first.filter((frame) => bulk.has(frame.id)).length).toBeGreaterThanOrEqual(150);
    expect(sent.filter((frame) => short.has(frame.id)).length).toBe(150);
  });

  it('a prompt turn carries the short message only: what the stream writes after it waits in the round', async () => {
    const { open, write, drain, sent } = blockedEngine();
    for (let i = 0; i < 20; i++) open(4 * 4 * MAX_DATA_PAYLOAD);
    // Queued in the prompt lane with 1 KiB, then 256 KiB more written before its turn.
    const answer = open(1024);
    write(answer, 256 * 1024);
    await drain();
    const frames = sent.filter((frame) => frame.id === answer);
    expect(sent.findIndex((frame) => frame.id === answer)).toBeLessThanOrEqual(1);
    expect(frames[0]!.size).toBe(1024);
    // The rest in the round's turns, after the 20 bulk streams' first ones.
    expect(sent.findIndex((frame, i) => i > 1 && frame.id === answer)).toBeGreaterThan(20);
    expect(frames.reduce((sum, frame) => sum + frame.size, 0)).toBe(1024 + 256 * 1024);
  });
});
