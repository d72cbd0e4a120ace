import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createTestPki,
  delay,
  HashingReader,
  MiB,
  type TestNode,
  pump,
  RandomSource,
  sampleMemory,
  startNode,
  startService,
  type TestPki,
} from '@nexus-proxy/test-harness';

vi.setConfig({ testTimeout: 120_000 });

/** Bytes each way (docs/reliability.md item 1). */
const TRANSFER = 300 * MiB;
/** Both far ends (service and end user) read at about 1 MB/s for this long, then at full speed. */
const SLOW_MS = 3_000;
const SLOW_RATE = 1_000_000;
/**
 * Growth over the post-GC baseline of `process.memoryUsage().arrayBuffers` (every Buffer of the end user,
 * node, backend client and service: all in this process), in settled post-GC samples taken while both
 * readers are slow and again at full speed with both directions running. Without backpressure the
 * senders would queue ~300 MB each; with it, each direction holds its credit windows (64 frames ≈ 2 MiB
 * at the hub and at the backend client), the WebSocket high-water marks (1 MiB at each end), stream
 * buffers and socket buffers: measured 3–5 MB while slow, up to 18 MB at full speed both ways.
 */
const MAX_LIVE_ARRAY_BUFFER_GROWTH = 32 * MiB;
/** The same at its peak over the whole transfer (sampled every 20 ms), garbage not yet collected included. */
const MAX_PEAK_ARRAY_BUFFER_GROWTH = 96 * MiB;
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

async function node(): Promise<TestNode> {
  const n = await startNode({ pki, listeners: ['http'] });
  cleanups.push(() => n.close());
  return n;
}

function mb(n: number): string {
  return (n / 1e6).toFixed(1);
}

describe('createNexus: docs/reliability.md item 1 (one stream, 300 MB each way)', () => {
  it('R1 full queue never drops data: 300 MB upload and 300 MB download at once through one stream, slow readers at both ends, SHA-256 equal, memory bounded throughout', async () => {
    const n = await node();
    const head = Buffer.from('PUT /both-ways HTTP/1.1\r\nHost: app.test\r\n\r\n');
    // The service reads the upload (head included) and writes the download at the same time; it ends
    // its side once both are done (a v1 stream ends as a whole when the service ends).
    let serviceReader: HashingReader | undefined;
    let download: RandomSource | undefined;
    const svc = await startService((socket) => {
      const reader = new HashingReader(socket);
      reader.throttle(SLOW_RATE);
      serviceReader = reader;
      download = new RandomSource(TRANSFER);
      void Promise.all([pump(download, socket), reader.untilBytes(head.length + TRANSFER)]).then(
        () => socket.end(),
        () => {},
      );
    });
    cleanups.push(() => svc.close());
    const backend = await n.attachBackend({ hostnames: ['app.test'], service: svc.port });

    // Sampled from before the first byte to after the last, both directions running throughout.
    const memory = await sampleMemory();
    // A plain socket: the harness's recording client would keep the whole download in memory.
    const client = { socket: netConnect({ host: '127.0.0.1', port: n.httpPort }) };
    await once(client.socket, 'connect');
    const userReader = new HashingReader(client.socket);
    userReader.throttle(SLOW_RATE);
    const upload = new RandomSource(TRANSFER, { prefix: head });
    const sending = pump(upload, client.socket);
    await vi.waitFor(() => {
      expect(serviceReader?.bytes).toBeGreaterThan(0);
      expect(userReader.bytes).toBeGreaterThan(0);
    });
    await delay(SLOW_MS);
    const slowUp = serviceReader!.bytes;
    const slowDown = userReader.bytes;
    // Live data while both readers are slow: what backpressure lets pile up, garbage excluded.
    const slowLive = await memory.live();
    const start = Date.now();
    serviceReader!.full();
    userReader.full();
    // And once more at full speed, halfway through the download while the upload still runs.
    await vi.waitFor(() => expect(userReader.bytes).toBeGreaterThan(TRANSFER / 2), { timeout: 30_000 });
    expect(serviceReader!.bytes).toBeLessThan(head.length + TRANSFER);
    const fullLive = await memory.live();
    const [up, down] = await Promise.all([
      serviceReader!.untilBytes(head.length + TRANSFER),
      userReader.ended,
    ]);
    const elapsed = Date.now() - start;
    await sending;
    const summary = await memory.stop();
    console.log(
      `R1 both ways: ${mb(((2 * TRANSFER + head.length - slowUp - slowDown) / elapsed) * 1000)} MB/s at full speed ` +
        `(${mb(head.length + TRANSFER - slowUp)} MB up and ${mb(TRANSFER - slowDown)} MB down in ${elapsed} ms); ` +
        `slow phase: ${mb(slowUp)} MB up, ${mb(slowDown)} MB down; arrayBuffers live +${mb(
          slowLive.arrayBuffers - summary.baseArrayBuffers,
        )} MB (slow) / +${mb(fullLive.arrayBuffers - summary.baseArrayBuffers)} MB (full speed), peak +${mb(
          summary.peakArrayBuffers - summary.baseArrayBuffers,
        )} MB; rss peak +${mb(summary.peakRss - summary.baseRss)} MB; ${summary.samples} samples`,
    );

    // Nothing dropped, nothing duplicated, in either direction.
    expect(serviceReader!.bytes).toBe(head.length + TRANSFER);
    expect(up).toBe(upload.digest());
    expect(userReader.bytes).toBe(TRANSFER);
    expect(down).toBe(download!.digest());
    // The slow phase really was slow at both ends: the senders were held back, not buffered ahead.
    expect(slowUp).toBeLessThan(SLOW_RATE * (SLOW_MS / 1000) * 2);
    expect(slowDown).toBeLessThan(SLOW_RATE * (SLOW_MS / 1000) * 2);
    // Memory stayed bounded the whole time, slow phase and full speed alike.
    expect(summary.liveArrayBuffers - summary.baseArrayBuffers).toBeLessThan(MAX_LIVE_ARRAY_BUFFER_GROWTH);
    expect(summary.peakArrayBuffers - summary.baseArrayBuffers).toBeLessThan(MAX_PEAK_ARRAY_BUFFER_GROWTH);
    expect(summary.peakRss - summary.baseRss).toBeLessThan(MAX_RSS_GROWTH);
    // One stream on one session the whole time, closed as completed once the service ended.
    expect(backend.streams).toHaveLength(1);
    expect(n.events.backendDisconnected).toHaveLength(0);
    client.socket.end();
    await vi.waitFor(() => expect(n.events.streamClose).toHaveLength(1));
    expect(n.events.streamClose[0]).toMatchObject({ reason: 'completed', bytesDown: TRANSFER });
  });
});
