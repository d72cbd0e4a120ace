import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createTestPki,
  delay,
  HashingReader,
  MiB,
  type MemorySummary,
  type NodeHarness,
  onHttpRequest,
  pump,
  RandomSource,
  rawConnect,
  sampleMemory,
  startNode,
  startService,
  type TestPki,
} from '../helpers/node-harness.js';

vi.setConfig({ testTimeout: 60_000 });

/** Bytes each way (docs/reliability.md item 1). */
const TRANSFER = 300 * MiB;
/** The far end reads at about 1 MB/s for this long before reading at full speed. */
const SLOW_MS = 3_000;
const SLOW_RATE = 1_000_000;
/**
 * Growth over the post-GC baseline of `process.memoryUsage().arrayBuffers` (every Buffer of the end user,
 * node, backend client and service: all in this process) while the reader is slow. Without backpressure
 * the sender would queue ~300 MB; with it, credit windows (64 frames ≈ 2 MiB per direction), the
 * WebSocket high-water marks (1 MiB) and socket buffers in between hold a few MiB.
 */
const MAX_LIVE_ARRAY_BUFFER_GROWTH = 16 * MiB;
/** The same at its peak, garbage not yet collected included. */
const MAX_PEAK_ARRAY_BUFFER_GROWTH = 64 * MiB;
/** Growth of the resident set at its peak (heap and allocator noise included). */
const MAX_RSS_GROWTH = 160 * MiB;

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function node(): Promise<NodeHarness> {
  const n = await startNode({ pki, listeners: ['http'] });
  cleanups.push(() => n.close());
  return n;
}

function report(direction: string, memory: MemorySummary, fullSpeedBytes: number, fullSpeedMs: number): void {
  const mb = (n: number) => (n / 1e6).toFixed(1);
  console.log(
    `R1 ${direction}: ${mb((fullSpeedBytes / fullSpeedMs) * 1000)} MB/s at full speed ` +
      `(${mb(fullSpeedBytes)} MB in ${fullSpeedMs} ms); slow reader: arrayBuffers live +${mb(
        memory.liveArrayBuffers - memory.baseArrayBuffers,
      )} MB, peak +${mb(memory.peakArrayBuffers - memory.baseArrayBuffers)} MB (peak ${mb(memory.peakArrayBuffers)} MB), rss +${mb(memory.peakRss - memory.baseRss)} MB ` +
      `(peak ${mb(memory.peakRss)} MB), ${memory.samples} samples`,
  );
}

function expectBounded(memory: MemorySummary): void {
  expect(memory.liveArrayBuffers - memory.baseArrayBuffers).toBeLessThan(MAX_LIVE_ARRAY_BUFFER_GROWTH);
  expect(memory.peakArrayBuffers - memory.baseArrayBuffers).toBeLessThan(MAX_PEAK_ARRAY_BUFFER_GROWTH);
  expect(memory.peakRss - memory.baseRss).toBeLessThan(MAX_RSS_GROWTH);
}

describe('createNexus: docs/reliability.md item 1 (one stream, 300 MB each way)', () => {
  it('R1 full queue never drops data: 300 MB upload through one stream, slow reader, SHA-256 equal, memory bounded', async () => {
    const n = await node();
    const head = Buffer.from('PUT /upload HTTP/1.1\r\nHost: app.test\r\n\r\n');
    let reader: HashingReader | undefined;
    const svc = await startService((socket) => {
      reader = new HashingReader(socket);
      reader.throttle(SLOW_RATE);
    });
    cleanups.push(() => svc.close());
    const backend = await n.attachBackend({ hostnames: ['app.test'], service: svc.port });

    const client = await rawConnect(n.httpPort);
    const source = new RandomSource(TRANSFER, { prefix: head });
    const sending = pump(source, client.socket);
    await vi.waitFor(() => expect(reader).toBeDefined());
    const memory = sampleMemory();
    await delay(SLOW_MS);
    const slow = memory.stop();
    const slowBytes = reader!.bytes;
    const start = Date.now();
    reader!.full();
    const received = await reader!.untilBytes(head.length + TRANSFER);
    const elapsed = Date.now() - start;
    await sending;
    report('upload', slow, head.length + TRANSFER - slowBytes, elapsed);

    expect(reader!.bytes).toBe(head.length + TRANSFER);
    expect(received).toBe(source.digest());
    // The slow phase really was slow: the sender was held back, not buffered ahead.
    expect(slowBytes).toBeLessThan(SLOW_RATE * (SLOW_MS / 1000) * 2);
    expectBounded(slow);
    // One stream on one session the whole time.
    expect(backend.streams).toHaveLength(1);
    expect(n.events.backendDisconnected).toHaveLength(0);
    svc.accepted[0]?.end();
    expect(await client.closed).toMatchObject({ fin: true });
  });

  it('R1 full queue never drops data: 300 MB download through one stream, slow reader, SHA-256 equal, memory bounded', async () => {
    const n = await node();
    let source: RandomSource | undefined;
    const svc = await startService((socket) =>
      onHttpRequest(socket, () => {
        source = new RandomSource(TRANSFER);
        void pump(source, socket).then(
          () => socket.end(),
          () => {},
        );
      }),
    );
    cleanups.push(() => svc.close());
    const backend = await n.attachBackend({ hostnames: ['app.test'], service: svc.port });

    const client = await rawConnect(n.httpPort);
    const reader = new HashingReader(client.socket);
    reader.throttle(SLOW_RATE);
    client.socket.write('GET /download HTTP/1.1\r\nHost: app.test\r\n\r\n');
    await vi.waitFor(() => expect(reader.bytes).toBeGreaterThan(0));
    const memory = sampleMemory();
    await delay(SLOW_MS);
    const slow = memory.stop();
    const slowBytes = reader.bytes;
    const start = Date.now();
    reader.full();
    const received = await reader.ended;
    const elapsed = Date.now() - start;
    report('download', slow, TRANSFER - slowBytes, elapsed);

    expect(reader.bytes).toBe(TRANSFER);
    expect(received).toBe(source!.digest());
    expect(slowBytes).toBeLessThan(SLOW_RATE * (SLOW_MS / 1000) * 2);
    expectBounded(slow);
    expect(backend.streams).toHaveLength(1);
    await vi.waitFor(() => expect(n.events.streamClose).toHaveLength(1));
    expect(n.events.streamClose[0]).toMatchObject({ reason: 'completed', bytesDown: TRANSFER });
  });
});
