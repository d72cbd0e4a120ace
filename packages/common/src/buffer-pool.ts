import { Fifo } from './fifo.js';

/**
 * Buffers reused across writes, so that relaying allocates no new buffer per frame or per read. Every
 * `ArrayBuffer` is memory outside the JS heap that only a garbage collection returns, and once a process's
 * heap is past V8's few megabytes of "small heap", that memory counts towards its next full collection: a
 * relay that allocates a buffer per 32 KiB runs a mark-compact every ten-odd megabytes (docs/benchmarks.md,
 * "The backend client's download"). Used by the client side of the WebSocket frame writer (its masked
 * frames) and by the backend client's local reads.
 */

/** Time between two trims of the free buffers that pools keep past their floor, ms. */
export const POOL_TRIM_INTERVAL_MS = 2_000;

/**
 * Free bytes that several pools keep past their floors, together, at most: a relay whose reads are copied
 * into buffers of a few sizes keeps what its load cycles through, whichever sizes that is, within one bound.
 */
export class FreeBytes {
  /** Free bytes kept past the floors now. */
  bytes = 0;
  readonly #pools: BufferPool[] = [];
  constructor(readonly max: number) {}

  /** `pool` keeps its free buffers past its floor within this bound (from its constructor). */
  join(pool: BufferPool): void {
    this.#pools.push(pool);
  }

  /**
   * Makes room for `bytes` more within the bound by giving the collector free buffers past the floor of
   * the pools other than `taker`, the one with the most such bytes first; returns whether there is room.
   * A buffer is left to the collector either way, but the one kept is of the size being given back, in
   * use now: after a change of the sizes a load reads in (1 000 streams ramping up in 64 KiB reads, then
   * reading 128 KiB each), the bound no longer stays full of a size nobody takes while the size in use
   * drops what it gives back and allocates anew for every take (docs/benchmarks.md, "1 000 streams: whole
   * reads after a turn, and pools that keep the size in use").
   */
  makeRoom(bytes: number, taker: BufferPool): boolean {
    let others = 0;
    for (const pool of this.#pools) if (pool !== taker) others += pool.surplusBytes;
    // Not enough past the other floors to make the room: nothing is dropped for nothing.
    if (this.bytes + bytes - others > this.max) return false;
    while (this.bytes + bytes > this.max) {
      let most: BufferPool | undefined;
      for (const pool of this.#pools) {
        if (pool !== taker && pool.surplusBytes > (most?.surplusBytes ?? 0)) most = pool;
      }
      if (most === undefined) return false;
      most.evict();
    }
    return true;
  }
}

/** Pools that keep buffers past their floor now: trimmed by one timer for the process. */
const elastic = new Set<BufferPool>();
let trimTimer: NodeJS.Timeout | undefined;

function trimAll(): void {
  for (const pool of elastic) if (!pool.trim()) elastic.delete(pool);
  if (elastic.size === 0 && trimTimer !== undefined) {
    clearInterval(trimTimer);
    trimTimer = undefined;
  }
}

/** Options of a {@link BufferPool} that keeps more than its floor while it is busy. */
export interface ElasticPoolOptions {
  /** Free buffers kept at most while the pool is busy. */
  maxFree: number;
  /** The bound on free bytes shared with other pools, if any. */
  group?: FreeBytes;
}

/**
 * Free buffers of one size: {@link BufferPool.take} a free one (or a new one), {@link BufferPool.give} it
 * back. It keeps `keep` free buffers for good; an elastic pool keeps up to `maxFree` while it is busy, so
 * that a load which holds many buffers at once and gives them back in waves allocates none anew each wave,
 * and gives back to the collector, every {@link POOL_TRIM_INTERVAL_MS}, the free buffers above its floor
 * that were not taken since the last trim.
 */
export class BufferPool {
  readonly #free: Buffer[] = [];
  readonly #maxFree: number;
  readonly #group: FreeBytes | undefined;
  /** Fewest free buffers since the last trim: those above it were not needed. */
  #lowWater = 0;

  /**
   * @param size bytes of each buffer the pool allocates (at least)
   * @param keep free buffers kept at most for good; more are left to the garbage collector
   * @param elasticOptions keep up to more while busy (trimmed back to `keep` once idle)
   */
  constructor(
    readonly size: number,
    readonly keep: number,
    elasticOptions?: ElasticPoolOptions,
  ) {
    this.#maxFree = Math.max(keep, elasticOptions?.maxFree ?? keep);
    this.#group = elasticOptions?.group;
    this.#group?.join(this);
  }

