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
import { LONG_ROUND_BYTES } from '../src/engine-options.js';
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

describe('the engine pump with many streams ready', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** Streams visited and transport reads per DATA frame sent, with `streams` streams all ready at once. */
  async function workPerFrame(streams: number) {
    let full = true;
    let reads = 0;
    let frames = 0;
    const engine = new StreamEngine({
      framing: backendFraming,
      transport: {
        send: () => {
          frames++;
        },
        get bufferedAmount() {
          reads++;
          return full ? Number.POSITIVE_INFINITY : 0;
        },
      },
    });
    const opened: MuxStream[] = [];
    for (let i = 0; i < streams; i++) {
      const id = randomUUID();
      opened.push(
        engine.openStream({
          id,
          connect: {
            event: 'connect',
            client_id: id,
            conn_port: 443,
            client_ip: '',
            hostname: 'a',
            is_tls: true,
          },
          sendMetering: { mode: 'metered', credits: 4 },
          receiveMetering: { mode: 'unmetered' },
          localEnd: 'keep-open',
          awaitingAnswer: false,
        }),
      );
    }
    // Two frames' worth per stream while the transport is full: every stream waits in the ready queue.
    const payload = Buffer.alloc(2 * MAX_DATA_PAYLOAD);
    for (const stream of opened) stream.write(payload);
    const visits = vi.spyOn(MuxStream.prototype, 'sendFrames');
    reads = 0;
    full = false;
    engine.transportDrained();
    await new Promise((resolve) => setImmediate(resolve));
    expect(frames).toBe(2 * streams);
    const perFrame = { visits: visits.mock.calls.length / frames, reads: reads / frames };
    visits.mockRestore();
    engine.close('test');
    return perFrame;
  }

  it('visits one stream and reads the transport once per DATA frame, for 10 or 5 000 streams', async () => {
    const few = await workPerFrame(10);
    const many = await workPerFrame(5_000);
    // One turn per frame (round robin, one frame per turn): nothing iterates over the waiting streams.
    expect(few.visits).toBe(1);
    expect(many.visits).toBe(1);
    expect(many.reads).toBe(few.reads);
    expect(many.reads).toBeLessThanOrEqual(1);
  });
});

describe('turns with many streams ready and larger frames agreed', () => {
  /** Payload sizes of the DATA frames sent, in order, with `streams` streams ready with 256 KiB each. */
  async function frameSizes(streams: number): Promise<number[]> {
    let full = true;
    const sizes: number[] = [];
    const engine = new StreamEngine({
      framing: backendFraming,
      sendDataPayload: 4 * MAX_DATA_PAYLOAD,
      transport: {
        send: (message) => {
          sizes.push(message.length - DATA_HEADER_LENGTH);
        },
        get bufferedAmount() {
          return full ? Number.POSITIVE_INFINITY : 0;
        },
      },
    });
    for (let i = 0; i < streams; i++) {
      const id = randomUUID();
      engine
        .openStream({
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
        })
        .write(Buffer.alloc(8 * MAX_DATA_PAYLOAD));
    }
    full = false;
    engine.transportDrained();
    await new Promise((resolve) => setImmediate(resolve));
    engine.close('test');
    return sizes;
  }

  it('keeps the agreed frame size while a round stays short, and turns of 32 768 bytes when it would not', async () => {
    // 200 streams × 128 KiB: a 25 MiB round, within LONG_ROUND_BYTES.
    const few = await frameSizes(200);
    expect(few.every((size) => size === 4 * MAX_DATA_PAYLOAD)).toBe(true);
    expect(few.length).toBe(200 * 2);
    // 300 streams × 128 KiB would be a 37.5 MiB round: a turn carries one base-protocol frame (the
    // streams here stay ready together to the end).
    const streams = LONG_ROUND_BYTES / (4 * MAX_DATA_PAYLOAD) + 44;
    const many = await frameSizes(streams);
    expect(many.every((size) => size === MAX_DATA_PAYLOAD)).toBe(true);
    expect(many.reduce((a, b) => a + b, 0)).toBe(streams * 8 * MAX_DATA_PAYLOAD);
  });
});
