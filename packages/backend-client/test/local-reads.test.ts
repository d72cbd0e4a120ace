import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { dialLocal } from '../src/local-dial.js';
import { FRAME_ROOM, frameRoom } from '@nexus-proxy/common';
import {
  CHUNK_READ_SIZE,
  HELD_BYTES_MAX,
  heldReads,
  INSTALLED_CHUNKS_MAX,
  installedChunks,
  LOCAL_READ_SIZE,
  LocalReads,
  SHORT_READ_MAX,
  setHeldReadsMax,
  SMALL_LANDING_SIZE,
} from '../src/local-reads.js';

const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) {
    if (socket.closed) continue;
    const closed = once(socket, 'close');
    socket.destroy();
    await closed;
  }
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

async function listen(onSocket: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer((s) => {
    s.on('error', () => {}); // reset by the cleanup
    onSocket(s);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function dial(port: number, reads: LocalReads): Promise<net.Socket> {
  const socket = await dialLocal({ host: '127.0.0.1', port }, { timeoutMs: 2_000, reads });
  sockets.push(socket);
  return socket;
}

/**
 * Dials `count` sockets to `port`, each read through its own `LocalReads` into the stream `sinkFor(i)`
 * makes, and sends each the one-byte seed `seedFor(i)` (which the test's service answers).
 */
async function relayed(
  port: number,
  count: number,
  sinkFor: (i: number) => Writable,
  seedFor: (i: number) => number = (i) => i,
): Promise<net.Socket[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const reads = new LocalReads();
      const socket = await dial(port, reads);
      socket.on('error', () => {});
      reads.attach(socket, sinkFor(i));
      socket.write(Buffer.from([seedFor(i)]));
      return socket;
    }),
  );
}

function pattern(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + seed + (i >> 12)) & 0xff;
  return out;
}

/**
 * A slow writable: each write completes a few turns of the event loop later, and its bytes are copied
 * only then, so a chunk reused before its write completed would show as corrupted data.
 */
