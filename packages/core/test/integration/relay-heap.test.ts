import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { RELAY_SCAVENGE_BYTES, tuneHeapForRelaying } from '@nexus-proxy/common/relay-heap';
import {
  createTestPki,
  HashingReader,
  MiB,
  pump,
  RandomSource,
  startNode,
  startService,
  type TestNode,
  type TestPki,
} from '@nexus-proxy/test-harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** Bytes of each download: several times the scavenge interval. */
const DOWNLOAD = 8 * MiB;
/** Bytes of each upload, the same. */
const UPLOAD = 8 * MiB;
/** `NODE_PERFORMANCE_GC_MINOR` and `NODE_PERFORMANCE_GC_FLAGS_FORCED` of a `gc` performance entry. */
const GC_MINOR = 1;
const GC_FLAGS_FORCED = 4;

let pki: TestPki;
let node: TestNode;
const closers: Array<() => Promise<void> | void> = [];
/** Scavenges requested by the process itself (V8's `gc()`), not the ones V8 decides on. */
let forcedScavenges = 0;
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const detail = (entry as { detail?: { kind: number; flags: number } }).detail;
    if (detail?.kind === GC_MINOR && (detail.flags & GC_FLAGS_FORCED) !== 0) forcedScavenges++;
  }
});

beforeAll(async () => {
  pki = await createTestPki();
  node = await startNode({ pki, listeners: ['http'] });
  closers.push(() => node.close());
  let source: RandomSource | undefined;
  const svc = await startService((socket) => {
    source = new RandomSource(DOWNLOAD);
    socket.resume();
    void pump(source, socket).then(
      () => socket.end(),
      () => {},
    );
  });
  closers.push(() => svc.close());
  await node.attachBackend({ hostnames: ['app.test'], service: svc.port });
  // Takes what the end user uploads, and ends once it has all of it with its SHA-256.
  const sink = await startService((socket) => {
    const reader = new HashingReader(socket);
    void reader.untilBytes(UPLOAD).then((digest) => socket.end(digest));
  });
  closers.push(() => sink.close());
  await node.attachBackend({ hostnames: ['up.test'], service: sink.port });
  observer.observe({ entryTypes: ['gc'] });
  closers.push(() => observer.disconnect());
});

afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** Downloads DOWNLOAD bytes through the node; resolves the scavenges forced meanwhile. */
async function download(): Promise<number> {
  const before = forcedScavenges;
  const socket = netConnect({ host: '127.0.0.1', port: node.httpPort });
  await once(socket, 'connect');
  const reader = new HashingReader(socket);
  socket.write('GET / HTTP/1.1\r\nHost: app.test\r\n\r\n');
  await reader.ended;
  expect(reader.bytes).toBe(DOWNLOAD);
  // Performance entries are delivered asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 50));
  return forcedScavenges - before;
}

/** Uploads UPLOAD bytes through the node; resolves the scavenges forced meanwhile. */
async function upload(): Promise<number> {
  const before = forcedScavenges;
  const socket = netConnect({ host: '127.0.0.1', port: node.httpPort });
  await once(socket, 'connect');
  const source = new RandomSource(UPLOAD, { prefix: Buffer.from('PUT / HTTP/1.1\r\nHost: up.test\r\n\r\n') });
  const ended = once(socket, 'end');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await pump(source, socket);
  await ended;
  // The sink hashed the request head with the body: the same bytes as the source emitted.
  expect(Buffer.concat(chunks).toString()).toBe(source.digest());
  await new Promise((resolve) => setTimeout(resolve, 50));
  return forcedScavenges - before;
}

describe('the node under tuneHeapForRelaying (nexus-proxy serve)', () => {
  it('runs a scavenge per RELAY_SCAVENGE_BYTES the hub receives once tuned, and none before', async () => {
    expect(await download()).toBe(0);
    tuneHeapForRelaying();
    const forced = await download();
    // The DATA frames of the download arrive through the hub: one scavenge per RELAY_SCAVENGE_BYTES of
    // them (the end user's request and the backend's control frames add little).
    expect(forced).toBeGreaterThanOrEqual(Math.floor(DOWNLOAD / RELAY_SCAVENGE_BYTES) - 1);
    expect(forced).toBeLessThanOrEqual(Math.ceil(DOWNLOAD / RELAY_SCAVENGE_BYTES) + 1);
  });

  it("counts the end user's reads as well: an upload through the node frees them with scavenges", async () => {
    tuneHeapForRelaying();
    const forced = await upload();
    // Counted twice in this one process: the node's reads of the end user's socket (frame-reads.ts) and
    // the backend client's of the hub link. Without the first, about half as many.
    const counted = 2 * UPLOAD;
    expect(forced).toBeGreaterThanOrEqual(Math.floor(counted / RELAY_SCAVENGE_BYTES) - 1);
    expect(forced).toBeLessThanOrEqual(Math.ceil(counted / RELAY_SCAVENGE_BYTES) + 1);
  });
});
