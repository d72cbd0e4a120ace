import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import {
  BufferPool,
  FreeBytes,
  POOL_TRIM_INTERVAL_MS,
  SizedBufferPools,
  WrittenBuffers,
} from '../src/buffer-pool.js';

/** A writable whose writes complete when `complete()` is called, oldest first, or fail all at once. */
class HeldWrites extends Writable {
  readonly #callbacks: ((err?: Error | null) => void)[] = [];
  constructor() {
    super({ highWaterMark: 1 << 20 });
  }
  override _write(_chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#callbacks.push(callback);
  }
  complete(): void {
    this.#callbacks.shift()?.();
  }
  fail(): void {
    this.#callbacks.shift()?.(new Error('cut'));
  }
}

describe('BufferPool', () => {
  it('gives back what it was given, keeps at most `keep`, and never a buffer too small', () => {
    const pool = new BufferPool(1024, 2);
    const a = pool.take();
    const b = pool.take();
    const c = pool.take(4096);
    expect(a.length).toBe(1024);
    expect(c.length).toBe(4096);
    expect(a).not.toBe(b);
    pool.give(a);
    pool.give(b);
    pool.give(c);
    expect(pool.free).toBe(2);
    expect(pool.take()).toBe(b);
    // The free one (a, 1 KiB) is too small for 2 KiB: a new buffer instead.
    const d = pool.take(2048);
    expect(d).not.toBe(a);
    expect(d.length).toBe(2048);
  });
});