class SlowSink extends Writable {
  readonly copies: Buffer[] = [];
  /** The memory under each chunk of 32 KiB or more. */
  readonly memory: ArrayBufferLike[] = [];
  /** The frame room in front of each chunk of 32 KiB or more (see `frameRoom`). */
  readonly rooms: number[] = [];
  /** Every chunk written, in order. */
  readonly chunks: Buffer[] = [];
  /** Largest chunk written. */
  largest = 0;
  /** Writes waiting for {@link SlowSink.release}. */
  readonly #held: (() => void)[] = [];
  constructor(
    highWaterMark: number,
    private holding = false,
  ) {
    super({ highWaterMark });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (chunk.length >= LOCAL_READ_SIZE / 2) {
      this.memory.push(chunk.buffer);
      this.rooms.push(frameRoom(chunk));
    }
    this.largest = Math.max(this.largest, chunk.length);
    this.chunks.push(chunk);
    const complete = (): void => {
      setImmediate(() =>
        setImmediate(() => {
          this.copies.push(Buffer.from(chunk));
          callback();
        }),
      );
    };
    if (this.holding) this.#held.push(complete);
    else complete();
  }
  /** Completes the held write and every later one. */
  release(): void {
    this.holding = false;
    for (const complete of this.#held.splice(0)) complete();
  }
  received(): Buffer {
    return Buffer.concat(this.copies);
  }
}

describe('LocalReads', () => {
  it('relays what the socket reads intact through a slow stream, in reused chunks, and ends it', async () => {
    const data = pattern(8 * 1024 * 1024, 1);
    const port = await listen((s) => s.end(data));
    const reads = new LocalReads();
    const socket = await dial(port, reads);
    const sink = new SlowSink(256 * 1024);
    let counted = 0;
    reads.attach(socket, sink, (bytes) => {
      counted += bytes;
    });
    await once(sink, 'finish');
    expect(counted).toBe(data.length);
    expect(sink.received().equals(data)).toBe(true);
    // 8 MiB in at most a few dozen distinct chunks: they are reused, never one per read.
    expect(sink.memory.length).toBeGreaterThan(40);
    expect(new Set(sink.memory).size).toBeLessThan(sink.memory.length / 2);
    // Each reused chunk is lent for framing in place: room for the frame's headers in front of it.
    expect(sink.rooms.every((room) => room === FRAME_ROOM)).toBe(true);
    expect(sink.largest).toBeLessThanOrEqual(CHUNK_READ_SIZE);
  });

  it('reads nothing before attach: a service that speaks first loses no byte', async () => {
    const banner = pattern(100_000, 2);
    const port = await listen((s) => s.end(banner));
    const reads = new LocalReads();
    const socket = await dial(port, reads);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(socket.bytesRead).toBe(0);
    const sink = new SlowSink(1024 * 1024);
    reads.attach(socket, sink);
    await once(sink, 'finish');
    expect(sink.received().equals(banner)).toBe(true);
  });

  it('stops reading while the stream is full, and resumes on its drain', async () => {
    // More than the kernel buffers on both ends take in while nothing reads (they grow with what was read).
    const data = pattern(16 * 1024 * 1024, 3);
    let written = false;
    const port = await listen((s) => {
      s.end(data, () => {
        written = true;
      });
    });
    const reads = new LocalReads();
    const socket = await dial(port, reads);
    const sink = new SlowSink(128 * 1024, true);
    reads.attach(socket, sink);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // One read past the high-water mark at most; the rest waits in the kernel.
    expect(sink.writableLength).toBeGreaterThanOrEqual(128 * 1024);
    expect(sink.writableLength).toBeLessThanOrEqual(128 * 1024 + CHUNK_READ_SIZE);
    expect(socket.bytesRead).toBe(sink.writableLength);
    expect(written).toBe(false);
    // A socket waiting for its stream's drain holds no chunk installed for its next read.
    expect(installedChunks()).toBe(0);
    sink.release();
    await once(sink, 'finish');
    expect(sink.received().equals(data)).toBe(true);
  });

  it('after detach forwards nothing, and discards what a resumed socket reads', async () => {
    let peer: net.Socket | undefined;
    const port = await listen((s) => {
      peer = s;
    });
    const reads = new LocalReads();
    const socket = await dial(port, reads);
    const sink = new SlowSink(1024 * 1024);
    reads.attach(socket, sink);
    while (peer === undefined) await new Promise((resolve) => setImmediate(resolve));
    peer.write(pattern(1000, 4));
    while (sink.copies.length === 0) await new Promise((resolve) => setImmediate(resolve));
    reads.detach();
    socket.resume();
    peer.end(pattern(50_000, 5));
    await once(socket, 'end');
    expect(sink.received().equals(pattern(1000, 4))).toBe(true);
    expect(sink.writableEnded).toBe(false);
  });

  it('holds the memory of what the stream waits to send: short reads do not each keep a whole chunk', async () => {
    // A service that sends pieces of 40 KiB, each once the previous one was read: every read is short.
    const piece = 40 * 1024;
    expect(piece).toBeGreaterThanOrEqual(LOCAL_READ_SIZE / 2); // a burst read, into a chunk of its own
    expect(piece).toBeLessThanOrEqual(SHORT_READ_MAX);
    let peer: net.Socket | undefined;
    const port = await listen((s) => {
      peer = s;
    });
    const reads = new LocalReads();
    const socket = await dial(port, reads);
    const highWaterMark = 256 * 1024;
    const sink = new SlowSink(highWaterMark, true); // holds every write: the stream has no credit
    let sent = 0;
    let read = 0;
    let done = false;
    const next = (): void => {
      if (done) return;
      sent += piece;
      peer!.write(pattern(piece, sent));
    };
    reads.attach(socket, sink, (bytes) => {
      read += bytes;
      if (read === sent) next();
    });
    while (peer === undefined) await new Promise((resolve) => setImmediate(resolve));
    next();
    // Until the stream is full and the socket stops being read.
    while (sink.writableLength < highWaterMark) await new Promise((resolve) => setImmediate(resolve));
    // The writes held: the one in `_write`, and those Node buffers behind it.
    const state = (
      sink as unknown as {
        _writableState: { getBuffer(): { chunk: Buffer }[] };
      }
    )._writableState;
    const held = [...sink.chunks, ...state.getBuffer().map((w) => w.chunk)];
    expect(held.reduce((total, c) => total + c.length, 0)).toBe(sink.writableLength);
    expect(held.length).toBeGreaterThanOrEqual(highWaterMark / piece);
    // The memory under them: about what they carry (a 128 KiB chunk per 40 KiB read before).
    const memory = new Set(held.map((c) => c.buffer));
    const bytes = [...memory].reduce((total, m) => total + m.byteLength, 0);
    expect(bytes).toBeLessThanOrEqual(highWaterMark + CHUNK_READ_SIZE);
    done = true;
    peer!.end();
    sink.release();
    await once(sink, 'finish');
    expect(sink.received().length).toBe(sent);
  });

  it('holds at most INSTALLED_CHUNKS_MAX chunks for next reads across sockets, none once they closed', async () => {
    const count = INSTALLED_CHUNKS_MAX + 16;
    const size = 1024 * 1024;
    let most = 0;
    const port = await listen((s) => {
      s.once('data', (seed: Buffer) => s.end(pattern(size, seed[0]!)));
    });
    const runs = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const reads = new LocalReads();
        const socket = await dial(port, reads);
        const sink = new SlowSink(256 * 1024);
        reads.attach(socket, sink, () => {
          most = Math.max(most, installedChunks());
        });
        socket.write(Buffer.from([i]));
        return { socket, sink, seed: i };
      }),
    );
    await Promise.all(runs.map(({ sink }) => once(sink, 'finish')));
    for (const { sink, seed } of runs) expect(sink.received().equals(pattern(size, seed))).toBe(true);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(INSTALLED_CHUNKS_MAX);
    const closed = runs.map(({ socket }) => once(socket, 'close'));
    for (const { socket } of runs) socket.destroy();
    await Promise.all(closed);
    expect(installedChunks()).toBe(0);
  });

  it('gives every installed chunk back when sockets are destroyed mid-burst', async () => {
    const count = INSTALLED_CHUNKS_MAX + 16;
    const port = await listen((s) => {
      const piece = pattern(1024 * 1024, 6);
      const more = (): void => {
        while (!s.destroyed && s.write(piece));
      };
      s.on('drain', more);
      more();
    });
    let most = 0;
    const closed = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const reads = new LocalReads();
        const socket = await dial(port, reads);
        socket.on('error', () => {});
        const sink = new SlowSink(256 * 1024);
        let read = 0;
        const done = once(socket, 'close');
        reads.attach(socket, sink, (bytes) => {
          most = Math.max(most, installedChunks());
          read += bytes;
          if (read < 2 * CHUNK_READ_SIZE || socket.destroyed) return;
          // Half from within the read (Node then asks for the next read's buffer), half a turn later.
          if (i % 2 === 0) socket.destroy();
          else setImmediate(() => socket.destroy());
        });
        return done;
      }),
    );
    await Promise.all(closed);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(INSTALLED_CHUNKS_MAX);
    expect(installedChunks()).toBe(0);
  });

  it('holds at most its bound across sockets whose streams do not send, and delivers every byte once they do', async () => {
    const bound = 1024 * 1024;
    setHeldReadsMax(bound);
    try {
      const count = 40;
      const size = 2 * 1024 * 1024;
      const port = await listen((s) => {
        s.once('data', (seed: Buffer) => s.end(pattern(size, seed[0]!)));
      });
      let most = 0;
      const runs = await Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const reads = new LocalReads();
          const socket = await dial(port, reads);
          // A stream without credit: holds every write until released, up to 1 MiB before it is full.
          const sink = new SlowSink(1024 * 1024, true);
          reads.attach(socket, sink, () => {
            most = Math.max(most, heldReads().bytes);
          });
          socket.write(Buffer.from([i]));
          return { socket, sink, seed: i };
        }),
      );
      // Until every socket either filled its stream or waits for room, and nothing moves any more.
      let last = -1;
      while (heldReads().bytes !== last) {
        last = heldReads().bytes;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Without the bound each stream would hold its 1 MiB: 40 MiB. With it: the bound, plus at most one
      // read per socket resumed when it was reached.
      expect(most).toBeGreaterThanOrEqual(bound);
      expect(most).toBeLessThanOrEqual(bound + count * (FRAME_ROOM + CHUNK_READ_SIZE));
      expect(heldReads().waiting).toBeGreaterThan(0);
      for (const { sink } of runs) sink.release();
      await Promise.all(runs.map(({ sink }) => once(sink, 'finish')));
      for (const { sink, seed } of runs) expect(sink.received().equals(pattern(size, seed))).toBe(true);
      expect(most).toBeLessThanOrEqual(bound + count * (FRAME_ROOM + CHUNK_READ_SIZE));
      const closed = runs.map(({ socket }) => once(socket, 'close'));
      for (const { socket } of runs) socket.destroy();
      await Promise.all(closed);
      expect(heldReads()).toMatchObject({ bytes: 0, waiting: 0 });
    } finally {
      setHeldReadsMax(HELD_BYTES_MAX);
    }
  });

  it('a socket that waited for its turn reads up to a whole landing then, not a small read first', async () => {
    // Twelve streams that send what they get, under a bound they pass together: they take turns. A socket
    // stopped while the bound was used up used to get a small landing for its next read, so each turn
    // began with a read of SMALL_LANDING_SIZE bytes (a DATA frame of its own) before a whole one.
    const bound = 512 * 1024;
    setHeldReadsMax(bound);
    try {
      const count = 12;
      const size = 4 * 1024 * 1024;
      const port = await listen((s) => {
        s.once('data', (seed: Buffer) => s.end(pattern(size, seed[0]!)));
      });
      const runs = await Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const reads = new LocalReads();
          const socket = await dial(port, reads);
          const sink = new SlowSink(256 * 1024);
          const sizes: number[] = [];
          reads.attach(socket, sink, (bytes) => {
            sizes.push(bytes);
          });
          socket.write(Buffer.from([i]));
          return { sink, sizes, seed: i };
        }),
      );
      await Promise.all(runs.map(({ sink }) => once(sink, 'finish')));
      let small = 0;
      let reads = 0;
      for (const { sink, sizes, seed } of runs) {
        expect(sink.received().equals(pattern(size, seed))).toBe(true);
        // A socket's first read lands small (a quiet socket's), and its last brings what is left.
        const middle = sizes.slice(1, -1);
        reads += middle.length;
        small += middle.filter((n) => n <= SMALL_LANDING_SIZE).length;
      }
      expect(reads).toBeGreaterThan(count * 8);
      expect(small).toBe(0);
    } finally {
      setHeldReadsMax(HELD_BYTES_MAX);
    }
  });

  it('a socket that answers an exchange does not queue behind the sockets waiting for room', async () => {
    // The bound is held by streams that never send, and 80 bulk sockets wait for room: they move only in
    // the trickle's turns (one every 50 ms, oldest first). An exchange (1 KiB asked, 1 KiB answered) whose
    // socket queued behind them would wait about 4 s for each answer; it starts reading at once, and its
    // reads are short with its stream holding nothing before each, so it goes on reading.
    const bound = 512 * 1024;
    setHeldReadsMax(bound);
    try {
      const port = await listen((s) => {
        s.once('data', (first: Buffer) => {
          if (first[0] === 0xee) {
            // The exchange: answers every 1 KiB asked with 1 KiB, at once (no Nagle delay).
            s.setNoDelay(true);
            let pending = first.length - 1;
            const answer = (): void => {
              while (pending >= 1024) {
                pending -= 1024;
                s.write(Buffer.alloc(1024, 0xaa));
              }
            };
            answer();
            s.on('data', (more: Buffer) => {
              pending += more.length;
              answer();
            });
          } else s.end(Buffer.alloc(4 * 1024 * 1024, first[0]!)); // bulk: what it carries is not checked here
        });
      });
      const stuck = await relayed(port, 8, () => new SlowSink(256 * 1024, true));
      while (heldReads().bytes < bound) await new Promise((resolve) => setTimeout(resolve, 10));
      await relayed(
        port,
        80,
        () => new SlowSink(256 * 1024),
        (i) => 20 + i,
      );
      while (heldReads().waiting < 80) await new Promise((resolve) => setTimeout(resolve, 10));
      const reads = new LocalReads();
      const socket = await dial(port, reads);
      const answers = new Writable({
        write(chunk: Buffer, _enc, callback) {
          received += chunk.length;
          callback();
          if (received >= asked) done?.();
        },
      });
      let received = 0;
      let asked = 0;
      let done: (() => void) | undefined;
      reads.attach(socket, answers);
      socket.write(Buffer.from([0xee]));
      const started = performance.now();
      for (let i = 0; i < 5; i++) {
        asked += 1024;
        const answered = new Promise<void>((resolve) => {
          done = resolve;
        });
        socket.write(Buffer.alloc(1024, i));
        await answered;
      }
      expect(received).toBe(5 * 1024);
      // Each answer would wait about 4 s behind the 80 (the tree before: 16.6 s for the five); here 1–20 ms.
      expect(performance.now() - started).toBeLessThan(1_000);
      const closed = [...stuck, ...sockets].map((s) => once(s, 'close'));
      for (const s of stuck) s.destroy();
      for (const s of sockets) s.destroy();
      await Promise.all(closed);
    } finally {
      setHeldReadsMax(HELD_BYTES_MAX);
    }
  }, 30_000);

  it('streams that never send fill the bound but do not stop a stream that does', async () => {
    const bound = 512 * 1024;
    setHeldReadsMax(bound);
    try {
      const port = await listen((s) => {
        s.once('data', (seed: Buffer) =>
          s.end(pattern(seed[0] === 99 ? 512 * 1024 : 2 * 1024 * 1024, seed[0]!)),
        );
      });
      // Eight streams whose readers stopped: they hold what they read, for good (until destroyed).
      const stuck = await relayed(port, 8, () => new SlowSink(256 * 1024, true));
      while (heldReads().bytes < bound) await new Promise((resolve) => setTimeout(resolve, 10));
      // A stream that sends what it gets: its socket waits for room that never returns, and reads in the
      // trickle's turns.
      const reads = new LocalReads();
      const socket = await dial(port, reads);
      const sink = new SlowSink(256 * 1024);
      reads.attach(socket, sink);
      socket.write(Buffer.from([99]));
      await once(sink, 'finish');
      expect(sink.received().equals(pattern(512 * 1024, 99))).toBe(true);
      expect(heldReads().bytes).toBeGreaterThanOrEqual(bound); // still held by the stuck ones
      const closed = stuck.map((s) => once(s, 'close'));
      for (const s of stuck) s.destroy();
      await Promise.all(closed);
      expect(heldReads().bytes).toBe(0);
    } finally {
      setHeldReadsMax(HELD_BYTES_MAX);
    }
  });
});
