import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BufferPool, WrittenBuffers } from '../src/buffer-pool.js';

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
