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
