import type { OnReadOpts, Socket } from 'node:net';
import type { Writable } from 'node:stream';
import {
  BufferPool,
  BurstReads,
  FRAME_ROOM,
  lendFrameRoom,
  ReadBufferBudget,
  WrittenBuffers,
} from '@nexus-proxy/common';

/** Bytes a local socket reads at most at once between bursts: Node's own read size. */
export const LOCAL_READ_SIZE = 64 * 1024;
/**
 * Bytes a local socket reads at most at once into a chunk of its own during a burst: one DATA frame of
 * the size two Nexus ends agree on (docs/protocol.md §1.11), so that each read becomes one frame.
 */
export const CHUNK_READ_SIZE = 128 * 1024;
/**
 * Reads of at least this many bytes go to the stream in a reused chunk; shorter ones in a buffer of
 * their own (a stream holding many small reads while it waits for credits never holds a chunk for each).
 */
export const REUSED_CHUNK_MIN_READ = LOCAL_READ_SIZE / 2;
/**
 * A read into a chunk of its own that brings at most this many bytes is copied into a buffer of its size,
 * and the chunk is read into again: a stream holds the memory of what it carries, not a whole chunk per
 * read. The stream's high-water mark counts bytes, so with reads of half a chunk or less a stream waiting
 * for credits held two to four times its mark in chunks (10 000 streams: 5.7 GiB outside the JS heap,
 * docs/benchmarks.md, "10 000 streams: where the backend's CPU goes").
 */
export const SHORT_READ_MAX = CHUNK_READ_SIZE / 2;
/** Reused chunks the process keeps while none is being relayed (at most 2 MiB). */
export const FREE_CHUNKS_MAX = 16;
/**
 * Chunks that local sockets of the process hold installed for their next read at once (8 MiB): a socket
 * holds its chunk until that read comes, however long it waits (a stream without credit, a quiet
 * service); 10 000 sockets in a burst held 1.25 GiB so (docs/benchmarks.md, "10 000 streams: where the
 * backend's CPU goes"). Past the bound a burst's reads land in the shared buffer and are copied out, as
 * the first read of every burst is. The same bound as the node's end-user sockets (`FRAME_BUFFERS_MAX`).
 */
export const INSTALLED_CHUNKS_MAX = 64;

/**
 * The chunks of every relayed local socket of the process, each with room for its frame's headers in
 * front (see `lendFrameRoom` in `@nexus-proxy/common`): what a socket reads into one becomes its DATA
 * frame in place, written to the hub in one socket write.
 */
const chunks = new BufferPool(FRAME_ROOM + CHUNK_READ_SIZE, FREE_CHUNKS_MAX);
/**
 * The bound on chunks installed for next reads, and the buffer every other local socket reads into (between
 * bursts, or past the bound); what a read brings there is copied out at once. It takes a whole chunk's read,
 * so that a socket past the bound still reads as much at once as one with a chunk of its own.
 */
const budget = new ReadBufferBudget(INSTALLED_CHUNKS_MAX, CHUNK_READ_SIZE);

/** Chunks that local sockets hold installed for their next read now (for tests and metrics). */
export function installedChunks(): number {
  return budget.installed;
}

/**
 * The local → hub direction of one relayed local socket, read with `net.Socket`'s `onread` instead of
 * `'data'` events, so that relaying allocates no new buffer per read: Node's own reads allocate a 64 KiB
 * `ArrayBuffer` each, memory outside the JS heap that costs a relay mark-compacts (see `BufferPool` in
 * `@nexus-proxy/common`, and docs/benchmarks.md, "The backend client's download").
 *
 * During a burst of large reads ({@link REUSED_CHUNK_MIN_READ} or more) the socket reads straight into a
 * chunk of its own, which goes to the stream as it is and back to a process-wide pool when the stream's
 * write of it completes (a writer may reuse its buffer then, as with any socket). The chunk is lent for
 * framing in place: the hub link's frame writer puts the headers in front of the payload and masks it
 * where it is, so nothing reads a chunk once it was written. Between bursts it reads
 * into one buffer shared by every socket, and what a read brings is copied out at once: a quiet socket
 * holds no memory of its own. At most {@link INSTALLED_CHUNKS_MAX} sockets of the process hold a chunk
 * installed for their next read; past that, a burst's reads land in the shared buffer too (the policy:
 * `BurstReads` in `@nexus-proxy/common`, shared with the node's end-user sockets).
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
  /** The chunks written to the stream and not yet called back. */
  readonly #written = new WrittenBuffers(chunks);
  /** The chunk the socket reads into next (its payload area, after the frame room), or undefined. */
  #installed: Buffer | undefined;
  /** The whole pooled buffer of {@link #installed}. */
  #installedBuffer: Buffer | undefined;
  /** Whether the next read goes into a chunk of its own, within the process-wide bound. */
  readonly #burst = new BurstReads(budget, REUSED_CHUNK_MIN_READ);

  /** The `onread` option of the socket these reads are for. */
  readonly onread: OnReadOpts = {
    buffer: () => this.#nextBuffer(),
    callback: (bytes: number, buffer: Uint8Array): boolean => this.#read(bytes, buffer),
  };

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
    // The chunk installed for the next read is no longer counted once no read can come into it.
    socket.once('end', this.#release);
    socket.once('close', this.#release);
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
   * Node asks for the buffer of the socket's next read after every read, also after one that stopped the
   * reads: a socket waiting for its stream's drain gets the shared buffer then, and holds no chunk while
   * it waits.
   */
  #nextBuffer(): Buffer {
    const may = !this.#waitingForDrain && !this.#written.failed && this.#socket?.destroyed === false;
    if (this.#burst.ownNext(may)) {
      const whole = chunks.take();
      this.#installedBuffer = whole;
      this.#installed = lendFrameRoom(whole);
      return this.#installed;
    }
    this.#installed = undefined;
    this.#installedBuffer = undefined;
    return budget.landing();
  }

  #read(bytes: number, buffer: Uint8Array): boolean {
    // Read into a chunk of the socket's own (`buffer` is that chunk) or into the shared buffer.
    const chunk = this.#installed;
    const whole = this.#installedBuffer;
    this.#installed = undefined;
    this.#installedBuffer = undefined;
    const target = this.#target;
    if (target === undefined || target.destroyed || target.writableEnded) {
      if (whole !== undefined) chunks.give(whole);
      this.#burst.read(0);
      return true; // discarded
    }
    this.#onBytes?.(bytes);
    const bursting = this.#burst.read(bytes);
    let ok: boolean;
    if (bursting && !this.#written.failed && bytes > (whole === undefined ? 0 : SHORT_READ_MAX)) {
      let out = chunk;
      let pooled = whole;
      if (out === undefined || pooled === undefined) {
        // Landed in the shared buffer (the first read of a burst, or past the bound): into a pooled chunk.
        pooled = chunks.take();
        out = lendFrameRoom(pooled);
        out.set(buffer.subarray(0, bytes));
      }
      this.#written.add(pooled);
      ok = target.write(bytes === out.length ? out : out.subarray(0, bytes), this.#written.written);
    } else {
      // A short read into a chunk is copied out too, and the chunk goes back for the next read.
      ok = target.write(Buffer.from(buffer.subarray(0, bytes)));
      if (whole !== undefined) chunks.give(whole);
    }
    if (!ok) this.#waitingForDrain = true;
    return ok; // false: Node stops reading the socket until it is resumed
  }

  /** No read comes any more (the socket's end or close): the installed chunk leaves the bound's count. */
  readonly #release = (): void => {
    this.#installed = undefined;
    this.#installedBuffer = undefined;
    this.#burst.release();
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
