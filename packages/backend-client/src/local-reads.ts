import type { Socket, OnReadOpts } from 'node:net';
import type { Writable } from 'node:stream';

/** Bytes a local socket reads at most at once: Node's own read size. */
export const LOCAL_READ_SIZE = 64 * 1024;
/** Reads of at least this many bytes are copied into a reused chunk; shorter ones into a buffer of their own. */
export const REUSED_CHUNK_MIN_READ = LOCAL_READ_SIZE / 2;
/** Reused chunks the process keeps while none is being relayed (at most 2 MiB). */
export const FREE_CHUNKS_MAX = 32;

/** The buffer every relayed local socket reads into between bursts; what a read brings is copied out at once. */
let landing: Buffer | undefined;
/** Reused chunks not in use, for the whole process. */
const freeChunks: Buffer[] = [];

function takeChunk(): Buffer {
  return freeChunks.pop() ?? Buffer.allocUnsafeSlow(LOCAL_READ_SIZE);
}

function freeChunk(chunk: Buffer): void {
  if (freeChunks.length < FREE_CHUNKS_MAX) freeChunks.push(chunk);
}

/**
 * The local → hub direction of one relayed local socket, read with `net.Socket`'s `onread` instead of
 * `'data'` events, so that relaying allocates no new buffer per read.
 *
 * Node reads a socket into a new 64 KiB `ArrayBuffer` for every read. That memory lies outside the JS heap
 * and only a garbage collection returns it; once the process's heap is past V8's few megabytes of "small
 * heap", memory allocated outside it counts towards the next full collection, and a relay that allocates a
 * buffer per read runs a mark-compact every ten-odd megabytes (docs/benchmarks.md, "The backend client's
 * download"). Here every socket reads into one shared buffer ({@link LOCAL_READ_SIZE}); each read is copied
 * at once into a chunk taken from a process-wide free list, and the chunk returns to the list when the
 * stream's write of it completes (a writer may reuse its buffer then, as with any socket). Short reads are
 * copied into a buffer of their own, so a stream holding many small reads (waiting for credits) never holds
 * a 64 KiB chunk for each.
 *
 * Pass {@link LocalReads.onread} when creating the socket, which must start paused (`socket.pause()`
 * before it connects); {@link LocalReads.attach} then forwards what it reads to a stream, like
 * `socket.pipe(stream)`: backpressure (the socket is not read while the stream is full), and the
 * socket's end ends the stream.
 */
export class LocalReads {
  #socket: Socket | undefined;
  #target: Writable | undefined;
  #onBytes: ((bytes: number) => void) | undefined;
  /** Reads stopped because the stream was full; resumed on its `'drain'`. */
  #waitingForDrain = false;
  /** Reused chunks written to the stream and not yet called back, oldest at `#head`. */
  #inFlight: (Buffer | undefined)[] = [];
  #head = 0;
  /** A write failed: write callbacks may come out of order, so no chunk of this stream is reused again. */
  #failed = false;

  /** The `onread` option of the socket these reads are for. */
  readonly onread: OnReadOpts = {
    buffer: () => this.#nextBuffer(),
    callback: (bytes: number, buffer: Uint8Array): boolean => this.#read(bytes, buffer),
  };
  /** The chunk the socket reads into next, or undefined while it reads into the shared buffer. */
  #installed: Buffer | undefined;
  /** The last read was large: the next one is read straight into a chunk of its own. */
  #bursting = false;

  /**
   * Forwards what `socket` reads to `target` from now on (resuming the socket), counting the bytes with
   * `onBytes`; `socket`'s end ends `target`.
   */
  attach(socket: Socket, target: Writable, onBytes?: (bytes: number) => void): void {
    this.#socket = socket;
    this.#target = target;
    this.#onBytes = onBytes;
    target.on('drain', this.#drained);
    socket.once('end', this.#ended);
    socket.resume();
  }

  /**
   * Stops forwarding, as `unpipe` would: the socket is paused; if it is resumed later (to let it reach
   * its end), what it reads is discarded.
   */
  detach(): void {
    const target = this.#target;
    if (target === undefined) return;
    this.#target = undefined;
    target.off('drain', this.#drained);
    this.#socket?.off('end', this.#ended);
    this.#socket?.pause();
  }

  /**
   * Node asks for the buffer of the socket's next read after every read. During a burst of large reads
   * it is a chunk of the socket's own, handed to the stream as it is (no copy); otherwise the shared
   * buffer, so that a quiet socket holds no memory of its own.
   */
  #nextBuffer(): Buffer {
    if (this.#bursting && !this.#failed) {
      this.#installed = takeChunk();
      return this.#installed;
    }
    this.#installed = undefined;
    landing ??= Buffer.allocUnsafeSlow(LOCAL_READ_SIZE);
    return landing;
  }

  #read(bytes: number, buffer: Uint8Array): boolean {
    const chunk = this.#installed;
    // Read into a chunk of its own (buffer === chunk) or into the shared buffer, to be copied out now.
    this.#installed = undefined;
    const target = this.#target;
    const large = bytes >= REUSED_CHUNK_MIN_READ && !this.#failed;
    this.#bursting = large;
    if (target === undefined || target.destroyed || target.writableEnded) {
      if (chunk !== undefined) freeChunk(chunk);
      this.#bursting = false;
      return true; // discarded
    }
    this.#onBytes?.(bytes);
    let ok: boolean;
    if (large) {
      let out = chunk;
      if (out === undefined) {
        out = takeChunk();
        out.set(buffer.subarray(0, bytes));
      }
      this.#inFlight.push(out);
      ok = target.write(bytes === out.length ? out : out.subarray(0, bytes), this.#written);
    } else {
      ok = target.write(Buffer.from(buffer.subarray(0, bytes)));
      if (chunk !== undefined) freeChunk(chunk);
    }
    if (!ok) this.#waitingForDrain = true;
    return ok; // false: Node stops reading the socket until it is resumed
  }

  /** The write callback of every reused chunk: Node calls a stream's write callbacks in write order. */
  readonly #written = (err?: Error | null): void => {
    const i = this.#head;
    const chunk = this.#inFlight[i];
    this.#inFlight[i] = undefined;
    this.#head = i + 1;
    if (this.#head === this.#inFlight.length) {
      this.#inFlight.length = 0;
      this.#head = 0;
    } else if (this.#head >= FREE_CHUNKS_MAX && this.#head * 2 >= this.#inFlight.length) {
      // Never empty (reads keep coming): drop the called-back slots so the array stays bounded.
      this.#inFlight.splice(0, this.#head);
      this.#head = 0;
    }
    if (err != null) this.#failed = true;
    else if (chunk !== undefined && !this.#failed) freeChunk(chunk);
  };

  readonly #drained = (): void => {
    if (!this.#waitingForDrain) return;
    this.#waitingForDrain = false;
    this.#socket?.resume();
  };

  readonly #ended = (): void => {
    const target = this.#target;
    this.detach();
    if (target !== undefined && !target.writableEnded) target.end();
  };
}
