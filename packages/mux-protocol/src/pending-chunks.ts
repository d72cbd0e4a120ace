/**
 * The chunks of a stream's write in progress and how far they have been sent: DATA frames are cut from
 * them in order, copied into one buffer or handed out as views (no copy). One per stream, reused across
 * writes.
 */
export class PendingChunks {
  readonly #chunks: Buffer[] = [];
  #index = 0;
  #offset = 0;
  #bytes = 0;

  /** Bytes not yet cut into frames. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes left in the chunk the next frame starts in (a datagram is one chunk, one frame). */
  get headLength(): number {
    return this.#chunks[this.#index]!.length - this.#offset;
  }

  /**
   * Bytes of the next frame of at most `max`: all that is left when it fits, else `max`, except that a
   * chunk of at least half a frame is not cut across two frames when the frame can end where the chunk
   * before it ends, itself at least half a frame in: a chunk read for framing in place (with room for
   * the headers in front) then becomes a frame of its own, written without a copy.
   */
  frameLength(max: number): number {
    if (this.#bytes <= max) return this.#bytes;
    const chunks = this.#chunks;
    let i = this.#index;
    let end = chunks[i]!.length - this.#offset;
    if (end >= max) return max;
    const half = max / 2;
    for (;;) {
      const next = chunks[++i]!.length;
      if (end + next > max) return end >= half && next >= half ? end : max;
      end += next;
    }
  }

  /** Adds a non-empty chunk of the write. */
  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
  }

  /** Copies the next `length` bytes (at most {@link bytes}) into `target` from `at`. */
  copyTo(target: Buffer, at: number, length: number): void {
    let offset = at;
    let need = length;
    while (need > 0) {
      const chunk = this.#chunks[this.#index]!;
      const start = this.#offset;
      const take = Math.min(chunk.length - start, need);
      chunk.copy(target, offset, start, start + take);
      offset += take;
      need -= take;
      this.#advance(chunk, start + take);
    }
    this.#bytes -= length;
  }

  /** The next `length` bytes (at most {@link bytes}) as views of the chunks. */
  views(length: number): Uint8Array[] {
    const parts: Uint8Array[] = [];
    let need = length;
    while (need > 0) {
      const chunk = this.#chunks[this.#index]!;
      const start = this.#offset;
      const take = Math.min(chunk.length - start, need);
      parts.push(start === 0 && take === chunk.length ? chunk : chunk.subarray(start, start + take));
      need -= take;
      this.#advance(chunk, start + take);
    }
    this.#bytes -= length;
    return parts;
  }

  /** Forgets the write (done, or the stream can no longer send). */
  clear(): void {
    this.#chunks.length = 0;
    this.#index = 0;
    this.#offset = 0;
    this.#bytes = 0;
  }

  #advance(chunk: Buffer, end: number): void {
    if (end === chunk.length) {
      this.#index++;
      this.#offset = 0;
    } else {
      this.#offset = end;
    }
  }
}
