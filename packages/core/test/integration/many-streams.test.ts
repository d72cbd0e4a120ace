/**
 * Many concurrent bulk downloads over one backend session (docs/benchmarks.md "Many streams over one
 * session"): a burst of streams that all start at once, and a group joining while they already flow.
 * Every stream completes intact, and every one gets a fair share while they all run: the late ones are
 * not starved by the burst before them.
 */
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { HELD_BYTES_MAX, heldReads, setHeldReadsMax } from '@nexus-proxy/backend-client';
import { createTestPki, startNode, startService, type TestPki } from '@nexus-proxy/test-harness';

vi.setConfig({ testTimeout: 120_000 });

/** Streams opened first, and streams that join once those flow: together well over the turns. */
const EARLY = 100;
const LATE = 40;
/** Bytes each download carries. */
const PER_STREAM = 3 * 1024 * 1024;

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The byte at `offset` of a download: a pattern that shows any byte lost, repeated or reordered. */
function byteAt(offset: number): number {
  return (offset * 31 + (offset >> 16)) & 0xff;
}

const BODY = Buffer.from(Array.from({ length: PER_STREAM }, (_, i) => byteAt(i)));

/** Jain's fairness index of `values` (1: all equal; 1/n: one took everything). */
function jain(values: number[]): number {
  const sum = values.reduce((a, b) => a + b, 0);
  const squares = values.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (values.length * squares);
}

interface Download {
  socket: Socket;
  bytes: number;
  /** The bytes received match the pattern so far. */
  intact: boolean;
  done: Promise<void>;
}

function download(port: number): Download {
  const socket = netConnect({ host: '127.0.0.1', port });
  const d: Download = { socket, bytes: 0, intact: true, done: Promise.resolve() };
  socket.on('data', (chunk: Buffer) => {
    for (let i = 0; i < chunk.length; i += 4099) {
      if (chunk[i] !== byteAt(d.bytes + i)) d.intact = false;
    }
    if (chunk[chunk.length - 1] !== byteAt(d.bytes + chunk.length - 1)) d.intact = false;
    d.bytes += chunk.length;
  });
  socket.write('GET /download HTTP/1.1\r\nHost: app.test\r\n\r\n');
  d.done = once(socket, 'end').then(() => undefined);
  return d;
}

/**
 * Runs the scenario; with `heldBound`, under that bound on what the backend client's reads hold (the
 * process-wide `HELD_BYTES_MAX`, far above what 140 streams hold by default), so that streams take turns
 * at reading; returns the most the reads held, sampled every 10 ms.
 */
async function scenario(heldBound?: number): Promise<number> {
  if (heldBound !== undefined) setHeldReadsMax(heldBound);
  let most = 0;
  const sampler = setInterval(() => {
    most = Math.max(most, heldReads().bytes);
  }, 10);
  cleanups.push(() => {
    clearInterval(sampler);
    setHeldReadsMax(HELD_BYTES_MAX);
  });
  {
    const node = await startNode({ pki, listeners: ['http'] });
    cleanups.push(() => node.close());
    // The service answers every request with the same download, written as fast as it is taken; the
    // early streams all start together (a burst), once every one of them has been dialled.
    const held: Socket[] = [];
    const service = await startService((socket) => {
      socket.once('data', () => {
        if (held.length >= EARLY) {
          socket.end(BODY);
          return;
        }
        held.push(socket);
        if (held.length === EARLY) for (const s of held) s.end(BODY);
      });
    });
    cleanups.push(() => service.close());
    await node.attachBackend({ hostnames: ['app.test'], service: service.port });

    const early = Array.from({ length: EARLY }, () => download(node.httpPort));
    cleanups.push(() => {
      for (const d of early) d.socket.destroy();
    });
    // The late group joins once every early stream has data flowing.
    await vi.waitFor(() => expect(early.every((d) => d.bytes > 0)).toBe(true), { timeout: 30_000 });
    const late = Array.from({ length: LATE }, () => download(node.httpPort));
    cleanups.push(() => {
      for (const d of late) d.socket.destroy();
    });
    await vi.waitFor(() => expect(late.every((d) => d.bytes > 0)).toBe(true), { timeout: 30_000 });

    // From here all streams run: the bytes each gains until the first one completes are its share.
    const all = [...early, ...late];
    const start = all.map((d) => d.bytes);
    console.log(
      `many streams: at the start of the window ${Math.min(...start)} to ${Math.max(...start)} bytes`,
    );
    expect(Math.max(...start)).toBeLessThan(PER_STREAM / 2);
    await Promise.race(all.map((d) => d.done));
    const gained = all.map((d, i) => d.bytes - start[i]!);
    const lateGained = gained.slice(EARLY);
    const earlyGained = gained.slice(0, EARLY);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      `many streams: Jain ${jain(gained).toFixed(3)} over ${all.length} streams; ` +
        `mean gained early ${(mean(earlyGained) / 1024).toFixed(0)} KiB, late ${(mean(lateGained) / 1024).toFixed(0)} KiB`,
    );
    expect(jain(gained)).toBeGreaterThanOrEqual(0.9);
    expect(mean(lateGained)).toBeGreaterThan(0.5 * mean(earlyGained));

    await Promise.all(all.map((d) => d.done));
    for (const d of all) {
      expect(d.bytes).toBe(PER_STREAM);
      expect(d.intact).toBe(true);
    }
  }
  return most;
}

describe('many concurrent downloads over one backend session', () => {
  it(`${EARLY} streams, then ${LATE} more while they flow: all complete intact, each with a fair share`, async () => {
    await scenario();
  });

  it('the same under a bound on what the backend reads hold that 140 streams pass 8 times: fair, intact, bounded', async () => {
    const bound = 4 * 1024 * 1024;
    const most = await scenario(bound);
    console.log(
      `many streams: the backend's reads held at most ${(most / 1024).toFixed(0)} KiB under ${bound / 1024} KiB`,
    );
    expect(most).toBeGreaterThanOrEqual(bound / 2); // the bound was reached, streams took turns
    // The bound, plus one read (at most a 128 KiB chunk) per stream resumed when it was reached.
    expect(most).toBeLessThanOrEqual(bound + (EARLY + LATE) * (128 * 1024 + 32));
    await vi.waitFor(() => expect(heldReads().bytes).toBe(0));
  });
});
