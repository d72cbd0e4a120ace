/**
 * The end user → stream direction of a relay, forwarded as `pipe` would (backpressure, the end), with what
 * the stream holds of it counted in the node's {@link UploadBudget}, which sizes the end users' reads.
 *
 * A mux stream holds what it was written until its credits let it send it; when they stop coming (a slow
 * service, a hostile token holder) its relay holds up to the stream's high-water mark (two frames: 64 KiB
 * toward the reference, 256 KiB between Nexus ends) and one more read in the socket's buffer. Nothing
 * bounded how many relays held that: each end user of such a backend added it to the node's memory (160 of
 * them held 9.75 MiB in `test/adversarial/upload-budget.test.ts`). With the budget, once what the streams
 * hold reaches `limits.maxBufferedUploadBytes`, every socket reads {@link UPLOAD_READ_MIN} bytes at a time
 * and a relay's stream holds at most that before its socket waits for the stream to send: the node then
 * holds the bound plus about one small read per relay that got stuck past it (2.84–3.00 MiB for the same
 * 160 with a 512 KiB bound). Nobody waits for a turn: a relay whose
 * stream sends what it is given goes on at its own pace, in smaller reads, so stuck streams cost the others
 * some efficiency, never their service (docs/security.md; docs/configuration.md).
 */
import type { Readable, Writable } from 'node:stream';
import { type BufferReturn, type HeldBytesCounter, WrittenBuffers } from '@nexus-proxy/common';
import { FRAME_READ_SIZE, frameReadReturn, keepFrameRead } from './frame-reads.js';

/** Default of `limits.maxBufferedUploadBytes`: 128 MiB node-wide. */
export const DEFAULT_MAX_BUFFERED_UPLOAD_BYTES = 128 * 1024 * 1024;
/**
 * Bytes an end user's socket reads at once while the budget has no room for a whole frame (one TLS record's
 * worth, the stream's high-water mark): a stuck relay then holds about two of them.
 */
export const UPLOAD_READ_MIN = 16 * 1024;

/** What a node's streams hold of what relayed sockets read (`limits.maxBufferedUploadBytes`). */
export class UploadBudget implements HeldBytesCounter {
  /** Bytes written to streams and not yet sent by them, node-wide. */
  held = 0;

  constructor(public max: number = DEFAULT_MAX_BUFFERED_UPLOAD_BYTES) {}

  hold(bytes: number): void {
    this.held += bytes;
  }

  release(bytes: number): void {
    this.held -= bytes;
  }

  /**
   * Bytes a socket may read at once now: a whole frame's read ({@link FRAME_READ_SIZE}) while the budget
   * has room for one, then what room is left, and {@link UPLOAD_READ_MIN} once there is less. Bound to the
   * budget, so it can be handed to `readInFrames` as it is.
   */
  readonly readSize = (): number => {
    const room = this.max - this.held;
    return room >= FRAME_READ_SIZE ? FRAME_READ_SIZE : Math.max(UPLOAD_READ_MIN, room);
  };

  /**
   * Bytes one relay's stream may hold before its socket stops reading until the stream has sent some:
   * unbounded while the budget has room (the stream's high-water mark applies, 64–256 KiB), and
   * {@link UPLOAD_READ_MIN} once it is used up.
   */
  allowance(): number {
    return this.held >= this.max ? UPLOAD_READ_MIN : Number.POSITIVE_INFINITY;
  }
}

/** Nothing is pooled: the written chunks are only counted. */
const notPooled: BufferReturn = { give() {} };

/**
 * Forwards `source` to `dest` like `source.pipe(dest)`: each chunk written with a callback, the source
 * paused while `dest` needs a drain and resumed on its `'drain'`, `dest.end()` at the source's end. The
 * bytes written and not yet called back count in `budget`, until `dest` closes; a chunk read into a frame
 * buffer goes back to their pool when its write calls back (`reuseReads`). Something else may pause
 * the source too (the bandwidth meter), as with `pipe`: it pauses it again on `'resume'` while it waits,
 * and resumes it only when `dest` needs no drain.
 */
export class UploadForward {
  readonly #source: Readable;
  readonly #dest: Writable;
  readonly #budget: UploadBudget | undefined;
  readonly #written: WrittenBuffers;
  #stopped = false;
  /** The source was paused because the stream holds its allowance: resumed as the stream sends. */
  #overAllowance = false;

  /**
   * @param reuseReads give the chunks the source read in frames (frame-reads.ts) back to their pool once
   *   written: only for a `dest` that calls a write back once nothing holds its chunk any more (a mux
   *   stream, or a socket), not one that passes chunks on as they are (a `PassThrough`).
   */
  constructor(source: Readable, dest: Writable, budget?: UploadBudget, reuseReads = false) {
    this.#source = source;
    this.#dest = dest;
    this.#budget = budget;
    this.#written = new WrittenBuffers(reuseReads ? frameReadReturn : notPooled, budget);
  }

  /** Bytes written to the stream and not yet sent by it. */
  get held(): number {
    return this.#written.bytes;
  }

  /**
   * Writes `chunk` before anything read from the source (the sniffed prelude); counted like a read, but
   * never taken back into the frame buffers' pool: its owner may keep it (and write it again elsewhere).
   */
  write(chunk: Uint8Array): void {
    keepFrameRead(chunk);
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    this.#written.add(buffer, this.#afterWrite);
    this.#dest.write(buffer, this.#written.written);
  }

  /** Starts forwarding: the source flows unless `dest` waits for a drain. */
  start(): void {
    this.#source.on('data', this.#onData);
    this.#source.once('end', this.#onEnd);
    this.#dest.on('drain', this.#onDrain);
    this.#dest.once('close', this.#settle);
    if (this.#dest.writableNeedDrain) return;
    if (this.#holdsAllowance()) this.#overAllowance = true;
    else this.#source.resume();
  }

  /** Stops forwarding, as `unpipe`: nothing more is written to the stream, the source is left as it is. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#source.off('data', this.#onData);
    this.#source.off('end', this.#onEnd);
    this.#dest.off('drain', this.#onDrain);
  }

  readonly #onData = (chunk: Buffer): void => {
    const dest = this.#dest;
    if (dest.destroyed || dest.writableEnded) return;
    this.#written.add(chunk, this.#afterWrite);
    if (!dest.write(chunk, this.#written.written)) this.#source.pause();
    else if (this.#holdsAllowance()) {
      this.#overAllowance = true;
      this.#source.pause();
    }
  };

  /** Whether the stream holds what one relay may while the budget is used up. */
  #holdsAllowance(): boolean {
    return this.#budget !== undefined && this.#written.bytes >= this.#budget.allowance();
  }

  /** A write called back (the stream sent it): a source paused for its allowance reads again below it. */
  readonly #afterWrite = (): void => {
    if (!this.#overAllowance || this.#holdsAllowance()) return;
    this.#overAllowance = false;
    if (!this.#stopped && !this.#dest.writableNeedDrain && !this.#source.destroyed) this.#source.resume();
  };

  readonly #onDrain = (): void => {
    if (this.#holdsAllowance()) this.#overAllowance = true;
    else this.#source.resume();
  };

  readonly #onEnd = (): void => {
    this.stop();
    if (!this.#dest.writableEnded && !this.#dest.destroyed) this.#dest.end();
  };

  /** The stream is gone: what it held leaves the budget's count (its write callbacks may never come). */
  readonly #settle = (): void => {
    this.#written.settle();
  };
}