  /** Bytes of the free buffers kept past the floor now, about (each counted at the pool's size). */
  get surplusBytes(): number {
    return Math.max(0, this.#free.length - this.keep) * this.size;
  }

  /** Gives the collector one free buffer past the floor (for the shared bound's room). */
  evict(): void {
    const free = this.#free;
    if (free.length <= this.keep) return;
    this.#uncount(free.pop()!.length);
    if (free.length < this.#lowWater) this.#lowWater = free.length;
  }

  /** Free buffers held now. */
  get free(): number {
    return this.#free.length;
  }

  /** A buffer of at least `length` bytes: a free one when it is large enough, else a new one. */
  take(length = this.size): Buffer {
    const free = this.#free.pop();
    if (free !== undefined) {
      if (this.#free.length >= this.keep) this.#uncount(free.length);
      if (this.#free.length < this.#lowWater) this.#lowWater = this.#free.length;
      if (free.length >= length) return free;
    }
    return Buffer.allocUnsafeSlow(Math.max(length, this.size));
  }

  /** Returns `buffer`, which nothing may use any more, for a later {@link BufferPool.take}. */
  give(buffer: Buffer): void {
    const free = this.#free;
    if (free.length < this.keep) {
      free.push(buffer);
      return;
    }
    if (free.length >= this.#maxFree) return;
    const group = this.#group;
    if (group !== undefined) {
      if (group.bytes + buffer.length > group.max && !group.makeRoom(buffer.length, this)) return;
      group.bytes += buffer.length;
    }
    free.push(buffer);
    if (!elastic.has(this)) {
      this.#lowWater = free.length;
      elastic.add(this);
      trimTimer ??= setInterval(trimAll, POOL_TRIM_INTERVAL_MS).unref();
    }
  }

  /**
   * Gives the collector the free buffers above the floor that were not taken since the last trim; returns
   * whether the pool still keeps more than its floor.
   */
  trim(): boolean {
    const free = this.#free;
    const drop = Math.min(this.#lowWater, free.length - this.keep);
    for (let i = 0; i < drop; i++) this.#uncount(free.pop()!.length);
    this.#lowWater = free.length;
    return free.length > this.keep;
  }

  #uncount(bytes: number): void {
    if (this.#group !== undefined) this.#group.bytes -= bytes;
  }
}

/** Where a written buffer goes back: a {@link BufferPool} or {@link SizedBufferPools}. */
export interface BufferReturn {
  give(buffer: Buffer): void;
}

/**
 * Pools of buffers of a few sizes, each with `extra` bytes beyond its size (room for headers): a buffer
 * for `length` bytes comes from the smallest size that takes it, so that what it holds is at most 1.5
 * times what it carries with sizes a half-step apart, and goes back by its length. Longer requests get a
 * buffer of their own, never pooled.
 */
export class SizedBufferPools implements BufferReturn {
  readonly pools: readonly BufferPool[];

  /**
   * @param sizes the sizes, ascending (bytes, without `extra`)
   * @param extra bytes each buffer has beyond its size
   * @param keepBytes free bytes each size keeps for good (at least one buffer)
   * @param group the bound on the free bytes all sizes keep past that while busy
   */
  constructor(sizes: readonly number[], extra: number, keepBytes: number, group: FreeBytes) {
    this.pools = sizes.map(
      (size) =>
        new BufferPool(size + extra, Math.max(1, Math.floor(keepBytes / size)), {
          maxFree: Number.POSITIVE_INFINITY,
          group,
        }),
    );
  }

  /** The pool of the smallest buffer of at least `length` bytes, or undefined past the largest. */
  poolFor(length: number): BufferPool | undefined {
    for (const pool of this.pools) if (pool.size >= length) return pool;
    return undefined;
  }

  /** A buffer of at least `length` bytes (its pool's size: take a view of what is used). */
  take(length: number): Buffer {
    return this.poolFor(length)?.take() ?? Buffer.allocUnsafeSlow(length);
  }

  /** Takes back a buffer of one of its sizes that is a whole `ArrayBuffer` of its own; drops any other. */
  give(buffer: Buffer): void {
    if (buffer.byteOffset !== 0 || buffer.byteLength !== buffer.buffer.byteLength) return;
    const pool = this.poolFor(buffer.length);
    if (pool !== undefined && pool.size === buffer.length) pool.give(buffer);
  }
}

/** A count of the bytes that writes hold (e.g. `HeldReadBudget`): {@link WrittenBuffers} keeps it. */
export interface HeldBytesCounter {
  hold(bytes: number): void;
  release(bytes: number): void;
}

/**
 * The pooled buffers handed to one stream's writes, each given back to its pool when its write completes:
 * write every one of them with {@link WrittenBuffers.written} as the callback. Node calls a stream's write
 * callbacks in the order of the writes, so the oldest buffer in flight is the one written. A write that
 * fails ends the reuse for good: a destroyed stream may call back out of order, and may still hold a
 * buffer. With a `counter`, every buffer's length is counted in it from `add` until its write calls back,
 * or until {@link WrittenBuffers.settle} (the stream is gone: its callbacks may never come).
 */
export class WrittenBuffers {
  readonly #pool: BufferReturn;
  readonly #counter: HeldBytesCounter | undefined;
  /** Buffers written and not yet called back, oldest first, with their callbacks. */
  readonly #buffers = new Fifo<Buffer>();
  readonly #callbacks = new Fifo<((err?: Error | null) => void) | undefined>();
  #failed = false;
  #settled = false;
  #bytes = 0;

  constructor(pool: BufferReturn, counter?: HeldBytesCounter) {
    this.#pool = pool;
    this.#counter = counter;
  }

  /** A write failed: nothing written through this object goes back to the pool any more. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Bytes of the buffers in flight, as counted in the counter (0 once settled). */
  get bytes(): number {
    return this.#bytes;
  }

  /** `buffer` is being written; `onWritten` runs when its write calls back, after the buffer went back. */
  add(buffer: Buffer, onWritten?: (err?: Error | null) => void): void {
    this.#buffers.push(buffer);
    this.#callbacks.push(onWritten);
    if (this.#counter === undefined || this.#settled) return;
    this.#bytes += buffer.length;
    this.#counter.hold(buffer.length);
  }

  /** The write callback of every buffer added: gives the oldest one in flight back, then calls its callback. */
  readonly written = (err?: Error | null): void => {
    const buffer = this.#buffers.shift();
    const callback = this.#callbacks.shift();
    if (err != null) this.#failed = true;
    else if (buffer !== undefined && !this.#failed) this.#pool.give(buffer);
    if (buffer !== undefined && this.#counter !== undefined && !this.#settled) {
      this.#bytes -= buffer.length;
      this.#counter.release(buffer.length);
    }
    callback?.(err);
  };

  /** Nothing more is counted: what the buffers in flight hold leaves the counter now. */
  settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#counter?.release(this.#bytes);
    this.#bytes = 0;
  }
}
