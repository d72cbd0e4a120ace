/**
 * One growing buffer for the bytes of a connection read so far. Appending copies each byte once, plus the
 * amortised copies of doubling the capacity: the whole is linear in the bytes appended, however the reads
 * are split (concatenating every read anew would be quadratic).
 */
export class ByteAccumulator {
  #buffer: Buffer = Buffer.alloc(0);
  #length = 0;
  /** False while `#buffer` is the caller's first chunk (kept as is, not copied). */
  #owned = false;
  /** Bytes copied so far (chunks and re-allocations): a measure of the work done. */
  copied = 0;

  /** Appends `chunk`. The first chunk is kept without a copy; it must not be changed afterwards. */
  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.#length === 0) {
      this.#buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
      this.#length = chunk.length;
      this.#owned = false;
      return;
    }
    const needed = this.#length + chunk.length;
    if (!this.#owned || needed > this.#buffer.length) {
      const next = Buffer.allocUnsafe(Math.max(needed, 2 * this.#buffer.length, 256));
      this.#buffer.copy(next, 0, 0, this.#length);
      this.copied += this.#length;
      this.#buffer = next;
      this.#owned = true;
    }
    this.#buffer.set(chunk, this.#length);
    this.copied += chunk.length;
    this.#length = needed;
  }

  /** Every byte appended, in order (a view: valid until the next `append`). */
  get bytes(): Buffer {
    return this.#buffer.subarray(0, this.#length);
  }

  /** Number of bytes appended. */
  get length(): number {
    return this.#length;
  }
}

/**
 * What the incremental readers share: gather each chunk, ask `scan` for a verdict on everything so far
 * while it is `incomplete`, and keep the first final verdict.
 */
export abstract class ChunkReader<R extends { kind: string }> {
  readonly #buffer = new ByteAccumulator();
  #result: R;

  protected constructor(incomplete: R) {
    this.#result = incomplete;
  }

  /** The verdict on `bytes` (everything pushed so far), resuming the previous scan. */
  protected abstract scan(bytes: Buffer): R;
  /** The verdict if `scan` threw (it is not expected to). */
  protected abstract readonly malformed: R;
  /** Bytes the scan has looked at so far. */
  protected abstract readonly scanned: number;

  /**
   * Adds the next chunk read and returns the verdict on everything pushed so far. Once the verdict is not
   * `incomplete` it is final: later chunks are still gathered (into `bytes`) but change nothing.
   */
  push(chunk: Uint8Array): R {
    this.#buffer.append(chunk);
    if (this.#result.kind !== 'incomplete') return this.#result;
    try {
      this.#result = this.scan(this.#buffer.bytes);
    } catch {
      // Last-resort guard only: every read is bounds-checked.
      this.#result = this.malformed;
    }
    return this.#result;
  }

  /** Every byte pushed, in order (a view, valid until the next `push`). */
  get bytes(): Buffer {
    return this.#buffer.bytes;
  }

  /** Bytes copied and looked at so far: grows linearly with the bytes pushed (a measure for tests). */
  get bytesExamined(): number {
    return this.#buffer.copied + this.scanned;
  }
}
