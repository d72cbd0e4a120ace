/**
 * Buffers reused across writes, so that relaying allocates no new buffer per frame or per read. Every
 * `ArrayBuffer` is memory outside the JS heap that only a garbage collection returns, and once a process's
 * heap is past V8's few megabytes of "small heap", that memory counts towards its next full collection: a
 * relay that allocates a buffer per 32 KiB runs a mark-compact every ten-odd megabytes (docs/benchmarks.md,
 * "The backend client's download"). Used by the client side of the WebSocket frame writer (its masked
 * frames) and by the backend client's local reads.
 */

/** Free buffers of one size: {@link BufferPool.take} a free one (or a new one), {@link BufferPool.give} it back. */
export class BufferPool {
  readonly #free: Buffer[] = [];

  /**
   * @param size bytes of each buffer the pool allocates (at least)
   * @param keep free buffers kept at most; more are left to the garbage collector
   */
  constructor(
    readonly size: number,
    readonly keep: number,
  ) {}

  /** Free buffers held now. */
  get free(): number {
    return this.#free.length;
  }

  /** A buffer of at least `length` bytes: a free one when it is large enough, else a new one. */
  take(length = this.size): Buffer {
    const free = this.#free.pop();
    if (free !== undefined && free.length >= length) return free;
    return Buffer.allocUnsafeSlow(Math.max(length, this.size));
  }

  /** Returns `buffer`, which nothing may use any more, for a later {@link BufferPool.take}. */
  give(buffer: Buffer): void {
    if (this.#free.length < this.keep) this.#free.push(buffer);
  }
}

/**
 * The pooled buffers handed to one stream's writes, each given back to its pool when its write completes:
 * write every one of them with {@link WrittenBuffers.written} as the callback. Node calls a stream's write
 * callbacks in the order of the writes, so the oldest buffer in flight is the one written. A write that
 * fails ends the reuse for good: a destroyed stream may call back out of order, and may still hold a
 * buffer.
 */
export class WrittenBuffers {
  readonly #pool: BufferPool;
  /** Buffers written and not yet called back, oldest at `#head`, with their callbacks. */
  #buffers: (Buffer | undefined)[] = [];
  #callbacks: (((err?: Error | null) => void) | undefined)[] = [];
  #head = 0;
  #failed = false;

  constructor(pool: BufferPool) {
    this.#pool = pool;
  }

  /** A write failed: nothing written through this object goes back to the pool any more. */
  get failed(): boolean {
    return this.#failed;
  }

  /** `buffer` is being written; `onWritten` runs when its write calls back, after the buffer went back. */
  add(buffer: Buffer, onWritten?: (err?: Error | null) => void): void {
    this.#buffers.push(buffer);
    this.#callbacks.push(onWritten);
  }

  /** The write callback of every buffer added: gives the oldest one in flight back, then calls its callback. */
  readonly written = (err?: Error | null): void => {
    const i = this.#head;
    const buffer = this.#buffers[i];
    const callback = this.#callbacks[i];
    this.#buffers[i] = undefined;
    this.#callbacks[i] = undefined;
    this.#head = i + 1;
    if (this.#head === this.#buffers.length) {
      this.#buffers.length = 0;
      this.#callbacks.length = 0;
      this.#head = 0;
    } else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#buffers.length) {
      // Never empty (writes keep coming): drop the called-back slots so the arrays stay bounded.
      this.#buffers.splice(0, this.#head);
      this.#callbacks.splice(0, this.#head);
      this.#head = 0;
    }
    if (err != null) this.#failed = true;
    else if (buffer !== undefined && !this.#failed) this.#pool.give(buffer);
    callback?.(err);
  };
}

/** Called-back slots at the front of {@link WrittenBuffers}' arrays before they are dropped. */
const COMPACT_AFTER = 64;