describe('WrittenBuffers', () => {
  it('gives each buffer back only once its own write has completed, in write order', async () => {
    const pool = new BufferPool(16, 8);
    const written = new WrittenBuffers(pool);
    const sink = new HeldWrites();
    const buffers = [pool.take(), pool.take(), pool.take()];
    const called: number[] = [];
    buffers.forEach((buffer, i) => {
      written.add(buffer, () => called.push(i));
      sink.write(buffer, written.written);
    });
    expect(pool.free).toBe(0);
    sink.complete();
    await new Promise((resolve) => process.nextTick(resolve));
    expect(called).toEqual([0]);
    expect(pool.free).toBe(1);
    expect(pool.take()).toBe(buffers[0]);
    sink.complete();
    sink.complete();
    await new Promise((resolve) => process.nextTick(resolve));
    expect(called).toEqual([0, 1, 2]);
    expect(pool.free).toBe(2);
  });

  it('after a failed write gives nothing back, and still calls every callback once', async () => {
    const pool = new BufferPool(16, 8);
    const written = new WrittenBuffers(pool);
    const sink = new HeldWrites();
    sink.on('error', () => {});
    const errors: (Error | null | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      written.add(pool.take(), (err) => errors.push(err));
      sink.write(Buffer.alloc(1), written.written);
    }
    sink.fail();
    for (let i = 0; i < 10 && errors.length < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toHaveLength(3);
    expect(written.failed).toBe(true);
    expect(pool.free).toBe(0);
  });

  it('keeps write order across a long run that never completes every write at once', () => {
    const pool = new BufferPool(16, 4);
    const written = new WrittenBuffers(pool);
    // Always two writes in flight: add one, complete the oldest, for long enough to compact many times.
    const inFlight = [pool.take(), pool.take()];
    for (const buffer of inFlight) written.add(buffer);
    for (let i = 0; i < 10_000; i++) {
      written.written();
      const completed = inFlight.shift()!;
      // The buffer the pool gives out next is the one whose write completed, never one still in flight.
      const next = pool.take();
      expect(next).toBe(completed);
      written.add(next);
      inFlight.push(next);
    }
    expect(pool.free).toBe(0);
  });
});

describe('BufferPool, elastic', () => {
  it('keeps past its floor while busy, within the shared bound, and trims back what was not taken', () => {
    vi.useFakeTimers();
    try {
      const group = new FreeBytes(4 * 1024);
      const a = new BufferPool(1024, 1, { maxFree: 100, group });
      const b = new BufferPool(2048, 0, { maxFree: 100, group });
      const taken = Array.from({ length: 6 }, () => a.take());
      for (const buffer of taken) a.give(buffer);
      // The floor (1) plus 4 KiB past it: 4 more; the sixth is left to the collector (no other pool keeps
      // anything past its floor to make room with).
      expect(a.free).toBe(5);
      expect(group.bytes).toBe(4 * 1024);
      // A wave that takes 3 and gives them back: those 3 are used, the other 2 were not.
      const wave = [a.take(), a.take(), a.take()];
      for (const buffer of wave) a.give(buffer);
      expect(a.free).toBe(5);
      vi.advanceTimersByTime(POOL_TRIM_INTERVAL_MS);
      expect(a.free).toBe(3); // the 2 not taken since the last trim went
      expect(group.bytes).toBe(2 * 1024);
      // Idle: the next trim takes it back to the floor, and the shared bytes to 0.
      vi.advanceTimersByTime(POOL_TRIM_INTERVAL_MS);
      expect(a.free).toBe(1);
      expect(group.bytes).toBe(0);
      expect(vi.getTimerCount()).toBe(0); // nothing past a floor: no timer left
      // Room again for the other pool.
      b.give(Buffer.allocUnsafeSlow(2048));
      expect(b.free).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('makes room within the shared bound for the size given back, from the pool that keeps the most past its floor', () => {
    const group = new FreeBytes(8 * 1024);
    const ramp = new BufferPool(1024, 1, { maxFree: 100, group });
    const other = new BufferPool(1536, 0, { maxFree: 100, group });
    const inUse = new BufferPool(2048, 0, { maxFree: 100, group });
    // A ramp-up in 1 KiB buffers: its floor and 6 KiB past it.
    const first = Array.from({ length: 7 }, () => ramp.take());
    for (const buffer of first) ramp.give(buffer);
    other.give(Buffer.allocUnsafeSlow(1536));
    expect(group.bytes).toBe(6 * 1024 + 1536);
    // The load moves to 2 KiB buffers: what it gives back is kept, and two of the ramp's 1 KiB buffers
    // (the pool with the most past its floor) go to the collector instead.
    const given = Buffer.allocUnsafeSlow(2048);
    inUse.give(given);
    expect(inUse.free).toBe(1);
    expect(ramp.free).toBe(5);
    expect(other.free).toBe(1);
    expect(group.bytes).toBe(4 * 1024 + 1536 + 2048);
    // Its next take is that buffer, not a new one.
    expect(inUse.take()).toBe(given);
    // Never below a pool's floor: once nothing past a floor is left to give, what comes back is dropped.
    const more = Array.from({ length: 6 }, () => Buffer.allocUnsafeSlow(2048));
    for (const buffer of more) inUse.give(buffer);
    expect(ramp.free).toBe(1);
    expect(other.free).toBe(0);
    expect(inUse.free).toBe(4);
    expect(group.bytes).toBe(8 * 1024);
  });

  it('drops what is given back, and nothing else, when the other pools cannot make the room', () => {
    const group = new FreeBytes(4 * 1024);
    const small = new BufferPool(1024, 0, { maxFree: 100, group });
    const large = new BufferPool(3072, 0, { maxFree: 100, group });
    small.give(Buffer.allocUnsafeSlow(1024));
    large.give(Buffer.allocUnsafeSlow(3072));
    expect(group.bytes).toBe(4 * 1024);
    // 3 KiB more would need 3 KiB past the other floors; the small pool keeps only 1 KiB.
    large.give(Buffer.allocUnsafeSlow(3072));
    expect(large.free).toBe(1);
    expect(small.free).toBe(1);
    expect(group.bytes).toBe(4 * 1024);
  });

  it('SizedBufferPools hands out the smallest size that takes a length, and takes back only its own sizes', () => {
    const pools = new SizedBufferPools([1024, 1536, 2048], 32, 4096, new FreeBytes(1 << 20));
    const small = pools.take(1000);
    expect(small.length).toBe(1024 + 32);
    const mid = pools.take(1100);
    expect(mid.length).toBe(1536 + 32);
    const big = pools.take(5000);
    expect(big.length).toBe(5000); // past the largest: a buffer of its own
    pools.give(small);
    pools.give(mid);
    pools.give(big); // not one of its sizes: left to the collector
    pools.give(Buffer.allocUnsafeSlow(1500)); // neither
    expect(pools.pools.map((p) => p.free)).toEqual([1, 1, 0]);
    expect(pools.take(1056)).toBe(small);
    expect(pools.poolFor(1536 + 32)).toBe(pools.pools[1]);
    expect(pools.poolFor(2048 + 33)).toBeUndefined();
  });
});

describe('WrittenBuffers, counted', () => {
  it('counts each buffer from add until its write calls back, and gives back what is left when settled', async () => {
    const counted = { bytes: 0 };
    const counter = {
      hold: (n: number) => {
        counted.bytes += n;
      },
      release: (n: number) => {
        counted.bytes -= n;
      },
    };
    const pool = new BufferPool(1024, 4);
    const written = new WrittenBuffers(pool, counter);
    const sink = new HeldWrites();
    for (const length of [1024, 1024, 100]) {
      const buffer = length === 1024 ? pool.take() : Buffer.alloc(length);
      written.add(buffer);
      sink.write(buffer, written.written);
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(counted.bytes).toBe(2148);
    expect(written.bytes).toBe(2148);
    sink.complete();
    expect(counted.bytes).toBe(1124);
    expect(pool.free).toBe(1); // the pooled one went back
    written.settle(); // the stream is gone: its callbacks may never come
    expect(counted.bytes).toBe(0);
    expect(written.bytes).toBe(0);
    sink.complete(); // a late callback counts nothing twice
    expect(counted.bytes).toBe(0);
  });
});
